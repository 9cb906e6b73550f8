//! Webhook delivery throughput (issue 14): 50,000 events recorded for an
//! account with one endpoint (every kind), each owed in the transaction that
//! records it, then delivered signed, in batches of 100, to a local axum
//! receiver that answers 200; on SQLite and on PostgreSQL. Also the cost the
//! endpoint adds to ingestion.
//!
//! Run: `cargo bench -p herald-benches --bench webhooks`.

#![allow(clippy::unwrap_used, missing_docs)] // a benchmark harness: failures abort the run

use herald::Herald;
use herald::clock::SystemClock;
use herald::eventlog::{EventKind, NewEvent};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

const EVENTS: usize = 50_000;

fn events(account: u64, n: usize) -> Vec<NewEvent> {
    let now = chrono::Utc::now();
    (0..n)
        .map(|i| {
            let mut e = NewEvent::new(
                EventKind::Delivered,
                now,
                account,
                &format!("p{i}@example.org"),
            );
            e.message = Some(i as i64 + 1);
            e
        })
        .collect()
}

async fn ingest(herald: &Herald, account: u64) -> f64 {
    let all = events(account, EVENTS);
    let started = Instant::now();
    for chunk in all.chunks(1_000) {
        herald.events.ingest(chunk).await.unwrap();
    }
    EVENTS as f64 / started.elapsed().as_secs_f64()
}

async fn run(label: &str, db_url: &str) {
    // The receiver: counts the events of each batch (a JSON array).
    let received = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |body: axum::body::Bytes| {
            let counter = Arc::clone(&counter);
            async move {
                let n = body.iter().filter(|b| **b == b'{').count() / 2; // event + its data
                counter.fetch_add(n as u64, Ordering::Relaxed);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let dir = std::env::temp_dir().join(format!("herald-webhooks-bench-{}", std::process::id()));
    let mut c = herald_benches::smtp_config(db_url, 25, "bench", 16, "");
    c.transport = herald::transport::TransportConfig::File { dir };
    c.webhooks.allow_http = true;
    c.webhooks.allow_private = true;
    let herald = Arc::new(Herald::build(c, Arc::new(SystemClock)).await.unwrap());
    // Ingestion without an endpoint (account 2), then with one (account 1).
    let bare = ingest(&herald, 2).await;
    herald::app::webhooks::create(&herald, 1, &format!("http://127.0.0.1:{port}/hooks"), &[])
        .await
        .unwrap();
    let owed = ingest(&herald, 1).await;
    let started = Instant::now();
    let mut delivered = 0;
    while delivered < EVENTS as u64 {
        delivered += herald::webhooks::deliver_due(&herald).await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "webhooks {label:<10} ingest {bare:.0} events/s without an endpoint, {owed:.0} with one; delivered {delivered} events ({} at the receiver) in {elapsed:.2} s = {:.0} events/s, signed, batches of 100",
        received.load(Ordering::Relaxed),
        delivered as f64 / elapsed
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("webhooks: benchmark");
        return;
    }
    herald_benches::on_both_databases(
        "webhooks",
        |label, url| async move { run(label, &url).await },
    );
}
