//! The JSON API (R-API-1) under `/v1`: accounts and keys, domains, contacts,
//! sends, the scheduled list, the event log, reports and campaigns, inbound
//! bounces. Every error is `application/problem+json` naming the field and the
//! rule; bad input never gives a 500.
//!
//! Authentication: `Authorization: Bearer <key>`. An account's API key
//! (`hk_…`) reaches that account's data only: every query is scoped by the
//! account the key resolves to, and another account's send, campaign, person or
//! event is simply not found (404). The operator's admin token (configured)
//! opens the admin endpoints: creating, listing and deleting accounts, and
//! posting inbound messages.

use crate::accounts::{Account, Domain, NewAccount, NewApiKey, key_hash};
use crate::service::Herald;
use axum::Router;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use herald_eventlog::{Campaign, Event, EventKind, Namespace, ReportQuery, Totals};
use herald_message::{Preview, SendKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

mod accounts;
mod contacts;
mod reports;
mod sends;
mod sms;
mod webhooks;

pub use accounts::*;
pub use contacts::*;
pub use reports::*;
pub use sends::*;
pub use sms::*;
pub use webhooks::*;

// ---------------------------------------------------------------- errors

/// An API error, answered as RFC 9457 `application/problem+json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`about:blank` for plain HTTP ones).
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What is wrong, for a person: the field and the rule it breaks.
    pub detail: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Problem {
    fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Problem {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
        }
    }

    fn invalid(field: &str, rule: impl std::fmt::Display) -> Self {
        let mut p = Problem::new(StatusCode::BAD_REQUEST, format!("{field}: {rule}"));
        p.field = Some(field.to_owned());
        p
    }

    fn not_found(what: &str) -> Self {
        Problem::new(StatusCode::NOT_FOUND, format!("{what} not found"))
    }

    fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "API request failed");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; it has been logged",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut r = (status, body).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"herald\""),
            );
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            // The API's only 429 is the failed-key limit, counted a minute.
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        }
        r
    }
}

impl From<JsonRejection> for Problem {
    fn from(r: JsonRejection) -> Self {
        // 400 for malformed JSON, 415 without a JSON content type, 413 for a
        // body over the limit, 422 for JSON of the wrong shape.
        Problem::new(r.status(), r.body_text())
    }
}
impl From<QueryRejection> for Problem {
    fn from(r: QueryRejection) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, r.body_text())
    }
}
impl From<PathRejection> for Problem {
    fn from(r: PathRejection) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, r.body_text())
    }
}

impl From<herald_schedule::Error> for Problem {
    fn from(e: herald_schedule::Error) -> Self {
        use herald_schedule::Error as E;
        match e {
            E::Invalid { field, rule } => Problem::invalid(field, rule),
            E::Rule(v) => {
                let mut p = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, v.to_string());
                p.field = Some("scheduled_at".into());
                p
            }
            E::NotFound { what, .. } => Problem::not_found(what),
            E::NothingToCancel { .. } | E::DomainTaken { .. } => {
                Problem::new(StatusCode::CONFLICT, e.to_string())
            }
            e => Problem::internal(e),
        }
    }
}

impl From<herald_message::Error> for Problem {
    fn from(e: herald_message::Error) -> Self {
        match e {
            herald_message::Error::Invalid { field, rule } => Problem::invalid(field, rule),
            e => {
                // The text already names the field; the problem names it too.
                let field = match &e {
                    herald_message::Error::InvalidAddress { field, .. } => Some(field.clone()),
                    herald_message::Error::HeaderInjection { header, .. } => Some(header.clone()),
                    _ => None,
                };
                let mut p = Problem::new(StatusCode::BAD_REQUEST, e.to_string());
                p.field = field;
                p
            }
        }
    }
}

impl From<herald_eventlog::Error> for Problem {
    fn from(e: herald_eventlog::Error) -> Self {
        match e {
            herald_eventlog::Error::Invalid { field, rule } => Problem::invalid(field, rule),
            herald_eventlog::Error::Limit { field, rule } => Problem::invalid(&field, rule),
            e @ herald_eventlog::Error::TimedOut { .. } => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            e => Problem::internal(e),
        }
    }
}

impl From<crate::app::Error> for Problem {
    fn from(e: crate::app::Error) -> Self {
        use crate::app::Error as E;
        match e {
            E::Invalid { field, rule } => Problem::invalid(&field, rule),
            E::NotEnabled | E::NotInPlan { .. } => {
                Problem::new(StatusCode::FORBIDDEN, e.to_string())
            }
            E::NotFound { what } => Problem::not_found(what),
            E::Unavailable(detail) => Problem::new(StatusCode::SERVICE_UNAVAILABLE, detail),
            E::Unauthorized(detail) => Problem::new(StatusCode::UNAUTHORIZED, detail),
            E::Herald(e) => e.into(),
        }
    }
}

impl From<crate::Error> for Problem {
    fn from(e: crate::Error) -> Self {
        match e {
            crate::Error::Auth(e) => Problem::new(StatusCode::BAD_REQUEST, e.to_string()),
            crate::Error::Schedule(e) => e.into(),
            crate::Error::EventLog(e) => e.into(),
            crate::Error::Message(e) => e.into(),
            e => Problem::internal(e),
        }
    }
}

/// The error answers every operation may give, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // only its derive is used
enum Errors {
    /// Bad input: the detail names the field and the rule.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// No key, or a key that is not valid.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// Not found, or another account's.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// The body is over the limit.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// The body is not JSON.
    #[response(status = 415, content_type = "application/problem+json")]
    NotJson(Problem),
    /// JSON of the wrong shape, or a sending rule refused the send.
    #[response(status = 422, content_type = "application/problem+json")]
    Unprocessable(Problem),
    /// Too many failed API-key attempts from this client address
    /// (`api.max_failed_keys_per_minute`); `Retry-After` says when to retry.
    #[response(status = 429, content_type = "application/problem+json")]
    TooManyFailedKeys(Problem),
}

type ApiResult<T> = Result<T, Problem>;

/// A JSON body whose rejection is a [`Problem`].
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(Problem))]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Problem))]
pub(crate) struct Q<T>(pub(crate) T);

#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Problem))]
pub(crate) struct P<T>(pub(crate) T);

// ---------------------------------------------------------------- authentication

pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The account an API key opens; a request without a valid key gets 401.
#[derive(Debug, Clone, Copy)]
pub struct Tenant(pub u64);

impl FromRequestParts<Arc<Herald>> for Tenant {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, h: &Arc<Herald>) -> ApiResult<Self> {
        let Some(key) = bearer(&parts.headers) else {
            return Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                "an API key is required: Authorization: Bearer <key>",
            ));
        };
        // Failed attempts are counted per client address; past the limit a
        // minute, keys from that address are not even checked (429).
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        let client = crate::tracking::client_ip(&parts.headers, peer, &h.trusted_proxies);
        let limit = h.config.api.max_failed_keys_per_minute;
        let failures = client.and_then(|ip| h.failed_keys.get(&ip));
        if let Some(n) = &failures
            && n.load(std::sync::atomic::Ordering::Relaxed) >= limit
        {
            return Err(Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "too many failed API-key attempts from this address (at most {limit} a minute, api.max_failed_keys_per_minute)"
                ),
            ));
        }
        match crate::accounts::authenticate(&h.accounts, key).await? {
            Some(account) => Ok(Tenant(account)),
            None => {
                match (failures, client) {
                    (Some(n), _) => {
                        n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    (None, Some(ip)) => h.failed_keys.insert(
                        ip,
                        std::sync::Arc::new(std::sync::atomic::AtomicU32::new(1)),
                    ),
                    (None, None) => {}
                }
                Err(Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "the API key is not valid",
                ))
            }
        }
    }
}

/// The operator, holding the configured admin token.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequestParts<Arc<Herald>> for Admin {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, h: &Arc<Herald>) -> ApiResult<Self> {
        let Some(expected) = h.config.api.admin_token.as_deref() else {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "admin endpoints are disabled: no api.admin_token is configured",
            ));
        };
        // Compare digests, so the comparison's time says nothing about the token.
        match bearer(&parts.headers) {
            Some(t) if key_hash(t) == key_hash(expected) => Ok(Admin),
            _ => Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                "the admin token is required: Authorization: Bearer <admin token>",
            )),
        }
    }
}

// ---------------------------------------------------------------- router

async fn not_found_route() -> Problem {
    Problem::not_found("route")
}

async fn count(
    State(h): State<Arc<Herald>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let r = next.run(req).await;
    h.metrics.count_status(r.status().as_u16());
    r
}

/// The `/v1` routes (see the module documentation).
pub fn routes(herald: Arc<Herald>) -> Router {
    let limit = herald.config.api.max_body_bytes;
    Router::new()
        .route("/v1/accounts", post(create_account).get(list_accounts))
        .route(
            "/v1/accounts/{id}",
            axum::routing::delete(delete_account_admin).patch(update_account),
        )
        .route("/v1/sites", get(list_sites))
        .route("/v1/webhooks", post(create_webhook).get(list_webhooks))
        .route(
            "/v1/webhooks/{id}",
            get(get_webhook)
                .patch(update_webhook)
                .delete(delete_webhook),
        )
        .route("/v1/webhooks/{id}/rotate", post(rotate_webhook))
        .route("/v1/webhooks/{id}/attempts", get(webhook_attempts))
        .route("/v1/webhooks/{id}/test", post(test_webhook))
        .route("/v1/webhooks/{id}/replay", post(replay_webhook))
        .route(
            "/v1/webhooks/{id}/attempts/{attempt}/replay",
            post(replay_webhook_attempt),
        )
        .route("/v1/dashboard/links", post(create_dashboard_link))
        .route(
            "/v1/account",
            get(get_account)
                .delete(delete_own_account)
                .patch(update_own_account),
        )
        .route("/v1/unsubscribes", post(record_unsubscribe))
        .route("/v1/account/rules", post(accept_rules))
        .route("/v1/account/keys", post(create_key))
        .route("/v1/domains", post(add_domain).get(list_domains))
        .route("/v1/domains/{domain}/check", post(check_domain))
        .route("/v1/persons", axum::routing::put(upsert_persons))
        .route(
            "/v1/organisations",
            axum::routing::put(upsert_organisations),
        )
        .route("/v1/persons/{id}", get(get_person))
        .route("/v1/persons/{id}/clicks", get(person_clicks))
        .route("/v1/blocklist/unblock", post(unblock))
        .route("/v1/sends", post(create_send).get(list_sends))
        .route("/v1/sends/preview", post(preview_send))
        .route("/v1/sends/{id}", get(get_send).delete(delete_send))
        .route("/v1/sms", post(send_sms))
        .route("/v1/sms/reports", post(sms_reports))
        .route("/v1/sms/opt-outs", post(sms_opt_out))
        .route("/v1/sms/opt-ins", post(sms_opt_in))
        .route("/v1/sms/{id}", get(get_sms).delete(delete_sms))
        .route("/v1/events", get(list_events))
        .route("/v1/reports", post(run_report))
        .route("/v1/reports/persons", post(report_persons))
        .route("/v1/reports/update", post(report_update))
        .route("/v1/campaigns", get(list_campaigns))
        .route("/v1/campaigns/{id}", get(get_campaign).patch(mark_campaign))
        .route("/v1/inbound", post(inbound))
        .fallback(not_found_route)
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&herald),
            count,
        ))
        .with_state(herald)
}
