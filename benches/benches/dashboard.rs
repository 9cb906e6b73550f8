//! Dashboard benchmark (issue: the dashboard): server time per page, p50 and
//! p95, for one account with 1,000 campaigns, 200,000 events and 100,000
//! persons, on SQLite and on PostgreSQL. Pages are requested through the
//! router in process (tower's oneshot, the session cookie set), so the figure
//! is Herald's time: the use case, its queries and the rendering.
//!
//! Run: `cargo bench -p herald-benches --bench dashboard`
//! (`HERALD_BENCH_REQUESTS`, default 50 per page).

#![allow(clippy::unwrap_used, missing_docs)] // a benchmark harness: failures abort the run

use chrono::{Duration, Utc};
use herald::Herald;
use herald::clock::SystemClock;
use herald::config::Config;
use herald_eventlog::{EventKind, Namespace, NewEvent, PersonRecord};
use std::sync::Arc;
use std::time::Instant;
use tower::ServiceExt;

const CAMPAIGNS: usize = 1_000;
const EVENTS: usize = 200_000;
const PERSONS: usize = 100_000;

fn config(db_url: &str, dir: &std::path::Path) -> Config {
    let key = format!(
        "{}/../crates/auth/tests/data/rsa-pkcs1.pem",
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
base_url = "https://t.herald.example"
secret = "0123456789abcdef0123456789abcdef"
[dkim.platform]
domain = "herald.example"
selector = "s1"
key_file = "{key}"
[transport]
kind = "file"
dir = "{}"
"#,
        dir.display()
    ))
    .unwrap();
    // Every event stays: the worst case for the event log pages.
    c.events.retention = EVENTS + 1_000;
    c
}

fn quantiles(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(|a, b| a.total_cmp(b));
    let median = samples[samples.len() / 2];
    let p95 = samples[(samples.len() * 95 / 100).min(samples.len() - 1)];
    (median, p95)
}

async fn seed(h: &Herald) -> (u64, i64) {
    let (account, _) = herald::app::accounts::open(
        h,
        &herald::accounts::NewAccount {
            name: "Bench".into(),
            plan: "plus".into(),
            ..Default::default()
        },
        Some("bench"),
    )
    .await
    .unwrap();
    let account = account.id;
    for chunk in 0..PERSONS / 1_000 {
        let persons: Vec<PersonRecord> = (0..1_000)
            .map(|i| {
                let n = chunk * 1_000 + i;
                PersonRecord {
                    id: format!("p{n}"),
                    fields: vec![
                        (
                            Namespace::Person,
                            "email".into(),
                            format!("p{n}@example.org"),
                        ),
                        (
                            Namespace::Person,
                            "first_name".into(),
                            format!("Person {n}"),
                        ),
                    ],
                }
            })
            .collect();
        h.events.upsert_persons(account, &persons).await.unwrap();
    }
    let start = Utc::now() - Duration::days(60);
    let mut campaigns = Vec::with_capacity(CAMPAIGNS);
    for c in 0..CAMPAIGNS {
        campaigns.push(
            h.events
                .campaign_for(
                    account,
                    &format!("Newsletter {c}"),
                    &format!("News number {c}"),
                    start + Duration::hours(c as i64),
                )
                .await
                .unwrap(),
        );
    }
    let per_campaign = EVENTS / CAMPAIGNS;
    let kinds = [
        EventKind::Processed,
        EventKind::Delivered,
        EventKind::Open,
        EventKind::Click,
    ];
    let mut batch = Vec::with_capacity(2_000);
    for (c, id) in campaigns.iter().enumerate() {
        for i in 0..per_campaign {
            let n = (c * per_campaign + i) % PERSONS;
            let kind = kinds[i % kinds.len()];
            let mut e = NewEvent::new(
                kind,
                start + Duration::hours(c as i64) + Duration::minutes(i as i64),
                account,
                &format!("p{n}@example.org"),
            );
            e.campaign = Some(*id);
            e.person = Some(format!("p{n}"));
            e.message = Some((c * per_campaign + i / kinds.len()) as i64);
            if matches!(kind, EventKind::Open | EventKind::Click) {
                e.user_agent = Some("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36".into());
                e.since_delivery_secs = Some(600);
                e.ip = Some("198.51.100.7".into());
            }
            if kind == EventKind::Click {
                e.link = Some((i % 20) as u16);
                e.label = Some(format!("Offer {}", i % 20));
            }
            batch.push(e);
            if batch.len() == 2_000 {
                h.events.ingest(&batch).await.unwrap();
                batch.clear();
            }
        }
    }
    h.events.ingest(&batch).await.unwrap();
    (account, campaigns[CAMPAIGNS / 2].0)
}

async fn run(label: &'static str, url: String) {
    let dir = std::env::temp_dir().join(format!("herald-dash-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let h = Arc::new(
        Herald::build(config(&url, &dir), Arc::new(SystemClock))
            .await
            .unwrap(),
    );
    let seeding = Instant::now();
    let (account, campaign) = seed(&h).await;
    if h.outbox.backend() == herald::schedule::Backend::Postgres {
        // Fresh statistics, as autovacuum would give a table this size.
        sqlx::query("ANALYZE")
            .execute(h.outbox.pool())
            .await
            .unwrap();
    }
    println!(
        "{label}: seeded {CAMPAIGNS} campaigns, {EVENTS} events, {PERSONS} persons in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    let link = herald::app::dashboard::create_link(&h, account, "Bench", None)
        .await
        .unwrap();
    let token = link.url.rsplit('/').next().unwrap().to_owned();
    let signed = herald::app::dashboard::sign_in(&h, &token).await.unwrap();
    let cookie = format!("herald_session={}", signed.token);
    let router = herald::http::router(Arc::clone(&h));
    let requests: usize = std::env::var("HERALD_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let pages = [
        ("status", "/dashboard".to_owned()),
        ("campaigns", "/dashboard/campaigns".to_owned()),
        (
            "campaigns, page 20",
            "/dashboard/campaigns?page=20".to_owned(),
        ),
        (
            "campaigns, search",
            "/dashboard/campaigns?q=number%2077".to_owned(),
        ),
        (
            "campaigns, sent tab",
            "/dashboard/campaigns?tab=sent".to_owned(),
        ),
        ("campaign", format!("/dashboard/campaigns/{campaign}")),
        (
            "campaign, clicked",
            format!("/dashboard/campaigns/{campaign}?list=clicked"),
        ),
        (
            "compare (3)",
            format!(
                "/dashboard/compare?id={campaign}&id={}&id={}",
                campaign - 1,
                campaign + 1
            ),
        ),
        ("scheduled", "/dashboard/scheduled".to_owned()),
        ("events", "/dashboard/events".to_owned()),
        (
            "events, clicks, 100",
            "/dashboard/events?kind=click&per_page=100".to_owned(),
        ),
        (
            "events, an address",
            "/dashboard/events?recipient=p4242%40example.org".to_owned(),
        ),
        (
            "events, part of one",
            "/dashboard/events?recipient=p4242%40".to_owned(),
        ),
        ("events, page 500", "/dashboard/events?page=500".to_owned()),
        ("person", "/dashboard/persons/p4242".to_owned()),
    ];
    println!("{label}: page                     p50 ms   p95 ms");
    for (name, uri) in &pages {
        let mut samples = Vec::with_capacity(requests);
        for i in 0..requests + 5 {
            let req = axum::http::Request::builder()
                .uri(uri)
                .header("cookie", &cookie)
                .body(axum::body::Body::empty())
                .unwrap();
            let t = Instant::now();
            let resp = router.clone().oneshot(req).await.unwrap();
            let status = resp.status();
            let body = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .unwrap()
                .to_bytes();
            let ms = t.elapsed().as_secs_f64() * 1_000.0;
            assert_eq!(status, 200, "{name}: {}", String::from_utf8_lossy(&body));
            if i >= 5 {
                samples.push(ms);
            }
        }
        let (p50, p95) = quantiles(samples);
        println!("{label}: {name:<24} {p50:>7.2}  {p95:>7.2}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    herald_benches::on_both_databases("dashboard", run);
}
