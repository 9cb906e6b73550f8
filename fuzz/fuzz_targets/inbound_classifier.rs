//! Any bytes as an inbound message: classifying it (MIME, DSN fields, text
//! bounces, ARF, SES JSON) and judging its text as an SMTP reply and a DSN
//! diagnostic must return, never panic.
#![no_main]

use herald_eventlog::inbound;
use herald_schedule::{BounceRules, Evidence, Stage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let kind = inbound::classify_message(data);
    let _ = kind.classification();
    let text = String::from_utf8_lossy(data);
    let (status, diagnostic) = text.split_once('\u{1f}').unwrap_or(("", &text));
    for stage in [None, Some(Stage::Session), Some(Stage::Recipient), Some(Stage::Data)] {
        let _ = BounceRules::builtin().judge(&Evidence {
            code: None,
            status: Some(status),
            diagnostic: Some(diagnostic),
            gave_up: data.first().is_some_and(|b| b & 1 == 1),
            stage,
        });
    }
});
