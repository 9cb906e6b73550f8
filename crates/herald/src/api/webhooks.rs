//! Event webhooks: `/v1/webhooks` (issue 14, R-HOOK-1).

use super::*;

pub use crate::app::webhooks::{Webhook, WebhookWithSecret};
pub use herald_eventlog::WebhookAttempt;

/// `POST /v1/webhooks`: a new endpoint.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where deliveries go: https (http only when the operator allows it),
    /// resolving to public addresses unless the operator allows private ones.
    #[schema(max_length = 2000)]
    pub url: String,
    /// The event kinds it wants (`delivered`, `open`, `click`, `hard_bounce`, …);
    /// none or empty: every kind.
    #[serde(default)]
    pub kinds: Vec<String>,
}

/// `PATCH /v1/webhooks/{id}`: what changes.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    /// A new URL.
    #[schema(max_length = 2000)]
    pub url: Option<String>,
    /// New event kinds (empty: every kind).
    pub kinds: Option<Vec<String>>,
    /// Enable (clearing why it was disabled) or disable it.
    pub enabled: Option<bool>,
}

#[utoipa::path(post, path = "/v1/webhooks", tag = "api", summary = "Register a webhook endpoint", request_body = CreateWebhook, responses((status = 201, description = "The endpoint and its signing secret, shown this once", body = WebhookWithSecret), Errors), security(("api_key" = [])))]
pub(crate) async fn create_webhook(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    Json(body): Json<CreateWebhook>,
) -> ApiResult<(StatusCode, Json<WebhookWithSecret>)> {
    let w = crate::app::webhooks::create(&h, a, &body.url, &body.kinds).await?;
    Ok((StatusCode::CREATED, Json(w)))
}

#[utoipa::path(get, path = "/v1/webhooks", tag = "api", summary = "List webhook endpoints", responses((status = 200, description = "The account's endpoints", body = [Webhook]), Errors), security(("api_key" = [])))]
pub(crate) async fn list_webhooks(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
) -> ApiResult<Json<Vec<Webhook>>> {
    Ok(Json(crate::app::webhooks::list(&h, a).await?))
}

#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "api", summary = "A webhook endpoint", params(("id" = i64, Path, description = "The endpoint's number")), responses((status = 200, description = "The endpoint", body = Webhook), Errors), security(("api_key" = [])))]
pub(crate) async fn get_webhook(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    P(id): P<i64>,
) -> ApiResult<Json<Webhook>> {
    Ok(Json(crate::app::webhooks::get(&h, a, id).await?))
}

#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "api", summary = "Change a webhook endpoint", params(("id" = i64, Path, description = "The endpoint's number")), request_body = UpdateWebhook, responses((status = 200, description = "The endpoint", body = Webhook), Errors), security(("api_key" = [])))]
pub(crate) async fn update_webhook(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    P(id): P<i64>,
    Json(body): Json<UpdateWebhook>,
) -> ApiResult<Json<Webhook>> {
    Ok(Json(
        crate::app::webhooks::update(
            &h,
            a,
            id,
            body.url.as_deref(),
            body.kinds.as_deref(),
            body.enabled,
        )
        .await?,
    ))
}

#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "api", summary = "Delete a webhook endpoint", params(("id" = i64, Path, description = "The endpoint's number")), responses((status = 204, description = "Deleted, with what it was still owed and its log"), Errors), security(("api_key" = [])))]
pub(crate) async fn delete_webhook(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    P(id): P<i64>,
) -> ApiResult<StatusCode> {
    crate::app::webhooks::delete(&h, a, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate", tag = "api", summary = "Rotate a webhook endpoint's secret", params(("id" = i64, Path, description = "The endpoint's number")), responses((status = 200, description = "The new secret, shown this once; the old one also signs for webhooks.rotation_hours", body = WebhookWithSecret), Errors), security(("api_key" = [])))]
pub(crate) async fn rotate_webhook(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    P(id): P<i64>,
) -> ApiResult<Json<WebhookWithSecret>> {
    Ok(Json(crate::app::webhooks::rotate(&h, a, id).await?))
}

#[utoipa::path(get, path = "/v1/webhooks/{id}/attempts", tag = "api", summary = "A webhook endpoint's delivery log", params(("id" = i64, Path, description = "The endpoint's number")), responses((status = 200, description = "The last 100 attempts, newest first", body = [WebhookAttempt]), Errors), security(("api_key" = [])))]
pub(crate) async fn webhook_attempts(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    P(id): P<i64>,
) -> ApiResult<Json<Vec<WebhookAttempt>>> {
    Ok(Json(crate::app::webhooks::log(&h, a, id).await?))
}

/// What `POST /v1/webhooks/{id}/test` queued.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TestQueued {
    /// The test event's id.
    pub event_id: String,
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/test", tag = "api", summary = "Send a test event to a webhook endpoint", params(("id" = i64, Path, description = "The endpoint's number")), responses((status = 202, description = "A `webhook.test` event is queued for it", body = TestQueued), Errors), security(("api_key" = [])))]
pub(crate) async fn test_webhook(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    P(id): P<i64>,
) -> ApiResult<(StatusCode, Json<TestQueued>)> {
    let event_id = crate::app::webhooks::send_test(&h, a, id).await?;
    Ok((StatusCode::ACCEPTED, Json(TestQueued { event_id })))
}

/// `POST /v1/webhooks/{id}/replay`: a time range of the event log.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRange {
    /// From (included), RFC 3339.
    pub from: chrono::DateTime<chrono::Utc>,
    /// To (excluded), RFC 3339.
    pub to: chrono::DateTime<chrono::Utc>,
}

/// What a replay queued.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Replayed {
    /// Events queued again for the endpoint.
    pub queued: u64,
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/replay", tag = "api", summary = "Deliver again every event of a time range", params(("id" = i64, Path, description = "The endpoint's number")), request_body = ReplayRange, responses((status = 202, description = "The range's events (those the log still keeps, of the kinds the endpoint wants) are queued again, with their own ids", body = Replayed), Errors), security(("api_key" = [])))]
pub(crate) async fn replay_webhook(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    P(id): P<i64>,
    Json(body): Json<ReplayRange>,
) -> ApiResult<(StatusCode, Json<Replayed>)> {
    let queued = crate::app::webhooks::replay(&h, a, id, body.from, body.to).await?;
    Ok((StatusCode::ACCEPTED, Json(Replayed { queued })))
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/attempts/{attempt}/replay", tag = "api", summary = "Deliver again what one logged attempt carried", params(("id" = i64, Path, description = "The endpoint's number"), ("attempt" = i64, Path, description = "The attempt's `id` in the delivery log")), responses((status = 202, description = "The attempt's events (those the log still keeps) are queued again, with their own ids", body = Replayed), Errors), security(("api_key" = [])))]
pub(crate) async fn replay_webhook_attempt(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    P((id, attempt)): P<(i64, i64)>,
) -> ApiResult<(StatusCode, Json<Replayed>)> {
    let queued = crate::app::webhooks::replay_attempt(&h, a, id, attempt).await?;
    Ok((StatusCode::ACCEPTED, Json(Replayed { queued })))
}
