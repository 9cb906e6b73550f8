//! Owed events: outcomes recorded in the outbox whose events the event log has
//! not recorded yet, so a crash between the two loses none.

use super::*;

impl Outbox {
    /// Messages whose outcome events are not recorded yet and were last
    /// touched before `older_than` (so a live worker's batch in flight is not
    /// taken twice): what the event log must record after a crash.
    pub async fn pending_events(
        &self,
        older_than: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PendingEvents>> {
        let rows = sqlx::query(&format!("{PENDING_SELECT} ORDER BY id LIMIT $2"))
            .bind(millis(older_than))
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        pending_rows(&rows)
    }

    /// [`Outbox::pending_events`] inside the transaction `tx` that records
    /// them and clears them with [`Outbox::clear_pending_events`]: on
    /// PostgreSQL the rows are locked (`FOR UPDATE SKIP LOCKED`), so workers
    /// recovering at the same time take different messages and no event is
    /// recorded twice; on SQLite the transaction that clears them second
    /// fails on its stale snapshot instead of recording them again.
    pub async fn take_pending_events(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        older_than: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PendingEvents>> {
        let lock = if tx.backend_name().eq_ignore_ascii_case("postgresql") {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let rows = sqlx::query(&format!("{PENDING_SELECT} ORDER BY id LIMIT $2{lock}"))
            .bind(millis(older_than))
            .bind(limit as i64)
            .fetch_all(&mut **tx)
            .await?;
        pending_rows(&rows)
    }
}

const PENDING_SELECT: &str = "SELECT id, account, recipient_email, send_id, state, bounce_class, bounce_reason, reply, events_pending, updated_at, person, lane,
                    CASE WHEN lane = 'sms' THEN merge_values END AS sms_text FROM herald_outbox
             WHERE events_pending <> 0 AND updated_at < $1";

fn pending_rows(rows: &[sqlx::any::AnyRow]) -> Result<Vec<PendingEvents>> {
    rows.iter()
        .map(|r| {
            let account: i64 = r.try_get("account")?;
            let class: Option<String> = r.try_get("bounce_class")?;
            let why: Option<String> = r.try_get("bounce_reason")?;
            let state: String = r.try_get("state")?;
            Ok(PendingEvents {
                id: r.try_get("id")?,
                account: account_u64(account)?,
                recipient: r.try_get("recipient_email")?,
                send_id: r.try_get("send_id")?,
                state: State::parse(&state)?,
                bounce_class: match class.as_deref() {
                    Some("hard") => Some(BounceClass::Hard),
                    Some("soft") => Some(BounceClass::Soft),
                    Some("blocked") => Some(BounceClass::Blocked),
                    _ => None,
                },
                bounce_reason: why.as_deref().and_then(crate::BounceReason::parse),
                reply: r.try_get("reply")?,
                processed: r.try_get::<i64, _>("events_pending")? & EVENTS_PROCESSED != 0,
                outcome: r.try_get::<i64, _>("events_pending")? & EVENTS_OUTCOME != 0,
                at: from_millis(r.try_get("updated_at")?),
                person: r.try_get("person")?,
                channel: if r.try_get::<String, _>("lane")? == "sms" {
                    Channel::Sms
                } else {
                    Channel::Email
                },
                segments: match r.try_get::<Option<String>, _>("sms_text")? {
                    Some(t) => Some(serde_json::from_str::<SmsText>(&t)?.segments),
                    None => None,
                },
            })
        })
        .collect()
}

impl Outbox {
    /// Marks the events of messages `ids` recorded, inside the transaction that
    /// records them (`tx`, on this outbox's database).
    pub async fn clear_pending_events(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        ids: &[i64],
    ) -> Result<()> {
        for chunk in ids.chunks(300) {
            let mut sql = Sql::for_connection(tx);
            sql.push("UPDATE herald_outbox SET events_pending = 0 WHERE id IN ")
                .bind_list(chunk.iter().copied());
            sql.query().execute(&mut **tx).await?;
        }
        Ok(())
    }
}
