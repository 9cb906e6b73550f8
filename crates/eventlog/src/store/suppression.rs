//! The blocklist, unsubscribes and complaints, and the suppression hook the
//! outbox consults when a send is accepted (R-SND-2, R-EVT-5).

use super::*;

/// The send-time suppression hook of the outbox (R-SND-2), filled from the log:
/// the blocklist holds for all mail, unsubscribes and complaints for mass mail.
impl Suppression for EventLog {
    async fn suppressed(
        &self,
        account: u64,
        kind: SendKind,
        campaign: Option<CampaignId>,
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
            // Mass mail of a campaign the address unsubscribed from.
            if let (SendKind::Mass, Some(c)) = (kind, campaign) {
                let mut sql = Sql::new(self.backend());
                sql.push("SELECT email FROM herald_campaign_unsubscribes WHERE account = ")
                    .bind(account)
                    .push(" AND campaign = ")
                    .bind(c.0)
                    .push(" AND email IN ")
                    .bind_list(chunk.iter().map(|e| e.to_ascii_lowercase()));
                for row in sql.query().fetch_all(&self.pool).await? {
                    out.entry(row.try_get(0)?)
                        .or_insert(SkipReason::Unsubscribed);
                }
            }
        }
        Ok(out)
    }
}

impl EventLog {
    /// Which of `numbers` (E.164) opted out of `account`'s SMS.
    pub async fn sms_opted_out(
        &self,
        account: u64,
        numbers: &[&str],
    ) -> Result<std::collections::HashSet<String>> {
        let mut out = std::collections::HashSet::new();
        let account = account_i64(account)?;
        for chunk in numbers.chunks(500) {
            let mut sql = Sql::new(self.backend());
            sql.push("SELECT email FROM herald_suppressions WHERE account = ")
                .bind(account)
                .push(" AND reason = 'sms_opt_out' AND email IN ")
                .bind_list(chunk.iter().copied());
            for row in sql.query().fetch_all(&self.pool).await? {
                out.insert(row.try_get(0)?);
            }
        }
        Ok(out)
    }

    /// Marks message `message` of `account` with `mark` inside `tx`, once:
    /// true the first time, false when it was marked already. What makes a
    /// gateway's repeated final report of a text one event.
    pub async fn mark_once_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        account: u64,
        message: i64,
        mark: &str,
    ) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO herald_message_marks (account, message, mark) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(account_i64(account)?)
        .bind(message)
        .bind(mark.to_owned())
        .execute(&mut **tx)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Lets `account` text `number` again after an opt-out (the person opted
    /// back in, through the CRM). Returns whether the number was opted out.
    pub async fn sms_opt_in(&self, account: u64, number: &str) -> Result<bool> {
        let r = sqlx::query(
            "DELETE FROM herald_suppressions WHERE account = $1 AND email = $2 AND reason = 'sms_opt_out'",
        )
        .bind(account_i64(account)?)
        .bind(number.to_owned())
        .execute(&self.writer)
        .await?;
        Ok(r.rows_affected() > 0)
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
                "sms_opt_out" => Some(Suppressed::SmsOptOut),
                _ => None,
            })
            .collect())
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
}
