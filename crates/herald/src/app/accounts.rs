//! Accounts (R-ACC-1): created by the operator with a first API key, enabled
//! once someone accepts the sending rules, deleted with all their data.

use super::Result;
use crate::accounts::{Account, NewAccount, NewApiKey};
use crate::service::Herald;
use herald_eventlog::Totals;

/// Creates an account with its first API key; with `accepted_by`, records
/// that this person accepted the sending rules, which enables it.
pub async fn open(
    h: &Herald,
    new: &NewAccount,
    accepted_by: Option<&str>,
) -> Result<(Account, NewApiKey)> {
    Ok(crate::accounts::open(&h.accounts, new, accepted_by, h.clock.now()).await?)
}

/// Every account.
pub async fn list(h: &Herald) -> Result<Vec<Account>> {
    Ok(h.accounts.list().await?)
}

/// An account with its status totals (R-EVT-3).
pub async fn status(h: &Herald, account: u64) -> Result<(Account, Totals)> {
    Ok((
        h.accounts.get(account).await?,
        h.events.totals(account).await?,
    ))
}

/// Records that `by` accepted the sending rules for `account`, enabling it.
pub async fn accept_rules(h: &Herald, account: u64, by: &str) -> Result<Account> {
    Ok(h.accounts.accept_rules(account, by, h.clock.now()).await?)
}

/// Another API key for `account`, shown once.
pub async fn create_key(h: &Herald, account: u64) -> Result<NewApiKey> {
    Ok(crate::accounts::create_key(&h.accounts, account, h.clock.now()).await?)
}

/// Deletes `account` and all its data.
pub async fn delete(h: &Herald, account: u64) -> Result<()> {
    Ok(h.delete_account(account).await?)
}
