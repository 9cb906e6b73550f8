//! Accounts as the API uses them (R-ACC-1, R-ACC-2). The store is
//! herald-schedule's [`Accounts`]; this module adds what needs randomness,
//! hashing or DKIM: API keys (random 160-bit secrets, shown once, stored only
//! as their SHA-256) and the DKIM keys of sending domains (generated with
//! herald-auth), sealed at rest by the [`KeyVault`].

use crate::service::Error;
use crate::vault::KeyVault;
use chrono::{DateTime, Utc};
use data_encoding::{BASE32_NOPAD, HEXLOWER};
use herald_auth::{DkimKey, DkimSigner, KeyAlgorithm};
pub use herald_schedule::{Account, Accounts, Domain, NewAccount};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// A freshly created API key: the only time the key itself is available.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct NewApiKey {
    /// The key (`hk_` and 32 base32 characters). Shown once; store it.
    pub key: String,
    /// Its first characters, to recognise it later.
    pub prefix: String,
    /// The account it opens.
    pub account: u64,
}

/// The SHA-256 of an API key (or token), as stored and compared.
pub fn key_hash(key: &str) -> String {
    HEXLOWER.encode(&Sha256::digest(key.as_bytes()))
}

/// Creates an API key for account `id`; the key is in the answer only.
pub async fn create_key(store: &Accounts, id: u64, now: DateTime<Utc>) -> Result<NewApiKey, Error> {
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).map_err(|e| Error::Random(e.to_string()))?;
    let key = format!("hk_{}", BASE32_NOPAD.encode(&bytes).to_ascii_lowercase());
    let prefix: String = key.chars().take(9).collect();
    store.add_key(id, &key_hash(&key), &prefix, now).await?;
    Ok(NewApiKey {
        key,
        prefix,
        account: id,
    })
}

/// The account an API key opens, if any.
pub async fn authenticate(store: &Accounts, key: &str) -> Result<Option<u64>, Error> {
    if !key.starts_with("hk_") || key.len() > 100 {
        return Ok(None);
    }
    Ok(store.account_for_key(&key_hash(key)).await?)
}

/// Adds `domain` to account `id` with a new RSA-2048 DKIM key under
/// `selector`; adding it again returns the existing one unchanged.
pub async fn add_domain(
    store: &Accounts,
    vault: &KeyVault,
    id: u64,
    domain: &str,
    selector: &str,
) -> Result<Domain, Error> {
    let domain = herald_schedule::check_domain(domain)?;
    if let Some(d) = store.domain(id, &domain).await? {
        return Ok(d);
    }
    let key = herald_auth::generate_key(&domain, selector, KeyAlgorithm::Rsa2048)?;
    Ok(store
        .add_domain(
            id,
            &domain,
            &herald_schedule::DomainKey {
                selector: selector.to_owned(),
                private_key_pem: vault.seal(id, &domain, &key.private_key_pem)?,
                dns_name: key.dns_name,
                txt_record: key.txt_record,
            },
        )
        .await?)
}

/// Herald's key for account `id`'s domain (to compare with DNS).
pub async fn domain_key(
    store: &Accounts,
    vault: &KeyVault,
    id: u64,
    domain: &str,
) -> Result<Option<DkimKey>, Error> {
    match store.domain_key(id, domain, false).await? {
        Some((_, stored)) => Ok(Some(DkimKey::from_pem(&vault.open(id, domain, &stored)?)?)),
        None => Ok(None),
    }
}

/// The signer of account `id`'s domain, once it is verified.
pub async fn domain_signer(
    store: &Accounts,
    vault: &KeyVault,
    id: u64,
    domain: &str,
) -> Result<Option<DkimSigner>, Error> {
    match store.domain_key(id, domain, true).await? {
        Some((selector, stored)) => Ok(Some(DkimSigner::new(
            domain,
            &selector,
            DkimKey::from_pem(&vault.open(id, domain, &stored)?)?,
        )?)),
        None => Ok(None),
    }
}

/// Creates an account with its first API key; with `accepted_by`, records that
/// this person accepted the sending rules, which enables it. For the admin API
/// and `herald-server create-account`.
pub async fn open(
    store: &Accounts,
    new: &NewAccount,
    accepted_by: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(Account, NewApiKey), Error> {
    let mut account = store.create(new, now).await?;
    if let Some(by) = accepted_by {
        account = store.accept_rules(account.id, by, None, now).await?;
    }
    let key = create_key(store, account.id, now).await?;
    Ok((account, key))
}
