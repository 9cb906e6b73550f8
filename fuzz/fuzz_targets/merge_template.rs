//! The merge-template parser: any subject/text (and the values merged into
//! them) either compiles, resolves and builds, or gives an error; never a panic.
#![no_main]

use herald_message::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &str| {
    let mut parts = data.splitn(3, '\u{1f}');
    let subject = parts.next().unwrap_or_default();
    let text = parts.next().unwrap_or_default();
    let value = parts.next().unwrap_or_default();
    let template = Template { subject: subject.into(), html: String::new(), text: text.into() };
    let schema = FieldSchema::standard().with_custom_field("x");
    let Ok(compiled) = template.compile(&schema, &TrackingOptions::default()) else { return };
    let mut merge = MergeData::default();
    merge.person.insert("first_name".into(), value.into());
    merge.custom.insert("x".into(), value.into());
    let Ok(values) = compiled.resolve(&merge) else { return };
    let _ = compiled.render_subject(&values);
    let (Ok(tracker), Ok(platform), Ok(user), Ok(to)) = (
        Tracker::new(&[1; 32], "https://t.example"),
        Platform::new("P", "p@p.example", "p.example", "b.p.example", "p"),
        Mailbox::new(Some(value), "u@u.example"),
        Mailbox::new(None, "r@r.example"),
    ) else {
        return;
    };
    let sender = SenderIdentity { user, domain_verified: false };
    let params = BuildParams {
        platform: &platform,
        sender: &sender,
        to: &to,
        reply_to: None,
        kind: SendKind::Individual,
        message: MessageRef { account: 1, message: 2 },
        campaign: None,
        date: chrono::DateTime::UNIX_EPOCH,
        attachments: &[],
    };
    let _ = compiled.build(&values, &params, &tracker);
});
