//! The lease queue: claiming due messages, recording attempts, releasing
//! claims (R-SND-4, R-SND-7).

use super::*;

fn claimed_from_row(row: &AnyRow) -> Result<Claimed> {
    let lane: String = row.try_get("lane")?;
    let name: Option<String> = row.try_get("recipient_name")?;
    let email: String = row.try_get("recipient_email")?;
    let values: String = row.try_get("merge_values")?;
    let account: i64 = row.try_get("account")?;
    let attempts: i64 = row.try_get("attempts")?;
    let first: Option<i64> = row.try_get("first_attempt_at")?;
    Ok(Claimed {
        id: row.try_get("id")?,
        send_id: row.try_get("send_id")?,
        account: account_u64(account)?,
        lane: match kind_of(&lane)? {
            SendKind::Mass => Lane::Mass,
            SendKind::Individual => Lane::Individual,
        },
        to: Mailbox::for_field("recipient", name.as_deref(), &email)
            .map_err(|e| Error::Corrupt(e.to_string()))?,
        values: serde_json::from_str(&values)?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        first_attempt_at: first.map(from_millis),
        person: row.try_get("person")?,
    })
}

impl Outbox {
    /// Claims up to `limit` due messages of `lane` for `worker` until
    /// `now + lease`: queued or deferred rows whose time has come, and claimed
    /// rows whose lease ran out. On PostgreSQL concurrent workers skip each
    /// other's rows (`FOR UPDATE SKIP LOCKED`); SQLite has one writer at a time.
    pub async fn claim(
        &self,
        worker: &str,
        lane: Lane,
        limit: usize,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<Claimed>> {
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE herald_outbox SET state = 'claimed', worker = $1, lease_until = $2, updated_at = $3
             WHERE id IN (
                SELECT id FROM herald_outbox
                WHERE lane = $4 AND ((state IN ('queued', 'deferred') AND due_at <= $3) OR (state = 'claimed' AND lease_until <= $3))
                ORDER BY due_at, id LIMIT $5{lock})
             RETURNING id, send_id, account, lane, recipient_email, recipient_name, merge_values, attempts, first_attempt_at, person"
        );
        let lane_name = match lane {
            Lane::Individual => "individual",
            Lane::Mass => "mass",
        };
        let rows = sqlx::query(&sql)
            .bind(worker.to_owned())
            .bind(millis(now + lease))
            .bind(millis(now))
            .bind(lane_name)
            .bind(limit as i64)
            .fetch_all(&self.writer)
            .await?;
        let mut out = rows
            .iter()
            .map(claimed_from_row)
            .collect::<Result<Vec<_>>>()?;
        out.sort_by_key(|c| c.id);
        Ok(out)
    }

    /// Records the outcome of an attempt on message `id`, if `worker` still
    /// holds its claim. Returns whether it did (false: the lease was lost and
    /// another worker may hold the message now).
    pub async fn record(
        &self,
        worker: &str,
        id: i64,
        outcome: &Outcome,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let (state, due, class, why, reply) = match outcome {
            Outcome::Delivered { reply } => (State::Delivered, None, None, None, reply.clone()),
            Outcome::Deferred { retry_at, reply } => (
                State::Deferred,
                Some(millis(*retry_at)),
                None,
                None,
                reply.clone(),
            ),
            Outcome::Bounced {
                class,
                reason,
                reply,
            } => (
                State::Bounced,
                None,
                Some(class.as_str()),
                Some(reason.as_str()),
                reply.clone(),
            ),
            Outcome::Failed { reason } => (State::Failed, None, None, None, reason.clone()),
        };
        // The events this outcome owes the event log (see `pending_events`).
        let processed = i64::from(state != State::Failed) * EVENTS_PROCESSED;
        let terminal = i64::from(matches!(
            state,
            State::Delivered | State::Bounced | State::Failed
        )) * EVENTS_OUTCOME;
        let result = sqlx::query(
            "UPDATE herald_outbox SET state = $1, due_at = COALESCE($2, due_at), bounce_class = $3, bounce_reason = $4, reply = $5,
                events_pending = events_pending | (CASE WHEN attempts = 0 THEN $6 ELSE 0 END) | $7,
                attempts = attempts + 1, first_attempt_at = COALESCE(first_attempt_at, $8),
                lease_until = NULL, worker = NULL, updated_at = $8
             WHERE id = $9 AND state = 'claimed' AND worker = $10",
        )
        .bind(state.as_str())
        .bind(due)
        .bind(class)
        .bind(why)
        .bind(reply)
        .bind(processed)
        .bind(terminal)
        .bind(millis(now))
        .bind(id)
        .bind(worker.to_owned())
        .execute(&self.writer)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Gives back the claims `worker` holds on `ids` without an attempt (on
    /// shutdown), so other workers can take them at once; a message of a
    /// send deleted meanwhile is cancelled instead, never queued again.
    pub async fn release(&self, worker: &str, ids: &[i64], now: DateTime<Utc>) -> Result<u64> {
        let mut released = 0;
        for id in ids {
            let r = sqlx::query(
                "UPDATE herald_outbox SET state = CASE
                        WHEN EXISTS (SELECT 1 FROM herald_sends s WHERE s.id = herald_outbox.send_id AND s.cancelled_at IS NOT NULL) THEN 'cancelled'
                        WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END,
                    lease_until = NULL, worker = NULL, updated_at = $1
                 WHERE id = $2 AND state = 'claimed' AND worker = $3",
            )
            .bind(millis(now))
            .bind(*id)
            .bind(worker.to_owned())
            .execute(&self.writer)
            .await?;
            released += r.rows_affected();
        }
        Ok(released)
    }
}
