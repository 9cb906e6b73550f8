//! SMS throughput (issue 14): 20,000 texts of one send queued in the outbox
//! (`Outbox::enqueue_sms`), then claimed, posted to a local axum gateway that
//! answers 202, and recorded with their events (`sms_processed`, `sms_sent`)
//! by `herald::sms::deliver_due` rounds; unthrottled, then through the
//! shared SMS rate set far above what is reached (the GCRA row locked and
//! moved on in every claim); on SQLite and on PostgreSQL.
//!
//! Run: `cargo bench -p herald-benches --bench sms`.

#![allow(clippy::unwrap_used, missing_docs)] // a benchmark harness: failures abort the run

use herald::Herald;
use herald::clock::SystemClock;
use herald::message::sms::SmsEncoding;
use herald::schedule::{NewSmsSend, NewText, SmsText, When};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

const TEXTS: usize = 20_000;

async fn run_one(label: &str, db_url: &str, port: u16, rate: Option<&str>) {
    let dir = std::env::temp_dir().join(format!("herald-sms-bench-{}", std::process::id()));
    let mut c = herald_benches::smtp_config(db_url, 25, "bench", 16, "");
    c.transport = herald::transport::TransportConfig::File { dir };
    c.rules.mass_min_lead_minutes = 0;
    c.sms.gateway_url = Some(format!("http://127.0.0.1:{port}/send"));
    c.sms.concurrency = 32;
    c.throttle.sms = rate.map(|r| r.parse().unwrap());
    let herald = Arc::new(Herald::build(c, Arc::new(SystemClock)).await.unwrap());
    let texts: Vec<NewText> = (0..TEXTS)
        .map(|i| NewText {
            to: format!("+4550{i:06}"),
            person: Some(format!("p{i}")),
            text: SmsText {
                from: "Shop".into(),
                text: format!("Hi P{i}, the spring sale starts today."),
                segments: 1,
                encoding: SmsEncoding::Gsm7,
            },
        })
        .collect();
    let started = Instant::now();
    let now = chrono::Utc::now();
    herald
        .outbox
        .enqueue_sms(
            NewSmsSend {
                account: 1,
                campaign: None,
                when: When::At(now),
                text: "Hi {{person.first_name}}, the spring sale starts today.".into(),
                from: "Shop".into(),
                user: None,
                skipped: 0,
            },
            texts,
            now,
        )
        .await
        .unwrap();
    let queued = TEXTS as f64 / started.elapsed().as_secs_f64();
    let stats = Arc::new(herald::worker::Stats::default());
    let started = Instant::now();
    while stats.sms_sent.load(Ordering::Relaxed) < TEXTS as u64 {
        herald::sms::deliver_due(&herald, &stats).await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let events = herald.events.totals(1).await.unwrap().sms;
    assert_eq!(events.sent, TEXTS as u64, "every text recorded as sent");
    println!(
        "sms {label:<10} {:<40} queued {queued:.0} texts/s; sent {TEXTS} in {elapsed:.2} s = {:.0} texts/s (posted, recorded, events)",
        rate.map_or("unthrottled".to_owned(), |r| format!("throttle.sms = {r}")),
        TEXTS as f64 / elapsed
    );
}

async fn run(label: &str, db_url: &str) {
    // The gateway: counts texts, answers 202 with an id.
    let received = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/send",
        axum::routing::post(move || {
            let counter = Arc::clone(&counter);
            async move {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                (
                    axum::http::StatusCode::ACCEPTED,
                    format!("{{\"id\": \"msg-{n}\"}}"),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    run_one(label, db_url, port, None).await;
}

async fn run_throttled(label: &str, db_url: &str) {
    let app = axum::Router::new().route(
        "/send",
        axum::routing::post(|| async { (axum::http::StatusCode::ACCEPTED, "{}") }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    run_one(label, db_url, port, Some("1000000/1s,burst=1000")).await;
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("sms: benchmark");
        return;
    }
    herald_benches::on_both_databases("sms", |label, url| async move { run(label, &url).await });
    herald_benches::on_both_databases("sms_throttled", |label, url| async move {
        run_throttled(label, &url).await
    });
}
