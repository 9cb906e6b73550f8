//! Tracking endpoint under load (issue: Herald as a service): `wrk` on loopback
//! against Herald's click redirect (SQLite, every click durably recorded before
//! its 302), and in the same run against a minimal hyper server that answers
//! every request with the same 302 and records nothing (the ceiling).
//!
//! Run: `cargo bench -p herald-benches --bench tracking` (needs `wrk`:
//! `apt-get install wrk`). Reports requests per second and p99 latency of
//! both, their ratio (target ≥ 0.5), and the click events in the event log
//! against the 302 answers wrk counted (every click accounted for). Each
//! request carries its own User-Agent (a counter appended), so none is a
//! repeat of the same client's click (those are recorded once, issue 10).
//! `HERALD_BENCH_SECONDS` (default 15) and `HERALD_BENCH_CONNECTIONS` (default
//! 64) change the run.

#![allow(clippy::unwrap_used, missing_docs)] // a benchmark harness: failures abort the run

use chrono::Utc;
use herald::Herald;
use herald::clock::SystemClock;
use herald::config::Config;
use herald::message::{Mailbox, MessageRef, SendKind, SenderIdentity};
use herald::schedule::{NewRecipient, NewSend, NoSuppression, SendingRules, When};
use herald_benches::{compiled, person};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

const MESSAGES: usize = 5_000;
const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config(db_url: &str, dir: &std::path::Path) -> Config {
    let key = format!(
        "{}/../crates/auth/tests/data/ed25519.pem",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut c = Config::from_toml(&format!(
        r#"
database_url = "{db_url}"
[platform]
name = "Herald"
sender = "mailer@herald.example"
message_id_domain = "herald.example"
bounce_domain = "bounces.herald.example"
[tracking]
base_url = "http://127.0.0.1"
secret = "0123456789abcdef0123456789abcdef"
[dkim.platform]
domain = "herald.example"
selector = "s1"
key_file = "{key}"
[transport]
kind = "file"
dir = "{out}"
"#,
        out = dir.join("mail").display()
    ))
    .unwrap();
    c.rules = SendingRules {
        mass_min_lead_minutes: 0,
        batch_size: MESSAGES,
        ..SendingRules::default()
    };
    // Keep every event, so the count after the run is every click.
    c.events.retention = 100_000_000;
    c
}

struct Wrk {
    requests: u64,
    rps: f64,
    p99_ms: f64,
    non_3xx: u64,
}

fn millis(v: &str) -> f64 {
    let (n, unit) = v
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| v.split_at(i))
        .unwrap_or((v, "ms"));
    let n: f64 = n.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1000.0,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => n,
    }
}

fn wrk(port: u16, script: &std::path::Path, seconds: u64, connections: u64) -> Wrk {
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(format!("http://127.0.0.1:{port}"))
        .output()
        .expect("wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{text}");
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|r| r.trim().to_owned()))
    };
    Wrk {
        requests: text
            .lines()
            .find(|l| l.contains(" requests in "))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0),
        rps: field("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0),
        p99_ms: field("99%").map(|v| millis(&v)).unwrap_or(f64::NAN),
        non_3xx: field("Non-2xx or 3xx responses:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    }
}

/// A minimal hyper server: every request gets the same 302, nothing recorded.
async fn ceiling(listener: tokio::net::TcpListener, mut stop: tokio::sync::watch::Receiver<bool>) {
    use hyper::service::service_fn;
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r { Ok(s) => s, Err(_) => continue },
            _ = stop.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let svc = service_fn(|_req| async {
                hyper::Response::builder()
                    .status(302)
                    .header(
                        "location",
                        "https://shop.example/offer/0?utm_source=news&utm_medium=email",
                    )
                    .header(
                        "cache-control",
                        "no-store, no-cache, must-revalidate, private",
                    )
                    .body(http_body_util::Empty::<hyper::body::Bytes>::new())
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn main() {
    let seconds = env_or("HERALD_BENCH_SECONDS", 15);
    let connections = env_or("HERALD_BENCH_CONNECTIONS", 64);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("herald-bench-tracking-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.join("herald.db").display());
    let herald = rt.block_on(async {
        Arc::new(
            Herald::build(config(&db, &dir), Arc::new(SystemClock))
                .await
                .unwrap(),
        )
    });
    // One newsletter of MESSAGES recipients; one click URL per message.
    let template = compiled();
    let recipients = (0..MESSAGES as u64)
        .map(|n| NewRecipient {
            to: Mailbox::new(None, &format!("p{n}@example.com")).unwrap(),
            values: template.resolve(&person(n)).unwrap(),
            person: Some(format!("crm-{n}")),
        })
        .collect();
    let send = NewSend {
        account: 1,
        kind: SendKind::Mass,
        template: template.clone(),
        sender: SenderIdentity {
            user: Mailbox::new(Some("Shop"), "news@shop.example").unwrap(),
            domain_verified: false,
        },
        campaign: None,
        when: When::At(Utc::now() + chrono::Duration::seconds(1)),
        subject: "News".into(),
        attachments: vec![],
    };
    rt.block_on(async {
        herald
            .outbox
            .enqueue(send, recipients, &NoSuppression, Utc::now())
            .await
            .unwrap()
    });
    let ids: Vec<i64> = rt.block_on(async {
        sqlx::query_scalar("SELECT id FROM herald_outbox ORDER BY id")
            .fetch_all(herald.outbox.pool())
            .await
            .unwrap()
    });
    let mut lua = String::from("paths = {\n");
    for id in &ids {
        let url = herald.tracker.click_url(
            MessageRef {
                account: 1,
                message: *id as u64,
            },
            0,
        );
        lua.push_str(&format!(
            "  \"{}\",\n",
            url.trim_start_matches("http://127.0.0.1")
        ));
    }
    lua.push_str(&format!(
        "}}\ncounter = 0\ntag = 0\ninit = function(args)\n  math.randomseed(os.time() + math.floor(os.clock() * 1000000))\n  tag = math.random(1, 1000000000)\nend\nrequest = function()\n  counter = counter + 1\n  return wrk.format(\"GET\", paths[(counter % #paths) + 1], {{[\"User-Agent\"] = \"{BROWSER} r\" .. tag .. \".\" .. counter}})\nend\n"
    ));
    let script = dir.join("clicks.lua");
    std::fs::write(&script, lua).unwrap();

    // Herald.
    let port = free_port();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = {
        let herald = Arc::clone(&herald);
        let mut rx = stop_rx.clone();
        rt.spawn(async move {
            herald::http::serve(herald, ([127, 0, 0, 1], port).into(), async move {
                let _ = rx.changed().await;
            })
            .await
            .unwrap();
        })
    };
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let h = wrk(port, &script, seconds, connections);
    let _ = stop_tx.send(true);
    rt.block_on(server).unwrap();
    // Clicks staged during the run and not yet turned into events are
    // processed now (the recorder's task drains the stage when it stops).
    let backlog = rt.block_on(herald.events.staged()).unwrap();
    let drain = std::time::Instant::now();
    rt.block_on(async {
        while herald.events.staged().await.unwrap() > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let drained_in = drain.elapsed();
    let recorded: i64 = rt.block_on(async {
        sqlx::query_scalar("SELECT COUNT(*) FROM herald_events WHERE kind = 'click'")
            .fetch_one(herald.outbox.pool())
            .await
            .unwrap()
    });

    // The ceiling.
    let port = free_port();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))
        .unwrap();
    let task = rt.spawn(ceiling(listener, stop_rx));
    let c = wrk(port, &script, seconds, connections);
    let _ = stop_tx.send(true);
    rt.block_on(task).unwrap();

    let ratio = h.rps / c.rps;
    println!(
        "\ntracking benchmark: {seconds} s, {connections} connections, 2 wrk threads, {MESSAGES} distinct click URLs"
    );
    println!(
        "  herald (SQLite, each click recorded): {:>9.0} req/s   p99 {:>6.2} ms   {} requests, {} not 302",
        h.rps, h.p99_ms, h.requests, h.non_3xx
    );
    println!(
        "  ceiling (minimal hyper 302):          {:>9.0} req/s   p99 {:>6.2} ms   {} requests",
        c.rps, c.p99_ms, c.requests
    );
    println!(
        "  ratio {ratio:.2} (target >= 0.5); p99 {:.2} ms (target <= 10 ms)",
        h.p99_ms
    );
    println!(
        "  click events recorded: {recorded}; 302 answers counted by wrk: {}; difference {} (requests cut off by wrk's stop, at most {connections})",
        h.requests - h.non_3xx,
        recorded - (h.requests - h.non_3xx) as i64
    );
    println!(
        "  groups of clicks staged but not yet processed when the run ended: {backlog}, processed in {:.1} s after it",
        drained_in.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
