//! Email sends: `/v1/sends` (individual and mass, preview, the scheduled list).

use super::*;

// ---------------------------------------------------------------- sends

pub use crate::app::sends::{AddressInput, FromInput, Recipients, SendInput};

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

#[utoipa::path(post, path = "/v1/sends", tag = "api", summary = "Send an individual or mass email",  request_body = SendInput, responses((status = 201, description = "The send is queued", body = SendAccepted), (status = 403, description = "The account is not enabled", body = Problem, content_type = "application/problem+json"), Errors), security(("api_key" = [])))]
pub(crate) async fn create_send(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    Json(input): Json<SendInput>,
) -> ApiResult<(StatusCode, Json<SendAccepted>)> {
    let accepted = crate::app::sends::create(&h, a, &input).await?;
    Ok((
        StatusCode::CREATED,
        Json(SendAccepted {
            send_id: accepted.send_id,
            due_at: accepted.due_at,
            queued: accepted.queued,
            skipped: accepted.skipped.by_name(),
            campaign_id: accepted.campaign_id.0,
            campaign: accepted.campaign,
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
    let p = crate::app::sends::preview(&h, a, &input).await?;
    Ok(Json(PreviewOut {
        to: p.to,
        preview: p.preview,
    }))
}

#[utoipa::path(get, path = "/v1/sends", tag = "api", summary = "The scheduled list",   responses((status = 200, description = "The scheduled list", body = [ScheduledSend]), Errors), security(("api_key" = [])))]
pub(crate) async fn list_sends(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
) -> ApiResult<Json<Vec<ScheduledSend>>> {
    Ok(Json(
        h.outbox
            .scheduled(a)
            .await?
            .into_iter()
            .map(ScheduledSend::from)
            .collect(),
    ))
}

/// One line of the scheduled list (R-SND-5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ScheduledSend {
    /// The send's number.
    pub id: i64,
    /// When it is (or was) due.
    pub deferred_until: DateTime<Utc>,
    /// When it was created.
    pub created: DateTime<Utc>,
    /// Recipients (queued, not skipped).
    pub count: usize,
    /// The CRM user's name, else address.
    pub user: String,
    /// The subject as written.
    pub subject: String,
    /// The recipient, or `* Broadcast *` for mass sends.
    pub to: String,
    /// `In progress <sent>/<total>` once sending started, else `Scheduled`.
    pub status: String,
    /// `email` or `sms` (an SMS send's subject is its text as written, its
    /// recipient a number).
    pub channel: String,
}

impl From<herald_schedule::ScheduledSend> for ScheduledSend {
    /// The seed's wording of a scheduled line (the API's; a UI translates the data instead).
    fn from(s: herald_schedule::ScheduledSend) -> Self {
        ScheduledSend {
            id: s.id,
            deferred_until: s.deferred_until,
            created: s.created,
            count: s.count,
            user: s.user,
            subject: s.subject,
            to: s.recipient.unwrap_or_else(|| "* Broadcast *".to_owned()),
            status: if s.done > 0 {
                format!("In progress {}/{}", s.done, s.count)
            } else {
                "Scheduled".to_owned()
            },
            channel: s.channel.as_str().to_owned(),
        }
    }
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
    pub campaign_id: Option<i64>,
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
        campaign_id: s.campaign.map(|c| c.0),
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
