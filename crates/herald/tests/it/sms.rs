//! SMS as first-class sends (issue 14) against real processes: the test SMS
//! gateway (tests/data/sms_gateway.py), which answers its first requests 503
//! and posts delivery reports back over HTTP to Herald's API, served on a
//! loopback port.

use crate::api::{Api, Gateway};
use crate::db::Kind;
use axum::http::StatusCode;
use herald::clock::Clock;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const TOKEN: &str = "gateway-report-token-0123456789abcdef";

/// A scheduled SMS newsletter to 300 persons: refused when due sooner than
/// the lead time, held until its time (the worker's clock moved), sent under
/// the SMS rate, its 503s retried after the back-off, each text once; the
/// gateway's reports (each posted twice) become one event each, with cost;
/// an opt-out keeps the number from the next send; totals and the campaign
/// count SMS apart from email.
async fn a_scheduled_newsletter_goes_through_the_gateway_and_its_reports_become_events(kind: Kind) {
    const FAILING: usize = 25;
    let gateway = Gateway::start_with(FAILING, Some(TOKEN));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let http_port = listener.local_addr().unwrap().port();
    let gw = gateway.port;
    let api = Api::start_with(kind, "sms-newsletter", |c| {
        c.rules.mass_min_lead_minutes = 10;
        c.sms.gateway_url = Some(format!("http://127.0.0.1:{gw}/send"));
        c.sms.report_token = Some(TOKEN.into());
        c.tracking.base_url = format!("http://127.0.0.1:{http_port}");
        c.throttle.sms = Some("600/1m,burst=20".parse().unwrap());
        c.sms.retry = herald::schedule::RetryPolicy {
            initial_secs: 30,
            max_secs: 60,
            give_up_secs: 3_600,
        };
    })
    .await;
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let server = tokio::spawn(axum::serve(listener, api.router.clone()).into_future());
    let (account, key) = api.account("News").await;
    let k = Some(key.as_str());
    // 296 persons with numbers, 3 with numbers the gateway treats apart
    // (997 opts out, 998 is reported undelivered, 999 is refused), 1 flagged "no SMS".
    let mut persons: Vec<Value> = (0..296)
        .map(|i| json!({"id": format!("p{i}"), "person": {"first_name": format!("P{i}"), "mobile": format!("+45 31 {i:06}")}}))
        .collect();
    for end in ["997", "998", "999"] {
        persons.push(json!({"id": format!("p{end}"), "person": {"first_name": "X", "mobile": format!("+4532000{end}")}}));
    }
    persons.push(json!({"id": "quiet", "block_sms": true, "person": {"mobile": "+4533333333"}}));
    let r = api
        .json("PUT", "/v1/persons", k, Value::Array(persons))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let ids: Vec<String> = (0..296)
        .map(|i| format!("p{i}"))
        .chain(["p997", "p998", "p999", "quiet"].map(String::from))
        .collect();
    assert_eq!(ids.len(), 300);
    let text = "Hi {{person.first_name}}, the spring sale starts today. Reply STOP to opt out.";
    // More than 100 recipients: only scheduled at least 10 minutes ahead.
    let r = api
        .json(
            "POST",
            "/v1/sms",
            k,
            json!({"text": text, "recipients": {"persons": ids}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    let start = api.rig.clock.now();
    let at = start + chrono::Duration::minutes(15);
    let r = api
        .json(
            "POST",
            "/v1/sms",
            k,
            json!({"text": text, "recipients": {"persons": ids}, "scheduled_at": at.to_rfc3339(), "campaign": "Spring SMS", "user": "Ulla"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let v = r.json();
    assert_eq!(v["queued"], 299, "{v}");
    assert_eq!(v["segments"], 299, "{v}");
    assert_eq!(v["skipped"]["sms opt-out"], 1, "{v}");
    let send_id = v["send_id"].as_i64().unwrap();
    let campaign_id = v["campaign_id"].as_i64().unwrap();
    let l = scheduled_line(&api, &key, send_id).await.expect("listed");
    assert_eq!(l["channel"], "sms");
    assert_eq!(l["user"], "Ulla");
    assert_eq!(l["to"], "* Broadcast *");
    assert_eq!(l["status"], "Scheduled");
    let stats = std::sync::Arc::new(herald::worker::Stats::default());
    let h = &api.rig.herald;
    // Not before its time.
    let round = herald::sms::deliver_due(h, &stats).await.unwrap();
    assert_eq!(round.attempted, 0);
    assert!(gateway.received().is_empty());
    // Its time comes: rounds under the SMS rate, the clock moved as a worker waits.
    api.rig.clock.set(at);
    let mut in_progress_seen = false;
    let deadline = at + chrono::Duration::minutes(30);
    loop {
        let round = herald::sms::deliver_due(h, &stats).await.unwrap();
        assert!(round.attempted <= 32, "at most concurrency × 4 a round");
        let now = api.rig.clock.now();
        if !in_progress_seen && round.attempted > 0 {
            let l = scheduled_line(&api, &key, send_id)
                .await
                .expect("listed while sending");
            if l["status"].as_str().unwrap().starts_with("In progress") {
                in_progress_seen = true;
            }
        }
        let counts = herald::app::sms::view(h, account, send_id)
            .await
            .unwrap()
            .texts;
        let pending: usize = ["queued", "claimed", "deferred"]
            .iter()
            .filter_map(|s| {
                counts
                    .iter()
                    .find(|(k, _)| k.as_str() == *s)
                    .map(|(_, n)| *n)
            })
            .sum();
        if pending == 0 {
            break;
        }
        assert!(now < deadline, "still {pending} texts pending: {counts:?}");
        match round.throttled_until {
            Some(t) if t > now => api.rig.clock.set(t),
            // Nothing due now: the 503'd texts wait for their retry.
            _ if round.attempted == 0 => api.rig.clock.set(now + chrono::Duration::seconds(5)),
            _ => {}
        }
    }
    assert!(in_progress_seen, "the scheduled list showed the progress");
    let end = api.rig.clock.now();
    // 299 texts under 600/min with a burst of 20: at least (299 - 20) / 10 s.
    assert!(
        end - at >= chrono::Duration::seconds(27),
        "the SMS rate held the texts back: {}",
        end - at
    );
    let received = gateway.received();
    let failed_first: Vec<&Value> = received.iter().filter(|r| r["status"] == 503).collect();
    assert_eq!(failed_first.len(), FAILING);
    for r in &failed_first {
        let reference = &r["sms"]["reference"];
        assert!(
            received
                .iter()
                .any(|x| x["sms"]["reference"] == *reference && x["status"] == 202),
            "a 503'd text is retried and accepted: {reference}"
        );
    }
    let mut accepted: Vec<&str> = received
        .iter()
        .filter(|r| r["status"] == 202)
        .map(|r| r["sms"]["to"].as_str().unwrap())
        .collect();
    assert_eq!(accepted.len(), 298, "each text accepted once");
    accepted.sort_unstable();
    accepted.dedup();
    assert_eq!(accepted.len(), 298, "no number texted twice");
    let p7 = received
        .iter()
        .find(|r| r["sms"]["to"] == "+4531000007")
        .unwrap();
    assert_eq!(
        p7["sms"]["text"],
        "Hi P7, the spring sale starts today. Reply STOP to opt out."
    );
    assert_eq!(
        p7["sms"]["report_url"],
        format!("http://127.0.0.1:{http_port}/v1/sms/reports")
    );
    // The reports arrive over HTTP (each final one twice, after a "buffered").
    let wall = Instant::now();
    let totals = loop {
        let t = api.json("GET", "/v1/account", k, Value::Null).await.json()["totals"].clone();
        if t["sms"]["delivered"] == 297 && t["sms"]["opted_out"] == 1 && t["sms"]["failed"] == 2 {
            break t;
        }
        assert!(
            wall.elapsed() < Duration::from_secs(60),
            "reports not all recorded: {t}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Let the repeats land too, then check nothing more was counted.
    let reports_expected = 298 * 3 + 2;
    while gateway.reports().len() < reports_expected {
        assert!(wall.elapsed() < Duration::from_secs(60));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        gateway.reports().iter().all(|r| r["status"] == 200),
        "every report was taken"
    );
    let totals_after =
        api.json("GET", "/v1/account", k, Value::Null).await.json()["totals"].clone();
    assert_eq!(totals, totals_after, "repeated reports add nothing");
    let sms = &totals["sms"];
    assert_eq!(sms["processed"], 299, "{totals}");
    assert_eq!(sms["sent"], 298, "{totals}");
    assert_eq!(sms["delivered"], 297, "{totals}");
    assert_eq!(
        sms["failed"], 2,
        "one refused (400), one reported undelivered: {totals}"
    );
    assert_eq!(sms["segments"], 299, "{totals}");
    assert_eq!(totals["processed"], 0, "no email counted: {totals}");
    assert_eq!(totals["delivered"], 0, "{totals}");
    let c = api
        .json(
            "GET",
            &format!("/v1/campaigns/{campaign_id}"),
            k,
            Value::Null,
        )
        .await
        .json();
    assert_eq!(c["sms"]["processed"], 299, "{c}");
    assert_eq!(c["sms"]["delivered"], 297, "{c}");
    assert_eq!(c["emails"], 0, "{c}");
    let delivered = api
        .json(
            "GET",
            "/v1/events?kind=sms_delivered&limit=1000",
            k,
            Value::Null,
        )
        .await
        .json();
    let delivered = delivered.as_array().unwrap();
    assert_eq!(delivered.len(), 297);
    assert!(delivered.iter().all(|e| e["cost"] == "0.0450"
        && e["currency"] == "EUR"
        && e["segments"] == 1
        && e["campaign"] == campaign_id
        && e["person"].is_string()));
    let failed = api
        .json("GET", "/v1/events?kind=sms_failed", k, Value::Null)
        .await
        .json();
    let reasons: Vec<&str> = failed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reply"].as_str().unwrap())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("absent subscriber")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("unknown number")),
        "{reasons:?}"
    );
    // A report without the token is refused, and records nothing.
    let reference = p7["sms"]["reference"].as_str().unwrap();
    let r = api
        .json(
            "POST",
            "/v1/sms/reports",
            Some("wrong-token"),
            json!({"reference": reference, "status": "failed"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
    let r = api
        .json(
            "POST",
            "/v1/sms/reports",
            Some(TOKEN),
            json!([{"reference": reference, "status": "exploded"}]),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert_eq!(r.json()["field"], "[0].status");
    // The number that answered STOP is skipped by the next send, and counted.
    let r = api
        .json(
            "POST",
            "/v1/sms",
            k,
            json!({"text": "Last call", "recipients": {"persons": ["p997", "p1"]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["queued"], 1, "{}", r.text());
    assert_eq!(r.json()["skipped"]["sms opt-out"], 1, "{}", r.text());
    let person = api
        .json("GET", "/v1/persons/p997", k, Value::Null)
        .await
        .json();
    assert_eq!(person["sms_opted_out"], true, "{person}");
    server.abort();
}

mod a_scheduled_newsletter_goes_through_the_gateway_and_its_reports_become_events {
    #[tokio::test(flavor = "multi_thread")]
    async fn sqlite() {
        super::a_scheduled_newsletter_goes_through_the_gateway_and_its_reports_become_events(
            crate::db::Kind::Sqlite,
        )
        .await;
    }
    #[tokio::test(flavor = "multi_thread")]
    async fn postgres() {
        super::a_scheduled_newsletter_goes_through_the_gateway_and_its_reports_become_events(
            crate::db::Kind::Postgres,
        )
        .await;
    }
}

/// The scheduled list's line of send `id`.
async fn scheduled_line(api: &Api, key: &str, id: i64) -> Option<Value> {
    let list = api
        .json("GET", "/v1/sends", Some(key), Value::Null)
        .await
        .json();
    list.as_array()?.iter().find(|l| l["id"] == id).cloned()
}
