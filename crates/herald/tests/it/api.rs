//! The JSON API through the router (tower's oneshot, no socket): accounts,
//! keys and tenant isolation, contacts and flags, sends, reports, deletion,
//! errors. Each security property the server issue lists is its own test.

use crate::db::Kind;
use crate::delivery::{Rig, run_until};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use mail_parser::MimeHeaders as _;
use serde_json::{Value, json};
use tower::ServiceExt;

/// Runs the async test body `$name(kind)` as two tests, on SQLite and on PostgreSQL.
macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(crate::db::Kind::Sqlite).await;
            }
            #[tokio::test]
            async fn postgres() {
                super::$name(crate::db::Kind::Postgres).await;
            }
        }
    };
}

pub const ADMIN: &str = "admin-token-0123456789abcdef0123456789";

pub struct Api {
    pub rig: Rig,
    pub router: axum::Router,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{e}: {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Api {
    pub async fn start(kind: Kind, name: &str) -> Api {
        Api::start_with(kind, name, |_| {}).await
    }

    /// As [`Api::start`], with `tune` applied to the configuration last.
    pub async fn start_with(
        kind: Kind,
        name: &str,
        tune: impl FnOnce(&mut herald::config::Config),
    ) -> Api {
        let rig = Rig::start(kind, name, &[], |c| {
            c.api.admin_token = Some(ADMIN.into());
            c.rules.mass_min_lead_minutes = 0;
            tune(c);
        })
        .await;
        let router = herald::http::router(std::sync::Arc::clone(&rig.herald));
        Api { rig, router }
    }

    pub async fn call(&self, method: &str, uri: &str, key: Option<&str>, body: Body) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(k) = key {
            req = req.header(header::AUTHORIZATION, format!("Bearer {k}"));
        }
        self.send(req.body(body).unwrap()).await
    }

    /// Sends `req` through the router and collects the answer.
    pub async fn send(&self, req: Request<Body>) -> Reply {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn json(&self, method: &str, uri: &str, key: Option<&str>, body: Value) -> Reply {
        let b = if body.is_null() {
            Body::empty()
        } else {
            Body::from(body.to_string())
        };
        self.call(method, uri, key, b).await
    }

    /// A new account with the rules accepted; returns its id and key.
    pub async fn account(&self, name: &str) -> (u64, String) {
        let r = self
            .json("POST", "/v1/accounts", Some(ADMIN), json!({"name": name}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        let v = r.json();
        let key = v["api_key"]["key"].as_str().unwrap().to_owned();
        let id = v["account"]["id"].as_u64().unwrap();
        let r = self
            .json(
                "POST",
                "/v1/account/rules",
                Some(&key),
                json!({"accepted_by": "Ulla Ørsted"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        (id, key)
    }
}

pub fn persons(prefix: &str, n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| {
                json!({
                    "id": format!("{prefix}-{i}"),
                    "person": {"first_name": format!("P{i}"), "email": format!("{prefix}{i}@example.test")},
                    "organisation": {"name": format!("Org {}", i % 3)},
                    "custom": {"tier": if i % 2 == 0 { "gold" } else { "silver" }},
                })
            })
            .collect(),
    )
}

pub fn newsletter(ids: &[String]) -> Value {
    json!({
        "kind": "mass",
        "from": {"name": "Shop", "email": "news@shop.test"},
        "subject": "News for {{person.first_name | \"you\"}}",
        "html": "<p>Hi {{person.first_name}} ({{custom.tier}})</p><a href=\"https://shop.test/sale\">Sale</a>",
        "recipients": {"persons": ids},
    })
}

fn problem(r: &Reply) -> Value {
    assert_eq!(
        r.headers[header::CONTENT_TYPE],
        "application/problem+json",
        "{}",
        r.text()
    );
    r.json()
}

async fn accounts_are_enabled_only_with_the_rules_accepted(kind: Kind) {
    let api = Api::start(kind, "api-accounts").await;
    // No admin token, or a wrong one: 401.
    let r = api
        .json("POST", "/v1/accounts", None, json!({"name": "Shop"}))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = api
        .json(
            "POST",
            "/v1/accounts",
            Some("admin-token-wrong"),
            json!({"name": "Shop"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = api
        .json(
            "POST",
            "/v1/accounts",
            Some(ADMIN),
            json!({"name": "Shop", "timezone": "Europe/Copenhagen"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let v = r.json();
    assert_eq!(v["account"]["enabled"], false);
    let key = v["api_key"]["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("hk_") && key.len() > 30, "{key}");
    // The key is stored hashed: it appears nowhere in the database.
    let stored: Vec<String> = sqlx::query_scalar("SELECT hash FROM herald_api_keys")
        .fetch_all(api.rig.herald.outbox.pool())
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], key);
    assert!(!stored[0].contains(&key[3..]));
    api.json("PUT", "/v1/persons", Some(&key), persons("a", 2))
        .await;
    let send = newsletter(&["a-0".into(), "a-1".into()]);
    let r = api
        .json("POST", "/v1/sends", Some(&key), send.clone())
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(problem(&r)["detail"].as_str().unwrap().contains("rules"));
    let r = api
        .json(
            "POST",
            "/v1/account/rules",
            Some(&key),
            json!({"accepted_by": "Ulla Ørsted"}),
        )
        .await;
    let v = r.json();
    assert_eq!(v["enabled"], true);
    assert_eq!(v["rules_accepted_by"], "Ulla Ørsted");
    assert_eq!(
        v["rules_accepted_at"].as_str().unwrap()[..10],
        api.rig.now.to_rfc3339()[..10]
    );
    let r = api.json("POST", "/v1/sends", Some(&key), send).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["queued"], 2);
    // A second key opens the same account.
    let r = api
        .json("POST", "/v1/account/keys", Some(&key), Value::Null)
        .await;
    let key2 = r.json()["key"].as_str().unwrap().to_owned();
    let r = api.json("GET", "/v1/sends", Some(&key2), Value::Null).await;
    assert_eq!(r.json().as_array().unwrap().len(), 1);
}

on_both!(accounts_are_enabled_only_with_the_rules_accepted);

#[tokio::test]
async fn requests_without_a_valid_key_get_401() {
    let api = Api::start(Kind::Sqlite, "api-401").await;
    for (method, uri) in [
        ("GET", "/v1/account"),
        ("DELETE", "/v1/account"),
        ("POST", "/v1/account/rules"),
        ("POST", "/v1/account/keys"),
        ("GET", "/v1/domains"),
        ("POST", "/v1/domains"),
        ("PUT", "/v1/persons"),
        ("GET", "/v1/persons/x"),
        ("GET", "/v1/persons/x/clicks"),
        ("POST", "/v1/blocklist/unblock"),
        ("GET", "/v1/sends"),
        ("POST", "/v1/sends"),
        ("POST", "/v1/sends/preview"),
        ("GET", "/v1/sends/1"),
        ("DELETE", "/v1/sends/1"),
        ("GET", "/v1/events"),
        ("POST", "/v1/reports"),
        ("POST", "/v1/reports/persons"),
        ("POST", "/v1/reports/update"),
        ("GET", "/v1/campaigns"),
        ("GET", "/v1/campaigns/1"),
        ("PATCH", "/v1/campaigns/1"),
    ] {
        for key in [None, Some("hk_notakey"), Some(ADMIN)] {
            let r = api.json(method, uri, key, json!({})).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {uri} {key:?}");
            assert!(r.headers.contains_key(header::WWW_AUTHENTICATE));
            assert_eq!(problem(&r)["status"], 401);
        }
    }
    // An account key does not open the admin endpoints.
    let (_, key) = api.account("Shop").await;
    for (method, uri) in [
        ("POST", "/v1/accounts"),
        ("GET", "/v1/accounts"),
        ("DELETE", "/v1/accounts/1"),
        ("POST", "/v1/inbound"),
    ] {
        let r = api.json(method, uri, Some(&key), json!({})).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
    }
}

async fn keys_of_one_account_reach_only_its_own_data(kind: Kind) {
    let api = Api::start(kind, "api-tenants").await;
    let (_, a) = api.account("A").await;
    let (_, b) = api.account("B").await;
    api.json("PUT", "/v1/persons", Some(&a), persons("a", 3))
        .await;
    let r = api
        .json("PUT", "/v1/persons", Some(&b), persons("b", 3))
        .await;
    assert_eq!(r.json()["upserted"], 3);
    let ids: Vec<String> = (0..3).map(|i| format!("b-{i}")).collect();
    let r = api
        .json("POST", "/v1/sends", Some(&b), newsletter(&ids))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let v = r.json();
    let send = v["send_id"].as_i64().unwrap();
    let campaign = v["campaign_id"].as_i64().unwrap();
    run_until(&api.rig.herald, &api.rig.stats, |s| s.done() >= 3).await;
    // B sees its own; A gets 404 for each of B's objects.
    for (uri, method) in [
        (format!("/v1/sends/{send}"), "GET"),
        (format!("/v1/campaigns/{campaign}"), "GET"),
        ("/v1/persons/b-0".to_owned(), "GET"),
    ] {
        let r = api.json(method, &uri, Some(&b), Value::Null).await;
        assert_eq!(r.status, StatusCode::OK, "B {uri}: {}", r.text());
        let r = api.json(method, &uri, Some(&a), Value::Null).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "A {uri}");
        assert_eq!(problem(&r)["status"], 404);
    }
    let r = api
        .json(
            "PATCH",
            &format!("/v1/campaigns/{campaign}"),
            Some(&a),
            json!({"starred": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = api
        .json(
            "DELETE",
            &format!("/v1/sends/{send}"),
            Some(&a),
            Value::Null,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // A's event log, reports, campaigns and scheduled list hold none of B's rows.
    let r = api.json("GET", "/v1/events", Some(&b), Value::Null).await;
    assert_eq!(r.json().as_array().unwrap().len(), 6, "{}", r.text());
    for (method, uri, body) in [
        ("GET", "/v1/events", Value::Null),
        ("GET", "/v1/campaigns?archived=true", Value::Null),
        ("GET", "/v1/sends", Value::Null),
        ("GET", "/v1/persons/b-0/clicks", Value::Null),
    ] {
        let r = api.json(method, uri, Some(&a), body).await;
        assert_eq!(r.json(), json!([]), "{uri}");
    }
    // Report filters with SQL fragments return no foreign rows.
    for evil in [
        "' OR '1'='1",
        "x' OR account <> 0 --",
        "%",
        "_",
        "\\",
        "b0@example.test' UNION SELECT * FROM herald_events --",
        "1; DELETE FROM herald_events",
    ] {
        for filter in [
            json!({"op": "equals", "field": "recipient", "value": evil}),
            json!({"op": "contains", "field": "recipient", "value": evil}),
            json!({"op": "person_contains", "namespace": "person", "field": "email", "value": evil}),
            json!({"op": "person_equals", "namespace": "custom", "field": evil, "value": evil}),
        ] {
            let q = json!({"filters": [filter]});
            let r = api.json("POST", "/v1/reports", Some(&a), q.clone()).await;
            assert_eq!(r.status, StatusCode::OK, "{q}: {}", r.text());
            assert_eq!(r.json()["count"], 0, "{q}");
            let r = api.json("POST", "/v1/reports/persons", Some(&a), q).await;
            assert_eq!(r.json()["persons"], json!([]));
        }
    }
    // B's events are all still there.
    let r = api
        .json("POST", "/v1/reports", Some(&b), json!({"filters": []}))
        .await;
    assert_eq!(r.json()["count"], 6);
    // A report of B's used as recipients from A's key finds nothing of B's.
    let q = json!({"filters": [{"op": "kinds", "kinds": ["delivered"]}]});
    let mut send = newsletter(&[]);
    send["recipients"] = json!({"report": q});
    let r = api.json("POST", "/v1/sends", Some(&a), send).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
}

on_both!(keys_of_one_account_reach_only_its_own_data);

#[tokio::test]
async fn cr_lf_in_names_and_subjects_is_refused_at_the_api() {
    let api = Api::start(Kind::Sqlite, "api-crlf").await;
    let (_, key) = api.account("Shop").await;
    api.json("PUT", "/v1/persons", Some(&key), persons("p", 1))
        .await;
    let ok = newsletter(&["p-0".into()]);
    let cases: Vec<(&str, Value)> = vec![
        ("from.email", {
            let mut s = ok.clone();
            s["from"]["name"] = json!("Shop\r\nBcc: victim@example.test");
            s
        }),
        ("subject", {
            let mut s = ok.clone();
            s["subject"] = json!("Hello\r\nBcc: victim@example.test");
            s
        }),
        ("from.email", {
            let mut s = ok.clone();
            s["from"]["email"] = json!("news@shop.test\r\nBcc: victim@example.test");
            s
        }),
        ("campaign", {
            let mut s = ok.clone();
            s["campaign"] = json!("Spring\nsale");
            s
        }),
    ];
    for (field, body) in cases {
        let r = api.json("POST", "/v1/sends", Some(&key), body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{field}: {}", r.text());
        let p = problem(&r);
        assert!(
            p["detail"].as_str().unwrap().contains(field),
            "{field}: {p}"
        );
    }
    // Issue 10 §1: a person whose name or address carries CR/LF is refused
    // when stored, by `PUT /v1/persons` and `POST /v1/reports/update` alike,
    // so no stored person can make a send fail later.
    for (field, person) in [
        (
            "persons[0].person.first_name",
            json!({"id": "evil", "person": {"email": "evil@example.test", "first_name": "X\r\nBcc: y@example.test"}}),
        ),
        (
            "persons[0].person.email",
            json!({"id": "evil", "person": {"email": "bad\r\nBcc: x@example.test"}}),
        ),
        (
            "persons[0].custom.note",
            json!({"id": "evil", "person": {"email": "a@example.test"}, "custom": {"note": "nul\u{0}byte"}}),
        ),
    ] {
        let r = api
            .json("PUT", "/v1/persons", Some(&key), json!([person]))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{field}: {}", r.text());
        assert_eq!(problem(&r)["field"], field, "{}", r.text());
    }
    // Line breaks stay allowed where no header takes them (a custom note).
    let r = api
        .json(
            "PUT",
            "/v1/persons",
            Some(&key),
            json!([{"id": "good", "person": {"email": "good@example.test"}, "custom": {"note": "line 1\r\nline 2"}}]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    for (field, value) in [
        ("email", "bad\r\nBcc: x@example.test"),
        ("first_name", "X\nY"),
        ("email", "not-an-address"),
    ] {
        let r = api
            .json(
                "POST",
                "/v1/reports/update",
                Some(&key),
                json!({"query": {"filters": []}, "namespace": "person", "field": field, "value": value}),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{field}: {}", r.text());
        let p = problem(&r);
        assert!(
            p["field"] == "value" || p["detail"].as_str().is_some_and(|d| d.starts_with("value")),
            "{p}"
        );
    }
    let p = api
        .json("GET", "/v1/persons/good", Some(&key), Value::Null)
        .await
        .json();
    assert_eq!(
        p["person"]["email"], "good@example.test",
        "nothing changed: {p}"
    );
    assert!(p["person"].get("first_name").is_none(), "{p}");
    // An account name with a line break.
    let r = api
        .json(
            "POST",
            "/v1/accounts",
            Some(ADMIN),
            json!({"name": "Shop\r\nX"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(problem(&r)["field"], "name");
    // Nothing was queued by any refused request.
    let r = api.json("GET", "/v1/sends", Some(&key), Value::Null).await;
    assert_eq!(r.json(), json!([]));
}

#[tokio::test]
async fn bad_input_gets_a_problem_naming_the_field_never_a_500() {
    let api = Api::start(Kind::Sqlite, "api-bad").await;
    let (_, key) = api.account("Shop").await;
    let k = Some(key.as_str());
    let cases: Vec<(&str, &str, Body, StatusCode)> = vec![
        (
            "POST",
            "/v1/sends",
            Body::from("{not json"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/v1/sends",
            Body::from("{}"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "POST",
            "/v1/sends",
            Body::from(r#"{"kind":"bulk"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "PUT",
            "/v1/persons",
            Body::from(r#"[{"id":""}]"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            "PUT",
            "/v1/persons",
            Body::from(r#"[{"id":"a","person":{"bad field":"x"}}]"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            "PUT",
            "/v1/persons",
            Body::from(r#"[{"id":"a","person":{"email":"not an address"}}]"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            "/v1/sends/notanumber",
            Body::empty(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            "/v1/sends/99999999999999999999",
            Body::empty(),
            StatusCode::BAD_REQUEST,
        ),
        ("GET", "/v1/sends/-1", Body::empty(), StatusCode::NOT_FOUND),
        (
            "GET",
            "/v1/events?limit=0",
            Body::empty(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            "/v1/events?limit=abc",
            Body::empty(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            "/v1/events?kind=nope",
            Body::empty(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            "/v1/events?kind=false",
            Body::empty(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            "/v1/events?offset=-5",
            Body::empty(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/v1/reports",
            Body::from(r#"{"limit": 1000000}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/v1/reports?format=xml",
            Body::from("{}"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/v1/reports",
            Body::from(r#"{"filters":[{"op":"drop"}]}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "POST",
            "/v1/domains",
            Body::from(r#"{"domain":"not a domain"}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/v1/domains/unknown.example/check",
            Body::empty(),
            StatusCode::NOT_FOUND,
        ),
        (
            "GET",
            "/v1/nothing-here",
            Body::empty(),
            StatusCode::NOT_FOUND,
        ),
    ];
    for (method, uri, body, want) in cases {
        let r = api.call(method, uri, k, body).await;
        assert_eq!(r.status, want, "{method} {uri}: {}", r.text());
        let p = problem(&r);
        assert!(!p["detail"].as_str().unwrap().is_empty());
    }
    // A newsletter of more than 100 recipients sent now breaks the 10-minute rule.
    let api2 = Api::start(Kind::Sqlite, "api-rule").await;
    let rig_rules = api2.rig.herald.outbox.rules().mass_min_lead_minutes;
    assert_eq!(rig_rules, 0);
    let r = api
        .json(
            "POST",
            "/v1/sends",
            k,
            json!({
                "kind": "individual",
                "from": {"email": "u@shop.test"},
                "subject": "Hi",
                "text": "Hi",
                "scheduled_at": "2099-01-01T00:00:00Z",
                "recipients": {"addresses": [{"email": "x@example.test"}]},
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    assert!(problem(&r)["detail"].as_str().unwrap().contains("90"));
}

async fn contact_flags_blocklist_and_unblock(kind: Kind) {
    let api = Api::start(kind, "api-contacts").await;
    let (_, key) = api.account("Shop").await;
    let k = Some(key.as_str());
    let mut ps = persons("c", 4);
    ps[3]["block_mass_emails"] = json!(true);
    api.json("PUT", "/v1/persons", k, ps).await;
    let r = api.json("GET", "/v1/persons/c-3", k, Value::Null).await;
    let v = r.json();
    assert_eq!(v["block_mass_emails"], true);
    assert_eq!(v["person"]["email"], "c3@example.test");
    assert_eq!(v["custom"]["tier"], "silver");
    let ids: Vec<String> = (0..4)
        .map(|i| format!("c-{i}"))
        .chain(["nobody".into()])
        .collect();
    let r = api.json("POST", "/v1/sends", k, newsletter(&ids)).await;
    let v = r.json();
    assert_eq!(v["queued"], 3, "{v}");
    assert_eq!(v["skipped"]["blocks mass email"], 1);
    assert_eq!(v["skipped"]["unknown person"], 1);
    // Preview merges the first recipient's data, links shown as their targets.
    let r = api
        .json("POST", "/v1/sends/preview", k, newsletter(&ids))
        .await;
    let v = r.json();
    assert_eq!(v["subject"], "News for P0");
    assert!(v["html"].as_str().unwrap().contains("Hi P0 (gold)"), "{v}");
    assert!(
        v["html"]
            .as_str()
            .unwrap()
            .contains("https://shop.test/sale")
    );
    run_until(&api.rig.herald, &api.rig.stats, |s| s.done() >= 3).await;
    // A hard bounce for c-1 through POST /v1/inbound (admin).
    let verp = verp_of(&api.rig.herald, "c1@example.test").await;
    let dsn = crate::inbound_mail::hard_bounce_dsn(&verp, "c1@example.test");
    let r = api
        .call("POST", "/v1/inbound", Some(ADMIN), Body::from(dsn.clone()))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["mapped"], true);
    assert_eq!(
        r.json()["kind"],
        "bounce",
        "the documented name, not Rust's Debug text"
    );
    assert_eq!(r.json()["events"], json!(["hard_bounce"]));
    let r = api.json("GET", "/v1/persons/c-1", k, Value::Null).await;
    assert_eq!(r.json()["email_bouncing"], true, "{}", r.text());
    // The CRM marking the person again does not lift the blocklist.
    api.json("PUT", "/v1/persons", k, persons("c", 2)).await;
    let r = api.json("GET", "/v1/persons/c-1", k, Value::Null).await;
    assert_eq!(r.json()["email_bouncing"], true);
    let r = api
        .json(
            "POST",
            "/v1/sends",
            k,
            json!({"kind": "individual", "from": {"email": "u@shop.test"}, "subject": "Hi", "text": "Hi",
                   "recipients": {"persons": ["c-1"]}}),
        )
        .await;
    // Accepted, but the blocklisted address is skipped with its reason.
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["queued"], 0);
    assert_eq!(r.json()["skipped"]["blocklisted"], 1);
    // Unblock is its own operation.
    let r = api
        .json(
            "POST",
            "/v1/blocklist/unblock",
            k,
            json!({"email": "C1@example.test"}),
        )
        .await;
    assert_eq!(r.json()["unblocked"], true);
    let r = api.json("GET", "/v1/persons/c-1", k, Value::Null).await;
    assert_eq!(r.json()["email_bouncing"], false);
}

on_both!(contact_flags_blocklist_and_unblock);

async fn deleting_an_account_removes_all_its_data(kind: Kind) {
    let api = Api::start(kind, "api-delete").await;
    let (a_id, a) = api.account("A").await;
    let (_, b) = api.account("B").await;
    for key in [&a, &b] {
        api.json("PUT", "/v1/persons", Some(key), persons("d", 2))
            .await;
        let r = api
            .json(
                "POST",
                "/v1/sends",
                Some(key),
                newsletter(&["d-0".into(), "d-1".into()]),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    run_until(&api.rig.herald, &api.rig.stats, |s| s.done() >= 4).await;
    let r = api
        .json(
            "DELETE",
            &format!("/v1/accounts/{a_id}"),
            Some(ADMIN),
            Value::Null,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let r = api.json("GET", "/v1/account", Some(&a), Value::Null).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let pool = api.rig.herald.outbox.pool();
    for table in [
        "herald_sends",
        "herald_outbox",
        "herald_events",
        "herald_totals",
        "herald_campaigns",
        "herald_person_fields",
        "herald_api_keys",
        "herald_domains",
    ] {
        let n: i64 =
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table} WHERE account = $1"))
                .bind(i64::try_from(a_id).unwrap())
                .fetch_one(pool)
                .await
                .unwrap();
        assert_eq!(n, 0, "{table}");
    }
    // B is untouched.
    let r = api.json("GET", "/v1/account", Some(&b), Value::Null).await;
    assert_eq!(r.json()["totals"]["delivered"], 2);
}

on_both!(deleting_an_account_removes_all_its_data);

#[tokio::test]
async fn the_served_openapi_document_is_the_checked_in_one_and_lists_every_route() {
    let api = Api::start(Kind::Sqlite, "api-openapi").await;
    let r = api.call("GET", "/openapi.json", None, Body::empty()).await;
    assert_eq!(r.status, StatusCode::OK);
    let served = r.json();
    let checked_in: Value = serde_json::from_str(include_str!("../../../../docs/openapi.json"))
        .expect("docs/openapi.json parses");
    assert!(
        served == checked_in,
        "docs/openapi.json is stale: cargo run -p herald-server -- openapi > docs/openapi.json"
    );
    for path in [
        "/v1/accounts",
        "/v1/account",
        "/v1/account/rules",
        "/v1/domains/{domain}/check",
        "/v1/persons",
        "/v1/sends",
        "/v1/sends/preview",
        "/v1/reports",
        "/v1/campaigns/{id}",
        "/v1/inbound",
    ] {
        assert!(served["paths"].get(path).is_some(), "{path}");
    }
}

#[tokio::test]
async fn metrics_count_api_answers_and_the_outbox() {
    let api = Api::start(Kind::Sqlite, "api-metrics").await;
    api.json("GET", "/v1/account", None, Value::Null).await;
    let r = api.call("GET", "/metrics", None, Body::empty()).await;
    assert_eq!(r.status, StatusCode::OK);
    let text = r.text();
    assert!(
        text.contains("herald_http_responses_total{class=\"4xx\"} 1"),
        "{text}"
    );
    assert!(text.contains("herald_outbox_pending 0"), "{text}");
}

/// The VERP envelope sender Herald used for the message to `email`.
pub async fn verp_of(herald: &herald::Herald, email: &str) -> String {
    let (id, account): (i64, i64) = sqlx::query_as(
        "SELECT id, account FROM herald_outbox WHERE recipient_email = $1 ORDER BY id LIMIT 1",
    )
    .bind(email)
    .fetch_one(herald.outbox.pool())
    .await
    .unwrap();
    herald.tracker.verp_address(
        herald::message::MessageRef {
            account: u64::try_from(account).unwrap(),
            message: u64::try_from(id).unwrap(),
        },
        &herald.config.platform.bounce_domain,
    )
}

/// dkimpy's verdict on `message`, with `txt` published at `dns_name`.
fn dkimpy_verifies(message: &[u8], dns_name: &str, txt: &str) -> bool {
    let file = crate::delivery::scratch("api-dkimpy").join("m.eml");
    std::fs::write(&file, message).unwrap();
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../auth/tests/data/dkimpy_verify.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(&file)
        .arg(dns_name)
        .arg(txt)
        .output()
        .unwrap();
    out.status.success()
}

#[tokio::test]
async fn a_verified_domain_signs_with_its_own_key_and_has_no_sender() {
    let mut api = Api::start(Kind::Sqlite, "api-domain").await;
    let (_, key) = api.account("Shop").await;
    let k = Some(key.as_str());
    let r = api
        .json("POST", "/v1/domains", k, json!({"domain": "Shop.test"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let d = r.json();
    assert_eq!(d["domain"], "shop.test");
    assert_eq!(d["dns_name"], "herald._domainkey.shop.test");
    assert_eq!(d["verified"], false);
    let txt = d["txt_record"].as_str().unwrap().to_owned();
    assert!(txt.starts_with("v=DKIM1; k=rsa; p="), "{txt}");
    // Before the records are published the check fails, with reasons.
    let empty = crate::dns::DnsServer::start(&[], &[]);
    let set_dns = |api: &mut Api, addr| {
        let mut config = api.rig.herald.config.clone();
        config.domains.nameserver = Some(addr);
        config.domains.spf_include = "spf.herald.test".into();
        config.domains.sending_ips = vec!["192.0.2.10".parse().unwrap()];
        config
    };
    let config = set_dns(&mut api, empty.addr);
    let herald = std::sync::Arc::new(
        herald::Herald::build(config, std::sync::Arc::clone(&api.rig.clock) as _)
            .await
            .unwrap(),
    );
    api.router = herald::http::router(std::sync::Arc::clone(&herald));
    let r = api
        .json("POST", "/v1/domains/shop.test/check", k, Value::Null)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["domain"]["verified"], false, "{v}");
    // Published: SPF with the platform's include, the DKIM key, DMARC.
    let dns = crate::dns::DnsServer::start(
        &[
            ("shop.test", "v=spf1 include:spf.herald.test -all"),
            ("spf.herald.test", "v=spf1 ip4:192.0.2.10 -all"),
            ("herald._domainkey.shop.test", &txt),
            ("_dmarc.shop.test", "v=DMARC1; p=reject"),
        ],
        &[],
    );
    let config = set_dns(&mut api, dns.addr);
    let herald = std::sync::Arc::new(
        herald::Herald::build(config, std::sync::Arc::clone(&api.rig.clock) as _)
            .await
            .unwrap(),
    );
    api.router = herald::http::router(std::sync::Arc::clone(&herald));
    let r = api
        .json("POST", "/v1/domains/shop.test/check", k, Value::Null)
        .await;
    let v = r.json();
    assert_eq!(v["domain"]["verified"], true, "{v}");
    // Mail from it: no Sender, signed d=shop.test with the generated key.
    let r = api
        .json(
            "POST",
            "/v1/sends",
            k,
            json!({"kind": "individual", "from": {"name": "Ulla", "email": "ulla@shop.test"},
                   "subject": "Your order", "text": "Thanks",
                   "recipients": {"addresses": [{"email": "kunde@example.test"}]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    run_until(&herald, &api.rig.stats, |s| s.done() >= 1).await;
    let (_, raw) = api.rig.sink.messages().pop().unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let headers = &text[..text.find("\r\n\r\n").unwrap()];
    assert!(
        !headers.to_ascii_lowercase().contains("\nsender:"),
        "{headers}"
    );
    assert!(headers.contains("d=shop.test"), "{headers}");
    assert!(headers.contains("s=herald"), "{headers}");
    assert!(dkimpy_verifies(&raw, "herald._domainkey.shop.test", &txt));
    // Mail from another, unverified domain keeps the platform's signature and Sender.
    let r = api
        .json(
            "POST",
            "/v1/sends",
            k,
            json!({"kind": "individual", "from": {"email": "ulla@other.test"},
                   "subject": "Hi", "text": "Hi",
                   "recipients": {"addresses": [{"email": "kunde2@example.test"}]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    run_until(&herald, &api.rig.stats, |s| s.done() >= 2).await;
    let other = api
        .rig
        .sink
        .messages()
        .into_iter()
        .find(|(to, _)| to.iter().any(|t| t.contains("kunde2")))
        .unwrap()
        .1;
    let text = String::from_utf8_lossy(&other).into_owned();
    assert!(text.contains("\r\nSender: "), "{text}");
    assert!(text.contains("d=herald.test"));
}

/// The test SMS gateway (tests/data/sms_gateway.py) on a loopback port.
pub struct Gateway {
    child: std::process::Child,
    log: std::path::PathBuf,
    pub port: u16,
}

impl Gateway {
    pub fn start() -> Gateway {
        Gateway::start_with(0, None)
    }

    /// A gateway that answers its first `fail_first` requests 503 and, given
    /// `report_token`, posts delivery reports back with it.
    pub fn start_with(fail_first: usize, report_token: Option<&str>) -> Gateway {
        use std::io::BufRead;
        let log = crate::delivery::scratch("sms").join("gateway.jsonl");
        let script =
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/sms_gateway.py");
        // Port 0: the gateway binds a free port itself and prints it once it
        // listens, so no other test can take the port in between.
        let mut cmd = std::process::Command::new("python3");
        cmd.arg(script)
            .arg("0")
            .arg(&log)
            .arg(fail_first.to_string());
        if let Some(t) = report_token {
            cmd.arg(t);
        }
        let mut child = cmd.stdout(std::process::Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the SMS gateway did not start: {line:?}"));
        Gateway { child, log, port }
    }

    /// The texts it received (each with the status it answered).
    pub fn received(&self) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|l| l.get("sms").is_some())
            .collect()
    }

    /// The delivery reports it posted back (each with Herald's answer).
    pub fn reports(&self) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|l| l.get("report").is_some())
            .collect()
    }

    fn lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs SMS delivery rounds until none takes a text.
pub async fn deliver_texts(rig: &Rig) {
    let stats = std::sync::Arc::new(herald::worker::Stats::default());
    for _ in 0..50 {
        let round = herald::sms::deliver_due(&rig.herald, &stats).await.unwrap();
        if round.attempted == 0 && round.throttled_until.is_none() {
            return;
        }
        if let Some(t) = round.throttled_until {
            rig.clock.set(t.max(herald::clock::Clock::now(&*rig.clock)));
        }
    }
    panic!("texts still due after 50 rounds");
}

#[tokio::test]
async fn sms_are_queued_then_sent_through_the_http_gateway_merged_with_their_segments() {
    let gateway = Gateway::start();
    let port = gateway.port;
    let rig = Rig::start(Kind::Sqlite, "api-sms", &[], |c| {
        c.api.admin_token = Some(ADMIN.into());
        c.sms.gateway_url = Some(format!("http://127.0.0.1:{port}/send"));
        c.sms.authorization = Some("Bearer gw-secret".into());
        c.sms.default_sender = "Shop".into();
    })
    .await;
    let router = herald::http::router(std::sync::Arc::clone(&rig.herald));
    let api = Api { rig, router };
    let (_, key) = api.account("Shop").await;
    let k = Some(key.as_str());
    api.json(
        "PUT",
        "/v1/persons",
        k,
        json!([
            {"id": "s-1", "person": {"first_name": "Ada", "mobile": "+45 12 34 56 78"}},
            {"id": "s-2", "person": {"first_name": "Zoë", "phone": "0045 8765 4321"}},
            {"id": "s-3", "person": {"first_name": "Nobody"}},
            {"id": "s-4", "person": {"first_name": "Gone", "mobile": "+45 11 22 33 999"}},
            {"id": "s-6", "block_sms": true, "person": {"first_name": "Quiet", "mobile": "+45 55 55 55 55"}},
        ]),
    )
    .await;
    let r = api
        .json(
            "POST",
            "/v1/sms",
            k,
            json!({"text": "Hi {{person.first_name}}, your order has shipped.",
                   "recipients": {"persons": ["s-1", "s-2", "s-3", "s-4", "s-5", "s-6"]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let v = r.json();
    assert_eq!(v["queued"], 3, "{v}");
    assert_eq!(v["skipped"]["no mobile number"], 1);
    assert_eq!(v["skipped"]["unknown person"], 1);
    assert_eq!(v["skipped"]["sms opt-out"], 1);
    assert!(v["campaign"].as_str().unwrap().contains("SMS Hi"), "{v}");
    // Answered at once: nothing has gone to the gateway yet.
    assert!(gateway.received().is_empty());
    let id = v["send_id"].as_i64().unwrap();
    let listed = api.json("GET", "/v1/sends", k, Value::Null).await.json();
    let line = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == id)
        .unwrap_or_else(|| panic!("the SMS send is in the scheduled list: {listed}"));
    assert_eq!(line["channel"], "sms");
    assert_eq!(
        line["subject"],
        "Hi {{person.first_name}}, your order has shipped."
    );
    deliver_texts(&api.rig).await;
    let view = api
        .json("GET", &format!("/v1/sms/{id}"), k, Value::Null)
        .await;
    assert_eq!(view.status, StatusCode::OK, "{}", view.text());
    assert_eq!(view.json()["texts"]["delivered"], 2, "{}", view.text());
    assert_eq!(view.json()["texts"]["failed"], 1, "{}", view.text());
    let got = gateway.received();
    assert_eq!(got.len(), 3);
    let ada = got
        .iter()
        .find(|g| g["sms"]["to"] == "+4512345678")
        .unwrap();
    assert_eq!(ada["authorization"], "Bearer gw-secret");
    assert_eq!(ada["path"], "/send");
    assert_eq!(ada["sms"]["from"], "Shop");
    assert_eq!(ada["sms"]["text"], "Hi Ada, your order has shipped.");
    assert_eq!(ada["sms"]["encoding"], "Gsm7");
    assert_eq!(ada["sms"]["segments"], 1);
    assert!(
        ada["sms"]["reference"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .is_ok()
    );
    // "ë" is not in GSM-7: the whole text goes as UCS-2.
    let zoe = got
        .iter()
        .find(|g| g["sms"]["to"] == "+4587654321")
        .unwrap();
    assert_eq!(zoe["sms"]["text"], "Hi Zoë, your order has shipped.");
    assert_eq!(zoe["sms"]["encoding"], "Ucs2");
    // The events: processed for each, sent for two, failed (400) for one;
    // the totals count them apart from email.
    let totals = api.json("GET", "/v1/account", k, Value::Null).await.json();
    let sms = &totals["totals"]["sms"];
    assert_eq!(sms["processed"], 3, "{totals}");
    assert_eq!(sms["sent"], 2, "{totals}");
    assert_eq!(sms["failed"], 1, "{totals}");
    assert_eq!(
        totals["totals"]["processed"], 0,
        "no email counted: {totals}"
    );
    // A long text by number is split into segments; bad numbers and senders are refused.
    let long = "x".repeat(200);
    let r = api
        .json(
            "POST",
            "/v1/sms",
            k,
            json!({"from": "+4599999999", "text": long, "recipients": {"numbers": [{"phone": "+4520304050"}]}}),
        )
        .await;
    assert_eq!(r.json()["segments"], 2, "{}", r.text());
    // A number given twice, however written, gets one text, as an address gets one email.
    let r = api
        .json(
            "POST",
            "/v1/sms",
            k,
            json!({"text": "Once", "recipients": {"numbers": [{"phone": "+45 20 30 40 60"}, {"phone": "0045 2030 4060"}, {"phone": "+4520304060"}]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["queued"], 1, "{}", r.text());
    // An opted-out number is skipped and counted, until it opts back in.
    let r = api
        .json(
            "POST",
            "/v1/sms/opt-outs",
            k,
            json!({"phone": "+45 20 30 40 70"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let body = json!({"text": "Hello", "recipients": {"numbers": [{"phone": "+4520304070"}, {"phone": "+4520304080"}]}});
    let r = api.json("POST", "/v1/sms", k, body.clone()).await;
    assert_eq!(r.json()["queued"], 1, "{}", r.text());
    assert_eq!(r.json()["skipped"]["sms opt-out"], 1, "{}", r.text());
    api.json(
        "POST",
        "/v1/sms/opt-ins",
        k,
        json!({"phone": "+4520304070"}),
    )
    .await;
    let r = api.json("POST", "/v1/sms", k, body).await;
    assert_eq!(r.json()["queued"], 2, "{}", r.text());
    // A scheduled send is deletable before it goes.
    let at = (herald::clock::Clock::now(&*api.rig.clock) + chrono::Duration::hours(2)).to_rfc3339();
    let r = api
        .json(
            "POST",
            "/v1/sms",
            k,
            json!({"text": "Later", "scheduled_at": at, "recipients": {"numbers": [{"phone": "+4520304090"}]}}),
        )
        .await;
    let later = r.json()["send_id"].as_i64().unwrap();
    let r = api
        .json("DELETE", &format!("/v1/sms/{later}"), k, Value::Null)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["cancelled"], 1);
    for (body, field) in [
        (
            json!({"text": "x", "recipients": {"numbers": [{"phone": "12345"}]}}),
            "recipients[0].phone",
        ),
        (
            json!({"from": "A much too long sender", "text": "x", "recipients": {"numbers": []}}),
            "from",
        ),
        (
            json!({"text": "{{person.nope}}", "recipients": {"numbers": [{"phone": "+4520304050"}]}}),
            "text",
        ),
        (
            json!({"text": "  ", "recipients": {"numbers": [{"phone": "+4520304050"}]}}),
            "text",
        ),
        // A text that merges to nothing for its only recipient: nobody left.
        (
            json!({"text": "{{person.first_name}}", "recipients": {"numbers": [{"phone": "+4520304050"}]}}),
            "recipients",
        ),
    ] {
        let r = api.json("POST", "/v1/sms", k, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
        assert_eq!(problem(&r)["field"], field);
    }
    deliver_texts(&api.rig).await;
    assert_eq!(
        gateway.received().len(),
        3 + 1 + 1 + 1 + 2,
        "each queued text sent once, nothing for refused or deleted sends"
    );
}

async fn organisations_give_their_persons_their_fields(kind: Kind) {
    let api = Api::start(kind, "api-orgs").await;
    let (_, key) = api.account("Shop").await;
    let k = Some(key.as_str());
    // Persons first (organisation unknown yet), then the organisation.
    let r = api
        .json(
            "PUT",
            "/v1/persons",
            k,
            json!([
                {"id": "o-p1", "organisation_id": "acme", "person": {"email": "a@acme.test", "first_name": "Ann"}},
                {"id": "o-p2", "organisation_id": "acme", "person": {"email": "b@acme.test", "first_name": "Bo"}},
                {"id": "o-p3", "person": {"email": "c@other.test"}},
            ]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = api
        .json(
            "PUT",
            "/v1/organisations",
            k,
            json!([{"id": "acme", "fields": {"name": "Acme & Co", "city": "Aarhus"}}]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["persons_updated"], 2);
    let v = api
        .json("GET", "/v1/persons/o-p1", k, Value::Null)
        .await
        .json();
    assert_eq!(v["organisation_id"], "acme");
    assert_eq!(v["organisation"]["name"], "Acme & Co");
    let v = api
        .json("GET", "/v1/persons/o-p3", k, Value::Null)
        .await
        .json();
    assert_eq!(v["organisation"], json!({}));
    // A person upserted later gets the stored organisation's fields.
    api.json(
        "PUT",
        "/v1/persons",
        k,
        json!([{"id": "o-p4", "organisation_id": "acme", "person": {"email": "d@acme.test"}}]),
    )
    .await;
    let v = api
        .json("GET", "/v1/persons/o-p4", k, Value::Null)
        .await
        .json();
    assert_eq!(v["organisation"]["city"], "Aarhus");
    // Renaming the organisation reaches its persons, and merges use it (HTML-escaped).
    api.json(
        "PUT",
        "/v1/organisations",
        k,
        json!([{"id": "acme", "fields": {"name": "Acme <Nordic>", "city": "Aarhus"}}]),
    )
    .await;
    let r = api
        .json(
            "POST",
            "/v1/sends/preview",
            k,
            json!({"kind": "individual", "from": {"email": "u@shop.test"},
                   "subject": "For {{organisation.name}}", "html": "<p>{{organisation.name}} in {{organisation.city}}</p>",
                   "recipients": {"persons": ["o-p2"]}}),
        )
        .await;
    let v = r.json();
    assert_eq!(v["subject"], "For Acme <Nordic>", "{v}");
    let html = v["html"].as_str().unwrap();
    assert!(
        html.starts_with("<p>Acme &lt;Nordic&gt; in Aarhus</p>"),
        "{html}"
    );
    assert!(
        html.contains("src=\"data:image/gif;base64,"),
        "the pixel loads nothing: {html}"
    );
    // Bad ids and field names are refused, naming the field.
    let r = api
        .json(
            "PUT",
            "/v1/organisations",
            k,
            json!([{"id": "", "fields": {}}]),
        )
        .await;
    assert_eq!(problem(&r)["field"], "organisations[0].id");
    let r = api
        .json(
            "PUT",
            "/v1/organisations",
            k,
            json!([{"id": "x", "fields": {"bad name": "v"}}]),
        )
        .await;
    assert_eq!(problem(&r)["field"], "organisations[0].fields");
}
on_both!(organisations_give_their_persons_their_fields);

/// Issue 10 §1: a stored person that cannot be mailed (stored before today's
/// validation, or written straight to the database) is skipped and counted by
/// reason; the rest of the send goes out. An address given in the request is
/// still refused, naming its field.
async fn unusable_stored_persons_are_skipped_and_counted(kind: Kind) {
    let api = Api::start(kind, "api-unusable").await;
    let (account, key) = api.account("Shop").await;
    let k = Some(key.as_str());
    api.json("PUT", "/v1/persons", k, persons("u", 2)).await;
    // What older rules let in, written as the store writes persons.
    let account = i64::try_from(account).unwrap();
    for (person, field, value) in [
        ("old-1", "email", "bad\r\nBcc: x@example.test"),
        ("old-2", "email", "nobody@localhost"),
        ("old-3", "email", "ok3@example.test"),
        ("old-3", "first_name", "Eve\r\nBcc: y@example.test"),
    ] {
        sqlx::query("INSERT INTO herald_person_fields (account, person, namespace, field, value) VALUES ($1, $2, 'person', $3, $4)")
            .bind(account)
            .bind(person)
            .bind(field)
            .bind(value)
            .execute(api.rig.herald.outbox.pool())
            .await
            .unwrap();
    }
    let ids: Vec<String> = ["u-0", "old-1", "old-2", "old-3", "u-1"]
        .map(str::to_owned)
        .into();
    let r = api.json("POST", "/v1/sends", k, newsletter(&ids)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let v = r.json();
    assert_eq!(v["queued"], 2, "{v}");
    assert_eq!(v["skipped"]["invalid email address"], 2, "{v}");
    assert_eq!(v["skipped"]["unusable person data"], 1, "{v}");
    // Only unusable persons: nothing to send, and the answer says why.
    let r = api
        .json(
            "POST",
            "/v1/sends",
            k,
            newsletter(&["old-1".into(), "old-3".into()]),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let detail = problem(&r)["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        detail.contains("1 invalid email address") && detail.contains("1 unusable person data"),
        "{detail}"
    );
    // The same address given in the request is refused, naming the field.
    let mut send = newsletter(&[]);
    send["recipients"] =
        json!({"addresses": [{"email": "a@example.test"}, {"email": "nobody@localhost"}]});
    let r = api.json("POST", "/v1/sends", k, send).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert_eq!(problem(&r)["field"], "recipients[1].email", "{}", r.text());
}
on_both!(unusable_stored_persons_are_skipped_and_counted);

/// Issue 10 §1: merge values in a tracked link are percent-encoded by their
/// place in the URL, so the click lands where the author meant, with the value
/// as data, and `Location` is ASCII.
#[tokio::test]
async fn merge_values_in_tracked_links_are_encoded_by_their_place() {
    let api = Api::start(Kind::Sqlite, "api-linkmerge").await;
    let (_, key) = api.account("Shop").await;
    let k = Some(key.as_str());
    let person = json!([{"id": "m", "person": {"email": "mary@example.test", "first_name": "Mary Ann", "last_name": "Zoë"},
        "custom": {"tier": "x&admin=1#frag"}}]);
    let r = api.json("PUT", "/v1/persons", k, person).await;
    assert!(r.status.is_success(), "{}", r.text());
    let mut send = newsletter(&["m".into()]);
    send["html"] = json!(
        "<p>Hi</p><a href=\"https://shop.test/u/{{person.first_name}}/{{person.last_name}}?tier={{custom.tier}}&amp;x=1\">You</a>"
    );
    let r = api.json("POST", "/v1/sends", k, send).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    run_until(&api.rig.herald, &api.rig.stats, |s| s.done() >= 1).await;
    let (_, raw) = api.rig.sink.messages().pop().unwrap();
    let msg = mail_parser::MessageParser::default().parse(&raw).unwrap();
    let html = msg.body_html(0).unwrap().into_owned();
    let click = html
        .split("https://t.herald.test/c/")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a tracked link")
        .to_owned();
    let r = api
        .call("GET", &format!("/c/{click}"), None, Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    assert_eq!(
        r.headers[header::LOCATION],
        "https://shop.test/u/Mary%20Ann/Zo%C3%AB?tier=x%26admin%3D1%23frag&x=1"
    );
}

/// Issue 10 §2: a report over a bound is refused with 400 naming it, on every
/// path that runs reports (reports, their persons, sends to a report).
#[tokio::test]
async fn reports_over_their_bounds_are_refused_at_the_api() {
    let api = Api::start(Kind::Sqlite, "api-reportbounds").await;
    let (_, key) = api.account("Shop").await;
    let k = Some(key.as_str());
    let contains = json!({"op": "contains", "field": "recipient", "value": "a"});
    let too_many = json!({"filters": vec![contains.clone(); 21]});
    let too_long = json!({"filters": [{"op": "person_contains", "namespace": "person", "field": "email", "value": "x".repeat(1_001)}]});
    let too_big =
        json!({"filters": [{"op": "one_of", "field": "label", "values": vec!["v"; 1_001]}]});
    let negative = json!({"filters": [], "offset": -1});
    let no_page = json!({"filters": [], "limit": 0});
    for (query, field) in [
        (&too_many, "filters"),
        (&too_long, "filters[0].value"),
        (&too_big, "filters[0].values"),
        (&negative, "offset"),
        (&no_page, "limit"),
    ] {
        let mut send = newsletter(&[]);
        send["recipients"] = json!({"report": query});
        for (uri, body) in [
            ("/v1/reports", query.clone()),
            ("/v1/reports/persons", query.clone()),
            ("/v1/sends", send),
        ] {
            let r = api.json("POST", uri, k, body).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}: {}", r.text());
            assert_eq!(problem(&r)["field"], field, "{uri}: {}", r.text());
        }
    }
    let ok = json!({"filters": vec![contains; 20]});
    let r = api.json("POST", "/v1/reports", k, ok).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

/// Issue 10 §5: a customer's DKIM key is sealed in the database (no PEM in the
/// row), opens to sign its mail (checked by dkimpy against the TXT record the
/// API gave), and rotates: re-sealed under a new key, the old one no longer
/// needed; a key stored as PEM before encryption was configured is sealed too.
#[tokio::test]
async fn customer_dkim_keys_are_sealed_at_rest_sign_and_rotate() {
    use herald::vault::{KeyVault, reseal_all};
    let k1 = KeyVault::generate("k1").unwrap();
    let k2 = KeyVault::generate("k2").unwrap();
    let first = k1.clone();
    let api = Api::start_with(Kind::Sqlite, "api-vault", move |c| {
        c.domains.key_encryption_key = Some(first);
    })
    .await;
    let (account, key) = api.account("Shop").await;
    let k = Some(key.as_str());
    let r = api
        .json("POST", "/v1/domains", k, json!({"domain": "shop.test"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let domain = r.json();
    let (dns_name, txt) = (
        domain["dns_name"].as_str().unwrap().to_owned(),
        domain["txt_record"].as_str().unwrap().to_owned(),
    );
    let stored = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT private_key FROM herald_domains WHERE domain = 'shop.test'",
        )
        .fetch_one(api.rig.herald.outbox.pool())
        .await
        .unwrap()
    };
    let row = stored().await;
    assert!(row.starts_with("herald-aead:v1:k1:"), "{row}");
    assert!(!row.contains("PRIVATE KEY"), "no PEM at rest");
    // Verified, the domain signs its own mail with the sealed key.
    let accounts = &api.rig.herald.accounts;
    accounts
        .set_verified(account, "shop.test", true, api.rig.now)
        .await
        .unwrap();
    let mut send = newsletter(&[]);
    send["kind"] = json!("individual");
    send["from"]["email"] = json!("news@shop.test");
    send["html"] = json!("<p>Hi {{person.first_name}}</p>");
    send["recipients"] = json!({"addresses": [{"email": "ann@example.test"}]});
    let r = api.json("POST", "/v1/sends", k, send).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    run_until(&api.rig.herald, &api.rig.stats, |s| s.done() >= 1).await;
    let (_, raw) = api.rig.sink.messages().pop().unwrap();
    let file = crate::delivery::scratch("vault").join("signed.eml");
    std::fs::write(&file, &raw).unwrap();
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/dkimpy_verify_all.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(&dns_name)
        .arg(&txt)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&raw).contains("d=shop.test"),
        "dkimpy: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A key stored as PEM before encryption was configured.
    let legacy =
        herald::auth::generate_key("legacy.test", "herald", herald::auth::KeyAlgorithm::Rsa2048)
            .unwrap();
    accounts
        .add_domain(
            account,
            "legacy.test",
            &herald::schedule::DomainKey {
                selector: "herald".into(),
                private_key_pem: legacy.private_key_pem.clone(),
                dns_name: legacy.dns_name.clone(),
                txt_record: legacy.txt_record.clone(),
            },
        )
        .await
        .unwrap();
    // Rotation: k2 seals, k1 still opens; every key is re-sealed under k2.
    let rotated = KeyVault::new(Some(&k2), std::slice::from_ref(&k1)).unwrap();
    let done = reseal_all(accounts, &rotated).await.unwrap();
    assert_eq!((done.resealed, done.unchanged), (2, 0));
    assert!(stored().await.starts_with("herald-aead:v1:k2:"));
    let only_k2 = KeyVault::new(Some(&k2), &[]).unwrap();
    let again = reseal_all(accounts, &only_k2).await.unwrap();
    assert_eq!((again.resealed, again.unchanged), (0, 2));
    for (domain, record) in [
        ("shop.test", txt.as_str()),
        ("legacy.test", legacy.txt_record.as_str()),
    ] {
        let opened = herald::accounts::domain_key(accounts, &only_k2, account, domain)
            .await
            .unwrap()
            .expect("the key");
        assert_eq!(
            opened.public_key().txt_record(),
            record,
            "{domain}: the same key"
        );
    }
    // The old key alone no longer opens them, and says which key is missing.
    let only_k1 = KeyVault::new(Some(&k1), &[]).unwrap();
    let e = herald::accounts::domain_key(accounts, &only_k1, account, "shop.test")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("`k2`") && e.contains("not configured"), "{e}");
}

/// Issue 10 §5: a sending domain is verified by one account at a time. A
/// second account cannot add a domain another has verified (409), and one
/// that added it before cannot become verified while the other holds it.
#[tokio::test]
async fn a_domain_verified_by_one_account_is_refused_to_another() {
    let api = Api::start(Kind::Sqlite, "api-domaintaken").await;
    let (a, ka) = api.account("A").await;
    let (b, kb) = api.account("B").await;
    let (c, kc) = api.account("C").await;
    let accounts = &api.rig.herald.accounts;
    for k in [&ka, &kc] {
        let r = api
            .json(
                "POST",
                "/v1/domains",
                Some(k),
                json!({"domain": "shop.test"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    }
    accounts
        .set_verified(a, "shop.test", true, api.rig.now)
        .await
        .unwrap();
    let r = api
        .json(
            "POST",
            "/v1/domains",
            Some(&kb),
            json!({"domain": "Shop.Test"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    assert!(
        problem(&r)["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("another account has verified it")
    );
    assert!(
        accounts.domain(b, "shop.test").await.unwrap().is_none(),
        "nothing stored for B"
    );
    // C added it before A verified it: passing checks now does not verify it.
    let e = accounts
        .set_verified(c, "shop.test", true, api.rig.now)
        .await
        .unwrap_err();
    assert!(
        matches!(e, herald::schedule::Error::DomainTaken { .. }),
        "{e}"
    );
    assert!(
        !accounts
            .domain(c, "shop.test")
            .await
            .unwrap()
            .unwrap()
            .verified
    );
    // Once A no longer has it verified, C can verify it.
    accounts
        .set_verified(a, "shop.test", false, api.rig.now)
        .await
        .unwrap();
    accounts
        .set_verified(c, "shop.test", true, api.rig.now)
        .await
        .unwrap();
    assert!(
        accounts
            .domain(c, "shop.test")
            .await
            .unwrap()
            .unwrap()
            .verified
    );
}

/// Issue 10 §1: attachments a message could not be built or sent with are
/// refused when the send is made (400 naming the attachment and the rule), and
/// nothing of the send is stored.
#[tokio::test]
async fn attachments_a_message_cannot_carry_are_refused_at_the_api() {
    let api = Api::start_with(Kind::Sqlite, "api-attach", |c| {
        c.attachments.platform_limit = 1_000;
    })
    .await;
    let (_, key) = api.account("Shop").await;
    let k = Some(key.as_str());
    api.json("PUT", "/v1/persons", k, persons("a", 1)).await;
    let pdf = |filename: &str, content_type: &str, content_id: Option<&str>| json!({"filename": filename, "content_type": content_type, "content_id": content_id, "data": "JVBERi0xLjQK"});
    // (attachment, the field the problem names, a word of the rule)
    let cases = [
        (
            pdf("terms\r\n.pdf", "application/pdf", None),
            "attachments[0]",
            "control character",
        ),
        (
            pdf("terms\t.pdf", "application/pdf", None),
            "attachments[0]",
            "control character",
        ),
        (
            pdf("terms\u{7}.pdf", "application/pdf", None),
            "attachments[0]",
            "control character",
        ),
        (pdf("", "application/pdf", None), "attachments[0]", "empty"),
        (
            pdf("terms.pdf", "pdf", None),
            "attachments[0]",
            "type/subtype",
        ),
        (
            pdf("terms.pdf", "application/pdf\r\nBcc: x@example.test", None),
            "attachments[0]",
            "type/subtype",
        ),
        (
            pdf("terms.pdf", "application/", None),
            "attachments[0]",
            "type/subtype",
        ),
        (
            pdf("logo.png", "image/png", Some("logo 1")),
            "attachments[0]",
            "content_id",
        ),
        (
            pdf("logo.png", "image/png", Some("lo\u{0}go")),
            "attachments[0]",
            "content_id",
        ),
        (
            pdf("logo.png", "image/png", Some("")),
            "attachments[0]",
            "content_id",
        ),
        (
            json!({"filename": "big.bin", "content_type": "application/octet-stream", "data": "AAAA".repeat(334)}),
            "attachments",
            "1002 bytes in total, above the platform limit of 1000 bytes",
        ),
    ];
    for (attachment, field, rule) in cases {
        let mut send = newsletter(&["a-0".into()]);
        send["attachments"] = json!([attachment.clone()]);
        let r = api.json("POST", "/v1/sends", k, send).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{attachment}: {}",
            r.text()
        );
        let p = problem(&r);
        assert_eq!(p["field"], field, "{attachment}: {p}");
        assert!(
            p["detail"].as_str().unwrap_or_default().contains(rule),
            "{attachment}: {p}"
        );
    }
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM herald_outbox")
        .fetch_one(api.rig.herald.outbox.pool())
        .await
        .unwrap();
    assert_eq!(stored, 0, "nothing of a refused send is stored");
    // At the limit, and with an inline image, the send is taken and delivered.
    let mut send = newsletter(&["a-0".into()]);
    send["attachments"] = json!([
        {"filename": "fits.bin", "content_type": "application/octet-stream", "data": "AAAA".repeat(300)},
        pdf("logo.png", "image/png", Some("logo@shop.test")),
    ]);
    let r = api.json("POST", "/v1/sends", k, send).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    run_until(&api.rig.herald, &api.rig.stats, |s| s.done() >= 1).await;
    assert_eq!(
        api.rig
            .stats
            .delivered
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn sends_reports_and_campaigns_through_the_api() {
    let api = Api::start(Kind::Sqlite, "api-flow").await;
    let (_, key) = api.account("Shop").await;
    let k = Some(key.as_str());
    api.json("PUT", "/v1/persons", k, persons("f", 3)).await;
    // A mass send with an attachment, now.
    let mut send = newsletter(&["f-0".into(), "f-1".into(), "f-2".into()]);
    send["campaign"] = json!("Spring");
    send["attachments"] = json!([{"filename": "terms.pdf", "content_type": "application/pdf", "data": "JVBERi0xLjQKJcfs"}]);
    let r = api.json("POST", "/v1/sends", k, send).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let v = r.json();
    assert_eq!(v["campaign"], "Spring");
    let campaign = v["campaign_id"].as_i64().unwrap();
    let send_id = v["send_id"].as_i64().unwrap();
    run_until(&api.rig.herald, &api.rig.stats, |s| s.done() >= 3).await;
    let (_, raw) = api.rig.sink.messages().pop().unwrap();
    let msg = mail_parser::MessageParser::default().parse(&raw).unwrap();
    let att = msg.attachments().next().expect("the attachment");
    assert_eq!(att.attachment_name(), Some("terms.pdf"));
    assert_eq!(att.contents(), b"%PDF-1.4\n%\xc7\xec");
    let r = api
        .json("GET", &format!("/v1/sends/{send_id}"), k, Value::Null)
        .await;
    assert_eq!(r.json()["messages"]["delivered"], 3, "{}", r.text());
    // A send with the same campaign name joins that campaign.
    let mut again = newsletter(&["f-0".into()]);
    again["campaign"] = json!("Spring");
    let r = api.json("POST", "/v1/sends", k, again).await;
    assert_eq!(r.json()["campaign_id"], campaign);
    // A scheduled send is listed, then deleted: what was unsent is cancelled.
    let mut later = newsletter(&["f-1".into(), "f-2".into()]);
    later["scheduled_at"] = json!(api.rig.now + chrono::Duration::days(2));
    let r = api.json("POST", "/v1/sends", k, later).await;
    let later_id = r.json()["send_id"].as_i64().unwrap();
    let list = api.json("GET", "/v1/sends", k, Value::Null).await.json();
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == later_id)
        .unwrap()
        .clone();
    assert_eq!(
        (row["count"].clone(), row["status"].clone()),
        (json!(2), json!("Scheduled"))
    );
    let r = api
        .json("DELETE", &format!("/v1/sends/{later_id}"), k, Value::Null)
        .await;
    assert_eq!(r.json()["cancelled"], 2, "{}", r.text());
    let r = api
        .json("DELETE", &format!("/v1/sends/{later_id}"), k, Value::Null)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Reports: CSV export, the persons of a report, and a field set for them.
    let q = json!({"filters": [{"op": "kinds", "kinds": ["delivered"]},
                               {"op": "person_equals", "namespace": "custom", "field": "tier", "value": "gold"}]});
    let r = api
        .json("POST", "/v1/reports?format=csv", k, q.clone())
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    let csv = r.text();
    assert!(csv.starts_with("id,kind,at,"), "{csv}");
    assert_eq!(csv.lines().count(), 3, "header + f-0 and f-2 (gold): {csv}");
    let r = api.json("POST", "/v1/reports/persons", k, q.clone()).await;
    assert_eq!(r.json()["persons"], json!(["f-0", "f-2"]));
    // Paged by limit and offset (they were ignored), which are checked.
    let mut paged = q.clone();
    paged["limit"] = json!(1);
    paged["offset"] = json!(1);
    let r = api
        .json("POST", "/v1/reports/persons", k, paged.clone())
        .await;
    assert_eq!(r.json()["persons"], json!(["f-2"]), "{}", r.text());
    paged["offset"] = json!(-1);
    let r = api.json("POST", "/v1/reports/persons", k, paged).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.text().contains("offset"), "{}", r.text());
    let r = api
        .json(
            "POST",
            "/v1/reports/update",
            k,
            json!({"query": q, "namespace": "custom", "field": "segment", "value": "vip"}),
        )
        .await;
    assert_eq!(r.json()["updated"], 2, "{}", r.text());
    let p = api
        .json("GET", "/v1/persons/f-2", k, Value::Null)
        .await
        .json();
    assert_eq!(p["custom"]["segment"], "vip");
    let p = api
        .json("GET", "/v1/persons/f-1", k, Value::Null)
        .await
        .json();
    assert!(p["custom"].get("segment").is_none());
    // Campaigns: star and archive; archived ones are listed on request only.
    let r = api
        .json(
            "PATCH",
            &format!("/v1/campaigns/{campaign}"),
            k,
            json!({"starred": true, "archived": true}),
        )
        .await;
    let c = r.json();
    assert_eq!(
        (c["starred"].clone(), c["archived"].clone()),
        (json!(true), json!(true))
    );
    // Issue 10 §4: the body is an object; an array is the wrong shape (422).
    let r = api
        .json(
            "PATCH",
            &format!("/v1/campaigns/{campaign}"),
            k,
            json!([null, null]),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    // Emails count once processed: the first send's three (the second is not sent yet).
    assert_eq!(c["emails"], 3, "{c}");
    let listed = api
        .json("GET", "/v1/campaigns", k, Value::Null)
        .await
        .json();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["id"] != campaign)
    );
    let listed = api
        .json("GET", "/v1/campaigns?archived=true", k, Value::Null)
        .await
        .json();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == campaign)
    );
}

/// Issue 10 §2: failed API-key attempts are counted per client address; past
/// `api.max_failed_keys_per_minute` that address gets 429 with `Retry-After`,
/// even with a good key, while other addresses are served.
#[tokio::test]
async fn failed_api_keys_are_throttled_per_client_address() {
    let api = Api::start(Kind::Sqlite, "api-failed-keys").await;
    let (_, key) = api.account("Shop").await;
    let limit = api.rig.herald.config.api.max_failed_keys_per_minute;
    assert_eq!(limit, 20, "the documented default");
    let from = |ip: [u8; 4], k: &str| {
        let mut req = Request::builder()
            .method("GET")
            .uri("/v1/sends")
            .header(header::AUTHORIZATION, format!("Bearer {k}"))
            .body(Body::empty())
            .unwrap();
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
                ip, 40000,
            ))));
        let router = api.router.clone();
        async move { router.oneshot(req).await.unwrap() }
    };
    let guesser = [192, 0, 2, 7];
    for i in 0..limit {
        let r = from(guesser, &format!("hk_wrong{i}")).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let r = from(guesser, "hk_wrong-again").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()[header::RETRY_AFTER], "60");
    // The key is not even checked from that address now.
    let r = from(guesser, &key).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another client is not hurt, and good keys are never counted.
    for _ in 0..(limit + 5) {
        let r = from([192, 0, 2, 8], &key).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let r = from([192, 0, 2, 8], "hk_wrong").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

/// `GET /v1/sites` is the operator's: the admin token opens it, an account's
/// key does not; it lists each recorded site with its state and replies.
#[tokio::test]
async fn the_sites_list_is_for_the_operator() {
    let api = Api::start(Kind::Sqlite, "sites").await;
    let (_, key) = api.account("Shop").await;
    assert_eq!(
        api.json("GET", "/v1/sites", Some(&key), Value::Null)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.json("GET", "/v1/sites", None, Value::Null).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = api.json("GET", "/v1/sites", Some(ADMIN), Value::Null).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!([]));
    let now = chrono::Utc::now();
    let sites = api.rig.herald.outbox.sites();
    let limits = herald::schedule::SiteLimits {
        rate: Some(herald::schedule::Gcra::new(10_000, 1)),
        max_connections: 5,
    };
    sites
        .record(
            "gmail.com",
            &herald::schedule::NewSite {
                name: "google",
                provider: Some("google"),
                hosts: &["gmail-smtp-in.l.google.com".to_owned()],
                limits: &limits,
            },
            now + chrono::Duration::hours(1),
            now,
        )
        .await
        .unwrap();
    sites
        .act(
            "google",
            herald::schedule::SiteAction::Slow {
                factor: 60,
                until: now + chrono::Duration::minutes(90),
            },
            herald::schedule::SiteReply {
                at: now,
                code: Some(421),
                text: "4.7.28 unusual rate of unsolicited mail".into(),
                action: "ip_reputation: rate divided by 60 for 5400 s".into(),
            },
            now,
        )
        .await
        .unwrap();
    let r = api.json("GET", "/v1/sites", Some(ADMIN), Value::Null).await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v[0]["name"], "google");
    assert_eq!(v[0]["state"], "slowed");
    assert_eq!(v[0]["slow_factor"], 60);
    assert_eq!(v[0]["domains"], json!(["gmail.com"]));
    assert_eq!(v[0]["rate_per_second"], 100.0);
    assert_eq!(v[0]["recent"][0]["code"], 421);
    let metrics = api.call("GET", "/metrics", None, Body::empty()).await;
    let text = String::from_utf8_lossy(&metrics.body).into_owned();
    assert!(
        text.contains("herald_site_slowed{site=\"google\"} 1"),
        "{text}"
    );
}

/// `/v1/webhooks`: an account registers, lists, changes, rotates and deletes
/// its endpoints; the secret is shown only at creation and rotation; another
/// account sees none of them; bad input names the field.
#[tokio::test]
async fn webhook_endpoints_through_the_api() {
    let api = Api::start_with(Kind::Sqlite, "webhooks-api", |c| {
        c.webhooks.allow_http = true;
        c.webhooks.allow_private = true;
    })
    .await;
    let (_, key) = api.account("Shop").await;
    let (_, other) = api.account("Other").await;
    let r = api
        .json(
            "POST",
            "/v1/webhooks",
            Some(&key),
            json!({"url": "http://127.0.0.1:9/hooks", "kinds": ["hard_bounce", "click"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let created = r.json();
    let id = created["id"].as_i64().unwrap();
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(created["kinds"], json!(["hard_bounce", "click"]));
    let list = api
        .json("GET", "/v1/webhooks", Some(&key), Value::Null)
        .await
        .json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(
        list[0].get("secret").is_none(),
        "the secret is never listed"
    );
    let uri = format!("/v1/webhooks/{id}");
    assert_eq!(
        api.json("GET", &uri, Some(&other), Value::Null)
            .await
            .status,
        StatusCode::NOT_FOUND,
        "another account's endpoint does not exist for it"
    );
    let r = api
        .json(
            "PATCH",
            &uri,
            Some(&key),
            json!({"enabled": false, "kinds": []}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["enabled"], false);
    assert_eq!(r.json()["kinds"], json!([]));
    let r = api
        .json("POST", &format!("{uri}/rotate"), Some(&key), Value::Null)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_ne!(r.json()["secret"], created["secret"]);
    assert!(r.json()["previous_secret_until"].is_string());
    let r = api
        .json("GET", &format!("{uri}/attempts"), Some(&key), Value::Null)
        .await;
    assert_eq!((r.status, r.json()), (StatusCode::OK, json!([])));
    for (body, field) in [
        (json!({"url": "ftp://x/y"}), "url"),
        (
            json!({"url": "http://127.0.0.1:9/h", "kinds": ["open", "nope"]}),
            "kinds[1]",
        ),
    ] {
        let r = api.json("POST", "/v1/webhooks", Some(&key), body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
        assert!(r.text().contains(field), "{}", r.text());
    }
    assert_eq!(
        api.json("DELETE", &uri, Some(&other), Value::Null)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.json("DELETE", &uri, Some(&key), Value::Null)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.json("GET", &uri, Some(&key), Value::Null).await.status,
        StatusCode::NOT_FOUND
    );
}
