//! `herald-server check-domain` run as a process against dnsmasq.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

#[allow(dead_code)] // shared with herald-schedule's tests
#[path = "../../../../crates/schedule/tests/it/db.rs"]
mod db;
mod e2e;
#[path = "../../../../crates/herald/tests/it/inbound_mail.rs"]
mod inbound;
mod quickstart;
mod schemathesis;
#[allow(dead_code)] // shared with herald's tests
#[path = "../../../../crates/herald/tests/it/sink.rs"]
mod sink;
#[path = "../../../../crates/auth/tests/it/support.rs"]
mod support;
mod vault;

use std::process::Command;
use support::DnsServer;

fn check_domain(dns: &DnsServer, extra: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_herald-server"))
        .args([
            "check-domain",
            "shop.test",
            "--selector",
            "sel",
            "--platform-spf",
            "spf.herald.test",
            "--ip",
            "192.0.2.10",
        ])
        .arg("--nameserver")
        .arg(dns.addr.to_string())
        .args(extra)
        .env_remove("HERALD_PLATFORM_SPF")
        .output()
        .expect("run herald-server");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), format!("{stdout}{stderr}"))
}

fn key_path(file: &str) -> String {
    format!(
        "{}/../../crates/auth/tests/data/{file}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn a_ready_domain_passes_and_exits_zero() {
    let pem = std::fs::read_to_string(key_path("ed25519.pem")).expect("key");
    let key = herald::auth::DkimKey::from_pem(&pem).expect("load");
    let dns = DnsServer::start(
        &[
            ("spf.herald.test", "v=spf1 ip4:192.0.2.0/24 -all"),
            ("shop.test", "v=spf1 include:spf.herald.test -all"),
            ("sel._domainkey.shop.test", &key.public_key().txt_record()),
            ("_dmarc.shop.test", "v=DMARC1; p=reject"),
        ],
        &[],
    );
    let (code, out) = check_domain(&dns, &["--dkim-key", &key_path("ed25519.pem")]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("SPF    PASS") && out.contains("DKIM   PASS") && out.contains("DMARC  PASS"),
        "{out}"
    );
    assert!(out.contains("check_host(192.0.2.10) = pass"), "{out}");
    assert!(!out.contains("Records to publish"), "{out}");
}

#[test]
fn a_domain_without_records_fails_and_prints_what_to_publish() {
    let pem = std::fs::read_to_string(key_path("rsa-pkcs1.pem")).expect("key");
    let key = herald::auth::DkimKey::from_pem(&pem).expect("load");
    let dns = DnsServer::start(
        &[
            ("spf.herald.test", "v=spf1 ip4:192.0.2.0/24 -all"),
            ("shop.test", "v=spf1 mx -all"),
        ],
        &[],
    );
    let (code, out) = check_domain(&dns, &["--dkim-key", &key_path("rsa-pkcs1.pem")]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("SPF    FAIL") && out.contains("DKIM   FAIL"),
        "{out}"
    );
    assert!(
        out.contains("shop.test  TXT  \"v=spf1 mx include:spf.herald.test -all\""),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "sel._domainkey.shop.test  TXT  \"{}\"",
            key.public_key().txt_record()
        )),
        "{out}"
    );
}

/// Judgements RFC 7208 makes that the checks got wrong before (issue 9):
/// valid records evaluated, syntax errors a permerror (fail, exit 1), not a
/// temperror; a bad domain name refused at once (exit 2), not "retry later".
#[test]
fn spf_results_follow_rfc_7208_through_a_real_name_server() {
    let dns = DnsServer::start(
        &[
            ("spf.herald.test", "v=spf1 ip4:192.0.2.0/24 -all"),
            (
                "shop.test",
                "v=spf1 a:foo:bar/baz.example.test include:spf.herald.test -all",
            ),
            (
                "broken.test",
                "v=spf1 include:spf.herald.test ip4:192.0.2 -all",
            ),
            ("mail.herald.test", "v=spf1 ip4:192.0.2.10 -all"),
        ],
        &[],
    );
    // A valid record with an unusual domain-spec: evaluated, and it passes.
    let (code, out) = check_domain(&dns, &[]);
    assert!(out.contains("SPF    PASS"), "{out}");
    assert!(out.contains("check_host(192.0.2.10) = pass"), "{out}");
    assert_eq!(code, 1, "DKIM and DMARC are missing: {out}");
    // The same as JSON, with the HELO identity and an IPv4-mapped IPv6 client.
    let (_, json) = check_domain(
        &dns,
        &[
            "--json",
            "--helo",
            "mail.herald.test",
            "--ip",
            "::ffff:192.0.2.10",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&json).expect(&json);
    assert_eq!(v["spf"]["verdict"]["result"], "pass", "{json}");
    assert_eq!(
        v["spf"]["ip_results"],
        serde_json::json!([["192.0.2.10", "pass"], ["::ffff:192.0.2.10", "pass"]])
    );
    assert_eq!(
        v["spf"]["helo_results"],
        serde_json::json!([["192.0.2.10", "pass"], ["::ffff:192.0.2.10", "pass"]])
    );
    assert_eq!(v["dkim"]["verdict"]["result"], "fail");
    // A syntax error: permerror, a fail (exit 1), and each IP's result shown.
    let out = Command::new(env!("CARGO_BIN_EXE_herald-server"))
        .args([
            "check-domain",
            "broken.test",
            "--platform-spf",
            "spf.herald.test",
        ])
        .args(["--ip", "192.0.2.10", "--nameserver", &dns.addr.to_string()])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("SPF    FAIL") && text.contains("permerror"),
        "{text}"
    );
    assert!(
        text.contains("check_host(192.0.2.10) = permerror"),
        "{text}"
    );
    // Not a domain name: refused before any DNS question.
    let out = Command::new(env!("CARGO_BIN_EXE_herald-server"))
        .args([
            "check-domain",
            "shop..test",
            "--nameserver",
            &dns.addr.to_string(),
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("`shop..test` is not a domain name"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_silent_name_server_exits_75() {
    let (_sock, addr) = support::silent_nameserver();
    let addr = addr.to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_herald-server"))
        .args([
            "check-domain",
            "shop.test",
            "--nameserver",
            &addr,
            "--dns-timeout",
            "1",
        ])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(75), "{text}");
    assert!(text.contains("TEMPERROR"), "{text}");
}

#[test]
fn bad_arguments_get_clear_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_herald-server"))
        .args(["check-domain", "shop.test", "--nameserver", "not-an-ip"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not IP or IP:PORT"));
    let out = Command::new(env!("CARGO_BIN_EXE_herald-server"))
        .args(["check-domain", "shop.test", "--dkim-key", "/etc/hostname"])
        .output()
        .expect("run");
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--dkim-key /etc/hostname"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// Kills the server if the test fails before it stops it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_answers_health_probes_and_tracking_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("herald-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = support::free_port();
    let config = format!(
        r#"
database_url = "sqlite://{db}?mode=rwc"
[platform]
name = "Herald"
sender = "mailer@herald.test"
message_id_domain = "herald.test"
bounce_domain = "bounces.herald.test"
[tracking]
base_url = "http://127.0.0.1:{port}"
secret = "0123456789abcdef0123456789abcdef"
[dkim.platform]
domain = "herald.test"
selector = "s1"
key_file = "{key}"
[transport]
kind = "file"
dir = "{out}"
"#,
        db = dir.join("herald.db").display(),
        key = key_path("ed25519.pem"),
        out = dir.join("outbox").display(),
    );
    std::fs::write(dir.join("herald.toml"), config).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_herald-server"))
        .args(["serve", "--with-worker", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--config")
        .arg(dir.join("herald.toml"))
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "herald-server did not listen"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(http_get(port, "/healthz").starts_with("HTTP/1.1 200"));
    assert!(http_get(port, "/readyz").starts_with("HTTP/1.1 200"));
    let forged = http_get(port, "/c/not-a-token");
    assert!(
        forged.starts_with("HTTP/1.1 404") && !forged.to_ascii_lowercase().contains("location:"),
        "{forged}"
    );
    assert!(http_get(port, "/o/not-a-token").contains("image/gif"));
    Command::new("kill")
        .arg("-TERM")
        .arg(child.0.id().to_string())
        .status()
        .unwrap();
    let status = child.0.wait().unwrap();
    assert!(status.success(), "exits 0 on SIGTERM: {status}");
}
