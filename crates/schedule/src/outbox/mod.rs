//! The durable outbox (R-SND-4, R-SND-5, R-SND-7) on sqlx, one code path for
//! SQLite (the embedded default, in WAL mode) and PostgreSQL.
//!
//! A send is stored once (its compiled template and sender) and each recipient
//! as one row holding only the merged values. Rows move through
//! `queued → claimed → delivered | deferred | bounced | failed`, or end
//! `cancelled` or `skipped`. Workers claim due rows with a lease; a claim whose
//! lease runs out (a crashed worker) is claimable again, and an outcome is only
//! recorded by the worker that still holds the claim.

use crate::rules::{SendingRules, When};
use crate::sql::{Bind, Sql};
use crate::throttle::Lane;
use crate::{Error, Result};
use chrono::{DateTime, Duration, Utc};
use herald_message::{
    Attachment, CampaignId, CompiledTemplate, Mailbox, MergeValues, SendKind, SenderIdentity,
};
use serde::{Deserialize, Serialize};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::collections::{HashMap, HashSet};

mod enqueue;
mod pending;
mod queue;
mod sms;
mod suppression;
mod types;
mod views;
pub use sms::*;
pub use suppression::*;
pub use types::*;

/// Which SQL database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, the embedded default.
    Sqlite,
    /// PostgreSQL, the scale-out backend.
    Postgres,
}

const EVENTS_PROCESSED: i64 = 1;
const EVENTS_OUTCOME: i64 = 2;

/// The outbox on one database.
#[derive(Debug, Clone)]
pub struct Outbox {
    pool: AnyPool,
    /// Where writes go: on SQLite a one-connection pool, so writers queue in
    /// Tokio and wake as soon as the lock is free, instead of sleeping in
    /// SQLite's busy handler; on PostgreSQL the same pool.
    writer: AnyPool,
    backend: Backend,
    rules: SendingRules,
    /// The shared throttle's rates, applied in every claim.
    throttle: crate::ThrottleConfig,
}

pub(crate) fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::UNIX_EPOCH)
}

fn kind_str(kind: SendKind) -> &'static str {
    match kind {
        SendKind::Individual => "individual",
        SendKind::Mass => "mass",
    }
}

/// The domain of `address`, lower case: what a claim matches against sites.
pub fn recipient_domain(address: &str) -> String {
    address
        .rsplit_once('@')
        .map_or("", |(_, d)| d)
        .to_ascii_lowercase()
}

/// A stored account number; a negative one is a corrupt row, never account 0.
pub(crate) fn account_u64(account: i64) -> Result<u64> {
    u64::try_from(account).map_err(|_| Error::Corrupt(format!("account number {account}")))
}

/// A stored count; a negative one is a corrupt row.
fn count_of(n: i64) -> Result<usize> {
    usize::try_from(n).map_err(|_| Error::Corrupt(format!("count {n}")))
}

/// A stored send kind (`individual`, `mass`); anything else is a corrupt row.
fn kind_of(kind: &str) -> Result<SendKind> {
    match kind {
        "individual" => Ok(SendKind::Individual),
        "mass" => Ok(SendKind::Mass),
        other => Err(Error::Corrupt(format!("unknown send kind `{other}`"))),
    }
}

pub(crate) fn account_i64(account: u64) -> Result<i64> {
    i64::try_from(account).map_err(|_| Error::Invalid {
        field: "account",
        rule: "must be below 2^63".into(),
    })
}

impl Outbox {
    /// Connects to `url` (`sqlite://path?mode=rwc`, `sqlite::memory:`,
    /// `postgres://…`), with up to `max_connections`. SQLite is put in WAL mode
    /// with a 5 s busy timeout. Does not migrate: call [`Outbox::migrate`].
    pub async fn connect(url: &str, max_connections: u32, rules: SendingRules) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(Error::Invalid {
                field: "database_url",
                rule: format!("`{url}` must start with sqlite: or postgres:"),
            });
        };
        let options = |max: u32| {
            let mut options = AnyPoolOptions::new().max_connections(max.max(1));
            if backend == Backend::Sqlite {
                options = options.after_connect(|conn, _| {
                    Box::pin(async move {
                        use sqlx::Executor;
                        conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;").await?;
                        Ok(())
                    })
                });
            }
            options
        };
        let pool = options(max_connections).connect(url).await?;
        let writer = match backend {
            Backend::Sqlite => options(1).connect(url).await?,
            Backend::Postgres => pool.clone(),
        };
        Ok(Outbox {
            pool,
            writer,
            backend,
            rules,
            throttle: crate::ThrottleConfig {
                per_account: None,
                global: None,
                sms: None,
            },
        })
    }

    /// The account store on this outbox's database.
    pub fn accounts(&self) -> crate::Accounts {
        crate::Accounts::new(self.pool.clone(), self.writer.clone())
    }

    /// The receiving sites and their back-off state on this outbox's database.
    pub fn sites(&self) -> crate::Sites {
        crate::Sites::new(self.pool.clone(), self.writer.clone())
    }

    /// The dashboard's sign-in links and sessions on this outbox's database.
    pub fn sessions(&self) -> crate::Sessions {
        crate::Sessions::new(self.pool.clone(), self.writer.clone())
    }

    /// The pool that writes go through (see [`Outbox::pool`] for reads): share
    /// it with other crates writing the same database, such as the event log.
    pub fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// The database behind this outbox.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// This outbox with the shared throttle's rates: every claim, by any
    /// worker on the database, takes only what the per-account mass rate and
    /// the global rate let go now (see [`Outbox::claim_batch`]). Without it
    /// claims are unthrottled.
    pub fn with_throttle(mut self, throttle: crate::ThrottleConfig) -> Self {
        self.throttle = throttle;
        self
    }

    /// The throttle's rates this outbox applies.
    pub fn throttle(&self) -> &crate::ThrottleConfig {
        &self.throttle
    }

    /// The sending rules this outbox enforces.
    pub fn rules(&self) -> &SendingRules {
        &self.rules
    }

    /// The pool, for the crates that share the database.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Runs this crate's migrations (versions 1000-1999), tolerating other
    /// crates' rows in `_sqlx_migrations`.
    pub async fn migrate(&self) -> Result<()> {
        let mut migrator = match self.backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("migrations/postgres"),
        };
        migrator.set_ignore_missing(true);
        migrator.run(&self.writer).await?;
        Ok(())
    }

    /// Whether the database answers (a readiness probe: one trivial query).
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}
