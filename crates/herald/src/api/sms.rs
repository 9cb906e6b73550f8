//! SMS sends through the outbox: `/v1/sms`, the gateway's delivery reports
//! (`/v1/sms/reports`) and opt-outs (`/v1/sms/opt-outs`).

use super::*;

// ---------------------------------------------------------------- SMS

pub use crate::app::sms::{NumberInput, ReportsRecorded, SmsInput, SmsRecipients, SmsReport};

/// What `POST /v1/sms` queued.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SmsQueued {
    /// The send's number: in the scheduled list (`GET /v1/sends`), shown by
    /// `GET /v1/sms/{id}`, deleted by `DELETE /v1/sms/{id}`.
    pub send_id: i64,
    /// When it is due.
    pub due_at: DateTime<Utc>,
    /// Texts queued (one per number).
    pub queued: usize,
    /// Their segments.
    pub segments: u64,
    /// Recipients skipped, by reason.
    pub skipped: BTreeMap<String, usize>,
    /// The campaign's number.
    pub campaign_id: i64,
    /// The campaign's name.
    pub campaign: String,
}

#[utoipa::path(post, path = "/v1/sms", tag = "api", summary = "Queue an SMS send", request_body = SmsInput, responses((status = 201, description = "The texts are queued; workers send them through the gateway", body = SmsQueued), (status = 403, description = "The account is not enabled", body = Problem, content_type = "application/problem+json"), (status = 503, description = "No SMS gateway is configured", body = Problem, content_type = "application/problem+json"), Errors), security(("api_key" = [])))]
pub(crate) async fn send_sms(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    Json(input): Json<SmsInput>,
) -> ApiResult<(StatusCode, Json<SmsQueued>)> {
    let done = crate::app::sms::send(&h, a, &input).await?;
    Ok((
        StatusCode::CREATED,
        Json(SmsQueued {
            send_id: done.send_id,
            due_at: done.due_at,
            queued: done.queued,
            segments: done.segments,
            skipped: done.skipped.by_name(),
            campaign_id: done.campaign_id.0,
            campaign: done.campaign,
        }),
    ))
}

/// An SMS send and its texts by state.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SmsSendOut {
    /// The send's number.
    pub id: i64,
    /// The sender id.
    pub from: String,
    /// The text as written.
    pub text: String,
    /// Its campaign.
    pub campaign_id: Option<i64>,
    /// When it was created.
    pub created: DateTime<Utc>,
    /// When it is (or was) due.
    pub scheduled_at: DateTime<Utc>,
    /// Recipients skipped when it was created.
    pub skipped: usize,
    /// Texts by state: `queued`, `claimed`, `deferred` (the gateway did not
    /// take it yet), `delivered` (the gateway accepted it), `failed`, `cancelled`.
    pub texts: BTreeMap<String, usize>,
}

#[utoipa::path(get, path = "/v1/sms/{id}", tag = "api", summary = "Show an SMS send", params(("id" = i64, Path, description = "The send number")), responses((status = 200, description = "The send", body = SmsSendOut), Errors), security(("api_key" = [])))]
pub(crate) async fn get_sms(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    P(id): P<i64>,
) -> ApiResult<Json<SmsSendOut>> {
    let v = crate::app::sms::view(&h, a, id).await?;
    Ok(Json(SmsSendOut {
        id: v.send.id,
        from: v.send.from,
        text: v.send.text,
        campaign_id: v.send.campaign.map(|c| c.0),
        created: v.send.created,
        scheduled_at: v.send.scheduled,
        skipped: v.send.skipped,
        texts: v
            .texts
            .into_iter()
            .map(|(k, n)| (k.as_str().to_owned(), n))
            .collect(),
    }))
}

#[utoipa::path(delete, path = "/v1/sms/{id}", tag = "api", summary = "Delete an SMS send", params(("id" = i64, Path, description = "The send number")), responses((status = 200, description = "Unsent texts cancelled", body = Cancelled), (status = 409, description = "Nothing left to cancel", body = Problem, content_type = "application/problem+json"), Errors), security(("api_key" = [])))]
pub(crate) async fn delete_sms(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    P(id): P<i64>,
) -> ApiResult<Json<Cancelled>> {
    h.outbox.sms_send(a, id).await?;
    Ok(Json(Cancelled {
        cancelled: h.outbox.delete(a, id, h.clock.now()).await?,
    }))
}

/// One report or a list of them.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Reports {
    /// Several.
    Many(Vec<SmsReport>),
    /// One.
    One(SmsReport),
}

#[utoipa::path(post, path = "/v1/sms/reports", tag = "api", summary = "Record the SMS gateway's delivery reports", request_body = Reports, responses((status = 200, description = "What was recorded", body = ReportsRecorded), (status = 401, description = "No or a wrong `Authorization: Bearer <sms.report_token>`", body = Problem, content_type = "application/problem+json"), Errors), security(("sms_report_token" = [])))]
pub(crate) async fn sms_reports(
    State(h): State<Arc<Herald>>,
    headers: axum::http::HeaderMap,
    Json(reports): Json<Reports>,
) -> ApiResult<Json<ReportsRecorded>> {
    crate::app::sms::authorize_report(&h, super::bearer(&headers))?;
    let reports = match reports {
        Reports::Many(r) => r,
        Reports::One(r) => vec![r],
    };
    Ok(Json(crate::app::sms::report(&h, &reports).await?))
}

/// A number that opts out of (or back in to) the account's texts.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhoneInput {
    /// The number, with country code.
    pub phone: String,
}

/// A number's opt-out state.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OptOut {
    /// The number, in E.164 form.
    pub phone: String,
    /// Whether the account's texts skip it now.
    pub opted_out: bool,
}

#[utoipa::path(post, path = "/v1/sms/opt-outs", tag = "api", summary = "Opt a number out of the account's texts", request_body = PhoneInput, responses((status = 200, description = "The number is opted out", body = OptOut), Errors), security(("api_key" = [])))]
pub(crate) async fn sms_opt_out(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    Json(input): Json<PhoneInput>,
) -> ApiResult<Json<OptOut>> {
    Ok(Json(OptOut {
        phone: crate::app::sms::opt_out(&h, a, &input.phone).await?,
        opted_out: true,
    }))
}

#[utoipa::path(post, path = "/v1/sms/opt-ins", tag = "api", summary = "Let the account text a number again", request_body = PhoneInput, responses((status = 200, description = "The number may be texted", body = OptOut), Errors), security(("api_key" = [])))]
pub(crate) async fn sms_opt_in(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    Json(input): Json<PhoneInput>,
) -> ApiResult<Json<OptOut>> {
    crate::app::sms::opt_in(&h, a, &input.phone).await?;
    Ok(Json(OptOut {
        phone: crate::sms::normalize_number(&input.phone).unwrap_or(input.phone),
        opted_out: false,
    }))
}
