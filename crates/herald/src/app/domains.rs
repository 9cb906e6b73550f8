//! Sending domains (R-ACC-2): a domain added with its own DKIM key, checked
//! against DNS, verified only when SPF, DKIM and DMARC pass and no other
//! account holds it; the account's cached signers forgotten when that changes.

use super::{Error, Result};
use crate::accounts::Domain;
use crate::service::Herald;

/// Adds `domain` to `account` with a new DKIM key under the configured
/// selector; adding it again returns the existing one unchanged.
pub async fn add(h: &Herald, account: u64, domain: &str) -> Result<Domain> {
    Ok(crate::accounts::add_domain(
        &h.accounts,
        &h.vault,
        account,
        domain,
        &h.config.domains.selector,
    )
    .await?)
}

/// The domains of `account`.
pub async fn list(h: &Herald, account: u64) -> Result<Vec<Domain>> {
    Ok(h.accounts.domains(account).await?)
}

/// A domain check's outcome.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The domain, with `verified` updated.
    pub domain: Domain,
    /// SPF, DKIM and DMARC verdicts with reasons and the records to publish.
    pub report: herald_auth::DomainReport,
}

/// Checks `domain` of `account` in DNS and records whether it is verified.
pub async fn check(h: &Herald, account: u64, domain: &str) -> Result<Checked> {
    let d = h
        .accounts
        .domain(account, domain)
        .await?
        .ok_or(Error::NotFound { what: "domain" })?;
    let key = crate::accounts::domain_key(&h.accounts, &h.vault, account, &d.domain).await?;
    let c = &h.config.domains;
    let report = crate::domains::check(crate::domains::DomainCheck {
        domain: &d.domain,
        selector: &d.selector,
        key: key.as_ref(),
        mail_from: None,
        platform: herald_auth::PlatformAuth {
            spf_include: c.spf_include.clone(),
            sending_ips: c.sending_ips.clone(),
            bounce_domain: h.config.platform.bounce_domain.clone(),
            helo: None,
        },
        dns: herald_auth::DnsConfig {
            nameserver: c.nameserver,
            timeout: std::time::Duration::from_secs(c.dns_timeout_secs),
            attempts: 2,
        },
    })
    .await
    .map_err(|e| Error::Unavailable(e.to_string()))?;
    h.accounts
        .set_verified(account, &d.domain, report.passed(), h.clock.now())
        .await?;
    h.forget_signers(account);
    let domain = h
        .accounts
        .domain(account, &d.domain)
        .await?
        .ok_or(Error::NotFound { what: "domain" })?;
    Ok(Checked { domain, report })
}
