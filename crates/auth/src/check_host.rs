//! SPF's `check_host()` (RFC 7208 §4-§8): the result of an SPF record for a
//! client IP, a domain and a sender, over any DNS that answers the questions
//! SPF asks ([`SpfDns`]; herald-auth's [`crate::Dns`] is one).
//!
//! Written for Herald after measuring the candidates on the openspf RFC 7208
//! test suite (`tests/data/spf/rfc7208-tests.yml`): mail-auth 0.13, the
//! evaluator Herald used before, accepts invalid records, never matches PTR
//! names equal to the domain, treats IPv4-mapped IPv6 clients and `ip6:…/0`
//! wrongly, lacks the void-lookup limit and calls unparsable names a
//! temperror: it gets 114 of the suite's 203 results right, this one all 203
//! (`tests/it/spf_suite.rs` measures both). This one follows the RFC's ABNF
//! and limits: the whole record is parsed before anything is evaluated, and
//! a syntax error anywhere is a permerror.

use crate::dns::Lookup;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::pin::Pin;

/// The result of `check_host()` (RFC 7208 §2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpfResult {
    /// No SPF record, or the domain cannot be checked (not a valid name).
    None,
    /// The record says nothing about this IP.
    Neutral,
    /// Authorised.
    Pass,
    /// Not authorised.
    Fail,
    /// Not authorised, weakly.
    SoftFail,
    /// A DNS error: try later.
    TempError,
    /// The record (or one it includes) is broken or over a limit.
    PermError,
}

impl SpfResult {
    /// Its name in RFC 7208 (`pass`, `permerror`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            SpfResult::None => "none",
            SpfResult::Neutral => "neutral",
            SpfResult::Pass => "pass",
            SpfResult::Fail => "fail",
            SpfResult::SoftFail => "softfail",
            SpfResult::TempError => "temperror",
            SpfResult::PermError => "permerror",
        }
    }
}

impl std::fmt::Display for SpfResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `check_host()` found: the result, why, and for a fail the
/// explanation the domain published (`exp=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpfOutcome {
    /// The result.
    pub result: SpfResult,
    /// Why, for people: the mechanism that matched, or the error.
    pub why: String,
    /// For a fail: the domain's explanation, macro-expanded.
    pub explanation: Option<String>,
}

/// The DNS questions SPF asks. Each answer is found, not found (NXDOMAIN or
/// no record of the type: a "void lookup"), or a temporary error.
pub trait SpfDns: Sync {
    /// TXT records at `name`, each record's strings joined.
    fn txt(&self, name: &str) -> impl Future<Output = Lookup<Vec<String>>> + Send;
    /// A records at `name`.
    fn a(&self, name: &str) -> impl Future<Output = Lookup<Vec<Ipv4Addr>>> + Send;
    /// AAAA records at `name`.
    fn aaaa(&self, name: &str) -> impl Future<Output = Lookup<Vec<Ipv6Addr>>> + Send;
    /// MX exchanges of `name`, most preferred first.
    fn mx(&self, name: &str) -> impl Future<Output = Lookup<Vec<String>>> + Send;
    /// PTR names of `ip`.
    fn ptr(&self, ip: IpAddr) -> impl Future<Output = Lookup<Vec<String>>> + Send;
}

/// The identity and the session being checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpfRequest {
    /// The SMTP client's address.
    pub ip: IpAddr,
    /// The domain whose policy is checked (MAIL FROM's domain, or the HELO name).
    pub domain: String,
    /// The sender (`local@domain`); with no local part, `postmaster` is used.
    pub sender: String,
    /// The HELO/EHLO name (`%{h}`).
    pub helo: String,
    /// The receiving host's name (`%{r}` in explanations).
    pub receiver: String,
    /// Seconds since the epoch (`%{t}` in explanations).
    pub now: u64,
}

impl SpfRequest {
    /// The MAIL FROM identity (RFC 7208 §2.4): `mail_from`'s domain, or,
    /// with an empty MAIL FROM, the HELO identity.
    pub fn mail_from(ip: IpAddr, mail_from: &str, helo: &str) -> Self {
        if mail_from.trim().is_empty() {
            return Self::helo(ip, helo);
        }
        let (local, domain) = mail_from.rsplit_once('@').unwrap_or(("", mail_from));
        let local = if local.is_empty() {
            "postmaster"
        } else {
            local
        };
        SpfRequest {
            ip,
            domain: domain.to_owned(),
            sender: format!("{local}@{domain}"),
            helo: helo.to_owned(),
            receiver: "unknown".into(),
            now: 0,
        }
    }

    /// The HELO identity (RFC 7208 §2.3): the HELO name, with
    /// `postmaster@<helo>` as sender.
    pub fn helo(ip: IpAddr, helo: &str) -> Self {
        SpfRequest {
            ip,
            domain: helo.to_owned(),
            sender: format!("postmaster@{helo}"),
            helo: helo.to_owned(),
            receiver: "unknown".into(),
            now: 0,
        }
    }
}

/// DNS-querying terms allowed per check (RFC 7208 §4.6.4).
pub const LOOKUP_LIMIT: u32 = 10;
/// Void lookups allowed per check (RFC 7208 §4.6.4).
pub const VOID_LIMIT: u32 = 2;

/// Runs `check_host()` for `request` over `dns`.
pub async fn check_host<D: SpfDns>(dns: &D, request: &SpfRequest) -> SpfOutcome {
    let ip = match request.ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(request.ip, IpAddr::V4),
        v4 => v4,
    };
    let mut eval = Eval {
        dns,
        request,
        ip,
        lookups: 0,
        voids: 0,
    };
    let domain = request.domain.trim_end_matches('.').to_owned();
    eval.run(domain, 0).await
}

struct Eval<'a, D> {
    dns: &'a D,
    request: &'a SpfRequest,
    ip: IpAddr,
    lookups: u32,
    voids: u32,
}

type Boxed<'b> = Pin<Box<dyn Future<Output = SpfOutcome> + Send + 'b>>;

fn outcome(result: SpfResult, why: impl Into<String>) -> SpfOutcome {
    SpfOutcome {
        result,
        why: why.into(),
        explanation: None,
    }
}

/// Why a term is not valid SPF, for a permerror.
type Syntax = String;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Qualifier {
    Pass,
    Fail,
    SoftFail,
    Neutral,
}

impl Qualifier {
    fn result(self) -> SpfResult {
        match self {
            Qualifier::Pass => SpfResult::Pass,
            Qualifier::Fail => SpfResult::Fail,
            Qualifier::SoftFail => SpfResult::SoftFail,
            Qualifier::Neutral => SpfResult::Neutral,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Mechanism {
    All,
    Include(String),
    A(Option<String>, u8, u8),
    Mx(Option<String>, u8, u8),
    Ptr(Option<String>),
    Ip4(Ipv4Addr, u8),
    Ip6(Ipv6Addr, u8),
    Exists(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Record {
    mechanisms: Vec<(Qualifier, Mechanism, String)>,
    redirect: Option<String>,
    exp: Option<String>,
}

/// Whether a TXT record is an SPF record: `v=spf1` then a space or the end.
pub fn is_spf_record(txt: &str) -> bool {
    txt.get(..6)
        .is_some_and(|v| v.eq_ignore_ascii_case("v=spf1"))
        && txt[6..].chars().next().is_none_or(|c| c == ' ')
}

/// Checks that a record follows RFC 7208's grammar; the error names the term.
pub fn validate_record(text: &str) -> Result<(), String> {
    parse_record(text).map(|_| ())
}

fn parse_record(text: &str) -> Result<Record, Syntax> {
    if !is_spf_record(text) {
        return Err("the record does not start with `v=spf1`".into());
    }
    let mut record = Record::default();
    for term in text[6..].split(' ').filter(|t| !t.is_empty()) {
        parse_term(term, &mut record).map_err(|why| format!("`{term}`: {why}"))?;
    }
    Ok(record)
}

fn parse_term(term: &str, record: &mut Record) -> Result<(), Syntax> {
    if !term.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err("only visible ASCII characters may appear in a term".into());
    }
    let (qualifier, body) = match term.as_bytes()[0] {
        b'+' => (Some(Qualifier::Pass), &term[1..]),
        b'-' => (Some(Qualifier::Fail), &term[1..]),
        b'~' => (Some(Qualifier::SoftFail), &term[1..]),
        b'?' => (Some(Qualifier::Neutral), &term[1..]),
        _ => (None, term),
    };
    let name_end = body.find([':', '/', '=']).unwrap_or(body.len());
    let name = body[..name_end].to_ascii_lowercase();
    let rest = &body[name_end..];
    // A modifier: name "=" macro-string (no qualifier).
    if let Some(value) = rest.strip_prefix('=') {
        if qualifier.is_some() {
            return Err("a modifier takes no qualifier".into());
        }
        let valid_name = name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid_name {
            return Err("not a mechanism or modifier name".into());
        }
        match name.as_str() {
            "redirect" | "exp" => {
                check_domain_spec(value)?;
                let slot = if name == "redirect" {
                    &mut record.redirect
                } else {
                    &mut record.exp
                };
                if slot.is_some() {
                    return Err(format!("`{name}=` appears more than once"));
                }
                *slot = Some(value.to_owned());
            }
            _ => check_macro_string(value, false)?,
        }
        return Ok(());
    }
    let qualifier = qualifier.unwrap_or(Qualifier::Pass);
    let arg = |rest: &str| -> Result<String, Syntax> {
        let spec = rest
            .strip_prefix(':')
            .ok_or_else(|| "a domain is required after `:`".to_owned())?;
        check_domain_spec(spec)?;
        Ok(spec.to_owned())
    };
    let mechanism = match name.as_str() {
        "all" if rest.is_empty() => Mechanism::All,
        "include" => Mechanism::Include(arg(rest)?),
        "exists" => Mechanism::Exists(arg(rest)?),
        "a" | "mx" => {
            let (spec, v4, v6) = split_dual_cidr(rest)?;
            let domain = match spec {
                "" => None,
                s => Some(arg(s)?),
            };
            if name == "a" {
                Mechanism::A(domain, v4, v6)
            } else {
                Mechanism::Mx(domain, v4, v6)
            }
        }
        "ptr" => Mechanism::Ptr(if rest.is_empty() {
            None
        } else {
            Some(arg(rest)?)
        }),
        "ip4" => {
            let v = rest.strip_prefix(':').ok_or("an address is required")?;
            let (addr, len) = v.split_once('/').map_or((v, None), |(a, l)| (a, Some(l)));
            let addr = parse_ip4(addr).ok_or("not an IPv4 address")?;
            let len = match len {
                None => 32,
                Some(l) => cidr(l, 32)?,
            };
            Mechanism::Ip4(addr, len)
        }
        "ip6" => {
            let v = rest.strip_prefix(':').ok_or("an address is required")?;
            let (addr, len) = v.split_once('/').map_or((v, None), |(a, l)| (a, Some(l)));
            let addr: Ipv6Addr = addr.parse().map_err(|_| "not an IPv6 address")?;
            let len = match len {
                None => 128,
                Some(l) => cidr(l, 128)?,
            };
            Mechanism::Ip6(addr, len)
        }
        _ => return Err("unknown mechanism".into()),
    };
    record
        .mechanisms
        .push((qualifier, mechanism, term.to_owned()));
    Ok(())
}

/// A dotted-quad IPv4 address (no leading zeros beyond a lone 0).
fn parse_ip4(text: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() != 4
        || parts
            .iter()
            .any(|p| p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    text.parse().ok()
}

/// A CIDR length: digits without a leading zero, at most `max`.
fn cidr(text: &str, max: u8) -> Result<u8, Syntax> {
    let valid = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'))
        && text.len() <= 3;
    let n: u16 = if valid {
        text.parse().unwrap_or(999)
    } else {
        999
    };
    u8::try_from(n)
        .ok()
        .filter(|n| *n <= max)
        .ok_or_else(|| format!("`/{text}` is not a prefix length of 0 to {max}"))
}

/// Splits `[":" domain-spec] [dual-cidr-length]` into its parts.
fn split_dual_cidr(rest: &str) -> Result<(&str, u8, u8), Syntax> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mut spec = rest;
    let mut v6 = 128;
    if let Some(i) = spec.rfind("//")
        && digits(&spec[i + 2..])
    {
        v6 = cidr(&spec[i + 2..], 128)?;
        spec = &spec[..i];
    }
    let mut v4 = 32;
    if let Some(i) = spec.rfind('/')
        && digits(&spec[i + 1..])
    {
        v4 = cidr(&spec[i + 1..], 32)?;
        spec = &spec[..i];
    }
    if spec.contains("//") || (spec.starts_with('/') && !spec.is_empty()) {
        return Err("not a valid prefix length".into());
    }
    Ok((spec, v4, v6))
}

/// `domain-spec = macro-string domain-end` (RFC 7208 §7.1).
fn check_domain_spec(spec: &str) -> Result<(), Syntax> {
    if spec.is_empty() {
        return Err("the domain is empty".into());
    }
    check_macro_string(spec, false)?;
    if spec.ends_with('}') && macro_ends(spec) {
        return Ok(());
    }
    let trimmed = spec.strip_suffix('.').unwrap_or(spec);
    let (before, top) = trimmed
        .rsplit_once('.')
        .ok_or_else(|| "the domain needs a top label (`.example`)".to_owned())?;
    let _ = before;
    if is_toplabel(top) {
        Ok(())
    } else {
        Err(format!("`{top}` is not a valid top label"))
    }
}

/// Whether `spec` ends with a complete macro-expand `%{…}`.
fn macro_ends(spec: &str) -> bool {
    spec.rfind("%{").is_some_and(|i| {
        let inner = &spec[i + 2..spec.len() - 1];
        !inner.contains('}') && !escaped_percent_before(spec, i)
    })
}

/// Whether the `%` at byte `i` is itself the second half of a `%%`.
fn escaped_percent_before(s: &str, i: usize) -> bool {
    let run = s[..i].bytes().rev().take_while(|b| *b == b'%').count();
    run % 2 == 1
}

fn is_toplabel(label: &str) -> bool {
    let b = label.as_bytes();
    if b.is_empty() || b.len() > 63 || !b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-') {
        return false;
    }
    let alnum_ends = b[0].is_ascii_alphanumeric() && b[b.len() - 1].is_ascii_alphanumeric();
    let has_alpha = b.iter().any(|c| c.is_ascii_alphabetic());
    let has_dash = b.contains(&b'-');
    (!has_dash && has_alpha) || (has_dash && alnum_ends)
}

/// Checks a macro-string's escapes; `explain` allows `c`, `r`, `t` and spaces.
fn check_macro_string(s: &str, explain: bool) -> Result<(), Syntax> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            match b.get(i + 1) {
                Some(b'%' | b'_' | b'-') => i += 2,
                Some(b'{') => {
                    let end = s[i..]
                        .find('}')
                        .map(|e| i + e)
                        .ok_or("a macro `%{` is not closed")?;
                    parse_macro(&s[i + 2..end], explain)?;
                    i = end + 1;
                }
                _ => return Err("`%` must be followed by `{`, `%`, `_` or `-`".into()),
            }
        } else {
            if !((0x21..=0x7e).contains(&b[i]) || explain && b[i] == b' ') {
                return Err("a character that SPF does not allow".into());
            }
            i += 1;
        }
    }
    Ok(())
}

struct MacroSpec {
    letter: u8,
    upper: bool,
    keep: Option<usize>,
    reverse: bool,
    delimiters: Vec<char>,
}

fn parse_macro(inner: &str, explain: bool) -> Result<MacroSpec, Syntax> {
    let mut chars = inner.chars();
    let letter = chars.next().ok_or("an empty macro")?;
    let lower = letter.to_ascii_lowercase();
    let allowed = if explain { "slodiphvcrt" } else { "slodiphv" };
    if !letter.is_ascii_alphabetic() || !allowed.contains(lower) {
        return Err(format!("`%{{{letter}` is not a macro letter here"));
    }
    let rest: String = chars.collect();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let mut tail = &rest[digits.len()..];
    let keep = if digits.is_empty() {
        None
    } else {
        let n: usize = digits
            .parse()
            .map_err(|_| "a macro's digits are too large")?;
        if n == 0 {
            return Err("a macro cannot keep zero parts".into());
        }
        Some(n)
    };
    let reverse = tail.starts_with(['r', 'R']);
    if reverse {
        tail = &tail[1..];
    }
    if !tail.chars().all(|c| ".-+,/_=".contains(c)) {
        return Err(format!("`{tail}` are not macro delimiters"));
    }
    Ok(MacroSpec {
        letter: lower as u8,
        upper: letter.is_ascii_uppercase(),
        keep,
        reverse,
        delimiters: if tail.is_empty() {
            vec!['.']
        } else {
            tail.chars().collect()
        },
    })
}

/// Whether a DNS query can be made for `name` (labels of 1 to 63 octets, 253
/// in all). A target name that cannot is treated as non-existent (the
/// suite's `invalid-domain-long`), without a query.
fn queryable(name: &str) -> bool {
    let n = name.strip_suffix('.').unwrap_or(name);
    !n.is_empty() && n.len() <= 253 && n.split('.').all(|l| !l.is_empty() && l.len() <= 63)
}

/// A valid domain to check (RFC 7208 §4.3): labels of 1 to 63 characters,
/// at least two of them, no domain literal.
fn valid_domain(domain: &str) -> bool {
    let d = domain.strip_suffix('.').unwrap_or(domain);
    let labels: Vec<&str> = d.split('.').collect();
    d.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| !l.is_empty() && l.len() <= 63)
        && !d.starts_with('[')
}

fn url_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn ip_dotted(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => v6
            .octets()
            .iter()
            .flat_map(|o| [o >> 4, o & 0xf])
            .map(|n| format!("{n:x}"))
            .collect::<Vec<_>>()
            .join("."),
    }
}

fn in_network(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// Drops leftmost labels until the name fits in 253 characters (§7.3).
fn shorten(mut name: String) -> String {
    while name.trim_end_matches('.').len() > 253 {
        match name.find('.') {
            Some(i) => name = name[i + 1..].to_owned(),
            None => break,
        }
    }
    name
}

/// A failure inside the evaluation that ends it with this result.
struct Stop(SpfOutcome);

/// A permerror once `count` passes `limit` (RFC 7208 §4.6.4).
fn over(count: u32, limit: u32, what: &str) -> Result<(), Stop> {
    if count > limit {
        return Err(Stop(outcome(
            SpfResult::PermError,
            format!("more than {limit} {what} (RFC 7208 §4.6.4)"),
        )));
    }
    Ok(())
}

impl<D: SpfDns> Eval<'_, D> {
    fn run<'b>(&'b mut self, domain: String, depth: u32) -> Boxed<'b>
    where
        D: 'b,
    {
        Box::pin(async move {
            if !valid_domain(&domain) {
                return outcome(
                    SpfResult::None,
                    format!("`{domain}` is not a domain SPF can check"),
                );
            }
            if depth > 20 {
                return outcome(SpfResult::PermError, "includes and redirects loop");
            }
            let txts = match self.dns.txt(&domain).await {
                Lookup::Found(t) => t,
                Lookup::NotFound => {
                    return outcome(SpfResult::None, format!("{domain} publishes no SPF record"));
                }
                Lookup::TempError(e) => {
                    return outcome(SpfResult::TempError, format!("TXT lookup of {domain}: {e}"));
                }
            };
            let records: Vec<&String> = txts.iter().filter(|t| is_spf_record(t)).collect();
            let text = match records.as_slice() {
                [] => return outcome(SpfResult::None, format!("{domain} publishes no SPF record")),
                [one] => one.as_str(),
                _ => {
                    return outcome(
                        SpfResult::PermError,
                        format!(
                            "{domain} publishes {} SPF records (RFC 7208 §4.5)",
                            records.len()
                        ),
                    );
                }
            };
            let record = match parse_record(text) {
                Ok(r) => r,
                Err(why) => {
                    return outcome(
                        SpfResult::PermError,
                        format!("the SPF record of {domain} is invalid: {why}"),
                    );
                }
            };
            match self.evaluate(&domain, &record, depth).await {
                Ok(o) => o,
                Err(Stop(o)) => o,
            }
        })
    }

    async fn evaluate(
        &mut self,
        domain: &str,
        record: &Record,
        depth: u32,
    ) -> Result<SpfOutcome, Stop> {
        for (qualifier, mechanism, term) in &record.mechanisms {
            if self.matches(domain, mechanism, depth).await? {
                let result = qualifier.result();
                let mut out = outcome(result, format!("{domain}: matched `{term}`"));
                if result == SpfResult::Fail
                    && let Some(exp) = &record.exp
                {
                    out.explanation = self.explanation(domain, exp).await;
                }
                return Ok(out);
            }
        }
        if let Some(target) = &record.redirect {
            self.count_lookup()?;
            let target = self.expand_domain(target, domain).await?;
            let out = self.run(target.clone(), depth + 1).await;
            if out.result == SpfResult::None {
                return Ok(outcome(
                    SpfResult::PermError,
                    format!("{domain}: redirect to {target}, which has no SPF record"),
                ));
            }
            return Ok(out);
        }
        Ok(outcome(
            SpfResult::Neutral,
            format!("{domain}: no mechanism matched"),
        ))
    }

    fn count_lookup(&mut self) -> Result<(), Stop> {
        self.lookups += 1;
        over(self.lookups, LOOKUP_LIMIT, "DNS-querying terms")
    }

    fn count_void(&mut self) -> Result<(), Stop> {
        self.voids += 1;
        over(self.voids, VOID_LIMIT, "void DNS lookups")
    }

    fn temp(what: &str, e: &str) -> Stop {
        Stop(outcome(SpfResult::TempError, format!("{what}: {e}")))
    }

    /// The addresses of `name` of the client's family; void lookups counted
    /// when `count_void`.
    async fn addresses(&mut self, name: &str, count_void: bool) -> Result<Vec<IpAddr>, Stop> {
        if !queryable(name) {
            return Ok(Vec::new());
        }
        let found = match self.ip {
            IpAddr::V4(_) => match self.dns.a(name).await {
                Lookup::Found(v) => Lookup::Found(v.into_iter().map(IpAddr::V4).collect()),
                Lookup::NotFound => Lookup::NotFound,
                Lookup::TempError(e) => Lookup::TempError(e),
            },
            IpAddr::V6(_) => match self.dns.aaaa(name).await {
                Lookup::Found(v) => Lookup::Found(v.into_iter().map(IpAddr::V6).collect()),
                Lookup::NotFound => Lookup::NotFound,
                Lookup::TempError(e) => Lookup::TempError(e),
            },
        };
        match found {
            Lookup::Found(v) => Ok(v),
            Lookup::NotFound => {
                if count_void {
                    self.count_void()?;
                }
                Ok(Vec::new())
            }
            Lookup::TempError(e) => Err(Self::temp(&format!("address lookup of {name}"), &e)),
        }
    }

    async fn matches(
        &mut self,
        domain: &str,
        mechanism: &Mechanism,
        depth: u32,
    ) -> Result<bool, Stop> {
        let family_len = |v4: u8, v6: u8, ip: IpAddr| if ip.is_ipv4() { v4 } else { v6 };
        match mechanism {
            Mechanism::All => Ok(true),
            Mechanism::Ip4(net, len) => Ok(in_network(self.ip, IpAddr::V4(*net), *len)),
            Mechanism::Ip6(net, len) => Ok(in_network(self.ip, IpAddr::V6(*net), *len)),
            Mechanism::A(spec, v4, v6) => {
                self.count_lookup()?;
                let target = self.target(spec.as_deref(), domain).await?;
                let len = family_len(*v4, *v6, self.ip);
                let addrs = self.addresses(&target, true).await?;
                Ok(addrs.iter().any(|a| in_network(self.ip, *a, len)))
            }
            Mechanism::Mx(spec, v4, v6) => {
                self.count_lookup()?;
                let target = self.target(spec.as_deref(), domain).await?;
                let len = family_len(*v4, *v6, self.ip);
                if !queryable(&target) {
                    return Ok(false);
                }
                let hosts = match self.dns.mx(&target).await {
                    Lookup::Found(h) => h,
                    Lookup::NotFound => {
                        self.count_void()?;
                        return Ok(false);
                    }
                    Lookup::TempError(e) => {
                        return Err(Self::temp(&format!("MX lookup of {target}"), &e));
                    }
                };
                if hosts.len() > 10 {
                    return Err(Stop(outcome(
                        SpfResult::PermError,
                        format!("{target} has more than 10 MX records (RFC 7208 §4.6.4)"),
                    )));
                }
                for host in hosts {
                    if host.is_empty() || host == "." {
                        continue;
                    }
                    let addrs = self.addresses(&host, false).await?;
                    if addrs.iter().any(|a| in_network(self.ip, *a, len)) {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Mechanism::Ptr(spec) => {
                self.count_lookup()?;
                let target = self.target(spec.as_deref(), domain).await?;
                let target = target.trim_end_matches('.').to_ascii_lowercase();
                let names = self.validated_names().await;
                Ok(names.iter().any(|n| {
                    let n = n.trim_end_matches('.').to_ascii_lowercase();
                    n == target || n.ends_with(&format!(".{target}"))
                }))
            }
            Mechanism::Exists(spec) => {
                self.count_lookup()?;
                let target = self.expand_domain(spec, domain).await?;
                if !queryable(&target) {
                    return Ok(false);
                }
                match self.dns.a(&target).await {
                    Lookup::Found(v) => Ok(!v.is_empty()),
                    Lookup::NotFound => {
                        self.count_void()?;
                        Ok(false)
                    }
                    Lookup::TempError(e) => Err(Self::temp(&format!("A lookup of {target}"), &e)),
                }
            }
            Mechanism::Include(spec) => {
                self.count_lookup()?;
                let target = self.expand_domain(spec, domain).await?;
                let out = self.run(target.clone(), depth + 1).await;
                match out.result {
                    SpfResult::Pass => Ok(true),
                    SpfResult::Fail | SpfResult::SoftFail | SpfResult::Neutral => Ok(false),
                    SpfResult::TempError => Err(Stop(out)),
                    SpfResult::PermError => Err(Stop(out)),
                    SpfResult::None => Err(Stop(outcome(
                        SpfResult::PermError,
                        format!("{domain}: include:{target}, which has no SPF record"),
                    ))),
                }
            }
        }
    }

    async fn target(&mut self, spec: Option<&str>, domain: &str) -> Result<String, Stop> {
        match spec {
            None => Ok(domain.to_owned()),
            Some(s) => self.expand_domain(s, domain).await,
        }
    }

    /// The client's PTR names whose addresses include the client (at most 10
    /// names are tried; DNS errors make a name not validate).
    async fn validated_names(&mut self) -> Vec<String> {
        let names = match self.dns.ptr(self.ip).await {
            Lookup::Found(n) => n,
            _ => return Vec::new(),
        };
        let mut out = Vec::new();
        for name in names.into_iter().take(10) {
            let addrs = match self.ip {
                IpAddr::V4(_) => match self.dns.a(&name).await {
                    Lookup::Found(v) => v.into_iter().map(IpAddr::V4).collect(),
                    _ => Vec::new(),
                },
                IpAddr::V6(_) => match self.dns.aaaa(&name).await {
                    Lookup::Found(v) => v.into_iter().map(IpAddr::V6).collect(),
                    _ => Vec::new(),
                },
            };
            if addrs.contains(&self.ip) {
                out.push(name);
            }
        }
        out
    }

    async fn expand_domain(&mut self, spec: &str, domain: &str) -> Result<String, Stop> {
        let expanded = self
            .expand(spec, domain, false)
            .await
            .map_err(|why| Stop(outcome(SpfResult::PermError, why)))?;
        Ok(shorten(expanded))
    }

    /// Expands a macro-string (RFC 7208 §7).
    async fn expand(&mut self, s: &str, domain: &str, explain: bool) -> Result<String, Syntax> {
        check_macro_string(s, explain)?;
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find('%') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            match after.as_bytes().first() {
                Some(b'%') => {
                    out.push('%');
                    rest = &after[1..];
                }
                Some(b'_') => {
                    out.push(' ');
                    rest = &after[1..];
                }
                Some(b'-') => {
                    out.push_str("%20");
                    rest = &after[1..];
                }
                _ => {
                    let end = after.find('}').ok_or("a macro `%{` is not closed")?;
                    let spec = parse_macro(&after[1..end], explain)?;
                    let value = self.macro_value(spec.letter, domain).await;
                    let mut parts: Vec<&str> =
                        value.split(|c| spec.delimiters.contains(&c)).collect();
                    if spec.reverse {
                        parts.reverse();
                    }
                    if let Some(n) = spec.keep
                        && parts.len() > n
                    {
                        parts = parts.split_off(parts.len() - n);
                    }
                    let joined = parts.join(".");
                    out.push_str(&if spec.upper {
                        url_escape(&joined)
                    } else {
                        joined
                    });
                    rest = &after[end + 1..];
                }
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    async fn macro_value(&mut self, letter: u8, domain: &str) -> String {
        let r = self.request;
        let (local, sender_domain) = r
            .sender
            .rsplit_once('@')
            .unwrap_or(("postmaster", &r.sender));
        match letter {
            b's' => r.sender.clone(),
            b'l' => local.to_owned(),
            b'o' => sender_domain.to_owned(),
            b'd' => domain.to_owned(),
            b'i' => ip_dotted(self.ip),
            b'v' => if self.ip.is_ipv4() { "in-addr" } else { "ip6" }.to_owned(),
            b'h' => r.helo.clone(),
            b'c' => self.ip.to_string(),
            b'r' => r.receiver.clone(),
            b't' => r.now.to_string(),
            b'p' => {
                let names = self.validated_names().await;
                let d = domain.to_ascii_lowercase();
                names
                    .iter()
                    .find(|n| {
                        let n = n.trim_end_matches('.').to_ascii_lowercase();
                        n == d || n.ends_with(&format!(".{d}"))
                    })
                    .or_else(|| names.first())
                    .map(|n| n.trim_end_matches('.').to_owned())
                    .unwrap_or_else(|| "unknown".into())
            }
            _ => String::new(),
        }
    }

    /// The explanation of a fail (§6.2): the one TXT record at the expanded
    /// `exp=` domain, expanded; any problem means no explanation.
    async fn explanation(&mut self, domain: &str, exp: &str) -> Option<String> {
        let target = self.expand(exp, domain, false).await.ok()?;
        let target = shorten(target);
        if !valid_domain(&target) {
            return None;
        }
        let txts = match self.dns.txt(&target).await {
            Lookup::Found(t) => t,
            _ => return None,
        };
        let [text] = txts.as_slice() else {
            return None;
        };
        if !text.is_ascii() {
            return None;
        }
        self.expand(text, domain, true).await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_follow_the_grammar() {
        for ok in [
            "v=spf1",
            "v=spf1 -all",
            "v=spf1 a:foo:bar/baz.example.com",
            "v=spf1 a/24//64 mx:example.com/26 ip4:192.0.2.0/24 ip6:2001:db8::/32 ~all",
            "v=spf1 include:_spf.%{d} exists:%{ir}.%{v}._spf.%{d2} redirect=_spf.example.com",
            "v=spf1 a:foo.example.xn--zckzah -all",
            "v=spf1 foo=%{l}bar -all",
        ] {
            assert!(
                validate_record(ok).is_ok(),
                "{ok}: {:?}",
                validate_record(ok)
            );
        }
        for bad in [
            "v=spf1 a:",
            "v=spf1 a:example.-com",
            "v=spf1 ip4:1.2.3",
            "v=spf1 ip4:1.2.3.4/33",
            "v=spf1 a/024",
            "v=spf1 exists:%{x}.example.com",
            "v=spf1 include:%{d0}.example.com",
            "v=spf1 redirect=a.example.com redirect=b.example.com",
            "v=spf1 frobnicate",
            "v=spf1 -exp=foo.example.com",
            "v=spf1 a:ctrl.example.com\rptr",
        ] {
            assert!(validate_record(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ipv6_macros_and_networks() {
        let v6: IpAddr = "2001:db8::cb01".parse().expect("ip");
        assert_eq!(
            ip_dotted(v6),
            "2.0.0.1.0.d.b.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.c.b.0.1"
        );
        assert!(
            !in_network(
                "192.0.2.1".parse().expect("ip"),
                "::".parse().expect("ip"),
                0
            ),
            "ip6:::/0 never matches an IPv4 client"
        );
        assert_eq!(url_escape("a b/c"), "a%20b%2Fc");
        assert!(shorten(format!("{}.example.com", "a.".repeat(200))).len() <= 253);
    }
}
