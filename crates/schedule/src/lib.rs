//! Sending and scheduling for Herald: the sending rules (R-SND-1, R-SND-2), the
//! throttle (R-SND-3) and the durable outbox (R-SND-4, R-SND-5, R-SND-7).
//!
//! The rules are pure functions of a request and the time, which the caller
//! passes in. The state is the outbox and, beside it, the accounts that may
//! send (rules accepted, API key digests, sending domains and their DKIM keys):
//! sqlx on SQLite (embedded default) or PostgreSQL, one SQL code path through
//! sqlx's `Any` driver, with this crate's own migrations (versions 1000-1999).
//!
//! ```
//! use herald_schedule::{SendingRules, When};
//! use chrono::{Duration, TimeZone, Utc};
//!
//! let rules = SendingRules::default();
//! let now = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();
//! // 101 recipients must be scheduled at least 10 minutes ahead.
//! assert!(rules.check(now, 101, When::Now).is_err());
//! assert!(rules.check(now, 101, When::At(now + Duration::minutes(10))).is_ok());
//! ```

mod accounts;
mod bounce;
mod delivery;
mod outbox;
mod rules;
mod sessions;
mod sites;
pub mod sql;
mod throttle;

pub use accounts::{
    Account, Accounts, Domain, DomainKey, NewAccount, check_domain, check_language, check_plan,
};
pub use bounce::{
    BounceReason, BounceRules, Evidence, RulesError, Verdict, enhanced_code, find_basic_code,
    find_enhanced_code,
};
pub use delivery::{Attempt, RetryPolicy, Stage, outcome};
pub use outbox::{
    Accepted, AcceptedSms, Backend, BounceClass, Channel, Claimed, ClaimedSms, Claims,
    MessageValues, NewRecipient, NewSend, NewSmsSend, NewText, NoSuppression, Outbox, Outcome,
    PendingEvents, ScheduledSend, SkipReason, SmsClaims, SmsText, State, StateCounts,
    StaticSuppression, StoredMessage, StoredSend, StoredSmsSend, Suppression, recipient_domain,
};
pub use rules::{RuleViolation, SendingRules, When};
pub use sessions::{DashboardUser, Session, Sessions};
pub use sites::{NewSite, RECENT_REPLIES, SiteAction, SiteLimits, SiteReply, SiteState, Sites};
pub use throttle::{Gcra, Lane, Rate, RateError, Throttle, ThrottleConfig, unit_seconds};

/// Errors of this crate.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A sending rule refused the send.
    #[error(transparent)]
    Rule(#[from] RuleViolation),
    /// A parameter that breaks a rule.
    #[error("{field}: {rule}")]
    Invalid {
        /// The parameter.
        field: &'static str,
        /// The rule.
        rule: String,
    },
    /// No such send (or not this account's).
    #[error("{what} {id} not found")]
    NotFound {
        /// What was looked for.
        what: &'static str,
        /// Its id.
        id: i64,
    },
    /// Deleting a send whose messages have all gone.
    #[error("send {send_id}: nothing is left to cancel; every message has been sent")]
    NothingToCancel {
        /// The send.
        send_id: i64,
    },
    /// Another account has already verified this sending domain: a domain
    /// is verified by one account at a time (it proves the DNS is theirs).
    #[error(
        "domain {domain}: another account has verified it; a sending domain belongs to one account"
    )]
    DomainTaken {
        /// The domain.
        domain: String,
    },
    /// Stored data this code cannot read.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// JSON of stored templates and values.
    #[error("stored JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
