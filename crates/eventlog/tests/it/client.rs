//! User-Agent parsing and GeoIP location of opens and clicks, with the GeoLite2
//! City database that the PyPI package maxminddb-geolite2 (2018.703) ships; its
//! path is in $HERALD_TEST_GEOIP (bash .ci/run sets it).

use crate::both;
use crate::db::TestDb;
use chrono::Utc;
use herald_eventlog::*;
use herald_schedule::{Backend, SendingRules};

fn geoip() -> GeoIp {
    let path = std::env::var("HERALD_TEST_GEOIP").ok().or_else(|| {
        let out = std::process::Command::new("python3")
            .args(["-c", "import os, _maxminddb_geolite2 as g; print(os.path.join(os.path.dirname(g.__file__), 'GeoLite2-City.mmdb'))"])
            .output()
            .ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    });
    let path = path.expect("the GeoLite2 database: set HERALD_TEST_GEOIP or install maxminddb-geolite2 (bash .ci/run does)");
    GeoIp::from_bytes(std::fs::read(&path).unwrap()).unwrap()
}

both!(
    opens_and_clicks_carry_browser_os_device_country_and_city,
    |db: TestDb| async move {
        let outbox = db.outbox(SendingRules::default()).await;
        let backend = if db.url.starts_with("sqlite") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let log = EventLog::new(outbox.pool().clone(), backend, 50_000).with_geo(geoip());
        log.migrate().await.unwrap();
        let mut a = NewEvent::new(EventKind::Click, Utc::now(), 1, "a@x.test");
        a.ip = Some("128.101.101.101".into());
        a.user_agent = Some("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36".into());
        a.message = Some(1);
        let mut b = NewEvent::new(EventKind::Open, Utc::now(), 1, "b@x.test");
        b.ip = Some("81.2.69.142".into());
        b.user_agent = Some("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1".into());
        b.message = Some(2);
        let mut c = NewEvent::new(EventKind::Open, Utc::now(), 1, "c@x.test");
        c.ip = Some("192.0.2.1".into()); // documentation range: nowhere
        c.message = Some(3);
        log.ingest(&[a, b, c]).await.unwrap();
        let events = log
            .report(
                1,
                &ReportQuery {
                    descending: false,
                    ..ReportQuery::default()
                },
            )
            .await
            .unwrap();
        let got: Vec<_> = events
            .iter()
            .map(|e| {
                (
                    e.browser.as_deref(),
                    e.os.as_deref(),
                    e.device.as_deref(),
                    e.country.as_deref(),
                    e.city.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    Some("Chrome"),
                    Some("Windows 10"),
                    Some("pc"),
                    Some("US"),
                    Some("Minneapolis")
                ),
                (
                    Some("Safari"),
                    Some("iPhone"),
                    Some("smartphone"),
                    Some("GB"),
                    Some("Willesden")
                ),
                (None, None, None, None, None),
            ]
        );
        let gb = ReportQuery {
            filters: vec![Filter::Equals {
                field: EventField::Country,
                value: Value::Text("GB".into()),
            }],
            ..ReportQuery::default()
        };
        assert_eq!(log.report_count(1, &gb).await.unwrap(), 1);
    }
);
