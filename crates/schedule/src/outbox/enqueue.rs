//! Accepting a send: the rules, suppression, one row per recipient, one
//! transaction (R-SND-1, R-SND-2).

use super::*;

impl Outbox {
    /// Accepts a send (R-SND-1, R-SND-2): checks the sending rules at `now`,
    /// consults `suppression`, stores the template once and one row per
    /// recipient, in batches of at most `rules.batch_size`, in one transaction.
    pub async fn enqueue(
        &self,
        send: NewSend,
        recipients: Vec<NewRecipient>,
        suppression: &impl Suppression,
        now: DateTime<Utc>,
    ) -> Result<Accepted> {
        let mut tx = self.writer.begin().await?;
        let accepted = self
            .enqueue_in(&mut tx, send, recipients, suppression, now)
            .await?;
        tx.commit().await?;
        Ok(accepted)
    }

    /// [`Outbox::enqueue`] inside the caller's transaction `tx` (opened on
    /// [`Outbox::writer`]), so other writes commit or roll back with the send.
    pub async fn enqueue_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        send: NewSend,
        recipients: Vec<NewRecipient>,
        suppression: &impl Suppression,
        now: DateTime<Utc>,
    ) -> Result<Accepted> {
        let due = self.rules.check(now, recipients.len(), send.when)?;
        if send.kind == SendKind::Mass && !send.template.has_unsubscribe_link() {
            return Err(Error::Invalid {
                field: "template",
                rule: "a mass send needs an unsubscribe link (R-MSG-6)".into(),
            });
        }
        let account = account_i64(send.account)?;
        let emails: Vec<&str> = recipients.iter().map(|r| r.to.address.as_str()).collect();
        let suppressed = suppression
            .suppressed(send.account, send.kind, send.campaign, &emails)
            .await?;
        let mut skipped: HashMap<SkipReason, usize> = HashMap::new();
        let mut queued = Vec::with_capacity(recipients.len());
        let mut skipped_rows = Vec::new();
        let mut seen = HashSet::new();
        for r in &recipients {
            let key = r.to.address.as_str().to_ascii_lowercase();
            if !seen.insert(key.clone()) {
                continue; // listed twice: one email
            }
            if let Some(reason) = suppressed.get(&key) {
                *skipped.entry(*reason).or_default() += 1;
                skipped_rows.push((r, Some(*reason)));
            } else {
                queued.push((r, None));
            }
        }
        let queued_count = queued.len();
        let rows: Vec<(&NewRecipient, Option<SkipReason>)> =
            queued.into_iter().chain(skipped_rows).collect();
        let template = serde_json::to_string(&send.template)?;
        let sender = serde_json::to_string(&send.sender)?;
        let attachments = serde_json::to_string(&send.attachments)?;
        let campaign = send.campaign.map(|c| c.0);
        let row = sqlx::query(
            "INSERT INTO herald_sends (account, kind, user_name, user_email, subject, template, sender, campaign, created_at, scheduled_at, total, skipped, attachments)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
        )
        .bind(account)
        .bind(kind_str(send.kind))
        .bind(send.sender.user.name.clone())
        .bind(send.sender.user.address.as_str().to_owned())
        .bind(send.subject.clone())
        .bind(template)
        .bind(sender)
        .bind(campaign)
        .bind(millis(now))
        .bind(millis(due))
        .bind(queued_count as i64)
        .bind(skipped.values().sum::<usize>() as i64)
        .bind(attachments)
        .fetch_one(&mut **tx)
        .await?;
        let send_id: i64 = row.try_get(0)?;
        let batch_size = self.rules.batch_size.max(1);
        let lane = kind_str(send.kind);
        // A few hundred parameters a statement (see crate::sql).
        const ROWS_PER_STATEMENT: usize = 64;
        for (chunk_no, chunk) in rows.chunks(ROWS_PER_STATEMENT).enumerate() {
            let mut sql = Sql::new(self.backend);
            sql.push(
                "INSERT INTO herald_outbox (send_id, account, lane, batch, recipient_email, recipient_name, merge_values, due_at, updated_at, state, reply, person, recipient_domain) VALUES ",
            );
            for (i, (r, skip)) in chunk.iter().enumerate() {
                let index = chunk_no * ROWS_PER_STATEMENT + i;
                // Skipped recipients are kept as rows (state `skipped`, the reason as
                // reply) in no batch, so the send's log shows them.
                let batch = if skip.is_some() {
                    -1
                } else {
                    (index / batch_size) as i64
                };
                let state = if skip.is_some() {
                    State::Skipped
                } else {
                    State::Queued
                };
                if i > 0 {
                    sql.push(",");
                }
                sql.bind_list([
                    Bind::from(send_id),
                    account.into(),
                    lane.into(),
                    batch.into(),
                    r.to.address.as_str().into(),
                    r.to.name.clone().into(),
                    serde_json::to_string(&r.values)?.into(),
                    millis(due).into(),
                    millis(now).into(),
                    state.as_str().into(),
                    skip.map(SkipReason::as_str).into(),
                    r.person.clone().into(),
                    recipient_domain(r.to.address.as_str()).into(),
                ]);
            }
            let q = sql.query();
            q.execute(&mut **tx).await?;
        }
        Ok(Accepted {
            send_id,
            due_at: due,
            queued: queued_count,
            skipped,
            batches: self.rules.batches(queued_count),
        })
    }
}
