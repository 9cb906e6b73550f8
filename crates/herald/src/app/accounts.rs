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

/// Records that `by` accepted the sending rules for `account`, enabling it;
/// the account takes `language` (a tag such as `fr-CA`), that person's, when
/// Herald is written in it (else English).
pub async fn accept_rules(
    h: &Herald,
    account: u64,
    by: &str,
    language: Option<&str>,
) -> Result<Account> {
    if let Some(tag) = language {
        super::dashboard::check_language_tag("language", tag)?;
    }
    let language = language.map(|l| super::dashboard::language_of(l).code());
    Ok(h.accounts
        .accept_rules(account, by, language, h.clock.now())
        .await?)
}

/// Sets `account`'s plan (the operator's call). When the new plan does not
/// include the dashboard, every dashboard session of the account ends now.
pub async fn set_plan(h: &Herald, account: u64, plan: &str) -> Result<Account> {
    let a = h.accounts.set_plan(account, plan).await?;
    if !super::dashboard::includes_dashboard(h, &a.plan) {
        h.outbox.sessions().end_all(account).await?;
    }
    Ok(a)
}

/// Another API key for `account`, shown once.
pub async fn create_key(h: &Herald, account: u64) -> Result<NewApiKey> {
    Ok(crate::accounts::create_key(&h.accounts, account, h.clock.now()).await?)
}

/// Deletes `account` and all its data.
pub async fn delete(h: &Herald, account: u64) -> Result<()> {
    Ok(h.delete_account(account).await?)
}
