//! Email sends: `/v1/sends` (individual and mass, preview, the scheduled list).

use super::*;

// ---------------------------------------------------------------- sends

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

pub(super) fn yes() -> bool {
    true
}

/// What `POST /v1/sends` accepted.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SendAccepted {
    /// The send's number.
    pub send_id: i64,
    /// When it is due.
    pub due_at: DateTime<Utc>,
    /// Messages queued.
    pub queued: usize,
    /// Recipients skipped, by reason.
    pub skipped: BTreeMap<String, usize>,
    /// The campaign's number.
    pub campaign_id: i64,
    /// The campaign's name.
    pub campaign: String,
}

pub(super) struct Prepared {
    send: NewSend,
    recipients: Vec<NewRecipient>,
    skipped: BTreeMap<String, usize>,
    due: DateTime<Utc>,
}

pub(super) fn merge_data(
    person: &BTreeMap<String, String>,
    organisation: &BTreeMap<String, String>,
    custom: &BTreeMap<String, String>,
) -> MergeData {
    MergeData {
        person: person.clone(),
        organisation: organisation.clone(),
        custom: custom.clone(),
    }
}

pub(super) fn display_name(p: &BTreeMap<String, String>) -> Option<String> {
    if let Some(n) = p.get("full_name").filter(|n| !n.trim().is_empty()) {
        return Some(n.clone());
    }
    let n = [p.get("first_name"), p.get("last_name")]
        .into_iter()
        .flatten()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (!n.is_empty()).then_some(n)
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

/// Why a stored person was left out of a send, as the answer's `skipped` counts it.
const SKIP_INVALID_EMAIL: &str = "invalid email address";
const SKIP_UNUSABLE_DATA: &str = "unusable person data";

async fn targets(
    h: &Herald,
    account: u64,
    input: &SendInput,
    skipped: &mut BTreeMap<String, usize>,
) -> ApiResult<Vec<Target>> {
    let ids = match &input.recipients {
        Recipients::Addresses(list) => {
            return Ok(list
                .iter()
                .map(|r| Target {
                    email: r.email.clone(),
                    name: r.name.clone(),
                    person: r.person_id.clone(),
                    data: merge_data(&r.person, &r.organisation, &r.custom),
                    stored: false,
                })
                .collect());
        }
        Recipients::Persons(ids) => ids.clone(),
        Recipients::Report(q) => h.events.report_persons(account, q).await?,
    };
    let mut records = h.events.persons(account, &ids).await?;
    let mut out = Vec::with_capacity(ids.len());
    let mut seen = std::collections::HashSet::new();
    for id in ids {
        if !seen.insert(id.clone()) {
            continue;
        }
        let Some(record) = records.remove(&id) else {
            *skipped.entry("unknown person".into()).or_default() += 1;
            continue;
        };
        let v = view_of(record);
        let Some(email) = v.person.get("email").filter(|e| !e.trim().is_empty()) else {
            *skipped.entry("no email address".into()).or_default() += 1;
            continue;
        };
        if v.block_mass_emails && input.kind == SendKind::Mass {
            *skipped
                .entry(SkipReason::BlocksMassEmail.as_str().into())
                .or_default() += 1;
            continue;
        }
        out.push(Target {
            email: email.clone(),
            name: display_name(&v.person),
            person: Some(id),
            data: merge_data(&v.person, &v.organisation, &v.custom),
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
fn check_attachments(h: &Herald, attachments: &[Attachment]) -> ApiResult<()> {
    for (i, a) in attachments.iter().enumerate() {
        a.validate()
            .map_err(|e| Problem::invalid(&format!("attachments[{i}]"), e))?;
    }
    h.config
        .attachments
        .route(
            attachments.iter().map(|a| a.data.len() as u64),
            h.fallback.is_some(),
        )
        .map_err(|e| {
            // The error's text already starts with the field's name.
            let mut p = Problem::new(StatusCode::BAD_REQUEST, e.to_string());
            p.field = Some("attachments".into());
            p
        })?;
    Ok(())
}

pub(super) async fn prepare(
    h: &Herald,
    account: &Account,
    input: &SendInput,
) -> ApiResult<Prepared> {
    let now = h.clock.now();
    let from = Mailbox::for_field("from.email", input.from.name.as_deref(), &input.from.email)?;
    if input.subject.chars().any(|c| c.is_control() && c != '\t') {
        return Err(Problem::invalid(
            "subject",
            "must not contain control characters (CR, LF, …)",
        ));
    }
    check_attachments(h, &input.attachments)?;
    let mut skipped = BTreeMap::new();
    let targets = targets(h, account.id, input, &mut skipped).await?;
    let template = Template {
        subject: input.subject.clone(),
        html: input.html.clone(),
        text: input.text.clone(),
    }
    .compile(
        &schema_for(
            &h.events.field_names(account.id).await?,
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
                    SKIP_INVALID_EMAIL
                } else {
                    SKIP_UNUSABLE_DATA
                };
                tracing::debug!(person = ?t.person, to = ?to.err(), values = ?values.err(), "skipped an unusable person");
                *skipped.entry(reason.into()).or_default() += 1;
                continue;
            }
            (Err(e), _) => return Err(e.into()),
            (Ok(_), Err(e)) => return Err(Problem::invalid(&format!("recipients[{i}]"), e)),
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
        .domain(account.id, from.address.domain())
        .await?
        .is_some_and(|d| d.verified)
        || h.signers
            .domains
            .contains_key(&from.address.domain().to_ascii_lowercase());
    Ok(Prepared {
        send: NewSend {
            account: account.id,
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

#[utoipa::path(post, path = "/v1/sends", tag = "api", summary = "Send an individual or mass email",  request_body = SendInput, responses((status = 201, description = "The send is queued", body = SendAccepted), (status = 403, description = "The account is not enabled", body = Problem, content_type = "application/problem+json"), Errors), security(("api_key" = [])))]
pub(crate) async fn create_send(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    Json(input): Json<SendInput>,
) -> ApiResult<(StatusCode, Json<SendAccepted>)> {
    let account = enabled(&h, a).await?;
    let now = h.clock.now();
    let mut p = prepare(&h, &account, &input).await?;
    if p.recipients.is_empty() {
        return Err(Problem::invalid(
            "recipients",
            format!(
                "no recipient left to send to (skipped: {})",
                p.skipped
                    .iter()
                    .map(|(k, v)| format!("{v} {k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    // The rules are checked before a campaign is created for the send.
    h.outbox
        .rules()
        .check(now, p.recipients.len(), p.send.when)
        .map_err(herald_schedule::Error::from)?;
    let tz: chrono_tz::Tz = account.timezone.parse().unwrap_or(chrono_tz::UTC);
    // The subject as a campaign shows it: merge fields at their defaults.
    let subject = p.send.template.render_subject(&Default::default());
    let name = match input.campaign.as_deref().map(str::trim) {
        Some(n) if !n.is_empty() => {
            if n.chars().any(char::is_control) || n.chars().count() > 200 {
                return Err(Problem::invalid(
                    "campaign",
                    "at most 200 characters, no control characters",
                ));
            }
            n.to_owned()
        }
        _ => match input.kind {
            SendKind::Individual => herald_eventlog::individual_campaign_name(p.due, tz),
            SendKind::Mass => {
                herald_eventlog::mass_campaign_name(p.due, tz, &account.date_format, &subject)
            }
        },
    };
    let campaign_id = h
        .events
        .campaign_for(account.id, &name, &subject, now)
        .await?;
    p.send.campaign = u64::try_from(campaign_id).ok();
    let accepted = h
        .outbox
        .enqueue(p.send, p.recipients, &h.events, now)
        .await?;
    for (reason, n) in accepted.skipped {
        *p.skipped.entry(reason.as_str().into()).or_default() += n;
    }
    h.metrics.sends_accepted.fetch_add(1, Ordering::Relaxed);
    h.metrics
        .messages_queued
        .fetch_add(accepted.queued as u64, Ordering::Relaxed);
    Ok((
        StatusCode::CREATED,
        Json(SendAccepted {
            send_id: accepted.send_id,
            due_at: accepted.due_at,
            queued: accepted.queued,
            skipped: p.skipped,
            campaign_id,
            campaign: name,
        }),
    ))
}

/// A preview of a send for its first recipient.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PreviewOut {
    /// The recipient previewed.
    pub to: String,
    /// The merged message.
    #[serde(flatten)]
    pub preview: Preview,
}

#[utoipa::path(post, path = "/v1/sends/preview", tag = "api", summary = "Preview a send",  request_body = SendInput, responses((status = 200, description = "The message merged for its first recipient", body = PreviewOut), Errors), security(("api_key" = [])))]
pub(crate) async fn preview_send(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    Json(input): Json<SendInput>,
) -> ApiResult<Json<PreviewOut>> {
    let account = h.accounts.get(a).await?;
    let p = prepare(&h, &account, &input).await?;
    let first = p
        .recipients
        .first()
        .ok_or(Problem::invalid("recipients", "no recipient to preview"))?;
    Ok(Json(PreviewOut {
        to: first.to.address.as_str().to_owned(),
        preview: p.send.template.preview(&first.values),
    }))
}

#[utoipa::path(get, path = "/v1/sends", tag = "api", summary = "The scheduled list",   responses((status = 200, description = "The scheduled list", body = [ScheduledSend]), Errors), security(("api_key" = [])))]
pub(crate) async fn list_sends(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
) -> ApiResult<Json<Vec<ScheduledSend>>> {
    Ok(Json(h.outbox.scheduled(a).await?))
}

/// A send as viewed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SendView {
    /// The send's number.
    pub id: i64,
    /// Individual or mass.
    pub kind: SendKind,
    /// From.
    pub from: String,
    /// The subject as written.
    pub subject: String,
    /// The campaign's number.
    pub campaign_id: Option<u64>,
    /// Messages by state.
    pub messages: BTreeMap<String, usize>,
}

#[utoipa::path(get, path = "/v1/sends/{id}", tag = "api", summary = "View a send", params(("id" = i64, Path, description = "The send number")),  responses((status = 200, description = "The send and its messages by state", body = SendView), Errors), security(("api_key" = [])))]
pub(crate) async fn get_send(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    P(id): P<i64>,
) -> ApiResult<Json<SendView>> {
    let s = h.outbox.view(a, id).await?;
    let counts = h.outbox.counts(id).await?;
    Ok(Json(SendView {
        id: s.id,
        kind: s.kind,
        from: s.sender.user.address.as_str().to_owned(),
        subject: s.template.render_subject(&Default::default()),
        campaign_id: s.campaign,
        messages: counts
            .into_iter()
            .map(|(k, v)| (k.as_str().to_owned(), v))
            .collect(),
    }))
}

/// What deleting a send did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Cancelled {
    /// Unsent messages cancelled.
    pub cancelled: u64,
}

#[utoipa::path(delete, path = "/v1/sends/{id}", tag = "api", summary = "Delete a send", params(("id" = i64, Path, description = "The send number")),  responses((status = 200, description = "Unsent messages cancelled", body = Cancelled), (status = 409, description = "Nothing left to cancel", body = Problem, content_type = "application/problem+json"), Errors), security(("api_key" = [])))]
pub(crate) async fn delete_send(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    P(id): P<i64>,
) -> ApiResult<Json<Cancelled>> {
    Ok(Json(Cancelled {
        cancelled: h.outbox.delete(a, id, h.clock.now()).await?,
    }))
}
