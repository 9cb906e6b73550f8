//! Delivery per destination (issue 13): three domains with MX records in a
//! real DNS server (dnsmasq), pointing at three SMTP servers on different
//! loopback addresses; one answers 421 with a rate-limit text.

use crate::db::{Kind, TestDb};
use crate::delivery::{config, scratch};
use crate::dns::DnsServer;
use crate::sink::{Sink, free_port};
use herald::Herald;
use herald::clock::SystemClock;
use herald::message::{FieldSchema, Mailbox, SendKind, SenderIdentity, Template, TrackingOptions};
use herald::schedule::{NewRecipient, NewSend, NoSuppression, RetryPolicy, State, When};
use herald::transport::{MxConfig, TransportConfig};
use herald::worker::{self, Stats};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Enqueues an individual send of `account` to `addresses`, due now.
async fn enqueue_to(herald: &Herald, account: u64, addresses: &[String]) -> i64 {
    let template = Template {
        subject: "Hi".into(),
        html: String::new(),
        text: "Hello".into(),
    }
    .compile(&FieldSchema::standard(), &TrackingOptions::default())
    .unwrap();
    let recipients = addresses
        .iter()
        .map(|a| NewRecipient {
            to: Mailbox::new(None, a).unwrap(),
            values: Default::default(),
            person: None,
        })
        .collect();
    let send = NewSend {
        account,
        kind: SendKind::Individual,
        template,
        sender: SenderIdentity {
            user: Mailbox::new(None, "u@shop.test").unwrap(),
            domain_verified: false,
        },
        campaign: None,
        when: When::Now,
        subject: "Hi".into(),
        attachments: vec![],
    };
    herald
        .outbox
        .enqueue(send, recipients, &NoSuppression, chrono::Utc::now())
        .await
        .unwrap()
        .send_id
}

const SUSPEND_SECS: f64 = 4.0;

/// The site that answers "rate limit exceeded" is suspended (for every
/// worker: the state is in the database) and resumes after the rule's
/// duration; the other two sites deliver at full speed meanwhile; nothing is
/// bounced for it.
#[tokio::test(flavor = "multi_thread")]
async fn a_site_that_says_slow_down_is_suspended_and_the_others_go_on() {
    let port = free_port();
    let dir = scratch("sites");
    let fast_a = Sink::start_at("127.0.0.2", port, &dir.join("a"), &[]);
    let fast_b = Sink::start_at("127.0.0.3", port, &dir.join("b"), &[]);
    let log = dir.join("limited.log");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/smtp_ratelimit.py");
    let _limited = Killed(
        Command::new("python3")
            .args([script, "127.0.0.4", &port.to_string(), "3"])
            .arg(&log)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.4", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the rate-limiting server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Our own connection check is in the log; start counting after it.
    std::thread::sleep(Duration::from_millis(100));
    let _ = std::fs::remove_file(&log);
    let dns = DnsServer::start_with(&[
        "--mx-host=a.test,mx.a.test,10",
        "--host-record=mx.a.test,127.0.0.2",
        "--mx-host=b.test,mx.b.test,10",
        "--host-record=mx.b.test,127.0.0.3",
        "--mx-host=c.test,mx.c.test,10",
        "--host-record=mx.c.test,127.0.0.4",
    ]);
    let providers = dir.join("providers.toml");
    std::fs::write(
        &providers,
        format!(
            "[defaults]\nmax_connections = 4\n\n[[backoff]]\nname = \"rate_limited\"\ncodes = [421]\npatterns = ['rate limit']\naction = \"suspend\"\nduration = \"{}s\"\n",
            SUSPEND_SECS as u64
        ),
    )
    .unwrap();
    let db = TestDb::new(Kind::Postgres).await;
    let mut c = config(&db, port, RetryPolicy::default());
    c.transport = TransportConfig::Mx(MxConfig {
        port,
        per_destination: 4,
        timeout_secs: 5,
        nameserver: Some(dns.addr),
        dns_timeout_secs: 1,
    });
    c.delivery.providers_file = Some(providers);
    let herald = Arc::new(Herald::build(c, Arc::new(SystemClock)).await.unwrap());
    const EACH: usize = 30;
    let addresses: Vec<String> = (0..EACH)
        .flat_map(|i| ["a.test", "b.test", "c.test"].map(|d| format!("r{i}@{d}")))
        .collect();
    let send_id = enqueue_to(&herald, 1, &addresses).await;
    let stats = Arc::new(Stats::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let task = tokio::spawn(worker::run(
        Arc::clone(&herald),
        async move {
            let _ = stopped.await;
        },
        Arc::clone(&stats),
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    while fast_a.count() + fast_b.count() < 2 * EACH {
        assert!(Instant::now() < deadline, "a and b not delivered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let fast_done = started.elapsed().as_secs_f64();
    let site = herald
        .outbox
        .sites()
        .get("mx.c.test")
        .await
        .unwrap()
        .unwrap();
    assert!(site.suspended(chrono::Utc::now()), "{site:?}");
    assert!(
        site.recent.last().unwrap().text.contains("Rate limit"),
        "{site:?}"
    );
    // c.test resumes after the suspension: its waiting messages are delivered.
    let read_log = || -> Vec<(f64, String)> {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (t, what) = l.split_once(' ')?;
                Some((t.parse().ok()?, what.to_owned()))
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while read_log()
        .iter()
        .filter(|(_, w)| w.starts_with("message"))
        .count()
        < EACH - 3
    {
        assert!(
            Instant::now() < deadline,
            "c.test did not resume: {:?}",
            read_log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    let entries = read_log();
    let refused: Vec<f64> = entries
        .iter()
        .filter(|(_, w)| w == "refused")
        .map(|(t, _)| *t)
        .collect();
    let last_refusal = refused.iter().cloned().fold(f64::MIN, f64::max);
    let first_after = entries
        .iter()
        .filter(|(t, w)| w.starts_with("connection") && *t > last_refusal + 0.5)
        .map(|(t, _)| *t)
        .fold(f64::MAX, f64::min);
    println!(
        "sites: a.test and b.test ({} messages) delivered {fast_done:.2} s after the start; c.test refused {} times, then no connection for {:.2} s (suspended {SUSPEND_SECS} s)",
        2 * EACH,
        refused.len(),
        first_after - last_refusal
    );
    assert_eq!(refused.len(), 3, "{entries:?}");
    assert!(
        fast_done < SUSPEND_SECS,
        "the other sites waited: {fast_done:.2} s"
    );
    assert!(
        first_after - last_refusal >= SUSPEND_SECS - 0.5,
        "c.test was tried again {:.2} s after it said slow down",
        first_after - last_refusal
    );
    let counts = herald.outbox.counts(send_id).await.unwrap();
    assert_eq!(
        counts.get(&State::Bounced),
        None,
        "nothing bounced: {counts:?}"
    );
    assert_eq!(counts.get(&State::Deferred), Some(&3), "{counts:?}");
    assert_eq!(
        counts.get(&State::Delivered),
        Some(&(3 * EACH - 3)),
        "{counts:?}"
    );
}

/// Starts the scripted SMTP server on `ip:port` refusing the first `refuse`
/// transactions; it logs to `log`.
fn scripted_server(ip: &str, port: u16, refuse: u32, log: &std::path::Path) -> Killed {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/smtp_ratelimit.py");
    let child = Command::new("python3")
        .args([script, ip, &port.to_string(), &refuse.to_string()])
        .arg(log)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect((ip, port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the scripted SMTP server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Killed(child)
}

/// An account in an egress pool connects from the pool's address; an account
/// in none from the system's choice.
#[tokio::test(flavor = "multi_thread")]
async fn an_account_sends_from_its_egress_pool() {
    let port = free_port();
    let dir = scratch("egress");
    let log = dir.join("server.log");
    let _server = scripted_server("127.0.0.5", port, 0, &log);
    let dns = DnsServer::start_with(&[
        "--mx-host=d.test,mx.d.test,10",
        "--host-record=mx.d.test,127.0.0.5",
    ]);
    let db = TestDb::new(Kind::Sqlite).await;
    let mut c = config(&db, port, RetryPolicy::default());
    c.transport = TransportConfig::Mx(MxConfig {
        port,
        per_destination: 2,
        timeout_secs: 5,
        nameserver: Some(dns.addr),
        dns_timeout_secs: 1,
    });
    c.delivery.egress.pools.insert(
        "pool".into(),
        vec!["127.0.0.9".parse().unwrap(), "127.0.0.10".parse().unwrap()],
    );
    c.delivery.egress.accounts.insert("1".into(), "pool".into());
    let herald = Arc::new(Herald::build(c, Arc::new(SystemClock)).await.unwrap());
    for account in [1u64, 2] {
        let addresses: Vec<String> = (0..4).map(|i| format!("a{account}-{i}@d.test")).collect();
        enqueue_to(&herald, account, &addresses).await;
    }
    let stats = Arc::new(Stats::default());
    crate::delivery::run_until(&herald, &stats, |s| s.done() >= 8).await;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let messages: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| {
            let mut parts = l.split(' ').skip(1);
            (parts.next()? == "message").then_some(())?;
            Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
        })
        .collect();
    assert_eq!(messages.len(), 8, "{text}");
    let mut pool_sources = std::collections::HashSet::new();
    for (rcpt, peer) in &messages {
        if rcpt.contains("a1-") {
            assert!(
                peer == "127.0.0.9" || peer == "127.0.0.10",
                "{rcpt} from {peer}"
            );
            pool_sources.insert(peer.clone());
        } else {
            assert_eq!(peer, "127.0.0.1", "{rcpt} from {peer}");
        }
    }
    assert_eq!(
        pool_sources.len(),
        2,
        "both of the pool's addresses are used: {messages:?}"
    );
}

/// A site whose host refuses connections is suspended after
/// `failures_before_suspend` failures in a row, for every worker; its mail
/// is deferred, never bounced.
#[tokio::test(flavor = "multi_thread")]
async fn repeated_connection_failures_suspend_the_site() {
    let port = free_port(); // nothing listens on 127.0.0.6 at this port
    let dir = scratch("failing");
    let dns = DnsServer::start_with(&[
        "--mx-host=e.test,mx.e.test,10",
        "--host-record=mx.e.test,127.0.0.6",
    ]);
    let providers = dir.join("providers.toml");
    std::fs::write(
        &providers,
        "[defaults]\nfailures_before_suspend = 2\nfailure_suspend = \"10m\"\n",
    )
    .unwrap();
    let db = TestDb::new(Kind::Sqlite).await;
    let mut c = config(&db, port, RetryPolicy::default());
    c.transport = TransportConfig::Mx(MxConfig {
        port,
        per_destination: 2,
        timeout_secs: 2,
        nameserver: Some(dns.addr),
        dns_timeout_secs: 1,
    });
    c.delivery.providers_file = Some(providers);
    let herald = Arc::new(Herald::build(c, Arc::new(SystemClock)).await.unwrap());
    let addresses: Vec<String> = (0..4).map(|i| format!("r{i}@e.test")).collect();
    let send_id = enqueue_to(&herald, 1, &addresses).await;
    let stats = Arc::new(Stats::default());
    crate::delivery::run_until(&herald, &stats, |s| s.done() >= 4).await;
    let site = herald
        .outbox
        .sites()
        .get("mx.e.test")
        .await
        .unwrap()
        .unwrap();
    assert!(site.suspended(chrono::Utc::now()), "{site:?}");
    assert!(site.failures >= 2, "{site:?}");
    let last = site.recent.last().unwrap();
    assert!(last.action.starts_with("connection_failures"), "{last:?}");
    assert_eq!(last.code, None);
    let counts = herald.outbox.counts(send_id).await.unwrap();
    assert_eq!(counts.get(&State::Deferred), Some(&4), "{counts:?}");
}
