//! Tracking endpoints (R-API-2, R-MSG-5): the click redirect, the open pixel,
//! and the unsubscribe page with its RFC 8058 one-click POST. Every request with
//! a valid token records its event before the answer; a forged, altered or
//! unknown token gets a 404 page (clicks never redirect anywhere else than the
//! URL recorded for that token's message and link), and the pixel is always a
//! 1×1 GIF that is never cached.

use crate::service::Herald;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use herald_eventlog::{EventKind, NewEvent};
use herald_message::{TokenKind, TrackedLink};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The 1×1 transparent GIF of the open pixel.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

const NO_STORE: &str = "no-store, no-cache, must-revalidate, private";

/// The tracking routes: `GET /c/{token}`, `GET /o/{token}`, `GET /u/{token}`
/// and `POST /u/{token}`.
pub fn routes(herald: Arc<Herald>) -> Router {
    Router::new()
        .route("/c/{token}", get(click))
        .route("/o/{token}", get(open))
        .route("/u/{token}", get(unsubscribe_page).post(unsubscribe))
        .with_state(herald)
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title></head><body style=\"font-family:sans-serif;max-width:32rem;margin:4rem auto\"><h1>{title}</h1>{body}</body></html>"
    );
    let mut r = (status, Html(html)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
    r
}

fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Link not found",
        "<p>This link is not valid. Nothing was recorded.</p>",
    )
}

fn client(headers: &HeaderMap) -> (Option<String>, Option<String>) {
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let ip = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_owned())
        .filter(|v| v.parse::<std::net::IpAddr>().is_ok());
    (ip, ua)
}

/// The message a token of `kind` names, with what the event needs; `None` for
/// a forged or foreign token or a message no longer in the outbox.
async fn resolve(herald: &Herald, token: &str, kind: TokenKind) -> Option<Resolved> {
    let t = herald.tracker.decode_kind(token, kind).ok()?;
    let id = i64::try_from(t.message.message).ok()?;
    let (account, recipient, send_id, person, values) =
        herald.outbox.message_values(id).await.ok()??;
    if account != t.message.account {
        return None;
    }
    let send = herald.outbox.send(send_id).await.ok()?;
    Some(Resolved {
        account,
        id,
        recipient,
        person,
        values,
        send,
        link: t.link,
    })
}

struct Resolved {
    account: u64,
    id: i64,
    recipient: String,
    person: Option<String>,
    values: herald_message::MergeValues,
    send: herald_schedule::StoredSend,
    link: Option<u16>,
}

impl Resolved {
    fn event(&self, herald: &Herald, kind: EventKind, headers: &HeaderMap) -> NewEvent {
        let (ip, ua) = client(headers);
        let mut e = NewEvent::new(kind, herald.clock.now(), self.account, &self.recipient);
        e.message = Some(self.id);
        e.campaign = self.send.campaign.and_then(|c| i64::try_from(c).ok());
        e.person = self.person.clone();
        e.ip = ip;
        e.user_agent = ua;
        e
    }
}

async fn click(
    State(herald): State<Arc<Herald>>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(r) = resolve(&herald, &token, TokenKind::Click).await else {
        return not_found();
    };
    let Some(index) = r.link else {
        return not_found();
    };
    // Only the URL recorded for this message's link: never one from the request.
    let Some(url) = r.send.template.link_url(index, &r.values) else {
        return not_found();
    };
    let Ok(location) = HeaderValue::from_str(&url) else {
        return not_found();
    };
    let mut e = r.event(&herald, EventKind::Click, &headers);
    e.link = Some(index);
    e.label = r
        .send
        .template
        .links()
        .get(usize::from(index))
        .map(|l: &TrackedLink| l.label.clone());
    if let Err(err) = herald.events.ingest(&[e]).await {
        tracing::error!(error = %err, "recording a click failed");
    }
    herald.metrics.clicks.fetch_add(1, Ordering::Relaxed);
    let mut resp = StatusCode::FOUND.into_response();
    resp.headers_mut().insert(header::LOCATION, location);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
    resp
}

async fn open(
    State(herald): State<Arc<Herald>>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = resolve(&herald, &token, TokenKind::Open).await {
        let e = r.event(&herald, EventKind::Open, &headers);
        if let Err(err) = herald.events.ingest(&[e]).await {
            tracing::error!(error = %err, "recording an open failed");
        }
        herald.metrics.opens.fetch_add(1, Ordering::Relaxed);
    }
    let mut resp = (StatusCode::OK, PIXEL).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("image/gif"));
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
    resp.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp.headers_mut()
        .insert(header::EXPIRES, HeaderValue::from_static("0"));
    resp
}

async fn unsubscribe_page(
    State(herald): State<Arc<Herald>>,
    Path(token): Path<String>,
) -> Response {
    if herald
        .tracker
        .decode_kind(&token, TokenKind::Unsubscribe)
        .is_err()
    {
        return not_found();
    }
    page(
        StatusCode::OK,
        "Unsubscribe",
        "<p>Do you want to stop receiving these newsletters?</p>\
         <form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
         <button type=\"submit\">Unsubscribe</button></form>\
         <p>Individual emails from the sender are not affected.</p>",
    )
}

async fn unsubscribe(
    State(herald): State<Arc<Herald>>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(r) = resolve(&herald, &token, TokenKind::Unsubscribe).await else {
        return not_found();
    };
    let e = r.event(&herald, EventKind::Unsubscribe, &headers);
    if let Err(err) = herald.events.ingest(&[e]).await {
        tracing::error!(error = %err, "recording an unsubscribe failed");
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Please try again",
            "<p>We could not record your request just now.</p>",
        );
    }
    herald.metrics.unsubscribes.fetch_add(1, Ordering::Relaxed);
    page(
        StatusCode::OK,
        "You are unsubscribed",
        "<p>You will not receive these newsletters any more.</p>",
    )
}
