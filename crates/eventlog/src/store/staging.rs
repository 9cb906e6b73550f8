//! Staging: the tracking endpoints' events, written in groups and recorded later
//! ([`EventLog::stage`], [`EventLog::process_staged`]).

use super::*;

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
        segments: None,
        cost: None,
        currency: None,
    }
}

impl EventLog {
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
        let mut sql = Sql::new(self.backend);
        sql.push("DELETE FROM herald_staged_events WHERE id IN ")
            .bind_list(ids.iter().copied());
        sql.query().execute(&mut *tx).await?;
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
}
