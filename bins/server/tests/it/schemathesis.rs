//! Schemathesis (PyPI) against the served OpenAPI document: generated requests
//! to every operation, with an account's key and with the admin token, must
//! never get a 500 and every response must match the document (status codes,
//! content types, headers, bodies).
//!
//! Checks: `all` (negative data rejection, use after free, resource
//! availability, ignored auth, allowed methods, … included) except
//! `positive_data_acceptance` (ST202), because some rules cannot be said in
//! JSON Schema and such requests get a documented 400: a valid address
//! (`from.email`), an IANA time zone, merge syntax and an HTML or text body,
//! the sending rules, field names of person maps (1-64 of `A-Za-z0-9_-`), the
//! DNS label length of a domain, and `2902.0` for an integer (serde refuses
//! it). Names, ids, a domain's characters, report field names and the report
//! format are stated in the document. Also left out: the two operations that
//! delete accounts (they would delete the key the run uses; the API tests
//! cover them).

use crate::sink::free_port;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Every check but `positive_data_acceptance` (see above).
const EXCLUDED_CHECKS: &str = "positive_data_acceptance";

/// `python3 -m schemathesis.cli`, which works wherever pip put the script.
fn schemathesis() -> Command {
    let found = Command::new("python3")
        .args(["-m", "schemathesis.cli", "--version"])
        .output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "schemathesis is not installed; the README's test command (bash .ci/run) installs it"
    );
    let mut c = Command::new("python3");
    c.args(["-m", "schemathesis.cli"]);
    c
}

#[test]
fn schemathesis_finds_no_server_error_and_no_response_outside_the_document() {
    let dir =
        std::env::temp_dir().join(format!("herald-st-{}-{}", std::process::id(), free_port()));
    let _ = std::fs::remove_dir_all(&dir);
    // The test SMS gateway, so /v1/sms is exercised too.
    let sms_port = free_port();
    let gateway = Command::new("python3")
        .arg(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../crates/herald/tests/data/sms_gateway.py"),
        )
        .arg(sms_port.to_string())
        .arg(std::env::temp_dir().join(format!("herald-st-sms-{sms_port}.jsonl")))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _gateway = crate::KillOnDrop(gateway);
    let port = free_port();
    let server = Command::new(env!("CARGO_BIN_EXE_herald-server"))
        .env(
            "HERALD_SMS_GATEWAY_URL",
            format!("http://127.0.0.1:{sms_port}/send"),
        )
        .arg("quickstart")
        .arg("--data-dir")
        .arg(&dir)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut server = crate::KillOnDrop(server);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the quick start did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let key = std::fs::read_to_string(dir.join("demo-api-key")).unwrap();
    let admin = std::fs::read_to_string(dir.join("admin-token")).unwrap();
    let url = format!("http://127.0.0.1:{port}/openapi.json");
    for (token, scope) in [(key.trim(), "api"), (admin.trim(), "admin")] {
        // In the scratch folder: Schemathesis keeps a cache where it runs.
        let out = schemathesis()
            .current_dir(&dir)
            .args([
                "run",
                &url,
                "--checks",
                "all",
                "--exclude-checks",
                EXCLUDED_CHECKS,
                "--max-examples",
                "25",
                "--seed",
                "7",
            ])
            .args(["--include-tag", scope])
            .args(["--exclude-operation-id", "delete_own_account"])
            .args(["--exclude-operation-id", "delete_account_admin"])
            .args(["--header", &format!("Authorization: Bearer {token}")])
            .args(["--no-color", "--suppress-health-check", "all"])
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "schemathesis ({scope}) found problems:\n{report}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(report.contains("passed"), "{report}");
    }
    Command::new("kill")
        .arg("-TERM")
        .arg(server.0.id().to_string())
        .status()
        .unwrap();
    assert!(server.0.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}
