//! Many workers, one throttle (issue 13), on PostgreSQL: delivery rate with
//! one worker and with three (three `Herald` instances, each with its own
//! pools and worker id, in one process: the coordination between them is the
//! database's, as between processes), unthrottled; the cost per message of the
//! shared throttle (claims through GCRA rows that never hold anything back vs
//! no throttle); and the throttle's accuracy over 10 minutes of simulated time
//! with three outboxes claiming at once.
//!
//! Each worker has 12 slots a lane (so up to 24 connections: three workers stay
//! under PostgreSQL's default of 100).
//!
//! Run: `cargo bench -p herald-benches --bench workers` (needs smtp-sink and
//! PostgreSQL at $HERALD_TEST_POSTGRES or postgres://postgres@127.0.0.1:5432/test).

#![allow(clippy::unwrap_used, missing_docs)] // a benchmark harness: failures abort the run

use chrono::{Duration as ChronoDuration, Utc};
use herald::Herald;
use herald::clock::SystemClock;
use herald::config::Config;
use herald::message::{Mailbox, SendKind, SenderIdentity};
use herald::schedule::{
    Lane, NewRecipient, NewSend, NoSuppression, Outbox, Outcome, SendingRules, ThrottleConfig, When,
};
use herald::worker::{self, Stats};
use herald_benches::{compiled, person};
use sqlx::Connection;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const N: usize = 6_000;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn sink(port: u16) -> Child {
    let tool = ["/usr/sbin/smtp-sink", "/usr/bin/smtp-sink"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("smtp-sink");
    let child = Command::new(tool)
        .args(["-u", "nobody", "-m", "256"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("1024")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("smtp-sink (apt-get install postfix)");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn config(db_url: &str, port: u16, worker: &str, throttle: &str) -> Config {
    herald_benches::smtp_config(db_url, port, worker, 12, throttle)
}

struct Db {
    admin: String,
    name: String,
    url: String,
}

async fn fresh_db(tag: &str) -> Db {
    let admin = std::env::var("HERALD_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let tag: String = tag
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let name = format!("herald_workers_{tag}_{}", std::process::id());
    let mut conn = sqlx::AnyConnection::connect(&admin).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    Db {
        url: format!("{base}/{name}"),
        admin,
        name,
    }
}

async fn drop_db(db: Db) {
    let mut conn = sqlx::AnyConnection::connect(&db.admin).await.unwrap();
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db.name))
        .execute(&mut conn)
        .await;
}

async fn enqueue(outbox: &Outbox, n: usize) {
    let template = compiled();
    let recipients: Vec<NewRecipient> = (0..n as u64)
        .map(|i| NewRecipient {
            to: Mailbox::new(None, &format!("person{i}@example.org")).unwrap(),
            values: template.resolve(&person(i)).unwrap(),
            person: None,
        })
        .collect();
    let now = Utc::now();
    let send = NewSend {
        account: 1,
        kind: SendKind::Mass,
        template,
        sender: SenderIdentity {
            user: Mailbox::new(None, "soren@shop.example").unwrap(),
            domain_verified: false,
        },
        campaign: None,
        when: When::At(now),
        subject: "News".into(),
        attachments: vec![],
    };
    outbox
        .enqueue(send, recipients, &NoSuppression, now)
        .await
        .unwrap();
    sqlx::query("VACUUM ANALYZE herald_outbox")
        .execute(outbox.pool())
        .await
        .unwrap();
}

/// Delivers N messages with `workers` worker instances; returns msg/s.
async fn deliver(tag: &str, workers: usize, throttle: &str) -> f64 {
    let db = fresh_db(tag).await;
    let port = free_port();
    let mut sink = sink(port);
    let mut instances = Vec::new();
    for w in 0..workers {
        instances.push(Arc::new(
            Herald::build(
                config(&db.url, port, &format!("w{w}"), throttle),
                Arc::new(SystemClock),
            )
            .await
            .unwrap(),
        ));
    }
    enqueue(&instances[0].outbox, N).await;
    let stats: Vec<Arc<Stats>> = (0..workers).map(|_| Arc::new(Stats::default())).collect();
    let mut stops = Vec::new();
    let mut tasks = Vec::new();
    let started = Instant::now();
    for (h, s) in instances.iter().zip(&stats) {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        stops.push(tx);
        tasks.push(tokio::spawn(worker::run(
            Arc::clone(h),
            async move {
                let _ = rx.await;
            },
            Arc::clone(s),
        )));
    }
    while stats.iter().map(|s| s.done()).sum::<u64>() < N as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    for tx in stops {
        let _ = tx.send(());
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let per_worker: Vec<u64> = stats.iter().map(|s| s.done()).collect();
    let _ = sink.kill();
    let _ = sink.wait();
    drop(instances);
    drop_db(db).await;
    let rate = N as f64 / elapsed;
    println!(
        "workers {tag:<22} {workers} worker(s): {N} messages in {elapsed:.2} s = {rate:.0} msg/s (per worker {per_worker:?})"
    );
    rate
}

/// Three outboxes claim at once over `minutes` of simulated time at `rate`;
/// returns the messages claimed.
async fn accuracy(rate: &str, minutes: i64) -> usize {
    let db = fresh_db("accuracy").await;
    let throttle = ThrottleConfig {
        per_account: Some(rate.parse().unwrap()),
        global: None,
        sms: None,
    };
    let rules = SendingRules {
        mass_min_lead_minutes: 0,
        ..SendingRules::default()
    };
    let mut outboxes = Vec::new();
    for _ in 0..3 {
        let o = Outbox::connect(&db.url, 4, rules)
            .await
            .unwrap()
            .with_throttle(throttle);
        o.migrate().await.unwrap();
        outboxes.push(o);
    }
    enqueue(&outboxes[0], 7_000).await;
    let start = Utc::now();
    let end = start + ChronoDuration::minutes(minutes);
    let mut now = start;
    let mut claimed = 0usize;
    let mut step = 0i64;
    while now < end {
        let mut set = tokio::task::JoinSet::new();
        for (w, o) in outboxes.iter().enumerate() {
            let o = o.clone();
            set.spawn(async move {
                let c = o
                    .claim_batch(
                        &format!("w{w}"),
                        Lane::Mass,
                        16,
                        ChronoDuration::seconds(3600),
                        now,
                    )
                    .await
                    .unwrap();
                for m in &c.messages {
                    o.record(
                        &format!("w{w}"),
                        m.id,
                        &Outcome::Delivered {
                            reply: "250".into(),
                        },
                        now,
                    )
                    .await
                    .unwrap();
                }
                (c.messages.len(), c.throttled_until)
            });
        }
        let results = set.join_all().await;
        claimed += results.iter().map(|(n, _)| n).sum::<usize>();
        let wake = results.iter().filter_map(|(_, t)| *t).min();
        // Irregular steps of 13 to 71 ms, or sooner when the throttle says so.
        step += 1;
        let next = now + ChronoDuration::milliseconds(13 + (step * 37) % 59);
        now = match wake {
            Some(w) if w > now && w < next => w,
            _ => next,
        };
    }
    drop(outboxes);
    drop_db(db).await;
    claimed
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("workers: benchmark");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        sqlx::any::install_default_drivers();
        // Never holding anything back: 1,000,000 a second with a burst of 1,000.
        let open = "per_account = \"1000000/1s,burst=1000\"";
        let one = deliver("unthrottled", 1, "").await;
        let three = deliver("unthrottled", 3, "").await;
        let gated = deliver("shared-throttle", 1, open).await;
        let three_gated = deliver("shared-throttle", 3, open).await;
        let one_again = deliver("unthrottled (again)", 1, "").await;
        let base = (one + one_again) / 2.0;
        println!(
            "workers: 3 workers / 1 worker = {:.2} unthrottled, {:.2} through the shared throttle",
            three / base,
            three_gated / gated
        );
        println!(
            "workers: the shared throttle costs {:.1} µs per message ({:.0} vs {:.0} msg/s with 1 worker)",
            (1.0 / gated - 1.0 / base) * 1e6,
            gated,
            base
        );
        let n = accuracy("600/1m", 10).await;
        println!(
            "workers: accuracy: 3 outboxes claimed {n} in 10 minutes of simulated time at 600/1m: {:+.2}% of 6,000",
            (n as f64 / 6_000.0 - 1.0) * 100.0
        );
    });
}
