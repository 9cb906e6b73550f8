//! End to end through the HTTP API (R-OPS-1, R-API-*): `herald-server serve`
//! and a separate `herald-worker` process on the same database (SQLite file,
//! then PostgreSQL), delivering to Postfix's smtp-sink. A newsletter to 300
//! persons is scheduled 10 minutes ahead; the test moves the worker's clock
//! (HERALD_CLOCK_OFFSET_SECS) to show nothing leaves before its time and
//! everything after. Tracked links and pixels are followed with a real HTTP
//! client, a hard-bounce DSN and an ARF complaint are posted, and the event
//! log, totals, campaign rates, person flags and blocklist are checked exactly.

use crate::db::{Kind, TestDb};
use crate::sink::{Sink, free_port};
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const ADMIN: &str = "admin-token-0123456789abcdef0123456789";
const SECRET: &str = "0123456789abcdef0123456789abcdef";
const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";
const PERSONS: usize = 300;
const CLICKERS: usize = 30;
const OPENERS: usize = 50;

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
impl Proc {
    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let status = self.0.wait().expect("wait");
        assert!(status.success(), "stopped cleanly: {status}");
    }
}

/// `herald-worker`, next to `herald-server` in the target folder; built if a
/// lone `cargo test -p herald-server` has not built it.
fn worker_binary() -> PathBuf {
    let server = PathBuf::from(env!("CARGO_BIN_EXE_herald-server"));
    let worker = server.with_file_name(format!("herald-worker{}", std::env::consts::EXE_SUFFIX));
    if !worker.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo)
            .args(["build", "-p", "herald-worker"])
            .status()
            .expect("cargo build -p herald-worker");
        assert!(ok.success());
    }
    worker
}

pub fn write_config(dir: &Path, db: &str, http: u16, smtp: u16) -> PathBuf {
    let key =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../crates/auth/tests/data/ed25519.pem");
    let path = dir.join("herald.toml");
    std::fs::write(
        &path,
        format!(
            r#"
database_url = "{db}"
[platform]
name = "Herald"
sender = "mailer@herald.test"
message_id_domain = "herald.test"
bounce_domain = "bounces.herald.test"
[tracking]
base_url = "http://127.0.0.1:{http}"
secret = "{SECRET}"
[dkim.platform]
domain = "herald.test"
selector = "s1"
key_file = "{key}"
[transport]
kind = "smtp"
host = "127.0.0.1"
port = {smtp}
tls = "none"
[throttle]
[worker]
concurrency = 8
poll_ms = 50
[api]
admin_token = "{ADMIN}"
"#,
            key = key.display()
        ),
    )
    .unwrap();
    path
}

fn spawn(bin: &Path, args: &[&str], config: &Path, offset_secs: i64) -> Proc {
    Proc(
        Command::new(bin)
            .args(args)
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "warn")
            .env("HERALD_CLOCK_OFFSET_SECS", offset_secs.to_string())
            .spawn()
            .unwrap(),
    )
}

fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Http {
    client: Client,
    base: String,
}

impl Http {
    fn call(&self, method: &str, path: &str, key: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

/// The outbox message number and account of the message to `email`.
async fn message_of(db: &str, email: &str) -> (u64, u64) {
    use sqlx::Connection as _;
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(db).await.unwrap();
    let (id, account): (i64, i64) = sqlx::query_as(
        "SELECT id, account FROM herald_outbox WHERE recipient_email = $1 ORDER BY id LIMIT 1",
    )
    .bind(email)
    .fetch_one(&mut c)
    .await
    .unwrap();
    (id as u64, account as u64)
}

fn link(html: &str, prefix: &str) -> String {
    let start = html
        .find(prefix)
        .unwrap_or_else(|| panic!("{prefix} in {html}"));
    html[start..].split('"').next().unwrap().to_owned()
}

fn newsletter_end_to_end(kind: Kind) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDb::new(kind));
    let dir =
        std::env::temp_dir().join(format!("herald-e2e-{}-{}", std::process::id(), free_port()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let smtp = free_port();
    let sink = Sink::start(smtp, &dir.join("sink"), &[]);
    let http = free_port();
    let config = write_config(&dir, &db.url, http, smtp);
    let server_bin = PathBuf::from(env!("CARGO_BIN_EXE_herald-server"));
    let worker_bin = worker_binary();
    // `migrate` first, so the server and the worker never race to create tables.
    let out = Command::new(&server_bin)
        .arg("migrate")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listen = format!("127.0.0.1:{http}");
    let server = spawn(&server_bin, &["serve", "--listen", &listen], &config, 0);
    wait_for("the server", 30, || {
        std::net::TcpStream::connect(("127.0.0.1", http)).is_ok()
    });
    // reqwest is built with rustls but without a chosen crypto provider (Herald
    // passes its own TLS configuration); this client uses the process default.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let api = Http {
        client: Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(BROWSER)
            .build()
            .unwrap(),
        base: format!("http://127.0.0.1:{http}"),
    };

    // An account, its rules, 300 persons.
    let (s, v) = api.call(
        "POST",
        "/v1/accounts",
        ADMIN,
        Some(json!({"name": "Shop", "timezone": "Europe/Copenhagen"})),
    );
    assert_eq!(s, 201, "{v}");
    let key = v["api_key"]["key"].as_str().unwrap().to_owned();
    let (s, _) = api.call(
        "POST",
        "/v1/account/rules",
        &key,
        Some(json!({"accepted_by": "Ulla"})),
    );
    assert_eq!(s, 200);
    let persons: Vec<Value> = (0..PERSONS)
        .map(|i| json!({"id": format!("p-{i}"), "person": {"first_name": format!("Person{i}"), "email": format!("p{i}@example.test")}}))
        .collect();
    let (s, v) = api.call("PUT", "/v1/persons", &key, Some(Value::Array(persons)));
    assert_eq!((s, v["upserted"].as_u64()), (200, Some(PERSONS as u64)));

    // The newsletter, 10 minutes ahead (more than 100 recipients must be).
    let ids: Vec<String> = (0..PERSONS).map(|i| format!("p-{i}")).collect();
    let at = chrono::Utc::now() + chrono::Duration::minutes(10) + chrono::Duration::seconds(5);
    let send = json!({
        "kind": "mass",
        "from": {"name": "Shop", "email": "news@shop.test"},
        "subject": "Spring news for {{person.first_name}}",
        "html": "<p>Hi {{person.first_name}}</p><p><a href=\"https://shop.test/spring?utm=mail\">Spring sale</a></p>",
        "recipients": {"persons": ids},
        "scheduled_at": at,
    });
    let mut now_send = send.clone();
    now_send["scheduled_at"] = Value::Null;
    let (s, v) = api.call("POST", "/v1/sends", &key, Some(now_send));
    assert_eq!(s, 422, "300 recipients now breaks the 10-minute rule: {v}");
    let (s, v) = api.call("POST", "/v1/sends", &key, Some(send));
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["queued"], PERSONS);
    let campaign = v["campaign_id"].as_i64().unwrap();
    let (_, list) = api.call("GET", "/v1/sends", &key, None);
    assert_eq!(list[0]["status"], "Scheduled", "{list}");
    assert_eq!(list[0]["to"], "* Broadcast *");

    // A worker on today's clock sends nothing.
    let worker = spawn(&worker_bin, &[], &config, 0);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(sink.count(), 0, "nothing before the scheduled time");
    worker.stop();
    // Ten minutes later, it sends everything.
    let worker = spawn(&worker_bin, &[], &config, 606);
    wait_for("300 messages", 120, || sink.count() >= PERSONS);
    wait_for("the delivered events", 30, || {
        api.call("GET", "/v1/account", &key, None).1["totals"]["delivered"] == PERSONS
    });
    worker.stop();
    assert_eq!(sink.count(), PERSONS);

    // Follow links and pixels with a real HTTP client.
    let mut by_rcpt = std::collections::HashMap::new();
    for (rcpts, raw) in sink.messages() {
        let msg = mail_parser::MessageParser::default().parse(&raw).unwrap();
        by_rcpt.insert(rcpts[0].clone(), msg.body_html(0).unwrap().into_owned());
    }
    let base = format!("http://127.0.0.1:{http}");
    for i in 0..OPENERS {
        let html = &by_rcpt[&format!("p{i}@example.test")];
        let open = link(html, &format!("{base}/o/"));
        let r = api.client.get(&open).send().unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "image/gif");
        // A second open of the same message counts once.
        api.client.get(&open).send().unwrap();
    }
    for i in 0..CLICKERS {
        let html = &by_rcpt[&format!("p{i}@example.test")];
        let click = link(html, &format!("{base}/c/"));
        // A URL passed in the query string is never followed.
        let r = api
            .client
            .get(format!("{click}?url=https://evil.example/"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 302);
        assert_eq!(r.headers()["location"], "https://shop.test/spring?utm=mail");
    }
    // Forged and altered tokens never redirect.
    let click = link(&by_rcpt["p0@example.test"], &format!("{base}/c/"));
    let mut altered = click.clone();
    let last = altered.pop().unwrap();
    altered.push(if last == 'A' { 'B' } else { 'A' });
    for bad in [altered, format!("{base}/c/AAAAAAAAAAAAAAAAAAAAAAAAAAAA")] {
        let r = api.client.get(&bad).send().unwrap();
        assert_eq!(r.status(), 404, "{bad}");
        assert!(r.headers().get("location").is_none());
    }

    // A hard bounce for p-200 and a complaint from p-201, posted raw.
    let tracker = herald::message::Tracker::new(SECRET.as_bytes(), &base).unwrap();
    let verp = |(message, account): (u64, u64)| {
        tracker.verp_address(
            herald::message::MessageRef { account, message },
            "bounces.herald.test",
        )
    };
    let bounce = verp(rt.block_on(message_of(&db.url, "p200@example.test")));
    let complaint = verp(rt.block_on(message_of(&db.url, "p201@example.test")));
    for raw in [
        crate::inbound::hard_bounce_dsn(&bounce, "p200@example.test"),
        crate::inbound::complaint_arf(&complaint, "p201@example.test"),
    ] {
        let r = api
            .client
            .post(format!("{base}/v1/inbound"))
            .bearer_auth(ADMIN)
            .header("content-type", "message/rfc822")
            .body(raw)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().unwrap();
        assert_eq!(v["mapped"], true, "{v}");
    }

    // The event log, totals, campaign, flags and blocklist, exactly (clicks
    // and opens are staged durably before their answer and counted moments later).
    wait_for("the clicks and opens to be counted", 30, || {
        let t = api.call("GET", "/v1/account", &key, None).1;
        t["totals"]["clicked"] == CLICKERS && t["totals"]["opened"] == OPENERS
    });
    let (_, account) = api.call("GET", "/v1/account", &key, None);
    let t = &account["totals"];
    assert_eq!(t["processed"], PERSONS, "{t}");
    assert_eq!(t["delivered"], PERSONS);
    assert_eq!(t["opened"], OPENERS);
    assert_eq!(t["clicked"], CLICKERS);
    assert_eq!(t["bounced"], 1);
    assert_eq!(t["complaints"], 1);
    assert_eq!(t["bot_opens"], 0);
    assert_eq!(t["bot_clicks"], 0);
    let (_, c) = api.call("GET", &format!("/v1/campaigns/{campaign}"), &key, None);
    assert_eq!(c["emails"], PERSONS, "{c}");
    assert!(
        c["first_subject"]
            .as_str()
            .unwrap()
            .starts_with("Spring news for"),
        "{c}"
    );
    assert!((c["open_rate"].as_f64().unwrap() - OPENERS as f64 / PERSONS as f64).abs() < 1e-9);
    assert!((c["click_rate"].as_f64().unwrap() - CLICKERS as f64 / PERSONS as f64).abs() < 1e-9);
    for (kind, n) in [
        // Each pixel was fetched twice at once by the same client: one event.
        ("open", OPENERS),
        ("click", CLICKERS),
        ("hard_bounce", 1),
        ("spam_complaint", 1),
        ("delivered", PERSONS),
    ] {
        let (_, r) = api.call(
            "POST",
            "/v1/reports",
            &key,
            Some(json!({"filters": [{"op": "kinds", "kinds": [kind]}], "limit": 1})),
        );
        assert_eq!(r["count"], n, "{kind}: {r}");
    }
    let (_, clicks) = api.call("GET", "/v1/persons/p-3/clicks", &key, None);
    assert_eq!(clicks.as_array().unwrap().len(), 1);
    assert_eq!(clicks[0]["label"], "https://shop.test/spring?utm=mail");
    assert_eq!(clicks[0]["browser"], "Firefox");
    let (_, p) = api.call("GET", "/v1/persons/p-200", &key, None);
    assert_eq!(
        (p["email_bouncing"].clone(), p["unsubscribed"].clone()),
        (json!(true), json!(false))
    );
    let (_, p) = api.call("GET", "/v1/persons/p-201", &key, None);
    assert_eq!(
        (p["email_bouncing"].clone(), p["unsubscribed"].clone()),
        (json!(false), json!(true))
    );
    // The blocklist holds for individual mail; the complaint stops mass mail only.
    let one = |kind: &str, id: &str| {
        json!({"kind": kind, "from": {"email": "news@shop.test"}, "subject": "Hi", "text": "Hi",
               "recipients": {"persons": [id]}})
    };
    let (_, v) = api.call("POST", "/v1/sends", &key, Some(one("individual", "p-200")));
    assert_eq!(v["skipped"]["blocklisted"], 1, "{v}");
    let (_, v) = api.call("POST", "/v1/sends", &key, Some(one("mass", "p-201")));
    assert_eq!(v["skipped"]["unsubscribed"], 1, "{v}");
    let (_, v) = api.call("POST", "/v1/sends", &key, Some(one("individual", "p-201")));
    assert_eq!(v["queued"], 1, "{v}");
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn newsletter_through_the_api_and_a_separate_worker_sqlite() {
    newsletter_end_to_end(Kind::Sqlite);
}

#[test]
fn newsletter_through_the_api_and_a_separate_worker_postgres() {
    newsletter_end_to_end(Kind::Postgres);
}
