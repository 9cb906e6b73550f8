//! The README's quick start, walked as a test (R-OPS-1): `herald-server` with
//! no command in an empty folder starts a node with a demo account, prints the
//! guide, and its printed curl command sends a newsletter whose .eml files hold
//! a tracked link; clicking it shows in the event log and the campaign's rate;
//! its dashboard link signs in once.
//! Also `create-account` on a configuration file.

use crate::sink::free_port;
use reqwest::blocking::Client;
use serde_json::Value;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn the_quick_start_walk_of_the_readme_works() {
    let dir =
        std::env::temp_dir().join(format!("herald-qs-{}-{}", std::process::id(), free_port()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_herald-server"))
        .current_dir(&dir)
        .args(["quickstart", "--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = crate::KillOnDrop(child);
    // The guide: read stdout until its last line.
    let mut guide = String::new();
    let mut out = BufReader::new(server.0.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !guide.contains("Stop with Ctrl-C") {
        assert!(Instant::now() < deadline, "no guide: {guide}");
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            panic!("the quick start stopped: {guide}");
        }
        guide.push_str(&line);
    }
    let base = format!("http://127.0.0.1:{port}");
    assert!(
        guide.contains(&format!("Herald is running at {base}")),
        "{guide}"
    );
    // Secrets and the database: owner only (0600).
    #[cfg(unix)]
    for file in [
        "dkim-platform.pem",
        "tracking-secret",
        "admin-token",
        "dkim-encryption-key",
        "demo-api-key",
        "herald.db",
    ] {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.join("herald-data").join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file} is {:o}", mode & 0o777);
    }
    // The platform's DKIM record is printed, and its key file is one openssl reads.
    assert!(
        guide.contains("herald._domainkey.herald.localhost  TXT  \"v=DKIM1; k=ed25519; p="),
        "{guide}"
    );
    let openssl = Command::new("openssl")
        .args(["pkey", "-noout", "-in"])
        .arg(dir.join("herald-data/dkim-platform.pem"))
        .output()
        .unwrap();
    assert!(
        openssl.status.success(),
        "{}",
        String::from_utf8_lossy(&openssl.stderr)
    );
    let key = std::fs::read_to_string(dir.join("herald-data/demo-api-key")).unwrap();
    let key = key.trim();
    assert!(guide.contains(key), "the guide prints the key");
    // The printed curl command's body, sent as printed.
    let body = guide
        .split("-d '")
        .nth(1)
        .and_then(|s| s.split("'\n").next())
        .unwrap();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0")
        .build()
        .unwrap();
    let r = client
        .post(format!("{base}/v1/sends"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    // The printed dashboard link signs in once (a session cookie, then the status page).
    let dashboard = guide
        .split_whitespace()
        .find(|w| w.contains("/dashboard/signin/"))
        .unwrap_or_else(|| panic!("no dashboard link in the guide: {guide}"));
    let signed = client.get(dashboard).send().unwrap();
    assert_eq!(signed.status(), 303);
    let cookie = signed.headers()["set-cookie"].to_str().unwrap().to_owned();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let status = client
        .get(format!("{base}/dashboard"))
        .header("cookie", &cookie)
        .send()
        .unwrap();
    assert_eq!(status.status(), 200);
    assert!(status.text().unwrap().contains("data-metric=\"processed\""));
    assert_eq!(
        client.get(dashboard).send().unwrap().status(),
        404,
        "used once"
    );
    let sent: Value = r.json().unwrap();
    assert_eq!(sent["queued"], 3);
    // Three .eml files in herald-data/mail, each with a tracked link.
    let mail = dir.join("herald-data/mail");
    let deadline = Instant::now() + Duration::from_secs(30);
    let files = loop {
        let files: Vec<_> = std::fs::read_dir(&mail)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        if files.len() == 3 {
            break files;
        }
        assert!(Instant::now() < deadline, "{} .eml files", files.len());
        std::thread::sleep(Duration::from_millis(50));
    };
    let raw = std::fs::read(&files[0]).unwrap();
    let msg = mail_parser::MessageParser::default().parse(&raw).unwrap();
    assert!(msg.header_raw("DKIM-Signature").is_some());
    let html = msg.body_html(0).unwrap().into_owned();
    let start = html.find(&format!("{base}/c/")).unwrap();
    let link = html[start..].split('"').next().unwrap();
    let r = client.get(link).send().unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "https://example.com/spring");
    // The click in the event log, and the campaign's click rate.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events: Value = client
            .get(format!("{base}/v1/events?kind=click"))
            .bearer_auth(key)
            .send()
            .unwrap()
            .json()
            .unwrap();
        if events.as_array().is_some_and(|a| a.len() == 1) {
            assert_eq!(events[0]["browser"], "Firefox");
            break;
        }
        assert!(Instant::now() < deadline, "no click event: {events}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // (The worker records deliveries in batches, moments after the files.)
    let deadline = Instant::now() + Duration::from_secs(10);
    let campaigns = loop {
        let campaigns: Value = client
            .get(format!("{base}/v1/campaigns"))
            .bearer_auth(key)
            .send()
            .unwrap()
            .json()
            .unwrap();
        if campaigns[0]["delivered"] == 3 {
            break campaigns;
        }
        assert!(Instant::now() < deadline, "{campaigns}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        campaigns[0]["name"],
        format!("{} Hello there", chrono::Utc::now().format("%Y-%m-%d"))
    );
    assert_eq!(campaigns[0]["clicked"], 1, "{campaigns}");
    assert!((campaigns[0]["click_rate"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9);
    Command::new("kill")
        .arg("-TERM")
        .arg(server.0.id().to_string())
        .status()
        .unwrap();
    assert!(server.0.wait().unwrap().success());
    // A second start reuses the account and key.
    let child = Command::new(env!("CARGO_BIN_EXE_herald-server"))
        .current_dir(&dir)
        .args(["quickstart", "--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut again = crate::KillOnDrop(child);
    let mut out = BufReader::new(again.0.stdout.take().unwrap());
    let mut text = String::new();
    while !text.contains("Stop with Ctrl-C") {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        text.push_str(&line);
    }
    assert!(
        text.contains("Demo account 1,") && text.contains(key),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn create_account_prints_the_account_and_its_key_once() {
    let dir =
        std::env::temp_dir().join(format!("herald-ca-{}-{}", std::process::id(), free_port()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../crates/auth/tests/data/ed25519.pem");
    let config = format!(
        "database_url = \"sqlite://{db}?mode=rwc\"\n[platform]\nname = \"Herald\"\nsender = \"mailer@herald.test\"\nmessage_id_domain = \"herald.test\"\nbounce_domain = \"bounces.herald.test\"\n[tracking]\nbase_url = \"http://127.0.0.1\"\nsecret = \"0123456789abcdef0123456789abcdef\"\n[dkim.platform]\ndomain = \"herald.test\"\nselector = \"s1\"\nkey_file = \"{key}\"\n[transport]\nkind = \"file\"\ndir = \"{out}\"\n",
        db = dir.join("h.db").display(),
        key = key.display(),
        out = dir.join("mail").display(),
    );
    std::fs::write(dir.join("herald.toml"), config).unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_herald-server"))
            .args(args)
            .arg("--config")
            .arg(dir.join("herald.toml"))
            .output()
            .unwrap()
    };
    let out = run(&["migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&[
        "create-account",
        "--name",
        "Shop",
        "--timezone",
        "Europe/Copenhagen",
        "--accept-rules",
        "Ulla",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["account"]["name"], "Shop");
    assert_eq!(v["account"]["enabled"], true);
    assert_eq!(v["account"]["rules_accepted_by"], "Ulla");
    assert!(v["api_key"]["key"].as_str().unwrap().starts_with("hk_"));
    // A bad time zone is refused, naming the field.
    let out = run(&[
        "create-account",
        "--name",
        "X",
        "--timezone",
        "Mars/Olympus",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("timezone"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 10 §5: a port in use stops the node at start with a clear message
/// (it used to keep delivering and report the bind error only at shutdown).
#[test]
fn a_port_in_use_stops_the_start() {
    let dir = std::env::temp_dir().join(format!(
        "herald-qs-busy-{}-{}",
        std::process::id(),
        free_port()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald-server"))
        .current_dir(&dir)
        .args(["quickstart", "--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the node kept running on a port in use"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
    drop(taken);
    let _ = std::fs::remove_dir_all(&dir);
}
