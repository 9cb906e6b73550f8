//! The event log for Herald (R-EVT-1 … R-EVT-7): every event of every sent
//! email, status totals and campaign statistics kept apart from the events so
//! they never shrink when old events are pruned, unique opens and clicks, bot
//! and proxy traffic counted apart, inbound bounces and complaints classified and
//! mapped back to their message, and the suppression list the outbox consults.
//!
//! Storage is sqlx (SQLite or PostgreSQL, the outbox's pool or another), with
//! this crate's own migrations (versions 2000-2999).

pub mod bots;
pub mod campaign;
pub mod client;
mod event;
pub mod inbound;
pub mod report;
mod store;

pub use bots::{Origin, PrefetchRanges, flags as bot_flags, is_bot, origins};
pub use campaign::{
    Campaign, CampaignBreakdown, CampaignFilter, CampaignHour, LinkClicks,
    individual_campaign_name, mass_campaign_name,
};
pub use client::{GeoIp, UserAgent, parse_user_agent};
pub use event::{Event, EventKind, NewEvent};
pub use inbound::{DsnRecipient, Inbound, InboundKind};
pub use report::{
    EventField, Filter, Namespace, ORGANISATION_ID, OrganisationRecord, PersonRecord, ReportLimits,
    ReportQuery, Value,
};
pub use store::{
    EventLog, OwedDelivery, SmsTotals, StagedEvent, Suppressed, Totals, WebhookAttempt,
    WebhookEndpoint, webhook_payload,
};

/// The label of an unsubscribe from one campaign only ("stop this kind of
/// newsletter"): the address gets no more mass mail of that campaign.
pub const UNSUBSCRIBE_CAMPAIGN: &str = "campaign";

/// Errors of this crate.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A parameter that breaks a rule.
    #[error("{field}: {rule}")]
    Invalid {
        /// The parameter.
        field: &'static str,
        /// The rule.
        rule: String,
    },
    /// A report over one of its bounds ([`ReportLimits`]).
    #[error("{field}: {rule}")]
    Limit {
        /// The part of the report at fault, e.g. `filters[3].value`.
        field: String,
        /// The bound.
        rule: String,
    },
    /// A report query ran past [`ReportLimits::timeout_ms`] and was stopped.
    #[error(
        "the report ran longer than {ms} ms and was stopped; narrow it (fewer `contains` filters, a time range)"
    )]
    TimedOut {
        /// The limit, in milliseconds.
        ms: u64,
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
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for herald_schedule::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Database(d) => herald_schedule::Error::Database(d),
            other => herald_schedule::Error::Corrupt(other.to_string()),
        }
    }
}
