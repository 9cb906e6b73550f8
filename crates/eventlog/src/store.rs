//! The event log's storage: events with retention, totals and campaign
//! statistics kept apart, unique opens and clicks, and suppression.

use crate::campaign::{Campaign, rate};
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
}

const TOTAL_COLUMNS: [&str; 11] = [
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
];

impl Totals {
    fn values(&self) -> [u64; 11] {
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
}

impl Suppressed {
    fn as_str(self) -> &'static str {
        match self {
            Suppressed::Blocklist => "blocklist",
            Suppressed::Unsubscribed => "unsubscribed",
            Suppressed::Complained => "complained",
        }
    }
}

const CAMPAIGN_COLUMNS: &str =
    "id, name, first_subject, emails, delivered, opened, clicked, starred, archived";

fn campaign_row(r: &AnyRow) -> Result<Campaign> {
    let n = |c: &str| -> Result<u64> { stored_u64(r.try_get::<i64, _>(c)?) };
    let (delivered, opened, clicked) = (n("delivered")?, n("opened")?, n("clicked")?);
    Ok(Campaign {
        id: CampaignId(r.try_get("id")?),
        name: r.try_get("name")?,
        first_subject: r.try_get("first_subject")?,
        emails: n("emails")?,
        delivered,
        opened,
        clicked,
        open_rate: rate(opened, delivered),
        click_rate: rate(clicked, delivered),
        starred: r.try_get::<i64, _>("starred")? != 0,
        archived: r.try_get::<i64, _>("archived")? != 0,
    })
}

/// An event serialized for [`EventLog::stage`]: made by the caller (on its
/// own thread), so the task that stages a group only joins them. The form is
/// a positional JSON array (no field names), about half the bytes of the
/// event's own JSON, since a burst of clicks writes every byte to the WAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedEvent(String);

/// The positional form: kind, time (Unix ms), account, message, campaign,
/// recipient, person, link, label, IP, User-Agent, reply, seconds since delivery.
type Compact<'a> = (
    EventKind,
    i64,
    u64,
    Option<i64>,
    Option<i64>,
    std::borrow::Cow<'a, str>,
    Option<std::borrow::Cow<'a, str>>,
    Option<u16>,
    Option<std::borrow::Cow<'a, str>>,
    Option<std::borrow::Cow<'a, str>>,
    Option<std::borrow::Cow<'a, str>>,
    Option<std::borrow::Cow<'a, str>>,
    Option<i64>,
);

impl StagedEvent {
    /// Serializes `event`.
    pub fn new(event: &NewEvent) -> Result<Self> {
        use std::borrow::Cow::Borrowed;
        let c: Compact<'_> = (
            event.kind,
            millis(event.at),
            event.account,
            event.message,
            event.campaign.map(|c| c.0),
            Borrowed(event.recipient.as_str()),
            event.person.as_deref().map(Borrowed),
            event.link,
            event.label.as_deref().map(Borrowed),
            event.ip.as_deref().map(Borrowed),
            event.user_agent.as_deref().map(Borrowed),
            event.reply.as_deref().map(Borrowed),
            event.since_delivery_secs,
        );
        serde_json::to_string(&c)
            .map(StagedEvent)
            .map_err(|e| Error::Corrupt(e.to_string()))
    }
}

fn unstage(c: Compact<'_>) -> NewEvent {
    let own = |v: Option<std::borrow::Cow<'_, str>>| v.map(std::borrow::Cow::into_owned);
    NewEvent {
        kind: c.0,
        at: chrono::TimeZone::timestamp_millis_opt(&Utc, c.1)
            .single()
            .unwrap_or_default(),
        account: c.2,
        message: c.3,
        campaign: c.4.map(CampaignId),
        recipient: c.5.into_owned(),
        person: own(c.6),
        link: c.7,
        label: own(c.8),
        ip: own(c.9),
        user_agent: own(c.10),
        reply: own(c.11),
        // Staged events are tracking hits (opens, clicks): never a bounce reason.
        reason: None,
        since_delivery_secs: c.12,
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

/// A stored count or number that must not be negative; a negative one is a
/// corrupt row, never silently 0.
pub(crate) fn stored_u64(n: i64) -> Result<u64> {
    u64::try_from(n).map_err(|_| Error::Corrupt(format!("negative count {n}")))
}

fn account_i64(account: u64) -> Result<i64> {
    i64::try_from(account).map_err(|_| Error::Invalid {
        field: "account",
        rule: "must be below 2^63".into(),
    })
}

#[derive(Default)]
struct CampaignDelta {
    emails: i64,
    delivered: i64,
    opened: i64,
    clicked: i64,
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

    /// Parameter `n` of a statement that uses each parameter once, in order.
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

    /// Records `events` in one transaction (R-EVT-1, R-EVT-3): flags bot
    /// traffic, updates totals, unique opens and clicks and campaign statistics,
    /// applies suppression (hard bounce → blocklist; complaint or unsubscribe →
    /// no mass mail), and prunes each touched account to its last `retention`
    /// events. Nothing is recorded if any part fails.
    pub async fn ingest(&self, events: &[NewEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin().await?;
        self.ingest_in(&mut tx, events).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores `events` durably for [`EventLog::process_staged`]: one row
    /// holding them all, in one cheap transaction (no parsing, no counting),
    /// the tracking endpoints' fast path.
    pub async fn stage(&self, events: &[StagedEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut json =
            String::with_capacity(events.iter().map(|e| e.0.len() + 1).sum::<usize>() + 2);
        json.push('[');
        for (i, e) in events.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            json.push_str(&e.0);
        }
        json.push(']');
        sqlx::query("INSERT INTO herald_staged_events (events) VALUES ($1)")
            .bind(json)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Records staged events, oldest first, about `limit` of them (whole
    /// staged groups; at least one), like [`EventLog::ingest`], and removes
    /// them from the stage, in one transaction; returns how many events it
    /// recorded (0: the stage is empty). On PostgreSQL several processes may
    /// call it at once (`SKIP LOCKED`).
    pub async fn process_staged(&self, limit: usize) -> Result<usize> {
        let mut tx = self.writer.begin().await?;
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let rows = sqlx::query(&format!(
            "SELECT id, events FROM herald_staged_events ORDER BY id LIMIT 64{lock}"
        ))
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        let mut ids = Vec::new();
        let mut events: Vec<NewEvent> = Vec::new();
        for row in &rows {
            if !ids.is_empty() && events.len() >= limit {
                break;
            }
            ids.push(row.try_get::<i64, _>(0)?);
            let text: String = row.try_get(1)?;
            // The stage only holds what `stage` wrote; a group that does not
            // parse is dropped rather than blocking every later event.
            if let Ok(group) = serde_json::from_str::<Vec<Compact<'_>>>(&text) {
                events.extend(group.into_iter().map(unstage));
            }
        }
        self.ingest_in(&mut tx, &events).await?;
        let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "DELETE FROM herald_staged_events WHERE id IN ({})",
            placeholders.join(",")
        );
        let mut q = sqlx::query(&sql);
        for id in &ids {
            q = q.bind(*id);
        }
        q.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(events.len())
    }

    /// Staged groups of events not processed yet.
    pub async fn staged(&self) -> Result<u64> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM herald_staged_events")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        stored_u64(n)
    }

    /// [`EventLog::ingest`] inside the caller's transaction `tx` (on this log's
    /// database), so the caller can commit other work with it atomically.
    pub async fn ingest_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        events: &[NewEvent],
    ) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut per_account: BTreeMap<i64, i64> = BTreeMap::new();
        for e in events {
            *per_account.entry(account_i64(e.account)?).or_default() += 1;
        }

        // 1. Reserve each account's sequence numbers (and make its totals row).
        let mut next_seq: BTreeMap<i64, i64> = BTreeMap::new();
        let mut last_seq: BTreeMap<i64, i64> = BTreeMap::new();
        for (account, n) in &per_account {
            sqlx::query("INSERT INTO herald_totals (account) VALUES ($1) ON CONFLICT DO NOTHING")
                .bind(*account)
                .execute(&mut **tx)
                .await?;
            // fetch_all, not fetch_one: SQLite finishes an UPDATE … RETURNING only
            // when the statement is stepped to its end.
            let rows = sqlx::query("UPDATE herald_totals SET events_seen = events_seen + $1 WHERE account = $2 RETURNING events_seen")
                .bind(*n)
                .bind(*account)
                .fetch_all(&mut **tx)
                .await?;
            let end: i64 = rows
                .first()
                .ok_or_else(|| Error::Corrupt(format!("no totals row for account {account}")))?
                .try_get(0)?;
            next_seq.insert(*account, end - n + 1);
            last_seq.insert(*account, end);
        }
        // 2. The events, each with its origin (person, prefetch, bot).
        let origin = bots::origins(events, &self.prefetch);
        let bot: Vec<bool> = origin.iter().map(|o| *o != bots::Origin::Person).collect();
        const ROWS: usize = 200;
        for (chunk_no, chunk) in events.chunks(ROWS).enumerate() {
            let mut sql = Sql::new(self.backend);
            sql.push(
                "INSERT INTO herald_events (account, kind, at, message, campaign, recipient, person, link, label, ip, user_agent, reply, reason, bot, seq, browser, os, device, country, city) VALUES ",
            );
            for (i, e) in chunk.iter().enumerate() {
                let account = account_i64(e.account)?;
                let seq = next_seq.entry(account).or_default();
                let ua = e
                    .user_agent
                    .as_deref()
                    .map(crate::client::parse_user_agent)
                    .unwrap_or_default();
                let (country, city) = match (&self.geo, e.ip.as_deref()) {
                    (Some(geo), Some(ip)) => geo.locate(ip),
                    _ => (None, None),
                };
                if i > 0 {
                    sql.push(",");
                }
                sql.bind_list([
                    Bind::from(account),
                    e.kind.as_str().into(),
                    millis(e.at).into(),
                    e.message.into(),
                    e.campaign.map(|c| c.0).into(),
                    e.recipient.to_ascii_lowercase().into(),
                    e.person.clone().into(),
                    e.link.map(i64::from).into(),
                    e.label.clone().into(),
                    e.ip.clone().into(),
                    e.user_agent.clone().into(),
                    e.reply.clone().into(),
                    e.reason.map(|r| r.as_str()).into(),
                    origin[chunk_no * ROWS + i].stored().into(),
                    (*seq).into(),
                    ua.browser.into(),
                    ua.os.into(),
                    ua.device.into(),
                    country.into(),
                    city.into(),
                ]);
                *seq += 1;
            }
            sql.query().execute(&mut **tx).await?;
        }
        // 3. First human open / click of each message: one insert, the new rows back.
        let mut marks: BTreeMap<(i64, i64, &'static str), Option<i64>> = BTreeMap::new();
        for (i, e) in events.iter().enumerate() {
            if matches!(e.kind, EventKind::Open | EventKind::Click)
                && !bot[i]
                && let Some(m) = e.message
            {
                let mark = if e.kind == EventKind::Open {
                    "open"
                } else {
                    "click"
                };
                marks
                    .entry((account_i64(e.account)?, m, mark))
                    .or_insert(e.campaign.map(|c| c.0));
            }
        }
        let mut firsts: Vec<(i64, i64, String)> = Vec::new();
        let keys: Vec<_> = marks.keys().copied().collect();
        for chunk in keys.chunks(300) {
            let mut sql = Sql::new(self.backend);
            sql.push("INSERT INTO herald_message_marks (account, message, mark) VALUES ");
            for (i, (a, m, k)) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(",");
                }
                sql.bind_list([Bind::from(*a), (*m).into(), (*k).into()]);
            }
            sql.push(" ON CONFLICT DO NOTHING RETURNING account, message, mark");
            let q = sql.query();
            for row in q.fetch_all(&mut **tx).await? {
                firsts.push((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?));
            }
        }
        // 4. Totals and campaign deltas.
        let mut totals: BTreeMap<i64, Totals> = BTreeMap::new();
        let mut campaigns: BTreeMap<i64, CampaignDelta> = BTreeMap::new();
        for (account, message, mark) in &firsts {
            let is_open = mark == "open";
            let t = totals.entry(*account).or_default();
            if is_open {
                t.opened += 1
            } else {
                t.clicked += 1
            }
            let key = (*account, *message, if is_open { "open" } else { "click" });
            if let Some(Some(c)) = marks.get(&key) {
                let d = campaigns.entry(*c).or_default();
                if is_open {
                    d.opened += 1
                } else {
                    d.clicked += 1
                }
            }
        }
        for (i, e) in events.iter().enumerate() {
            let account = account_i64(e.account)?;
            let t = totals.entry(account).or_default();
            match e.kind {
                EventKind::Processed => {
                    t.processed += 1;
                    if let Some(c) = e.campaign {
                        campaigns.entry(c.0).or_default().emails += 1;
                    }
                }
                EventKind::Delivered => {
                    t.delivered += 1;
                    if let Some(c) = e.campaign {
                        campaigns.entry(c.0).or_default().delivered += 1;
                    }
                }
                EventKind::Open if origin[i] == bots::Origin::Prefetch => t.prefetch_opens += 1,
                EventKind::Open if bot[i] => t.bot_opens += 1,
                EventKind::Click if bot[i] => t.bot_clicks += 1,
                EventKind::Open | EventKind::Click => {}
                EventKind::SoftBounce => t.bounced += 1,
                EventKind::HardBounce => {
                    t.bounced += 1;
                    // R-EVT-5: the person's email is flagged as bouncing.
                    if let Some(person) = &e.person {
                        sqlx::query(
                            "INSERT INTO herald_person_fields (account, person, namespace, field, value) VALUES ($1, $2, 'person', 'email_bouncing', 'true')
                             ON CONFLICT (account, person, namespace, field) DO UPDATE SET value = excluded.value",
                        )
                        .bind(account)
                        .bind(person.as_str())
                        .execute(&mut **tx)
                        .await?;
                    }
                    self.suppress_in(
                        tx,
                        account,
                        &e.recipient,
                        Suppressed::Blocklist,
                        e.at,
                        e.reply.as_deref(),
                    )
                    .await?;
                }
                EventKind::Blocked => t.blocked += 1,
                EventKind::SpamComplaint => {
                    t.complaints += 1;
                    self.suppress_in(
                        tx,
                        account,
                        &e.recipient,
                        Suppressed::Complained,
                        e.at,
                        None,
                    )
                    .await?;
                }
                // Nothing was sent: no total moves; the event is the record.
                EventKind::Failed => {}
                EventKind::Unsubscribe => {
                    // Counted once per address: a repeated unsubscribe adds nothing.
                    let new = self
                        .suppress_in(
                            tx,
                            account,
                            &e.recipient,
                            Suppressed::Unsubscribed,
                            e.at,
                            None,
                        )
                        .await?;
                    t.unsubscribed += u64::from(new);
                }
            }
        }
        let sets: Vec<String> = TOTAL_COLUMNS
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c} = {c} + ${}", i + 1))
            .collect();
        let totals_sql = format!(
            "UPDATE herald_totals SET {} WHERE account = ${}",
            sets.join(", "),
            TOTAL_COLUMNS.len() + 1
        );
        for (account, t) in &totals {
            let mut q = sqlx::query(&totals_sql);
            for v in t.values() {
                q = q.bind(i64::try_from(v).unwrap_or(i64::MAX));
            }
            q.bind(*account).execute(&mut **tx).await?;
        }
        // All campaigns' deltas in one statement per 60 campaigns.
        let deltas: Vec<(&i64, &CampaignDelta)> = campaigns.iter().collect();
        for chunk in deltas.chunks(200) {
            let mut sql = Sql::new(self.backend);
            sql.push("WITH d(id, emails, delivered, opened, clicked) AS (VALUES ");
            for (i, (id, c)) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.bind_list([**id, c.emails, c.delivered, c.opened, c.clicked]);
            }
            sql.push(
                ")
                 UPDATE herald_campaigns SET emails = herald_campaigns.emails + d.emails, delivered = herald_campaigns.delivered + d.delivered,
                    opened = herald_campaigns.opened + d.opened, clicked = herald_campaigns.clicked + d.clicked
                 FROM d WHERE herald_campaigns.id = d.id",
            );
            sql.query().execute(&mut **tx).await?;
        }
        // 5. Retention: each account keeps its last `retention` events, by sequence.
        for (account, end) in &last_seq {
            if *end > self.retention {
                sqlx::query("DELETE FROM herald_events WHERE account = $1 AND seq <= $2")
                    .bind(*account)
                    .bind(end - self.retention)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        Ok(())
    }

    async fn suppress_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        account: i64,
        email: &str,
        reason: Suppressed,
        at: DateTime<Utc>,
        detail: Option<&str>,
    ) -> Result<bool> {
        let done = sqlx::query("INSERT INTO herald_suppressions (account, email, reason, at, detail) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING")
            .bind(account)
            .bind(email.to_ascii_lowercase())
            .bind(reason.as_str())
            .bind(millis(at))
            .bind(detail.map(str::to_owned))
            .execute(&mut **tx)
            .await?;
        // Whether the address was newly suppressed for this reason.
        Ok(done.rows_affected() == 1)
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

    /// The clicks of one person, newest first (R-EVT-6).
    pub async fn click_history(&self, account: u64, person: &str) -> Result<Vec<Event>> {
        let rows = sqlx::query(
            &format!(
                "SELECT {} FROM herald_events WHERE account = $1 AND person = $2 AND kind = 'click' ORDER BY id DESC",
                event_columns("")
            ),
        )
        .bind(account_i64(account)?)
        .bind(person.to_owned())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Why `email` is suppressed for `account`, if it is.
    pub async fn suppressions(&self, account: u64, email: &str) -> Result<Vec<Suppressed>> {
        let rows = sqlx::query("SELECT reason FROM herald_suppressions WHERE account = $1 AND email = $2 ORDER BY reason")
            .bind(account_i64(account)?)
            .bind(email.to_ascii_lowercase())
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| match r.try_get::<String, _>(0).ok()?.as_str() {
                "blocklist" => Some(Suppressed::Blocklist),
                "unsubscribed" => Some(Suppressed::Unsubscribed),
                "complained" => Some(Suppressed::Complained),
                _ => None,
            })
            .collect())
    }

    /// One contact field of a person (`None` if unset), e.g. the
    /// `person.email_bouncing` flag a hard bounce sets.
    pub async fn person_field(
        &self,
        account: u64,
        person: &str,
        namespace: crate::report::Namespace,
        field: &str,
    ) -> Result<Option<String>> {
        let row = sqlx::query("SELECT value FROM herald_person_fields WHERE account = $1 AND person = $2 AND namespace = $3 AND field = $4")
            .bind(account_i64(account)?)
            .bind(person.to_owned())
            .bind(namespace.as_str())
            .bind(field.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok(r.try_get::<String, _>(0)?)).transpose()
    }

    /// The stored contact fields of the persons `ids` of `account`, by person
    /// (persons with no fields are absent).
    pub async fn persons(
        &self,
        account: u64,
        ids: &[String],
    ) -> Result<HashMap<String, crate::report::PersonRecord>> {
        use crate::report::{Namespace, PersonRecord};
        let account = account_i64(account)?;
        let mut out: HashMap<String, PersonRecord> = HashMap::new();
        for chunk in ids.chunks(500) {
            let mut sql = Sql::new(self.backend());
            sql.push(
                "SELECT person, namespace, field, value FROM herald_person_fields WHERE account = ",
            )
            .bind(account)
            .push(" AND person IN ")
            .bind_list(chunk.iter().map(|id| id.as_str()))
            .push(" ORDER BY person, namespace, field");
            let q = sql.query();
            for row in q.fetch_all(&self.pool).await? {
                let person: String = row.try_get(0)?;
                let namespace = Namespace::from_stored(&row.try_get::<String, _>(1)?);
                let field: String = row.try_get(2)?;
                let value: String = row.try_get(3)?;
                out.entry(person.clone())
                    .or_insert_with(|| PersonRecord {
                        id: person,
                        fields: Vec::new(),
                    })
                    .fields
                    .push((namespace, field, value));
            }
        }
        Ok(out)
    }

    /// The contact field names `account` has stored, by namespace: the merge
    /// fields its templates may use.
    pub async fn field_names(
        &self,
        account: u64,
    ) -> Result<Vec<(crate::report::Namespace, String)>> {
        use crate::report::Namespace;
        let rows = sqlx::query(
            "SELECT DISTINCT namespace, field FROM herald_person_fields WHERE account = $1",
        )
        .bind(account_i64(account)?)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    Namespace::from_stored(&r.try_get::<String, _>(0)?),
                    r.try_get::<String, _>(1)?,
                ))
            })
            .collect()
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

    /// Lifts the blocklist entry of `email` (the only way it is lifted, R-EVT-5).
    /// Returns whether there was one.
    pub async fn unblock(&self, account: u64, email: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM herald_suppressions WHERE account = $1 AND email = $2 AND reason = 'blocklist'")
            .bind(account_i64(account)?)
            .bind(email.to_ascii_lowercase())
            .execute(&self.writer)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// The campaign of `account` named `name`, created with `first_subject` if
    /// it does not exist yet (a name given again adds to that campaign).
    pub async fn campaign_for(
        &self,
        account: u64,
        name: &str,
        first_subject: &str,
        now: DateTime<Utc>,
    ) -> Result<CampaignId> {
        let mut tx = self.writer.begin().await?;
        let id = self
            .campaign_for_in(&mut tx, account, name, first_subject, now)
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// [`EventLog::campaign_for`] inside the caller's transaction `tx`, so the
    /// campaign is created only if what it is created for commits too.
    pub async fn campaign_for_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        account: u64,
        name: &str,
        first_subject: &str,
        now: DateTime<Utc>,
    ) -> Result<CampaignId> {
        let account = account_i64(account)?;
        sqlx::query("INSERT INTO herald_campaigns (account, name, first_subject, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
            .bind(account)
            .bind(name.to_owned())
            .bind(first_subject.to_owned())
            .bind(millis(now))
            .execute(&mut **tx)
            .await?;
        let id: i64 =
            sqlx::query("SELECT id FROM herald_campaigns WHERE account = $1 AND name = $2")
                .bind(account)
                .bind(name.to_owned())
                .fetch_one(&mut **tx)
                .await?
                .try_get(0)?;
        Ok(CampaignId(id))
    }

    /// The campaigns of `account`, newest first (archived ones only if asked).
    pub async fn campaigns(&self, account: u64, include_archived: bool) -> Result<Vec<Campaign>> {
        let rows = sqlx::query(&format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM herald_campaigns
             WHERE account = $1 AND (archived = 0 OR $2 = 1) ORDER BY created_at DESC, id DESC"
        ))
        .bind(account_i64(account)?)
        .bind(i64::from(include_archived))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(campaign_row).collect()
    }

    /// Campaign `id` of `account` (archived or not); `None` if `account` has
    /// no such campaign.
    pub async fn campaign(&self, account: u64, id: CampaignId) -> Result<Option<Campaign>> {
        sqlx::query(&format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM herald_campaigns WHERE account = $1 AND id = $2"
        ))
        .bind(account_i64(account)?)
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(campaign_row)
        .transpose()
    }

    /// Stars or unstars, archives or unarchives a campaign of `account`.
    /// Returns whether the campaign exists.
    pub async fn mark_campaign(
        &self,
        account: u64,
        id: CampaignId,
        starred: Option<bool>,
        archived: Option<bool>,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE herald_campaigns SET starred = COALESCE($1, starred), archived = COALESCE($2, archived) WHERE account = $3 AND id = $4",
        )
        .bind(starred.map(i64::from))
        .bind(archived.map(i64::from))
        .bind(account_i64(account)?)
        .bind(id.0)
        .execute(&self.writer)
        .await?;
        Ok(r.rows_affected() > 0)
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
    })
}

/// The send-time suppression hook of the outbox (R-SND-2), filled from the log:
/// the blocklist holds for all mail, unsubscribes and complaints for mass mail.
impl Suppression for EventLog {
    async fn suppressed(
        &self,
        account: u64,
        kind: SendKind,
        emails: &[&str],
    ) -> herald_schedule::Result<HashMap<String, SkipReason>> {
        let mut out = HashMap::new();
        let account = i64::try_from(account).unwrap_or(i64::MAX);
        for chunk in emails.chunks(500) {
            let mut sql = Sql::new(self.backend());
            sql.push("SELECT email, reason FROM herald_suppressions WHERE account = ")
                .bind(account)
                .push(" AND email IN ")
                .bind_list(chunk.iter().map(|e| e.to_ascii_lowercase()))
                .push("");
            let q = sql.query();
            for row in q.fetch_all(&self.pool).await? {
                let email: String = row.try_get(0)?;
                let reason: String = row.try_get(1)?;
                let skip = match reason.as_str() {
                    "blocklist" => SkipReason::Blocklisted,
                    _ if kind == SendKind::Individual => continue,
                    "unsubscribed" | "complained" => SkipReason::Unsubscribed,
                    _ => continue,
                };
                // The blocklist wins over the other reasons.
                let entry = out.entry(email).or_insert(skip);
                if skip == SkipReason::Blocklisted {
                    *entry = skip;
                }
            }
        }
        Ok(out)
    }
}
