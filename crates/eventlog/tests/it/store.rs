//! The log's storage, the same on SQLite and PostgreSQL.

use crate::both;
use crate::db::TestDb;
use chrono::{DateTime, Duration, TimeZone, Utc};
use herald_eventlog::*;
use herald_message::{
    CampaignId, FieldSchema, Mailbox, SendKind, SenderIdentity, Template, TrackingOptions,
};
use herald_schedule::{Backend, NewRecipient, NewSend, Outbox, SendingRules, SkipReason, When};
use std::collections::HashMap;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0)
        .single()
        .unwrap()
}

async fn log(db: &TestDb, retention: usize) -> (Outbox, EventLog) {
    let outbox = db.outbox(SendingRules::default()).await;
    let backend = if db.url.starts_with("sqlite") {
        Backend::Sqlite
    } else {
        Backend::Postgres
    };
    let log = EventLog::new(outbox.pool().clone(), backend, retention);
    log.migrate().await.unwrap();
    (outbox, log)
}

/// A send of account 1 from `u@shop.test`, in no campaign.
fn new_send(template: &herald_message::CompiledTemplate, kind: SendKind, when: When) -> NewSend {
    NewSend {
        account: 1,
        kind,
        template: template.clone(),
        sender: SenderIdentity {
            user: Mailbox::new(None, "u@shop.test").unwrap(),
            domain_verified: false,
        },
        campaign: None,
        when,
        subject: "s".into(),
        attachments: vec![],
    }
}

fn ev(kind: EventKind, account: u64, message: i64, to: &str) -> NewEvent {
    let mut e = NewEvent::new(kind, now(), account, to);
    e.message = Some(message);
    e
}

const PERSON_UA: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15";

fn human(mut e: NewEvent) -> NewEvent {
    e.user_agent = Some(PERSON_UA.into());
    e.since_delivery_secs = Some(300);
    e
}

both!(
    totals_count_people_s_opens_and_clicks_and_prefetches_and_bots_apart,
    |db: TestDb| async move {
        let (_o, log) = log(&db, 50_000).await;
        let mut events = Vec::new();
        for m in 1..=4 {
            events.push(ev(EventKind::Processed, 1, m, &format!("p{m}@x.test")));
            events.push(ev(EventKind::Delivered, 1, m, &format!("p{m}@x.test")));
        }
        let sent = events.len();
        events.push(human(ev(EventKind::Open, 1, 1, "p1@x.test")));
        events.push(human(ev(EventKind::Open, 1, 1, "p1@x.test")));
        // Gmail's proxy fetches when the person opens: a person's open.
        let mut gmail = ev(EventKind::Open, 1, 2, "p2@x.test");
        gmail.user_agent = Some("Mozilla/5.0 (via ggpht.com GoogleImageProxy)".into());
        events.push(gmail);
        // Apple Mail Privacy Protection prefetches at delivery.
        let mut apple = ev(EventKind::Open, 1, 3, "p3@x.test");
        apple.user_agent = Some("Mozilla/5.0".into());
        apple.ip = Some("17.58.63.1".into());
        events.push(apple);
        // No User-Agent at all: a bot.
        events.push(ev(EventKind::Open, 1, 4, "p4@x.test"));
        events.push(human(ev(EventKind::Click, 1, 1, "p1@x.test")));
        let mut scanner = human(ev(EventKind::Click, 1, 3, "p3@x.test"));
        scanner.since_delivery_secs = Some(0);
        events.push(scanner);
        log.ingest(&events[..sent]).await.unwrap();
        log.ingest(&events[sent..]).await.unwrap();
        let t = log.totals(1).await.unwrap();
        assert_eq!(
            (
                t.processed,
                t.delivered,
                t.opened,
                t.clicked,
                t.prefetch_opens,
                t.bot_opens,
                t.bot_clicks
            ),
            (4, 4, 2, 1, 1, 1, 1)
        );
        assert_eq!(
            log.totals(2).await.unwrap(),
            Totals::default(),
            "another account"
        );
        let opens = log.events(1, Some(EventKind::Open), 10, 0).await.unwrap();
        assert_eq!(opens.len(), 5);
        let mut origins: Vec<Origin> = opens.iter().map(|e| e.origin).collect();
        origins.sort_by_key(|o| o.stored());
        assert_eq!(
            origins,
            vec![
                Origin::Person,
                Origin::Person,
                Origin::Person,
                Origin::Bot,
                Origin::Prefetch
            ]
        );
        assert_eq!(
            opens.iter().filter(|e| e.bot).count(),
            2,
            "bot = not a person"
        );
        assert!(
            log.events(2, None, 10, 0).await.unwrap().is_empty(),
            "tenants are isolated"
        );
    }
);

both!(
    retention_prunes_the_oldest_and_totals_never_shrink,
    |db: TestDb| async move {
        let (_o, log) = log(&db, 100).await;
        for batch in 0..3 {
            let events: Vec<NewEvent> = (0..100)
                .map(|i| ev(EventKind::Delivered, 1, batch * 100 + i, "a@x.test"))
                .collect();
            log.ingest(&events).await.unwrap();
        }
        log.ingest(&[ev(EventKind::Delivered, 2, 1, "b@x.test")])
            .await
            .unwrap();
        let kept = log.events(1, None, 1_000, 0).await.unwrap();
        assert_eq!(kept.len(), 100);
        assert_eq!(
            kept.last().unwrap().message,
            Some(200),
            "the oldest were pruned first"
        );
        assert_eq!(kept.first().unwrap().message, Some(299));
        assert_eq!(
            log.totals(1).await.unwrap().delivered,
            300,
            "totals keep counting"
        );
        assert_eq!(
            log.events(2, None, 10, 0).await.unwrap().len(),
            1,
            "another account keeps its own"
        );
    }
);

both!(
    bounces_complaints_and_unsubscribes_feed_the_suppression_hook,
    |db: TestDb| async move {
        let (outbox, log) = log(&db, 50_000).await;
        let mut hard = ev(EventKind::HardBounce, 1, 1, "Gone@X.test");
        hard.reply = Some("550 5.1.1 user unknown".into());
        log.ingest(&[
            hard,
            ev(EventKind::SpamComplaint, 1, 2, "angry@x.test"),
            ev(EventKind::Unsubscribe, 1, 3, "bye@x.test"),
            ev(EventKind::SoftBounce, 1, 4, "full@x.test"),
        ])
        .await
        .unwrap();
        assert_eq!(
            log.suppressions(1, "gone@x.test").await.unwrap(),
            vec![Suppressed::Blocklist]
        );
        assert!(
            log.suppressions(1, "full@x.test").await.unwrap().is_empty(),
            "a soft bounce suppresses nothing"
        );
        assert!(
            log.suppressions(2, "gone@x.test").await.unwrap().is_empty(),
            "per account"
        );
        let t = log.totals(1).await.unwrap();
        assert_eq!((t.bounced, t.complaints, t.unsubscribed), (2, 1, 1));

        let template = Template {
            subject: "s".into(),
            html: String::new(),
            text: "t {{links.unsubscribe}}".into(),
        }
        .compile(&FieldSchema::standard(), &TrackingOptions::default())
        .unwrap();
        let recipients = || -> Vec<NewRecipient> {
            ["gone@x.test", "angry@x.test", "bye@x.test", "ok@x.test"]
                .iter()
                .map(|a| NewRecipient {
                    to: Mailbox::new(None, a).unwrap(),
                    values: Default::default(),
                    person: None,
                })
                .collect()
        };
        let send = |kind, when| new_send(&template, kind, when);
        let mass = outbox
            .enqueue(
                send(SendKind::Mass, When::At(now() + Duration::minutes(10))),
                recipients(),
                &log,
                now(),
            )
            .await
            .unwrap();
        assert_eq!(mass.queued, 1);
        assert_eq!(
            mass.skipped,
            HashMap::from([(SkipReason::Blocklisted, 1), (SkipReason::Unsubscribed, 2)])
        );
        let one = outbox
            .enqueue(
                send(SendKind::Individual, When::Now),
                recipients(),
                &log,
                now(),
            )
            .await
            .unwrap();
        assert_eq!(
            (one.queued, one.skipped.get(&SkipReason::Blocklisted)),
            (3, Some(&1)),
            "individual mail skips only the blocklist"
        );

        // Marking the person's email OK in the CRM (its fields) does not lift it.
        log.upsert_persons(
            1,
            &[PersonRecord {
                id: "gone".into(),
                fields: vec![(Namespace::Person, "email_bouncing".into(), "false".into())],
            }],
        )
        .await
        .unwrap();
        assert_eq!(
            log.suppressions(1, "gone@x.test").await.unwrap(),
            vec![Suppressed::Blocklist]
        );
        // Only an explicit unblock lifts the blocklist.
        assert!(log.unblock(1, "GONE@x.test").await.unwrap());
        assert!(!log.unblock(1, "gone@x.test").await.unwrap());
        assert!(log.suppressions(1, "gone@x.test").await.unwrap().is_empty());
    }
);

both!(
    campaigns_collect_their_sends_and_rates,
    |db: TestDb| async move {
        let (_o, log) = log(&db, 50_000).await;
        let name = individual_campaign_name(now(), chrono_tz::Europe::Copenhagen);
        let a = log
            .campaign_for(1, &name, "First subject", now())
            .await
            .unwrap();
        let b = log
            .campaign_for(1, &name, "Second subject", now())
            .await
            .unwrap();
        assert_eq!(a, b, "a name given again adds to that campaign");
        let other = log.campaign_for(2, &name, "x", now()).await.unwrap();
        assert_ne!(a, other, "names are per account");
        let mut events = Vec::new();
        for m in 0..4 {
            for kind in [EventKind::Processed, EventKind::Delivered] {
                let mut e = ev(kind, 1, m, "p@x.test");
                e.campaign = Some(a);
                events.push(e);
            }
        }
        for (kind, m) in [
            (EventKind::Open, 0),
            (EventKind::Open, 0),
            (EventKind::Open, 1),
            (EventKind::Click, 1),
        ] {
            let mut e = human(ev(kind, 1, m, "p@x.test"));
            e.campaign = Some(a);
            events.push(e);
        }
        log.ingest(&events).await.unwrap();
        let list = log.campaigns(1, false).await.unwrap();
        assert_eq!(list.len(), 1);
        let c = &list[0];
        assert_eq!(
            (
                c.name.as_str(),
                c.first_subject.as_str(),
                c.emails,
                c.delivered,
                c.opened,
                c.clicked
            ),
            (name.as_str(), "First subject", 4, 4, 2, 1)
        );
        assert_eq!((c.open_rate, c.click_rate), (0.5, 0.25));
        assert!(log.mark_campaign(1, a, Some(true), None).await.unwrap());
        assert!(log.campaigns(1, false).await.unwrap()[0].starred);
        assert!(log.mark_campaign(1, a, None, Some(true)).await.unwrap());
        assert!(
            log.campaigns(1, false).await.unwrap().is_empty(),
            "archived campaigns are hidden"
        );
        assert_eq!(log.campaigns(1, true).await.unwrap().len(), 1);
        assert!(
            !log.mark_campaign(2, a, Some(true), None).await.unwrap(),
            "another account's campaign"
        );
    }
);

both!(click_history_per_person, |db: TestDb| async move {
    let (_o, log) = log(&db, 50_000).await;
    let mut events = Vec::new();
    for (i, person) in ["42", "42", "7"].iter().enumerate() {
        let mut e = human(ev(EventKind::Click, 1, i as i64, "p@x.test"));
        e.person = Some((*person).into());
        e.link = Some(i as u16);
        e.label = Some(format!("Link {i}"));
        events.push(e);
    }
    let mut open = human(ev(EventKind::Open, 1, 9, "p@x.test"));
    open.person = Some("42".into());
    events.push(open);
    log.ingest(&events).await.unwrap();
    let history = log.click_history(1, "42").await.unwrap();
    assert_eq!(
        history
            .iter()
            .map(|e| e.label.clone().unwrap())
            .collect::<Vec<_>>(),
        vec!["Link 1", "Link 0"]
    );
    assert!(log.click_history(2, "42").await.unwrap().is_empty());
});

both!(
    staged_events_are_recorded_exactly_once_and_survive_a_new_log,
    |db: TestDb| async move {
        let (_o, log) = log(&db, 50_000).await;
        // Three groups, as three group commits of the tracking endpoints.
        for g in 0..3i64 {
            let group: Vec<StagedEvent> = (0..40)
                .map(|i| {
                    StagedEvent::new(&human(ev(EventKind::Click, 1, g * 100 + i, "p@x.test")))
                        .unwrap()
                })
                .collect();
            log.stage(&group).await.unwrap();
        }
        assert_eq!(log.staged().await.unwrap(), 3);
        assert_eq!(log.totals(1).await.unwrap().clicked, 0);
        // A new log on the same database (a restarted server) finds them.
        let (_o2, again) = self::log(&db, 50_000).await;
        // About `limit` events per call, in whole groups.
        assert_eq!(again.process_staged(50).await.unwrap(), 80);
        assert_eq!(again.staged().await.unwrap(), 1);
        assert_eq!(again.process_staged(1000).await.unwrap(), 40);
        assert_eq!(again.process_staged(1000).await.unwrap(), 0);
        let t = again.totals(1).await.unwrap();
        assert_eq!(t.clicked, 120, "each of 120 messages clicked once");
        let clicks = again
            .events(1, Some(EventKind::Click), 1000, 0)
            .await
            .unwrap();
        assert_eq!(clicks.len(), 120);
        // Every field survives the stage.
        let mut full = human(ev(EventKind::Click, 2, 7, "ann+\"q\"@x.test"));
        full.campaign = Some(CampaignId(3));
        full.person = Some("crm-7 ✓".into());
        full.link = Some(4);
        full.label = Some("https://shop.test/?a=1&b=\u{e9}".into());
        full.ip = Some("192.0.2.1".into());
        full.reply = Some("line\nbreak".into());
        again
            .stage(&[StagedEvent::new(&full).unwrap()])
            .await
            .unwrap();
        assert_eq!(again.process_staged(10).await.unwrap(), 1);
        let e = &again.events(2, None, 10, 0).await.unwrap()[0];
        assert_eq!(
            (
                e.kind,
                e.at,
                e.message,
                e.campaign,
                e.recipient.as_str(),
                e.person.as_deref(),
                e.link,
                e.label.as_deref(),
                e.ip.as_deref(),
                e.user_agent.as_deref(),
                e.reply.as_deref()
            ),
            (
                full.kind,
                full.at,
                full.message,
                full.campaign,
                full.recipient.as_str(),
                full.person.as_deref(),
                full.link.map(i64::from),
                full.label.as_deref(),
                full.ip.as_deref(),
                full.user_agent.as_deref(),
                full.reply.as_deref()
            )
        );
    }
);

both!(
    a_campaign_made_for_a_send_commits_or_rolls_back_with_it,
    |db: TestDb| async move {
        let (outbox, log) = log(&db, 50_000).await;
        // A mass template without an unsubscribe link: the enqueue refuses it.
        let template = Template {
            subject: "s".into(),
            html: String::new(),
            text: "t".into(),
        }
        .compile(&FieldSchema::standard(), &TrackingOptions::default())
        .unwrap();
        let send = |kind| new_send(&template, kind, When::At(now() + Duration::minutes(10)));
        let to = || {
            vec![NewRecipient {
                to: Mailbox::new(None, "a@x.test").unwrap(),
                values: Default::default(),
                person: None,
            }]
        };
        let mut tx = outbox.writer().begin().await.unwrap();
        let id = log
            .campaign_for_in(&mut tx, 1, "Refused", "s", now())
            .await
            .unwrap();
        let mut s = send(SendKind::Mass);
        s.campaign = Some(id);
        let refused = outbox.enqueue_in(&mut tx, s, to(), &log, now()).await;
        assert!(refused.is_err(), "a mass send without an unsubscribe link");
        drop(tx); // rolled back
        assert!(
            log.campaigns(1, true).await.unwrap().is_empty(),
            "no empty campaign is left behind"
        );
        let mut tx = outbox.writer().begin().await.unwrap();
        let id = log
            .campaign_for_in(&mut tx, 1, "Kept", "s", now())
            .await
            .unwrap();
        let mut s = send(SendKind::Individual);
        s.campaign = Some(id);
        let accepted = outbox
            .enqueue_in(&mut tx, s, to(), &log, now())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let campaigns = log.campaigns(1, true).await.unwrap();
        assert_eq!(campaigns.len(), 1);
        assert_eq!(campaigns[0].name, "Kept");
        assert_eq!(
            outbox.send(accepted.send_id).await.unwrap().campaign,
            Some(id)
        );
    }
);

both!(
    campaign_pages_hours_and_breakdowns,
    |db: TestDb| async move {
        let (_o, log) = log(&db, 50_000).await;
        let mut ids = Vec::new();
        for (name, subject) in [
            ("Spring", "Spring sale"),
            ("Autumn", "Autumn 50% off"),
            ("Winter", "Winter_news"),
        ] {
            ids.push(log.campaign_for(1, name, subject, now()).await.unwrap());
        }
        log.campaign_for(2, "Other", "Spring sale", now())
            .await
            .unwrap();
        log.mark_campaign(1, ids[0], Some(true), None)
            .await
            .unwrap();
        log.mark_campaign(1, ids[2], None, Some(true))
            .await
            .unwrap();
        let page = |f: CampaignFilter| {
            let log = log.clone();
            async move {
                let (rows, total) = log.campaigns_page(1, &f).await.unwrap();
                (rows.into_iter().map(|c| c.name).collect::<Vec<_>>(), total)
            }
        };
        let all = CampaignFilter {
            limit: 10,
            ..Default::default()
        };
        assert_eq!(page(all.clone()).await.1, 2);
        assert_eq!(
            page(CampaignFilter {
                starred_only: true,
                ..all.clone()
            })
            .await
            .0,
            ["Spring"]
        );
        assert_eq!(
            page(CampaignFilter {
                archived: true,
                ..all.clone()
            })
            .await
            .0,
            ["Winter"]
        );
        // Search: any case; `%` and `_` are literal.
        for (q, want) in [
            ("SPRING", vec!["Spring"]),
            ("50%", vec!["Autumn"]),
            ("_", vec![]),
        ] {
            assert_eq!(
                page(CampaignFilter {
                    search: Some(q.into()),
                    ..all.clone()
                })
                .await
                .0,
                want,
                "{q}"
            );
        }
        assert_eq!(
            page(CampaignFilter {
                only: Some(vec![]),
                ..all.clone()
            })
            .await,
            (vec![], 0)
        );
        assert_eq!(
            page(CampaignFilter {
                except: vec![ids[0]],
                ..all.clone()
            })
            .await
            .0,
            ["Autumn"]
        );
        // One per page, the total stays.
        let second = page(CampaignFilter {
            limit: 1,
            offset: 1,
            ..all.clone()
        })
        .await;
        assert_eq!(second.1, 2);
        assert_eq!(second.0.len(), 1);

        // Hours: people's opens and clicks, not bots'; two hours.
        let c = Some(ids[0]);
        let mut events = Vec::new();
        for (kind, minutes, to) in [
            (EventKind::Open, 0, "a@one.test"),
            (EventKind::Open, 10, "b@two.test"),
            (EventKind::Click, 70, "a@one.test"),
        ] {
            let mut e = human(ev(kind, 1, 1, to));
            e.at = now() + Duration::minutes(minutes);
            e.campaign = c;
            e.link = Some(0);
            e.label = Some("Shop".into());
            events.push(e);
        }
        let mut bot = ev(EventKind::Open, 1, 2, "c@one.test");
        bot.campaign = c;
        bot.user_agent = Some("curl/8.0".into());
        events.push(bot);
        let mut bounce = ev(EventKind::HardBounce, 1, 3, "d@one.test");
        bounce.campaign = c;
        bounce.reason = Some(herald_schedule::BounceReason::UserUnknown);
        events.push(bounce);
        log.ingest(&events).await.unwrap();
        let hours = log.campaign_hours(1, ids[0]).await.unwrap();
        assert_eq!(
            hours
                .iter()
                .map(|h| (h.hour, h.opens, h.clicks))
                .collect::<Vec<_>>(),
            [(now(), 2, 0), (now() + Duration::hours(1), 0, 1)]
        );
        assert!(log.campaign_hours(2, ids[0]).await.unwrap().is_empty());
        let b = log.campaign_breakdown(1, ids[0]).await.unwrap();
        assert_eq!(
            (
                b.human_opens,
                b.machine_opens,
                b.human_clicks,
                b.hard_bounces
            ),
            (2, 1, 1, 1)
        );
        assert_eq!(b.domains, [("one.test".into(), 2), ("two.test".into(), 1)]);
        assert_eq!(b.links.len(), 1);
        assert_eq!((b.links[0].clicks, b.links[0].messages), (1, 1));
        assert_eq!(b.bounce_reasons.len(), 1);
        assert_eq!(b.bounce_reasons[0].1, 1);
        // Another account sees nothing of it.
        assert_eq!(log.campaign_breakdown(2, ids[0]).await.unwrap().events, 0);
    }
);

both!(
    sms_events_are_counted_apart_from_mail_in_one_batch,
    |db: TestDb| async move {
        let (_o, log) = log(&db, 50_000).await;
        let c = log.campaign_for(1, "Spring", "s", now()).await.unwrap();
        let mut events = Vec::new();
        // Mail and texts in one batch (one insert statement of mixed rows).
        for m in 1..=3 {
            let mut e = ev(EventKind::Processed, 1, m, &format!("p{m}@x.test"));
            e.campaign = Some(c);
            events.push(e);
        }
        for m in 10..=13 {
            for kind in [EventKind::SmsProcessed, EventKind::SmsSent] {
                let mut e = ev(kind, 1, m, &format!("+45200000{m}"));
                e.campaign = Some(c);
                e.segments = Some(2);
                events.push(e);
            }
        }
        let mut d = ev(EventKind::SmsDelivered, 1, 10, "+4520000010");
        d.campaign = Some(c);
        d.cost = Some("0.0900".into());
        d.currency = Some("EUR".into());
        events.push(d);
        events.push(ev(EventKind::SmsOptOut, 1, 11, "+4520000011"));
        events.push(ev(EventKind::SmsOptOut, 1, 11, "+4520000011"));
        log.ingest(&events).await.unwrap();
        let t = log.totals(1).await.unwrap();
        assert_eq!(t.processed, 3, "mail");
        assert_eq!(
            t.sms,
            SmsTotals {
                processed: 4,
                sent: 4,
                delivered: 1,
                failed: 0,
                segments: 8,
                opted_out: 1,
            }
        );
        let campaign = log.campaign(1, c).await.unwrap().unwrap();
        assert_eq!(campaign.emails, 3);
        assert_eq!(campaign.sms.processed, 4);
        assert_eq!(campaign.sms.delivered, 1);
        assert_eq!(campaign.sms.segments, 8);
        let stored = log
            .events(1, Some(EventKind::SmsDelivered), 100, 0)
            .await
            .unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].cost.as_deref(), Some("0.0900"));
        assert_eq!(stored[0].currency.as_deref(), Some("EUR"));
        let mail = log
            .events(1, Some(EventKind::Processed), 100, 0)
            .await
            .unwrap();
        assert!(
            mail.iter()
                .all(|e| e.segments.is_none() && e.cost.is_none())
        );
        assert_eq!(
            log.sms_opted_out(1, &["+4520000011", "+4520000012"])
                .await
                .unwrap(),
            std::collections::HashSet::from(["+4520000011".to_owned()])
        );
        assert!(log.sms_opt_in(1, "+4520000011").await.unwrap());
        assert!(
            log.sms_opted_out(1, &["+4520000011"])
                .await
                .unwrap()
                .is_empty()
        );
    }
);
