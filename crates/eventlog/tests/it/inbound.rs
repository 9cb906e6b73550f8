//! Inbound reports of real-world shapes (files in tests/data/inbound), each
//! asserting its class and the message it maps back to (R-EVT-5).

use herald_eventlog::inbound::{self, InboundKind};
use herald_message::{MessageRef, Tracker};
use herald_schedule::BounceClass;

const REF: MessageRef = MessageRef {
    account: 4,
    message: 1234,
};

fn tracker() -> Tracker {
    Tracker::new(&[3; 32], "https://t.herald.example").unwrap()
}

fn load(name: &str, tracker: &Tracker) -> Vec<u8> {
    let path = format!("{}/tests/data/inbound/{name}", env!("CARGO_MANIFEST_DIR"));
    let verp = tracker.verp_address(REF, "bounces.herald.example");
    std::fs::read_to_string(path)
        .unwrap()
        .replace("{VERP}", &verp)
        .replace('\n', "\r\n")
        .into_bytes()
}

fn dsn(name: &str) -> Vec<(String, Option<BounceClass>)> {
    let t = tracker();
    let parsed = inbound::parse(&load(name, &t), &t);
    assert_eq!(
        parsed.message,
        Some(REF),
        "{name}: mapped to its message by the VERP address"
    );
    match parsed.kind {
        InboundKind::Dsn { recipients } => recipients
            .into_iter()
            .map(|r| (r.recipient, r.class))
            .collect(),
        other => panic!("{name}: expected a DSN, got {other:?}"),
    }
}

#[test]
fn postfix_user_unknown_is_hard() {
    assert_eq!(
        dsn("postfix-user-unknown.eml"),
        vec![("gone@example.org".into(), Some(BounceClass::Hard))]
    );
}

#[test]
fn exim_text_bounce_is_hard() {
    assert_eq!(
        dsn("exim-text-bounce.eml"),
        vec![("nobody@example.net".into(), Some(BounceClass::Hard))]
    );
}

#[test]
fn sendmail_mailbox_full_is_soft() {
    assert_eq!(
        dsn("sendmail-mailbox-full.eml"),
        vec![("full@example.com".into(), Some(BounceClass::Soft))]
    );
}

#[test]
fn exchange_in_german_recipient_not_found_is_hard() {
    assert_eq!(
        dsn("exchange-german.eml"),
        vec![("niemand@firma.example".into(), Some(BounceClass::Hard))]
    );
}

#[test]
fn gmail_unauthenticated_is_blocked() {
    assert_eq!(
        dsn("gmail-unauthenticated.eml"),
        vec![("someone@gmail.com".into(), Some(BounceClass::Blocked))]
    );
}

#[test]
fn microsoft_365_blocklisted_ip_is_blocked() {
    assert_eq!(
        dsn("m365-spamhaus.eml"),
        vec![("someone@hotmail.example".into(), Some(BounceClass::Blocked))]
    );
}

#[test]
fn multi_recipient_dsn_classes_each_recipient() {
    assert_eq!(
        dsn("multi-recipient.eml"),
        vec![
            ("a@example.org".into(), Some(BounceClass::Hard)),
            ("b@example.org".into(), Some(BounceClass::Soft)),
            // Delayed: a temporary failure (soft); ingest records no event for it.
            ("c@example.org".into(), Some(BounceClass::Soft)),
        ]
    );
}

#[test]
fn out_of_office_replies_are_never_bounces() {
    let t = tracker();
    for name in ["out-of-office-headers.eml", "out-of-office-subject.eml"] {
        let parsed = inbound::parse(&load(name, &t), &t);
        assert_eq!(parsed.kind, InboundKind::AutoReply, "{name}");
    }
}

#[test]
fn arf_abuse_report_is_a_complaint_about_its_message() {
    let t = tracker();
    let parsed = inbound::parse(&load("arf-abuse.eml", &t), &t);
    assert_eq!(
        parsed.kind,
        InboundKind::Complaint {
            feedback_type: "abuse".into()
        }
    );
    assert_eq!(parsed.message, Some(REF));
}

#[test]
fn a_forged_or_foreign_verp_address_maps_to_nothing() {
    let signer = Tracker::new(&[9; 32], "https://t.other.example").unwrap();
    let raw = load("postfix-user-unknown.eml", &signer);
    let parsed = inbound::parse(&raw, &tracker());
    assert_eq!(parsed.message, None);
    assert!(
        matches!(parsed.kind, InboundKind::Dsn { .. }),
        "still classified"
    );
}

#[test]
fn garbage_is_other_not_a_panic() {
    let t = tracker();
    for raw in [&b""[..], b"\x00\xff\xfe", b"Subject: hi\r\n\r\nbody", b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n--x\r\nContent-Type: message/delivery-status\r\n\r\nAction: failed\r\n--x--"] {
        let parsed = inbound::parse(raw, &t);
        assert!(matches!(parsed.kind, InboundKind::Other | InboundKind::Dsn { .. }), "{parsed:?}");
        assert_eq!(parsed.message, None);
    }
}
