//! `herald-server generate-encryption-key` and `rotate-dkim-keys` as
//! processes (issue 10 §5): a DKIM key stored as PEM is sealed by the
//! rotation, and a bad key in the configuration stops it naming the setting.

use sqlx::Connection as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn server(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_herald-server"))
        .args(args)
        .env_remove("HERALD_DKIM_ENCRYPTION_KEY")
        .output()
        .expect("run herald-server")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The end-to-end test's configuration with a `[domains]` table (the SMTP
/// port is never used: nothing is sent).
fn write_config(dir: &Path, db: &str, domains: &str) -> PathBuf {
    let path = crate::e2e::write_config(dir, db, 1, 1);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!("[domains]\n{domains}\n"));
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn rotate_dkim_keys_seals_stored_keys_through_the_cli() {
    let dir = std::env::temp_dir().join(format!("herald-vault-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.join("herald.db").display());

    let out = server(&["generate-encryption-key", "--id", "k7"]);
    assert!(out.status.success(), "{}", text(&out));
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("k7:") && key.len() == 3 + 44, "{key}");
    let out = server(&["generate-encryption-key", "--id", "Bad Id"]);
    assert!(!out.status.success(), "a bad id is refused");

    let config = write_config(&dir, &db, &format!("key_encryption_key = \"{key}\""));
    let c = config.to_str().unwrap();
    let out = server(&["migrate", "-c", c]);
    assert!(out.status.success(), "{}", text(&out));
    let out = server(&["create-account", "-c", c, "--name", "Shop"]);
    assert!(out.status.success(), "{}", text(&out));
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let account = created["account"]["id"].as_i64().unwrap();

    // A key stored before encryption was configured: PEM in the row.
    let pem = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../crates/auth/tests/data/ed25519.pem"),
    )
    .unwrap();
    let mut conn = sqlx::SqliteConnection::connect(&db).await.unwrap();
    sqlx::query("INSERT INTO herald_domains (account, domain, selector, private_key, dns_name, txt_record, verified) VALUES ($1, 'shop.test', 'herald', $2, 'herald._domainkey.shop.test', 'v=DKIM1; k=ed25519; p=x', 0)")
        .bind(account)
        .bind(&pem)
        .execute(&mut conn)
        .await
        .unwrap();

    let out = server(&["rotate-dkim-keys", "-c", c]);
    assert!(out.status.success(), "{}", text(&out));
    let done: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(done, serde_json::json!({"resealed": 1, "unchanged": 0}));
    let row: String = sqlx::query_scalar("SELECT private_key FROM herald_domains")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(
        row.starts_with("herald-aead:v1:k7:") && !row.contains("PRIVATE KEY"),
        "{row}"
    );
    let out = server(&["rotate-dkim-keys", "-c", c]);
    let done: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(done, serde_json::json!({"resealed": 0, "unchanged": 1}));

    // A key that is not one stops the command, naming the setting.
    let config = write_config(&dir, &db, "key_encryption_key = \"k7:short\"");
    let out = server(&["rotate-dkim-keys", "-c", config.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("domains.key_encryption_key"),
        "{}",
        text(&out)
    );
    // Without the key that sealed it, the rotation says which key is missing.
    let other =
        String::from_utf8(server(&["generate-encryption-key", "--id", "k8"]).stdout).unwrap();
    let config = write_config(
        &dir,
        &db,
        &format!("key_encryption_key = \"{}\"", other.trim()),
    );
    let out = server(&["rotate-dkim-keys", "-c", config.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("`k7`"), "{}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
}
