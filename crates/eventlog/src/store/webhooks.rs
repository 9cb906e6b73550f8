//! Event webhooks' storage (issue 14, R-HOOK-1): endpoints, the deliveries
//! recorded events owe them, and the delivery log. The owed rows are written
//! by [`EventLog::ingest_in`] in the transaction that records the events, so
//! an event is never recorded without its deliveries.

use super::*;

type Tx<'t> = sqlx::Transaction<'t, sqlx::Any>;

/// Days an endpoint's delivery log is kept.
pub const LOG_DAYS: i64 = 30;

/// An endpoint as stored (its secrets included: the facade signs with them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// Its number.
    pub id: i64,
    /// The account it belongs to.
    pub account: u64,
    /// Where deliveries go.
    pub url: String,
    /// The event kinds it wants; empty: every kind.
    pub kinds: Vec<EventKind>,
    /// The current signing secret (`whsec_…`).
    pub secret: String,
    /// During a rotation, the previous secret, also signed with until `previous_until`.
    pub previous_secret: Option<String>,
    /// The end of the rotation.
    pub previous_until: Option<DateTime<Utc>>,
    /// Whether deliveries go out.
    pub enabled: bool,
    /// Why it was disabled (`410 Gone`, failing for days), if it was.
    pub disabled_reason: Option<String>,
    /// The first failure of the current run of failures.
    pub failing_since: Option<DateTime<Utc>>,
    /// Batches sent so far.
    pub sequence: i64,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// One owed delivery claimed for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwedDelivery {
    /// The queue row.
    pub id: i64,
    /// The endpoint.
    pub endpoint: i64,
    /// The event's stable id.
    pub event_id: String,
    /// The event as sent (JSON).
    pub payload: String,
    /// Attempts before this one.
    pub attempts: u32,
}

/// One line of an endpoint's delivery log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookAttempt {
    /// When.
    pub at: DateTime<Utc>,
    /// Events in the batch.
    pub events: u32,
    /// The HTTP status, if there was an answer.
    pub status: Option<u16>,
    /// How long it took.
    pub latency_ms: u64,
    /// The response's first bytes, or the error.
    pub excerpt: String,
    /// The batch's sequence number at the endpoint.
    pub sequence: i64,
    /// Its number in the log (0 before it is logged): what
    /// [`EventLog::replay_webhook_attempt`] names.
    pub id: i64,
    /// The ids of the events it carried (`evt_<account>_<number>`, or a test event's).
    pub event_ids: Vec<String>,
}

fn kinds_column(kinds: &[EventKind]) -> String {
    if kinds.is_empty() {
        String::new()
    } else {
        let mut s = String::from(",");
        for k in kinds {
            s.push_str(k.as_str());
            s.push(',');
        }
        s
    }
}

fn endpoint_from_row(row: &AnyRow) -> Result<WebhookEndpoint> {
    let kinds: String = row.try_get("kinds")?;
    let account: i64 = row.try_get("account")?;
    let enabled: i64 = row.try_get("enabled")?;
    Ok(WebhookEndpoint {
        id: row.try_get("id")?,
        account: u64::try_from(account)
            .map_err(|_| Error::Corrupt(format!("webhook account {account}")))?,
        url: row.try_get("url")?,
        kinds: kinds
            .split(',')
            .filter(|k| !k.is_empty())
            .map(|k| EventKind::parse(k).ok_or_else(|| Error::Corrupt(format!("event kind `{k}`"))))
            .collect::<Result<_>>()?,
        secret: row.try_get("secret")?,
        previous_secret: row.try_get("previous_secret")?,
        previous_until: row
            .try_get::<Option<i64>, _>("previous_until")?
            .map(from_millis)
            .transpose()?,
        enabled: enabled != 0,
        disabled_reason: row.try_get("disabled_reason")?,
        failing_since: row
            .try_get::<Option<i64>, _>("failing_since")?
            .map(from_millis)
            .transpose()?,
        sequence: row.try_get("sequence")?,
        created_at: from_millis(row.try_get("created_at")?)?,
    })
}

/// The event columns a replay rebuilds a payload from.
const REPLAY_COLUMNS: &str = "kind, at, message, campaign, recipient, person, link, label, reply, reason, seq, segments, cost, currency";

const ENDPOINT_COLUMNS: &str = "id, account, url, kinds, secret, previous_secret, previous_until, enabled, disabled_reason, failing_since, sequence, created_at";

/// The event as a webhook delivers it: `{id, type, timestamp, data}`.
pub fn webhook_payload(event_id: &str, e: &NewEvent) -> String {
    let mut data = serde_json::json!({
        "account": e.account,
        "kind": e.kind.as_str(),
        "message": e.message,
        "campaign": e.campaign.map(|c| c.0),
        "recipient": e.recipient.to_ascii_lowercase(),
        "person": e.person,
        "link": e.link,
        "label": e.label,
        "reply": e.reply,
        "reason": e.reason.map(|r| r.as_str()),
    });
    if e.kind.is_sms() {
        data["segments"] = serde_json::json!(e.segments);
        data["cost"] = serde_json::json!(e.cost);
        data["currency"] = serde_json::json!(e.currency);
    }
    // `email.delivered`, `sms.sent`: the channel, then what happened.
    let kind = e.kind.as_str();
    let kind_type = match kind.strip_prefix("sms_") {
        Some(k) => format!("sms.{k}"),
        None => format!("email.{kind}"),
    };
    serde_json::json!({
        "id": event_id,
        "type": kind_type,
        "timestamp": e.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    })
    .to_string()
}

impl EventLog {
    /// Step 7 of ingestion: the deliveries `events` owe the accounts' enabled
    /// endpoints that want their kind, in the same transaction. `seqs[i]` is
    /// event `i`'s sequence number in its account.
    pub(super) async fn owe_webhooks(
        &self,
        tx: &mut Tx<'_>,
        events: &[NewEvent],
        seqs: &[i64],
    ) -> Result<()> {
        let mut accounts: Vec<i64> = events
            .iter()
            .map(|e| account_i64(e.account))
            .collect::<Result<_>>()?;
        accounts.sort_unstable();
        accounts.dedup();
        let mut sql = Sql::new(self.backend);
        sql.push("SELECT id, account, kinds FROM herald_webhook_endpoints WHERE enabled = 1 AND account IN ");
        sql.bind_list(accounts.iter().copied());
        let endpoints: Vec<(i64, i64, String)> = sql
            .query()
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<_>>()?;
        if endpoints.is_empty() {
            return Ok(());
        }
        let mut rows: Vec<[Bind; 5]> = Vec::new();
        for (e, seq) in events.iter().zip(seqs) {
            let account = account_i64(e.account)?;
            let kind = format!(",{},", e.kind.as_str());
            let event_id = format!("evt_{account}_{seq}");
            let mut payload = None;
            for (id, a, kinds) in &endpoints {
                if *a != account || !(kinds.is_empty() || kinds.contains(&kind)) {
                    continue;
                }
                let p = payload.get_or_insert_with(|| webhook_payload(&event_id, e));
                rows.push([
                    Bind::from(*id),
                    Bind::from(event_id.as_str()),
                    Bind::from(p.as_str()),
                    // Owed from the moment the event happened.
                    Bind::from(millis(e.at)),
                    Bind::from(millis(e.at)),
                ]);
            }
        }
        for chunk in rows.chunks(100) {
            let mut sql = Sql::new(self.backend);
            sql.push("INSERT INTO herald_webhook_queue (endpoint, event_id, payload, due_at, created_at) VALUES ");
            for (i, r) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.bind_list(r.iter().cloned());
            }
            sql.query().execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Registers an endpoint of `account` (the URL already checked by the caller).
    pub async fn create_webhook(
        &self,
        account: u64,
        url: &str,
        kinds: &[EventKind],
        secret: &str,
        now: DateTime<Utc>,
    ) -> Result<WebhookEndpoint> {
        let rows = sqlx::query(&format!(
            "INSERT INTO herald_webhook_endpoints (account, url, kinds, secret, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING {ENDPOINT_COLUMNS}"
        ))
        .bind(account_i64(account)?)
        .bind(url)
        .bind(kinds_column(kinds))
        .bind(secret)
        .bind(millis(now))
        .fetch_all(&self.writer)
        .await?;
        rows.first()
            .map(endpoint_from_row)
            .ok_or_else(|| Error::Corrupt("no endpoint row returned".into()))?
    }

    /// The endpoints of `account`, by number.
    pub async fn webhooks(&self, account: u64) -> Result<Vec<WebhookEndpoint>> {
        sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM herald_webhook_endpoints WHERE account = $1 ORDER BY id"
        ))
        .bind(account_i64(account)?)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(endpoint_from_row)
        .collect()
    }

    /// Endpoint `id` of `account` (none: not found, or another account's).
    pub async fn webhook(&self, account: u64, id: i64) -> Result<Option<WebhookEndpoint>> {
        Ok(self
            .webhooks_by_id(&[id])
            .await?
            .into_iter()
            .find(|w| w.account == account))
    }

    /// Endpoints by number, whatever their account (the delivery loop's).
    pub async fn webhooks_by_id(&self, ids: &[i64]) -> Result<Vec<WebhookEndpoint>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = Sql::new(self.backend);
        sql.push(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM herald_webhook_endpoints WHERE id IN "
        ));
        sql.bind_list(ids.iter().copied());
        sql.query()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(endpoint_from_row)
            .collect()
    }

    /// Changes endpoint `id` of `account`: its URL, kinds, and whether it is
    /// enabled (enabling clears the reason it was disabled and its failures).
    /// Returns the endpoint, none when not found.
    pub async fn update_webhook(
        &self,
        account: u64,
        id: i64,
        url: Option<&str>,
        kinds: Option<&[EventKind]>,
        enabled: Option<bool>,
        now: DateTime<Utc>,
    ) -> Result<Option<WebhookEndpoint>> {
        sqlx::query(
            "UPDATE herald_webhook_endpoints SET url = COALESCE($1, url), kinds = COALESCE($2, kinds),
                enabled = COALESCE($3, enabled),
                disabled_reason = CASE WHEN $3 = 1 THEN NULL ELSE disabled_reason END,
                failing_since = CASE WHEN $3 = 1 THEN NULL ELSE failing_since END,
                updated_at = $4
             WHERE id = $5 AND account = $6",
        )
        .bind(url)
        .bind(kinds.map(kinds_column))
        .bind(enabled.map(i64::from))
        .bind(millis(now))
        .bind(id)
        .bind(account_i64(account)?)
        .execute(&self.writer)
        .await?;
        self.webhook(account, id).await
    }

    /// Deletes endpoint `id` of `account` with its queue and log; whether it existed.
    pub async fn delete_webhook(&self, account: u64, id: i64) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        for table in ["herald_webhook_queue", "herald_webhook_log"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE endpoint IN (SELECT id FROM herald_webhook_endpoints WHERE id = $1 AND account = $2)"
            ))
            .bind(id)
            .bind(account_i64(account)?)
            .execute(&mut *tx)
            .await?;
        }
        let n = sqlx::query("DELETE FROM herald_webhook_endpoints WHERE id = $1 AND account = $2")
            .bind(id)
            .bind(account_i64(account)?)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Starts a rotation: `secret` signs from now on, the current one too
    /// until `until`. Returns the endpoint, none when not found.
    pub async fn rotate_webhook_secret(
        &self,
        account: u64,
        id: i64,
        secret: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<WebhookEndpoint>> {
        sqlx::query(
            "UPDATE herald_webhook_endpoints SET previous_secret = secret, previous_until = $1, secret = $2, updated_at = $3
             WHERE id = $4 AND account = $5",
        )
        .bind(millis(until))
        .bind(secret)
        .bind(millis(now))
        .bind(id)
        .bind(account_i64(account)?)
        .execute(&self.writer)
        .await?;
        self.webhook(account, id).await
    }

    /// Claims up to `limit` due deliveries of enabled endpoints until
    /// `now + lease`, oldest first. On PostgreSQL concurrent senders skip each
    /// other's rows (`FOR UPDATE SKIP LOCKED`): any worker or the server may
    /// send, and a crash loses nothing (the lease runs out).
    pub async fn claim_webhooks(
        &self,
        limit: usize,
        lease: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<OwedDelivery>> {
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE OF q SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let mut tx = self.writer.begin().await?;
        let rows = sqlx::query(&format!(
            "SELECT q.id, q.endpoint, q.event_id, q.payload, q.attempts FROM herald_webhook_queue q
             JOIN herald_webhook_endpoints w ON w.id = q.endpoint
             WHERE w.enabled = 1 AND q.due_at <= $1 AND (q.lease_until IS NULL OR q.lease_until <= $1)
             ORDER BY q.due_at, q.id LIMIT $2{lock}"
        ))
        .bind(millis(now))
        .bind(limit as i64)
        .fetch_all(&mut *tx)
        .await?;
        let owed: Vec<OwedDelivery> = rows
            .iter()
            .map(|r| {
                let attempts: i64 = r.try_get("attempts")?;
                Ok(OwedDelivery {
                    id: r.try_get("id")?,
                    endpoint: r.try_get("endpoint")?,
                    event_id: r.try_get("event_id")?,
                    payload: r.try_get("payload")?,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                })
            })
            .collect::<Result<_>>()?;
        if !owed.is_empty() {
            let mut sql = Sql::new(self.backend);
            sql.push("UPDATE herald_webhook_queue SET lease_until = ");
            sql.bind(millis(now + lease));
            sql.push(" WHERE id IN ");
            sql.bind_list(owed.iter().map(|o| o.id));
            sql.query().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(owed)
    }

    /// Takes the next batch sequence number of endpoint `id`.
    pub async fn next_webhook_sequence(&self, id: i64) -> Result<i64> {
        let rows = sqlx::query(
            "UPDATE herald_webhook_endpoints SET sequence = sequence + 1 WHERE id = $1 RETURNING sequence",
        )
        .bind(id)
        .fetch_all(&self.writer)
        .await?;
        Ok(rows.first().map(|r| r.try_get(0)).transpose()?.unwrap_or(0))
    }

    /// Records a batch's attempt: delivered (the rows go), or retried at
    /// `retry_at` (attempts + 1), or — `disable` — the endpoint is disabled
    /// with that reason. Logs the attempt either way.
    pub async fn finish_webhooks(
        &self,
        endpoint: i64,
        ids: &[i64],
        attempt: &WebhookAttempt,
        retry_at: Option<DateTime<Utc>>,
        disable: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        let mut sql = Sql::new(self.backend);
        match retry_at {
            None if disable.is_none() => {
                sql.push("DELETE FROM herald_webhook_queue WHERE id IN ");
                sql.bind_list(ids.iter().copied());
            }
            _ => {
                sql.push("UPDATE herald_webhook_queue SET lease_until = NULL, attempts = attempts + 1, due_at = ");
                sql.bind(millis(retry_at.unwrap_or(attempt.at)));
                sql.push(" WHERE id IN ");
                sql.bind_list(ids.iter().copied());
            }
        }
        sql.query().execute(&mut *tx).await?;
        let ok = attempt.status.is_some_and(|s| (200..300).contains(&s));
        sqlx::query(
            "UPDATE herald_webhook_endpoints SET
                failing_since = CASE WHEN $1 = 1 THEN NULL ELSE COALESCE(failing_since, $2) END,
                enabled = CASE WHEN $3 IS NULL THEN enabled ELSE 0 END,
                disabled_reason = COALESCE($3, disabled_reason)
             WHERE id = $4",
        )
        .bind(i64::from(ok))
        .bind(millis(attempt.at))
        .bind(disable)
        .bind(endpoint)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO herald_webhook_log (endpoint, at, events, status, latency_ms, excerpt, sequence, event_ids)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(endpoint)
        .bind(millis(attempt.at))
        .bind(i64::from(attempt.events))
        .bind(attempt.status.map(i64::from))
        .bind(i64::try_from(attempt.latency_ms).unwrap_or(i64::MAX))
        .bind(attempt.excerpt.as_str())
        .bind(attempt.sequence)
        .bind(attempt.event_ids.join(","))
        .execute(&mut *tx)
        .await?;
        // The log keeps 30 days.
        sqlx::query("DELETE FROM herald_webhook_log WHERE endpoint = $1 AND at < $2")
            .bind(endpoint)
            .bind(millis(attempt.at - chrono::Duration::days(LOG_DAYS)))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Gives back claimed deliveries unattempted, due at `due_at` (behind a
    /// failed batch of the same endpoint, so the endpoint keeps their order).
    pub async fn postpone_webhooks(&self, ids: &[i64], due_at: DateTime<Utc>) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut sql = Sql::new(self.backend);
        sql.push("UPDATE herald_webhook_queue SET lease_until = NULL, due_at = ");
        sql.bind(millis(due_at));
        sql.push(" WHERE id IN ");
        sql.bind_list(ids.iter().copied());
        sql.query().execute(&self.writer).await?;
        Ok(())
    }

    /// The delivery log of endpoint `id` of `account`, newest first, the last `limit`.
    pub async fn webhook_log(
        &self,
        account: u64,
        id: i64,
        limit: usize,
    ) -> Result<Vec<WebhookAttempt>> {
        sqlx::query(
            "SELECT l.id, l.at, l.events, l.status, l.latency_ms, l.excerpt, l.sequence, l.event_ids FROM herald_webhook_log l
             JOIN herald_webhook_endpoints w ON w.id = l.endpoint
             WHERE l.endpoint = $1 AND w.account = $2 ORDER BY l.id DESC LIMIT $3",
        )
        .bind(id)
        .bind(account_i64(account)?)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            let events: i64 = r.try_get("events")?;
            let status: Option<i64> = r.try_get("status")?;
            let latency: i64 = r.try_get("latency_ms")?;
            Ok(WebhookAttempt {
                at: from_millis(r.try_get("at")?)?,
                events: u32::try_from(events).unwrap_or(0),
                status: status.and_then(|s| u16::try_from(s).ok()),
                latency_ms: u64::try_from(latency).unwrap_or(0),
                excerpt: r.try_get("excerpt")?,
                sequence: r.try_get("sequence")?,
                id: r.try_get("id")?,
                event_ids: r
                    .try_get::<String, _>("event_ids")?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .collect()
    }

    /// Owes endpoint `endpoint` one event of its own (a test event, `payload`
    /// with id `event_id`), due at `now`.
    pub async fn owe_webhook_event(
        &self,
        endpoint: i64,
        event_id: &str,
        payload: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO herald_webhook_queue (endpoint, event_id, payload, due_at, created_at) VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(endpoint)
        .bind(event_id)
        .bind(payload)
        .bind(millis(now))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Owes endpoint `endpoint` of `account` again every event of the log
    /// (still kept: retention prunes the oldest) that happened in
    /// `[from, to)` and that it wants, with their own ids, due at `now`.
    /// Returns how many were queued.
    pub async fn replay_webhook(
        &self,
        account: u64,
        endpoint: &WebhookEndpoint,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let rows = sqlx::query(&format!(
            "SELECT {REPLAY_COLUMNS} FROM herald_events WHERE account = $1 AND at >= $2 AND at < $3 ORDER BY seq"
        ))
        .bind(account_i64(account)?)
        .bind(millis(from))
        .bind(millis(to))
        .fetch_all(&self.pool)
        .await?;
        self.owe_again(account, endpoint, &rows, now).await
    }

    /// Owes endpoint `endpoint` of `account` again the events that its
    /// logged attempt `attempt` (a [`WebhookAttempt::id`]) carried, with
    /// their own ids, rebuilt from the event log (events pruned since, and
    /// test events, are not). Returns how many were queued; `None` when the
    /// attempt is not this endpoint's.
    pub async fn replay_webhook_attempt(
        &self,
        account: u64,
        endpoint: &WebhookEndpoint,
        attempt: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>> {
        let ids: Option<String> = sqlx::query_scalar(
            "SELECT event_ids FROM herald_webhook_log WHERE id = $1 AND endpoint = $2",
        )
        .bind(attempt)
        .bind(endpoint.id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(ids) = ids else {
            return Ok(None);
        };
        let prefix = format!("evt_{account}_");
        let seqs: Vec<i64> = ids
            .split(',')
            .filter_map(|id| id.strip_prefix(prefix.as_str())?.parse().ok())
            .collect();
        let mut rows = Vec::new();
        for chunk in seqs.chunks(500) {
            let mut sql = Sql::new(self.backend);
            sql.push(&format!(
                "SELECT {REPLAY_COLUMNS} FROM herald_events WHERE account = "
            ))
            .bind(account_i64(account)?)
            .push(" AND seq IN ")
            .bind_list(chunk.iter().copied())
            .push(" ORDER BY seq");
            rows.extend(sql.query().fetch_all(&self.pool).await?);
        }
        self.owe_again(account, endpoint, &rows, now)
            .await
            .map(Some)
    }

    /// Queues `rows` (of [`REPLAY_COLUMNS`]) for `endpoint` again, those of
    /// the kinds it wants, each with its stable id.
    async fn owe_again(
        &self,
        account: u64,
        endpoint: &WebhookEndpoint,
        rows: &[AnyRow],
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let mut queued = 0;
        let mut tx = self.writer.begin().await?;
        for r in rows {
            let kind: String = r.try_get("kind")?;
            let kind = EventKind::parse(&kind)
                .ok_or_else(|| Error::Corrupt(format!("event kind `{kind}`")))?;
            if !endpoint.kinds.is_empty() && !endpoint.kinds.contains(&kind) {
                continue;
            }
            let recipient: String = r.try_get("recipient")?;
            let mut e = NewEvent::new(kind, from_millis(r.try_get("at")?)?, account, &recipient);
            e.message = r.try_get("message")?;
            e.campaign = r.try_get::<Option<i64>, _>("campaign")?.map(CampaignId);
            e.person = r.try_get("person")?;
            e.link = r
                .try_get::<Option<i64>, _>("link")?
                .and_then(|l| u16::try_from(l).ok());
            e.label = r.try_get("label")?;
            e.reply = r.try_get("reply")?;
            e.reason = r
                .try_get::<Option<String>, _>("reason")?
                .as_deref()
                .and_then(herald_schedule::BounceReason::parse);
            e.segments = r
                .try_get::<Option<i64>, _>("segments")?
                .and_then(|s| u32::try_from(s).ok());
            e.cost = r.try_get("cost")?;
            e.currency = r.try_get("currency")?;
            let seq: i64 = r.try_get("seq")?;
            let event_id = format!("evt_{account}_{seq}");
            sqlx::query(
                "INSERT INTO herald_webhook_queue (endpoint, event_id, payload, due_at, created_at) VALUES ($1, $2, $3, $4, $4)",
            )
            .bind(endpoint.id)
            .bind(event_id.as_str())
            .bind(webhook_payload(&event_id, &e))
            .bind(millis(now))
            .execute(&mut *tx)
            .await?;
            queued += 1;
        }
        tx.commit().await?;
        Ok(queued)
    }

    /// Deliveries still owed to endpoint `id`.
    pub async fn webhook_backlog(&self, id: i64) -> Result<u64> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM herald_webhook_queue WHERE endpoint = $1")
                .bind(id)
                .fetch_one(&self.pool)
                .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_the_channel_and_texts_carry_segments_and_cost() {
        let at = DateTime::from_timestamp_millis(1_764_000_000_000).unwrap_or_default();
        let mail = NewEvent::new(EventKind::Delivered, at, 7, "Ann@Example.org");
        let v: serde_json::Value =
            serde_json::from_str(&webhook_payload("evt_7_1", &mail)).unwrap_or_default();
        assert_eq!(v["type"], "email.delivered");
        assert_eq!(v["data"]["recipient"], "ann@example.org");
        assert!(v["data"].get("segments").is_none(), "{v}");
        let mut text = NewEvent::new(EventKind::SmsDelivered, at, 7, "+4512345678");
        text.segments = Some(2);
        text.cost = Some("0.0900".into());
        text.currency = Some("EUR".into());
        let v: serde_json::Value =
            serde_json::from_str(&webhook_payload("evt_7_2", &text)).unwrap_or_default();
        assert_eq!(v["type"], "sms.delivered");
        assert_eq!(v["data"]["kind"], "sms_delivered");
        assert_eq!(v["data"]["segments"], 2);
        assert_eq!(v["data"]["cost"], "0.0900");
        assert_eq!(v["data"]["currency"], "EUR");
    }
}
