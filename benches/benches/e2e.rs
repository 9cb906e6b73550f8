//! End-to-end delivery benchmark (issue: sending): 10,000 messages of the 10 KB,
//! 20-link newsletter, RSA-2048 DKIM, throttle off, from the outbox to
//! Postfix's smtp-sink on loopback, on SQLite and on PostgreSQL.
//!
//! Run: `cargo bench -p herald-benches --bench e2e` (needs smtp-sink, PostgreSQL
//! at $HERALD_TEST_POSTGRES or postgres://postgres@127.0.0.1:5432/test, openssl).
//! Reports messages per second, the process's peak RSS during delivery, outbox
//! bytes per recipient, and the ratio of throughput to `openssl speed -multi 2
//! rsa2048` signs per second measured in the same run.

#![allow(clippy::unwrap_used, missing_docs)] // a benchmark harness: failures abort the run

use chrono::Utc;
use herald::Herald;
use herald::clock::SystemClock;
use herald::config::Config;
use herald::message::{Mailbox, SendKind, SenderIdentity};
use herald::schedule::{NewRecipient, NewSend, NoSuppression, When};
use herald::worker::{self, Stats};
use herald_benches::{compiled, person};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const N: usize = 10_000;

fn tool(name: &str) -> String {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin"] {
        let p = format!("{dir}/{name}");
        if std::path::Path::new(&p).exists() {
            return p;
        }
    }
    name.to_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn sink(port: u16) -> Child {
    let mut cmd = Command::new(tool("smtp-sink"));
    cmd.args(["-u", "nobody", "-m", "256"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("1024")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = cmd.spawn().expect("smtp-sink (apt-get install postfix)");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmHWM:")
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn openssl_rsa2048_signs_per_second() -> f64 {
    let out = Command::new("openssl")
        .args(["speed", "-multi", "2", "-seconds", "3", "rsa2048"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with("rsa 2048 bits") || l.starts_with("rsa  2048 bits"))
        .and_then(|l| l.split_whitespace().nth(5).and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

fn config(db_url: &str, port: u16) -> Config {
    let mut c = herald_benches::smtp_config(db_url, port, "bench", 64, "");
    // E2E_FILE_DIR=/dev/shm/x: write .eml files instead (isolates the SMTP leg).
    if let Ok(dir) = std::env::var("E2E_FILE_DIR") {
        c.transport = herald::transport::TransportConfig::File { dir: dir.into() };
    }
    c
}

async fn storage_bytes(herald: &Herald) -> i64 {
    match herald.outbox.backend() {
        herald::schedule::Backend::Sqlite => {
            let pages: i64 = sqlx::query_scalar("SELECT page_count FROM pragma_page_count()").fetch_one(herald.outbox.pool()).await.unwrap();
            let size: i64 = sqlx::query_scalar("SELECT page_size FROM pragma_page_size()").fetch_one(herald.outbox.pool()).await.unwrap();
            pages * size
        }
        herald::schedule::Backend::Postgres => sqlx::query_scalar("SELECT (pg_total_relation_size('herald_outbox') + pg_total_relation_size('herald_sends'))::BIGINT")
            .fetch_one(herald.outbox.pool())
            .await
            .unwrap(),
    }
}

async fn run(label: &str, db_url: &str) {
    let port = free_port();
    let mut sink = sink(port);
    let herald = Arc::new(
        Herald::build(config(db_url, port), Arc::new(SystemClock))
            .await
            .unwrap(),
    );
    let template = compiled();
    let recipients: Vec<NewRecipient> = (0..N as u64)
        .map(|i| NewRecipient {
            to: Mailbox::new(
                Some(&format!("Person {i}")),
                &format!("person{i}@example.org"),
            )
            .unwrap(),
            values: template.resolve(&person(i)).unwrap(),
            person: None,
        })
        .collect();
    let before = storage_bytes(&herald).await;
    let now = Utc::now();
    let send = NewSend {
        account: 1,
        kind: SendKind::Mass,
        template,
        sender: SenderIdentity {
            user: Mailbox::new(Some("Søren"), "soren@shop.example").unwrap(),
            domain_verified: false,
        },
        campaign: Some(herald::message::CampaignId(1)),
        when: When::At(now),
        subject: "News".into(),
        attachments: vec![],
    };
    herald
        .outbox
        .enqueue(send, recipients, &NoSuppression, now)
        .await
        .unwrap();
    if herald.outbox.backend() == herald::schedule::Backend::Postgres {
        sqlx::query("VACUUM ANALYZE herald_outbox")
            .execute(herald.outbox.pool())
            .await
            .unwrap();
    }
    let per_recipient = (storage_bytes(&herald).await - before) as f64 / N as f64;
    let _ = std::fs::write("/proc/self/clear_refs", "5"); // reset the peak RSS
    let stats = Arc::new(Stats::default());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let task = tokio::spawn(worker::run(
        Arc::clone(&herald),
        async move {
            let _ = rx.await;
        },
        Arc::clone(&stats),
    ));
    while stats.done() < N as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let _ = tx.send(());
    task.await.unwrap().unwrap();
    let peak_mb = vm_hwm_kb() as f64 / 1024.0;
    let delivered = stats.delivered.load(std::sync::atomic::Ordering::Relaxed);
    let _ = sink.kill();
    let _ = sink.wait();
    let signs = openssl_rsa2048_signs_per_second();
    let rate = N as f64 / elapsed;
    println!(
        "e2e {label:<10} {N} messages in {elapsed:.2} s = {rate:.0} msg/s; delivered {delivered}; peak RSS {peak_mb:.1} MB; outbox {per_recipient:.0} B/recipient; openssl -multi 2 rsa2048 {signs:.0} sign/s; ratio {:.2}",
        rate / signs
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("e2e: benchmark");
        return;
    }
    herald_benches::on_both_databases("e2e", |label, url| async move { run(label, &url).await });
}
