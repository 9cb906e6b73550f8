//! SMS through the outbox (R-SMS-1): a send of texts merged when it is
//! created, one row per number in the lane `sms`, claimed under the SMS rate
//! (`throttle.sms`), retried and recorded like mail, listed and deleted with
//! the other sends.

use super::*;
use herald_message::sms::SmsEncoding;

/// Whether a send is email or SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Email, through SMTP.
    Email,
    /// SMS, through the HTTP gateway.
    Sms,
}

impl Channel {
    /// The name stored in `herald_sends.channel`.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self> {
        match s {
            "email" => Ok(Channel::Email),
            "sms" => Ok(Channel::Sms),
            other => Err(Error::Corrupt(format!("unknown send channel `{other}`"))),
        }
    }
}

/// A text merged for its recipient when the send was created, as the outbox
/// keeps it (the row's `merge_values`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsText {
    /// The sender id.
    pub from: String,
    /// The merged text.
    pub text: String,
    /// Segments it is sent as.
    pub segments: u32,
    /// GSM-7 or UCS-2.
    pub encoding: SmsEncoding,
}

/// An SMS send to store: everything but its texts.
#[derive(Debug, Clone)]
pub struct NewSmsSend {
    /// The account.
    pub account: u64,
    /// The campaign its texts count in.
    pub campaign: Option<CampaignId>,
    /// Now, or when.
    pub when: When,
    /// The text as written, merge fields unmerged (the scheduled list's subject).
    pub text: String,
    /// The sender id.
    pub from: String,
    /// The CRM user who sent it, if named (the scheduled list's user).
    pub user: Option<String>,
    /// Recipients left out before the outbox (no number, opted out, …).
    pub skipped: usize,
}

/// One text to queue.
#[derive(Debug, Clone)]
pub struct NewText {
    /// The E.164 number.
    pub to: String,
    /// The text merged for them.
    pub text: SmsText,
    /// The CRM's person id, carried into the events.
    pub person: Option<String>,
}

/// What [`Outbox::enqueue_sms`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedSms {
    /// The send's number.
    pub send_id: i64,
    /// When it is due.
    pub due_at: DateTime<Utc>,
    /// Texts queued (a number given twice is queued once).
    pub queued: usize,
    /// Segments of the queued texts.
    pub segments: u64,
}

/// A text a worker holds.
#[derive(Debug, Clone)]
pub struct ClaimedSms {
    /// The outbox row's id: Herald's reference for the gateway's reports.
    pub id: i64,
    /// The send.
    pub send_id: i64,
    /// The account.
    pub account: u64,
    /// The E.164 number.
    pub to: String,
    /// The merged text.
    pub text: SmsText,
    /// Attempts before this one.
    pub attempts: u32,
    /// When the first attempt was made, if one was.
    pub first_attempt_at: Option<DateTime<Utc>>,
    /// The CRM's person id.
    pub person: Option<String>,
    /// The campaign of its send.
    pub campaign: Option<CampaignId>,
}

/// What one SMS claim took, and when to ask again.
#[derive(Debug, Clone, Default)]
pub struct SmsClaims {
    /// The claimed texts, by id.
    pub messages: Vec<ClaimedSms>,
    /// When the SMS rate held some back: when it lets the next one go.
    pub throttled_until: Option<DateTime<Utc>>,
}

/// An SMS send as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSmsSend {
    /// The send's number.
    pub id: i64,
    /// The account.
    pub account: u64,
    /// The sender id.
    pub from: String,
    /// The text as written.
    pub text: String,
    /// Its campaign.
    pub campaign: Option<CampaignId>,
    /// When it was created.
    pub created: DateTime<Utc>,
    /// When it is (or was) due.
    pub scheduled: DateTime<Utc>,
    /// Recipients left out when it was created.
    pub skipped: usize,
}

/// What `herald_sends.template` holds for an SMS send.
#[derive(Serialize, Deserialize)]
struct SmsTemplate {
    from: String,
    text: String,
}

impl Outbox {
    /// Accepts an SMS send: checks the sending rules at `now` (the same as
    /// mail's: at most 90 days ahead, more than 100 recipients only scheduled
    /// far enough ahead), stores the send and one row per number (a number
    /// listed twice gets one text), in one transaction.
    pub async fn enqueue_sms(
        &self,
        send: NewSmsSend,
        texts: Vec<NewText>,
        now: DateTime<Utc>,
    ) -> Result<AcceptedSms> {
        let mut tx = self.writer.begin().await?;
        let accepted = self.enqueue_sms_in(&mut tx, send, texts, now).await?;
        tx.commit().await?;
        Ok(accepted)
    }

    /// [`Outbox::enqueue_sms`] inside the caller's transaction `tx` (opened
    /// on [`Outbox::writer`]), so the campaign commits or rolls back with it.
    pub async fn enqueue_sms_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        send: NewSmsSend,
        texts: Vec<NewText>,
        now: DateTime<Utc>,
    ) -> Result<AcceptedSms> {
        let mut seen = HashSet::new();
        let texts: Vec<NewText> = texts
            .into_iter()
            .filter(|t| seen.insert(t.to.clone()))
            .collect();
        let due = self.rules.check(now, texts.len(), send.when)?;
        let account = account_i64(send.account)?;
        let kind = if texts.len() == 1 {
            SendKind::Individual
        } else {
            SendKind::Mass
        };
        let template = serde_json::to_string(&SmsTemplate {
            from: send.from.clone(),
            text: send.text.clone(),
        })?;
        let row = sqlx::query(
            "INSERT INTO herald_sends (account, kind, user_name, user_email, subject, template, sender, campaign, created_at, scheduled_at, total, skipped, attachments, channel)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
        )
        .bind(account)
        .bind(kind_str(kind))
        .bind(send.user.clone())
        .bind(send.from.clone())
        .bind(send.text.clone())
        .bind(template)
        .bind("{}")
        .bind(send.campaign.map(|c| c.0))
        .bind(millis(now))
        .bind(millis(due))
        .bind(texts.len() as i64)
        .bind(send.skipped as i64)
        .bind("[]")
        .bind(Channel::Sms.as_str())
        .fetch_one(&mut **tx)
        .await?;
        let send_id: i64 = row.try_get(0)?;
        let batch_size = self.rules.batch_size.max(1);
        const ROWS_PER_STATEMENT: usize = 64;
        let mut segments = 0u64;
        for (chunk_no, chunk) in texts.chunks(ROWS_PER_STATEMENT).enumerate() {
            let mut sql = Sql::new(self.backend);
            sql.push(
                "INSERT INTO herald_outbox (send_id, account, lane, batch, recipient_email, merge_values, due_at, updated_at, state, person, recipient_domain) VALUES ",
            );
            for (i, t) in chunk.iter().enumerate() {
                let index = chunk_no * ROWS_PER_STATEMENT + i;
                segments += u64::from(t.text.segments);
                if i > 0 {
                    sql.push(",");
                }
                sql.bind_list([
                    Bind::from(send_id),
                    account.into(),
                    "sms".into(),
                    ((index / batch_size) as i64).into(),
                    t.to.as_str().into(),
                    serde_json::to_string(&t.text)?.into(),
                    millis(due).into(),
                    millis(now).into(),
                    State::Queued.as_str().into(),
                    t.person.clone().into(),
                    "".into(),
                ]);
            }
            sql.query().execute(&mut **tx).await?;
        }
        Ok(AcceptedSms {
            send_id,
            due_at: due,
            queued: texts.len(),
            segments,
        })
    }

    /// Claims up to `limit` due texts for `worker` until `now + lease`, as
    /// many as the SMS rate (`throttle.sms`, shared by every worker on the
    /// database) lets go now; see [`Outbox::claim_batch`].
    pub async fn claim_sms(
        &self,
        worker: &str,
        limit: usize,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<SmsClaims> {
        let rate = self.throttle.sms.map(|r| r.gcra());
        let taken = self
            .claim_lane(worker, "sms", None, rate, limit, lease, now)
            .await?;
        let mut messages = Vec::with_capacity(taken.rows.len());
        for row in &taken.rows {
            let account: i64 = row.try_get("account")?;
            let attempts: i64 = row.try_get("attempts")?;
            let first: Option<i64> = row.try_get("first_attempt_at")?;
            let text: String = row.try_get("merge_values")?;
            messages.push(ClaimedSms {
                id: row.try_get("id")?,
                send_id: row.try_get("send_id")?,
                account: account_u64(account)?,
                to: row.try_get("recipient_email")?,
                text: serde_json::from_str(&text)?,
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                first_attempt_at: first.map(from_millis),
                person: row.try_get("person")?,
                campaign: None,
            });
        }
        // Their sends' campaigns, one query.
        let mut sends: Vec<i64> = messages.iter().map(|m| m.send_id).collect();
        sends.sort_unstable();
        sends.dedup();
        if !sends.is_empty() {
            let mut sql = Sql::new(self.backend);
            sql.push("SELECT id, campaign FROM herald_sends WHERE id IN ")
                .bind_list(sends.iter().copied());
            let mut campaign_of = HashMap::new();
            for row in sql.query().fetch_all(&self.pool).await? {
                let id: i64 = row.try_get("id")?;
                let c: Option<i64> = row.try_get("campaign")?;
                campaign_of.insert(id, c.map(CampaignId));
            }
            for m in &mut messages {
                m.campaign = campaign_of.get(&m.send_id).copied().flatten();
            }
        }
        messages.sort_by_key(|m| m.id);
        Ok(SmsClaims {
            messages,
            throttled_until: taken.throttled_until,
        })
    }

    /// The SMS send `send_id` of `account`; another account's send, or an
    /// email send, is not found.
    pub async fn sms_send(&self, account: u64, send_id: i64) -> Result<StoredSmsSend> {
        let row = sqlx::query(
            "SELECT id, account, template, campaign, created_at, scheduled_at, skipped FROM herald_sends
             WHERE id = $1 AND account = $2 AND channel = 'sms'",
        )
        .bind(send_id)
        .bind(account_i64(account)?)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(Error::NotFound {
            what: "SMS send",
            id: send_id,
        })?;
        let template: String = row.try_get("template")?;
        let template: SmsTemplate = serde_json::from_str(&template)?;
        Ok(StoredSmsSend {
            id: row.try_get("id")?,
            account: account_u64(row.try_get("account")?)?,
            from: template.from,
            text: template.text,
            campaign: row.try_get::<Option<i64>, _>("campaign")?.map(CampaignId),
            created: from_millis(row.try_get("created_at")?),
            scheduled: from_millis(row.try_get("scheduled_at")?),
            skipped: count_of(row.try_get("skipped")?)?,
        })
    }

    /// The account and the number of outbox message `id` if it is a text
    /// (what a gateway's delivery report names), else `None`.
    pub async fn sms_message(&self, id: i64) -> Result<Option<StoredMessage>> {
        let row = sqlx::query(
            "SELECT account, recipient_email, send_id, person FROM herald_outbox WHERE id = $1 AND lane = 'sms'",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(StoredMessage {
                account: account_u64(r.try_get("account")?)?,
                recipient: r.try_get("recipient_email")?,
                send_id: r.try_get("send_id")?,
                person: r.try_get("person")?,
            })
        })
        .transpose()
    }
}
