//! The dashboard's pages as maud templates: every value is escaped by maud,
//! every text comes from the translations ([`Ctx::t`]), numbers, rates and
//! times are written by the page's [`crate::i18n::Language`].

use super::Ctx;
use super::chart;
use crate::app::dashboard::{
    CampaignDetail, CampaignList, CampaignState, CampaignTab, Channel, EVENT_PAGE_SIZES,
    PersonDetail, Rate, RecipientsOf, ScheduledContent,
};
use crate::i18n::Language;
use axum::http::StatusCode;
use herald_eventlog::{Event, EventKind, Totals};
use herald_schedule::{Account, ScheduledSend};
use maud::{DOCTYPE, Markup, html};

/// The navigation's entries: (path, message id).
const NAV: [(&str, &str); 4] = [
    ("/dashboard", "nav-status"),
    ("/dashboard/campaigns", "nav-campaigns"),
    ("/dashboard/scheduled", "nav-scheduled"),
    ("/dashboard/events", "nav-events"),
];

/// The message id of an event kind's name.
pub(crate) fn kind_id(kind: EventKind) -> String {
    format!("kind-{}", kind.as_str().replace('_', "-"))
}

fn layout(ctx: &Ctx, title: &str, active: &str, script: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(ctx.lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(src) = script {
                    script src=(src) defer {}
                }
                title { (title) " · Herald" }
                link rel="stylesheet" href="/dashboard/assets/style.css";
            }
            body {
                header.top {
                    a.brand href="/dashboard" { "Herald" }
                    @if ctx.user.is_some() {
                        nav aria-label=(ctx.t("nav-label")) {
                            ul {
                                @for (path, id) in NAV {
                                    li {
                                        @if path == active {
                                            a href=(path) aria-current="page" { (ctx.t(id)) }
                                        } @else {
                                            a href=(path) { (ctx.t(id)) }
                                        }
                                    }
                                }
                            }
                        }
                        div.session {
                            @if let Some(user) = &ctx.user {
                                span.user { (ctx.ta("signed-in-as", &[("user", user.clone())])) }
                            }
                            form.language method="post" action="/dashboard/language" {
                                input type="hidden" name="csrf" value=(ctx.csrf);
                                input type="hidden" name="back" value=(active);
                                label for="language" { (ctx.t("language")) }
                                select id="language" name="language" {
                                    @for l in Language::ALL {
                                        option value=(l.code()) selected[l == ctx.lang] lang=(l.code()) { (l.native_name()) }
                                    }
                                }
                                button type="submit" { (ctx.t("language-switch")) }
                            }
                            form.signout method="post" action="/dashboard/signout" {
                                input type="hidden" name="csrf" value=(ctx.csrf);
                                button type="submit" { (ctx.t("sign-out")) }
                            }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

fn message_page(ctx: &Ctx, title_id: &str, text_id: &str) -> Markup {
    let title = ctx.t(title_id);
    layout(ctx, &title, "", None, html! { p { (ctx.t(text_id)) } })
}

/// No session (or it ended): open the dashboard again from the CRM.
pub(crate) fn signed_out(ctx: &Ctx) -> Markup {
    message_page(ctx, "signed-out-title", "signed-out-text")
}

/// The answer to a sign-out.
pub(crate) fn signed_out_now(ctx: &Ctx) -> Markup {
    let ctx = Ctx {
        user: None,
        csrf: String::new(),
        texts: std::sync::Arc::clone(&ctx.texts),
        ..*ctx
    };
    message_page(&ctx, "signed-out-now-title", "signed-out-now-text")
}

/// A sign-in link that is unknown, used or expired.
pub(crate) fn link_invalid(ctx: &Ctx) -> Markup {
    message_page(ctx, "link-invalid-title", "link-invalid-text")
}

/// A state-changing request without the session's CSRF token.
pub(crate) fn forbidden(ctx: &Ctx) -> Markup {
    message_page(ctx, "forbidden-title", "forbidden-text")
}

/// An error page for `status`, with the problem's detail when it is the user's.
pub(crate) fn error(ctx: &Ctx, status: StatusCode, detail: Option<&str>) -> Markup {
    let title = match status {
        StatusCode::NOT_FOUND => ctx.t("error-not-found"),
        StatusCode::BAD_REQUEST => ctx.t("error-bad-request"),
        StatusCode::FORBIDDEN => ctx.t("error-forbidden"),
        StatusCode::CONFLICT => ctx.t("error-conflict"),
        _ => ctx.t("error-internal"),
    };
    layout(
        ctx,
        &title,
        "",
        None,
        html! {
            @if let Some(d) = detail { p.problem { (d) } }
            p { a href="/dashboard" { (ctx.t("back-to-status")) } }
        },
    )
}

fn rate_text(ctx: &Ctx, part: u64, whole: u64, whole_id: &str) -> String {
    ctx.ta(
        "rate-of",
        &[
            (
                "rate",
                ctx.pct(herald_eventlog::campaign::rate(part, whole)),
            ),
            ("part", ctx.n(part)),
            ("whole", ctx.n(whole)),
            ("denominator", ctx.t(whole_id)),
        ],
    )
}

/// A status card: (metric, label id, count, (rate's denominator, its id)).
type Card<'a> = (&'a str, &'a str, u64, Option<(u64, &'a str)>);

/// The status page: the seed's totals and more, with rates; it refreshes itself.
pub(crate) fn status(ctx: &Ctx, account: &Account, t: &Totals) -> Markup {
    // (metric, label id, count, (rate part, whole, whole's id))
    let cards: [Card<'_>; 8] = [
        ("processed", "total-processed", t.processed, None),
        (
            "delivered",
            "total-delivered",
            t.delivered,
            Some((t.processed, "of-processed")),
        ),
        (
            "opened",
            "total-opened",
            t.opened,
            Some((t.delivered, "of-delivered")),
        ),
        (
            "clicked",
            "total-clicked",
            t.clicked,
            Some((t.delivered, "of-delivered")),
        ),
        (
            "bounced",
            "total-bounced",
            t.bounced,
            Some((t.processed, "of-processed")),
        ),
        (
            "blocked",
            "total-blocked",
            t.blocked,
            Some((t.processed, "of-processed")),
        ),
        (
            "complaints",
            "total-complaints",
            t.complaints,
            Some((t.delivered, "of-delivered")),
        ),
        (
            "unsubscribed",
            "total-unsubscribed",
            t.unsubscribed,
            Some((t.delivered, "of-delivered")),
        ),
    ];
    let title = ctx.t("status-title");
    layout(
        ctx,
        &title,
        "/dashboard",
        Some("/dashboard/assets/status.js"),
        html! {
            p.account { (account.name) }
            ul.cards data-live="cards" {
                @for (metric, id, n, rate) in cards {
                    li.card data-metric=(metric) {
                        span.label { (ctx.t(id)) }
                        span.value data-value=(n) { (ctx.n(n)) }
                        @if let Some((whole, whole_id)) = rate {
                            span.rate { (rate_text(ctx, n, whole, whole_id)) }
                        }
                    }
                }
            }
            h2 { (ctx.t("machines-title")) }
            p { (ctx.t("machines-text")) }
            table data-live="machines" {
                tbody {
                    tr data-metric="bot_opens" { th scope="row" { (ctx.t("total-bot-opens")) } td.num data-value=(t.bot_opens) { (ctx.n(t.bot_opens)) } }
                    tr data-metric="prefetch_opens" { th scope="row" { (ctx.t("total-prefetch-opens")) } td.num data-value=(t.prefetch_opens) { (ctx.n(t.prefetch_opens)) } }
                    tr data-metric="bot_clicks" { th scope="row" { (ctx.t("total-bot-clicks")) } td.num data-value=(t.bot_clicks) { (ctx.n(t.bot_clicks)) } }
                }
            }
            // Texts, apart from email, once the account has sent any.
            @if t.sms.processed > 0 || t.sms.opted_out > 0 {
                h2 { (ctx.t("sms-title")) }
                table data-live="sms" {
                    tbody {
                        @for (metric, id, n) in [
                            ("sms_processed", "kind-sms-processed", t.sms.processed),
                            ("sms_sent", "kind-sms-sent", t.sms.sent),
                            ("sms_delivered", "kind-sms-delivered", t.sms.delivered),
                            ("sms_failed", "kind-sms-failed", t.sms.failed),
                            ("sms_segments", "sms-segments", t.sms.segments),
                            ("sms_opted_out", "kind-sms-opt-out", t.sms.opted_out),
                        ] {
                            tr data-metric=(metric) { th scope="row" { (ctx.t(id)) } td.num data-value=(n) { (ctx.n(n)) } }
                        }
                    }
                }
            }
            div #refresh .refresh data-seconds=(ctx.refresh_secs) data-label=(ctx.ta("refreshes-every", &[("seconds", ctx.n(u64::from(ctx.refresh_secs)))])) {
                a href="/dashboard" { (ctx.t("refresh-now")) }
            }
        },
    )
}

fn state_text(ctx: &Ctx, state: CampaignState) -> String {
    match state {
        CampaignState::Scheduled => ctx.t("state-scheduled"),
        CampaignState::Sending { done, total } => ctx.ta(
            "state-in-progress",
            &[("done", ctx.n(done as u64)), ("total", ctx.n(total as u64))],
        ),
        CampaignState::Sent => ctx.t("state-sent"),
        CampaignState::Empty => ctx.t("state-empty"),
    }
}

fn channel_text(ctx: &Ctx, channel: Channel) -> String {
    match channel {
        Channel::Api => ctx.t("channel-api"),
    }
}

fn tab_id(tab: CampaignTab) -> &'static str {
    match tab {
        CampaignTab::All => "tab-all",
        CampaignTab::Starred => "tab-starred",
        CampaignTab::Scheduled => "tab-scheduled",
        CampaignTab::Sent => "tab-sent",
        CampaignTab::Archived => "tab-archived",
    }
}

fn query_escape(s: &str) -> String {
    percent_encode(s)
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn pager(ctx: &Ctx, page: u64, per_page: u64, total: u64, link: &dyn Fn(u64) -> String) -> Markup {
    let pages = total.div_ceil(per_page.max(1)).max(1);
    html! {
        nav.pager aria-label=(ctx.t("pages")) {
            @if page > 0 {
                a rel="prev" href=(link(page - 1)) { (ctx.t("page-previous")) }
            }
            span { (ctx.ta("page-of", &[("page", ctx.n(page + 1)), ("pages", ctx.n(pages))])) }
            @if page + 1 < pages {
                a rel="next" href=(link(page + 1)) { (ctx.t("page-next")) }
            }
        }
    }
}

/// The campaigns page: tabs, search, the list with star and archive, pages.
pub(crate) fn campaigns(
    ctx: &Ctx,
    tab: CampaignTab,
    search: &str,
    page: u64,
    per_page: u32,
    list: &CampaignList,
) -> Markup {
    let here = |p: u64| {
        format!(
            "/dashboard/campaigns?tab={}&q={}&page={p}",
            tab.as_str(),
            query_escape(search)
        )
    };
    let back = here(page);
    let title = ctx.t("campaigns-title");
    layout(
        ctx,
        &title,
        "/dashboard/campaigns",
        None,
        html! {
            nav.tabs aria-label=(ctx.t("tabs")) {
                ul {
                    @for t in CampaignTab::ALL {
                        li {
                            @let href = format!("/dashboard/campaigns?tab={}&q={}", t.as_str(), query_escape(search));
                            @if t == tab {
                                a href=(href) aria-current="page" data-tab=(t.as_str()) { (ctx.t(tab_id(t))) }
                            } @else {
                                a href=(href) data-tab=(t.as_str()) { (ctx.t(tab_id(t))) }
                            }
                        }
                    }
                }
            }
            form.search method="get" action="/dashboard/campaigns" role="search" {
                input type="hidden" name="tab" value=(tab.as_str());
                label for="q" { (ctx.t("search-subject")) }
                input type="search" id="q" name="q" value=(search) maxlength="200";
                button type="submit" { (ctx.t("search")) }
            }
            @if list.rows.is_empty() {
                p.empty { (ctx.t("campaigns-none")) }
            } @else {
                table.campaigns {
                    caption { (ctx.ta("campaigns-count", &[("count", ctx.n(list.total))])) }
                    thead {
                        tr {
                            th scope="col" { (ctx.t("col-campaign")) }
                            th scope="col" { (ctx.t("col-sent-by")) }
                            th scope="col" { (ctx.t("col-state")) }
                            th scope="col" .num { (ctx.t("col-emails")) }
                            th scope="col" .num { (ctx.t("col-open-rate")) }
                            th scope="col" .num { (ctx.t("col-click-rate")) }
                            th scope="col" { (ctx.t("col-actions")) }
                        }
                    }
                    tbody {
                        @for row in &list.rows {
                            @let c = &row.campaign;
                            tr data-campaign=(c.id.0) {
                                td {
                                    a href=(format!("/dashboard/campaigns/{}", c.id.0)) {
                                        strong.subject { (c.first_subject) }
                                    }
                                    br;
                                    span.name { (c.name) }
                                    @if c.starred { " " span.star aria-label=(ctx.t("starred")) title=(ctx.t("starred")) { "★" } }
                                }
                                td { (channel_text(ctx, row.channel)) }
                                td { (state_text(ctx, row.state)) }
                                td.num data-value=(c.emails) { (ctx.n(c.emails)) }
                                td.num data-value=(c.opened) { (ctx.pct(c.open_rate)) }
                                td.num data-value=(c.clicked) { (ctx.pct(c.click_rate)) }
                                td.actions {
                                    form method="post" action=(format!("/dashboard/campaigns/{}/mark", c.id.0)) {
                                        input type="hidden" name="csrf" value=(ctx.csrf);
                                        input type="hidden" name="back" value=(back);
                                        input type="hidden" name="starred" value=(if c.starred { "false" } else { "true" });
                                        button type="submit" data-action="star" { (ctx.t(if c.starred { "unstar" } else { "star" })) }
                                    }
                                    form method="post" action=(format!("/dashboard/campaigns/{}/mark", c.id.0)) {
                                        input type="hidden" name="csrf" value=(ctx.csrf);
                                        input type="hidden" name="back" value=(back);
                                        input type="hidden" name="archived" value=(if c.archived { "false" } else { "true" });
                                        button type="submit" data-action="archive" { (ctx.t(if c.archived { "unarchive" } else { "archive" })) }
                                    }
                                }
                            }
                        }
                    }
                }
                (pager(ctx, page, u64::from(per_page), list.total, &here))
            }
            p { a href="/dashboard/compare" { (ctx.t("compare-title")) } }
        },
    )
}

fn rate_row(ctx: &Ctx, metric: &str, label_id: &str, rate: Rate, whole_id: &str) -> Markup {
    html! {
        tr data-metric=(metric) {
            th scope="row" { (ctx.t(label_id)) }
            td.num data-value=(rate.part) { (ctx.pct(rate.value())) }
            td { (ctx.ta("rate-parts", &[("part", ctx.n(rate.part)), ("whole", ctx.n(rate.whole)), ("denominator", ctx.t(whole_id))])) }
        }
    }
}

fn count_table(ctx: &Ctx, caption_id: &str, rows: &[(String, u64)]) -> Markup {
    let total: u64 = rows.iter().map(|(_, n)| n).sum();
    html! {
        table.breakdown {
            caption { (ctx.t(caption_id)) }
            thead { tr { th scope="col" { (ctx.t("col-value")) } th scope="col" .num { (ctx.t("col-count")) } th scope="col" .num { (ctx.t("col-share")) } } }
            tbody {
                @for (value, n) in rows.iter().take(10) {
                    tr {
                        td { @if value.is_empty() { em { (ctx.t("unknown")) } } @else { (value) } }
                        td.num { (ctx.n(*n)) }
                        td.num { (ctx.pct(herald_eventlog::campaign::rate(*n, total))) }
                    }
                }
            }
        }
    }
}

fn recipients_of_id(of: RecipientsOf) -> &'static str {
    match of {
        RecipientsOf::Opened => "recipients-opened",
        RecipientsOf::Clicked => "recipients-clicked",
        RecipientsOf::Bounced => "recipients-bounced",
    }
}

/// A campaign: totals, rates with their denominators, the chart, links,
/// breakdowns, bounce reasons and its recipients.
pub(crate) fn campaign(
    ctx: &Ctx,
    d: &CampaignDetail,
    of: RecipientsOf,
    contains: &str,
    recipients: &[Event],
    urls: &Urls,
) -> Markup {
    let c = &d.campaign;
    let r = &d.rates;
    let b = &d.breakdown;
    let buckets = chart::buckets(ctx, &d.hours);
    let base = format!("/dashboard/campaigns/{}", c.id.0);
    layout(
        ctx,
        &c.first_subject,
        "/dashboard/campaigns",
        None,
        html! {
            p.name { (c.name) }
            ul.cards {
                li.card data-metric="emails" { span.label { (ctx.t("col-emails")) } span.value data-value=(c.emails) { (ctx.n(c.emails)) } }
                li.card data-metric="delivered" { span.label { (ctx.t("total-delivered")) } span.value data-value=(c.delivered) { (ctx.n(c.delivered)) } }
                li.card data-metric="opened" { span.label { (ctx.t("total-opened")) } span.value data-value=(c.opened) { (ctx.n(c.opened)) } }
                li.card data-metric="clicked" { span.label { (ctx.t("total-clicked")) } span.value data-value=(c.clicked) { (ctx.n(c.clicked)) } }
            }
            table.rates {
                caption { (ctx.t("rates-title")) }
                thead { tr { th scope="col" { (ctx.t("col-rate")) } th scope="col" .num { (ctx.t("col-value")) } th scope="col" { (ctx.t("col-of")) } } }
                tbody {
                    (rate_row(ctx, "open_rate", "rate-open", r.open, "of-delivered"))
                    (rate_row(ctx, "click_rate", "rate-click", r.click, "of-delivered"))
                    (rate_row(ctx, "click_to_open", "rate-click-to-open", r.click_to_open, "of-opened"))
                    (rate_row(ctx, "hard_bounce", "rate-hard-bounce", r.hard_bounce, "of-sent"))
                    (rate_row(ctx, "soft_bounce", "rate-soft-bounce", r.soft_bounce, "of-sent"))
                    (rate_row(ctx, "blocked", "rate-blocked", r.blocked, "of-sent"))
                    (rate_row(ctx, "complaint", "rate-complaint", r.complaint, "of-delivered"))
                    (rate_row(ctx, "unsubscribe", "rate-unsubscribe", r.unsubscribe, "of-delivered"))
                }
            }
            h2 { (ctx.t("chart-title")) }
            @if buckets.is_empty() {
                p.empty { (ctx.t("chart-none")) }
            } @else {
                (chart::svg(ctx, &ctx.t("chart-title"), &buckets))
            }
            h2 { (ctx.t("humans-title")) }
            table {
                thead { tr { td {} th scope="col" .num { (ctx.t("humans")) } th scope="col" .num { (ctx.t("machines")) } } }
                tbody {
                    tr { th scope="row" { (ctx.t("chart-opens")) } td.num { (ctx.n(b.human_opens)) } td.num { (ctx.n(b.machine_opens)) } }
                    tr { th scope="row" { (ctx.t("chart-clicks")) } td.num { (ctx.n(b.human_clicks)) } td.num { (ctx.n(b.machine_clicks)) } }
                }
            }
            h2 { (ctx.t("links-title")) }
            @if b.links.is_empty() {
                p.empty { (ctx.t("links-none")) }
            } @else {
                table.links {
                    thead { tr {
                        th scope="col" { (ctx.t("col-link")) }
                        th scope="col" .num { (ctx.t("col-clicks")) }
                        th scope="col" .num { (ctx.t("col-clicked-emails")) }
                        th scope="col" .num { (ctx.t("col-click-rate")) }
                    } }
                    tbody {
                        @for l in &b.links {
                            tr {
                                td {
                                    @if let Some(label) = &l.label { (label) " " }
                                    @if let Some(n) = l.link { span.muted { (ctx.ta("link-number", &[("number", ctx.n(n.unsigned_abs() + 1))])) } }
                                }
                                td.num { (ctx.n(l.clicks)) }
                                td.num { (ctx.n(l.messages)) }
                                td.num { (ctx.pct(herald_eventlog::campaign::rate(l.messages, c.delivered))) }
                            }
                        }
                    }
                }
            }
            h2 { (ctx.t("breakdowns-title")) }
            div.breakdowns {
                (count_table(ctx, "by-domain", &b.domains))
                (count_table(ctx, "by-device", &b.devices))
                (count_table(ctx, "by-browser", &b.browsers))
                (count_table(ctx, "by-os", &b.systems))
                (count_table(ctx, "by-country", &b.countries))
            }
            h2 { (ctx.t("bounces-title")) }
            @if b.bounce_reasons.is_empty() {
                p.empty { (ctx.t("bounces-none")) }
            } @else {
                table {
                    thead { tr { th scope="col" { (ctx.t("col-kind")) } th scope="col" { (ctx.t("col-reason")) } th scope="col" .num { (ctx.t("col-count")) } } }
                    tbody {
                        @for ((kind, reason), n) in &b.bounce_reasons {
                            tr {
                                td { (ctx.t(&kind_id(*kind))) }
                                td { (reason.as_deref().map(|r| ctx.t(&format!("reason-{}", r.replace('_', "-")))).unwrap_or_else(|| ctx.t("unknown"))) }
                                td.num { (ctx.n(*n)) }
                            }
                        }
                    }
                }
            }
            h2 id="recipients" { (ctx.t("recipients-title")) }
            nav.tabs aria-label=(ctx.t("recipients-title")) {
                ul {
                    @for o in [RecipientsOf::Opened, RecipientsOf::Clicked, RecipientsOf::Bounced] {
                        li {
                            @let href = format!("{base}?list={}#recipients", o.as_str());
                            @if o == of { a href=(href) aria-current="page" { (ctx.t(recipients_of_id(o))) } }
                            @else { a href=(href) { (ctx.t(recipients_of_id(o))) } }
                        }
                    }
                }
            }
            form.search method="get" action=(base) {
                input type="hidden" name="list" value=(of.as_str());
                label for="contains" { (ctx.t("filter-recipient")) }
                input type="search" id="contains" name="contains" value=(contains) maxlength="200";
                button type="submit" { (ctx.t("filter")) }
            }
            p {
                a.csv href=(format!("{base}/recipients.csv?list={}&contains={}", of.as_str(), query_escape(contains))) download { (ctx.t("export-csv")) }
            }
            (events_table(ctx, recipients, urls))
        },
    )
}

/// Several campaigns side by side.
pub(crate) fn compare(
    ctx: &Ctx,
    details: &[CampaignDetail],
    list: &CampaignList,
    period: (&str, &str),
    in_period: &[(u64, u64)],
) -> Markup {
    let title = ctx.t("compare-title");
    layout(
        ctx,
        &title,
        "/dashboard/campaigns",
        None,
        html! {
            form method="get" action="/dashboard/compare" {
                fieldset {
                    legend { (ctx.t("compare-pick")) }
                    @for row in &list.rows {
                        @let id = format!("c{}", row.campaign.id.0);
                        div {
                            input type="checkbox" id=(id) name="id" value=(row.campaign.id.0) checked[details.iter().any(|d| d.campaign.id == row.campaign.id)];
                            label for=(id) { (row.campaign.first_subject) " — " (row.campaign.name) }
                        }
                    }
                }
                fieldset.filters {
                    legend { (ctx.t("compare-period")) }
                    div {
                        label for="from" { (ctx.t("from")) }
                        input type="date" id="from" name="from" value=(period.0);
                    }
                    div {
                        label for="to" { (ctx.t("to")) }
                        input type="date" id="to" name="to" value=(period.1);
                    }
                }
                button type="submit" { (ctx.t("compare")) }
            }
            @if !details.is_empty() {
                table.compare {
                    thead {
                        tr {
                            td {}
                            @for d in details { th scope="col" { (d.campaign.first_subject) br; span.name { (d.campaign.name) } } }
                        }
                    }
                    tbody {
                        tr { th scope="row" { (ctx.t("col-emails")) } @for d in details { td.num { (ctx.n(d.campaign.emails)) } } }
                        tr { th scope="row" { (ctx.t("total-delivered")) } @for d in details { td.num { (ctx.n(d.campaign.delivered)) } } }
                        tr { th scope="row" { (ctx.t("rate-open")) } @for d in details { td.num { (ctx.pct(d.rates.open.value())) } } }
                        tr { th scope="row" { (ctx.t("rate-click")) } @for d in details { td.num { (ctx.pct(d.rates.click.value())) } } }
                        tr { th scope="row" { (ctx.t("rate-click-to-open")) } @for d in details { td.num { (ctx.pct(d.rates.click_to_open.value())) } } }
                        tr { th scope="row" { (ctx.t("rate-hard-bounce")) } @for d in details { td.num { (ctx.pct(d.rates.hard_bounce.value())) } } }
                        tr { th scope="row" { (ctx.t("rate-complaint")) } @for d in details { td.num { (ctx.pct(d.rates.complaint.value())) } } }
                        tr { th scope="row" { (ctx.t("rate-unsubscribe")) } @for d in details { td.num { (ctx.pct(d.rates.unsubscribe.value())) } } }
                        tr data-metric="opens_in_period" { th scope="row" { (ctx.t("compare-opens-in-period")) } @for (o, _) in in_period { td.num data-value=(o) { (ctx.n(*o)) } } }
                        tr data-metric="clicks_in_period" { th scope="row" { (ctx.t("compare-clicks-in-period")) } @for (_, c) in in_period { td.num data-value=(c) { (ctx.n(*c)) } } }
                    }
                }
            }
        },
    )
}

fn to_text(ctx: &Ctx, s: &ScheduledSend) -> String {
    s.recipient.clone().unwrap_or_else(|| ctx.t("broadcast"))
}

fn scheduled_status(ctx: &Ctx, s: &ScheduledSend) -> String {
    if s.done > 0 {
        ctx.ta(
            "state-in-progress",
            &[
                ("done", ctx.n(s.done as u64)),
                ("total", ctx.n(s.count as u64)),
            ],
        )
    } else {
        ctx.t("state-scheduled")
    }
}

/// The scheduled list (R-SND-5).
pub(crate) fn scheduled(ctx: &Ctx, list: &[ScheduledSend]) -> Markup {
    let title = ctx.t("scheduled-title");
    layout(
        ctx,
        &title,
        "/dashboard/scheduled",
        None,
        html! {
            @if list.is_empty() {
                p.empty { (ctx.t("scheduled-none")) }
            } @else {
                table.scheduled {
                    thead { tr {
                        th scope="col" { (ctx.t("col-deferred")) }
                        th scope="col" { (ctx.t("col-created")) }
                        th scope="col" .num { (ctx.t("col-count")) }
                        th scope="col" { (ctx.t("col-user")) }
                        th scope="col" { (ctx.t("col-subject")) }
                        th scope="col" { (ctx.t("col-to")) }
                        th scope="col" { (ctx.t("col-state")) }
                    } }
                    tbody {
                        @for s in list {
                            tr data-send=(s.id) {
                                td { (ctx.at(s.deferred_until)) }
                                td { (ctx.at(s.created)) }
                                td.num { (ctx.n(s.count as u64)) }
                                td { (s.user) }
                                td { a href=(format!("/dashboard/scheduled/{}", s.id)) { (s.subject) } }
                                td { (to_text(ctx, s)) }
                                td { (scheduled_status(ctx, s)) }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// A scheduled send's content, with its delete button (and the confirmation).
pub(crate) fn scheduled_send(ctx: &Ctx, c: &ScheduledContent, confirm: bool) -> Markup {
    let s = &c.send;
    layout(
        ctx,
        &c.preview.subject,
        "/dashboard/scheduled",
        None,
        html! {
            dl.facts {
                dt { (ctx.t("col-deferred")) } dd { (ctx.at(s.deferred_until)) }
                dt { (ctx.t("col-count")) } dd { (ctx.n(s.count as u64)) }
                dt { (ctx.t("col-user")) } dd { (s.user) }
                dt { (ctx.t("col-to")) } dd { (to_text(ctx, s)) }
                dt { (ctx.t("col-state")) } dd { (scheduled_status(ctx, s)) }
            }
            @if let Some(text) = &c.preview.text {
                h2 { (ctx.t("content-text")) }
                pre.content { (text) }
            }
            @if let Some(html_body) = &c.preview.html {
                h2 { (ctx.t("content-html")) }
                pre.content { (html_body) }
            }
            @if confirm {
                section.confirm role="alertdialog" aria-labelledby="confirm-title" {
                    h2 id="confirm-title" { (ctx.t("delete-confirm-title")) }
                    p { (ctx.t("delete-confirm-text")) }
                    form method="post" action=(format!("/dashboard/scheduled/{}/delete", s.id)) {
                        input type="hidden" name="csrf" value=(ctx.csrf);
                        button.danger type="submit" data-action="delete-confirmed" { (ctx.t("delete-yes")) }
                    }
                    p { a href=(format!("/dashboard/scheduled/{}", s.id)) { (ctx.t("delete-no")) } }
                }
            } @else {
                p { a.button href=(format!("/dashboard/scheduled/{}?confirm=true", s.id)) data-action="delete" { (ctx.t("delete")) } }
            }
        },
    )
}

/// After a delete.
pub(crate) fn deleted(ctx: &Ctx, cancelled: u64) -> Markup {
    let title = ctx.t("deleted-title");
    layout(
        ctx,
        &title,
        "/dashboard/scheduled",
        None,
        html! {
            p.done { (ctx.ta("deleted-text", &[("count", ctx.n(cancelled))])) }
            p { a href="/dashboard/scheduled" { (ctx.t("back-to-scheduled")) } }
        },
    )
}

/// Full link URLs of click events, by event id ([`crate::app::dashboard::link_urls`]).
pub(crate) type Urls = std::collections::HashMap<i64, String>;

fn events_table(ctx: &Ctx, events: &[Event], urls: &Urls) -> Markup {
    html! {
        @if events.is_empty() {
            p.empty { (ctx.t("events-none")) }
        } @else {
            table.events {
                thead { tr {
                    th scope="col" { (ctx.t("col-time")) }
                    th scope="col" { (ctx.t("col-kind")) }
                    th scope="col" { (ctx.t("col-recipient")) }
                    th scope="col" { (ctx.t("col-campaign")) }
                    th scope="col" { (ctx.t("col-details")) }
                } }
                tbody {
                    @for e in events {
                        tr data-event=(e.id) data-kind=(e.kind.as_str()) {
                            td { (ctx.at(e.at)) }
                            td { (ctx.t(&kind_id(e.kind))) }
                            td {
                                @if let Some(p) = &e.person {
                                    a href=(format!("/dashboard/persons/{}", percent_encode(p))) { (e.recipient) }
                                } @else { (e.recipient) }
                            }
                            td {
                                @if let Some(c) = e.campaign {
                                    a href=(format!("/dashboard/campaigns/{}", c.0)) { (ctx.n(c.0.unsigned_abs())) }
                                }
                            }
                            td { (event_details(ctx, e, urls.get(&e.id))) }
                        }
                    }
                }
            }
        }
    }
}

fn event_details(ctx: &Ctx, e: &Event, url: Option<&String>) -> Markup {
    let origin = match e.origin {
        herald_eventlog::Origin::Person => ctx.t("origin-person"),
        herald_eventlog::Origin::Prefetch => ctx.t("origin-prefetch"),
        herald_eventlog::Origin::Bot => ctx.t("origin-bot"),
    };
    let location = [e.city.as_deref(), e.country.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ");
    let client = [e.browser.as_deref(), e.os.as_deref(), e.device.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" · ");
    html! {
        details {
            summary { (ctx.t("show-details")) }
            dl {
                @if e.link.is_some() || e.label.is_some() {
                    dt { (ctx.t("col-link")) }
                    dd {
                        @if let Some(l) = &e.label { (l) " " }
                        @if let Some(n) = e.link { (ctx.ta("link-number", &[("number", ctx.n(n.unsigned_abs() + 1))])) }
                        @if let Some(u) = url { br; code.url { (u) } }
                    }
                }
                @if matches!(e.kind, EventKind::Open | EventKind::Click) {
                    dt { (ctx.t("origin")) } dd { (origin) }
                }
                @if let Some(ip) = &e.ip { dt { (ctx.t("ip")) } dd { (ip) } }
                @if !location.is_empty() { dt { (ctx.t("location")) } dd { (location) } }
                @if !client.is_empty() { dt { (ctx.t("client")) } dd { (client) } }
                @if let Some(ua) = &e.user_agent { dt { (ctx.t("user-agent")) } dd { code { (ua) } } }
                @if let Some(reply) = &e.reply { dt { (ctx.t("reply")) } dd { code { (reply) } } }
                @if let Some(reason) = e.reason {
                    dt { (ctx.t("col-reason")) }
                    dd { (ctx.t(&format!("reason-{}", reason.as_str().replace('_', "-")))) }
                }
            }
        }
    }
}

/// The event log page's form values, as given.
pub(crate) struct EventsForm<'a> {
    pub kind: &'a str,
    pub campaign: &'a str,
    pub recipient: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub per_page: u32,
    pub page: u64,
}

/// The event log with its filters.
pub(crate) fn events(
    ctx: &Ctx,
    f: &EventsForm<'_>,
    list: &[Event],
    total: u64,
    urls: &Urls,
) -> Markup {
    let here = |p: u64| {
        format!(
            "/dashboard/events?kind={}&campaign={}&recipient={}&from={}&to={}&per_page={}&page={p}",
            query_escape(f.kind),
            query_escape(f.campaign),
            query_escape(f.recipient),
            query_escape(f.from),
            query_escape(f.to),
            f.per_page
        )
    };
    let title = ctx.t("events-title");
    layout(
        ctx,
        &title,
        "/dashboard/events",
        None,
        html! {
            form.filters method="get" action="/dashboard/events" {
                div {
                    label for="kind" { (ctx.t("col-kind")) }
                    select id="kind" name="kind" {
                        option value="" { (ctx.t("any")) }
                        @for k in EventKind::ALL {
                            option value=(k.as_str()) selected[f.kind == k.as_str()] { (ctx.t(&kind_id(k))) }
                        }
                    }
                }
                div {
                    label for="campaign" { (ctx.t("col-campaign")) }
                    input type="text" id="campaign" name="campaign" inputmode="numeric" value=(f.campaign) size="8";
                }
                div {
                    label for="recipient" { (ctx.t("col-recipient")) }
                    input type="search" id="recipient" name="recipient" value=(f.recipient) maxlength="200";
                }
                div {
                    label for="from" { (ctx.t("from")) }
                    input type="date" id="from" name="from" value=(f.from);
                }
                div {
                    label for="to" { (ctx.t("to")) }
                    input type="date" id="to" name="to" value=(f.to);
                }
                div {
                    label for="per_page" { (ctx.t("per-page")) }
                    select id="per_page" name="per_page" {
                        @for n in EVENT_PAGE_SIZES {
                            option value=(n) selected[n == f.per_page] { (n) }
                        }
                    }
                }
                button type="submit" { (ctx.t("filter")) }
            }
            p { (ctx.ta("events-count", &[("count", ctx.n(total))])) }
            (events_table(ctx, list, urls))
            (pager(ctx, f.page, u64::from(f.per_page), total, &here))
        },
    )
}

/// A person: flags, click history, events.
pub(crate) fn person(ctx: &Ctx, d: &PersonDetail, urls: &Urls) -> Markup {
    let p = &d.person;
    let name = p.display_name().unwrap_or_else(|| p.id.clone());
    let yes_no = |b: bool| if b { ctx.t("yes") } else { ctx.t("no") };
    layout(
        ctx,
        &name,
        "",
        None,
        html! {
            dl.facts {
                dt { (ctx.t("person-id")) } dd { (p.id) }
                @if let Some(email) = p.person.get("email") { dt { (ctx.t("person-email")) } dd { (email) } }
            }
            h2 { (ctx.t("flags-title")) }
            table.flags {
                tbody {
                    tr data-flag="email_bouncing" { th scope="row" { (ctx.t("flag-email-bouncing")) } td { (yes_no(p.email_bouncing)) } }
                    tr data-flag="blocklisted" { th scope="row" { (ctx.t("flag-blocklisted")) } td { (yes_no(d.blocklisted)) } }
                    tr data-flag="block_mass_emails" { th scope="row" { (ctx.t("flag-block-mass-emails")) } td { (yes_no(p.block_mass_emails)) } }
                    tr data-flag="unsubscribed" { th scope="row" { (ctx.t("flag-unsubscribed")) } td { (yes_no(p.unsubscribed)) } }
                }
            }
            h2 { (ctx.t("clicks-title")) }
            @if d.clicks.is_empty() {
                p.empty { (ctx.t("clicks-none")) }
            } @else {
                table.clicks {
                    thead { tr {
                        th scope="col" { (ctx.t("col-time")) }
                        th scope="col" { (ctx.t("col-related-to")) }
                        th scope="col" { (ctx.t("col-link")) }
                        th scope="col" { (ctx.t("col-campaign")) }
                    } }
                    tbody {
                        @for e in &d.clicks {
                            tr data-event=(e.id) {
                                td { (ctx.at(e.at)) }
                                td { (e.label.clone().unwrap_or_default()) }
                                td {
                                    @if let Some(n) = e.link { (ctx.ta("link-number", &[("number", ctx.n(n.unsigned_abs() + 1))])) }
                                    @if let Some(u) = urls.get(&e.id) { br; code.url { (u) } }
                                }
                                td { @if let Some(c) = e.campaign { a href=(format!("/dashboard/campaigns/{}", c.0)) { (ctx.n(c.0.unsigned_abs())) } } }
                            }
                        }
                    }
                }
            }
            h2 { (ctx.t("events-title")) }
            (events_table(ctx, &d.events, urls))
        },
    )
}

/// A page of the tracking endpoints: the unsubscribe page and its answers,
/// and the page for a link that is not valid.
pub(crate) fn recipient(ctx: &Ctx, p: &crate::tracking::TrackingPage) -> Markup {
    use crate::app::unsubscribe::Scope;
    use crate::tracking::TrackingPage as P;
    match p {
        P::NotFound => message_page(ctx, "link-not-found-title", "link-not-found-text"),
        P::TryAgain => message_page(ctx, "try-again-title", "try-again-text"),
        P::UnsubscribeAsk(l) => {
            let title = ctx.t("unsub-title");
            let sender = ("sender", l.sender.clone());
            layout(
                ctx,
                &title,
                "",
                None,
                html! {
                    p.intro { (ctx.ta("unsub-intro", &[sender.clone(), ("address", l.address.clone())])) }
                    p { (ctx.t("unsub-question")) }
                    @if let Some((_, name)) = &l.campaign {
                        form method="post" {
                            input type="hidden" name="scope" value="campaign";
                            p { button type="submit" data-scope="campaign" { (ctx.ta("unsub-campaign", &[("campaign", name.clone())])) } }
                        }
                    }
                    form method="post" {
                        input type="hidden" name="scope" value="all";
                        p { button type="submit" data-scope="all" { (ctx.ta("unsub-all", std::slice::from_ref(&sender))) } }
                    }
                    p.muted { (ctx.ta("unsub-note", &[sender])) }
                },
            )
        }
        P::Unsubscribed(l, scope) => {
            let title = ctx.t("unsub-done-title");
            let args = |campaign: &str| {
                [
                    ("sender", l.sender.clone()),
                    ("address", l.address.clone()),
                    ("campaign", campaign.to_owned()),
                ]
            };
            let text = match (scope, &l.campaign) {
                (Scope::Campaign, Some((_, name))) => ctx.ta("unsub-done-campaign", &args(name)),
                _ => ctx.ta("unsub-done-all", &args("")),
            };
            layout(ctx, &title, "", None, html! { p.done { (text) } })
        }
    }
}
