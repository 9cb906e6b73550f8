//! SMS sends through the configured gateway (R-MSG-8): recipients resolved,
//! numbers normalised and deduplicated, each text merged and posted.
//!
//! Not yet through the outbox: the texts go while the request waits (the
//! issue "SMS as first-class sends" moves them to the outbox).

use super::sends::{schema_for, stored_persons};
use super::{Error, Result, Skip, Skipped};
use crate::service::Herald;
use herald_eventlog::ReportQuery;
use herald_message::MergeData;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
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
}

/// What happened to one text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextOutcome {
    /// The number, normalised.
    pub to: String,
    /// The CRM person.
    pub person: Option<String>,
    /// Segments the text was sent as.
    pub segments: usize,
    /// The gateway accepted it (2xx).
    pub accepted: bool,
    /// The gateway's HTTP status, if it answered.
    pub gateway_status: Option<u16>,
    /// The gateway's answer or the error.
    pub detail: String,
}

/// What an SMS send did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsSent {
    /// Each text, in the order of the recipients.
    pub results: Vec<TextOutcome>,
    /// Recipients left out, by reason.
    pub skipped: Skipped,
}

/// Sends `input` for `account` (which must be enabled) through the gateway.
/// A number given twice (after normalising) gets one text.
pub async fn send(h: &Herald, account: u64, input: &SmsInput) -> Result<SmsSent> {
    let account = super::enabled_account(h, account).await?;
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
        let number = ["mobile", "phone"]
            .iter()
            .filter_map(|f| v.person.get(*f))
            .find_map(|n| crate::sms::normalize_number(n));
        let Some(number) = number else {
            skipped.add(Skip::NoMobileNumber);
            continue;
        };
        targets.push((number, Some(v.id.clone()), v.merge_data()));
    }
    // One text a number, as one email an address.
    let mut seen = std::collections::HashSet::new();
    targets.retain(|(number, _, _)| seen.insert(number.clone()));
    let max = gateway.config.max_recipients;
    if targets.len() > max {
        return Err(Error::invalid(
            "recipients",
            format!("at most {max} recipients per SMS send"),
        ));
    }
    let schema = schema_for(
        &h.events.field_names(account.id).await?,
        targets.iter().map(|(_, _, data)| data),
    );
    let template = herald_message::sms::SmsTemplate::compile(&input.text, &schema)
        .map_err(|e| Error::invalid("text", e))?;
    let limit = Arc::new(tokio::sync::Semaphore::new(
        gateway.config.concurrency.max(1),
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (number, person, data)) in targets.into_iter().enumerate() {
        let (text, length) = template.render(&template.resolve(&data));
        let gateway = gateway.clone();
        let limit = Arc::clone(&limit);
        let from = from.clone();
        let reference = format!("{}-{i}", account.id);
        tasks.spawn(async move {
            let _permit = limit.acquire().await;
            let reply = gateway
                .send(&crate::sms::Sms {
                    to: &number,
                    from: &from,
                    text: &text,
                    segments: length.segments,
                    encoding: length.encoding,
                    reference: &reference,
                })
                .await;
            (i, number, person, length.segments, reply)
        });
    }
    let mut done = Vec::new();
    while let Some(r) = tasks.join_next().await {
        done.push(r.map_err(|e| crate::Error::Task(e.to_string()))?);
    }
    done.sort_by_key(|r| r.0);
    let mut results = Vec::with_capacity(done.len());
    for (_, to, person, segments, reply) in done {
        let counter = if reply.accepted {
            &h.metrics.sms_sent
        } else {
            &h.metrics.sms_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        results.push(TextOutcome {
            to,
            person,
            segments,
            accepted: reply.accepted,
            gateway_status: reply.status,
            detail: reply.detail,
        });
    }
    Ok(SmsSent { results, skipped })
}
