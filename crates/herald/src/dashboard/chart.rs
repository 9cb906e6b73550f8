//! Opens and clicks over time as a server-rendered SVG bar chart (no
//! script, no library): hourly while a campaign's activity spans at most three days, then
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

/// The chart of `buckets`, titled `title`: per bucket a bar of opens and a
/// (hatched) bar of clicks, each with its number as a tooltip.
pub(crate) fn svg(ctx: &Ctx, title: &str, buckets: &[Bucket]) -> Markup {
    let max = buckets
        .iter()
        .map(|b| b.opens.max(b.clicks))
        .max()
        .unwrap_or(0)
        .max(1);
    let n = buckets.len().max(1) as f64;
    let slot = (W - PAD_L - PAD_R) / n;
    let bar = (slot * 0.4).min(28.0);
    let base = H - PAD_B;
    let height = |v: u64| (H - PAD_T - PAD_B) * v as f64 / max as f64;
    let opens = ctx.t("chart-opens");
    let clicks = ctx.t("chart-clicks");
    // Every bucket's label when there are few; else the first and the last.
    let labelled = |i: usize| buckets.len() <= 8 || i == 0 || i + 1 == buckets.len();
    html! {
        figure.chart {
            svg role="img" aria-label=(title) viewBox=(format!("0 0 {W} {H}")) width="100%" preserveAspectRatio="xMidYMid meet" {
                title { (title) }
                defs {
                    pattern #hatch width="4" height="4" patternUnits="userSpaceOnUse" patternTransform="rotate(45)" {
                        rect width="4" height="4" fill="#f3d3d0" {}
                        line x1="0" y1="0" x2="0" y2="4" stroke="#b3261e" stroke-width="2" {}
                    }
                }
                line x1=(PAD_L) y1=(base) x2=(W - PAD_R) y2=(base) stroke="#8a8f98" stroke-width="1" {}
                line x1=(PAD_L) y1=(PAD_T) x2=(PAD_L) y2=(base) stroke="#8a8f98" stroke-width="1" {}
                text x=(PAD_L - 6.0) y=(PAD_T + 4.0) text-anchor="end" font-size="11" fill="#333" { (ctx.n(max)) }
                text x=(PAD_L - 6.0) y=(base) text-anchor="end" font-size="11" fill="#333" { "0" }
                @for (i, b) in buckets.iter().enumerate() {
                    @let x = PAD_L + slot * i as f64 + slot / 2.0;
                    rect x=(format!("{:.1}", x - bar)) y=(format!("{:.1}", base - height(b.opens))) width=(format!("{bar:.1}")) height=(format!("{:.1}", height(b.opens))) fill="#1f5fbf" {
                        title { (b.label) ": " (opens) " " (ctx.n(b.opens)) }
                    }
                    rect x=(format!("{x:.1}")) y=(format!("{:.1}", base - height(b.clicks))) width=(format!("{bar:.1}")) height=(format!("{:.1}", height(b.clicks))) fill="url(#hatch)" stroke="#b3261e" stroke-width="1" {
                        title { (b.label) ": " (clicks) " " (ctx.n(b.clicks)) }
                    }
                    @if labelled(i) {
                        text x=(format!("{x:.1}")) y=(base + 16.0) text-anchor="middle" font-size="11" fill="#333" { (b.label) }
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
