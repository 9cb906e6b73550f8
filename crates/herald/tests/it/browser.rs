//! The dashboard in a real browser: headless Chromium driven by ChromeDriver
//! over WebDriver (fantoccini), against Herald serving on a loopback port.
//! Signs in through a link, compares the status and campaign numbers with the
//! API's, stars and archives, switches language, deletes a scheduled send,
//! follows a person's click history; on every page in every language: no
//! console error, an axe-core check with no serious or critical violation, and
//! a screenshot under `target/dashboard-screenshots/` for review.

use crate::api::{Api, newsletter, persons};
use crate::dashboard::{account_on, link};
use crate::db::Kind;
use crate::delivery::run_until;
use crate::sink::{find_tool, free_port};
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use herald_eventlog::{EventKind, NewEvent};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// ChromeDriver on a loopback port, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Driver {
        let port = free_port();
        let child = Command::new(find_tool("chromedriver"))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver { child, port }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// ChromeDriver's browser log (`POST /session/{id}/se/log`).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}

async fn browser(driver: &Driver) -> Client {
    let chromium = find_tool("chromium");
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1400", "--lang=en-US"],
        },
        "goog:loggingPrefs": {"browser": "ALL"},
    });
    let caps = match caps {
        Value::Object(m) => m,
        _ => unreachable!(),
    };
    ClientBuilder::rustls()
        .unwrap()
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .unwrap()
}

/// Console messages of level SEVERE since the last call.
async fn console_errors(c: &Client) -> Vec<String> {
    let log = c.issue_cmd(BrowserLog).await.unwrap();
    log.as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// axe-core's serious and critical violations on the page.
async fn axe(c: &Client, source: &str) -> Vec<String> {
    c.execute(source, vec![]).await.unwrap();
    let v = c
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
               axe.run(document).then(r => done(r.violations
                 .filter(v => v.impact === 'serious' || v.impact === 'critical')
                 .map(v => v.id + ' (' + v.impact + '): ' + v.nodes.map(n => n.target.join(' ')).join(', '))))
                 .catch(e => done(['axe failed: ' + e]));"#,
            vec![],
        )
        .await
        .unwrap();
    v.as_array()
        .into_iter()
        .flatten()
        .map(|x| x.as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The text of the element at `css`.
async fn text_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Clicks the element at `css` and waits until the browser has loaded the
/// page that follows (a form's POST and its redirect, a link).
async fn click_and_load(c: &Client, css: &str) {
    c.execute("window.__heraldOld = true;", vec![])
        .await
        .unwrap();
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let loaded = c
            .execute(
                "return window.__heraldOld === undefined && document.readyState === 'complete';",
                vec![],
            )
            .await
            .map(|v| v == json!(true))
            .unwrap_or(false);
        if loaded {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no new page after clicking {css}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The integer in `data-value` of the element at `css`, read in one script
/// (the status page replaces its numbers in place, so a found element can go
/// stale before its attribute is read).
async fn data_value(c: &Client, css: &str) -> u64 {
    let v = c
        .execute(
            "const e = document.querySelector(arguments[0]); return e ? e.getAttribute('data-value') : null;",
            vec![json!(css)],
        )
        .await
        .unwrap();
    v.as_str()
        .unwrap_or_else(|| panic!("no {css}"))
        .parse()
        .unwrap()
}

fn screenshots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_real_browser() {
    let axe_source = std::fs::read_to_string(std::env::var("HERALD_TEST_AXE").unwrap_or_else(
        |_| panic!("HERALD_TEST_AXE (axe.min.js) is not set; the README's test command (bash .ci/run) installs axe-core"),
    ))
    .unwrap();
    let driver = Driver::start();
    let port = free_port();
    let api = Api::start_with(Kind::Sqlite, "dash-browser", |c| {
        c.tracking.base_url = format!("http://127.0.0.1:{port}");
        c.dashboard.refresh_secs = 1;
    })
    .await;
    let herald = std::sync::Arc::clone(&api.rig.herald);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(herald::http::serve(
        std::sync::Arc::clone(&herald),
        ([127, 0, 0, 1], port).into(),
        async move {
            let _ = stopped.await;
        },
    ));

    // An account with persons, a sent newsletter, a scheduled one, and a click.
    let (account, key) = account_on(&api, "Shop", "plus").await;
    api.json("PUT", "/v1/persons", Some(&key), persons("p", 3))
        .await;
    let ids: Vec<String> = (0..3).map(|i| format!("p-{i}")).collect();
    let r = api
        .json("POST", "/v1/sends", Some(&key), newsletter(&ids))
        .await;
    let campaign = r.json()["campaign_id"].as_i64().unwrap();
    run_until(&herald, &api.rig.stats, |s| s.done() >= 3).await;
    let mut later = newsletter(&ids[..1]);
    later["subject"] = json!("Next week's news");
    later["campaign"] = json!("Next week");
    later["scheduled_at"] = json!((api.rig.now + chrono::Duration::days(2)).to_rfc3339());
    let r = api.json("POST", "/v1/sends", Some(&key), later).await;
    let scheduled = r.json()["send_id"].as_i64().unwrap();
    let mut click = NewEvent::new(
        EventKind::Click,
        api.rig.now + chrono::Duration::minutes(30),
        account,
        "p0@example.test",
    );
    click.person = Some("p-0".into());
    click.message = Some(1);
    click.campaign = Some(herald_message::CampaignId(campaign));
    click.link = Some(0);
    click.label = Some("Spring sale".into());
    click.user_agent = Some("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15".into());
    click.since_delivery_secs = Some(1800);
    let mut open = click.clone();
    open.kind = EventKind::Open;
    open.link = None;
    open.label = None;
    herald.events.ingest(&[open, click]).await.unwrap();

    let c = browser(&driver).await;
    let base = format!("http://127.0.0.1:{port}");
    let signin = link(&api, &key, "Ulla", None).await;
    c.goto(&format!("{base}{signin}")).await.unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/dashboard");

    // Status: the numbers are the API's.
    let totals = api
        .json("GET", "/v1/account", Some(&key), json!(null))
        .await
        .json()["totals"]
        .clone();
    for metric in [
        "processed",
        "delivered",
        "opened",
        "clicked",
        "bounced",
        "blocked",
        "complaints",
        "unsubscribed",
    ] {
        let shown = data_value(&c, &format!("[data-metric={metric}] .value")).await;
        assert_eq!(json!(shown), totals[metric], "status {metric}");
    }
    assert_eq!(totals["processed"], 3);
    // The status page refreshes itself: a new event shows within seconds.
    let mut processed = NewEvent::new(
        EventKind::Processed,
        api.rig.now,
        account,
        "p9@example.test",
    );
    processed.campaign = Some(herald_message::CampaignId(campaign));
    herald.events.ingest(&[processed]).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while data_value(&c, "[data-metric=processed] .value").await != 4 {
        assert!(
            Instant::now() < deadline,
            "the status page did not refresh its numbers"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        c.find(Locator::Css("#auto-refresh")).await.is_ok(),
        "the pause switch is there"
    );

    // Campaigns: the row's numbers are the API's; star, then archive, in place.
    c.goto(&format!("{base}/dashboard/campaigns"))
        .await
        .unwrap();
    let api_campaign = api
        .json(
            "GET",
            &format!("/v1/campaigns/{campaign}"),
            Some(&key),
            json!(null),
        )
        .await
        .json();
    let row = format!("tr[data-campaign='{campaign}']");
    assert_eq!(
        json!(data_value(&c, &format!("{row} td.num")).await),
        api_campaign["emails"]
    );
    click_and_load(&c, &format!("{row} button[data-action=star]")).await;
    let starred = api
        .json(
            "GET",
            &format!("/v1/campaigns/{campaign}"),
            Some(&key),
            json!(null),
        )
        .await
        .json();
    assert_eq!(starred["starred"], true);
    click_and_load(&c, "a[data-tab=starred]").await;
    c.find(Locator::Css(&row)).await.unwrap();
    c.goto(&format!("{base}/dashboard/campaigns"))
        .await
        .unwrap();
    click_and_load(&c, &format!("{row} button[data-action=archive]")).await;
    assert!(
        c.find(Locator::Css(&row)).await.is_err(),
        "archived, still listed under All"
    );
    click_and_load(&c, "a[data-tab=archived]").await;
    click_and_load(&c, &format!("{row} button[data-action=archive]")).await;

    // A person's click history, followed from the event log.
    c.goto(&format!("{base}/dashboard/events?kind=click"))
        .await
        .unwrap();
    click_and_load(&c, "table.events a[href^='/dashboard/persons/']").await;
    let history = text_of(&c, "table.clicks tbody").await;
    assert!(history.contains("Spring sale"), "{history}");
    // The full link the click went to, from the send's template and the message's values.
    assert!(history.contains("https://shop.test/sale"), "{history}");

    // Campaigns compared over one period: the click counts inside it, not before.
    let day = |d: chrono::Duration| (api.rig.now + d).format("%Y-%m-%d").to_string();
    for (from, want) in [
        (day(chrono::Duration::zero()), 1),
        (day(chrono::Duration::days(-9)), 1),
    ] {
        c.goto(&format!(
            "{base}/dashboard/compare?id={campaign}&from={from}&to={}",
            day(chrono::Duration::days(1))
        ))
        .await
        .unwrap();
        assert_eq!(
            data_value(&c, "[data-metric=clicks_in_period] td").await,
            want,
            "{from}"
        );
    }
    c.goto(&format!(
        "{base}/dashboard/compare?id={campaign}&from={}&to={}",
        day(chrono::Duration::days(-9)),
        day(chrono::Duration::days(-2))
    ))
    .await
    .unwrap();
    assert_eq!(data_value(&c, "[data-metric=clicks_in_period] td").await, 0);

    // Every page in every language: screenshots, axe, no console errors.
    let dir = screenshots_dir();
    let pages = [
        ("status", "/dashboard".to_owned()),
        ("campaigns", "/dashboard/campaigns".to_owned()),
        ("campaign", format!("/dashboard/campaigns/{campaign}")),
        ("compare", format!("/dashboard/compare?id={campaign}")),
        ("scheduled", "/dashboard/scheduled".to_owned()),
        (
            "scheduled-send",
            format!("/dashboard/scheduled/{scheduled}?confirm=true"),
        ),
        ("events", "/dashboard/events".to_owned()),
        ("person", "/dashboard/persons/p-0".to_owned()),
    ];
    let words = [
        ("en", "Campaigns"),
        ("fr", "Campagnes"),
        ("de", "Kampagnen"),
        ("es", "Campañas"),
    ];
    let _ = console_errors(&c).await;
    for (lang, word) in words {
        // Switch language with the page's own form.
        c.goto(&format!("{base}/dashboard")).await.unwrap();
        c.find(Locator::Css(&format!("#language option[value={lang}]")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        click_and_load(&c, "form.language button").await;
        let nav = text_of(&c, "header nav").await;
        assert!(nav.contains(word), "{lang}: {nav}");
        for (name, path) in &pages {
            c.goto(&format!("{base}{path}")).await.unwrap();
            let html_lang = c
                .find(Locator::Css("html"))
                .await
                .unwrap()
                .attr("lang")
                .await
                .unwrap();
            assert_eq!(html_lang.as_deref(), Some(lang), "{name}");
            std::fs::write(
                dir.join(format!("{name}-{lang}.png")),
                c.screenshot().await.unwrap(),
            )
            .unwrap();
            let violations = axe(&c, &axe_source).await;
            assert!(violations.is_empty(), "{name} ({lang}): {violations:#?}");
            let errors = console_errors(&c).await;
            assert!(errors.is_empty(), "{name} ({lang}): {errors:#?}");
        }
    }

    // The page a recipient's unsubscribe link opens: accessible, no console error.
    let (_, unsubscribe) = crate::tracking::last_mail(&api.rig);
    let path = unsubscribe.unwrap();
    let path = path.find("/u/").map(|i| path[i..].to_owned()).unwrap();
    c.goto(&format!("{base}{path}")).await.unwrap();
    c.find(Locator::Css("button[data-scope=all]"))
        .await
        .unwrap();
    std::fs::write(
        dir.join("unsubscribe-en.png"),
        c.screenshot().await.unwrap(),
    )
    .unwrap();
    let violations = axe(&c, &axe_source).await;
    assert!(violations.is_empty(), "unsubscribe: {violations:#?}");
    let errors = console_errors(&c).await;
    assert!(errors.is_empty(), "unsubscribe: {errors:#?}");

    // Delete the scheduled send after its confirmation.
    c.goto(&format!("{base}/dashboard/scheduled"))
        .await
        .unwrap();
    click_and_load(&c, &format!("tr[data-send='{scheduled}'] a")).await;
    click_and_load(&c, "a[data-action=delete]").await;
    click_and_load(&c, "button[data-action=delete-confirmed]").await;
    let listed = api
        .json("GET", "/v1/sends", Some(&key), json!(null))
        .await
        .json();
    assert!(
        !listed
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == scheduled),
        "{listed}"
    );

    c.close().await.unwrap();
    let _ = stop.send(());
    let _ = server.await;
}
