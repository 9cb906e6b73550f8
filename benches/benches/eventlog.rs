//! Event-log benchmarks (issue: event log), a load harness with a report:
//! ingestion rate with retention pruning on, a report over an account's 50,000
//! events joined with 100,000 persons (p95), status totals and the list of
//! 1,000 campaigns (p95). SQLite and PostgreSQL.
//!
//! Run: `cargo bench -p herald-benches --bench eventlog`.

#![allow(clippy::unwrap_used, missing_docs)] // a benchmark harness: failures abort the run

use chrono::{Duration, TimeZone, Utc};
use herald::schedule::{Backend, Outbox, SendingRules};
use herald_eventlog::*;
use std::time::Instant;

fn p95(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(|a, b| a.total_cmp(b));
    let median = samples[samples.len() / 2];
    let p95 = samples[(samples.len() * 95 / 100).min(samples.len() - 1)];
    (median, p95)
}

const UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";

async fn run(label: &str, url: &str) {
    let outbox = Outbox::connect(url, 4, SendingRules::default())
        .await
        .unwrap();
    outbox.migrate().await.unwrap();
    let backend = outbox.backend();
    let log = EventLog::new(outbox.pool().clone(), backend, 50_000);
    log.migrate().await.unwrap();
    let t0 = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).single().unwrap();

    // 1,000 campaigns for account 1.
    let mut campaign_ids = Vec::new();
    for c in 0..1_000 {
        campaign_ids.push(
            log.campaign_for(
                1,
                &format!("Campaign {c}"),
                "Subject",
                t0 + Duration::minutes(c),
            )
            .await
            .unwrap(),
        );
    }

    // Ingestion: 200,000 events in batches of 1,000, retention 50,000 (pruning on).
    let kinds = [
        EventKind::Processed,
        EventKind::Delivered,
        EventKind::Open,
        EventKind::Click,
    ];
    let total = 200_000usize;
    let started = Instant::now();
    for batch in 0..total / 1_000 {
        let events: Vec<NewEvent> = (0..1_000)
            .map(|i| {
                let n = batch * 1_000 + i;
                let mut e = NewEvent::new(
                    kinds[n % 4],
                    t0 + Duration::seconds(n as i64),
                    1,
                    &format!("person{}@example.org", n % 100_000),
                );
                e.message = Some((n / 4) as i64);
                e.campaign = Some(campaign_ids[n % 1_000]);
                e.person = Some(format!("p{}", n % 100_000));
                if matches!(e.kind, EventKind::Open | EventKind::Click) {
                    e.user_agent = Some(UA.into());
                    e.ip = Some("192.0.2.1".into());
                    e.since_delivery_secs = Some(600);
                }
                if e.kind == EventKind::Click {
                    e.link = Some((n % 20) as u16);
                    e.label = Some(format!("https://shop.example/offer/{}", n % 20));
                }
                e
            })
            .collect();
        log.ingest(&events).await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let kept = log.report_count(1, &ReportQuery::default()).await.unwrap();
    println!(
        "eventlog {label:<10} ingest: {total} events in {secs:.2} s = {:.0} events/s (retention 50,000: {kept} kept)",
        total as f64 / secs
    );

    // 100,000 persons with 3 fields each.
    let started = Instant::now();
    for chunk in 0..100 {
        let persons: Vec<PersonRecord> = (0..1_000)
            .map(|i| {
                let n = chunk * 1_000 + i;
                PersonRecord {
                    id: format!("p{n}"),
                    fields: vec![
                        (
                            Namespace::Person,
                            "city".into(),
                            ["Aarhus", "Odense", "Aalborg", "Esbjerg", "Vejle"][n % 5].into(),
                        ),
                        (
                            Namespace::Person,
                            "title".into(),
                            format!("Title {}", n % 50),
                        ),
                        (
                            Namespace::Organisation,
                            "name".into(),
                            format!("Firm {}", n % 1000),
                        ),
                    ],
                }
            })
            .collect();
        log.upsert_persons(1, &persons).await.unwrap();
    }
    println!(
        "eventlog {label:<10} persons: 100,000 upserted in {:.2} s",
        started.elapsed().as_secs_f64()
    );

    // The report: clicks of one campaign by persons in one city, first page.
    let mut samples = Vec::new();
    let mut rows = 0;
    for i in 0..200 {
        let q = ReportQuery {
            filters: vec![
                Filter::Kinds {
                    kinds: vec![EventKind::Click],
                },
                Filter::Equals {
                    field: EventField::Campaign,
                    value: Value::Int(campaign_ids[(11 + 20 * i) % 1_000]),
                },
                Filter::PersonEquals {
                    namespace: Namespace::Person,
                    field: "city".into(),
                    value: "Odense".into(),
                },
            ],
            ..ReportQuery::default()
        };
        let started = Instant::now();
        rows = log.report(1, &q).await.unwrap().len();
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let (median, p95v) = p95(samples);
    println!(
        "eventlog {label:<10} report (kind + campaign + person field, first page; {rows} rows): median {median:.2} ms, p95 {p95v:.2} ms"
    );

    let mut samples = Vec::new();
    for _ in 0..500 {
        let started = Instant::now();
        let _ = log.totals(1).await.unwrap();
        let list = log.campaigns(1, false).await.unwrap();
        assert_eq!(list.len(), 1_000);
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let (median, p95v) = p95(samples);
    println!(
        "eventlog {label:<10} totals + list of 1,000 campaigns: median {median:.2} ms, p95 {p95v:.2} ms"
    );
    let _ = backend == Backend::Sqlite;
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("eventlog: benchmark");
        return;
    }
    herald_benches::on_both_databases(
        "evbench",
        |label, url| async move { run(label, &url).await },
    );
}
