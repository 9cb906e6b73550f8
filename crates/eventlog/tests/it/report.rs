//! Reports: typed filters, bound parameters, person fields, CSV, report actions.

use crate::both;
use crate::db::TestDb;
use chrono::{DateTime, Duration, TimeZone, Utc};
use herald_eventlog::*;
use herald_schedule::{Backend, SendingRules};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).single().unwrap()
}

async fn log(db: &TestDb) -> EventLog {
    let outbox = db.outbox(SendingRules::default()).await;
    let backend = if db.url.starts_with("sqlite") {
        Backend::Sqlite
    } else {
        Backend::Postgres
    };
    let log = EventLog::new(outbox.pool().clone(), backend, 50_000);
    log.migrate().await.unwrap();
    log
}

/// 60 events of account 1 over 60 hours: kinds in turn, campaigns 1-3,
/// persons p0-p9, labels "Link n"; and 5 events of account 2.
async fn seed(log: &EventLog) {
    let kinds = [EventKind::Delivered, EventKind::Open, EventKind::Click];
    let mut events = Vec::new();
    for i in 0..60i64 {
        let mut e = NewEvent::new(
            kinds[(i % 3) as usize],
            t0() + Duration::hours(i),
            1,
            &format!("P{}@Example.test", i % 10),
        );
        e.message = Some(i);
        e.campaign = Some(herald_message::CampaignId(1 + i % 3));
        e.person = Some(format!("p{}", i % 10));
        e.label = Some(format!("Link {}", i % 4));
        e.user_agent = Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0".into());
        e.since_delivery_secs = Some(600);
        events.push(e);
    }
    for i in 0..5 {
        let mut e = NewEvent::new(EventKind::Click, t0(), 2, "other@tenant.test");
        e.person = Some(format!("p{i}"));
        e.campaign = Some(herald_message::CampaignId(1));
        events.push(e);
    }
    log.ingest(&events).await.unwrap();
    let persons: Vec<PersonRecord> = (0..10)
        .map(|i| PersonRecord {
            id: format!("p{i}"),
            fields: vec![
                (
                    Namespace::Person,
                    "city".into(),
                    if i < 5 {
                        "Aarhus".into()
                    } else {
                        "Odense".into()
                    },
                ),
                (
                    Namespace::Organisation,
                    "name".into(),
                    format!("Firm {}", i % 2),
                ),
            ],
        })
        .collect();
    log.upsert_persons(1, &persons).await.unwrap();
}

both!(filters_sort_paginate_and_count, |db: TestDb| async move {
    let log = log(&db).await;
    seed(&log).await;
    let q = ReportQuery {
        filters: vec![
            Filter::Kinds {
                kinds: vec![EventKind::Click],
            },
            Filter::Equals {
                field: EventField::Campaign,
                value: Value::Int(3),
            },
            Filter::PersonEquals {
                namespace: Namespace::Person,
                field: "city".into(),
                value: "Aarhus".into(),
            },
        ],
        ..ReportQuery::default()
    };
    // Clicks are i % 3 == 2; campaign 3 is i % 3 == 2 too; Aarhus is person i % 10 < 5.
    let expected: Vec<i64> = (0..60).rev().filter(|i| i % 3 == 2 && i % 10 < 5).collect();
    let got: Vec<i64> = log
        .report(1, &q)
        .await
        .unwrap()
        .iter()
        .map(|e| e.message.unwrap())
        .collect();
    assert_eq!(got, expected);
    assert_eq!(
        log.report_count(1, &q).await.unwrap(),
        expected.len() as u64
    );

    let page = ReportQuery {
        sort: Some(EventField::At),
        descending: false,
        limit: 5,
        offset: 10,
        ..ReportQuery::default()
    };
    let got: Vec<i64> = log
        .report(1, &page)
        .await
        .unwrap()
        .iter()
        .map(|e| e.message.unwrap())
        .collect();
    assert_eq!(got, vec![10, 11, 12, 13, 14]);

    let window = ReportQuery {
        filters: vec![Filter::Between {
            from: t0() + Duration::hours(5),
            to: t0() + Duration::hours(8),
        }],
        ..ReportQuery::default()
    };
    assert_eq!(log.report_count(1, &window).await.unwrap(), 3);
    let contains = ReportQuery {
        filters: vec![Filter::Contains {
            field: EventField::Recipient,
            value: "P3@EXAMPLE".into(),
        }],
        ..ReportQuery::default()
    };
    assert_eq!(
        log.report_count(1, &contains).await.unwrap(),
        6,
        "contains ignores case"
    );
    let org = ReportQuery {
        filters: vec![Filter::PersonContains {
            namespace: Namespace::Organisation,
            field: "name".into(),
            value: "firm 1".into(),
        }],
        ..ReportQuery::default()
    };
    assert_eq!(log.report_count(1, &org).await.unwrap(), 30);
    let one_of = ReportQuery {
        filters: vec![Filter::OneOf {
            field: EventField::Label,
            values: vec![Value::Text("Link 0".into()), Value::Text("Link 1".into())],
        }],
        ..ReportQuery::default()
    };
    assert_eq!(log.report_count(1, &one_of).await.unwrap(), 30);
    assert!(
        log.report(
            1,
            &ReportQuery {
                filters: vec![Filter::Equals {
                    field: EventField::Campaign,
                    value: Value::Text("1 OR 1=1".into())
                }],
                ..ReportQuery::default()
            }
        )
        .await
        .is_err(),
        "text for a numeric field is refused"
    );
    assert_eq!(
        log.report_count(2, &ReportQuery::default()).await.unwrap(),
        5,
        "account 2 sees its own only"
    );
});

both!(csv_export_and_report_actions, |db: TestDb| async move {
    let log = log(&db).await;
    seed(&log).await;
    let q = ReportQuery {
        filters: vec![Filter::Equals {
            field: EventField::Person,
            value: Value::Text("p1".into()),
        }],
        limit: 2,
        ..ReportQuery::default()
    };
    let csv = log.report_csv(1, &q).await.unwrap();
    // Read back by an independent CSV parser (Python's csv module), row by row.
    let rows = parse_csv_with_python(&csv);
    assert_eq!(rows.len(), 3, "{csv}");
    assert_eq!(
        rows[0],
        "id,kind,at,message,campaign,recipient,person,link,label,ip,user_agent,reply,reason,bot,origin,browser,os,device,country,city"
            .split(',')
            .collect::<Vec<_>>()
    );
    let column = |name: &str| rows[0].iter().position(|c| c == name).unwrap();
    for row in &rows[1..] {
        assert_eq!(
            row.len(),
            rows[0].len(),
            "every row has a cell per column: {row:?}"
        );
        assert_eq!(row[column("recipient")], "p1@example.test");
        assert_eq!(row[column("person")], "p1");
        assert!(row[column("label")].starts_with("Link "), "{row:?}");
        assert!(
            ["true", "false"].contains(&row[column("bot")].as_str()),
            "{row:?}"
        );
        assert!(
            ["person", "prefetch", "bot"].contains(&row[column("origin")].as_str()),
            "{row:?}"
        );
    }

    let clickers = ReportQuery {
        filters: vec![
            Filter::Kinds {
                kinds: vec![EventKind::Click],
            },
            Filter::Equals {
                field: EventField::Label,
                value: Value::Text("Link 2".into()),
            },
        ],
        ..ReportQuery::default()
    };
    let persons = log.report_persons(1, &clickers).await.unwrap();
    // Clicks: i % 3 == 2; Link 2: i % 4 == 2 → i ∈ {2, 14, 26, 38, 50} → persons p2, p4, p6, p8, p0.
    assert_eq!(persons, vec!["p0", "p2", "p4", "p6", "p8"]);
    assert_eq!(
        log.update_report_persons(
            1,
            &clickers,
            Namespace::Custom,
            "segment",
            "spring clickers"
        )
        .await
        .unwrap(),
        5
    );
    let segment = ReportQuery {
        filters: vec![Filter::PersonEquals {
            namespace: Namespace::Custom,
            field: "segment".into(),
            value: "spring clickers".into(),
        }],
        ..ReportQuery::default()
    };
    assert_eq!(log.report_persons(1, &segment).await.unwrap(), persons);
    assert!(
        log.report_persons(2, &segment).await.unwrap().is_empty(),
        "another account's persons are untouched"
    );
});

both!(
    hostile_filter_strings_match_only_what_they_say,
    |db: TestDb| async move {
        let log = log(&db).await;
        let mut runner = TestRunner::deterministic();
        let strategy =
            proptest::string::string_regex("[a-zA-Z0-9 '\";%_\\\\()=*/-]{0,12}").unwrap();
        let mut labels: Vec<String> = [
            "' OR '1'='1",
            "'; DROP TABLE herald_events; --",
            "%",
            "_",
            "\\",
            "a%b",
            "a_b",
            "\" OR \"\"=\"",
            "1) OR (1=1",
            "",
            "Robert'); DROP TABLE students;--",
            "50% off",
            "x_y",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        for _ in 0..60 {
            labels.push(strategy.new_tree(&mut runner).unwrap().current());
        }
        let events: Vec<NewEvent> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let mut e = NewEvent::new(EventKind::Click, t0(), 1, "a@b.test");
                e.label = Some(l.clone());
                e.message = Some(i as i64);
                e.user_agent = Some("Mozilla/5.0 (X11) Firefox/1".into());
                e
            })
            .collect();
        log.ingest(&events).await.unwrap();
        let mut other = NewEvent::new(EventKind::Click, t0(), 2, "z@b.test");
        other.label = Some("' OR '1'='1".into());
        log.ingest(&[other]).await.unwrap();
        for probe in &labels {
            let eq = ReportQuery {
                filters: vec![Filter::Equals {
                    field: EventField::Label,
                    value: Value::Text(probe.clone()),
                }],
                limit: 10_000,
                ..ReportQuery::default()
            };
            let got: Vec<i64> = log
                .report(1, &eq)
                .await
                .unwrap()
                .iter()
                .map(|e| e.message.unwrap())
                .rev()
                .collect();
            let want: Vec<i64> = labels
                .iter()
                .enumerate()
                .filter(|(_, l)| *l == probe)
                .map(|(i, _)| i as i64)
                .collect();
            assert_eq!(got, want, "equals {probe:?}");
            let co = ReportQuery {
                filters: vec![Filter::Contains {
                    field: EventField::Label,
                    value: probe.clone(),
                }],
                limit: 10_000,
                ..ReportQuery::default()
            };
            let got: Vec<i64> = log
                .report(1, &co)
                .await
                .unwrap()
                .iter()
                .map(|e| e.message.unwrap())
                .rev()
                .collect();
            let want: Vec<i64> = labels
                .iter()
                .enumerate()
                .filter(|(_, l)| l.to_lowercase().contains(&probe.to_lowercase()))
                .map(|(i, _)| i as i64)
                .collect();
            assert_eq!(got, want, "contains {probe:?}");
        }
        assert_eq!(
            log.report_count(2, &ReportQuery::default()).await.unwrap(),
            1
        );
    }
);

/// Rows of `csv` as Python's `csv` module reads them.
fn parse_csv_with_python(csv: &str) -> Vec<Vec<String>> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("python3")
        .args([
            "-c",
            "import csv, json, sys; print(json.dumps(list(csv.reader(sys.stdin))))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (installed by .ci/run)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(csv.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

// Issue 10 §2: person filters all hold, whether on one field or several; the
// persons are one set per filter, intersected.
both!(person_filters_all_hold, |db: TestDb| async move {
    let log = log(&db).await;
    seed(&log).await;
    let person = |namespace, field: &str, value: &str, exact: bool| {
        if exact {
            Filter::PersonEquals {
                namespace,
                field: field.into(),
                value: value.into(),
            }
        } else {
            Filter::PersonContains {
                namespace,
                field: field.into(),
                value: value.into(),
            }
        }
    };
    // (filters, distinct persons expected)
    let cases: Vec<(Vec<Filter>, Vec<&str>)> = vec![
        (
            vec![person(Namespace::Person, "city", "aar", false)],
            vec!["p0", "p1", "p2", "p3", "p4"],
        ),
        (
            vec![
                person(Namespace::Person, "city", "aar", false),
                person(Namespace::Organisation, "name", "Firm 1", true),
            ],
            vec!["p1", "p3"],
        ),
        (
            vec![
                person(Namespace::Person, "city", "AAR", false),
                person(Namespace::Person, "city", "hus", false),
            ],
            vec!["p0", "p1", "p2", "p3", "p4"],
        ),
        (
            vec![
                person(Namespace::Person, "city", "aar", false),
                person(Namespace::Person, "city", "ode", false),
            ],
            vec![],
        ),
        (
            vec![
                person(Namespace::Organisation, "name", "firm", false),
                Filter::Equals {
                    field: EventField::Person,
                    value: Value::Text("p7".into()),
                },
            ],
            vec!["p7"],
        ),
    ];
    for (filters, expected) in cases {
        let q = ReportQuery {
            filters: filters.clone(),
            ..ReportQuery::default()
        };
        assert_eq!(
            log.report_persons(1, &q).await.unwrap(),
            expected,
            "{filters:?}"
        );
        assert_eq!(
            log.report_count(1, &q).await.unwrap(),
            6 * expected.len() as u64,
            "{filters:?}"
        );
    }
});

// Issue 10 §2: a report over one of its bounds is refused naming the part at
// fault and the bound, before any query runs.
both!(
    reports_over_their_bounds_are_refused,
    |db: TestDb| async move {
        let limits = ReportLimits {
            max_filters: 3,
            max_value_chars: 10,
            max_values: 4,
            timeout_ms: 5_000,
        };
        let log = log(&db).await.with_report_limits(limits);
        seed(&log).await;
        let contains = |v: &str| Filter::Contains {
            field: EventField::Recipient,
            value: v.into(),
        };
        let texts = |n: usize| {
            (0..n)
                .map(|i| Value::Text(i.to_string()))
                .collect::<Vec<_>>()
        };
        // (filters, the field named, the bound's words)
        let cases: Vec<(Vec<Filter>, &str, &str)> = vec![
            (vec![contains("a"); 4], "filters", "at most 3 filters"),
            (
                vec![contains("a"), contains(&"x".repeat(11))],
                "filters[1].value",
                "at most 10 characters",
            ),
            (
                vec![Filter::Equals {
                    field: EventField::Label,
                    value: Value::Text("é".repeat(11)),
                }],
                "filters[0].value",
                "at most 10 characters",
            ),
            (
                vec![Filter::OneOf {
                    field: EventField::Label,
                    values: texts(5),
                }],
                "filters[0].values",
                "at most 4 values",
            ),
            (
                vec![Filter::OneOf {
                    field: EventField::Label,
                    values: vec![Value::Text("y".repeat(11))],
                }],
                "filters[0].values[0]",
                "at most 10 characters",
            ),
            (
                vec![Filter::Kinds {
                    kinds: vec![EventKind::Open; 5],
                }],
                "filters[0].kinds",
                "at most 4 kinds",
            ),
            (
                vec![Filter::PersonContains {
                    namespace: Namespace::Person,
                    field: "f".repeat(11),
                    value: "a".into(),
                }],
                "filters[0].field",
                "at most 10 characters",
            ),
            (
                vec![Filter::PersonEquals {
                    namespace: Namespace::Person,
                    field: "city".into(),
                    value: "z".repeat(11),
                }],
                "filters[0].value",
                "at most 10 characters",
            ),
        ];
        for (filters, field, rule) in cases {
            let q = ReportQuery {
                filters: filters.clone(),
                ..ReportQuery::default()
            };
            for result in [
                log.report(1, &q).await.map(|_| ()),
                log.report_count(1, &q).await.map(|_| ()),
                log.report_persons(1, &q).await.map(|_| ()),
                log.report_csv(1, &q).await.map(|_| ()),
            ] {
                match result {
                    Err(Error::Limit { field: f, rule: r }) => {
                        assert_eq!(f, field, "{filters:?}");
                        assert!(r.contains(rule), "{r} for {filters:?}");
                    }
                    other => panic!("{filters:?}: {other:?}"),
                }
            }
        }
        // At the bounds, the report runs.
        let q = ReportQuery {
            filters: vec![
                contains(&"x".repeat(10)),
                contains("a"),
                Filter::OneOf {
                    field: EventField::Label,
                    values: texts(4),
                },
            ],
            ..ReportQuery::default()
        };
        assert_eq!(log.report_count(1, &q).await.unwrap(), 0);
    }
);

// Issue 10 §2: a report query that runs past the time limit is stopped with
// `TimedOut` (PostgreSQL cancels it; on SQLite the wait is cut short).
both!(
    a_report_past_its_time_limit_is_stopped,
    |db: TestDb| async move {
        let log = log(&db).await;
        // 100,000 events in one statement.
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
         INSERT INTO herald_events (account, kind, at, recipient, person)
         SELECT 1, 'open', i, 'r' || i || '@example.test', 'p' || (i % 1000) FROM n",
        )
        .execute(log.pool())
        .await
        .unwrap();
        let q = ReportQuery {
            filters: (0..20)
                .map(|i| Filter::Contains {
                    field: EventField::Recipient,
                    value: format!("{i}@example"),
                })
                .collect(),
            ..ReportQuery::default()
        };
        // Within the default limit the report answers (nothing matches all 20).
        assert_eq!(log.report_count(1, &q).await.unwrap(), 0);
        let hurried = log.clone().with_report_limits(ReportLimits {
            timeout_ms: 1,
            ..ReportLimits::default()
        });
        match hurried.report_count(1, &q).await {
            Err(Error::TimedOut { ms: 1 }) => {}
            other => panic!("expected a time-out: {other:?}"),
        }
    }
);
