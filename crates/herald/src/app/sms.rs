//! SMS sends (R-MSG-8, R-SMS-1): recipients resolved, numbers normalised and
//! deduplicated, opted-out persons and numbers skipped and counted, each text
//! merged when the send is created and queued in the outbox with its
//! campaign, in one transaction. Workers send the texts through the gateway
//! under the SMS rate ([`crate::sms`]); the gateway's delivery reports become
//! events here ([`report`]).

use super::sends::{schema_for, stored_persons};
use super::{Error, Result, Skip, Skipped};
use crate::service::Herald;
use chrono::{DateTime, Utc};
use herald_eventlog::{EventKind, NewEvent, ReportQuery};
use herald_message::MergeData;
use herald_schedule::{NewSmsSend, NewText, SmsText, When};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

/// One SMS recipient given by number.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NumberInput {
    /// Phone number with country code (`+4512345678`).
    pub phone: String,
    /// The CRM's person id, if any.
    #[serde(default)]
    pub person_id: Option<String>,
    /// Person fields for the merge.
    #[serde(default)]
    pub person: BTreeMap<String, String>,
    /// Organisation fields.
    #[serde(default)]
    pub organisation: BTreeMap<String, String>,
    /// Custom fields.
    #[serde(default)]
    pub custom: BTreeMap<String, String>,
}

/// Who gets an SMS: stored persons (their `mobile`, else `phone`), the
/// persons of a report, or numbers.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SmsRecipients {
    /// Person ids.
    Persons(Vec<String>),
    /// The persons of the events a report matches.
    Report(ReportQuery),
    /// Numbers.
    Numbers(Vec<NumberInput>),
}

/// `POST /v1/sms`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmsInput {
    /// Sender id (1-11 letters and digits, or a number); default `sms.default_sender`.
    #[serde(default)]
    pub from: Option<String>,
    /// The text, with merge fields.
    pub text: String,
    /// Who.
    pub recipients: SmsRecipients,
    /// Campaign name (default "SMS YYYY MM" for a text to one number, the
    /// date and the text's start for more); a name given again joins that
    /// campaign, with its emails.
    #[serde(default)]
    pub campaign: Option<String>,
    /// When to send (default now; at most 90 days ahead; a send to more than
    /// 100 numbers at least 10 minutes ahead, as mail).
    #[serde(default)]
    pub scheduled_at: Option<DateTime<Utc>>,
    /// The CRM user sending it, as the scheduled list shows them (default the sender id).
    #[serde(default)]
    pub user: Option<String>,
}

/// An SMS send accepted and queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsAccepted {
    /// The send's number (the scheduled list's, `DELETE /v1/sends/{id}`'s).
    pub send_id: i64,
    /// When it is due.
    pub due_at: DateTime<Utc>,
    /// Texts queued.
    pub queued: usize,
    /// Their segments.
    pub segments: u64,
    /// Recipients left out, by reason.
    pub skipped: Skipped,
    /// The campaign's number.
    pub campaign_id: herald_message::CampaignId,
    /// The campaign's name.
    pub campaign: String,
}

/// The campaign an SMS send counts in: the name given (at most 200
/// characters, no control characters), else "SMS YYYY MM" for one number
/// and the date and the text's first 40 characters for more, in the
/// account's time zone.
fn campaign_name(
    account: &crate::accounts::Account,
    input: &SmsInput,
    due: DateTime<Utc>,
    texts: usize,
) -> Result<String> {
    if let Some(n) = super::sends::given_campaign_name(input.campaign.as_deref())? {
        return Ok(n);
    }
    let tz: chrono_tz::Tz = account.timezone.parse().unwrap_or(chrono_tz::UTC);
    if texts == 1 {
        return Ok(format!("SMS {}", due.with_timezone(&tz).format("%Y %m")));
    }
    let start: String = input.text.chars().take(40).collect();
    Ok(herald_eventlog::mass_campaign_name(
        due,
        tz,
        &account.date_format,
        &format!("SMS {start}"),
    ))
}

/// Accepts an SMS send for `account` (which must be enabled): resolves the
/// recipients, skips and counts those with no number or opted out, merges
/// each text, checks the sending rules and writes the campaign and the
/// queued texts in one transaction. The texts go when workers claim them.
pub async fn send(h: &Herald, account: u64, input: &SmsInput) -> Result<SmsAccepted> {
    let account = super::enabled_account(h, account).await?;
    let now = h.clock.now();
    let Some(gateway) = h.sms.clone() else {
        return Err(Error::Unavailable(
            "SMS is not configured on this server (sms.gateway_url)".into(),
        ));
    };
    let from = input
        .from
        .clone()
        .unwrap_or_else(|| gateway.config.default_sender.clone());
    crate::sms::check_sender("from", &from).map_err(|rule| Error::invalid("from", rule))?;
    if input.text.trim().is_empty() {
        return Err(Error::invalid("text", "must not be empty"));
    }
    if let Some(u) = &input.user
        && (u.chars().any(char::is_control) || u.chars().count() > 200)
    {
        return Err(Error::invalid(
            "user",
            "at most 200 characters, no control characters",
        ));
    }
    let mut skipped = Skipped::default();
    // (number, person, merge data)
    let mut targets: Vec<(String, Option<String>, MergeData)> = Vec::new();
    let ids = match &input.recipients {
        SmsRecipients::Numbers(list) => {
            for (i, n) in list.iter().enumerate() {
                let number = crate::sms::normalize_number(&n.phone).ok_or_else(|| {
                    Error::invalid(
                        format!("recipients[{i}].phone"),
                        format!(
                            "`{}` is not a number with country code (+4512345678)",
                            n.phone
                        ),
                    )
                })?;
                targets.push((
                    number,
                    n.person_id.clone(),
                    MergeData {
                        person: n.person.clone(),
                        organisation: n.organisation.clone(),
                        custom: n.custom.clone(),
                    },
                ));
            }
            Vec::new()
        }
        SmsRecipients::Persons(ids) => ids.clone(),
        SmsRecipients::Report(q) => h.events.report_persons(account.id, q).await?,
    };
    for v in stored_persons(h, account.id, ids, &mut skipped).await? {
        let Some(number) = v.mobile_number() else {
            skipped.add(Skip::NoMobileNumber);
            continue;
        };
        if v.block_sms {
            skipped.add(Skip::SmsOptOut);
            continue;
        }
        targets.push((number, Some(v.id.clone()), v.merge_data()));
    }
    // One text a number, as one email an address.
    let mut seen = std::collections::HashSet::new();
    targets.retain(|(number, _, _)| seen.insert(number.clone()));
    // Numbers that opted out of this account's texts.
    let numbers: Vec<&str> = targets.iter().map(|(n, _, _)| n.as_str()).collect();
    let opted_out = h.events.sms_opted_out(account.id, &numbers).await?;
    targets.retain(|(number, _, _)| {
        let out = opted_out.contains(number);
        if out {
            skipped.add(Skip::SmsOptOut);
        }
        !out
    });
    let max = gateway.config.max_recipients;
    if targets.len() > max {
        return Err(Error::invalid(
            "recipients",
            format!("at most {max} recipients per SMS send"),
        ));
    }
    if targets.is_empty() {
        return Err(Error::invalid(
            "recipients",
            format!("no recipient left to text (skipped: {skipped})"),
        ));
    }
    let schema = schema_for(
        &h.events.field_names(account.id).await?,
        targets.iter().map(|(_, _, data)| data),
    );
    let template = herald_message::sms::SmsTemplate::compile(&input.text, &schema)
        .map_err(|e| Error::invalid("text", e))?;
    let mut texts: Vec<NewText> = Vec::with_capacity(targets.len());
    for (to, person, data) in targets {
        let (text, length) = template.render(&template.resolve(&data));
        // A text that merges to nothing (its only field empty) is not sent.
        if text.trim().is_empty() {
            skipped.add(Skip::UnusablePersonData);
            continue;
        }
        texts.push(NewText {
            to,
            person,
            text: SmsText {
                from: from.clone(),
                text,
                segments: u32::try_from(length.segments).unwrap_or(u32::MAX),
                encoding: length.encoding,
            },
        });
    }
    if texts.is_empty() {
        return Err(Error::invalid(
            "recipients",
            format!("no recipient left to text (skipped: {skipped})"),
        ));
    }
    let when = match input.scheduled_at {
        Some(at) => When::At(at),
        None => When::Now,
    };
    // Checked again inside the transaction; this early check only keeps a
    // rule's 422 ahead of the campaign name's 400.
    h.outbox
        .rules()
        .check(now, texts.len(), when)
        .map_err(herald_schedule::Error::from)?;
    let due = input.scheduled_at.unwrap_or(now).max(now);
    let name = campaign_name(&account, input, due, texts.len())?;
    let first_text: String = input.text.chars().take(200).collect();
    let mut tx = h
        .outbox
        .writer()
        .begin()
        .await
        .map_err(herald_schedule::Error::from)?;
    let campaign_id = h
        .events
        .campaign_for_in(&mut tx, account.id, &name, &first_text, now)
        .await?;
    let accepted = h
        .outbox
        .enqueue_sms_in(
            &mut tx,
            NewSmsSend {
                account: account.id,
                campaign: Some(campaign_id),
                when,
                text: input.text.clone(),
                from,
                user: input.user.clone(),
                skipped: skipped.total(),
            },
            texts,
            now,
        )
        .await?;
    tx.commit().await.map_err(herald_schedule::Error::from)?;
    h.metrics.sends_accepted.fetch_add(1, Ordering::Relaxed);
    h.metrics
        .sms_queued
        .fetch_add(accepted.queued as u64, Ordering::Relaxed);
    Ok(SmsAccepted {
        send_id: accepted.send_id,
        due_at: accepted.due_at,
        queued: accepted.queued,
        segments: accepted.segments,
        skipped,
        campaign_id,
        campaign: name,
    })
}

/// An SMS send as `GET /v1/sms/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsSendView {
    /// The send.
    pub send: herald_schedule::StoredSmsSend,
    /// Its texts by state (`queued`, `delivered` — accepted by the gateway —,
    /// `deferred`, `failed`, `cancelled`).
    pub texts: herald_schedule::StateCounts,
}

/// SMS send `id` of `account`, with its texts counted by state.
pub async fn view(h: &Herald, account: u64, id: i64) -> Result<SmsSendView> {
    let send = h.outbox.sms_send(account, id).await?;
    let texts = h.outbox.counts(id).await?;
    Ok(SmsSendView { send, texts })
}

/// What a gateway reports about one text (`POST /v1/sms/reports`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmsReport {
    /// Herald's reference, as it was sent with the text.
    pub reference: String,
    /// `delivered`; `failed`, `undelivered`, `rejected` or `expired` (all
    /// recorded as `sms_failed`); `opted_out` (the recipient answered STOP:
    /// the account texts the number no more); or an intermediate status
    /// (`accepted`, `queued`, `buffered`, `sent`, `enroute`), which records nothing.
    pub status: String,
    /// The gateway's error code or text, for a failure.
    #[serde(default)]
    pub error: Option<String>,
    /// Segments the gateway billed, when it says.
    #[serde(default)]
    pub segments: Option<u32>,
    /// What the text cost, as a decimal (`0.0450`).
    #[serde(default)]
    pub cost: Option<String>,
    /// The currency of `cost` (ISO 4217: `EUR`).
    #[serde(default)]
    pub currency: Option<String>,
    /// When it happened (default when the report arrives).
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
}

/// What a batch of reports did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReportsRecorded {
    /// Reports that became an event.
    pub recorded: usize,
    /// Intermediate statuses, and final reports repeated for a text already
    /// reported: nothing recorded.
    pub ignored: usize,
    /// References that name no text (from before a database was reset, or
    /// another installation's).
    pub unknown: usize,
}

/// What a report's status means.
enum Status {
    Delivered,
    Failed,
    OptedOut,
    Intermediate,
}

fn status_of(i: usize, s: &str) -> Result<Status> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "delivered" => Status::Delivered,
        "failed" | "undelivered" | "rejected" | "expired" => Status::Failed,
        "opted_out" | "stop" => Status::OptedOut,
        "accepted" | "queued" | "buffered" | "sent" | "enroute" => Status::Intermediate,
        other => {
            return Err(Error::invalid(
                format!("[{i}].status"),
                format!(
                    "`{other}` is not a status: delivered, failed, undelivered, rejected, expired, opted_out, or an intermediate one (accepted, queued, buffered, sent, enroute)"
                ),
            ));
        }
    })
}

/// Checks the bearer token of a report against `sms.report_token`
/// (comparing digests, as the admin token is, so the time says nothing of it).
pub fn authorize_report(h: &Herald, bearer: Option<&str>) -> Result<()> {
    let Some(token) = h.config.sms.report_token.as_deref() else {
        return Err(Error::Unauthorized(
            "delivery reports are refused: sms.report_token is not set on this server".into(),
        ));
    };
    match bearer {
        Some(given) if crate::accounts::key_hash(given) == crate::accounts::key_hash(token) => {
            Ok(())
        }
        _ => Err(Error::Unauthorized(
            "a delivery report needs `Authorization: Bearer <sms.report_token>`".into(),
        )),
    }
}

/// Records the gateway's delivery reports: a text's first final report
/// becomes its `sms_delivered` or `sms_failed` event (a repeated one is
/// ignored), an `opted_out` report an `sms_opt_out` event that keeps the
/// number from the account's next texts. Every report is checked before any
/// is recorded; they are recorded in one transaction.
pub async fn report(h: &Herald, reports: &[SmsReport]) -> Result<ReportsRecorded> {
    const MOST: usize = 1_000;
    if reports.len() > MOST {
        return Err(Error::invalid(
            "reports",
            format!("at most {MOST} reports per request"),
        ));
    }
    let now = h.clock.now();
    let mut done = ReportsRecorded::default();
    let mut owed: Vec<(i64, &'static str, NewEvent)> = Vec::new();
    let mut campaigns = std::collections::HashMap::new();
    for (i, r) in reports.iter().enumerate() {
        let status = status_of(i, &r.status)?;
        for (field, v) in [
            ("error", r.error.as_deref()),
            ("cost", r.cost.as_deref()),
            ("currency", r.currency.as_deref()),
        ] {
            if let Some(v) = v
                && (v.chars().count() > 200 || v.chars().any(char::is_control))
            {
                return Err(Error::invalid(
                    format!("[{i}].{field}"),
                    "at most 200 characters, no control characters",
                ));
            }
        }
        if let Some(c) = &r.cost
            && c.parse::<f64>().map_or(true, |v| !v.is_finite() || v < 0.0)
        {
            return Err(Error::invalid(
                format!("[{i}].cost"),
                format!("`{c}` is not a decimal amount such as 0.0450"),
            ));
        }
        let Ok(id) = r.reference.trim().parse::<i64>() else {
            done.unknown += 1;
            continue;
        };
        let Some(m) = h.outbox.sms_message(id).await? else {
            done.unknown += 1;
            continue;
        };
        let (kind, mark) = match status {
            Status::Intermediate => {
                done.ignored += 1;
                continue;
            }
            Status::Delivered => (EventKind::SmsDelivered, "sms_final"),
            Status::Failed => (EventKind::SmsFailed, "sms_final"),
            Status::OptedOut => (EventKind::SmsOptOut, "sms_opt_out"),
        };
        let campaign = match campaigns.get(&m.send_id) {
            Some(c) => *c,
            None => {
                let c = h.outbox.send_campaign(m.send_id).await?;
                campaigns.insert(m.send_id, c);
                c
            }
        };
        let mut e = NewEvent::new(kind, r.at.unwrap_or(now), m.account, &m.recipient);
        e.message = Some(id);
        e.campaign = campaign;
        e.person = m.person;
        e.reply = match (&status, &r.error) {
            (Status::Failed, Some(err)) => Some(format!("{}: {err}", r.status)),
            (Status::Failed, None) => Some(r.status.clone()),
            _ => None,
        };
        e.segments = r.segments;
        e.cost = r.cost.clone();
        e.currency = r.currency.clone();
        owed.push((id, mark, e));
    }
    let mut tx = h
        .outbox
        .writer()
        .begin()
        .await
        .map_err(herald_schedule::Error::from)?;
    let mut events = Vec::with_capacity(owed.len());
    for (id, mark, e) in owed {
        if h.events.mark_once_in(&mut tx, e.account, id, mark).await? {
            events.push(e);
        } else {
            done.ignored += 1;
        }
    }
    done.recorded = events.len();
    h.events.ingest_in(&mut tx, &events).await?;
    tx.commit().await.map_err(herald_schedule::Error::from)?;
    Ok(done)
}

/// Records that `phone` opted out of `account`'s texts (the CRM learned it):
/// an `sms_opt_out` event; the next SMS sends skip the number. Returns the
/// number as stored.
pub async fn opt_out(h: &Herald, account: u64, phone: &str) -> Result<String> {
    let number = phone_field(phone)?;
    let mut e = NewEvent::new(EventKind::SmsOptOut, h.clock.now(), account, &number);
    e.reply = Some("opted out through the API".into());
    h.events.ingest(&[e]).await?;
    Ok(number)
}

/// Lets `account` text `phone` again (the person opted back in). Returns
/// whether the number was opted out.
pub async fn opt_in(h: &Herald, account: u64, phone: &str) -> Result<bool> {
    let number = phone_field(phone)?;
    Ok(h.events.sms_opt_in(account, &number).await?)
}

/// The `phone` field of a request, in E.164 form, or the problem naming it.
fn phone_field(phone: &str) -> Result<String> {
    crate::sms::normalize_number(phone).ok_or_else(|| {
        Error::invalid(
            "phone",
            format!("`{phone}` is not a number with country code (+4512345678)"),
        )
    })
}
