//! DMARC records (RFC 7489) and identifier alignment (R-AUTH-4).

use serde::{Deserialize, Serialize};

/// The policy a domain asks receivers to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DmarcPolicy {
    /// `p=none`: report only.
    None,
    /// `p=quarantine`: treat failing mail as suspicious (spam folder).
    Quarantine,
    /// `p=reject`: refuse failing mail.
    Reject,
}

/// Relaxed (same organisational domain) or strict (same domain) alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Alignment {
    /// `r`, the default.
    Relaxed,
    /// `s`.
    Strict,
}

/// A parsed DMARC record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmarcRecord {
    /// `p=`.
    pub policy: DmarcPolicy,
    /// `sp=`, the policy for subdomains, if given.
    pub subdomain_policy: Option<DmarcPolicy>,
    /// `adkim=`.
    pub dkim_alignment: Alignment,
    /// `aspf=`.
    pub spf_alignment: Alignment,
    /// `pct=` (0 to 100, default 100).
    pub percent: u8,
}

fn policy(v: &str) -> Result<DmarcPolicy, String> {
    match v.to_ascii_lowercase().as_str() {
        "none" => Ok(DmarcPolicy::None),
        "quarantine" => Ok(DmarcPolicy::Quarantine),
        "reject" => Ok(DmarcPolicy::Reject),
        other => Err(format!(
            "`{other}` is not a DMARC policy (none, quarantine, reject)"
        )),
    }
}

fn alignment(tag: &str, v: &str) -> Result<Alignment, String> {
    match v.to_ascii_lowercase().as_str() {
        "r" => Ok(Alignment::Relaxed),
        "s" => Ok(Alignment::Strict),
        other => Err(format!("`{tag}={other}` must be `r` or `s`")),
    }
}

impl DmarcRecord {
    /// Whether a TXT record is a DMARC record.
    pub fn is_dmarc(txt: &str) -> bool {
        let t = txt.trim_start();
        t.get(..8)
            .is_some_and(|v| v.eq_ignore_ascii_case("v=DMARC1"))
            && t[8..].trim_start().chars().next().is_none_or(|c| c == ';')
    }

    /// Parses a record; the error names the tag at fault.
    pub fn parse(text: &str) -> Result<Self, String> {
        if !Self::is_dmarc(text) {
            return Err("the record does not start with `v=DMARC1`".into());
        }
        let mut record = DmarcRecord {
            policy: DmarcPolicy::None,
            subdomain_policy: None,
            dkim_alignment: Alignment::Relaxed,
            spf_alignment: Alignment::Relaxed,
            percent: 100,
        };
        let mut has_p = false;
        for tag in text
            .split(';')
            .skip(1)
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            let (name, value) = tag
                .split_once('=')
                .ok_or_else(|| format!("`{tag}` is not a tag=value pair"))?;
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "p" => {
                    record.policy = policy(value)?;
                    has_p = true;
                }
                "sp" => record.subdomain_policy = Some(policy(value)?),
                "adkim" => record.dkim_alignment = alignment("adkim", value)?,
                "aspf" => record.spf_alignment = alignment("aspf", value)?,
                "pct" => {
                    record.percent = value
                        .parse()
                        .ok()
                        .filter(|p| *p <= 100)
                        .ok_or_else(|| format!("`pct={value}` must be 0 to 100"))?;
                }
                _ => {}
            }
        }
        if !has_p {
            return Err("the required `p=` tag is missing".into());
        }
        Ok(record)
    }
}

/// The organisational domain (RFC 7489 §3.2) of `domain`, by the Public Suffix List.
pub(crate) fn organizational_domain(domain: &str) -> String {
    let lower = domain.trim_end_matches('.').to_ascii_lowercase();
    psl::domain_str(&lower).map_or(lower.clone(), str::to_owned)
}

/// Whether `a` and `b` align under `mode`.
pub(crate) fn aligned(a: &str, b: &str, mode: Alignment) -> bool {
    let (a, b) = (a.trim_end_matches('.'), b.trim_end_matches('.'));
    match mode {
        Alignment::Strict => a.eq_ignore_ascii_case(b),
        Alignment::Relaxed => organizational_domain(a) == organizational_domain(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records() {
        let r = DmarcRecord::parse(
            "v=DMARC1; p=reject; sp=quarantine; adkim=s; pct=50; rua=mailto:x@y.z",
        )
        .expect("valid");
        assert_eq!(r.policy, DmarcPolicy::Reject);
        assert_eq!(r.subdomain_policy, Some(DmarcPolicy::Quarantine));
        assert_eq!(r.dkim_alignment, Alignment::Strict);
        assert_eq!(r.spf_alignment, Alignment::Relaxed);
        assert_eq!(r.percent, 50);
        assert!(
            DmarcRecord::parse("v=DMARC1; rua=mailto:x@y.z")
                .unwrap_err()
                .contains("p=")
        );
        assert!(
            DmarcRecord::parse("v=DMARC1; p=maybe")
                .unwrap_err()
                .contains("maybe")
        );
    }

    #[test]
    fn alignment_uses_the_public_suffix_list() {
        assert!(aligned("mail.shop.co.uk", "shop.co.uk", Alignment::Relaxed));
        assert!(!aligned("other.co.uk", "shop.co.uk", Alignment::Relaxed));
        assert!(!aligned("mail.shop.co.uk", "shop.co.uk", Alignment::Strict));
        assert!(aligned("Shop.co.uk", "shop.co.uk.", Alignment::Strict));
    }
}
