//! Herald's configuration (R-OPS-3): a TOML file, then environment overrides,
//! validated when the service is built, with errors that name the field.

use crate::transport::TransportConfig;
use herald_schedule::{RetryPolicy, SendingRules, ThrottleConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `sqlite://herald.db?mode=rwc` (default) or `postgres://…`.
    #[serde(default = "default_db")]
    pub database_url: String,
    /// The platform's identity.
    pub platform: PlatformConfig,
    /// Tracking URLs and their key.
    pub tracking: TrackingConfig,
    /// DKIM keys.
    pub dkim: DkimConfig,
    /// Where mail goes.
    pub transport: TransportConfig,
    /// Each account's own relay, for mail over the attachment limit (R-MSG-7).
    #[serde(default)]
    pub fallback_transport: Option<TransportConfig>,
    /// The attachment limit above which mail goes to the fallback transport.
    #[serde(default)]
    pub attachments: herald_message::AttachmentPolicy,
    /// Rates.
    #[serde(default)]
    pub throttle: ThrottleConfig,
    /// Sending rules.
    #[serde(default)]
    pub rules: SendingRules,
    /// Retries.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// The delivery loop.
    #[serde(default)]
    pub worker: WorkerOptions,
    /// The event log.
    #[serde(default)]
    pub events: EventsConfig,
    /// The HTTP API.
    #[serde(default)]
    pub api: ApiConfig,
    /// Customer sending domains and their checks.
    #[serde(default)]
    pub domains: DomainsConfig,
    /// The HTTP SMS gateway.
    #[serde(default)]
    pub sms: crate::sms::SmsConfig,
    /// The dashboard (R-UI-1).
    #[serde(default)]
    pub dashboard: DashboardConfig,
    /// Direct-to-MX delivery per destination: the provider table, site overrides.
    #[serde(default)]
    pub delivery: crate::destinations::DeliveryConfig,
    /// Event webhooks to the CRM.
    #[serde(default)]
    pub webhooks: crate::webhooks::WebhooksConfig,
}

/// The dashboard's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardConfig {
    /// The plans that include the dashboard. Default `plus` and `enterprise`
    /// (the seed: the dashboard is for Plus and Enterprise).
    pub plans: Vec<String>,
    /// Seconds a sign-in link works (once). Default 300.
    pub link_secs: i64,
    /// Minutes a session may be idle before it ends. Default 30.
    pub idle_minutes: i64,
    /// Seconds between the status page's refreshes. Default 10.
    pub refresh_secs: u32,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            plans: vec!["plus".into(), "enterprise".into()],
            link_secs: 300,
            idle_minutes: 30,
            refresh_secs: 10,
        }
    }
}

/// The HTTP API's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// The operator's token for the admin endpoints (accounts, inbound over
    /// HTTP), at least 32 characters; none disables them. Or `HERALD_ADMIN_TOKEN`.
    pub admin_token: Option<String>,
    /// The largest request body in bytes (attachments arrive base64-encoded).
    /// Default 16 MiB.
    pub max_body_bytes: usize,
    /// The most persons one contacts upsert may carry. Default 10,000.
    pub max_persons_per_upsert: usize,
    /// Reverse proxies (addresses or prefixes, `10.0.0.5`, `10.0.0.0/8`)
    /// whose `X-Forwarded-For` is believed. Default none: the client of a
    /// tracking hit is the socket's peer, and the header is ignored.
    pub trusted_proxies: Vec<String>,
    /// Failed API-key attempts one client address may make per minute; more
    /// are answered 429 (with `Retry-After`) without checking the key.
    /// Default 20.
    pub max_failed_keys_per_minute: u32,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            admin_token: None,
            max_body_bytes: 16 * 1024 * 1024,
            max_persons_per_upsert: 10_000,
            trusted_proxies: Vec::new(),
            max_failed_keys_per_minute: 20,
        }
    }
}

/// How customer domains are checked (R-AUTH-2..4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DomainsConfig {
    /// The DKIM selector of generated keys. Default `herald`.
    pub selector: String,
    /// The domain customers include in their SPF record.
    pub spf_include: String,
    /// The platform's sending IPs; SPF `check_host` must pass for each.
    pub sending_ips: Vec<std::net::IpAddr>,
    /// The name server to ask (IP:PORT); default the system's resolver.
    pub nameserver: Option<std::net::SocketAddr>,
    /// Seconds one DNS query may take. Default 5.
    pub dns_timeout_secs: u64,
    /// The key that seals customer DKIM private keys in the database
    /// (`ID:BASE64`, 32 random bytes; `herald-server generate-encryption-key`
    /// prints one), or `HERALD_DKIM_ENCRYPTION_KEY`. None: keys are stored as
    /// PEM (a warning at start).
    pub key_encryption_key: Option<String>,
    /// Earlier keys, still used to open keys sealed with them until
    /// `herald-server rotate-dkim-keys` has re-sealed everything.
    pub previous_key_encryption_keys: Vec<String>,
}

impl Default for DomainsConfig {
    fn default() -> Self {
        DomainsConfig {
            selector: "herald".into(),
            spf_include: "spf.herald.invalid".into(),
            sending_ips: Vec::new(),
            nameserver: None,
            dns_timeout_secs: 5,
            key_encryption_key: None,
            previous_key_encryption_keys: Vec::new(),
        }
    }
}

/// The event log's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// Events kept per account, oldest pruned first (R-EVT-2). Default 50,000.
    pub retention: usize,
    /// A MaxMind-format city database (e.g. GeoLite2-City.mmdb) to locate the
    /// IPs of opens and clicks; none by default.
    pub geoip_database: Option<PathBuf>,
    /// A copy of Apple's published egress ranges of its privacy proxies
    /// (`egress-ip-ranges.csv`: `prefix,country,region,city,`): opens from
    /// these addresses are counted as privacy prefetches, beside Apple's own
    /// network (17.0.0.0/8), which is always. None by default; a file that
    /// cannot be read or parsed stops the start with the line at fault.
    pub apple_egress_ranges: Option<PathBuf>,
    /// The bounds of one report (`[events.reports]`): filters, value lengths,
    /// list sizes and the query time limit.
    pub reports: herald_eventlog::ReportLimits,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            retention: 50_000,
            geoip_database: None,
            apple_egress_ranges: None,
            reports: herald_eventlog::ReportLimits::default(),
        }
    }
}

fn default_db() -> String {
    "sqlite://herald.db?mode=rwc".into()
}

/// The platform's identity (R-MSG-1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformConfig {
    /// Display name of the `Sender:`.
    pub name: String,
    /// Address of the `Sender:`.
    pub sender: String,
    /// Domain of Message-IDs.
    pub message_id_domain: String,
    /// Domain of the VERP envelope senders.
    pub bounce_domain: String,
    /// `Feedback-ID` sender id.
    #[serde(default = "default_feedback")]
    pub feedback_sender: String,
}

fn default_feedback() -> String {
    "herald".into()
}

/// Tracking URLs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackingConfig {
    /// Public origin of the tracking endpoints.
    pub base_url: String,
    /// HMAC secret, at least 32 bytes (or set `HERALD_TRACKING_SECRET`).
    pub secret: String,
}

/// One signing key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimKeyConfig {
    /// `d=`.
    pub domain: String,
    /// `s=`.
    pub selector: String,
    /// PEM file (PKCS#1 or PKCS#8).
    pub key_file: PathBuf,
}

/// DKIM keys: the platform's, and verified customer domains'.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimConfig {
    /// The platform's key, for mail from unverified domains.
    pub platform: DkimKeyConfig,
    /// Keys of verified customer domains.
    #[serde(default)]
    pub domains: Vec<DkimKeyConfig>,
}

/// The delivery loop's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerOptions {
    /// This worker's name in claims. Default `worker-<pid>`.
    pub id: String,
    /// Messages in flight at once, per lane. Default 16.
    pub concurrency: usize,
    /// Seconds a claim lasts before another worker may take the message. Default 300.
    pub lease_secs: i64,
    /// Milliseconds between polls of an empty outbox. Default 500.
    pub poll_ms: u64,
    /// Seconds after which an outcome whose events are still unrecorded (its
    /// worker died) is recorded by another worker; checked as often. Default 60.
    pub event_recovery_secs: i64,
    /// Where `herald-worker` answers `GET /readyz` (200 while the database
    /// answers, 503 during an outage) and `GET /metrics`; none: no endpoint.
    pub health_addr: Option<std::net::SocketAddr>,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            id: format!("worker-{}", std::process::id()),
            concurrency: 16,
            lease_secs: 300,
            poll_ms: 500,
            event_recovery_secs: 60,
            health_addr: None,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The TOML does not fit (the message names the key).
    #[error("config: {0}")]
    Toml(#[from] toml::de::Error),
    /// A setting that breaks its rule.
    #[error("{field}: {rule}")]
    Invalid {
        /// The setting (`api.admin_token`).
        field: &'static str,
        /// The rule.
        rule: String,
    },
    /// An environment override with a bad value.
    #[error("environment {name}: {problem}")]
    Env {
        /// The variable.
        name: String,
        /// What is wrong.
        problem: String,
    },
}

impl Config {
    /// Parses a TOML document.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Ok(toml::from_str(text)?)
    }

    /// Applies environment overrides, given as `(name, value)` pairs:
    /// `HERALD_DATABASE_URL`, `HERALD_TRACKING_SECRET`, `HERALD_TRACKING_BASE_URL`,
    /// `HERALD_SMTP_HOST`, `HERALD_SMTP_PORT`, `HERALD_SMTP_USERNAME`,
    /// `HERALD_SMTP_PASSWORD`, `HERALD_WORKER_ID`, `HERALD_ADMIN_TOKEN`, `HERALD_DKIM_ENCRYPTION_KEY`, `HERALD_SMS_GATEWAY_URL`, `HERALD_SMS_AUTHORIZATION`, `HERALD_SMS_REPORT_TOKEN`, `HERALD_WORKER_CONCURRENCY`, `HERALD_WORKER_HEALTH_ADDR`,
    /// `HERALD_THROTTLE_PER_ACCOUNT`, `HERALD_THROTTLE_GLOBAL`,
    /// `HERALD_DOMAINS_NAMESERVER` (`IP` or `IP:PORT`: the name server of
    /// domain checks, also for the quick start).
    pub fn apply_env(
        mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        for (name, value) in vars {
            let bad = |problem: String| ConfigError::Env {
                name: name.clone(),
                problem,
            };
            match name.as_str() {
                "HERALD_DATABASE_URL" => self.database_url = value,
                "HERALD_TRACKING_SECRET" => self.tracking.secret = value,
                "HERALD_TRACKING_BASE_URL" => self.tracking.base_url = value,
                "HERALD_WORKER_ID" => self.worker.id = value,
                "HERALD_ADMIN_TOKEN" => self.api.admin_token = Some(value),
                "HERALD_DKIM_ENCRYPTION_KEY" => self.domains.key_encryption_key = Some(value),
                "HERALD_SMS_AUTHORIZATION" => self.sms.authorization = Some(value),
                "HERALD_SMS_GATEWAY_URL" => self.sms.gateway_url = Some(value),
                "HERALD_SMS_REPORT_TOKEN" => self.sms.report_token = Some(value),
                "HERALD_DOMAINS_NAMESERVER" => {
                    self.domains.nameserver = Some(
                        value
                            .parse::<std::net::SocketAddr>()
                            .or_else(|_| {
                                value
                                    .parse::<std::net::IpAddr>()
                                    .map(|ip| std::net::SocketAddr::new(ip, 53))
                            })
                            .map_err(|_| {
                                bad("must be IP or IP:PORT (e.g. 127.0.0.1:5353)".into())
                            })?,
                    )
                }
                "HERALD_WORKER_HEALTH_ADDR" => {
                    self.worker.health_addr = Some(
                        value
                            .parse()
                            .map_err(|_| bad("must be IP:PORT, such as 127.0.0.1:9101".into()))?,
                    )
                }
                "HERALD_WORKER_CONCURRENCY" => {
                    self.worker.concurrency = value
                        .parse()
                        .map_err(|_| bad("must be a whole number".into()))?
                }
                "HERALD_THROTTLE_PER_ACCOUNT" => {
                    self.throttle.per_account = Some(
                        value
                            .parse()
                            .map_err(|e: herald_schedule::RateError| bad(e.to_string()))?,
                    )
                }
                "HERALD_THROTTLE_GLOBAL" => {
                    self.throttle.global = Some(
                        value
                            .parse()
                            .map_err(|e: herald_schedule::RateError| bad(e.to_string()))?,
                    )
                }
                "HERALD_SMTP_HOST"
                | "HERALD_SMTP_PORT"
                | "HERALD_SMTP_USERNAME"
                | "HERALD_SMTP_PASSWORD" => {
                    let TransportConfig::Smtp(smtp) = &mut self.transport else {
                        return Err(bad("the transport is not smtp".into()));
                    };
                    match name.as_str() {
                        "HERALD_SMTP_HOST" => smtp.host = value,
                        "HERALD_SMTP_PORT" => {
                            smtp.port = value
                                .parse()
                                .map_err(|_| bad("must be a port number".into()))?
                        }
                        "HERALD_SMTP_USERNAME" => smtp.username = Some(value),
                        _ => smtp.password = Some(value),
                    }
                }
                _ => {}
            }
        }
        Ok(self)
    }

    /// Reads `path` and applies the process environment's overrides.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        Self::from_toml(&text)?.apply_env(std::env::vars())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [platform]
        name = "Herald"
        sender = "mailer@herald.test"
        message_id_domain = "herald.test"
        bounce_domain = "bounces.herald.test"
        [tracking]
        base_url = "https://t.herald.test"
        secret = "0123456789abcdef0123456789abcdef"
        [dkim.platform]
        domain = "herald.test"
        selector = "s1"
        key_file = "key.pem"
        [transport]
        kind = "smtp"
        host = "127.0.0.1"
        port = 2525
        tls = "none"
        [throttle]
        per_account = "600/1m"
    "#;

    #[test]
    fn parses_with_defaults_and_overrides() {
        let c = Config::from_toml(MINIMAL).expect("parses");
        assert_eq!(c.database_url, "sqlite://herald.db?mode=rwc");
        assert_eq!(c.rules, SendingRules::default());
        assert_eq!(
            c.throttle.per_account.map(|r| r.to_string()),
            Some("600/1m".into())
        );
        let c = c
            .apply_env([
                (
                    "HERALD_DATABASE_URL".to_owned(),
                    "postgres://x/y".to_owned(),
                ),
                ("HERALD_SMTP_PORT".to_owned(), "2626".to_owned()),
                (
                    "HERALD_DOMAINS_NAMESERVER".to_owned(),
                    "127.0.0.1:5353".to_owned(),
                ),
            ])
            .expect("overrides");
        assert_eq!(c.database_url, "postgres://x/y");
        assert_eq!(c.domains.nameserver, Some(([127, 0, 0, 1], 5353).into()));
        let c = c
            .apply_env([("HERALD_DOMAINS_NAMESERVER".to_owned(), "::1".to_owned())])
            .expect("an IP alone is port 53");
        assert_eq!(c.domains.nameserver.map(|a| a.port()), Some(53));
        assert!(matches!(c.transport, TransportConfig::Smtp(ref s) if s.port == 2626));
    }

    #[test]
    fn the_documented_example_parses() {
        let c = Config::from_toml(include_str!("../../../docs/herald.example.toml"))
            .expect("docs/herald.example.toml parses");
        assert_eq!(
            c.throttle.per_account.map(|r| r.to_string()),
            Some("6000/15m".into())
        );
        assert_eq!(c.attachments.platform_limit, 7 * 1024 * 1024);
        assert_eq!(c.rules, SendingRules::default());
        assert_eq!(c.retry, RetryPolicy::default());
    }

    #[test]
    fn errors_name_the_field() {
        let err = Config::from_toml(
            &MINIMAL.replace("per_account = \"600/1m\"", "per_account = \"600 a minute\""),
        )
        .unwrap_err();
        assert!(err.to_string().contains("per_account"), "{err}");
        let err =
            Config::from_toml(&MINIMAL.replace("tls = \"none\"", "tls = \"maybe\"")).unwrap_err();
        assert!(err.to_string().contains("tls"), "{err}");
        let err = Config::from_toml(MINIMAL)
            .expect("ok")
            .apply_env([("HERALD_SMTP_PORT".into(), "x".into())])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment HERALD_SMTP_PORT: must be a port number"
        );
        let err = Config::from_toml(MINIMAL)
            .expect("ok")
            .apply_env([("HERALD_DOMAINS_NAMESERVER".into(), "dns.example".into())])
            .unwrap_err();
        assert!(
            err.to_string().contains("HERALD_DOMAINS_NAMESERVER"),
            "{err}"
        );
    }
}
