//! `herald-server check-domain` run as a process against dnsmasq.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

#[path = "../../../../crates/auth/tests/it/support.rs"]
mod support;

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
