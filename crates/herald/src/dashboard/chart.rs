//! Opens and clicks over time as a server-rendered SVG (no script, no
//! library): hourly while a campaign's activity spans at most three days, then
//! daily in the account's time zone. Colours are presentation attributes, which
//! the pages' Content-Security-Policy allows (inline `style` it does not).

use super::Ctx;
use chrono::{DateTime, Duration, Utc};
use herald_eventlog::CampaignHour;
use maud::{Markup, html};

/// One point of the chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bucket {
    /// Its label (a time or a day).
    pub label: String,
    /// Opens by people.
    pub opens: u64,
    /// Clicks by people.
    pub clicks: u64,
}

/// Hours shown one by one up to this span; beyond it, days.
const HOURLY_UP_TO: i64 = 72;

/// `hours` (sorted, as stored) as hourly or daily buckets with the gaps filled.
pub(crate) fn buckets(ctx: &Ctx, hours: &[CampaignHour]) -> Vec<Bucket> {
    let (Some(first), Some(last)) = (hours.first(), hours.last()) else {
        return Vec::new();
    };
    let span = (last.hour - first.hour).num_hours();
    let mut out: Vec<(DateTime<Utc>, Bucket)> = Vec::new();
    if span <= HOURLY_UP_TO {
        let mut t = first.hour;
        while t <= last.hour {
            let (o, c) = hours
                .iter()
                .find(|h| h.hour == t)
                .map_or((0, 0), |h| (h.opens, h.clicks));
            out.push((
                t,
                Bucket {
                    label: ctx.at(t),
                    opens: o,
                    clicks: c,
                },
            ));
            t += Duration::hours(1);
        }
    } else {
        let day = |t: DateTime<Utc>| t.with_timezone(&ctx.tz).date_naive();
        let mut d = day(first.hour);
        let end = day(last.hour);
        while d <= end {
            let (o, c) = hours
                .iter()
                .filter(|h| day(h.hour) == d)
                .fold((0, 0), |(o, c), h| (o + h.opens, c + h.clicks));
            let noon = d
                .and_hms_opt(12, 0, 0)
                .and_then(|t| t.and_local_timezone(ctx.tz).earliest())
                .map_or(first.hour, |t| t.with_timezone(&Utc));
            out.push((
                noon,
                Bucket {
                    label: ctx.lang.day(noon, ctx.tz),
                    opens: o,
                    clicks: c,
                },
            ));
            d = d.succ_opt().unwrap_or(end + Duration::days(1));
        }
    }
    out.into_iter().map(|(_, b)| b).collect()
}

const W: f64 = 720.0;
const H: f64 = 220.0;
const PAD_L: f64 = 48.0;
const PAD_R: f64 = 12.0;
const PAD_T: f64 = 12.0;
const PAD_B: f64 = 36.0;

/// The chart of `buckets`, titled `title`, with the two series' names.
pub(crate) fn svg(ctx: &Ctx, title: &str, buckets: &[Bucket]) -> Markup {
    let max = buckets
        .iter()
        .map(|b| b.opens.max(b.clicks))
        .max()
        .unwrap_or(0)
        .max(1);
    let n = buckets.len().max(1);
    let x = |i: usize| {
        if n == 1 {
            PAD_L + (W - PAD_L - PAD_R) / 2.0
        } else {
            PAD_L + (W - PAD_L - PAD_R) * i as f64 / (n - 1) as f64
        }
    };
    let y = |v: u64| PAD_T + (H - PAD_T - PAD_B) * (1.0 - v as f64 / max as f64);
    let line = |f: &dyn Fn(&Bucket) -> u64| {
        buckets
            .iter()
            .enumerate()
            .map(|(i, b)| format!("{:.1},{:.1}", x(i), y(f(b))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let opens = ctx.t("chart-opens");
    let clicks = ctx.t("chart-clicks");
    html! {
        figure.chart {
            svg role="img" aria-label=(title) viewBox=(format!("0 0 {W} {H}")) width="100%" preserveAspectRatio="xMidYMid meet" {
                title { (title) }
                line x1=(PAD_L) y1=(H - PAD_B) x2=(W - PAD_R) y2=(H - PAD_B) stroke="#8a8f98" stroke-width="1" {}
                line x1=(PAD_L) y1=(PAD_T) x2=(PAD_L) y2=(H - PAD_B) stroke="#8a8f98" stroke-width="1" {}
                text x=(PAD_L - 6.0) y=(PAD_T + 4.0) text-anchor="end" font-size="11" fill="#333" { (ctx.n(max)) }
                text x=(PAD_L - 6.0) y=(H - PAD_B) text-anchor="end" font-size="11" fill="#333" { "0" }
                @if let Some(first) = buckets.first() {
                    text x=(PAD_L) y=(H - PAD_B + 16.0) font-size="11" fill="#333" { (first.label) }
                }
                @if buckets.len() > 1 {
                    @if let Some(last) = buckets.last() {
                        text x=(W - PAD_R) y=(H - PAD_B + 16.0) text-anchor="end" font-size="11" fill="#333" { (last.label) }
                    }
                }
                polyline points=(line(&|b| b.opens)) fill="none" stroke="#1f5fbf" stroke-width="2" {}
                polyline points=(line(&|b| b.clicks)) fill="none" stroke="#b3261e" stroke-width="2" stroke-dasharray="6 3" {}
                @for (i, b) in buckets.iter().enumerate() {
                    circle cx=(format!("{:.1}", x(i))) cy=(format!("{:.1}", y(b.opens))) r="2.5" fill="#1f5fbf" {
                        title { (b.label) ": " (opens) " " (ctx.n(b.opens)) }
                    }
                    circle cx=(format!("{:.1}", x(i))) cy=(format!("{:.1}", y(b.clicks))) r="2.5" fill="#b3261e" {
                        title { (b.label) ": " (clicks) " " (ctx.n(b.clicks)) }
                    }
                }
            }
            figcaption {
                span.key.opens { (opens) } " "
                span.key.clicks { (clicks) }
            }
        }
    }
}
