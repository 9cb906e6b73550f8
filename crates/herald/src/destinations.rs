//! Destinations (issue 13): a recipient's domain → its MX hosts (resolved
//! through herald-auth's [`Dns`], cached for the records' TTL) → a site, with
//! the site's limits from the provider table and the configuration, and the
//! back-off rules that act on a site when its replies say "slow down".
//!
//! The site's shared state (its rate, suspension, slow-down, recent replies)
//! lives in the database ([`herald_schedule::Sites`]), so every worker sees
//! what one of them learnt; connections and their limits are per worker.

use herald_auth::{Dns, Lookup};
use herald_schedule::{Attempt, Rate, SiteAction, SiteLimits, SiteReply, Sites};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The provider table compiled in (`crates/herald/data/providers.toml`).
pub const BUILT_IN_PROVIDERS: &str = include_str!("../data/providers.toml");

/// A duration written `90s`, `10m`, `2h` or `3d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Span(pub Duration);

impl TryFrom<String> for Span {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let t = s.trim();
        let at = t
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("`{s}`: a duration needs a unit (s, m, h or d)"))?;
        let (n, unit) = t.split_at(at);
        let n: u64 = n
            .parse()
            .map_err(|_| format!("`{s}`: a duration starts with a whole number"))?;
        let secs = herald_schedule::unit_seconds(unit)
            .ok_or_else(|| format!("`{s}`: a duration's unit is s, m, h or d"))?;
        Ok(Span(Duration::from_secs(n.saturating_mul(secs))))
    }
}

impl From<Span> for String {
    fn from(s: Span) -> Self {
        format!("{}s", s.0.as_secs())
    }
}

/// Limits for a site; each one unset is taken from the next level
/// (configuration override → provider → defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Connections open to the site at once, per worker.
    pub max_connections: Option<u32>,
    /// Messages one connection carries before it is closed.
    pub messages_per_connection: Option<u32>,
    /// Messages per period to the site, shared by all workers.
    pub rate: Option<Rate>,
    /// New connections per period, per worker.
    pub connection_rate: Option<Rate>,
    /// Connection failures in a row that suspend the site.
    pub failures_before_suspend: Option<u32>,
    /// How long that suspension lasts.
    pub failure_suspend: Option<Span>,
}

impl LimitsConfig {
    fn over(&self, base: &Limits) -> Limits {
        Limits {
            max_connections: self.max_connections.unwrap_or(base.max_connections).max(1),
            messages_per_connection: self
                .messages_per_connection
                .unwrap_or(base.messages_per_connection)
                .max(1),
            rate: self.rate.or(base.rate),
            connection_rate: self.connection_rate.or(base.connection_rate),
            failures_before_suspend: self
                .failures_before_suspend
                .unwrap_or(base.failures_before_suspend)
                .max(1),
            failure_suspend: self.failure_suspend.map_or(base.failure_suspend, |s| s.0),
        }
    }
}

/// A site's limits, all set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Connections open to the site at once, per worker.
    pub max_connections: u32,
    /// Messages one connection carries.
    pub messages_per_connection: u32,
    /// Messages per period, shared by all workers.
    pub rate: Option<Rate>,
    /// New connections per period, per worker.
    pub connection_rate: Option<Rate>,
    /// Connection failures in a row that suspend the site.
    pub failures_before_suspend: u32,
    /// How long that suspension lasts.
    pub failure_suspend: Duration,
}

/// One provider of the table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// Its name, which is also its site's.
    pub name: String,
    /// MX host name endings (`.google.com`) that make a domain this provider's.
    pub mx_suffixes: Vec<String>,
    /// Its limits over the defaults.
    #[serde(flatten)]
    pub limits: LimitsConfig,
}

/// What a back-off rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackoffAction {
    /// Claim nothing for the site for the rule's duration.
    Suspend,
    /// Divide the site's rate by the rule's factor for its duration.
    Slow,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    provider: Option<String>,
    #[serde(default)]
    codes: Vec<u16>,
    enhanced: Option<String>,
    #[serde(default)]
    patterns: Vec<String>,
    action: BackoffAction,
    factor: Option<u32>,
    duration: Span,
}

/// A back-off rule: which replies it matches and what it does to the site.
#[derive(Debug, Clone)]
pub struct BackoffRule {
    /// Its name, shown in the site's recent replies.
    pub name: String,
    /// Only for this provider's site, if set.
    pub provider: Option<String>,
    /// Reply codes it matches (any, when empty).
    pub codes: Vec<u16>,
    /// Enhanced status code prefix it matches, if set.
    pub enhanced: Option<String>,
    /// Text patterns, any of which matches (any text, when empty).
    pub patterns: Vec<Regex>,
    /// What it does.
    pub action: BackoffAction,
    /// For `slow`: by how much.
    pub factor: u32,
    /// For how long.
    pub duration: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    defaults: LimitsConfig,
    #[serde(default)]
    provider: Vec<Provider>,
    #[serde(default)]
    backoff: Vec<RawRule>,
}

/// The provider table: defaults, providers, back-off rules.
#[derive(Debug, Clone)]
pub struct ProviderTable {
    /// Limits for a site no provider or override speaks of.
    pub defaults: Limits,
    /// The providers, matched in order.
    pub providers: Vec<Provider>,
    /// The back-off rules, tried in order.
    pub backoff: Vec<BackoffRule>,
}

/// A provider table that does not parse; says where and why.
#[derive(Debug, thiserror::Error)]
#[error("provider table: {0}")]
pub struct TableError(pub String);

impl ProviderTable {
    /// The table compiled into Herald.
    pub fn built_in() -> Result<Self, TableError> {
        Self::parse(BUILT_IN_PROVIDERS)
    }

    /// Parses a table in the format of `data/providers.toml`.
    pub fn parse(text: &str) -> Result<Self, TableError> {
        let raw: RawTable = toml::from_str(text).map_err(|e| TableError(e.to_string()))?;
        let base = Limits {
            max_connections: 10,
            messages_per_connection: 100,
            rate: None,
            connection_rate: None,
            failures_before_suspend: 10,
            failure_suspend: Duration::from_secs(300),
        };
        let defaults = raw.defaults.over(&base);
        let mut backoff = Vec::with_capacity(raw.backoff.len());
        for r in raw.backoff {
            let patterns = r
                .patterns
                .iter()
                .map(|p| {
                    Regex::new(p).map_err(|e| {
                        TableError(format!("back-off rule `{}`: pattern `{p}`: {e}", r.name))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            if r.action == BackoffAction::Slow && r.factor.is_none_or(|f| f < 2) {
                return Err(TableError(format!(
                    "back-off rule `{}`: `slow` needs a factor of at least 2",
                    r.name
                )));
            }
            backoff.push(BackoffRule {
                name: r.name,
                provider: r.provider,
                codes: r.codes,
                enhanced: r.enhanced,
                patterns,
                action: r.action,
                factor: r.factor.unwrap_or(1),
                duration: r.duration.0,
            });
        }
        Ok(ProviderTable {
            defaults,
            providers: raw.provider,
            backoff,
        })
    }

    /// The provider whose MX suffixes one of `hosts` ends with.
    pub fn provider_of(&self, hosts: &[String]) -> Option<&Provider> {
        self.providers.iter().find(|p| {
            hosts.iter().any(|h| {
                let h = h.to_ascii_lowercase();
                p.mx_suffixes
                    .iter()
                    .any(|s| h.ends_with(&s.to_ascii_lowercase()))
            })
        })
    }

    /// The first rule that matches a reply `code` with `text` from a site of
    /// `provider`.
    pub fn backoff_for(
        &self,
        provider: Option<&str>,
        code: u16,
        text: &str,
    ) -> Option<&BackoffRule> {
        if code < 400 {
            return None;
        }
        let lower = text.to_lowercase();
        let enhanced = enhanced_code(&lower);
        self.backoff.iter().find(|r| {
            r.provider.as_deref().is_none_or(|p| Some(p) == provider)
                && (r.codes.is_empty() || r.codes.contains(&code))
                && r.enhanced
                    .as_deref()
                    .is_none_or(|e| enhanced.is_some_and(|x| x.starts_with(e)))
                && (r.patterns.is_empty() || r.patterns.iter().any(|p| p.is_match(&lower)))
        })
    }
}

/// The first enhanced status code (`4.7.0`) in a reply text.
fn enhanced_code(text: &str) -> Option<&str> {
    text.split(|c: char| c.is_whitespace() || c == '-')
        .map(|w| w.trim_matches(|c: char| !c.is_ascii_digit()))
        .find(|w| {
            let parts: Vec<&str> = w.split('.').collect();
            parts.len() == 3
                && matches!(parts[0], "2" | "4" | "5")
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// The `[delivery]` section: where the provider table comes from, per-site
/// overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// An edited provider table to use instead of the built-in one.
    pub providers_file: Option<PathBuf>,
    /// Limits per site name (`google`, or an MX host set such as
    /// `mx1.shop.test,mx2.shop.test`), over the provider's and the defaults.
    #[serde(default)]
    pub sites: HashMap<String, LimitsConfig>,
    /// Egress pools: named sets of local source addresses.
    #[serde(default)]
    pub egress: EgressConfig,
}

/// Egress pools (`[delivery.egress]`): named sets of local source addresses,
/// and which account sends from which pool. A site's connection limits apply
/// per source → site pair.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressConfig {
    /// Pool name → its local addresses.
    #[serde(default)]
    pub pools: HashMap<String, Vec<IpAddr>>,
    /// Account number (as a string key) → pool name.
    #[serde(default)]
    pub accounts: HashMap<String, String>,
    /// The pool of accounts not listed; none: the system's choice of address.
    pub default_pool: Option<String>,
}

/// A named pool in the egress configuration that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("delivery.egress: {0}")]
pub struct EgressError(pub String);

impl EgressConfig {
    /// Checks that every named pool exists and has an address.
    pub fn validate(&self) -> Result<(), EgressError> {
        for (name, addresses) in &self.pools {
            if addresses.is_empty() {
                return Err(EgressError(format!("pool `{name}` has no address")));
            }
        }
        let known = |p: &str| self.pools.contains_key(p);
        for (account, pool) in &self.accounts {
            if account.parse::<u64>().is_err() {
                return Err(EgressError(format!(
                    "accounts: `{account}` is not an account number"
                )));
            }
            if !known(pool) {
                return Err(EgressError(format!(
                    "accounts.{account}: no pool named `{pool}`"
                )));
            }
        }
        if let Some(p) = &self.default_pool
            && !known(p)
        {
            return Err(EgressError(format!("default_pool: no pool named `{p}`")));
        }
        Ok(())
    }

    /// The source address message `message` of `account` goes from: one of
    /// the account's pool, spread by message number; none without a pool.
    pub fn source_for(&self, account: u64, message: i64) -> Option<IpAddr> {
        let pool = self
            .accounts
            .get(&account.to_string())
            .or(self.default_pool.as_ref())?;
        let addresses = self.pools.get(pool)?;
        let n = i64::try_from(addresses.len()).ok().filter(|n| *n > 0)?;
        let i = usize::try_from(message.rem_euclid(n)).ok()?;
        addresses.get(i).copied()
    }
}

impl DeliveryConfig {
    /// The provider table this configuration names.
    pub fn table(&self) -> Result<ProviderTable, TableError> {
        match &self.providers_file {
            None => ProviderTable::built_in(),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| TableError(format!("reading {}: {e}", p.display())))?;
                ProviderTable::parse(&text)
                    .map_err(|e| TableError(format!("{}: {}", p.display(), e.0)))
            }
        }
    }
}

/// One MX host of a destination, with its addresses in the resolver's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MxHost {
    /// Its name.
    pub name: String,
    /// Its addresses (every one is tried, in order).
    pub addresses: Vec<IpAddr>,
}

/// A site as a worker sees it: name, provider, limits.
#[derive(Debug)]
pub struct Site {
    /// The site's name.
    pub name: String,
    /// The provider it matched.
    pub provider: Option<String>,
    /// Its MX host names (sorted).
    pub hosts: Vec<String>,
    /// Its limits.
    pub limits: Limits,
}

impl Site {
    /// The limits as the shared store keeps them.
    pub fn stored_limits(&self) -> SiteLimits {
        SiteLimits {
            rate: self.limits.rate.map(|r| r.gcra()),
            max_connections: self.limits.max_connections,
        }
    }
}

/// A recipient domain resolved: its site and hosts.
#[derive(Debug, Clone)]
pub struct Destination {
    /// The recipient domain (lower case).
    pub domain: String,
    /// Its site.
    pub site: Arc<Site>,
    /// Its MX hosts, most preferred first.
    pub hosts: Vec<MxHost>,
    /// When the answer expires (the shortest TTL of the records).
    pub expires: Instant,
}

/// Why a domain has no destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unroutable {
    /// A null MX (RFC 7505): the domain accepts no mail.
    NullMx,
    /// No MX and no address, or no MX host has an address: try later.
    NoHost(String),
    /// DNS did not answer: try later.
    Dns(String),
}

/// Resolves domains to destinations, caching each for its TTL (at least 60 s,
/// at most a day), and keeps one [`Site`] per site name.
pub struct Destinations {
    dns: Dns,
    table: ProviderTable,
    overrides: HashMap<String, LimitsConfig>,
    cache: Mutex<HashMap<String, Arc<Destination>>>,
    sites: Mutex<HashMap<String, Arc<Site>>>,
}

const MIN_TTL: Duration = Duration::from_secs(60);
const MAX_TTL: Duration = Duration::from_secs(86_400);

impl Destinations {
    /// Destinations on `dns` with `table` and per-site `overrides`.
    pub fn new(dns: Dns, table: ProviderTable, overrides: HashMap<String, LimitsConfig>) -> Self {
        Destinations {
            dns,
            table,
            overrides,
            cache: Mutex::new(HashMap::new()),
            sites: Mutex::new(HashMap::new()),
        }
    }

    /// The provider table in use.
    pub fn table(&self) -> &ProviderTable {
        &self.table
    }

    /// The destination of `domain`, from the cache while its TTL runs; the
    /// second value says whether it was resolved now (so the caller records
    /// the site for the other workers).
    pub async fn resolve(&self, domain: &str) -> Result<(Arc<Destination>, bool), Unroutable> {
        let domain = domain.to_ascii_lowercase();
        let now = Instant::now();
        if let Ok(cache) = self.cache.lock()
            && let Some(d) = cache.get(&domain)
            && d.expires > now
        {
            return Ok((Arc::clone(d), false));
        }
        let (names, mut expires) = match self.dns.mx_until(&domain).await {
            Lookup::Found((mx, _)) if mx.len() == 1 && mx[0].1.is_empty() => {
                return Err(Unroutable::NullMx);
            }
            Lookup::Found((mx, until)) => (
                mx.into_iter()
                    .filter(|(_, h)| !h.is_empty())
                    .map(|(_, h)| h.to_ascii_lowercase())
                    .collect::<Vec<_>>(),
                until,
            ),
            // No MX: the domain's own address (RFC 5321 §5.1).
            Lookup::NotFound => (vec![domain.clone()], now + MIN_TTL),
            Lookup::TempError(e) => {
                return Err(Unroutable::Dns(format!("MX lookup of {domain}: {e}")));
            }
        };
        let mut hosts = Vec::with_capacity(names.len());
        let mut last_error = None;
        for name in &names {
            match self.dns.addresses_until(name).await {
                Lookup::Found((addresses, until)) => {
                    expires = expires.min(until);
                    hosts.push(MxHost {
                        name: name.clone(),
                        addresses,
                    });
                }
                Lookup::NotFound => {}
                Lookup::TempError(e) => last_error = Some(format!("address lookup of {name}: {e}")),
            }
        }
        if hosts.is_empty() {
            return Err(match last_error {
                Some(e) => Unroutable::Dns(e),
                None => Unroutable::NoHost(format!("{domain}: no MX host has an address")),
            });
        }
        let expires = expires.clamp(now + MIN_TTL, now + MAX_TTL);
        let site = self.site_for(&names);
        let d = Arc::new(Destination {
            domain: domain.clone(),
            site,
            hosts,
            expires,
        });
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() > 100_000 {
                cache.retain(|_, d| d.expires > now);
            }
            cache.insert(domain, Arc::clone(&d));
        }
        Ok((d, true))
    }

    /// The site of a set of MX host names: the provider's when one matches,
    /// else named after the sorted host names.
    pub fn site_for(&self, hosts: &[String]) -> Arc<Site> {
        let provider = self.table.provider_of(hosts);
        let mut sorted: Vec<String> = hosts.iter().map(|h| h.to_ascii_lowercase()).collect();
        sorted.sort();
        sorted.dedup();
        let name = match provider {
            Some(p) => p.name.clone(),
            None => sorted.join(","),
        };
        let Ok(mut sites) = self.sites.lock() else {
            return Arc::new(self.build_site(name, provider, sorted));
        };
        if let Some(s) = sites.get(&name) {
            return Arc::clone(s);
        }
        let site = Arc::new(self.build_site(name.clone(), provider, sorted));
        sites.insert(name, Arc::clone(&site));
        site
    }

    fn build_site(&self, name: String, provider: Option<&Provider>, hosts: Vec<String>) -> Site {
        let mut limits = self.table.defaults.clone();
        if let Some(p) = provider {
            limits = p.limits.over(&limits);
        }
        if let Some(o) = self.overrides.get(&name) {
            limits = o.over(&limits);
        }
        Site {
            name,
            provider: provider.map(|p| p.name.clone()),
            hosts,
            limits,
        }
    }
}

/// What a worker learnt from one attempt, for the site's shared state.
pub struct Observer {
    table: ProviderTable,
    /// Sites this worker saw a connection fail to (so a success clears the
    /// shared count without a write per message).
    failing: Mutex<HashSet<String>>,
}

impl Observer {
    /// An observer applying `table`'s back-off rules.
    pub fn new(table: ProviderTable) -> Self {
        Observer {
            table,
            failing: Mutex::new(HashSet::new()),
        }
    }

    /// Acts on `site` after `attempt`: a reply a back-off rule matches
    /// suspends or slows the site for every worker; a connection failure
    /// counts towards a suspension; a reply after failures clears the count.
    /// Returns the action taken, if any.
    pub async fn observe(
        &self,
        sites: &Sites,
        site: &Site,
        attempt: &Attempt,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<SiteAction>, herald_schedule::Error> {
        let (action, code, text, what) = match attempt {
            Attempt::Reply { code, text, .. } => {
                let was_failing = self
                    .failing
                    .lock()
                    .map(|mut f| f.remove(&site.name))
                    .unwrap_or(false);
                if was_failing {
                    sites.connection_worked(&site.name).await?;
                }
                let Some(rule) = self
                    .table
                    .backoff_for(site.provider.as_deref(), *code, text)
                else {
                    return Ok(None);
                };
                let until = now + chrono::Duration::from_std(rule.duration).unwrap_or_default();
                let (action, what) = match rule.action {
                    BackoffAction::Suspend => (
                        SiteAction::Suspend { until },
                        format!("{}: suspended for {} s", rule.name, rule.duration.as_secs()),
                    ),
                    BackoffAction::Slow => (
                        SiteAction::Slow {
                            factor: rule.factor,
                            until,
                        },
                        format!(
                            "{}: rate divided by {} for {} s",
                            rule.name,
                            rule.factor,
                            rule.duration.as_secs()
                        ),
                    ),
                };
                tracing::warn!(site = %site.name, code, reply = %text, action = %what, "the site asked us to slow down");
                (action, Some(*code), text, what)
            }
            Attempt::Unreachable { reason } => {
                if let Ok(mut f) = self.failing.lock() {
                    f.insert(site.name.clone());
                }
                let failures = sites.connection_failed(&site.name, now).await?;
                if failures < site.limits.failures_before_suspend {
                    return Ok(None);
                }
                let until = now
                    + chrono::Duration::from_std(site.limits.failure_suspend).unwrap_or_default();
                let what = format!(
                    "connection_failures: {failures} in a row, suspended for {} s",
                    site.limits.failure_suspend.as_secs()
                );
                tracing::warn!(site = %site.name, failures, reason = %reason, "connections to the site keep failing; suspended");
                (SiteAction::Suspend { until }, None, reason, what)
            }
        };
        let reply = SiteReply {
            at: now,
            code,
            text: text.chars().take(300).collect(),
            action: what,
        };
        sites.act(&site.name, action, reply, now).await?;
        Ok(Some(action))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_table_parses_and_names_the_big_providers() {
        let t = ProviderTable::built_in().expect("parses");
        let google = t
            .provider_of(&["alt1.aspmx.l.google.com".into()])
            .expect("google");
        assert_eq!(google.name, "google");
        assert_eq!(
            t.provider_of(&["mta5.am0.yahoodns.net".into()])
                .map(|p| p.name.as_str()),
            Some("yahoo")
        );
        assert!(t.provider_of(&["mx.shop.test".into()]).is_none());
        assert!(t.backoff.len() >= 5);
    }

    #[test]
    fn bad_tables_say_what_is_wrong() {
        for (text, needle) in [
            ("[defaults]\nrate = \"x\"", "throttle"),
            (
                "[defaults]\n[[backoff]]\nname = \"a\"\npatterns = ['(']\naction = \"suspend\"\nduration = \"1m\"",
                "pattern",
            ),
            (
                "[defaults]\n[[backoff]]\nname = \"a\"\naction = \"slow\"\nduration = \"1m\"",
                "factor",
            ),
            (
                "[defaults]\n[[backoff]]\nname = \"a\"\naction = \"suspend\"\nduration = \"1y\"",
                "unit",
            ),
            ("[defaults]\nconnections = 3", "unknown field"),
        ] {
            let e = ProviderTable::parse(text).expect_err(text).to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    /// The replies in `tests/data/backoff-replies.txt` with the rule each
    /// should meet (or `-`): `provider|code|rule|text`.
    #[test]
    fn the_built_in_rules_meet_the_replies_corpus() {
        let t = ProviderTable::built_in().expect("parses");
        let corpus = include_str!("../tests/data/backoff-replies.txt");
        let mut n = 0;
        for line in corpus
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        {
            let parts: Vec<&str> = line.splitn(4, '|').collect();
            assert_eq!(parts.len(), 4, "{line}");
            let provider = (parts[0] != "-").then_some(parts[0]);
            let code: u16 = parts[1].parse().expect("code");
            let got = t
                .backoff_for(provider, code, parts[3])
                .map(|r| r.name.as_str());
            assert_eq!(got.unwrap_or("-"), parts[2], "{line}");
            n += 1;
        }
        assert!(n >= 20, "{n} replies");
    }

    #[test]
    fn an_account_sends_from_its_pool_spread_by_message() {
        let egress = EgressConfig {
            pools: HashMap::from([
                (
                    "a".into(),
                    vec![
                        "127.0.0.7".parse().expect("ip"),
                        "127.0.0.8".parse().expect("ip"),
                    ],
                ),
                ("b".into(), vec!["::1".parse().expect("ip")]),
            ]),
            accounts: HashMap::from([("1".into(), "a".into())]),
            default_pool: Some("b".into()),
        };
        assert!(egress.validate().is_ok());
        assert_eq!(egress.source_for(1, 4), "127.0.0.7".parse().ok());
        assert_eq!(egress.source_for(1, 5), "127.0.0.8".parse().ok());
        assert_eq!(egress.source_for(2, 5), "::1".parse().ok());
        let none = EgressConfig::default();
        assert_eq!(none.source_for(1, 1), None);
        for (bad, needle) in [
            (
                EgressConfig {
                    accounts: HashMap::from([("1".into(), "x".into())]),
                    ..egress.clone()
                },
                "no pool named `x`",
            ),
            (
                EgressConfig {
                    accounts: HashMap::from([("one".into(), "a".into())]),
                    ..egress.clone()
                },
                "not an account number",
            ),
            (
                EgressConfig {
                    default_pool: Some("y".into()),
                    ..egress.clone()
                },
                "default_pool",
            ),
            (
                EgressConfig {
                    pools: HashMap::from([("a".into(), vec![])]),
                    accounts: HashMap::new(),
                    default_pool: None,
                },
                "no address",
            ),
        ] {
            let e = bad.validate().expect_err(needle).to_string();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn limits_come_from_the_override_then_the_provider_then_the_defaults() {
        let t = ProviderTable::built_in().expect("parses");
        let overrides = HashMap::from([(
            "google".to_owned(),
            LimitsConfig {
                max_connections: Some(2),
                ..LimitsConfig::default()
            },
        )]);
        let base = t.defaults.clone();
        let p = t
            .provider_of(&["aspmx.l.google.com".into()])
            .expect("google");
        let l = overrides["google"].over(&p.limits.over(&base));
        assert_eq!((l.max_connections, l.messages_per_connection), (2, 50));
        assert_eq!(l.rate, base.rate);
        assert_eq!(
            enhanced_code("421-4.7.28 [1.2.3.4] our system"),
            Some("4.7.28")
        );
    }
}
