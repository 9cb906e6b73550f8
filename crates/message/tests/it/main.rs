//! Integration tests of herald-message: whole messages built, parsed back with
//! mail-parser, and checked header by header.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use chrono::TimeZone;
use herald_message::*;
use mail_parser::{MessageParser, MimeHeaders};
use proptest::prelude::*;

const SECRET: &[u8] = b"integration-test-secret-32-bytes!";

fn tracker() -> Tracker {
    Tracker::new(SECRET, "https://t.herald.test").expect("tracker")
}

fn platform() -> Platform {
    Platform::new(
        "Herald",
        "mailer@herald.test",
        "herald.test",
        "bounces.herald.test",
        "herald",
    )
    .expect("platform")
}

fn template() -> Template {
    Template {
        subject: "Nyt fra {{organisation.name | \"os\"}}, {{person.first_name}}".into(),
        html: r#"<html><body><p>Kære {{person.first_name}}</p>
<a href="https://shop.test/a?x=1&amp;y=2">Shop</a>
<a href="mailto:hi@shop.test">Mail</a>
<a href="https://shop.test/b" data-herald-label="Spring landing page">Spring</a>
</body></html>"#
            .into(),
        text: "Kære {{person.first_name}}\nhttps://shop.test/a\n".into(),
    }
}

fn data(first: &str) -> MergeData {
    let mut d = MergeData::default();
    d.person.insert("first_name".into(), first.into());
    d
}

fn date() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc
        .with_ymd_and_hms(2026, 11, 26, 10, 0, 0)
        .single()
        .expect("date")
}

fn build(
    compiled: &CompiledTemplate,
    values: &MergeValues,
    kind: SendKind,
    verified: bool,
    to_name: Option<&str>,
) -> Result<OutgoingEmail> {
    let sender = SenderIdentity {
        user: Mailbox::new(Some("Åse Ødegård"), "ase@shop.test")?,
        domain_verified: verified,
    };
    let to = Mailbox::new(to_name, "kunde@example.test")?;
    compiled.build(
        values,
        &BuildParams {
            platform: &platform(),
            sender: &sender,
            to: &to,
            reply_to: None,
            kind,
            message: MessageRef {
                account: 5,
                message: 77,
            },
            campaign: Some(herald_message::CampaignId(3)),
            date: date(),
            attachments: &[],
        },
        &tracker(),
    )
}

fn compiled(unsubscribe: bool) -> CompiledTemplate {
    template()
        .compile(
            &FieldSchema::standard(),
            &TrackingOptions {
                unsubscribe_link: unsubscribe,
                ..TrackingOptions::default()
            },
        )
        .expect("compile")
}

fn header_text(raw: &[u8], name: &str) -> Option<String> {
    let msg = MessageParser::default().parse(raw)?;
    msg.header_raw(name).map(|v| v.trim().to_owned())
}

#[test]
fn unverified_domain_gets_sender_and_platform_envelope() {
    let c = compiled(false);
    let v = c.resolve(&data("Jens")).expect("resolve");
    let email = build(&c, &v, SendKind::Individual, false, Some("Kunde")).expect("build");
    let msg = MessageParser::default()
        .parse(&email.message)
        .expect("parse");
    assert_eq!(
        msg.from().and_then(|a| a.first()).and_then(|a| a.address()),
        Some("ase@shop.test")
    );
    assert_eq!(
        msg.from().and_then(|a| a.first()).and_then(|a| a.name()),
        Some("Åse Ødegård")
    );
    assert_eq!(
        msg.sender()
            .and_then(|a| a.first())
            .and_then(|a| a.address()),
        Some("mailer@herald.test")
    );
    assert_eq!(msg.subject(), Some("Nyt fra os, Jens"));
    assert_eq!(msg.message_id(), Some(email.message_id.as_str()));
    assert!(email.message_id.ends_with("@herald.test"));
    assert_eq!(
        msg.date().map(|d| d.to_timestamp()),
        Some(date().timestamp())
    );
    assert!(
        email.envelope.mail_from.starts_with("b-")
            && email.envelope.mail_from.ends_with("@bounces.herald.test")
    );
    assert_eq!(
        tracker()
            .decode_verp(&email.envelope.mail_from)
            .map(|t| t.message),
        Ok(MessageRef {
            account: 5,
            message: 77
        })
    );
    assert_eq!(email.envelope.rcpt_to, "kunde@example.test");
    assert_eq!(
        header_text(&email.message, "Feedback-ID").as_deref(),
        Some("3:5:individual:herald")
    );
    assert!(
        header_text(&email.message, "List-Unsubscribe").is_none(),
        "individual mail has no List-Unsubscribe"
    );
}

#[test]
fn verified_domain_has_no_sender_header() {
    let c = compiled(false);
    let v = c.resolve(&data("Jens")).expect("resolve");
    let email = build(&c, &v, SendKind::Individual, true, None).expect("build");
    let msg = MessageParser::default()
        .parse(&email.message)
        .expect("parse");
    assert!(msg.sender().is_none());
    assert!(header_text(&email.message, "Sender").is_none());
}

#[test]
fn mass_mail_carries_one_click_unsubscribe() {
    let c = compiled(true);
    let v = c.resolve(&data("Jens")).expect("resolve");
    let email = build(&c, &v, SendKind::Mass, false, None).expect("build");
    let lu = header_text(&email.message, "List-Unsubscribe").expect("List-Unsubscribe");
    let url = lu.trim_start_matches('<').trim_end_matches('>');
    let token = url
        .strip_prefix("https://t.herald.test/u/")
        .expect("unsubscribe URL");
    assert_eq!(
        tracker()
            .decode_kind(token, TokenKind::Unsubscribe)
            .map(|t| t.message.message),
        Ok(77)
    );
    assert_eq!(
        header_text(&email.message, "List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    let msg = MessageParser::default()
        .parse(&email.message)
        .expect("parse");
    assert!(
        msg.body_html(0).is_some_and(|h| h.contains(url)),
        "unsubscribe link in the HTML body"
    );
    assert!(
        msg.body_text(0).is_some_and(|t| t.contains(url)),
        "unsubscribe link in the text body"
    );
    assert_eq!(
        header_text(&email.message, "Feedback-ID").as_deref(),
        Some("3:5:mass:herald")
    );
}

#[test]
fn mass_mail_without_an_unsubscribe_link_is_refused() {
    let c = compiled(false);
    let v = c.resolve(&data("Jens")).expect("resolve");
    let err = build(&c, &v, SendKind::Mass, false, None).unwrap_err();
    assert!(err.to_string().contains("unsubscribe"), "{err}");
}

#[test]
fn links_are_tracked_and_resolve_to_their_recorded_url() {
    let c = compiled(false);
    assert_eq!(c.links().len(), 2);
    assert_eq!(c.links()[1].label, "Spring landing page");
    let v = c.resolve(&data("Jens")).expect("resolve");
    let email = build(&c, &v, SendKind::Individual, false, None).expect("build");
    let msg = MessageParser::default()
        .parse(&email.message)
        .expect("parse");
    let html = msg.body_html(0).expect("html").into_owned();
    assert!(html.contains("mailto:hi@shop.test"), "mailto untouched");
    assert!(
        !html.contains("https://shop.test/a"),
        "tracked link rewritten"
    );
    let clicks: Vec<&str> = html
        .split("https://t.herald.test/c/")
        .skip(1)
        .map(|s| s.split('"').next().unwrap_or(""))
        .collect();
    assert_eq!(clicks.len(), 2);
    for (i, token) in clicks.iter().enumerate() {
        let t = tracker()
            .decode_kind(token, TokenKind::Click)
            .expect("click token");
        assert_eq!(t.link, Some(i as u16));
        assert_eq!(
            t.message,
            MessageRef {
                account: 5,
                message: 77
            }
        );
    }
    assert_eq!(
        c.link_url(0, &v).as_deref(),
        Some("https://shop.test/a?x=1&y=2")
    );
    assert_eq!(c.link_url(9, &v), None);
    assert_eq!(
        html.matches("https://t.herald.test/o/").count(),
        1,
        "one open pixel"
    );
    // The text part keeps its links as written.
    assert!(
        msg.body_text(0)
            .is_some_and(|t| t.contains("https://shop.test/a"))
    );
}

#[test]
fn merged_values_are_stored_and_rendered_later_without_the_person() {
    let c = compiled(true);
    let v = c.resolve(&data("Jens <b>")).expect("resolve");
    let stored_template = serde_json::to_string(&c).expect("serialise template");
    let stored_values = serde_json::to_string(&v).expect("serialise values");
    assert_eq!(stored_values, r#"{"person.first_name":"Jens <b>"}"#);
    let c2: CompiledTemplate = serde_json::from_str(&stored_template).expect("load template");
    let v2: MergeValues = serde_json::from_str(&stored_values).expect("load values");
    let a = build(&c, &v, SendKind::Mass, false, None).expect("build now");
    let b = build(&c2, &v2, SendKind::Mass, false, None).expect("build later");
    // Equal but for the MIME boundaries, which mail-builder draws afresh each time.
    assert_eq!(a.envelope, b.envelope);
    assert_eq!(a.message_id, b.message_id);
    assert_eq!(
        without_boundaries(&a.message),
        without_boundaries(&b.message)
    );
    let html = MessageParser::default()
        .parse(&b.message)
        .and_then(|m| m.body_html(0).map(|h| h.into_owned()))
        .expect("html");
    assert!(html.contains("Kære Jens &lt;b&gt;"), "escaped in HTML");
}

#[test]
fn non_ascii_subjects_and_names_are_encoded() {
    let t = Template {
        subject: "Grüße 🎉 {{person.first_name}}".into(),
        html: String::new(),
        text: "x".into(),
    };
    let c = t
        .compile(&FieldSchema::standard(), &TrackingOptions::default())
        .expect("compile");
    let v = c.resolve(&data("Zoë")).expect("resolve");
    let email = build(&c, &v, SendKind::Individual, true, Some("Jürgen")).expect("build");
    let head_end = email
        .message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    assert!(
        email.message[..head_end].is_ascii(),
        "headers are 7-bit (RFC 2047)"
    );
    let msg = MessageParser::default()
        .parse(&email.message)
        .expect("parse");
    assert_eq!(msg.subject(), Some("Grüße 🎉 Zoë"));
    assert_eq!(
        msg.to().and_then(|a| a.first()).and_then(|a| a.name()),
        Some("Jürgen")
    );
}

#[test]
fn attachments_and_inline_parts_are_built() {
    let c = compiled(false);
    let v = c.resolve(&data("Jens")).expect("resolve");
    let sender = SenderIdentity {
        user: Mailbox::new(None, "ase@shop.test").expect("from"),
        domain_verified: true,
    };
    let to = Mailbox::new(None, "kunde@example.test").expect("to");
    let attachments = vec![
        Attachment {
            filename: "faktura.pdf".into(),
            content_type: "application/pdf".into(),
            data: vec![1, 2, 3, 255],
            content_id: None,
        },
        Attachment {
            filename: "logo.png".into(),
            content_type: "image/png".into(),
            data: vec![9; 10],
            content_id: Some("logo@shop".into()),
        },
    ];
    let params = BuildParams {
        platform: &platform(),
        sender: &sender,
        to: &to,
        reply_to: None,
        kind: SendKind::Individual,
        message: MessageRef {
            account: 1,
            message: 1,
        },
        campaign: None,
        date: date(),
        attachments: &attachments,
    };
    let email = c.build(&v, &params, &tracker()).expect("build");
    let msg = MessageParser::default()
        .parse(&email.message)
        .expect("parse");
    assert_eq!(msg.attachment_count(), 2);
    let pdf = msg
        .attachments()
        .find(|a| a.attachment_name() == Some("faktura.pdf"))
        .expect("pdf");
    assert_eq!(pdf.contents(), &[1, 2, 3, 255]);
    let bad = vec![Attachment {
        filename: "x\r\nBcc: a@b.c".into(),
        content_type: "text/plain".into(),
        data: vec![],
        content_id: None,
    }];
    let err = c
        .build(
            &v,
            &BuildParams {
                attachments: &bad,
                ..params
            },
            &tracker(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::HeaderInjection { .. }), "{err}");
    let bad = vec![Attachment {
        filename: "x".into(),
        content_type: "not a type".into(),
        data: vec![],
        content_id: None,
    }];
    assert!(
        c.build(
            &v,
            &BuildParams {
                attachments: &bad,
                ..params
            },
            &tracker()
        )
        .is_err()
    );
}

#[test]
fn bad_input_gets_clear_errors() {
    let schema = FieldSchema::standard();
    let o = TrackingOptions::default();
    let empty = Template {
        subject: "s".into(),
        html: "  ".into(),
        text: "\n".into(),
    };
    assert_eq!(empty.compile(&schema, &o).unwrap_err(), Error::EmptyBody);
    let unknown = Template {
        subject: "s".into(),
        html: "<p>\n {{person.shoesize}}</p>".into(),
        text: String::new(),
    };
    assert_eq!(
        unknown.compile(&schema, &o).unwrap_err().to_string(),
        "HTML body: unknown merge field `person.shoesize` at line 2, column 2"
    );
    let injected = Template {
        subject: "a\r\nBcc: x@y.z".into(),
        html: String::new(),
        text: "t".into(),
    };
    assert!(matches!(
        injected.compile(&schema, &o),
        Err(Error::HeaderInjection { .. })
    ));
    for (field, addr) in [("to", "no-at-sign"), ("to", "a@b@"), ("to", "x@-bad-.test")] {
        let err = Mailbox::for_field(field, None, addr).unwrap_err();
        assert!(err.to_string().starts_with("to: "), "{err}");
    }
}

#[test]
fn malformed_html_is_rewritten_without_panic() {
    let t = Template {
        subject: "s".into(),
        html: "<html><body><a href=https://x.test/1>one<a href='https://x.test/2'>two</p></div><table><tr><td><a href=\"https://x.test/3\"".into(),
        text: String::new(),
    };
    let c = t
        .compile(&FieldSchema::standard(), &TrackingOptions::default())
        .expect("compile");
    assert!(c.links().len() >= 2, "{:?}", c.links());
}

#[test]
fn ten_thousand_links_work_and_one_more_than_the_limit_is_an_error() {
    let html: String = (0..10_000)
        .map(|i| format!("<a href=\"https://x.test/{i}\">{i}</a>"))
        .collect();
    let t = Template {
        subject: "s".into(),
        html,
        text: String::new(),
    };
    let c = t
        .compile(&FieldSchema::standard(), &TrackingOptions::default())
        .expect("compile");
    assert_eq!(c.links().len(), 10_000);
    assert_eq!(
        c.link_url(9_999, &MergeValues::default()).as_deref(),
        Some("https://x.test/9999")
    );
    let o = TrackingOptions {
        max_links: 9_999,
        ..TrackingOptions::default()
    };
    let err = t.compile(&FieldSchema::standard(), &o).unwrap_err();
    assert!(
        err.to_string().contains("more than 9999 tracked links"),
        "{err}"
    );
}

fn without_boundaries(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw).into_owned();
    let boundaries: Vec<String> = text
        .split("boundary=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next().map(str::to_owned))
        .collect();
    assert!(!boundaries.is_empty(), "a multipart message");
    boundaries
        .iter()
        .fold(text, |t, b| t.replace(b.as_str(), "BOUNDARY"))
}

fn header_names(raw: &[u8]) -> Vec<String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    String::from_utf8_lossy(&raw[..end])
        .split("\r\n")
        .filter(|l| !l.starts_with([' ', '\t']))
        .map(|l| l.split(':').next().unwrap_or("").to_ascii_lowercase())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_merged_value_or_name_can_add_a_header_line(value in any::<String>(), name in any::<String>()) {
        let c = compiled(true);
        let expected = header_names(&build(&c, &c.resolve(&data("x")).expect("plain"), SendKind::Mass, false, Some("n")).expect("build").message);
        let Ok(v) = c.resolve(&data(&value)) else {
            prop_assert!(value.chars().any(|ch| ch.is_control() && ch != '\t'));
            return Ok(());
        };
        match build(&c, &v, SendKind::Mass, false, Some(&name)) {
            Ok(email) => prop_assert_eq!(header_names(&email.message), expected),
            Err(e) => prop_assert!(matches!(e, Error::HeaderInjection { .. }), "{}", e),
        }
    }
}

#[test]
fn html_that_trips_lol_html_s_internal_check_is_an_error_not_a_panic() {
    // Found by the link_rewriter fuzz target: lol_html reports an internal
    // error on it (and debug-asserts first), which must surface as Error::Html.
    let path = format!(
        "{}/tests/data/lol_html-internal-error.html",
        env!("CARGO_MANIFEST_DIR")
    );
    let html = String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned();
    let t = Template {
        subject: "s".into(),
        html,
        text: String::new(),
    };
    match t.compile(
        &FieldSchema::standard(),
        &TrackingOptions {
            unsubscribe_link: true,
            ..TrackingOptions::default()
        },
    ) {
        Ok(_) => panic!("lol_html accepted the input; if it was fixed upstream, this test can go"),
        Err(Error::Html(message)) => {
            assert!(message.contains("Tag should be a start tag"), "{message}")
        }
        Err(other) => panic!("unexpected error {other}"),
    }
}

fn subject_as_read(subject: &str) -> Option<String> {
    let t = Template {
        subject: subject.into(),
        html: String::new(),
        text: "x".into(),
    };
    let c = t
        .compile(&FieldSchema::standard(), &TrackingOptions::default())
        .ok()?;
    let v = c.resolve(&data("Zoë")).ok()?;
    let email = build(&c, &v, SendKind::Individual, true, None).ok()?;
    MessageParser::default()
        .parse(&email.message)
        .and_then(|m| m.subject().map(str::to_owned))
}

/// Issue 10 §3: text that looks like an RFC 2047 encoded word is written
/// encoded, so mail programs show what the user typed, not its decoding.
#[test]
fn a_subject_that_looks_encoded_reads_as_typed() {
    for typed in [
        "Price =?utf-8?q?=E2=82=AC?= 10",
        "=?iso-8859-1?q?caf=E9?=",
        "a =?x?= b",
        "=?utf-8?b?SGk=?= and a long tail that needs folding across more than one encoded word, surely",
    ] {
        assert_eq!(subject_as_read(typed).as_deref(), Some(typed), "{typed}");
    }
}

proptest::proptest! {
    #[test]
    fn any_subject_with_encoded_word_markers_reads_as_typed(prefix in "[ -~]{0,40}", inner in "[a-zA-Z0-9=?_ ]{0,30}", suffix in "[ -~äöü€]{0,40}") {
        let typed = format!("{prefix}=?{inner}?={suffix}");
        // Merge-field syntax and line breaks are the template's business; keep to text.
        proptest::prop_assume!(!typed.contains("{{") && !typed.contains("}}") && typed.trim() == typed && !typed.contains("  "));
        proptest::prop_assert_eq!(subject_as_read(&typed), Some(typed.clone()));
    }
}
