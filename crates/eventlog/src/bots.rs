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
//! 5. Clicks of one message on 3 or more different links within 2 seconds
//!    (scanners follow every link at once), among the events recorded together
//!    (one ingestion batch; the server batches tracking hits every few tens of
//!    milliseconds, so a scanner's burst lands in one batch).

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

/// The bot flag of each event of a batch: [`is_bot`], or part of a burst of
/// clicks on 3 or more links of one message within 2 seconds.
pub fn flags(events: &[NewEvent]) -> Vec<bool> {
    let mut out: Vec<bool> = events.iter().map(is_bot).collect();
    let mut by_message: std::collections::HashMap<(u64, i64), Vec<usize>> =
        std::collections::HashMap::new();
    for (i, e) in events.iter().enumerate() {
        if e.kind == EventKind::Click
            && !out[i]
            && let Some(m) = e.message
        {
            by_message.entry((e.account, m)).or_default().push(i);
        }
    }
    for mut clicks in by_message.into_values() {
        clicks.sort_by_key(|&i| events[i].at);
        for start in 0..clicks.len() {
            let t0 = events[clicks[start]].at;
            let window: Vec<usize> = clicks[start..]
                .iter()
                .copied()
                .take_while(|&i| events[i].at - t0 <= chrono::Duration::seconds(2))
                .collect();
            let links: std::collections::HashSet<Option<u16>> =
                window.iter().map(|&i| events[i].link).collect();
            if links.len() >= 3 {
                for i in window {
                    out[i] = true;
                }
            }
        }
    }
    out
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

    #[test]
    fn a_burst_on_every_link_is_a_scanner_a_person_s_clicks_are_not() {
        let t = Utc::now();
        let click = |link: u16, ms: i64, message: i64| {
            let mut e = ev(EventKind::Click, Some(PERSON), Some(600));
            e.at = t + chrono::Duration::milliseconds(ms);
            e.link = Some(link);
            e.message = Some(message);
            e
        };
        // Message 1: three links within 300 ms. Message 2: three links a minute apart.
        let batch = vec![
            click(0, 0, 1),
            click(1, 100, 1),
            click(2, 300, 1),
            click(0, 0, 2),
            click(1, 60_000, 2),
            click(2, 120_000, 2),
        ];
        assert_eq!(flags(&batch), vec![true, true, true, false, false, false]);
        // Two links at once is not enough.
        assert_eq!(
            flags(&[click(0, 0, 3), click(1, 10, 3)]),
            vec![false, false]
        );
    }
}
