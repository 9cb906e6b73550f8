//! The token decoder: any text is rejected or decodes to a token that encodes
//! back to the same text (one token, one spelling); never a panic.
#![no_main]

use herald_message::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(tracker) = Tracker::new(&[7; 32], "https://t.example") else { return };
    if let Ok(token) = tracker.decode(text) {
        assert_eq!(tracker.encode(&token), text, "a decoded token re-encodes to itself");
    }
    let _ = tracker.decode_verp(text);
    let _ = tracker.decode_kind(text, TokenKind::Click);
});
