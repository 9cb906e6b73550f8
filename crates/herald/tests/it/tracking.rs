//! Tracking endpoints through the router, without a socket (tower's oneshot).

use crate::db::Kind;
use crate::delivery::{Rig, enqueue, run_until};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use herald::eventlog::{EventKind, Suppressed};
use herald::message::SendKind;
use herald::schedule::When;
use http_body_util::BodyExt;
use mail_parser::MessageParser;
use tower::ServiceExt;

async fn call(
    router: &axum::Router,
    method: &str,
    uri: &str,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header(
            header::USER_AGENT,
            "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
        )
        // The client talks to Herald directly (no trusted proxy) and tries to
        // choose its recorded address: the socket's peer is recorded instead.
        .header("x-forwarded-for", "203.0.113.99")
        .extension(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            [192, 0, 2, 44],
            40_000,
        ))))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(if method == "POST" {
            Body::from("List-Unsubscribe=One-Click")
        } else {
            Body::empty()
        })
        .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

/// The token of the first tracked link of `kind` (`c`, `o`) in `html`.
fn token(html: &str, kind: &str) -> String {
    html.split(&format!("https://t.herald.test/{kind}/"))
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned()
}

fn path_of(url: &str) -> String {
    url.strip_prefix("https://t.herald.test")
        .unwrap_or(url)
        .to_owned()
}

/// The HTML body of the mail the sink received last, and the path of its
/// `List-Unsubscribe` URL when it has one.
pub fn last_mail(rig: &Rig) -> (String, Option<String>) {
    let (_, raw) = rig.sink.messages().pop().unwrap();
    let msg = MessageParser::default().parse(&raw).unwrap();
    let html = msg.body_html(0).unwrap().into_owned();
    let unsubscribe = msg
        .header_raw("List-Unsubscribe")
        .map(|v| path_of(v.trim().trim_start_matches('<').trim_end_matches('>')));
    (html, unsubscribe)
}

/// One mass mail delivered to the sink, its click, open and unsubscribe
/// tokens (the last as a path), and the tracking routes.
struct Newsletter {
    rig: Rig,
    router: axum::Router,
    click: String,
    open: String,
    unsubscribe: String,
}

impl Newsletter {
    async fn delivered(name: &str) -> Newsletter {
        let rig = Rig::start(Kind::Sqlite, name, &[], |c| {
            c.rules.mass_min_lead_minutes = 0
        })
        .await;
        let herald = &rig.herald;
        enqueue(herald, SendKind::Mass, 1, When::At(rig.now), rig.now).await;
        run_until(herald, &rig.stats, |s| s.done() >= 1).await;
        let (html, unsubscribe) = last_mail(&rig);
        let router = herald::tracking::routes(herald.clone());
        Newsletter {
            click: token(&html, "c"),
            open: token(&html, "o"),
            unsubscribe: unsubscribe.expect("mass mail has List-Unsubscribe"),
            router,
            rig,
        }
    }
}

#[tokio::test]
async fn clicks_redirect_only_to_the_recorded_url_and_opens_and_unsubscribes_are_recorded() {
    let Newsletter {
        rig,
        router,
        click,
        open,
        unsubscribe,
    } = Newsletter::delivered("tracking").await;
    let herald = &rig.herald;

    // The click redirects to the recorded URL, whatever the query says.
    let (status, headers, _) = call(
        &router,
        "GET",
        &format!("/c/{click}?url=https://evil.example/"),
    )
    .await;
    assert_eq!(status, StatusCode::FOUND);
    assert_eq!(
        headers.get(header::LOCATION).unwrap(),
        "https://shop.test/sale"
    );
    // A changed, foreign or wrong-kind token never redirects.
    let mut forged = click.clone().into_bytes();
    forged[5] = if forged[5] == b'A' { b'B' } else { b'A' };
    let foreign = herald::message::Tracker::new(&[5; 32], "https://t.x.test")
        .unwrap()
        .click_url(
            herald::message::MessageRef {
                account: 1,
                message: 1,
            },
            0,
        );
    for bad in [
        String::from_utf8(forged).unwrap(),
        path_of(&foreign)
            .trim_start_matches("https://t.x.test/c/")
            .to_owned(),
        open.clone(),
        "garbage".into(),
    ] {
        let (status, headers, body) = call(&router, "GET", &format!("/c/{bad}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{bad}");
        assert!(headers.get(header::LOCATION).is_none());
        assert!(String::from_utf8_lossy(&body).contains("not valid"));
    }

    // The pixel is always a GIF, never cached; only a valid token records an open.
    for token in [open.as_str(), "garbage"] {
        let (status, headers, body) = call(&router, "GET", &format!("/o/{token}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers.get(header::CONTENT_TYPE).unwrap(), "image/gif");
        assert!(
            headers
                .get(header::CACHE_CONTROL)
                .unwrap()
                .to_str()
                .unwrap()
                .contains("no-store")
        );
        assert!(body.starts_with(b"GIF89a"));
    }

    // The unsubscribe page offers the choice; the one-click POST records it.
    let (status, _, body) = call(&router, "GET", &unsubscribe).await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&body).contains("<form method=\"post\">"));
    let (status, _, body) = call(&router, "POST", &unsubscribe).await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&body).contains("You are unsubscribed"));
    // Clicks and opens are staged durably before the answer and turned into
    // events moments later.
    crate::tracking::processed(herald).await;

    // Each event once (staged clicks and opens may land after the directly
    // recorded unsubscribe, so the order of recording is not asserted).
    let mut kinds: Vec<&str> = herald
        .events
        .events(1, None, 100, 0)
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind.as_str())
        .collect();
    kinds.sort_unstable();
    let mut want = vec![
        EventKind::Processed.as_str(),
        EventKind::Delivered.as_str(),
        EventKind::Click.as_str(),
        EventKind::Open.as_str(),
        EventKind::Unsubscribe.as_str(),
    ];
    want.sort_unstable();
    assert_eq!(kinds, want);
    let clicks = herald
        .events
        .events(1, Some(EventKind::Click), 10, 0)
        .await
        .unwrap();
    assert_eq!(
        (
            clicks[0].link,
            clicks[0].label.as_deref(),
            clicks[0].ip.as_deref(),
            clicks[0].browser.as_deref()
        ),
        (
            Some(0),
            Some("https://shop.test/sale"),
            Some("192.0.2.44"),
            Some("Firefox")
        )
    );
    let t = herald.events.totals(1).await.unwrap();
    assert_eq!((t.opened, t.clicked, t.unsubscribed), (1, 1, 1));
    assert_eq!(
        herald
            .events
            .suppressions(1, "p0@example.test")
            .await
            .unwrap(),
        vec![Suppressed::Unsubscribed]
    );
}

/// Waits (up to 10 s) until every staged tracking event is an event.
pub async fn processed(herald: &herald::Herald) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while herald.events.staged().await.unwrap() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "staged events were not processed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Issue 10 §4: `events.geoip_database` is applied (it was parsed and then
/// ignored): a click from a located address carries its country and city.
#[tokio::test]
async fn clicks_are_located_with_the_configured_geoip_database() {
    let geoip = std::env::var("HERALD_TEST_GEOIP").ok().or_else(|| {
        let out = std::process::Command::new("python3")
            .args(["-c", "import os, _maxminddb_geolite2 as g; print(os.path.join(os.path.dirname(g.__file__), 'GeoLite2-City.mmdb'))"])
            .output()
            .ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    });
    let geoip = geoip.expect("the GeoLite2 database (bash .ci/run installs it)");
    let rig = Rig::start(Kind::Sqlite, "geoip", &[], |c| {
        c.events.geoip_database = Some(geoip.clone().into());
        c.api.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await;
    let herald = &rig.herald;
    enqueue(herald, SendKind::Individual, 1, When::Now, rig.now).await;
    run_until(herald, &rig.stats, |s| s.done() >= 1).await;
    let (html, _) = last_mail(&rig);
    let click = token(&html, "c");
    let router = herald::tracking::routes(herald.clone());
    let req = Request::builder()
        .uri(format!("/c/{click}"))
        .header(
            header::USER_AGENT,
            "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
        )
        // Through a trusted proxy on loopback: its X-Forwarded-For names the client.
        .header("x-forwarded-for", "128.101.101.101, 127.0.0.2")
        .extension(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            40_000,
        ))))
        .body(Body::empty())
        .unwrap();
    let resp = router.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    processed(herald).await;
    let clicks = herald
        .events
        .events(1, Some(EventKind::Click), 10, 0)
        .await
        .unwrap();
    assert_eq!(clicks.len(), 1);
    assert_eq!(clicks[0].ip.as_deref(), Some("128.101.101.101"));
    assert_eq!(clicks[0].country.as_deref(), Some("US"), "{:?}", clicks[0]);
    assert!(clicks[0].city.is_some(), "{:?}", clicks[0]);
}

/// Issue 10 §2: one link replayed by one client is one event (an open token
/// replayed 300 times stored 303 events), a repeated one-click unsubscribe
/// counts once; another client's hit is its own event.
#[tokio::test]
async fn a_replayed_link_is_one_event() {
    let Newsletter {
        rig,
        router,
        click,
        open,
        unsubscribe,
    } = Newsletter::delivered("replay").await;
    let herald = &rig.herald;
    for _ in 0..300 {
        let (status, _, _) = call(&router, "GET", &format!("/o/{open}")).await;
        assert_eq!(status, StatusCode::OK);
    }
    for _ in 0..5 {
        let (status, _, _) = call(&router, "GET", &format!("/c/{click}")).await;
        assert_eq!(status, StatusCode::FOUND, "every repeat still redirects");
    }
    for _ in 0..3 {
        let (status, _, _) = call(&router, "POST", &unsubscribe).await;
        assert_eq!(status, StatusCode::OK);
    }
    // Another client (another address) opening the same message: its own event.
    let other = Request::builder()
        .uri(format!("/o/{open}"))
        .header(
            header::USER_AGENT,
            "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
        )
        .extension(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            [198, 51, 100, 7],
            1,
        ))))
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        router.clone().oneshot(other).await.unwrap().status(),
        StatusCode::OK
    );
    processed(herald).await;
    let count = |kind| async move {
        herald
            .events
            .events(1, Some(kind), 1000, 0)
            .await
            .unwrap()
            .len()
    };
    assert_eq!(count(EventKind::Open).await, 2, "one per client");
    assert_eq!(count(EventKind::Click).await, 1);
    assert_eq!(count(EventKind::Unsubscribe).await, 1);
    let t = herald.events.totals(1).await.unwrap();
    assert_eq!((t.opened, t.clicked, t.unsubscribed), (1, 1, 1));
}
