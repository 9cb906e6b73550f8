//! Event webhooks (issue 14) against a real HTTP receiver process that checks
//! every signature with its own Standard Webhooks implementation (Python's
//! hmac), answering what the test tells it.

use crate::db::Kind;
use crate::delivery::{Rig, scratch};
use crate::sink::free_port;
use herald::eventlog::{EventKind, NewEvent};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Receiver {
    child: Child,
    port: u16,
    secrets: PathBuf,
    control: PathBuf,
    log: PathBuf,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, serde::Deserialize)]
struct Request {
    id: Option<String>,
    valid: bool,
    status: u16,
    events: Option<Vec<String>>,
    sequence: Option<String>,
}

impl Receiver {
    fn start(dir: &Path) -> Receiver {
        let port = free_port();
        let r = Receiver {
            child: Command::new("python3")
                .arg(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/data/webhook_receiver.py"
                ))
                .arg(port.to_string())
                .arg(dir.join("secrets"))
                .arg(dir.join("control"))
                .arg(dir.join("log"))
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
            port,
            secrets: dir.join("secrets"),
            control: dir.join("control"),
            log: dir.join("log"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the receiver did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    fn answer(&self, status: u16) {
        std::fs::write(&self.control, status.to_string()).unwrap();
    }

    fn accept(&self, secrets: &[&str]) {
        std::fs::write(&self.secrets, secrets.join("\n")).unwrap();
    }

    fn requests(&self) -> Vec<Request> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks", self.port)
    }
}

async fn rig() -> Rig {
    Rig::start(Kind::Sqlite, "webhooks", &[], |c| {
        c.webhooks.allow_http = true;
        c.webhooks.allow_private = true;
        c.webhooks.batch_max = 3;
    })
    .await
}

fn events(rig: &Rig, kinds: &[EventKind]) -> Vec<NewEvent> {
    kinds
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let mut e = NewEvent::new(*k, rig.now, 1, &format!("r{i}@example.test"));
            e.message = Some(i as i64 + 1);
            e
        })
        .collect()
}

/// Every event of the kinds an endpoint wants arrives, signed, in batches of
/// at most `batch_max`, oldest first, each with its stable id; a 500 is
/// retried on the schedule (5 s), with the same event ids; `410` disables.
#[tokio::test(flavor = "multi_thread")]
async fn events_arrive_signed_batched_and_retried_and_410_disables() {
    let rig = rig().await;
    let h = &rig.herald;
    let dir = scratch("receiver");
    let receiver = Receiver::start(&dir);
    let created =
        herald::app::webhooks::create(h, 1, &receiver.url(), &["delivered".into(), "click".into()])
            .await
            .unwrap();
    receiver.accept(&[&created.secret]);
    // Another account's endpoint gets none of account 1's events.
    let other = herald::app::webhooks::create(h, 2, &receiver.url(), &[])
        .await
        .unwrap();
    use EventKind::*;
    h.events
        .ingest(&events(
            &rig,
            &[
                Processed, Delivered, Delivered, Click, Open, Delivered, Delivered,
            ],
        ))
        .await
        .unwrap();
    receiver.answer(500);
    let delivered = herald::webhooks::deliver_due(h).await.unwrap();
    assert_eq!(delivered, 0);
    let first = receiver.requests();
    assert_eq!(
        first.len(),
        1,
        "one failed batch, the rest waits: {first:?}"
    );
    assert!(first[0].valid, "{first:?}");
    // Not before the retry is due …
    assert_eq!(herald::webhooks::deliver_due(h).await.unwrap(), 0);
    assert_eq!(receiver.requests().len(), 1);
    // … and then every event, in order, in batches of three.
    receiver.answer(200);
    rig.clock.set(rig.now + chrono::Duration::seconds(6));
    assert_eq!(herald::webhooks::deliver_due(h).await.unwrap(), 5);
    let all = receiver.requests();
    assert!(all.iter().all(|r| r.valid), "{all:?}");
    let ok: Vec<String> = all
        .iter()
        .filter(|r| r.status == 200)
        .flat_map(|r| r.events.clone().unwrap())
        .collect();
    assert_eq!(
        ok,
        ["evt_1_2", "evt_1_3", "evt_1_4", "evt_1_6", "evt_1_7"],
        "{all:?}"
    );
    assert_eq!(
        all[0].events.as_deref(),
        all[1].events.as_deref(),
        "a retry carries the same events"
    );
    assert!(all.iter().all(|r| r.events.as_ref().unwrap().len() <= 3));
    let sequences: Vec<&str> = all.iter().filter_map(|r| r.sequence.as_deref()).collect();
    assert_eq!(sequences, ["1", "2", "3"]);
    assert!(
        all.iter()
            .all(|r| r.id.as_deref().is_some_and(|i| i.starts_with("msg_")))
    );
    let log = herald::app::webhooks::log(h, 1, created.webhook.id)
        .await
        .unwrap();
    assert_eq!(log.len(), 3);
    assert_eq!(log.last().unwrap().status, Some(500));
    assert_eq!(
        herald::app::webhooks::get(h, 2, other.webhook.id)
            .await
            .unwrap()
            .backlog,
        0
    );

    // A rotation: both secrets sign while it lasts.
    let rotated = herald::app::webhooks::rotate(h, 1, created.webhook.id)
        .await
        .unwrap();
    receiver.accept(&[&rotated.secret]);
    h.events.ingest(&events(&rig, &[Delivered])).await.unwrap();
    assert_eq!(herald::webhooks::deliver_due(h).await.unwrap(), 1);
    receiver.accept(&[&created.secret]);
    h.events.ingest(&events(&rig, &[Delivered])).await.unwrap();
    assert_eq!(herald::webhooks::deliver_due(h).await.unwrap(), 1);
    assert!(receiver.requests().iter().all(|r| r.valid));

    // 410 Gone: disabled, and the API says why.
    receiver.answer(410);
    h.events.ingest(&events(&rig, &[Delivered])).await.unwrap();
    assert_eq!(herald::webhooks::deliver_due(h).await.unwrap(), 0);
    let w = herald::app::webhooks::get(h, 1, created.webhook.id)
        .await
        .unwrap();
    assert!(!w.enabled);
    assert!(w.disabled_reason.unwrap().contains("410"));
    let before = receiver.requests().len();
    rig.clock.set(rig.now + chrono::Duration::hours(1));
    h.events.ingest(&events(&rig, &[Delivered])).await.unwrap();
    assert_eq!(herald::webhooks::deliver_due(h).await.unwrap(), 0);
    assert_eq!(
        receiver.requests().len(),
        before,
        "a disabled endpoint gets nothing"
    );
}

/// An endpoint at a loopback or private address is refused unless the
/// operator allows it; so is http.
#[tokio::test]
async fn private_and_http_endpoints_are_refused_by_default() {
    let rig = Rig::start(Kind::Sqlite, "webhooks-ssrf", &[], |_| {}).await;
    for (url, needle) in [
        ("https://127.0.0.1/hooks", "not a public address"),
        ("https://10.0.0.8/hooks", "not a public address"),
        ("https://[::1]/hooks", "not a public address"),
        ("http://crm.example/hooks", "https"),
    ] {
        let e = herald::app::webhooks::create(&rig.herald, 1, url, &[])
            .await
            .expect_err(url)
            .to_string();
        assert!(e.starts_with("url:") && e.contains(needle), "{url}: {e}");
    }
    let e =
        herald::app::webhooks::create(&rig.herald, 1, "https://127.0.0.1/h", &["opened".into()])
            .await
            .expect_err("bad kind")
            .to_string();
    assert!(e.contains("url") || e.contains("kinds[0]"), "{e}");
}

/// A test event reaches only its endpoint; a replay of a time range delivers
/// the range's events again with the same ids.
#[tokio::test(flavor = "multi_thread")]
async fn test_events_and_replays() {
    let rig = rig().await;
    let h = &rig.herald;
    let dir = scratch("receiver-replay");
    let receiver = Receiver::start(&dir);
    let w = herald::app::webhooks::create(h, 1, &receiver.url(), &["delivered".into()])
        .await
        .unwrap();
    receiver.accept(&[&w.secret]);
    let test_id = herald::app::webhooks::send_test(h, 1, w.webhook.id)
        .await
        .unwrap();
    assert_eq!(herald::webhooks::deliver_due(h).await.unwrap(), 1);
    let r = receiver.requests();
    assert_eq!(r.len(), 1);
    assert!(r[0].valid);
    assert_eq!(r[0].events.as_deref(), Some(&[test_id][..]));
    use EventKind::*;
    h.events
        .ingest(&events(&rig, &[Delivered, Open, Delivered]))
        .await
        .unwrap();
    assert_eq!(herald::webhooks::deliver_due(h).await.unwrap(), 2);
    let from = rig.now - chrono::Duration::seconds(1);
    let to = rig.now + chrono::Duration::seconds(1);
    assert_eq!(
        herald::app::webhooks::replay(h, 1, w.webhook.id, from, to)
            .await
            .unwrap(),
        2,
        "the range's delivered events, not the open"
    );
    assert_eq!(herald::webhooks::deliver_due(h).await.unwrap(), 2);
    let all = receiver.requests();
    let ids: Vec<String> = all[1..]
        .iter()
        .flat_map(|r| r.events.clone().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["evt_1_1", "evt_1_3", "evt_1_1", "evt_1_3"],
        "a replay carries the same ids"
    );
    assert!(
        herald::app::webhooks::replay(h, 1, w.webhook.id, to, from)
            .await
            .unwrap_err()
            .to_string()
            .contains("to:")
    );
    // One logged attempt, replayed: the same events again, with the same ids.
    let log = herald::app::webhooks::log(h, 1, w.webhook.id)
        .await
        .unwrap();
    let last = log.first().unwrap();
    assert_eq!(last.event_ids, ["evt_1_1", "evt_1_3"].map(String::from));
    assert_eq!(
        herald::app::webhooks::replay_attempt(h, 1, w.webhook.id, last.id)
            .await
            .unwrap(),
        2
    );
    assert_eq!(herald::webhooks::deliver_due(h).await.unwrap(), 2);
    let again = receiver.requests();
    assert_eq!(
        again.last().unwrap().events.as_deref(),
        Some(&["evt_1_1".to_owned(), "evt_1_3".to_owned()][..]),
        "the attempt's events, as it carried them"
    );
    assert!(
        herald::app::webhooks::replay_attempt(h, 2, w.webhook.id, last.id)
            .await
            .is_err(),
        "another account's endpoint"
    );
    assert!(
        herald::app::webhooks::replay_attempt(h, 1, w.webhook.id, last.id + 1000)
            .await
            .is_err(),
        "no such attempt"
    );
    assert!(
        herald::app::webhooks::send_test(h, 2, w.webhook.id)
            .await
            .is_err(),
        "another account's"
    );
}

/// The retry schedule is followed with the clock moved by the test: an
/// attempt is never made before its retry is due, and is made once it is;
/// an endpoint still failing after `disable_after_days` is disabled.
#[tokio::test(flavor = "multi_thread")]
async fn the_retry_schedule_is_followed_until_the_endpoint_is_disabled() {
    let rig = rig().await;
    let h = &rig.herald;
    let dir = scratch("receiver-schedule");
    let receiver = Receiver::start(&dir);
    let w = herald::app::webhooks::create(h, 1, &receiver.url(), &[])
        .await
        .unwrap();
    receiver.accept(&[&w.secret]);
    receiver.answer(503);
    h.events
        .ingest(&events(&rig, &[EventKind::Delivered]))
        .await
        .unwrap();
    let mut now = rig.now;
    let mut attempts = 0;
    let mut waits = Vec::new();
    loop {
        herald::webhooks::deliver_due(h).await.unwrap();
        let made = receiver.requests().len();
        if !herald::app::webhooks::get(h, 1, w.webhook.id)
            .await
            .unwrap()
            .enabled
        {
            break;
        }
        assert_eq!(made, attempts + 1, "one attempt per due retry");
        // Just before the earliest the next retry may be due (jitter −10%): none.
        let wait = herald::webhooks::retry_delay(u32::try_from(attempts).unwrap(), 0.5);
        let early = chrono::Duration::from_std(wait.mul_f64(0.89)).unwrap();
        rig.clock.set(now + early);
        herald::webhooks::deliver_due(h).await.unwrap();
        assert_eq!(
            receiver.requests().len(),
            made,
            "retry {attempts} came early"
        );
        // Just after the latest it may be due (+10%): made.
        now += chrono::Duration::from_std(wait.mul_f64(1.11)).unwrap();
        rig.clock.set(now);
        waits.push(wait.as_secs());
        attempts += 1;
        assert!(attempts < 20, "never disabled");
    }
    let endpoint = herald::app::webhooks::get(h, 1, w.webhook.id)
        .await
        .unwrap();
    let failing_for = now - endpoint.failing_since.unwrap();
    println!(
        "webhook retries: {} attempts, waits {waits:?} s, disabled after {} h: {:?}",
        attempts + 1,
        failing_for.num_hours(),
        endpoint.disabled_reason
    );
    assert!(
        failing_for >= chrono::Duration::days(5),
        "disabled after {failing_for}"
    );
    assert!(
        failing_for < chrono::Duration::days(7),
        "disabled after {failing_for}"
    );
    assert!(endpoint.disabled_reason.unwrap().contains("5 days"));
    assert_eq!(&waits[..4], &[5, 300, 1_800, 7_200]);
}
