//! Domain checks (R-AUTH-3, R-AUTH-4, R-AUTH-2 verification): is the customer's
//! domain ready for Herald to send as it? Every verdict is a value with a reason.

use crate::check_host::{SpfRequest, SpfResult, check_host};
use crate::dkim::{DkimPublicKey, KeyAlgorithm};
use crate::dmarc::{DmarcPolicy, DmarcRecord, aligned};
use crate::dns::{Dns, Lookup};
use crate::spf::{Querying, SpfRecord};
use serde::Serialize;
use std::collections::HashSet;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

/// The outcome of one check, with the reason in words. As JSON:
/// `{"result": "pass"|"fail"|"temperror", "reason": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", content = "reason", rename_all = "lowercase")]
pub enum Verdict {
    /// The check passed.
    Pass(String),
    /// The check failed; the domain's records need changing.
    Fail(String),
    /// DNS gave no answer now (timeout, SERVFAIL): nothing is known; try later.
    TempError(String),
}

impl Verdict {
    /// Whether this is [`Verdict::Pass`].
    pub fn passed(&self) -> bool {
        matches!(self, Verdict::Pass(_))
    }

    /// The reason.
    pub fn reason(&self) -> &str {
        match self {
            Verdict::Pass(r) | Verdict::Fail(r) | Verdict::TempError(r) => r,
        }
    }

    /// `pass`, `fail` or `temperror`.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Pass(_) => "pass",
            Verdict::Fail(_) => "fail",
            Verdict::TempError(_) => "temperror",
        }
    }
}

/// What the checks need to know about the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformAuth {
    /// The domain customers include in their SPF record, e.g. `spf.herald.example`.
    pub spf_include: String,
    /// The platform's sending IPs; `check_host` must pass for each.
    pub sending_ips: Vec<IpAddr>,
    /// The domain of the platform's envelope senders (for SPF alignment).
    pub bounce_domain: String,
    /// The name the platform's SMTP client gives in HELO/EHLO; when set, the
    /// HELO identity is checked too (RFC 7208 §2.3).
    pub helo: Option<String>,
}

/// The SPF check of a domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpfReport {
    /// Pass, fail or temperror, and why.
    pub verdict: Verdict,
    /// The domain's SPF record, if it has exactly one.
    pub record: Option<String>,
    /// DNS-querying terms counted over the record and its includes.
    pub lookups: usize,
    /// `check_host` result for each platform IP (`pass`, `softfail`, …),
    /// MAIL FROM identity: always one per IP, whatever else the check found.
    pub ip_results: Vec<(IpAddr, String)>,
    /// `check_host` result for each platform IP for the HELO identity, when
    /// the platform's HELO name is known.
    pub helo_results: Vec<(IpAddr, String)>,
    /// The one SPF record the domain should publish.
    pub record_to_publish: String,
}

/// The DKIM check of a domain and selector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DkimReport {
    /// Pass, fail or temperror, and why.
    pub verdict: Verdict,
    /// `<selector>._domainkey.<domain>`.
    pub dns_name: String,
    /// The published record, if any.
    pub published: Option<String>,
    /// The record to publish, when Herald's key is known.
    pub record_to_publish: Option<String>,
}

/// The DMARC check of a domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DmarcReport {
    /// Pass, fail or temperror, and why.
    pub verdict: Verdict,
    /// The DMARC record found (at the domain or its organisational domain).
    pub record: Option<String>,
    /// The policy that applies to the domain.
    pub policy: Option<DmarcPolicy>,
    /// Whether Herald's DKIM signature (`d=`) aligns with the From domain.
    pub dkim_aligned: bool,
    /// Whether Herald's envelope sender aligns with the From domain.
    pub spf_aligned: bool,
}

/// All three checks of a domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DomainReport {
    /// The domain checked.
    pub domain: String,
    /// SPF.
    pub spf: SpfReport,
    /// DKIM.
    pub dkim: DkimReport,
    /// DMARC.
    pub dmarc: DmarcReport,
}

impl DomainReport {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.spf.verdict.passed() && self.dkim.verdict.passed() && self.dmarc.verdict.passed()
    }
}

/// Runs the checks through one resolver.
#[derive(Debug)]
pub struct DomainChecker {
    dns: Dns,
    platform: PlatformAuth,
}

const LOOKUP_LIMIT: usize = 10;

#[derive(Default)]
struct Walk {
    lookups: usize,
    platform_path: Option<Vec<String>>,
    problems: Vec<String>,
    temp: Option<String>,
    visited: HashSet<String>,
}

impl DomainChecker {
    /// A checker asking `dns`, for `platform`.
    pub fn new(dns: Dns, platform: PlatformAuth) -> Self {
        DomainChecker { dns, platform }
    }

    /// The SPF records (`v=spf1`) at `domain`.
    async fn spf_records(&self, domain: &str) -> Lookup<Vec<String>> {
        match self.dns.txt(domain).await {
            Lookup::Found(txts) => {
                let spf: Vec<String> = txts.into_iter().filter(|t| SpfRecord::is_spf(t)).collect();
                if spf.is_empty() {
                    Lookup::NotFound
                } else {
                    Lookup::Found(spf)
                }
            }
            other => other,
        }
    }

    fn walk<'a>(
        &'a self,
        record: SpfRecord,
        path: Vec<String>,
        walk: &'a mut Walk,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            for term in record.querying_terms() {
                walk.lookups += 1;
                let target = match term {
                    Querying::Include(d) | Querying::Redirect(d) => d,
                    Querying::Other => continue,
                };
                let mut here = path.clone();
                here.push(target.clone());
                if target.eq_ignore_ascii_case(&self.platform.spf_include)
                    && walk.platform_path.is_none()
                {
                    walk.platform_path = Some(here.clone());
                }
                if walk.lookups > LOOKUP_LIMIT
                    || target.contains('%')
                    || !walk.visited.insert(target.to_ascii_lowercase())
                {
                    continue;
                }
                match self.spf_records(&target).await {
                    Lookup::Found(records) if records.len() == 1 => {
                        match SpfRecord::parse(&records[0]) {
                            Ok(r) => self.walk(r, here, walk).await,
                            Err(why) => walk
                                .problems
                                .push(format!("the record of {target} is invalid: {why}")),
                        }
                    }
                    Lookup::Found(records) => walk.problems.push(format!(
                        "{target} has {} SPF records (permerror)",
                        records.len()
                    )),
                    Lookup::NotFound => walk
                        .problems
                        .push(format!("{target} has no SPF record (permerror)")),
                    Lookup::TempError(e) => walk.temp = Some(format!("looking up {target}: {e}")),
                }
            }
        })
    }

    /// The SPF check (R-AUTH-3): one valid record, at most 10 DNS-querying
    /// terms, the platform included directly or through nested includes, and
    /// `check_host` (RFC 7208, [`crate::check_host()`]) passing for each
    /// platform IP with `mail_from` (default `postmaster@<domain>`) as sender,
    /// and for the HELO identity when the platform's HELO name is known.
    /// Each IP's result is reported whatever else the check finds.
    pub async fn check_spf(&self, domain: &str, mail_from: Option<&str>) -> SpfReport {
        let mut report = self.spf_report(domain, mail_from).await;
        // `.invalid` never resolves (RFC 2606): the operator has not set the
        // platform's SPF domain. Said first, unless DNS gave no answer at all.
        let include = &self.platform.spf_include;
        if include.to_ascii_lowercase().ends_with(".invalid")
            && let Verdict::Fail(why) | Verdict::Pass(why) = &report.verdict
        {
            report.verdict = Verdict::Fail(format!(
                "the platform's SPF domain is not configured (it is `{include}`, which cannot exist): set `domains.spf_include` (check-domain: `--platform-spf`) to the domain whose SPF record lists the platform's sending IPs; {why}"
            ));
        }
        report
    }

    async fn spf_report(&self, domain: &str, mail_from: Option<&str>) -> SpfReport {
        let include = &self.platform.spf_include;
        let fresh = format!("v=spf1 include:{include} ~all");
        let default_sender = format!("postmaster@{domain}");
        let sender = mail_from.unwrap_or(&default_sender);
        let helo_name = self.platform.helo.clone().unwrap_or_default();
        let mut ip_results = Vec::new();
        let mut helo_results = Vec::new();
        let mut ip_problems = Vec::new();
        let mut temp = None;
        // Each identity's result for each IP: kept, and a temperror or a
        // result other than pass noted for the verdict.
        let mut note = |what: String, out: crate::check_host::SpfOutcome| match out.result {
            SpfResult::Pass => {}
            SpfResult::TempError => temp = Some(format!("{what} = temperror: {}", out.why)),
            other => ip_problems.push(format!("{what} = {other}, not pass ({})", out.why)),
        };
        for ip in &self.platform.sending_ips {
            let mut request = SpfRequest::mail_from(*ip, sender, &helo_name);
            request.domain = domain.to_owned();
            let out = check_host(&self.dns, &request).await;
            ip_results.push((*ip, out.result.as_str().to_owned()));
            note(format!("check_host({ip}, {sender})"), out);
            if let Some(helo) = &self.platform.helo {
                let out = check_host(&self.dns, &SpfRequest::helo(*ip, helo)).await;
                helo_results.push((*ip, out.result.as_str().to_owned()));
                note(format!("check_host({ip}, HELO {helo})"), out);
            }
        }
        let mut report = SpfReport {
            verdict: Verdict::Pass(String::new()),
            record: None,
            lookups: 0,
            ip_results,
            helo_results,
            record_to_publish: fresh.clone(),
        };
        if !crate::valid_dns_name(domain) || !domain.contains('.') {
            report.verdict = Verdict::Fail(format!("`{domain}` is not a domain name"));
            return report;
        }

        let records = match self.spf_records(domain).await {
            Lookup::Found(r) => r,
            Lookup::NotFound => {
                report.verdict = Verdict::Fail(format!("{domain} has no SPF record; publish one"));
                return report;
            }
            Lookup::TempError(e) => {
                report.verdict =
                    Verdict::TempError(format!("DNS gave no answer for {domain}: {e}"));
                return report;
            }
        };
        if records.len() > 1 {
            let parsed: Vec<SpfRecord> = records
                .iter()
                .filter_map(|r| SpfRecord::parse(r).ok())
                .collect();
            if !parsed.is_empty() {
                report.record_to_publish = SpfRecord::merged_with_include(&parsed, include);
            }
            report.verdict = Verdict::Fail(format!(
                "{domain} has {} SPF records; more than one is a permerror (RFC 7208 §4.5): merge them into the one record below",
                records.len()
            ));
            return report;
        }
        report.record = Some(records[0].clone());
        let record = match SpfRecord::parse(&records[0]) {
            Ok(r) => r,
            Err(why) => {
                report.verdict = Verdict::Fail(format!(
                    "the SPF record of {domain} is invalid (permerror): {why}"
                ));
                return report;
            }
        };
        report.record_to_publish = record.with_include(include);
        let mut walk = Walk::default();
        walk.visited.insert(domain.to_ascii_lowercase());
        self.walk(record, Vec::new(), &mut walk).await;
        report.lookups = walk.lookups;
        if let Some(e) = walk.temp.or(temp) {
            report.verdict = Verdict::TempError(format!("DNS gave no answer: {e}"));
            return report;
        }
        let mut fails = walk.problems;
        if walk.lookups > LOOKUP_LIMIT {
            fails.push(format!(
                "{} DNS-querying terms (include, a, mx, ptr, exists, redirect), over the limit of {LOOKUP_LIMIT} (RFC 7208 §4.6.4)",
                walk.lookups
            ));
        }
        if walk.platform_path.is_some() {
            // Already authorised through nested includes: keep the record as it is.
            report.record_to_publish = records[0].trim().to_owned();
        }
        let via = match &walk.platform_path {
            Some(path) if path.len() == 1 => format!("includes {include} directly"),
            Some(path) => format!(
                "includes {include} through {}",
                path[..path.len() - 1].join(" → ")
            ),
            None => {
                fails.push(format!(
                    "does not include {include}, directly or through its includes"
                ));
                String::new()
            }
        };
        fails.extend(ip_problems);
        report.verdict = if fails.is_empty() {
            let ips = if report.ip_results.is_empty() {
                String::new()
            } else {
                format!(
                    "; check_host passes for {}",
                    report
                        .ip_results
                        .iter()
                        .map(|(ip, _)| ip.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            Verdict::Pass(format!(
                "one valid SPF record with {} DNS-querying terms; {via}{ips}",
                walk.lookups
            ))
        } else {
            Verdict::Fail(fails.join("; "))
        };
        report
    }

    /// The DKIM check: a key is published at `<selector>._domainkey.<domain>`
    /// and, when `ours` is given, it is that key.
    pub async fn check_dkim(
        &self,
        domain: &str,
        selector: &str,
        ours: Option<&DkimPublicKey>,
    ) -> DkimReport {
        let dns_name = format!("{selector}._domainkey.{domain}");
        let mut report = DkimReport {
            verdict: Verdict::Pass(String::new()),
            dns_name: dns_name.clone(),
            published: None,
            record_to_publish: ours.map(DkimPublicKey::txt_record),
        };
        let records = match self.dns.txt(&dns_name).await {
            Lookup::Found(r) => r,
            Lookup::NotFound => {
                report.verdict = Verdict::Fail(format!("no DKIM key is published at {dns_name}"));
                return report;
            }
            Lookup::TempError(e) => {
                report.verdict =
                    Verdict::TempError(format!("DNS gave no answer for {dns_name}: {e}"));
                return report;
            }
        };
        let tags = |r: &str| -> Vec<(String, String)> {
            r.split(';')
                .filter_map(|t| t.split_once('='))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect()
        };
        let Some((text, tags)) = records
            .iter()
            .map(|r| (r, tags(r)))
            .find(|(_, t)| t.iter().any(|(k, _)| k == "p"))
        else {
            report.verdict = Verdict::Fail(format!(
                "the TXT record at {dns_name} is not a DKIM key (no p= tag)"
            ));
            return report;
        };
        report.published = Some(text.clone());
        let p = tags
            .iter()
            .find(|(k, _)| k == "p")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        let k = tags
            .iter()
            .find(|(k, _)| k == "k")
            .map_or("rsa", |(_, v)| v.as_str())
            .to_ascii_lowercase();
        if p.is_empty() {
            report.verdict = Verdict::Fail(format!("the key at {dns_name} is revoked (empty p=)"));
            return report;
        }
        report.verdict = match ours {
            None => Verdict::Pass(format!(
                "a k={k} key is published at {dns_name} (not compared: no key given)"
            )),
            Some(ours) => {
                let our_k = match ours.algorithm {
                    KeyAlgorithm::Rsa2048 => "rsa",
                    KeyAlgorithm::Ed25519 => "ed25519",
                };
                if k != our_k {
                    Verdict::Fail(format!(
                        "the key at {dns_name} is k={k}, Herald's is k={our_k}: publish the record below"
                    ))
                } else if ours.matches_published(p) {
                    Verdict::Pass(format!("the key at {dns_name} is Herald's key"))
                } else {
                    Verdict::Fail(format!(
                        "the key at {dns_name} does not match Herald's key: publish the record below"
                    ))
                }
            }
        };
        report
    }

    /// The DMARC check (R-AUTH-4): the policy of `domain` (or of its
    /// organisational domain) and whether Herald's mail — signed with
    /// `d=dkim_domain`, sent from the platform's bounce domain — aligns.
    pub async fn check_dmarc(&self, domain: &str, dkim_domain: &str) -> DmarcReport {
        let mut report = DmarcReport {
            verdict: Verdict::Pass(String::new()),
            record: None,
            policy: None,
            dkim_aligned: false,
            spf_aligned: false,
        };
        let org = crate::dmarc::organizational_domain(domain);
        let mut names = vec![format!("_dmarc.{domain}")];
        if !org.eq_ignore_ascii_case(domain) {
            names.push(format!("_dmarc.{org}"));
        }
        let mut found = None;
        for (i, name) in names.iter().enumerate() {
            match self.dns.txt(name).await {
                Lookup::Found(txts) => {
                    if let Some(t) = txts.into_iter().find(|t| DmarcRecord::is_dmarc(t)) {
                        found = Some((t, i > 0));
                        break;
                    }
                }
                Lookup::NotFound => {}
                Lookup::TempError(e) => {
                    report.verdict =
                        Verdict::TempError(format!("DNS gave no answer for {name}: {e}"));
                    return report;
                }
            }
        }
        let Some((text, inherited)) = found else {
            report.verdict = Verdict::Pass(format!(
                "{domain} publishes no DMARC policy; receivers apply none"
            ));
            return report;
        };
        report.record = Some(text.clone());
        let record = match DmarcRecord::parse(&text) {
            Ok(r) => r,
            Err(why) => {
                report.verdict =
                    Verdict::Fail(format!("the DMARC record of {domain} is invalid: {why}"));
                return report;
            }
        };
        let policy = if inherited {
            record.subdomain_policy.unwrap_or(record.policy)
        } else {
            record.policy
        };
        report.policy = Some(policy);
        report.dkim_aligned = aligned(dkim_domain, domain, record.dkim_alignment);
        report.spf_aligned = aligned(&self.platform.bounce_domain, domain, record.spf_alignment);
        let p = match policy {
            DmarcPolicy::None => "none",
            DmarcPolicy::Quarantine => "quarantine",
            DmarcPolicy::Reject => "reject",
        };
        report.verdict = if report.dkim_aligned || report.spf_aligned {
            let how = if report.dkim_aligned {
                format!("DKIM (d={dkim_domain})")
            } else {
                format!("SPF ({})", self.platform.bounce_domain)
            };
            Verdict::Pass(format!("p={p}; Herald's mail aligns through {how}"))
        } else if policy == DmarcPolicy::None {
            Verdict::Pass(format!(
                "p=none: receivers only report; Herald's mail (d={dkim_domain}) does not align yet"
            ))
        } else {
            Verdict::Fail(format!(
                "p={p} and Herald's mail does not align (DKIM d={dkim_domain}, envelope {}): receivers would {p} it; verify the domain so mail is signed with d={domain}",
                self.platform.bounce_domain
            ))
        };
        report
    }

    /// All three checks; DMARC alignment is judged for mail signed with the
    /// domain's own key (`d=<domain>`), as it is once the domain is verified.
    pub async fn check_domain(
        &self,
        domain: &str,
        selector: &str,
        ours: Option<&DkimPublicKey>,
        mail_from: Option<&str>,
    ) -> DomainReport {
        DomainReport {
            domain: domain.to_owned(),
            spf: self.check_spf(domain, mail_from).await,
            dkim: self.check_dkim(domain, selector, ours).await,
            dmarc: self.check_dmarc(domain, domain).await,
        }
    }
}
