//! Email sends (R-SND-1, R-SND-2, R-EVT-4): who gets the message, who is
//! skipped and why, the campaign it counts in, and the send queued — the
//! campaign and the send in one transaction, so a refused enqueue leaves no
//! empty campaign behind.

use super::contacts::{PersonView, persons};
use super::{Error, Result, Skip, Skipped};
use crate::service::Herald;
use chrono::{DateTime, Utc};
use herald_eventlog::{Namespace, ReportQuery};
use herald_message::{
    Attachment, FieldSchema, Mailbox, MergeData, Preview, SendKind, SenderIdentity, Template,
    TrackingOptions,
};
use herald_schedule::{NewRecipient, NewSend, When};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

/// The CRM user a send is from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct FromInput {
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Address.
    pub email: String,
}

/// One recipient given by address.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct AddressInput {
    /// Address.
    pub email: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// The CRM's person id, if any (carried into the events).
    #[serde(default)]
    pub person_id: Option<String>,
    /// Merge data for this recipient (person fields).
    #[serde(default)]
    pub person: BTreeMap<String, String>,
    /// Organisation fields.
    #[serde(default)]
    pub organisation: BTreeMap<String, String>,
    /// Custom fields.
    #[serde(default)]
    pub custom: BTreeMap<String, String>,
}

/// Who gets a send: persons stored with `PUT /v1/persons`, the persons of a
/// saved report, or addresses with their merge data.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub enum Recipients {
    /// Person ids.
    Persons(Vec<String>),
    /// The persons of the events a report matches (R-EVT-6).
    Report(ReportQuery),
    /// Addresses.
    Addresses(Vec<AddressInput>),
}

/// `POST /v1/sends` and `POST /v1/sends/preview`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct SendInput {
    /// `individual` or `mass`.
    pub kind: SendKind,
    /// The CRM user.
    pub from: FromInput,
    /// Subject, with merge fields.
    pub subject: String,
    /// HTML body, with merge fields.
    #[serde(default)]
    pub html: String,
    /// Text body, with merge fields.
    #[serde(default)]
    pub text: String,
    /// Who.
    pub recipients: Recipients,
    /// Campaign name (default: "Emails YYYY MM" for individual mail, the date
    /// and subject for mass mail, R-EVT-4); a name given again joins that campaign.
    #[serde(default)]
    pub campaign: Option<String>,
    /// When to send (default now).
    #[serde(default)]
    pub scheduled_at: Option<DateTime<Utc>>,
    /// Files sent with every message (`data` base64).
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    /// Track clicks (default true).
    #[serde(default = "yes")]
    pub track_links: bool,
    /// Track opens (default true).
    #[serde(default = "yes")]
    pub track_opens: bool,
}

fn yes() -> bool {
    true
}

/// A send accepted and queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The send's number.
    pub send_id: i64,
    /// When it is due.
    pub due_at: DateTime<Utc>,
    /// Messages queued.
    pub queued: usize,
    /// Recipients left out, by reason.
    pub skipped: Skipped,
    /// The campaign's number.
    pub campaign_id: herald_message::CampaignId,
    /// The campaign's name.
    pub campaign: String,
}

/// A send resolved and compiled, not stored yet.
struct Prepared {
    send: NewSend,
    recipients: Vec<NewRecipient>,
    skipped: Skipped,
    due: DateTime<Utc>,
}

/// One recipient before compiling: address, name, person, merge data.
struct Target {
    email: String,
    name: Option<String>,
    person: Option<String>,
    data: MergeData,
    /// A stored person (by id or report), skipped when unusable; an address
    /// given in the request is refused instead, naming its field.
    stored: bool,
}

/// The stored persons a send or an SMS names: each id once, in the order
/// given; unknown ids counted in `skipped`.
pub(super) async fn stored_persons(
    h: &Herald,
    account: u64,
    ids: Vec<String>,
    skipped: &mut Skipped,
) -> Result<Vec<PersonView>> {
    let mut records = persons(h, account, &ids).await?;
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if !seen.insert(id.clone()) {
            continue;
        }
        match records.remove(&id) {
            Some(v) => out.push(v),
            None => skipped.add(Skip::UnknownPerson),
        }
    }
    Ok(out)
}

async fn targets(
    h: &Herald,
    account: u64,
    input: &SendInput,
    skipped: &mut Skipped,
) -> Result<Vec<Target>> {
    let ids = match &input.recipients {
        Recipients::Addresses(list) => {
            return Ok(list
                .iter()
                .map(|r| Target {
                    email: r.email.clone(),
                    name: r.name.clone(),
                    person: r.person_id.clone(),
                    data: MergeData {
                        person: r.person.clone(),
                        organisation: r.organisation.clone(),
                        custom: r.custom.clone(),
                    },
                    stored: false,
                })
                .collect());
        }
        Recipients::Persons(ids) => ids.clone(),
        Recipients::Report(q) => h.events.report_persons(account, q).await?,
    };
    let mut out = Vec::with_capacity(ids.len());
    for v in stored_persons(h, account, ids, skipped).await? {
        let Some(email) = v.person.get("email").filter(|e| !e.trim().is_empty()) else {
            skipped.add(Skip::NoEmailAddress);
            continue;
        };
        if v.block_mass_emails && input.kind == SendKind::Mass {
            skipped.add(Skip::BlocksMassEmail);
            continue;
        }
        out.push(Target {
            email: email.clone(),
            name: v.display_name(),
            data: v.merge_data(),
            person: Some(v.id),
            stored: true,
        });
    }
    Ok(out)
}

/// The merge fields a send may use: the standard ones, every field the
/// account has stored for its persons, and those its recipients carry.
pub(super) fn schema_for<'a>(
    stored: &[(Namespace, String)],
    data: impl IntoIterator<Item = &'a MergeData>,
) -> FieldSchema {
    let mut schema = FieldSchema::standard();
    for (ns, k) in stored {
        schema = match ns {
            Namespace::Person => schema.with_person_field(k),
            Namespace::Organisation => schema.with_organisation_field(k),
            Namespace::Custom => schema.with_custom_field(k),
        };
    }
    for d in data {
        for k in d.person.keys() {
            schema = schema.with_person_field(k);
        }
        for k in d.organisation.keys() {
            schema = schema.with_organisation_field(k);
        }
        for k in d.custom.keys() {
            schema = schema.with_custom_field(k);
        }
    }
    schema
}

/// Refuses, before anything is stored, the attachments a message could not be
/// built or sent with: each is checked as the build checks it, and together
/// they must fit the platform limit unless a fallback relay takes larger mail
/// (R-MSG-7).
fn check_attachments(h: &Herald, attachments: &[Attachment]) -> Result<()> {
    for (i, a) in attachments.iter().enumerate() {
        a.validate()
            .map_err(|e| Error::invalid(format!("attachments[{i}]"), e))?;
    }
    h.config
        .attachments
        .route(
            attachments.iter().map(|a| a.data.len() as u64),
            h.fallback.is_some(),
        )
        .map_err(|e| Error::Invalid {
            field: "attachments".into(),
            // The error's text already starts with the field's name.
            rule: e.to_string(),
        })?;
    Ok(())
}

async fn prepare(h: &Herald, account: u64, input: &SendInput) -> Result<Prepared> {
    let now = h.clock.now();
    let from = Mailbox::for_field("from.email", input.from.name.as_deref(), &input.from.email)?;
    if input.subject.chars().any(|c| c.is_control() && c != '\t') {
        return Err(Error::invalid(
            "subject",
            "must not contain control characters (CR, LF, …)",
        ));
    }
    check_attachments(h, &input.attachments)?;
    let mut skipped = Skipped::default();
    let targets = targets(h, account, input, &mut skipped).await?;
    let template = Template {
        subject: input.subject.clone(),
        html: input.html.clone(),
        text: input.text.clone(),
    }
    .compile(
        &schema_for(
            &h.events.field_names(account).await?,
            targets.iter().map(|t| &t.data),
        ),
        &TrackingOptions {
            track_links: input.track_links,
            track_opens: input.track_opens,
            unsubscribe_link: input.kind == SendKind::Mass,
            ..TrackingOptions::default()
        },
    )?;
    let mut recipients = Vec::with_capacity(targets.len());
    for (i, t) in targets.into_iter().enumerate() {
        let field = format!("recipients[{i}].email");
        let to = Mailbox::for_field(&field, t.name.as_deref(), t.email.trim());
        let values = template.resolve(&t.data);
        // A stored person that cannot be mailed is skipped and counted (it was
        // valid when stored under older rules, or its name breaks a header);
        // an address in the request is the caller's mistake: refuse it.
        let (to, values) = match (to, values) {
            (Ok(to), Ok(values)) => (to, values),
            (to, values) if t.stored => {
                let reason = if Mailbox::for_field(&field, None, t.email.trim()).is_err() {
                    Skip::InvalidEmailAddress
                } else {
                    Skip::UnusablePersonData
                };
                tracing::debug!(person = ?t.person, to = ?to.err(), values = ?values.err(), "skipped an unusable person");
                skipped.add(reason);
                continue;
            }
            (Err(e), _) => return Err(e.into()),
            (Ok(_), Err(e)) => return Err(Error::invalid(format!("recipients[{i}]"), e)),
        };
        recipients.push(NewRecipient {
            to,
            values,
            person: t.person,
        });
    }
    let when = match input.scheduled_at {
        Some(at) => When::At(at),
        None => When::Now,
    };
    let due = input.scheduled_at.unwrap_or(now).max(now);
    let verified = h
        .accounts
        .domain(account, from.address.domain())
        .await?
        .is_some_and(|d| d.verified)
        || h.signers
            .domains
            .contains_key(&from.address.domain().to_ascii_lowercase());
    Ok(Prepared {
        send: NewSend {
            account,
            kind: input.kind,
            template,
            sender: SenderIdentity {
                user: from,
                domain_verified: verified,
            },
            campaign: None,
            when,
            subject: input.subject.clone(),
            attachments: input.attachments.clone(),
        },
        recipients,
        skipped,
        due,
    })
}

/// A campaign name given with a send (email or SMS), trimmed: at most 200
/// characters, no control characters; `None` when none (or a blank one) was given.
pub(super) fn given_campaign_name(name: Option<&str>) -> Result<Option<String>> {
    let Some(n) = name.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if n.chars().any(char::is_control) || n.chars().count() > 200 {
        return Err(Error::invalid(
            "campaign",
            "at most 200 characters, no control characters",
        ));
    }
    Ok(Some(n.to_owned()))
}

/// The campaign a send counts in: the name given (at most 200 characters, no
/// control characters), else "Emails YYYY MM" for individual mail and the
/// date and subject for mass mail, in the account's time zone (R-EVT-4).
fn campaign_name(
    account: &crate::accounts::Account,
    input: &SendInput,
    due: DateTime<Utc>,
    subject: &str,
) -> Result<String> {
    if let Some(n) = given_campaign_name(input.campaign.as_deref())? {
        return Ok(n);
    }
    let tz: chrono_tz::Tz = account.timezone.parse().unwrap_or(chrono_tz::UTC);
    Ok(match input.kind {
        SendKind::Individual => herald_eventlog::individual_campaign_name(due, tz),
        SendKind::Mass => {
            herald_eventlog::mass_campaign_name(due, tz, &account.date_format, subject)
        }
    })
}

/// Accepts a send for `account` (which must be enabled): resolves and
/// deduplicates its recipients, skips and counts those that cannot or must not
/// get it, checks the sending rules, and writes the campaign and the queued
/// send in one transaction.
pub async fn create(h: &Herald, account: u64, input: &SendInput) -> Result<Accepted> {
    let account = super::enabled_account(h, account).await?;
    let now = h.clock.now();
    let mut p = prepare(h, account.id, input).await?;
    if p.recipients.is_empty() {
        return Err(Error::invalid(
            "recipients",
            format!("no recipient left to send to (skipped: {})", p.skipped),
        ));
    }
    // The rules are checked again by the enqueue, inside the transaction; this
    // early check only keeps a rule's 422 ahead of the campaign name's 400.
    h.outbox
        .rules()
        .check(now, p.recipients.len(), p.send.when)
        .map_err(herald_schedule::Error::from)?;
    // The subject as a campaign shows it: merge fields at their defaults.
    let subject = p.send.template.render_subject(&Default::default());
    let name = campaign_name(&account, input, p.due, &subject)?;
    let mut tx = h
        .outbox
        .writer()
        .begin()
        .await
        .map_err(herald_schedule::Error::from)?;
    let campaign_id = h
        .events
        .campaign_for_in(&mut tx, account.id, &name, &subject, now)
        .await?;
    p.send.campaign = Some(campaign_id);
    let accepted = h
        .outbox
        .enqueue_in(&mut tx, p.send, p.recipients, &h.events, now)
        .await?;
    tx.commit().await.map_err(herald_schedule::Error::from)?;
    for (reason, n) in accepted.skipped {
        *p.skipped.0.entry(reason.into()).or_default() += n;
    }
    h.metrics.sends_accepted.fetch_add(1, Ordering::Relaxed);
    h.metrics
        .messages_queued
        .fetch_add(accepted.queued as u64, Ordering::Relaxed);
    Ok(Accepted {
        send_id: accepted.send_id,
        due_at: accepted.due_at,
        queued: accepted.queued,
        skipped: p.skipped,
        campaign_id,
        campaign: name,
    })
}

/// A send merged for its first recipient, as it would go out.
#[derive(Debug, Clone)]
pub struct Previewed {
    /// The recipient previewed.
    pub to: String,
    /// The merged message.
    pub preview: Preview,
}

/// Previews `input` for its first recipient; stores nothing.
pub async fn preview(h: &Herald, account: u64, input: &SendInput) -> Result<Previewed> {
    let account = h.accounts.get(account).await?;
    let p = prepare(h, account.id, input).await?;
    let first = p
        .recipients
        .first()
        .ok_or_else(|| Error::invalid("recipients", "no recipient to preview"))?;
    Ok(Previewed {
        to: first.to.address.as_str().to_owned(),
        preview: p.send.template.preview(&first.values),
    })
}

/// The send the quick start prints for its demo persons, as JSON.
pub fn demo_send_json(from: &str) -> serde_json::Value {
    serde_json::json!({
        "kind": "mass",
        "from": {"name": "Demo Shop", "email": from},
        "subject": "Hello {{person.first_name | \"there\"}}",
        "html": "<p>Hi {{person.first_name | \"there\"}},</p><p>Our <a href=\"https://example.com/spring\">spring sale</a> has started.</p>",
        "recipients": {"persons": ["demo-1", "demo-2", "demo-3"]}
    })
}
