//! Reading sends and messages: one send, its counts, the scheduled list
//! (R-SND-5), a message for the tracking endpoints; deleting a send or an
//! account's sends.

use super::*;

fn stored_message(r: &AnyRow) -> Result<StoredMessage> {
    Ok(StoredMessage {
        account: account_u64(r.try_get("account")?)?,
        recipient: r.try_get("recipient_email")?,
        send_id: r.try_get("send_id")?,
        person: r.try_get("person")?,
    })
}

fn stored_send(row: &AnyRow) -> Result<StoredSend> {
    let kind: String = row.try_get("kind")?;
    let template: String = row.try_get("template")?;
    let sender: String = row.try_get("sender")?;
    let account: i64 = row.try_get("account")?;
    let campaign: Option<i64> = row.try_get("campaign")?;
    let campaign = campaign.map(CampaignId);
    let attachments: String = row.try_get("attachments")?;
    Ok(StoredSend {
        id: row.try_get("id")?,
        account: account_u64(account)?,
        kind: kind_of(&kind)?,
        template: serde_json::from_str(&template)?,
        sender: serde_json::from_str(&sender)?,
        campaign,
        attachments: serde_json::from_str(&attachments)?,
    })
}

impl Outbox {
    /// Message `id`: its account, recipient, send and CRM person.
    pub async fn message(&self, id: i64) -> Result<Option<StoredMessage>> {
        let row = sqlx::query(
            "SELECT account, recipient_email, send_id, person FROM herald_outbox WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| stored_message(&r)).transpose()
    }

    /// What a tracking link of message `id` needs: the message and its merged values.
    pub async fn message_values(&self, id: i64) -> Result<Option<MessageValues>> {
        let row = sqlx::query("SELECT account, recipient_email, send_id, person, merge_values FROM herald_outbox WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            let values: String = r.try_get("merge_values")?;
            Ok(MessageValues {
                message: stored_message(&r)?,
                values: serde_json::from_str(&values)?,
            })
        })
        .transpose()
    }

    /// [`Outbox::message_values`] of those of `ids` that are `account`'s, in
    /// one statement per 500 ids, by id (absent: deleted, or another account's).
    pub async fn messages_values(
        &self,
        account: u64,
        ids: &[i64],
    ) -> Result<std::collections::HashMap<i64, MessageValues>> {
        let mut out = std::collections::HashMap::new();
        for chunk in ids.chunks(500) {
            let mut sql = crate::sql::Sql::new(self.backend);
            sql.push("SELECT id, account, recipient_email, send_id, person, merge_values FROM herald_outbox WHERE account = ")
                .bind(account_i64(account)?)
                .push(" AND id IN ")
                .bind_list(chunk.iter().copied());
            for r in sql.query().fetch_all(&self.pool).await? {
                let values: String = r.try_get("merge_values")?;
                out.insert(
                    r.try_get("id")?,
                    MessageValues {
                        message: stored_message(&r)?,
                        values: serde_json::from_str(&values)?,
                    },
                );
            }
        }
        Ok(out)
    }

    /// The stored email send `send_id` (its template and sender), whatever its
    /// account; an SMS send is not found here ([`Outbox::sms_send`]).
    pub async fn send(&self, send_id: i64) -> Result<StoredSend> {
        let row = sqlx::query(
            "SELECT id, account, kind, template, sender, campaign, attachments FROM herald_sends WHERE id = $1 AND channel = 'email'",
        )
        .bind(send_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(Error::NotFound {
            what: "send",
            id: send_id,
        })?;
        stored_send(&row)
    }

    /// The campaign of send `send_id` (email or SMS), if it has one.
    pub async fn send_campaign(&self, send_id: i64) -> Result<Option<CampaignId>> {
        let c: Option<Option<i64>> =
            sqlx::query_scalar("SELECT campaign FROM herald_sends WHERE id = $1")
                .bind(send_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(c.flatten().map(CampaignId))
    }

    /// The send `send_id` of `account`, to view its content (R-SND-5). Another
    /// account's send is not found.
    pub async fn view(&self, account: u64, send_id: i64) -> Result<StoredSend> {
        let send = self.send(send_id).await?;
        if send.account != account {
            return Err(Error::NotFound {
                what: "send",
                id: send_id,
            });
        }
        Ok(send)
    }

    /// Messages not yet finished, all sends and accounts: queued, claimed or deferred.
    pub async fn pending(&self) -> Result<u64> {
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) FROM herald_outbox WHERE state IN ('queued', 'deferred', 'claimed')",
        )
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?;
        Ok(count_of(n)? as u64)
    }

    /// Counts of the messages of `send_id` by state.
    pub async fn counts(&self, send_id: i64) -> Result<StateCounts> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) FROM herald_outbox WHERE send_id = $1 GROUP BY state",
        )
        .bind(send_id)
        .fetch_all(&self.pool)
        .await?;
        let mut out = HashMap::new();
        for row in rows {
            let state: String = row.try_get(0)?;
            let n: i64 = row.try_get(1)?;
            out.insert(State::parse(&state)?, count_of(n)?);
        }
        Ok(out)
    }

    /// The scheduled list of `account` (R-SND-5): sends with messages still to
    /// go, soonest first.
    pub async fn scheduled(&self, account: u64) -> Result<Vec<ScheduledSend>> {
        let rows = sqlx::query(
            "SELECT s.id, s.scheduled_at, s.created_at, s.total, s.user_name, s.user_email, s.subject, s.kind, s.campaign, s.channel,
                    COUNT(CASE WHEN o.state IN ('delivered', 'bounced', 'failed') THEN 1 END) AS done,
                    COUNT(CASE WHEN o.state IN ('queued', 'claimed', 'deferred') THEN 1 END) AS pending,
                    MIN(o.recipient_email) AS one_recipient
             FROM herald_sends s JOIN herald_outbox o ON o.send_id = s.id
             WHERE s.account = $1 AND s.cancelled_at IS NULL
             GROUP BY s.id, s.scheduled_at, s.created_at, s.total, s.user_name, s.user_email, s.subject, s.kind, s.campaign, s.channel
             ORDER BY s.scheduled_at, s.id",
        )
        .bind(account_i64(account)?)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for row in rows {
            let pending: i64 = row.try_get("pending")?;
            if pending == 0 {
                continue;
            }
            let kind = kind_of(&row.try_get::<String, _>("kind")?)?;
            let name: Option<String> = row.try_get("user_name")?;
            let email: String = row.try_get("user_email")?;
            out.push(ScheduledSend {
                id: row.try_get("id")?,
                deferred_until: from_millis(row.try_get("scheduled_at")?),
                created: from_millis(row.try_get("created_at")?),
                count: count_of(row.try_get("total")?)?,
                done: count_of(row.try_get("done")?)?,
                user: name.unwrap_or(email),
                subject: row.try_get("subject")?,
                kind,
                recipient: match kind {
                    SendKind::Mass => None,
                    SendKind::Individual => row.try_get("one_recipient")?,
                },
                campaign: row
                    .try_get::<Option<i64>, _>("campaign")?
                    .map(herald_message::CampaignId),
                channel: Channel::parse(&row.try_get::<String, _>("channel")?)?,
            });
        }
        Ok(out)
    }

    /// Deletes every send and message of `account` (R-ACC-1: an account's
    /// deletion). Messages a worker holds at that moment are deleted too; its
    /// later `record` finds no row and records nothing. Returns the number of
    /// messages removed.
    pub async fn delete_account(&self, account: u64) -> Result<u64> {
        let account = account_i64(account)?;
        let mut tx = self.writer.begin().await?;
        let removed = sqlx::query("DELETE FROM herald_outbox WHERE account = $1")
            .bind(account)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM herald_sends WHERE account = $1")
            .bind(account)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(removed)
    }

    /// Deletes send `send_id` of `account` (R-SND-5): what is not yet sent is
    /// cancelled, and the send's logged emails (the outbox rows) are deleted.
    /// Returns how many unsent messages were cancelled; an error when nothing is
    /// left to cancel.
    pub async fn delete(&self, account: u64, send_id: i64, now: DateTime<Utc>) -> Result<u64> {
        // Email or SMS: either kind of send is deleted the same way.
        let owned: Option<i64> =
            sqlx::query_scalar("SELECT id FROM herald_sends WHERE id = $1 AND account = $2")
                .bind(send_id)
                .bind(account_i64(account)?)
                .fetch_optional(&self.pool)
                .await?;
        let Some(id) = owned else {
            return Err(Error::NotFound {
                what: "send",
                id: send_id,
            });
        };
        let mut tx = self.writer.begin().await?;
        let cancelled = sqlx::query(
            "UPDATE herald_outbox SET state = 'cancelled', updated_at = $1
             WHERE send_id = $2 AND (state IN ('queued', 'deferred') OR (state = 'claimed' AND lease_until <= $1))",
        )
        .bind(millis(now))
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let in_flight: i64 = sqlx::query(
            "SELECT COUNT(*) FROM herald_outbox WHERE send_id = $1 AND state = 'claimed'",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        if cancelled == 0 && in_flight == 0 {
            tx.rollback().await?;
            return Err(Error::NothingToCancel { send_id });
        }
        if in_flight == 0 {
            sqlx::query("DELETE FROM herald_outbox WHERE send_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM herald_sends WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        } else {
            // Messages in flight finish; the send stays, marked cancelled, so
            // their outcome can still be recorded. They are never claimed again:
            // should their worker stop first, the lease runs out into
            // `sweep_cancelled`, not into another worker's claim.
            sqlx::query(
                "UPDATE herald_outbox SET due_at = $1 WHERE send_id = $2 AND state = 'claimed'",
            )
            .bind(super::queue::CANCELLED_IN_FLIGHT)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE herald_sends SET cancelled_at = $1 WHERE id = $2")
                .bind(millis(now))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(cancelled)
    }
}
