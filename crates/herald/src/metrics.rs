//! Counters for `GET /metrics` (R-OPS-3), in the Prometheus text format.
//! Counters are per process; gauges (the outbox) are read at scrape time.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// What this process counted since it started.
#[derive(Debug, Default)]
pub struct Metrics {
    /// API requests answered, by class.
    pub http_2xx: AtomicU64,
    /// Client errors.
    pub http_4xx: AtomicU64,
    /// Server errors.
    pub http_5xx: AtomicU64,
    /// Click redirects served.
    pub clicks: AtomicU64,
    /// Open pixels served for a valid token.
    pub opens: AtomicU64,
    /// Unsubscribes recorded.
    pub unsubscribes: AtomicU64,
    /// Sends accepted through the API.
    pub sends_accepted: AtomicU64,
    /// Messages queued by those sends.
    pub messages_queued: AtomicU64,
    /// Inbound bounce and complaint messages accepted.
    pub inbound: AtomicU64,
    /// SMS texts queued by SMS sends (the worker's metrics count what the
    /// gateway did with them).
    pub sms_queued: AtomicU64,
}

impl Metrics {
    /// Counts one answered request by its status.
    pub fn count_status(&self, status: u16) {
        let c = match status {
            500.. => &self.http_5xx,
            400..=499 => &self.http_4xx,
            _ => &self.http_2xx,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text, with `outbox_pending` (messages queued, claimed
    /// or deferred) read from the database by the caller.
    pub fn render(&self, outbox_pending: Option<u64>) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, labels: &str, v: &AtomicU64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name}{labels} {}", v.load(Ordering::Relaxed));
        };
        counter(
            "herald_clicks_total",
            "Click redirects served.",
            "",
            &self.clicks,
        );
        counter(
            "herald_opens_total",
            "Open pixels served for valid tokens.",
            "",
            &self.opens,
        );
        counter(
            "herald_unsubscribes_total",
            "Unsubscribes recorded.",
            "",
            &self.unsubscribes,
        );
        counter(
            "herald_sends_accepted_total",
            "Sends accepted through the API.",
            "",
            &self.sends_accepted,
        );
        counter(
            "herald_messages_queued_total",
            "Messages queued by accepted sends.",
            "",
            &self.messages_queued,
        );
        counter(
            "herald_inbound_messages_total",
            "Inbound bounce and complaint messages accepted.",
            "",
            &self.inbound,
        );
        counter(
            "herald_sms_queued_total",
            "SMS texts queued by SMS sends.",
            "",
            &self.sms_queued,
        );
        let _ = writeln!(
            out,
            "# HELP herald_http_responses_total API responses by status class.\n# TYPE herald_http_responses_total counter"
        );
        for (class, v) in [
            ("2xx", &self.http_2xx),
            ("4xx", &self.http_4xx),
            ("5xx", &self.http_5xx),
        ] {
            let _ = writeln!(
                out,
                "herald_http_responses_total{{class=\"{class}\"}} {}",
                v.load(Ordering::Relaxed)
            );
        }
        if let Some(p) = outbox_pending {
            let _ = writeln!(
                out,
                "# HELP herald_outbox_pending Messages queued, claimed or deferred.\n# TYPE herald_outbox_pending gauge\nherald_outbox_pending {p}"
            );
        }
        out
    }
}

/// Per-site gauges (issue 13): whether each site is suspended or slowed, and
/// its connection failures in a row. Site names are label values, escaped.
pub fn render_sites(sites: &[crate::app::sites::SiteView]) -> String {
    use crate::app::sites::SiteView;
    use std::fmt::Write as _;
    let mut out = String::new();
    if sites.is_empty() {
        return out;
    }
    let label = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    /// A gauge: its name, its help, its value for one site.
    type Gauge = (&'static str, &'static str, fn(&SiteView) -> u32);
    let gauges: [Gauge; 3] = [
        (
            "herald_site_suspended",
            "Whether a receiving site is suspended (1) by back-off.",
            |s| u32::from(s.state == "suspended"),
        ),
        (
            "herald_site_slowed",
            "Whether a receiving site's rate is lowered (1) by back-off.",
            |s| u32::from(s.state == "slowed"),
        ),
        (
            "herald_site_connection_failures",
            "Connection failures in a row to a receiving site.",
            |s| s.failures,
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for s in sites {
            let _ = writeln!(out, "{name}{{site=\"{}\"}} {}", label(&s.name), value(s));
        }
    }
    out
}
