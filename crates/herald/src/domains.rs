//! Checking a customer's sending domain (R-AUTH-2 … R-AUTH-5) and reporting
//! the verdicts, with the records to publish, for a person to read.

use crate::auth::{DkimKey, Dns, DnsConfig, DomainChecker, DomainReport, PlatformAuth, Verdict};
use std::fmt::Write as _;

/// What to check and against which platform.
#[derive(Debug)]
pub struct DomainCheck<'a> {
    /// The customer's domain.
    pub domain: &'a str,
    /// The DKIM selector Herald signs with for this domain.
    pub selector: &'a str,
    /// Herald's key for the domain, to compare with what is published.
    pub key: Option<&'a DkimKey>,
    /// The envelope sender for SPF `check_host` (default `postmaster@<domain>`).
    pub mail_from: Option<&'a str>,
    /// The platform's SPF include, sending IPs and bounce domain.
    pub platform: PlatformAuth,
    /// Where DNS questions go.
    pub dns: DnsConfig,
}

/// Errors of the facade's operations.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From herald-auth.
    #[error(transparent)]
    Auth(#[from] crate::auth::Error),
}

/// Runs the SPF, DKIM and DMARC checks. Must run inside a Tokio runtime.
pub async fn check(params: DomainCheck<'_>) -> Result<DomainReport, Error> {
    let dns = Dns::new(&params.dns)?;
    let checker = DomainChecker::new(dns, params.platform);
    Ok(checker
        .check_domain(
            params.domain,
            params.selector,
            params.key.map(DkimKey::public_key),
            params.mail_from,
        )
        .await)
}

/// Whether `domain` is a domain name a check can be run for: two or more
/// labels of letters, digits and inner hyphens (underscores allowed), each 1
/// to 63 characters, 253 in all; a final dot is allowed.
pub fn valid_domain(domain: &str) -> bool {
    let d = domain.strip_suffix('.').unwrap_or(domain);
    d.len() <= 253
        && d.split('.').count() >= 2
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// The exit status of an operator's domain check: 0 when every check passes,
/// 1 when one fails, 75 (`EX_TEMPFAIL`) when DNS gave no answer.
pub fn exit_status(report: &DomainReport) -> u8 {
    let verdicts = [
        &report.spf.verdict,
        &report.dkim.verdict,
        &report.dmarc.verdict,
    ];
    if report.passed() {
        0
    } else if verdicts.iter().any(|v| matches!(v, Verdict::Fail(_))) {
        1
    } else {
        75
    }
}

fn line(out: &mut String, name: &str, verdict: &Verdict) {
    let _ = writeln!(
        out,
        "{name:<6} {:<9} {}",
        verdict.label().to_uppercase(),
        verdict.reason()
    );
}

/// The report as text: one line per check (`SPF    PASS   reason`), then the
/// records to publish where something is to be done.
pub fn render(report: &DomainReport) -> String {
    let mut out = format!("Domain {}\n", report.domain);
    line(&mut out, "SPF", &report.spf.verdict);
    for (ip, result) in &report.spf.ip_results {
        let _ = writeln!(out, "         check_host({ip}) = {result}");
    }
    for (ip, result) in &report.spf.helo_results {
        let _ = writeln!(out, "         check_host({ip}, HELO) = {result}");
    }
    line(&mut out, "DKIM", &report.dkim.verdict);
    line(&mut out, "DMARC", &report.dmarc.verdict);
    let spf_changes = report.spf.record.as_deref() != Some(report.spf.record_to_publish.as_str());
    if spf_changes || !report.dkim.verdict.passed() {
        out.push_str("\nRecords to publish:\n");
        if spf_changes {
            let _ = writeln!(
                out,
                "  {}  TXT  \"{}\"",
                report.domain, report.spf.record_to_publish
            );
        }
        if let Some(dkim) = report
            .dkim
            .record_to_publish
            .as_ref()
            .filter(|_| !report.dkim.verdict.passed())
        {
            let _ = writeln!(out, "  {}  TXT  \"{}\"", report.dkim.dns_name, dkim);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{DkimReport, DmarcReport, SpfReport};

    #[test]
    fn render_lists_verdicts_and_records_to_publish() {
        let report = DomainReport {
            domain: "shop.test".into(),
            spf: SpfReport {
                verdict: Verdict::Fail("no SPF record".into()),
                record: None,
                lookups: 0,
                ip_results: vec![],
                helo_results: vec![],
                record_to_publish: "v=spf1 include:spf.h.test ~all".into(),
            },
            dkim: DkimReport {
                verdict: Verdict::Pass("ok".into()),
                dns_name: "s._domainkey.shop.test".into(),
                published: None,
                record_to_publish: Some("v=DKIM1; k=rsa; p=X".into()),
            },
            dmarc: DmarcReport {
                verdict: Verdict::TempError("timeout".into()),
                record: None,
                policy: None,
                dkim_aligned: false,
                spf_aligned: false,
            },
        };
        let text = render(&report);
        assert!(text.contains("SPF    FAIL      no SPF record"), "{text}");
        assert!(text.contains("DMARC  TEMPERROR timeout"), "{text}");
        assert!(
            text.contains("shop.test  TXT  \"v=spf1 include:spf.h.test ~all\""),
            "{text}"
        );
        assert!(
            !text.contains("DKIM1"),
            "a passing DKIM key needs no record: {text}"
        );
    }
}
