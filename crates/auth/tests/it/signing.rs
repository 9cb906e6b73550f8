//! DKIM signatures on mail built by herald-message, verified by mail-auth
//! (through dnsmasq) and by dkimpy, an independent implementation (R-AUTH-1).

use crate::support::DnsServer;
use chrono::TimeZone;
use herald_auth::{DkimKey, DkimSigner, Dns, DnsConfig, KeyAlgorithm, generate_key};
use herald_message::{
    Attachment, BuildParams, FieldSchema, Mailbox, MergeData, MessageRef, Platform, SendKind,
    SenderIdentity, Template, Tracker, TrackingOptions,
};
use mail_auth::{AuthenticatedMessage, DkimResult};
use std::process::Command;
use std::time::Duration;

fn key(file: &str) -> DkimKey {
    let path = format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
    DkimKey::from_pem(&std::fs::read_to_string(&path).expect("read key")).expect("load key")
}

/// A mass email with non-ASCII names and subject, a 2,000-character line,
/// an attachment and an inline image.
fn build_email() -> Vec<u8> {
    let long_line = "Lorem ipsum dolor sit amet, ".repeat(72);
    let template = Template {
        subject: "Grüße, {{person.first_name}} — 春の特売 🎉".into(),
        html: format!(
            "<html><body><h1>Hallo {{{{person.first_name}}}}</h1><p>{long_line}</p><img src=\"cid:logo\"><a href=\"https://shop.example/sale?x=1&amp;y=2\">Sale</a></body></html>"
        ),
        text: format!("Hallo {{{{person.first_name}}}}\n{long_line}\n"),
    };
    let compiled = template
        .compile(
            &FieldSchema::standard(),
            &TrackingOptions {
                unsubscribe_link: true,
                ..TrackingOptions::default()
            },
        )
        .expect("compile");
    let mut data = MergeData::default();
    data.person
        .insert("first_name".into(), "Zoë Ångström".into());
    let values = compiled.resolve(&data).expect("resolve");
    let tracker = Tracker::new(&[7u8; 32], "https://t.herald.test").expect("tracker");
    let platform = Platform::new(
        "Herald Mailer",
        "mailer@herald.test",
        "herald.test",
        "bounces.herald.test",
        "herald",
    )
    .expect("platform");
    let sender = SenderIdentity {
        user: Mailbox::new(Some("Søren Kierkegaard"), "soren@shop.test").expect("from"),
        domain_verified: true,
    };
    let attachments = vec![
        Attachment {
            filename: "prisliste-2026.pdf".into(),
            content_type: "application/pdf".into(),
            data: (0..60_000u32).map(|i| (i * 7 % 251) as u8).collect(),
            content_id: None,
        },
        Attachment {
            filename: "logo.png".into(),
            content_type: "image/png".into(),
            data: vec![0x89, b'P', b'N', b'G', 0, 1, 2, 3],
            content_id: Some("logo".into()),
        },
    ];
    compiled
        .build(
            &values,
            &BuildParams {
                platform: &platform,
                sender: &sender,
                to: &Mailbox::new(Some("Jürgen Ñandú"), "jurgen@example.test").expect("to"),
                reply_to: Some(
                    &Mailbox::new(Some("Støtte"), "support@shop.test").expect("reply-to"),
                ),
                kind: SendKind::Mass,
                message: MessageRef {
                    account: 7,
                    message: 123_456,
                },
                campaign: Some(herald_message::CampaignId(99)),
                date: chrono::Utc
                    .with_ymd_and_hms(2026, 11, 26, 9, 30, 0)
                    .single()
                    .expect("date"),
                attachments: &attachments,
            },
            &tracker,
        )
        .expect("build")
        .message
}

fn dkimpy(message: &[u8], dns_name: &str, txt: &str) -> bool {
    let dir = std::env::temp_dir().join(format!("herald-dkim-{}-{}", std::process::id(), dns_name));
    std::fs::write(&dir, message).expect("write message");
    let script = format!("{}/tests/data/dkimpy_verify.py", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(script)
        .arg(&dir)
        .arg(dns_name)
        .arg(txt)
        .output()
        .expect("run python3");
    let _ = std::fs::remove_file(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "dkimpy is not installed (bash .ci/run installs it): {stderr}"
    );
    if !out.status.success() {
        eprintln!("dkimpy said: {stderr}");
    }
    out.status.success()
}

async fn mail_auth_verifies(message: &[u8], dns: &DnsServer) -> bool {
    let resolver = Dns::new(&DnsConfig {
        nameserver: Some(dns.addr),
        timeout: Duration::from_secs(2),
        attempts: 1,
    })
    .expect("resolver");
    let parsed = AuthenticatedMessage::parse(message).expect("parse signed message");
    let outputs = resolver.authenticator().verify_dkim(&parsed).await;
    assert_eq!(outputs.len(), 1, "one signature");
    outputs[0].result() == &DkimResult::Pass
}

async fn sign_and_verify(key: DkimKey, selector: &str) {
    let txt = key.public_key().txt_record();
    let dns_name = format!("{selector}._domainkey.shop.test");
    let dns = DnsServer::start(&[(&dns_name, &txt)], &[]);
    let signer = DkimSigner::new("shop.test", selector, key).expect("signer");
    let message = build_email();
    let signed = signer.sign_message(&message).expect("sign");
    let text = String::from_utf8_lossy(&signed);
    let header_end = text.find("\r\n\r\n").expect("header end");
    let headers = &text[..header_end];
    let h = headers
        .split("h=")
        .nth(1)
        .expect("h= tag")
        .split(';')
        .next()
        .expect("h value")
        .replace([' ', '\r', '\n', '\t'], "")
        .to_ascii_lowercase();
    assert_eq!(h.matches("from").count(), 2, "From is over-signed: {h}");
    for name in [
        "to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "reply-to",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "sender",
    ] {
        assert!(h.split(':').any(|x| x == name), "{name} signed: {h}");
    }
    assert!(headers.contains("c=relaxed/relaxed"), "{headers}");
    assert!(
        mail_auth_verifies(&signed, &dns).await,
        "mail-auth verifies {selector}"
    );
    assert!(
        dkimpy(&signed, &dns_name, &txt),
        "dkimpy verifies {selector}"
    );

    // The same checks fail on a tampered message: they can fail.
    let tampered = text.replacen("Subject: ", "Subject: X", 1).into_bytes();
    assert!(
        !mail_auth_verifies(&tampered, &dns).await,
        "mail-auth rejects a tampered {selector}"
    );
    assert!(
        !dkimpy(&tampered, &dns_name, &txt),
        "dkimpy rejects a tampered {selector}"
    );
}

#[tokio::test]
async fn rsa_pkcs1_signature_verifies_independently() {
    sign_and_verify(key("rsa-pkcs1.pem"), "rsa1").await;
}

#[tokio::test]
async fn rsa_pkcs8_signature_verifies_independently() {
    sign_and_verify(key("rsa-pkcs8.pem"), "rsa8").await;
}

#[tokio::test]
async fn ed25519_signature_verifies_independently() {
    let k = key("ed25519.pem");
    assert_eq!(k.algorithm(), KeyAlgorithm::Ed25519);
    sign_and_verify(k, "ed").await;
}

#[tokio::test]
async fn generated_keys_sign_and_their_records_verify() {
    for (alg, sel) in [
        (KeyAlgorithm::Rsa2048, "genrsa"),
        (KeyAlgorithm::Ed25519, "gened"),
    ] {
        let g = generate_key("shop.test", sel, alg).expect("generate");
        assert_eq!(g.dns_name, format!("{sel}._domainkey.shop.test"));
        assert_eq!(g.txt_record, g.public_key.txt_record());
        let k = DkimKey::from_pem(&g.private_key_pem).expect("load generated");
        assert_eq!(k.algorithm(), alg);
        // Issue 10 §3: common tools read the key (OpenSSL 3 refused the PKCS#8
        // v2 form of Ed25519 keys), and derive the public key we publish.
        let path =
            std::env::temp_dir().join(format!("herald-gen-{}-{sel}.pem", std::process::id()));
        std::fs::write(&path, &g.private_key_pem).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["pkey", "-noout", "-in"])
            .arg(&path)
            .output()
            .expect("openssl");
        let _ = std::fs::remove_file(&path);
        assert!(
            out.status.success(),
            "{sel}: openssl pkey: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        sign_and_verify(k, sel).await;
    }
}
