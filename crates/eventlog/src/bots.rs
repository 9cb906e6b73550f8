//! Who fetched an open pixel or followed a link (R-EVT-7): a person, a
//! privacy proxy that prefetches every image at delivery, or a bot.
//!
//! The rules, in order:
//! 1. Opens and clicks with no User-Agent at all: a bot.
//! 2. Opens through Gmail's image proxy (`GoogleImageProxy`, `ggpht.com`) and
//!    Yahoo's (`YahooMailProxy`): a **person**. Gmail fetches a message's
//!    images through its proxy when the message is opened, and caches them,
//!    so the first fetch is the person's open (later opens are not seen).
//! 3. Opens by Apple Mail Privacy Protection: a **prefetch**. MPP downloads
//!    remote content in the background when the message arrives, whether or
//!    not it is ever read. Known by its bare `Mozilla/5.0` User-Agent or an
//!    address in Apple's ranges ([`PrefetchRanges`]).
//! 4. Opens and clicks whose User-Agent names a scanner or a library: `bot`,
//!    `crawler`, `spider`, `scanner`, `preview`, `Barracuda`, `Proofpoint`,
//!    `Mimecast`, `python-requests`, `curl/`, `Go-http-client`, `Java/`,
//!    `wget`, `HeadlessChrome`: a bot.
//! 5. Clicks within 2 seconds of delivery (scanners follow links as the mail
//!    arrives; a person cannot open and click that fast): a bot.
//! 6. Clicks of one message on 3 or more different links within 2 seconds
//!    (scanners follow every link at once), among the events recorded together
//!    (one ingestion batch; the server batches tracking hits every few tens of
//!    milliseconds, so a scanner's burst lands in one batch): bots.
//!
//! Rates count people only; prefetches and bots are counted apart.

use crate::event::{EventKind, NewEvent};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

const PERSON_PROXIES: &[&str] = &["googleimageproxy", "ggpht.com", "yahoomailproxy"];
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

/// Who made an open or a click.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Origin {
    /// A person (also through Gmail's image proxy).
    Person,
    /// A privacy proxy that fetches every image at delivery (Apple MPP).
    Prefetch,
    /// A bot: a scanner, a library, no User-Agent, a click too fast to be human.
    Bot,
}

impl Origin {
    /// The value stored in `herald_events.bot`: 0 a person, 1 a bot, 2 a prefetch.
    pub fn stored(self) -> i64 {
        match self {
            Origin::Person => 0,
            Origin::Bot => 1,
            Origin::Prefetch => 2,
        }
    }

    /// The origin stored as `value` (rows from before prefetches were told
    /// apart hold 0 or 1).
    pub fn from_stored(value: i64) -> Self {
        match value {
            0 => Origin::Person,
            2 => Origin::Prefetch,
            _ => Origin::Bot,
        }
    }
}

/// Address ranges whose opens are privacy prefetches. The built-in set is
/// Apple's own network (17.0.0.0/8, registered to Apple Inc.); Apple publishes
/// the egress ranges of its proxies as a CSV (`prefix,country,region,city,`),
/// which [`PrefetchRanges::parse_csv`] reads and the configuration can load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefetchRanges {
    ranges: Vec<(IpAddr, u8)>,
}

impl Default for PrefetchRanges {
    fn default() -> Self {
        PrefetchRanges {
            ranges: vec![(IpAddr::from([17, 0, 0, 0]), 8)],
        }
    }
}

impl PrefetchRanges {
    /// No ranges: only the User-Agent tells prefetches apart.
    pub fn none() -> Self {
        PrefetchRanges { ranges: Vec::new() }
    }

    /// The built-in ranges plus those of a CSV whose first column is a CIDR
    /// prefix (Apple's `egress-ip-ranges.csv`); `#` lines and blank lines are
    /// skipped. The error names the line.
    pub fn parse_csv(text: &str) -> Result<Self, String> {
        let mut out = PrefetchRanges::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let prefix = line.split(',').next().unwrap_or("").trim();
            out.ranges.push(
                parse_cidr(prefix).ok_or_else(|| {
                    format!("line {}: `{prefix}` is not an address prefix", n + 1)
                })?,
            );
        }
        Ok(out)
    }

    /// Whether `ip` (text, as the tracking endpoints record it) is in a range.
    pub fn contains(&self, ip: &str) -> bool {
        let Ok(ip) = ip.trim().parse::<IpAddr>() else {
            return false;
        };
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.ranges
            .iter()
            .any(|&(net, len)| in_prefix(ip, net, len))
    }
}

/// An address prefix (`192.0.2.0/24`, `2001:db8::/32`, or one address).
pub fn parse_cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = text.split_once('/').unwrap_or((text, ""));
    let addr: IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = if len.is_empty() {
        max
    } else {
        len.parse().ok()?
    };
    (len <= max).then_some((addr, len))
}

/// Whether `ip` is in the prefix `net/len` (of the same family).
pub fn in_prefix(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// Who made an open or a click, by the rules above (rule 6 needs the batch:
/// [`origins`]). Other events are a person's.
pub fn origin(event: &NewEvent, prefetch: &PrefetchRanges) -> Origin {
    if !matches!(event.kind, EventKind::Open | EventKind::Click) {
        return Origin::Person;
    }
    let Some(ua) = event
        .user_agent
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
    else {
        return Origin::Bot;
    };
    let lower = ua.to_ascii_lowercase();
    if event.kind == EventKind::Open {
        if PERSON_PROXIES.iter().any(|p| lower.contains(p)) {
            return Origin::Person;
        }
        if lower == "mozilla/5.0" || event.ip.as_deref().is_some_and(|ip| prefetch.contains(ip)) {
            return Origin::Prefetch;
        }
    }
    if SCANNER_WORDS.iter().any(|w| lower.contains(w)) {
        return Origin::Bot;
    }
    if event.kind == EventKind::Click
        && event
            .since_delivery_secs
            .is_some_and(|s| (0..2).contains(&s))
    {
        return Origin::Bot;
    }
    Origin::Person
}

/// Whether an open or click is machine-made (a bot or a prefetch), with the
/// built-in prefetch ranges.
pub fn is_bot(event: &NewEvent) -> bool {
    origin(event, &PrefetchRanges::default()) != Origin::Person
}

/// The origin of each event of a batch: [`origin`], or a bot when part of a
/// burst of clicks on 3 or more links of one message within 2 seconds.
pub fn origins(events: &[NewEvent], prefetch: &PrefetchRanges) -> Vec<Origin> {
    let mut out: Vec<Origin> = events.iter().map(|e| origin(e, prefetch)).collect();
    let mut by_message: std::collections::HashMap<(u64, i64), Vec<usize>> =
        std::collections::HashMap::new();
    for (i, e) in events.iter().enumerate() {
        if e.kind == EventKind::Click
            && out[i] == Origin::Person
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
                    out[i] = Origin::Bot;
                }
            }
        }
    }
    out
}

/// Whether each event of a batch is machine-made ([`origins`] not a person).
pub fn flags(events: &[NewEvent]) -> Vec<bool> {
    origins(events, &PrefetchRanges::default())
        .into_iter()
        .map(|o| o != Origin::Person)
        .collect()
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

    fn open(ua: Option<&str>, ip: Option<&str>) -> NewEvent {
        let mut e = ev(EventKind::Open, ua, None);
        e.ip = ip.map(str::to_owned);
        e
    }

    const GMAIL: &str =
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)";

    #[test]
    fn gmail_s_proxy_is_a_person_apple_s_prefetch_and_scanners_are_not() {
        let r = PrefetchRanges::default();
        let o = |e: &NewEvent| origin(e, &r);
        assert_eq!(
            o(&open(Some(GMAIL), Some("66.249.84.1"))),
            Origin::Person,
            "Gmail opens on reading"
        );
        assert_eq!(
            o(&open(Some("Mozilla/5.0"), Some("203.0.113.9"))),
            Origin::Prefetch,
            "Apple MPP by its User-Agent"
        );
        assert_eq!(
            o(&open(Some(PERSON), Some("17.58.1.1"))),
            Origin::Prefetch,
            "Apple MPP by Apple's network"
        );
        assert_eq!(
            o(&open(Some(PERSON), Some("::ffff:17.58.1.1"))),
            Origin::Prefetch,
            "IPv4-mapped"
        );
        assert_eq!(o(&open(Some(PERSON), Some("203.0.113.9"))), Origin::Person);
        assert_eq!(o(&open(None, None)), Origin::Bot);
        assert_eq!(
            o(&open(
                Some("Mozilla/5.0 (compatible; Barracuda Sentinel)"),
                None
            )),
            Origin::Bot
        );
        assert_eq!(
            o(&ev(
                EventKind::Click,
                Some("Mozilla/5.0 (compatible; Barracuda Sentinel)"),
                Some(600)
            )),
            Origin::Bot
        );
        assert_eq!(
            o(&ev(EventKind::Click, Some("python-requests/2.31"), None)),
            Origin::Bot
        );
        assert_eq!(
            o(&ev(EventKind::Click, Some(PERSON), Some(1))),
            Origin::Bot,
            "clicked within 2 s of delivery"
        );
        assert_eq!(
            o(&ev(EventKind::Click, Some(PERSON), Some(45))),
            Origin::Person
        );
        assert_eq!(o(&ev(EventKind::Delivered, None, None)), Origin::Person);
        assert!(!is_bot(&open(Some(GMAIL), None)));
    }

    #[test]
    fn prefetch_ranges_read_apple_s_csv_and_name_a_bad_line() {
        let r = PrefetchRanges::parse_csv("# prefix,country,region,city,\n172.224.224.0/27,GB,GB-EN,London,\n2a02:26f7:b3c0:4000::/64,GB,GB-EN,London,\n").expect("csv");
        assert!(r.contains("172.224.224.5"));
        assert!(!r.contains("172.224.224.40"));
        assert!(r.contains("2a02:26f7:b3c0:4000::1"));
        assert!(r.contains("17.1.2.3"), "the built-in range stays");
        assert!(!r.contains("not an ip"));
        let e = PrefetchRanges::parse_csv("10.0.0.0/8,x\nnonsense,GB").expect_err("bad prefix");
        assert!(e.contains("line 2"), "{e}");
        assert!(!PrefetchRanges::none().contains("17.1.2.3"));
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
