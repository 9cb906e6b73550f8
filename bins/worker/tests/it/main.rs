//! `herald-worker` as a process: killed with SIGKILL in the middle of a
//! 2,000-message send and started again (R-SND-4), and stopped with SIGTERM.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

#[allow(dead_code)] // shared with herald's tests; not every helper is used here
#[path = "../../../../crates/herald/tests/it/sink.rs"]
mod sink;

use chrono::Utc;
use herald::message::{
    FieldSchema, Mailbox, MergeData, SendKind, SenderIdentity, Template, TrackingOptions,
};
use herald::schedule::{NewRecipient, NewSend, NoSuppression, Outbox, SendingRules, State, When};
use sink::{Sink, free_port};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CONCURRENCY: usize = 8;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "herald-worker-{name}-{}-{}",
        std::process::id(),
        free_port()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_config(dir: &Path, db_url: &str, port: u16) -> PathBuf {
    let key =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../crates/auth/tests/data/ed25519.pem");
    let config = format!(
        r#"
database_url = "{db_url}"
[platform]
name = "Herald"
sender = "mailer@herald.test"
message_id_domain = "herald.test"
bounce_domain = "bounces.herald.test"
[tracking]
base_url = "https://t.herald.test"
secret = "0123456789abcdef0123456789abcdef"
[dkim.platform]
domain = "herald.test"
selector = "s1"
key_file = "{key}"
[transport]
kind = "smtp"
host = "127.0.0.1"
port = {port}
tls = "none"
[throttle]
[rules]
mass_min_lead_minutes = 0
[worker]
concurrency = {CONCURRENCY}
lease_secs = 3
poll_ms = 20
event_recovery_secs = 2
"#,
        key = key.display()
    );
    let path = dir.join("herald.toml");
    std::fs::write(&path, config).unwrap();
    path
}

fn worker(config: &Path, id: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_herald-worker"))
        .arg("--config")
        .arg(config)
        .env("HERALD_WORKER_ID", id)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

async fn enqueue(db_url: &str, n: usize) -> (Outbox, i64) {
    let rules = SendingRules {
        mass_min_lead_minutes: 0,
        ..SendingRules::default()
    };
    let outbox = Outbox::connect(db_url, 2, rules).await.unwrap();
    outbox.migrate().await.unwrap();
    let template = Template {
        subject: "News {{person.first_name}}".into(),
        html: "<p>Hello {{person.first_name}}</p>".into(),
        text: String::new(),
    };
    let compiled = template
        .compile(
            &FieldSchema::standard(),
            &TrackingOptions {
                unsubscribe_link: true,
                ..TrackingOptions::default()
            },
        )
        .unwrap();
    let now = Utc::now();
    let recipients = (0..n)
        .map(|i| {
            let mut d = MergeData::default();
            d.person.insert("first_name".into(), format!("P{i}"));
            NewRecipient {
                to: Mailbox::new(None, &format!("r{i}@example.test")).unwrap(),
                values: compiled.resolve(&d).unwrap(),
                person: None,
            }
        })
        .collect();
    let send = NewSend {
        account: 1,
        kind: SendKind::Mass,
        template: compiled,
        sender: SenderIdentity {
            user: Mailbox::new(None, "u@shop.test").unwrap(),
            domain_verified: false,
        },
        campaign: None,
        when: When::At(now),
        subject: "News".into(),
        attachments: vec![],
    };
    let id = outbox
        .enqueue(send, recipients, &NoSuppression, now)
        .await
        .unwrap()
        .send_id;
    (outbox, id)
}

/// What the sink received: messages per recipient, and in all.
fn received(sink: &Sink) -> (HashMap<String, usize>, usize) {
    let mut per_recipient: HashMap<String, usize> = HashMap::new();
    for (rcpts, _) in sink.messages() {
        for r in rcpts {
            *per_recipient.entry(r).or_default() += 1;
        }
    }
    let total = per_recipient.values().sum();
    (per_recipient, total)
}

fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[allow(dead_code)] // shared with herald-schedule's tests; not every helper is used here
#[path = "../../../../crates/schedule/tests/it/db.rs"]
mod db;
mod many;

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_send_sqlite() {
    let dir = scratch("crash");
    let db_url = format!("sqlite://{}?mode=rwc", dir.join("herald.db").display());
    crash_test(&dir, &db_url).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_send_postgres() {
    let dir = scratch("crashpg");
    let db = db::TestDb::new(db::Kind::Postgres).await;
    crash_test(&dir, &db.url).await;
}

/// Kills the worker with SIGKILL in the middle of a 2,000-message send and starts
/// another: nothing is lost, and duplicates are at most the messages in flight.
async fn crash_test(dir: &Path, db_url: &str) {
    let db_url = db_url.to_owned();
    let port = free_port();
    let sink = Sink::start(port, &dir.join("sink"), &[]);
    let config = write_config(dir, &db_url, port);
    let (outbox, send_id) = enqueue(&db_url, 2000).await;

    let mut first = worker(&config, "w1");
    wait_for("500 deliveries", 120, || sink.count() >= 500);
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let at_kill = sink.count();

    let mut second = worker(&config, "w2");
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let counts = outbox.counts(send_id).await.unwrap();
        if counts.get(&State::Delivered) == Some(&2000) {
            break;
        }
        assert!(Instant::now() < deadline, "not all delivered: {counts:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The event log has each message's processed and delivered events exactly
    // once, including those the killed worker had not written (recovered).
    let log = herald::eventlog::EventLog::new(outbox.pool().clone(), outbox.backend(), 50_000);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let t = log.totals(1).await.unwrap();
        if (t.processed, t.delivered) == (2000, 2000) {
            break;
        }
        assert!(Instant::now() < deadline, "event totals: {t:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // SIGTERM: the worker finishes what is in flight and exits cleanly.
    Command::new("kill")
        .arg("-TERM")
        .arg(second.id().to_string())
        .status()
        .unwrap();
    let status = second.wait().unwrap();
    assert!(
        status.success(),
        "herald-worker exits 0 on SIGTERM: {status}"
    );

    let (per_recipient, total) = received(&sink);
    let duplicates = total - per_recipient.len();
    println!(
        "crash test: {at_kill} messages received when the worker was killed; {total} received in all; {duplicates} duplicates (in flight at the kill: at most {CONCURRENCY})"
    );
    assert_eq!(per_recipient.len(), 2000, "every recipient got the message");
    assert!(
        duplicates <= CONCURRENCY,
        "{duplicates} duplicates, more than the {CONCURRENCY} messages that can be in flight"
    );
}

fn worker_error(config_text: &str) -> (Option<i32>, String) {
    let dir = scratch("badconfig");
    let path = dir.join("herald.toml");
    std::fs::write(&path, config_text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_herald-worker"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_configuration_is_refused_at_start_naming_the_field() {
    let good = std::fs::read_to_string(write_config(
        &scratch("goodconfig"),
        "sqlite::memory:",
        2525,
    ))
    .unwrap();
    for (broken, needle) in [
        (good.replace("[platform]", "[platfrom]"), "platfrom"),
        (
            good.replace(
                "secret = \"0123456789abcdef0123456789abcdef\"",
                "secret = \"short\"",
            ),
            "tracking.secret: must be at least 32 bytes",
        ),
        (good.replace("ed25519.pem", "missing.pem"), "dkim key_file"),
        (
            good.replace("tls = \"none\"", "tls = \"sometimes\""),
            "sometimes",
        ),
        (
            good.replace(
                "sender = \"mailer@herald.test\"",
                "sender = \"not an address\"",
            ),
            "platform.sender",
        ),
        (
            format!(
                "{good}\n[events]\napple_egress_ranges = \"/nonexistent/egress-ip-ranges.csv\"\n"
            ),
            "events.apple_egress_ranges /nonexistent/egress-ip-ranges.csv",
        ),
        (
            format!("{good}\n[events]\ngeoip_database = \"/nonexistent/GeoLite2-City.mmdb\"\n"),
            "events.geoip_database /nonexistent/GeoLite2-City.mmdb",
        ),
        (
            format!("{good}\n[api]\ntrusted_proxies = [\"10.0.0.0/8\", \"not-an-ip\"]\n"),
            "api.trusted_proxies: `not-an-ip` is not an address",
        ),
        (
            format!("{good}\n[api]\nadmin_token = \"x\"\n"),
            "api.admin_token: must be at least 32 characters",
        ),
    ] {
        let (code, stderr) = worker_error(&broken);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains(needle), "expected `{needle}` in: {stderr}");
    }
    let (code, stderr) = worker_error("");
    assert_eq!(code, Some(1));
    assert!(stderr.contains("missing field"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ingest_reads_a_bounce_from_standard_input() {
    use std::io::Write as _;
    let dir = scratch("ingest");
    let db_url = format!("sqlite://{}?mode=rwc", dir.join("herald.db").display());
    let config = write_config(&dir, &db_url, 2525);
    let (outbox, send_id) = enqueue(&db_url, 1).await;
    let id: i64 = sqlx::query_scalar("SELECT id FROM herald_outbox WHERE send_id = $1")
        .bind(send_id)
        .fetch_one(outbox.pool())
        .await
        .unwrap();
    let tracker =
        herald::message::Tracker::new(b"0123456789abcdef0123456789abcdef", "https://t.herald.test")
            .unwrap();
    let verp = tracker.verp_address(
        herald::message::MessageRef {
            account: 1,
            message: id as u64,
        },
        "bounces.herald.test",
    );
    let dsn = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../crates/eventlog/tests/data/inbound/postfix-user-unknown.eml"),
    )
    .unwrap()
    .replace("{VERP}", &verp);
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald-worker"))
        .args(["--config"])
        .arg(&config)
        .arg("ingest")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dsn.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("\"events\":[\"hard_bounce\"]"), "{stdout}");
    // What it recorded is what `classify` says: the class and the reason.
    let printed: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(printed["kind"], "dsn");
    assert_eq!(printed["recipients"][0]["class"], "hard");
    assert_eq!(printed["recipients"][0]["reason"], "user_unknown");
    let recorded: Option<String> =
        sqlx::query_scalar("SELECT reason FROM herald_events WHERE kind = 'hard_bounce'")
            .fetch_one(outbox.pool())
            .await
            .unwrap();
    assert_eq!(recorded.as_deref(), Some("user_unknown"));
    let reason: String = sqlx::query_scalar(
        "SELECT reason FROM herald_suppressions WHERE email = 'r0@example.test'",
    )
    .fetch_one(outbox.pool())
    .await
    .unwrap();
    assert_eq!(reason, "blocklist");
}

/// `herald-worker classify` needs no configuration: run where there is none,
/// with a configuration path that does not exist.
fn classify(sample: &str) -> serde_json::Value {
    use std::io::Write as _;
    let dir = scratch("classify");
    let raw = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../crates/eventlog/tests/data/bounces")
            .join(sample),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald-worker"))
        .args(["--config", "/nonexistent/herald.toml", "classify"])
        .current_dir(&dir)
        .env_remove("HERALD_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&raw).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "one JSON object: {text}");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn classify_prints_each_recipient_in_report_order_without_a_configuration() {
    let v = classify("flufl-bounce/smtp32_04.txt");
    assert_eq!(v["kind"], "dsn");
    let recipients = v["recipients"].as_array().unwrap();
    let got: Vec<(&str, &str, &str)> = recipients
        .iter()
        .map(|r| {
            (
                r["address"].as_str().unwrap(),
                r["class"].as_str().unwrap(),
                r["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("after_another@example.net", "hard", "user_unknown"),
            ("one_bad_address@example.net", "hard", "user_unknown"),
        ]
    );
    for r in recipients {
        for field in [
            "address",
            "class",
            "reason",
            "status",
            "action",
            "diagnostic",
        ] {
            assert!(r.get(field).is_some(), "{field} in {r}");
        }
        assert_eq!(r["action"], "failed");
        assert!(
            r["diagnostic"]
                .as_str()
                .unwrap()
                .contains("Addressee unknown")
        );
    }
}

#[test]
fn classify_names_complaints_auto_replies_and_other_mail() {
    assert_eq!(
        classify("bounce-email/bounce-auto-respond.eml")["kind"],
        "complaint"
    );
    assert_eq!(classify("baunsu/auto_earthlink.txt")["kind"], "autoreply");
    let other = classify("baunsu/ordinary_gmail.txt");
    assert_eq!(other["kind"], "other");
    assert_eq!(other["recipients"], serde_json::json!([]));
}
