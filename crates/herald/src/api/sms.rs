//! SMS through the configured gateway: `/v1/sms`.

use super::*;

// ---------------------------------------------------------------- SMS

pub use crate::app::sms::{NumberInput, SmsInput, SmsRecipients};

/// What happened to one text.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SmsOutcome {
    /// The number.
    pub to: String,
    /// The CRM person.
    pub person: Option<String>,
    /// Segments the text was sent as.
    pub segments: usize,
    /// `sent` (the gateway accepted it) or `failed`.
    pub status: String,
    /// The gateway's HTTP status, if it answered.
    pub gateway_status: Option<u16>,
    /// The gateway's answer or the error.
    pub detail: String,
}

/// What `POST /v1/sms` did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SmsSent {
    /// Texts the gateway accepted.
    pub sent: usize,
    /// Texts it refused or did not answer.
    pub failed: usize,
    /// Segments of the accepted texts.
    pub segments: usize,
    /// Recipients skipped, by reason.
    pub skipped: BTreeMap<String, usize>,
    /// Each text.
    pub results: Vec<SmsOutcome>,
}

#[utoipa::path(post, path = "/v1/sms", tag = "api", summary = "Send an SMS through the gateway", request_body = SmsInput, responses((status = 200, description = "Each text, sent or failed", body = SmsSent), (status = 403, description = "The account is not enabled", body = Problem, content_type = "application/problem+json"), (status = 503, description = "No SMS gateway is configured", body = Problem, content_type = "application/problem+json"), Errors), security(("api_key" = [])))]
pub(crate) async fn send_sms(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    Json(input): Json<SmsInput>,
) -> ApiResult<Json<SmsSent>> {
    let done = crate::app::sms::send(&h, a, &input).await?;
    let mut out = SmsSent {
        sent: 0,
        failed: 0,
        segments: 0,
        skipped: done.skipped.by_name(),
        results: Vec::with_capacity(done.results.len()),
    };
    for r in done.results {
        if r.accepted {
            out.sent += 1;
            out.segments += r.segments;
        } else {
            out.failed += 1;
        }
        out.results.push(SmsOutcome {
            to: r.to,
            person: r.person,
            segments: r.segments,
            status: if r.accepted { "sent" } else { "failed" }.into(),
            gateway_status: r.gateway_status,
            detail: r.detail,
        });
    }
    Ok(Json(out))
}
