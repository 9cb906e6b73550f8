//! The event log's storage: events with retention, totals and campaign
//! statistics kept apart, unique opens and clicks, and suppression.

use crate::campaign::{
    Campaign, CampaignBreakdown, CampaignFilter, CampaignHour, LinkClicks, rate,
};
use crate::event::{Event, EventKind, NewEvent};
use crate::{Error, Result, bots};
use chrono::{DateTime, Utc};
use herald_message::CampaignId;
use herald_message::SendKind;
use herald_schedule::sql::{Bind, Sql};
use herald_schedule::{Backend, SkipReason, Suppression};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};
use std::collections::{BTreeMap, HashMap};

mod campaigns;
mod contacts;
mod ingest;
mod staging;
mod suppression;
mod webhooks;
pub use staging::*;
pub use webhooks::*;

/// Status totals of an account (R-EVT-3); they never shrink when events are pruned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Totals {
    /// Accepted for sending.
    pub processed: u64,
    /// Delivered.
    pub delivered: u64,
    /// Messages opened at least once by a person (through Gmail's image proxy
    /// too; not Apple's prefetches, not bots).
    pub opened: u64,
    /// Messages with at least one click by a person.
    pub clicked: u64,
    /// Soft and hard bounces.
    pub bounced: u64,
    /// Spam complaints.
    pub complaints: u64,
    /// Blocked.
    pub blocked: u64,
    /// Unsubscribes.
    pub unsubscribed: u64,
    /// Opens by bots (counted apart, R-EVT-7).
    pub bot_opens: u64,
    /// Clicks flagged as link scanners or bots.
    pub bot_clicks: u64,
    /// Opens by privacy proxies that prefetch at delivery (Apple Mail Privacy
    /// Protection), counted apart from people's and bots'.
    pub prefetch_opens: u64,
    /// SMS, counted apart from email.
    pub sms: SmsTotals,
}

/// The SMS totals of an account or a campaign, apart from email's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SmsTotals {
    /// Texts processed (tried at the gateway).
    pub processed: u64,
    /// Texts the gateway accepted.
    pub sent: u64,
    /// Texts the gateway reported delivered.
    pub delivered: u64,
    /// Texts refused, undelivered or given up on.
    pub failed: u64,
    /// Segments of the processed texts (what a gateway bills).
    pub segments: u64,
    /// Numbers that opted out (accounts only; 0 in a campaign).
    pub opted_out: u64,
}

const TOTAL_COLUMNS: [&str; 17] = [
    "processed",
    "delivered",
    "opened",
    "clicked",
    "bounced",
    "complaints",
    "blocked",
    "unsubscribed",
    "bot_opens",
    "bot_clicks",
    "prefetch_opens",
    "sms_processed",
    "sms_sent",
    "sms_delivered",
    "sms_failed",
    "sms_segments",
    "sms_opted_out",
];

impl Totals {
    fn values(&self) -> [u64; 17] {
        [
            self.processed,
            self.delivered,
            self.opened,
            self.clicked,
            self.bounced,
            self.complaints,
            self.blocked,
            self.unsubscribed,
            self.bot_opens,
            self.bot_clicks,
            self.prefetch_opens,
            self.sms.processed,
            self.sms.sent,
            self.sms.delivered,
            self.sms.failed,
            self.sms.segments,
            self.sms.opted_out,
        ]
    }
}

/// Why an address is suppressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Suppressed {
    /// Hard bounce: no mail at all until unblocked.
    Blocklist,
    /// Unsubscribed: no mass mail.
    Unsubscribed,
    /// Complained: no mass mail.
    Complained,
    /// Opted out of SMS (the "email" is the E.164 number): no texts.
    SmsOptOut,
}

impl Suppressed {
    fn as_str(self) -> &'static str {
        match self {
            Suppressed::Blocklist => "blocklist",
            Suppressed::Unsubscribed => "unsubscribed",
            Suppressed::Complained => "complained",
            Suppressed::SmsOptOut => "sms_opt_out",
        }
    }
}

/// The event log on one database (shared with the outbox or its own).
#[derive(Debug, Clone)]
pub struct EventLog {
    pool: AnyPool,
    writer: AnyPool,
    backend: Backend,
    retention: i64,
    geo: Option<std::sync::Arc<crate::client::GeoIp>>,
    prefetch: std::sync::Arc<crate::bots::PrefetchRanges>,
    pub(crate) report_limits: crate::ReportLimits,
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// A stored Unix-milliseconds time; out of range is a corrupt row.
pub(crate) fn from_millis(ms: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| Error::Corrupt(format!("time {ms} ms")))
}

/// A stored count or number that must not be negative; a negative one is a
/// corrupt row, never silently 0.
pub(crate) fn stored_u64(n: i64) -> Result<u64> {
    u64::try_from(n).map_err(|_| Error::Corrupt(format!("negative count {n}")))
}

pub(crate) fn account_i64(account: u64) -> Result<i64> {
    i64::try_from(account).map_err(|_| Error::Invalid {
        field: "account",
        rule: "must be below 2^63".into(),
    })
}

impl EventLog {
    /// An event log on `pool` (e.g. the outbox's), keeping the last `retention`
    /// events per account (default 50,000).
    pub fn new(pool: AnyPool, backend: Backend, retention: usize) -> Self {
        EventLog {
            writer: pool.clone(),
            pool,
            backend,
            retention: i64::try_from(retention.max(1)).unwrap_or(i64::MAX),
            geo: None,
            prefetch: std::sync::Arc::new(crate::bots::PrefetchRanges::default()),
            report_limits: crate::ReportLimits::default(),
        }
    }

    /// Bounds reports by `limits` (default [`crate::ReportLimits::default`]).
    pub fn with_report_limits(mut self, limits: crate::ReportLimits) -> Self {
        self.report_limits = limits;
        self
    }

    /// The bounds reports are held to.
    pub fn report_limits(&self) -> &crate::ReportLimits {
        &self.report_limits
    }

    /// The database behind the log.
    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    /// Sends writes through `writer` (e.g. the outbox's [`herald_schedule::Outbox::writer`],
    /// so one SQLite database has one queue of writers); reads keep the pool.
    pub fn with_writer(mut self, writer: AnyPool) -> Self {
        self.writer = writer;
        self
    }

    /// The pool that writes go through.
    pub fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// Tells privacy prefetches apart by these address ranges (default: Apple's
    /// own network, [`crate::bots::PrefetchRanges`]).
    pub fn with_prefetch_ranges(mut self, ranges: crate::bots::PrefetchRanges) -> Self {
        self.prefetch = std::sync::Arc::new(ranges);
        self
    }

    /// Locates the IPs of opens and clicks in `geo` (country, city).
    pub fn with_geo(mut self, geo: crate::client::GeoIp) -> Self {
        self.geo = Some(std::sync::Arc::new(geo));
        self
    }

    /// The pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Runs this crate's migrations (versions 2000-2999), tolerating other
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

    /// The status totals of `account` (R-EVT-3), up to date with the last ingest.
    pub async fn totals(&self, account: u64) -> Result<Totals> {
        let row = sqlx::query(&format!(
            "SELECT {} FROM herald_totals WHERE account = $1",
            TOTAL_COLUMNS.join(", ")
        ))
        .bind(account_i64(account)?)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(Totals::default());
        };
        let v = |i: usize| -> Result<u64> { stored_u64(row.try_get::<i64, _>(i)?) };
        Ok(Totals {
            processed: v(0)?,
            delivered: v(1)?,
            opened: v(2)?,
            clicked: v(3)?,
            bounced: v(4)?,
            complaints: v(5)?,
            blocked: v(6)?,
            unsubscribed: v(7)?,
            bot_opens: v(8)?,
            bot_clicks: v(9)?,
            prefetch_opens: v(10)?,
            sms: SmsTotals {
                processed: v(11)?,
                sent: v(12)?,
                delivered: v(13)?,
                failed: v(14)?,
                segments: v(15)?,
                opted_out: v(16)?,
            },
        })
    }

    /// The most recent events of `account`, newest first: `limit` of them after
    /// skipping `offset`.
    pub async fn events(
        &self,
        account: u64,
        kind: Option<EventKind>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Event>> {
        let rows = sqlx::query(
            &format!(
                "SELECT {} FROM herald_events WHERE account = $1 AND ($2 = '' OR kind = $3) ORDER BY id DESC LIMIT $4 OFFSET $5",
                event_columns("")
            ),
        )
        .bind(account_i64(account)?)
        .bind(kind.map_or("", EventKind::as_str))
        .bind(kind.map_or("", EventKind::as_str))
        .bind(limit.clamp(0, 10_000))
        .bind(offset.max(0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Deletes everything the event log holds for `account`: events, totals,
    /// campaigns, suppressions and contact fields (R-ACC-1). Returns the
    /// number of rows removed.
    pub async fn delete_account(&self, account: u64) -> Result<u64> {
        let account = account_i64(account)?;
        let mut tx = self.writer.begin().await?;
        let mut removed = 0;
        for table in [
            "herald_events",
            "herald_totals",
            "herald_message_marks",
            "herald_campaigns",
            "herald_campaign_hours",
            "herald_campaign_unsubscribes",
            "herald_suppressions",
            "herald_person_fields",
            "herald_organisation_fields",
        ] {
            removed += sqlx::query(&format!("DELETE FROM {table} WHERE account = $1"))
                .bind(account)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(removed)
    }
}

/// The event columns in `event_from_row`'s order, each with `prefix`.
pub(crate) fn event_columns(prefix: &str) -> String {
    [
        "id",
        "kind",
        "at",
        "message",
        "campaign",
        "recipient",
        "person",
        "link",
        "label",
        "ip",
        "user_agent",
        "reply",
        "reason",
        "bot",
        "browser",
        "os",
        "device",
        "country",
        "city",
        "segments",
        "cost",
        "currency",
    ]
    .iter()
    .map(|c| format!("{prefix}{c}"))
    .collect::<Vec<_>>()
    .join(", ")
}

pub(crate) fn event_from_row(r: &AnyRow) -> Result<Event> {
    let kind: String = r.try_get("kind")?;
    Ok(Event {
        id: r.try_get("id")?,
        kind: EventKind::parse(&kind)
            .ok_or_else(|| Error::Corrupt(format!("unknown event kind `{kind}`")))?,
        at: DateTime::from_timestamp_millis(r.try_get("at")?).unwrap_or(DateTime::UNIX_EPOCH),
        message: r.try_get("message")?,
        campaign: r.try_get::<Option<i64>, _>("campaign")?.map(CampaignId),
        recipient: r.try_get("recipient")?,
        person: r.try_get("person")?,
        link: r.try_get("link")?,
        label: r.try_get("label")?,
        ip: r.try_get("ip")?,
        user_agent: r.try_get("user_agent")?,
        reply: r.try_get("reply")?,
        reason: r
            .try_get::<Option<String>, _>("reason")?
            .map(|name| {
                herald_schedule::BounceReason::parse(&name)
                    .ok_or_else(|| Error::Corrupt(format!("unknown bounce reason `{name}`")))
            })
            .transpose()?,
        bot: r.try_get::<i64, _>("bot")? != 0,
        origin: crate::bots::Origin::from_stored(r.try_get::<i64, _>("bot")?),
        browser: r.try_get("browser")?,
        os: r.try_get("os")?,
        device: r.try_get("device")?,
        country: r.try_get("country")?,
        city: r.try_get("city")?,
        segments: r.try_get("segments")?,
        cost: r.try_get("cost")?,
        currency: r.try_get("currency")?,
    })
}
