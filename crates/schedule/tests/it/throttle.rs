//! The shared throttle, sites and deleted sends in the claim (issue 13), on
//! both backends; on PostgreSQL with three outboxes (three workers' pools)
//! claiming at once.

use crate::both;
use crate::db::TestDb;
use chrono::{DateTime, Duration, TimeZone, Utc};
use herald_message::{
    FieldSchema, Mailbox, MergeData, SendKind, SenderIdentity, Template, TrackingOptions,
};
use herald_schedule::*;
use std::collections::HashSet;

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0)
        .single()
        .unwrap()
}

/// Enqueues a send of `kind` for `account` to `addresses`, due at once.
async fn enqueue(outbox: &Outbox, kind: SendKind, account: u64, addresses: &[String]) -> i64 {
    let template = Template {
        subject: "Hi".into(),
        html: "<p>Hi {{person.first_name}}</p>".into(),
        text: String::new(),
    }
    .compile(
        &FieldSchema::standard(),
        &TrackingOptions {
            unsubscribe_link: kind == SendKind::Mass,
            ..TrackingOptions::default()
        },
    )
    .unwrap();
    let recipients = addresses
        .iter()
        .map(|a| NewRecipient {
            to: Mailbox::new(None, a).unwrap(),
            values: template.resolve(&MergeData::default()).unwrap(),
            person: None,
        })
        .collect();
    let send = NewSend {
        account,
        kind,
        template,
        sender: SenderIdentity {
            user: Mailbox::new(None, "ulla@shop.test").unwrap(),
            domain_verified: false,
        },
        campaign: None,
        when: When::At(start()),
        subject: "Hi".into(),
        attachments: vec![],
    };
    outbox
        .enqueue(send, recipients, &NoSuppression, start())
        .await
        .unwrap()
        .send_id
}

fn addresses(n: usize, domain: &str) -> Vec<String> {
    (0..n).map(|i| format!("p{i}@{domain}")).collect()
}

fn rules() -> SendingRules {
    SendingRules {
        mass_min_lead_minutes: 0,
        ..SendingRules::default()
    }
}

/// The outboxes that claim at once: three pools on PostgreSQL (three workers);
/// one on SQLite, where one process writes.
async fn workers(db: &TestDb, throttle: ThrottleConfig) -> Vec<Outbox> {
    let first = db.outbox(rules()).await.with_throttle(throttle);
    let n = if first.backend() == Backend::Postgres {
        3
    } else {
        1
    };
    let mut out = vec![first];
    for _ in 1..n {
        out.push(db.outbox(rules()).await.with_throttle(throttle));
    }
    out
}

/// Claims in simulated time from `0` to `seconds`, all outboxes at once at
/// every step, from `from` seconds; returns the claim time of every message taken (ms from start).
async fn claim_for(outboxes: &[Outbox], lane: Lane, from: i64, seconds: i64) -> Vec<i64> {
    let mut taken = Vec::new();
    let mut ids = HashSet::new();
    let mut t = from * 1000;
    let mut step = 0;
    while t <= (from + seconds) * 1000 {
        let now = start() + Duration::milliseconds(t);
        let claims = futures_claims(outboxes, lane, now).await;
        // A worker told to wait asks again then, as the delivery loop does.
        let wake = claims
            .iter()
            .filter_map(|c| c.throttled_until)
            .min()
            .map(|at| (at - start()).num_milliseconds());
        for (w, c) in claims.into_iter().enumerate() {
            for m in c.messages {
                assert!(ids.insert(m.id), "message {} claimed twice", m.id);
                taken.push(t);
                // Delivered at once, as a worker would.
                outboxes[w]
                    .record(
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
        }
        // Irregular steps, 13 to 71 ms (or sooner when a rate says so): the
        // throttle must not depend on them.
        step += 1;
        let next = t + 13 + (step * 37) % 59;
        t = wake.filter(|w| *w > t).map_or(next, |w| w.min(next));
    }
    taken.sort_unstable();
    taken
}

async fn futures_claims(outboxes: &[Outbox], lane: Lane, now: DateTime<Utc>) -> Vec<Claims> {
    let mut set = tokio::task::JoinSet::new();
    for (w, o) in outboxes.iter().enumerate() {
        let o = o.clone();
        set.spawn(async move {
            (
                w,
                o.claim_batch(&format!("w{w}"), lane, 16, Duration::seconds(300), now)
                    .await
                    .unwrap(),
            )
        });
    }
    let mut out: Vec<(usize, Claims)> = set.join_all().await;
    out.sort_by_key(|(w, _)| *w);
    out.into_iter().map(|(_, c)| c).collect()
}

/// The most messages in any window of `ms` milliseconds.
fn most_in_window(times: &[i64], ms: i64) -> usize {
    (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|t| **t < times[i] + ms)
                .count()
        })
        .max()
        .unwrap_or(0)
}

both!(
    workers_claiming_at_once_take_the_shared_rate_and_no_more,
    |db: TestDb| async move {
        // 600 a minute (one every 100 ms), burst 5.
        let throttle = ThrottleConfig {
            per_account: Some("600/1m,burst=5".parse().unwrap()),
            global: None,
            sms: None,
        };
        let outboxes = workers(&db, throttle).await;
        enqueue(&outboxes[0], SendKind::Mass, 1, &addresses(1_000, "a.test")).await;
        let times = claim_for(&outboxes, Lane::Mass, 0, 60).await;
        let window = most_in_window(&times, 10_000);
        println!(
            "{} workers: {} claimed in 60 s of simulated time, at most {window} in any 10 s",
            outboxes.len(),
            times.len()
        );
        // rate × window + burst, over any window, across all workers together.
        assert!(window <= 100 + 5, "{window} in 10 s");
        assert!(
            times.len() <= 600 + 5 && times.len() >= 588,
            "{} in 60 s: within 2% of 600",
            times.len()
        );
    }
);

both!(
    the_global_rate_holds_every_lane_and_the_account_rate_only_mass_mail,
    |db: TestDb| async move {
        let throttle = ThrottleConfig {
            per_account: Some("60/1m".parse().unwrap()),
            global: Some("1200/1m".parse().unwrap()),
            sms: None,
        };
        let outboxes = workers(&db, throttle).await;
        enqueue(&outboxes[0], SendKind::Mass, 1, &addresses(100, "a.test")).await;
        enqueue(
            &outboxes[0],
            SendKind::Individual,
            1,
            &addresses(1_000, "b.test"),
        )
        .await;
        // Individual mail: only the global rate, 20 a second.
        let individual = claim_for(&outboxes, Lane::Individual, 0, 10).await;
        assert!(
            (196..=201).contains(&individual.len()),
            "{} individual in 10 s",
            individual.len()
        );
        let mass = claim_for(&outboxes, Lane::Mass, 20, 10).await;
        assert!(
            (10..=11).contains(&mass.len()),
            "{} mass in 10 s",
            mass.len()
        );
    }
);

both!(
    a_throttled_claim_says_when_to_ask_again,
    |db: TestDb| async move {
        let outbox = db.outbox(rules()).await.with_throttle(ThrottleConfig {
            per_account: Some("10/1s".parse().unwrap()),
            global: None,
            sms: None,
        });
        enqueue(&outbox, SendKind::Mass, 7, &addresses(5, "a.test")).await;
        enqueue(&outbox, SendKind::Mass, 8, &addresses(5, "a.test")).await;
        let c = outbox
            .claim_batch("w", Lane::Mass, 10, Duration::seconds(300), start())
            .await
            .unwrap();
        // One of each account now (burst 1); the rest waits 100 ms, unclaimed.
        let accounts: Vec<u64> = c.messages.iter().map(|m| m.account).collect();
        assert_eq!(accounts.len(), 2, "{accounts:?}");
        assert!(accounts.contains(&7) && accounts.contains(&8));
        assert_eq!(
            c.throttled_until,
            Some(start() + Duration::milliseconds(100))
        );
        let queued: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM herald_outbox WHERE state = 'queued'")
                .fetch_one(outbox.pool())
                .await
                .unwrap();
        assert_eq!(queued, 8, "what the rate holds back stays queued");
        let later = outbox
            .claim_batch(
                "w",
                Lane::Mass,
                10,
                Duration::seconds(300),
                start() + Duration::milliseconds(100),
            )
            .await
            .unwrap();
        assert_eq!(later.messages.len(), 2);
    }
);

both!(
    a_suspended_site_is_passed_over_and_its_rate_is_shared,
    |db: TestDb| async move {
        let outbox = db.outbox(rules()).await;
        let sites = outbox.sites();
        let now = start();
        let limits = SiteLimits {
            rate: Some(Gcra::new(1_000_000, 1)), // one a second
            max_connections: 2,
        };
        for (domain, site) in [("slow.test", "slow"), ("down.test", "down")] {
            sites
                .record(
                    domain,
                    &NewSite {
                        name: site,
                        provider: None,
                        hosts: &[format!("mx.{domain}")],
                        limits: &limits,
                    },
                    now + Duration::hours(1),
                    now,
                )
                .await
                .unwrap();
        }
        sites
            .act(
                "down",
                SiteAction::Suspend {
                    until: now + Duration::seconds(60),
                },
                SiteReply {
                    at: now,
                    code: Some(421),
                    text: "4.7.0 too many connections".into(),
                    action: "too_many_connections: suspend 60 s".into(),
                },
                now,
            )
            .await
            .unwrap();
        let mut all = addresses(5, "down.test");
        all.extend(addresses(5, "slow.test"));
        all.extend(addresses(5, "fast.test"));
        enqueue(&outbox, SendKind::Individual, 1, &all).await;
        let c = outbox
            .claim_batch("w", Lane::Individual, 20, Duration::seconds(300), now)
            .await
            .unwrap();
        let domains: Vec<String> = c
            .messages
            .iter()
            .map(|m| recipient_domain(m.to.address.as_str()))
            .collect();
        assert_eq!(
            domains.iter().filter(|d| *d == "fast.test").count(),
            5,
            "an unknown site is not held: {domains:?}"
        );
        assert_eq!(
            domains.iter().filter(|d| *d == "slow.test").count(),
            1,
            "{domains:?}"
        );
        assert!(!domains.iter().any(|d| d == "down.test"), "{domains:?}");
        let slow = c.messages.iter().find(|m| m.site.is_some()).unwrap();
        assert_eq!(slow.site.as_deref(), Some("slow"));
        // 30 s later: the slow site has let one a second through; the
        // suspended one still nothing.
        let c = outbox
            .claim_batch(
                "w",
                Lane::Individual,
                20,
                Duration::seconds(300),
                now + Duration::seconds(30),
            )
            .await
            .unwrap();
        assert_eq!(c.messages.len(), 1, "{:?}", c.messages);
        // After the suspension the site's mail goes again, at its rate.
        let c = outbox
            .claim_batch(
                "w",
                Lane::Individual,
                20,
                Duration::seconds(300),
                now + Duration::seconds(61),
            )
            .await
            .unwrap();
        let domains: Vec<String> = c
            .messages
            .iter()
            .map(|m| recipient_domain(m.to.address.as_str()))
            .collect();
        assert_eq!(
            domains.iter().filter(|d| *d == "down.test").count(),
            1,
            "{domains:?}"
        );
        let state = sites.get("down").await.unwrap().unwrap();
        assert!(state.suspended(now) && !state.suspended(now + Duration::seconds(61)));
        assert_eq!(state.recent.len(), 1);
        assert_eq!(state.domains, vec!["down.test".to_owned()]);
    }
);

both!(
    a_send_deleted_in_flight_is_never_claimed_again,
    |db: TestDb| async move {
        let outbox = db.outbox(rules()).await;
        let now = start();
        let send = enqueue(&outbox, SendKind::Individual, 1, &addresses(5, "a.test")).await;
        let claimed = outbox
            .claim("w", Lane::Individual, 3, Duration::seconds(60), now)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 3);
        assert_eq!(outbox.delete(1, send, now).await.unwrap(), 2);
        // The worker defers one (its outcome is still recorded: cancelled) …
        assert!(
            outbox
                .record(
                    "w",
                    claimed[0].id,
                    &Outcome::Deferred {
                        retry_at: now + Duration::seconds(10),
                        reply: "451".into()
                    },
                    now
                )
                .await
                .unwrap()
        );
        // … and dies holding the other two: after the lease nobody takes them.
        let later = now + Duration::seconds(120);
        assert!(
            outbox
                .claim("w2", Lane::Individual, 10, Duration::seconds(60), later)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(outbox.sweep_cancelled(later).await.unwrap(), 2);
        let counts = outbox.counts(send).await.unwrap();
        assert_eq!(counts.get(&State::Cancelled), Some(&5), "{counts:?}");
    }
);
