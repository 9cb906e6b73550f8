//! Tracking endpoints (R-API-2, R-MSG-5): the click redirect, the open pixel,
//! and the unsubscribe page with its RFC 8058 one-click POST. Every request with
//! a valid token records its event before the answer; a forged, altered or
//! unknown token gets a 404 page (clicks never redirect anywhere else than the
//! URL recorded for that token's message and link), and the pixel is always a
//! 1×1 GIF that is never cached.

use crate::cache::Recent;
use crate::service::Herald;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use herald_eventlog::{EventKind, NewEvent, StagedEvent};
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
///
/// Events are written through a [`Recorder`] started here (so call it inside a
/// Tokio runtime): each request waits until its event is committed, and the
/// events of requests arriving meanwhile are committed together.
pub fn routes(herald: Arc<Herald>) -> Router {
    let recorder = Recorder::spawn(herald.events.clone());
    Router::new()
        .route("/c/{token}", get(click))
        .route("/o/{token}", get(open))
        .route("/u/{token}", get(unsubscribe_page).post(unsubscribe))
        .with_state(Tracking {
            herald,
            recorder,
            seen: Arc::new(Recent::new(REPEATS_KEPT, Some(REPEAT_WINDOW))),
        })
}

/// A hit repeated by the same client within this window is one event: one
/// link held by anyone cannot flood an account's event log.
pub const REPEAT_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);
/// Hits remembered for [`REPEAT_WINDOW`] (the memory is emptied when full).
const REPEATS_KEPT: usize = 100_000;

/// What makes two hits the same: the message, the kind, the link, the
/// client (address and User-Agent), hashed to keep the memory small and its
/// emptying cheap on the hot path.
type HitKey = u64;

impl Tracking {
    /// Whether `e` is the first such hit within [`REPEAT_WINDOW`] (and remembers it).
    fn first_hit(&self, e: &NewEvent) -> bool {
        use std::hash::{Hash as _, Hasher as _};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (
            e.account,
            e.message,
            e.kind.as_str(),
            e.link,
            &e.ip,
            &e.user_agent,
        )
            .hash(&mut h);
        let key: HitKey = h.finish();
        if self.seen.get(&key).is_some() {
            return false;
        }
        self.seen.insert(key, Arc::new(()));
        true
    }
}

#[derive(Clone)]
struct Tracking {
    herald: Arc<Herald>,
    recorder: Recorder,
    /// Recent hits, for [`Tracking::first_hit`].
    seen: Arc<Recent<HitKey, ()>>,
}

/// Group commit of tracking events: callers hand over one event and wait until
/// it is durably staged ([`EventLog::stage`]); one task stages whatever has
/// queued up while the previous transaction ran (up to 2,000 events), so a
/// burst of clicks costs a few cheap transactions, not one each, and nothing
/// is answered before it is durable. A second task turns staged events into
/// events ([`EventLog::process_staged`], batches of 250, exactly once): totals
/// and campaign rates follow within moments, and a burst larger than that task
/// keeps up with waits, durably, in the stage.
///
/// [`EventLog::stage`]: herald_eventlog::EventLog::stage
/// [`EventLog::process_staged`]: herald_eventlog::EventLog::process_staged
#[derive(Debug, Clone)]
pub struct Recorder {
    tx: tokio::sync::mpsc::Sender<(StagedEvent, tokio::sync::oneshot::Sender<bool>)>,
}

impl Recorder {
    /// Starts both tasks on the current Tokio runtime; they end (the second
    /// after emptying the stage) when the last clone of the recorder is dropped.
    pub fn spawn(events: herald_eventlog::EventLog) -> Self {
        let (tx, mut rx) =
            tokio::sync::mpsc::channel::<(StagedEvent, tokio::sync::oneshot::Sender<bool>)>(16_384);
        let staged = Arc::new(tokio::sync::Notify::new());
        let (closed_tx, mut closed_rx) = tokio::sync::watch::channel(false);
        let stager = events.clone();
        let notify = Arc::clone(&staged);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(2000);
            let mut acks = Vec::with_capacity(2000);
            while let Some((e, ack)) = rx.recv().await {
                batch.push(e);
                acks.push(ack);
                // Take what is queued; let the other request tasks run once
                // and take what they queued too, so each commit carries more.
                for round in 0..2 {
                    while batch.len() < 2000 {
                        match rx.try_recv() {
                            Ok((e, ack)) => {
                                batch.push(e);
                                acks.push(ack);
                            }
                            Err(_) => break,
                        }
                    }
                    if round == 0 && batch.len() < 2000 {
                        tokio::task::yield_now().await;
                    }
                }
                let ok = match stager.stage(&batch).await {
                    Ok(()) => true,
                    Err(err) => {
                        tracing::error!(error = %err, events = batch.len(), "staging tracking events failed");
                        false
                    }
                };
                notify.notify_one();
                for ack in acks.drain(..) {
                    let _ = ack.send(ok);
                }
                batch.clear();
            }
            let _ = closed_tx.send(true);
        });
        tokio::spawn(async move {
            loop {
                // Read before processing: an event staged just before the
                // close is then still processed by one more round.
                let closing = *closed_rx.borrow();
                match events.process_staged(250).await {
                    Ok(0) => {
                        if closing {
                            return;
                        }
                        tokio::select! {
                            () = staged.notified() => {}
                            _ = closed_rx.changed() => {}
                            () = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                        }
                    }
                    Ok(_) => {}
                    Err(err) => {
                        tracing::error!(error = %err, "processing staged tracking events failed");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Recorder { tx }
    }

    /// Stages `event`; true once it is durable, false if it could not be.
    pub async fn record(&self, event: NewEvent) -> bool {
        let Ok(event) = StagedEvent::new(&event) else {
            return false;
        };
        let (ack, done) = tokio::sync::oneshot::channel();
        if self.tx.send((event, ack)).await.is_err() {
            return false;
        }
        done.await.unwrap_or(false)
    }
}

/// The pages the tracking endpoints show, as data; they are rendered by the
/// dashboard's templates in the recipient's language ([`crate::dashboard`]).
#[derive(Debug, Clone)]
pub(crate) enum TrackingPage {
    /// A token that is not valid.
    NotFound,
    /// `GET /u/…`: who sends to which address, and the two choices.
    UnsubscribeAsk(crate::app::unsubscribe::Landing),
    /// The unsubscribe is recorded (or was already).
    Unsubscribed(
        crate::app::unsubscribe::Landing,
        crate::app::unsubscribe::Scope,
    ),
    /// The unsubscribe could not be recorded.
    TryAgain,
}

impl TrackingPage {
    fn status(&self) -> StatusCode {
        match self {
            TrackingPage::NotFound => StatusCode::NOT_FOUND,
            TrackingPage::UnsubscribeAsk(_) | TrackingPage::Unsubscribed(..) => StatusCode::OK,
            TrackingPage::TryAgain => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// `p` in `language` (the recipient's where known, else the browser's).
fn page(herald: &Herald, language: crate::i18n::Language, p: TrackingPage) -> Response {
    let status = p.status();
    let html = crate::dashboard::recipient_page(herald, language, &p);
    let mut r = (status, Html(html)).into_response();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(crate::dashboard::CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

fn not_found(herald: &Herald, headers: &axum::http::HeaderMap) -> Response {
    page(
        herald,
        crate::dashboard::browser_language(headers),
        TrackingPage::NotFound,
    )
}

/// The client's address and User-Agent. The address is the socket's peer;
/// only when the peer is a trusted proxy is `X-Forwarded-For` read, from the
/// right, skipping trusted proxies: the first other address is the client.
/// A client talking to Herald directly cannot choose its recorded address.
fn client(
    request: &axum::extract::Request,
    proxies: &[(std::net::IpAddr, u8)],
) -> (Option<String>, Option<String>) {
    let headers = request.headers();
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let ip = client_ip(headers, peer, proxies);
    (ip.map(|ip| ip.to_string()), ua)
}

/// The client's address: the socket's `peer`, or, when the peer is a trusted
/// proxy, the nearest untrusted address its `X-Forwarded-For` names.
pub(crate) fn client_ip(
    headers: &axum::http::HeaderMap,
    peer: Option<std::net::IpAddr>,
    proxies: &[(std::net::IpAddr, u8)],
) -> Option<std::net::IpAddr> {
    use std::net::IpAddr;
    let trusted = |ip: IpAddr| {
        proxies
            .iter()
            .any(|&(net, len)| herald_eventlog::bots::in_prefix(ip, net, len))
    };
    peer.map(|peer| {
        if !trusted(peer) {
            return peer;
        }
        headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|v| v.trim().parse::<IpAddr>().ok())
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .find(|ip| !trusted(*ip))
            .unwrap_or(peer)
    })
}

/// The message a token of `kind` names, with what the event needs; `None` for
/// a forged or foreign token or a message no longer in the outbox.
async fn resolve(herald: &Herald, token: &str, kind: TokenKind) -> Option<Resolved> {
    let t = herald.tracker.decode_kind(token, kind).ok()?;
    let id = i64::try_from(t.message.message).ok()?;
    let m = herald.message_cached(id).await.ok()??;
    if m.message.account != t.message.account {
        return None;
    }
    let send = herald.send_cached(m.message.send_id).await.ok()?;
    Some(Resolved {
        m,
        id,
        send,
        link: t.link,
    })
}

struct Resolved {
    /// Account, recipient, send, person, merged values.
    m: Arc<crate::service::MessageValues>,
    id: i64,
    send: Arc<herald_schedule::StoredSend>,
    link: Option<u16>,
}

impl Resolved {
    fn event(
        &self,
        herald: &Herald,
        kind: EventKind,
        request: &axum::extract::Request,
    ) -> NewEvent {
        let (ip, ua) = client(request, &herald.trusted_proxies);
        let m = &self.m.message;
        let mut e = NewEvent::new(kind, herald.clock.now(), m.account, &m.recipient);
        e.message = Some(self.id);
        e.campaign = self.send.campaign;
        e.person = m.person.clone();
        e.ip = ip;
        e.user_agent = ua;
        e
    }
}

async fn click(
    State(tracking): State<Tracking>,
    Path(token): Path<String>,
    request: axum::extract::Request,
) -> Response {
    let Tracking {
        herald, recorder, ..
    } = &tracking;
    let Some(r) = resolve(herald, &token, TokenKind::Click).await else {
        return not_found(herald, request.headers());
    };
    let Some(index) = r.link else {
        return not_found(herald, request.headers());
    };
    // Only the URL recorded for this message's link: never one from the request.
    let Some(url) = r.send.template.link_url(index, &r.m.values) else {
        return not_found(herald, request.headers());
    };
    let Ok(location) = HeaderValue::from_str(&url) else {
        return not_found(herald, request.headers());
    };
    let mut e = r.event(herald, EventKind::Click, &request);
    e.link = Some(index);
    e.label = r
        .send
        .template
        .links()
        .get(usize::from(index))
        .map(|l: &TrackedLink| l.label.clone());
    // The redirect happens even if the click could not be recorded (logged),
    // and for a repeat of the same client's click, which is recorded once.
    if tracking.first_hit(&e) {
        recorder.record(e).await;
    }
    herald.metrics.clicks.fetch_add(1, Ordering::Relaxed);
    let mut resp = StatusCode::FOUND.into_response();
    resp.headers_mut().insert(header::LOCATION, location);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
    resp
}

async fn open(
    State(tracking): State<Tracking>,
    Path(token): Path<String>,
    request: axum::extract::Request,
) -> Response {
    let Tracking {
        herald, recorder, ..
    } = &tracking;
    if let Some(r) = resolve(herald, &token, TokenKind::Open).await {
        let e = r.event(herald, EventKind::Open, &request);
        if tracking.first_hit(&e) {
            recorder.record(e).await;
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
    State(tracking): State<Tracking>,
    Path(token): Path<String>,
    request: axum::extract::Request,
) -> Response {
    let Tracking {
        herald, recorder, ..
    } = &tracking;
    let Some(r) = resolve(herald, &token, TokenKind::Unsubscribe).await else {
        return not_found(herald, request.headers());
    };
    use crate::app::unsubscribe::{Destination, destination};
    match destination(herald, &r.m.message, &r.send, &token).await {
        Ok(Destination::Page(landing)) => page(
            herald,
            landing.language,
            TrackingPage::UnsubscribeAsk(landing),
        ),
        // The account's own landing page: the click is recorded, then the
        // person goes there with the token (a URL the account set, checked).
        Ok(Destination::Elsewhere(url)) => {
            let mut e = r.event(herald, EventKind::Click, &request);
            e.label = Some("Unsubscribe page".to_owned());
            if tracking.first_hit(&e) {
                recorder.record(e).await;
            }
            let Ok(location) = HeaderValue::from_str(&url) else {
                return not_found(herald, request.headers());
            };
            let mut resp = StatusCode::SEE_OTHER.into_response();
            resp.headers_mut().insert(header::LOCATION, location);
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "unsubscribe page");
            page(
                herald,
                crate::dashboard::browser_language(request.headers()),
                TrackingPage::TryAgain,
            )
        }
    }
}

/// The scope a POST to `/u/…` asks for: `scope=campaign` is this kind of
/// newsletter; anything else (RFC 8058's `List-Unsubscribe=One-Click`,
/// `scope=all`) is all mass email.
fn scope_of(body: &[u8]) -> crate::app::unsubscribe::Scope {
    use crate::app::unsubscribe::Scope;
    let campaign = String::from_utf8_lossy(body)
        .split('&')
        .any(|pair| pair == "scope=campaign");
    if campaign {
        Scope::Campaign
    } else {
        Scope::All
    }
}

async fn unsubscribe(
    State(tracking): State<Tracking>,
    Path(token): Path<String>,
    request: axum::extract::Request,
) -> Response {
    let Tracking { herald, .. } = &tracking;
    let Some(r) = resolve(herald, &token, TokenKind::Unsubscribe).await else {
        return not_found(herald, request.headers());
    };
    let headers = request.headers().clone();
    let client = r.event(herald, EventKind::Unsubscribe, &request);
    let body = axum::body::to_bytes(request.into_body(), 4096)
        .await
        .unwrap_or_default();
    let scope = scope_of(&body);
    let mut e = crate::app::unsubscribe::event(herald, r.id, &r.m.message, &r.send, scope);
    e.ip = client.ip;
    e.user_agent = client.user_agent;
    let landing =
        match crate::app::unsubscribe::destination(herald, &r.m.message, &r.send, &token).await {
            Ok(crate::app::unsubscribe::Destination::Page(l)) => Some(l),
            Ok(_) => None,
            Err(err) => {
                tracing::error!(error = %err, "unsubscribe page");
                None
            }
        };
    let done = |landing: Option<crate::app::unsubscribe::Landing>| match landing {
        Some(l) => page(herald, l.language, TrackingPage::Unsubscribed(l, scope)),
        // One-click from a mail client, for an account with its own page:
        // recorded; a plain confirmation in the browser's language.
        None => page(
            herald,
            crate::dashboard::browser_language(&headers),
            TrackingPage::Unsubscribed(
                crate::app::unsubscribe::Landing {
                    language: crate::dashboard::browser_language(&headers),
                    sender: r.send.sender.user.address.as_str().to_owned(),
                    address: r.m.message.recipient.clone(),
                    campaign: None,
                },
                scope,
            ),
        ),
    };
    if !tracking.first_hit(&e) {
        // A repeated POST: already recorded.
        return done(landing);
    }
    // Recorded directly (not staged): mass mail stops at once.
    if let Err(err) = herald.events.ingest(&[e]).await {
        tracing::error!(error = %err, "recording an unsubscribe failed");
        return page(
            herald,
            crate::dashboard::browser_language(&headers),
            TrackingPage::TryAgain,
        );
    }
    herald.metrics.unsubscribes.fetch_add(1, Ordering::Relaxed);
    done(landing)
}
