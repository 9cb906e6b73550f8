//! Bot and privacy-proxy traffic (R-EVT-7): opens fetched by image proxies and
//! clicks made by link scanners are flagged and counted apart from people's.
//!
//! The rules, in order:
//! 1. Opens whose User-Agent is a known image proxy: Gmail's `GoogleImageProxy`,
//!    Yahoo's `YahooMailProxy`, and Apple Mail Privacy Protection's bare
//!    `Mozilla/5.0` (Apple's proxies send no browser or OS tokens).
//! 2. Opens and clicks with no User-Agent at all.
//! 3. Clicks whose User-Agent names a scanner or a library: `bot`, `crawler`,
//!    `spider`, `scanner`, `preview`, `Barracuda`, `Proofpoint`, `Mimecast`,
//!    `python-requests`, `curl/`, `Go-http-client`, `Java/`, `wget`.
//! 4. Clicks within 2 seconds of delivery (scanners follow links as the mail
//!    arrives; a person cannot open and click that fast).
//!
//! ("All links clicked at once" is the event log's rule, not this function's:
//! it needs the message's other clicks.)

use crate::event::{EventKind, NewEvent};

const PROXY_AGENTS: &[&str] = &["googleimageproxy", "yahoomailproxy", "ggpht.com"];
const SCANNER_WORDS: &[&str] = &[
    "bot",
    "crawler",
    "spider",
    "scanner",
    "preview",
    "barracuda",
    "proofpoint",
    "mimecast",
    "python-requests",
    "curl/",
    "go-http-client",
    "java/",
    "wget",
    "headlesschrome",
];

/// Whether an open or click looks machine-made, by the rules above.
pub fn is_bot(event: &NewEvent) -> bool {
    if !matches!(event.kind, EventKind::Open | EventKind::Click) {
        return false;
    }
    let Some(ua) = event
        .user_agent
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
    else {
        return true;
    };
    let lower = ua.to_ascii_lowercase();
    match event.kind {
        EventKind::Open => PROXY_AGENTS.iter().any(|p| lower.contains(p)) || lower == "mozilla/5.0",
        _ => {
            SCANNER_WORDS.iter().any(|w| lower.contains(w))
                || event
                    .since_delivery_secs
                    .is_some_and(|s| (0..2).contains(&s))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn ev(kind: EventKind, ua: Option<&str>, since: Option<i64>) -> NewEvent {
        let mut e = NewEvent::new(kind, Utc::now(), 1, "a@b.c");
        e.user_agent = ua.map(str::to_owned);
        e.since_delivery_secs = since;
        e
    }

    const PERSON: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";

    #[test]
    fn proxies_and_scanners_are_flagged_people_are_not() {
        assert!(is_bot(&ev(
            EventKind::Open,
            Some(
                "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
            ),
            None
        )));
        assert!(
            is_bot(&ev(EventKind::Open, Some("Mozilla/5.0"), None)),
            "Apple MPP"
        );
        assert!(is_bot(&ev(EventKind::Open, None, None)));
        assert!(!is_bot(&ev(EventKind::Open, Some(PERSON), None)));
        assert!(is_bot(&ev(
            EventKind::Click,
            Some("Mozilla/5.0 (compatible; Barracuda Sentinel)"),
            Some(600)
        )));
        assert!(is_bot(&ev(
            EventKind::Click,
            Some("python-requests/2.31"),
            None
        )));
        assert!(
            is_bot(&ev(EventKind::Click, Some(PERSON), Some(1))),
            "clicked within 2 s of delivery"
        );
        assert!(!is_bot(&ev(EventKind::Click, Some(PERSON), Some(45))));
        assert!(!is_bot(&ev(EventKind::Delivered, None, None)));
    }
}
