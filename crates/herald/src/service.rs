//! The Herald service: the parts built from a validated [`Config`].

use crate::accounts::Accounts;
use crate::cache::Recent;
use crate::clock::Clock;
use crate::config::{Config, DkimKeyConfig};
use crate::transport::{Transport, TransportError};
use herald_auth::{DkimKey, DkimSigner};
use herald_eventlog::EventLog;
use herald_message::{Platform, Tracker};
use herald_schedule::{Outbox, RetryPolicy};
use std::collections::HashMap;
use std::sync::Arc;

/// Errors building or running the service.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From herald-message.
    #[error(transparent)]
    Message(#[from] herald_message::Error),
    /// From herald-auth.
    #[error(transparent)]
    Auth(#[from] herald_auth::Error),
    /// From herald-schedule.
    #[error(transparent)]
    Schedule(#[from] herald_schedule::Error),
    /// From herald-eventlog.
    #[error(transparent)]
    EventLog(#[from] herald_eventlog::Error),
    /// The configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A transport.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A delivery task panicked or was cancelled.
    #[error("delivery task: {0}")]
    Task(String),
    /// A file named in the configuration could not be read.
    #[error("{what} {path}: {error}")]
    ReadFile {
        /// The setting.
        what: &'static str,
        /// The file.
        path: String,
        /// Why.
        error: String,
    },
    /// The system's random number generator failed.
    #[error("random number generator: {0}")]
    Random(String),
    /// The SMS gateway.
    #[error(transparent)]
    Sms(#[from] crate::sms::SmsError),
    /// A stored DKIM key that cannot be sealed or opened ([`crate::vault`]).
    #[error("DKIM key vault: {0}")]
    Vault(String),
    /// A key file.
    #[error("dkim key_file {path}: {error}")]
    KeyFile {
        /// The file.
        path: String,
        /// Why.
        error: String,
    },
}

/// A file the configuration names, read and parsed; any failure stops the
/// start naming the setting and the file.
fn config_file<T>(
    what: &'static str,
    path: &std::path::Path,
    parse: impl FnOnce(Vec<u8>) -> Result<T, String>,
) -> Result<T, Error> {
    let error = |error: String| Error::ReadFile {
        what,
        path: path.display().to_string(),
        error,
    };
    parse(std::fs::read(path).map_err(|e| error(e.to_string()))?).map_err(error)
}

/// The shortest admin token accepted (docs/CONFIGURATION.md).
pub const MIN_ADMIN_TOKEN: usize = 32;

/// Sends kept by [`Herald::send_cached`].
const SEND_CACHE: usize = 1024;

/// DKIM signers: the platform's, and verified customer domains' by domain.
#[derive(Debug)]
pub struct Signers {
    /// Signs mail from unverified domains (`d=` the platform).
    pub platform: Arc<DkimSigner>,
    /// Signs mail from verified domains with their own key.
    pub domains: HashMap<String, Arc<DkimSigner>>,
}

impl Signers {
    /// The signer for mail from `from_domain`: the domain's own when it is
    /// verified and Herald has its key, else the platform's (R-MSG-1).
    pub fn for_sender(&self, from_domain: &str, verified: bool) -> &Arc<DkimSigner> {
        if verified && let Some(s) = self.domains.get(&from_domain.to_ascii_lowercase()) {
            return s;
        }
        &self.platform
    }
}

/// Everything the binaries need, built once.
pub struct Herald {
    /// The outbox.
    pub outbox: Outbox,
    /// The event log, on the outbox's database.
    pub events: EventLog,
    /// Token minting and checking.
    pub tracker: Tracker,
    /// The platform's identity.
    pub platform: Platform,
    /// DKIM signers.
    pub signers: Signers,
    /// Where mail goes.
    pub transport: Transport,
    /// Where mail over the attachment limit goes, if anywhere.
    pub fallback: Option<Transport>,
    /// Applies the back-off rules to the sites' shared state.
    pub observer: crate::destinations::Observer,
    /// Retries.
    pub retry: RetryPolicy,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// The configuration it was built from.
    pub config: Config,
    /// Accounts, API keys and sending domains.
    pub accounts: Accounts,
    /// Counters for `/metrics`.
    pub metrics: crate::metrics::Metrics,
    /// The SMS gateway, if one is configured.
    pub sms: Option<crate::sms::SmsGateway>,
    /// The pages' translations (English, French, German, Spanish).
    pub texts: Arc<crate::i18n::Texts>,
    domain_signers: Recent<(u64, String), DkimSigner>,
    /// `api.trusted_proxies`, parsed once.
    pub(crate) trusted_proxies: Vec<(std::net::IpAddr, u8)>,
    /// Seals and opens customer DKIM keys at rest (`domains.key_encryption_key`).
    pub vault: crate::vault::KeyVault,
    /// Failed API-key attempts per client address in the current minute.
    pub(crate) failed_keys: Recent<std::net::IpAddr, std::sync::atomic::AtomicU32>,
    sends: Recent<i64, herald_schedule::StoredSend>,
    messages: Recent<i64, MessageValues>,
}

pub use herald_schedule::MessageValues;

/// Messages kept by [`Herald::message_cached`], and for how long: a message
/// deleted with its account stops resolving on every server within that time.
const MESSAGE_CACHE: usize = 65_536;
const MESSAGE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

impl std::fmt::Debug for Herald {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Herald")
            .field("database_url", &self.config.database_url)
            .finish_non_exhaustive()
    }
}

fn load_signer(k: &DkimKeyConfig) -> Result<DkimSigner, Error> {
    let pem = std::fs::read_to_string(&k.key_file).map_err(|e| Error::KeyFile {
        path: k.key_file.display().to_string(),
        error: e.to_string(),
    })?;
    let key = DkimKey::from_pem(&pem).map_err(|e| Error::KeyFile {
        path: k.key_file.display().to_string(),
        error: e.to_string(),
    })?;
    Ok(DkimSigner::new(&k.domain, &k.selector, key)?)
}

impl Herald {
    /// Builds the service: validates every part of `config`, reads the key
    /// files, connects to the database and runs the migrations.
    pub async fn build(config: Config, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        let p = &config.platform;
        let platform = Platform::new(
            &p.name,
            &p.sender,
            &p.message_id_domain,
            &p.bounce_domain,
            &p.feedback_sender,
        )?;
        let tracker = Tracker::new(config.tracking.secret.as_bytes(), &config.tracking.base_url)?;
        let vault = crate::vault::KeyVault::new(
            config.domains.key_encryption_key.as_deref(),
            &config.domains.previous_key_encryption_keys,
        )?;
        if !vault.seals() {
            tracing::warn!(
                "domains.key_encryption_key is not set: customer DKIM keys are stored unencrypted"
            );
        }
        let mut trusted_proxies = Vec::with_capacity(config.api.trusted_proxies.len());
        for proxy in &config.api.trusted_proxies {
            let Some(prefix) = herald_eventlog::bots::parse_cidr(proxy) else {
                return Err(Error::Config(crate::config::ConfigError::Invalid {
                    field: "api.trusted_proxies",
                    rule: format!("`{proxy}` is not an address or an address prefix"),
                }));
            };
            trusted_proxies.push(prefix);
        }
        if let Some(token) = &config.api.admin_token
            && token.chars().count() < MIN_ADMIN_TOKEN
        {
            return Err(Error::Config(crate::config::ConfigError::Invalid {
                field: "api.admin_token",
                rule: format!(
                    "must be at least {MIN_ADMIN_TOKEN} characters (it has {}); leave it out to disable the admin endpoints",
                    token.chars().count()
                ),
            }));
        }
        let d = &config.dashboard;
        for plan in &d.plans {
            herald_schedule::check_plan(plan).map_err(|e| {
                Error::Config(crate::config::ConfigError::Invalid {
                    field: "dashboard.plans",
                    rule: e.to_string(),
                })
            })?;
        }
        for (field, value, min) in [
            ("dashboard.link_secs", d.link_secs, 10),
            ("dashboard.idle_minutes", d.idle_minutes, 1),
        ] {
            if value < min {
                return Err(Error::Config(crate::config::ConfigError::Invalid {
                    field,
                    rule: format!("must be at least {min} (it is {value})"),
                }));
            }
        }
        let texts = crate::i18n::Texts::new().map_err(|e| Error::Task(e.to_string()))?;
        let signers = Signers {
            platform: Arc::new(load_signer(&config.dkim.platform)?),
            domains: config
                .dkim
                .domains
                .iter()
                .map(|k| Ok((k.domain.to_ascii_lowercase(), Arc::new(load_signer(k)?))))
                .collect::<Result<_, Error>>()?,
        };
        let table = config
            .delivery
            .table()
            .map_err(|e| crate::transport::TransportError(e.to_string()))?;
        config
            .delivery
            .egress
            .validate()
            .map_err(|e| crate::transport::TransportError(e.to_string()))?;
        let transport = Transport::with_table(
            &config.transport,
            table.clone(),
            config.delivery.sites.clone(),
        )?;
        let fallback = config
            .fallback_transport
            .as_ref()
            .map(Transport::new)
            .transpose()?;
        let max_connections =
            u32::try_from(config.worker.concurrency.saturating_mul(2).clamp(4, 64)).unwrap_or(16);
        // A SQLite file Herald creates holds every tenant's data: owner only.
        if let Some(path) = crate::secrets::sqlite_path(&config.database_url)
            && !path.exists()
        {
            crate::secrets::write_private(&path, b"").map_err(|e| Error::ReadFile {
                what: "database_url",
                path: path.display().to_string(),
                error: e.to_string(),
            })?;
        }
        // The shared throttle: every claim, by any worker on the database,
        // draws on the same GCRA rows.
        let outbox = Outbox::connect(&config.database_url, max_connections, config.rules)
            .await?
            .with_throttle(config.throttle);
        outbox.migrate().await?;
        let mut events = EventLog::new(
            outbox.pool().clone(),
            outbox.backend(),
            config.events.retention,
        )
        // The event log writes through its pool, not the outbox's
        // one-connection writer: on SQLite, sharing that connection with the
        // click path measured 9,026 req/s where its own pool gives 22,749
        // (docs/PERFORMANCE.md). The worker's event transactions clear the
        // outbox's debt and open on the outbox's writer.
        .with_report_limits(config.events.reports);
        if let Some(path) = &config.events.geoip_database {
            let geo = config_file("events.geoip_database", path, |bytes| {
                herald_eventlog::GeoIp::from_bytes(bytes).map_err(|e| e.to_string())
            })?;
            events = events.with_geo(geo);
        }
        if let Some(path) = &config.events.apple_egress_ranges {
            let ranges = config_file("events.apple_egress_ranges", path, |bytes| {
                herald_eventlog::PrefetchRanges::parse_csv(&String::from_utf8_lossy(&bytes))
            })?;
            events = events.with_prefetch_ranges(ranges);
        }
        events.migrate().await?;
        let accounts = outbox.accounts();
        let sms = crate::sms::SmsGateway::new(&config.sms)?;
        Ok(Herald {
            sms,
            texts: Arc::new(texts),
            accounts,
            metrics: crate::metrics::Metrics::default(),
            domain_signers: Recent::new(usize::MAX, None),
            trusted_proxies,
            vault,
            failed_keys: Recent::new(100_000, Some(std::time::Duration::from_secs(60))),
            sends: Recent::new(SEND_CACHE, None),
            messages: Recent::new(MESSAGE_CACHE, Some(MESSAGE_TTL)),
            outbox,
            events,
            tracker,
            platform,
            signers,
            transport,
            fallback,
            observer: crate::destinations::Observer::new(table),
            retry: config.retry,
            clock,
            config,
        })
    }
}

impl Herald {
    /// The signer of a message from `from_domain` of `account`: the verified
    /// domain's own key (from the configuration, else the one Herald generated
    /// for the account), else the platform's (R-MSG-1).
    pub async fn signer_for(
        &self,
        account: u64,
        from_domain: &str,
        verified: bool,
    ) -> Result<Arc<DkimSigner>, Error> {
        let domain = from_domain.to_ascii_lowercase();
        if !verified || self.signers.domains.contains_key(&domain) {
            return Ok(Arc::clone(self.signers.for_sender(&domain, verified)));
        }
        let key = (account, domain);
        if let Some(s) = self.domain_signers.get(&key) {
            return Ok(s);
        }
        let signer =
            match crate::accounts::domain_signer(&self.accounts, &self.vault, account, &key.1)
                .await?
            {
                Some(s) => Arc::new(s),
                None => return Ok(Arc::clone(&self.signers.platform)),
            };
        self.domain_signers.insert(key, Arc::clone(&signer));
        Ok(signer)
    }

    /// The stored send `send_id`, from a cache of recent sends (a send's
    /// template and sender never change once stored). The tracking endpoints
    /// use it so a click does not parse the send's template each time.
    pub async fn send_cached(
        &self,
        send_id: i64,
    ) -> Result<Arc<herald_schedule::StoredSend>, Error> {
        if let Some(s) = self.sends.get(&send_id) {
            return Ok(s);
        }
        let send = Arc::new(self.outbox.send(send_id).await?);
        self.sends.insert(send_id, Arc::clone(&send));
        Ok(send)
    }

    /// What a tracking link of message `id` needs, from a cache of recently
    /// clicked or opened messages (their values never change), else the outbox.
    pub async fn message_cached(&self, id: i64) -> Result<Option<Arc<MessageValues>>, Error> {
        if let Some(m) = self.messages.get(&id) {
            return Ok(Some(m));
        }
        let Some(m) = self.outbox.message_values(id).await? else {
            return Ok(None);
        };
        let m = Arc::new(m);
        self.messages.insert(id, Arc::clone(&m));
        Ok(Some(m))
    }

    /// Forgets the cached signers of `account` (after its domains change).
    pub fn forget_signers(&self, account: u64) {
        self.domain_signers.retain(|(a, _), _| *a != account);
    }

    /// Permanently deletes account `id` and everything Herald holds for it:
    /// its keys and domains, its sends and messages (its tracking links stop
    /// resolving), its events, totals, campaigns, suppressions and contacts
    /// (R-ACC-1).
    pub async fn delete_account(&self, id: u64) -> Result<(), Error> {
        self.accounts.get(id).await?;
        // Record what the tracking endpoints staged first, so none of the
        // account's events are recorded after its data is gone.
        while self.events.process_staged(1000).await? > 0 {}
        self.outbox.delete_account(id).await?;
        self.events.delete_account(id).await?;
        self.accounts.delete(id).await?;
        self.forget_signers(id);
        self.sends.retain(|_, s| s.account != id);
        self.messages.retain(|_, m| m.message.account != id);
        Ok(())
    }
}
