//! The dashboard's use cases (R-UI-1): sign-in links, sessions and plans, and
//! the data of each page as typed values. The pages in [`crate::dashboard`]
//! only render what these return; every rule (who may sign in, which plan
//! includes the dashboard, what a campaign's state is, which rate has which
//! denominator) is here.

use super::{Error, Result};
use crate::accounts::{Account, key_hash};
use crate::i18n::Language;
use crate::service::Herald;
use chrono::{DateTime, Duration, Utc};
use data_encoding::BASE32_NOPAD;
use herald_eventlog::report::{EventField, Filter, ReportQuery, Value};
use herald_eventlog::{
    Campaign, CampaignBreakdown, CampaignFilter, CampaignHour, Event, EventKind, Totals,
};
use herald_message::CampaignId;
use herald_schedule::{DashboardUser, ScheduledSend, Session};

/// A one-time sign-in link for a CRM user.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct SignInLink {
    /// The URL to open (once, before `expires_at`).
    pub url: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// The language the dashboard opens in (`en`, `fr`, `de` or `es`).
    pub language: String,
}

/// A signed-in session: its secret (for the cookie) and what it holds.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The session's secret: the cookie's value, never stored.
    pub token: String,
    /// The session.
    pub session: Session,
}

fn random_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::Herald(crate::Error::Random(e.to_string())))?;
    Ok(BASE32_NOPAD.encode(&bytes).to_ascii_lowercase())
}

/// Whether `plan` includes the dashboard (`dashboard.plans`).
pub fn includes_dashboard(h: &Herald, plan: &str) -> bool {
    h.config.dashboard.plans.iter().any(|p| p == plan)
}

/// The account, if its plan includes the dashboard.
async fn dashboard_account(h: &Herald, account: u64) -> Result<Account> {
    let a = h.accounts.get(account).await?;
    if includes_dashboard(h, &a.plan) {
        Ok(a)
    } else {
        Err(Error::NotInPlan {
            plan: a.plan,
            plans: h.config.dashboard.plans.clone(),
        })
    }
}

/// Checks a language tag as given (`fr`, `fr-CA`, `zh_Hant_TW`): at most 35
/// characters, a 2-8 letter language and subtags of 1-8 letters or digits.
pub fn check_language_tag(field: &str, tag: &str) -> Result<()> {
    let mut parts = tag.split(['-', '_']);
    let language_ok = parts
        .next()
        .is_some_and(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphabetic()));
    let rest_ok =
        parts.all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
    if tag.len() <= 35 && language_ok && rest_ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            "a language tag such as fr or de-AT (at most 35 characters)",
        ))
    }
}

/// The language a page is shown in: `tag` if Herald is written in it, else English.
pub fn language_of(tag: &str) -> Language {
    Language::parse(tag).unwrap_or(Language::En)
}

/// A one-time sign-in link for `user` of `account`, in `language` (a tag;
/// none: the account's language; one Herald is not written in: English). The
/// account's plan must include the dashboard.
pub async fn create_link(
    h: &Herald,
    account: u64,
    user: &str,
    language: Option<&str>,
) -> Result<SignInLink> {
    let a = dashboard_account(h, account).await?;
    let user = user.trim();
    if user.is_empty() || user.chars().count() > 200 || user.chars().any(char::is_control) {
        return Err(Error::invalid(
            "user",
            "1-200 characters, no control characters (CR, LF, …)",
        ));
    }
    if let Some(tag) = language {
        check_language_tag("language", tag)?;
    }
    let language = language_of(language.unwrap_or(&a.language));
    let token = random_token()?;
    let now = h.clock.now();
    let expires_at = now + Duration::seconds(h.config.dashboard.link_secs);
    let store = h.outbox.sessions();
    // Each new link clears the used and expired ones and the idle sessions.
    store
        .prune(now, Duration::minutes(h.config.dashboard.idle_minutes))
        .await?;
    store
        .add_link(
            &key_hash(&token),
            &DashboardUser {
                account,
                user: user.to_owned(),
                language: language.code().to_owned(),
            },
            expires_at,
        )
        .await?;
    let base = h.config.tracking.base_url.trim_end_matches('/');
    Ok(SignInLink {
        url: format!("{base}/dashboard/signin/{token}"),
        expires_at,
        language: language.code().to_owned(),
    })
}

/// Redeems sign-in link `token` (once) and starts a session; `NotFound` when
/// the link is unknown, used or expired, or the plan no longer has the dashboard.
pub async fn sign_in(h: &Herald, token: &str) -> Result<SignedIn> {
    let now = h.clock.now();
    let store = h.outbox.sessions();
    let user = store
        .redeem_link(&key_hash(token), now)
        .await?
        .ok_or(Error::NotFound {
            what: "sign-in link",
        })?;
    dashboard_account(h, user.account).await?;
    let session_token = random_token()?;
    let csrf = random_token()?;
    store
        .start(&key_hash(&session_token), &user, &csrf, now)
        .await?;
    Ok(SignedIn {
        token: session_token,
        session: Session {
            user,
            csrf,
            created_at: now,
            last_seen: now,
        },
    })
}

/// The live session with secret `token`, if any, with its account: not idle
/// longer than `dashboard.idle_minutes`, and its account's plan still
/// includes the dashboard (a downgrade, or the account's deletion, ends every
/// session of the account). A storage error is an error, never a sign-out.
pub async fn session(h: &Herald, token: &str) -> Result<Option<(Session, Account)>> {
    let store = h.outbox.sessions();
    let idle = Duration::minutes(h.config.dashboard.idle_minutes);
    let Some(s) = store.session(&key_hash(token), h.clock.now(), idle).await? else {
        return Ok(None);
    };
    match dashboard_account(h, s.user.account).await {
        Ok(a) => Ok(Some((s, a))),
        Err(Error::NotInPlan { .. })
        | Err(Error::Herald(crate::Error::Schedule(herald_schedule::Error::NotFound { .. }))) => {
            store.end_all(s.user.account).await?;
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Ends the session with secret `token` (sign-out).
pub async fn sign_out(h: &Herald, token: &str) -> Result<()> {
    h.outbox.sessions().end(&key_hash(token)).await?;
    Ok(())
}

/// Shows the session with secret `token` in `language` from now on.
pub async fn set_language(h: &Herald, token: &str, language: Language) -> Result<()> {
    Ok(h.outbox
        .sessions()
        .set_language(&key_hash(token), language.code())
        .await?)
}

// ---------------------------------------------------------------- pages' data

/// The status page: the account and its totals (R-EVT-3).
pub async fn status(h: &Herald, account: u64) -> Result<(Account, Totals)> {
    super::accounts::status(h, account).await
}

/// The campaigns page's tabs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CampaignTab {
    /// Every unarchived campaign.
    #[default]
    All,
    /// Starred ones.
    Starred,
    /// With a send still waiting to go.
    Scheduled,
    /// Sent (at least one email), nothing left scheduled.
    Sent,
    /// Archived ones.
    Archived,
}

impl CampaignTab {
    /// Every tab, in the page's order.
    pub const ALL: [CampaignTab; 5] = [
        CampaignTab::All,
        CampaignTab::Starred,
        CampaignTab::Scheduled,
        CampaignTab::Sent,
        CampaignTab::Archived,
    ];

    /// The tab's name in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignTab::All => "all",
            CampaignTab::Starred => "starred",
            CampaignTab::Scheduled => "scheduled",
            CampaignTab::Sent => "sent",
            CampaignTab::Archived => "archived",
        }
    }

    /// The tab named `name`; All for anything else.
    pub fn parse(name: &str) -> CampaignTab {
        CampaignTab::ALL
            .into_iter()
            .find(|t| t.as_str() == name)
            .unwrap_or_default()
    }
}

/// Where a campaign stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CampaignState {
    /// A send of it waits for its time.
    Scheduled,
    /// A send of it is going out (done of total).
    Sending {
        /// Messages done.
        done: usize,
        /// Messages in the send.
        total: usize,
    },
    /// Sent; nothing left to go.
    Sent,
    /// Nothing sent yet and nothing scheduled (e.g. every recipient skipped).
    Empty,
}

/// How a campaign's emails were handed to Herald.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// Through the JSON API (the only way today; SMTP submission is to come).
    Api,
}

/// A campaign as a list shows it.
#[derive(Debug, Clone)]
pub struct CampaignRow {
    /// The campaign.
    pub campaign: Campaign,
    /// Its state.
    pub state: CampaignState,
    /// How it was sent.
    pub channel: Channel,
}

/// A page of campaigns and how many there are in the tab.
#[derive(Debug, Clone)]
pub struct CampaignList {
    /// The page.
    pub rows: Vec<CampaignRow>,
    /// Campaigns in the tab (all pages).
    pub total: u64,
}

/// The state of each campaign with a send still to go.
fn pending_states(scheduled: &[ScheduledSend]) -> Vec<(CampaignId, CampaignState)> {
    let mut out: Vec<(CampaignId, CampaignState)> = Vec::new();
    for s in scheduled {
        let Some(c) = s.campaign else { continue };
        let state = if s.done > 0 {
            CampaignState::Sending {
                done: s.done,
                total: s.count,
            }
        } else {
            CampaignState::Scheduled
        };
        match out.iter_mut().find(|(id, _)| *id == c) {
            // Sending wins over scheduled when a campaign has both.
            Some((_, st)) if matches!(state, CampaignState::Sending { .. }) => *st = state,
            Some(_) => {}
            None => out.push((c, state)),
        }
    }
    out
}

/// Campaigns of `account` in `tab`, whose subject or name contains `search`,
/// page `page` (from 0) of `per_page` (1-100).
pub async fn campaigns(
    h: &Herald,
    account: u64,
    tab: CampaignTab,
    search: Option<&str>,
    page: u64,
    per_page: u32,
) -> Result<CampaignList> {
    let search = search.map(str::trim).filter(|s| !s.is_empty());
    if let Some(s) = search {
        super::contacts::at_most("q", s.chars().count(), 200)?;
    }
    let pending = pending_states(&h.outbox.scheduled(account).await?);
    let pending_ids: Vec<CampaignId> = pending.iter().map(|(c, _)| *c).collect();
    let per_page = per_page.clamp(1, 100);
    let filter = CampaignFilter {
        archived: tab == CampaignTab::Archived,
        starred_only: tab == CampaignTab::Starred,
        only: (tab == CampaignTab::Scheduled).then(|| pending_ids.clone()),
        except: if tab == CampaignTab::Sent {
            pending_ids
        } else {
            Vec::new()
        },
        sent_only: tab == CampaignTab::Sent,
        search: search.map(str::to_owned),
        limit: per_page,
        offset: page.saturating_mul(u64::from(per_page)),
    };
    let (campaigns, total) = h.events.campaigns_page(account, &filter).await?;
    let rows = campaigns
        .into_iter()
        .map(|campaign| {
            let state = pending
                .iter()
                .find(|(c, _)| *c == campaign.id)
                .map(|(_, s)| *s)
                .unwrap_or(if campaign.emails > 0 {
                    CampaignState::Sent
                } else {
                    CampaignState::Empty
                });
            CampaignRow {
                campaign,
                state,
                channel: Channel::Api,
            }
        })
        .collect();
    Ok(CampaignList { rows, total })
}

/// Stars/unstars or archives/unarchives campaign `id` of `account`.
pub async fn mark_campaign(
    h: &Herald,
    account: u64,
    id: CampaignId,
    starred: Option<bool>,
    archived: Option<bool>,
) -> Result<()> {
    if h.events
        .mark_campaign(account, id, starred, archived)
        .await?
    {
        Ok(())
    } else {
        Err(Error::NotFound { what: "campaign" })
    }
}

/// A rate with its parts, so a page can say what it is a rate of.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// The counted part.
    pub part: u64,
    /// The denominator.
    pub whole: u64,
}

impl Rate {
    /// `part / whole`, 0 when `whole` is 0.
    pub fn value(self) -> f64 {
        herald_eventlog::campaign::rate(self.part, self.whole)
    }
}

/// The rates of a campaign, each over its stated denominator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CampaignRates {
    /// Messages opened by a person / delivered.
    pub open: Rate,
    /// Messages clicked by a person / delivered.
    pub click: Rate,
    /// Messages clicked / messages opened (click-to-open).
    pub click_to_open: Rate,
    /// Hard bounces / emails sent.
    pub hard_bounce: Rate,
    /// Soft bounces / emails sent.
    pub soft_bounce: Rate,
    /// Blocked / emails sent.
    pub blocked: Rate,
    /// Spam complaints / delivered.
    pub complaint: Rate,
    /// Unsubscribes / delivered.
    pub unsubscribe: Rate,
}

/// A campaign with everything its page shows.
#[derive(Debug, Clone)]
pub struct CampaignDetail {
    /// The campaign and its totals.
    pub campaign: Campaign,
    /// Its rates.
    pub rates: CampaignRates,
    /// People's opens and clicks per hour (counted at ingestion).
    pub hours: Vec<CampaignHour>,
    /// What its logged events say.
    pub breakdown: CampaignBreakdown,
}

/// Campaign `id` of `account` with its rates, hours and breakdown;
/// `NotFound` for another account's.
pub async fn campaign(h: &Herald, account: u64, id: CampaignId) -> Result<CampaignDetail> {
    let campaign = h
        .events
        .campaign(account, id)
        .await?
        .ok_or(Error::NotFound { what: "campaign" })?;
    let hours = h.events.campaign_hours(account, id).await?;
    let breakdown = h.events.campaign_breakdown(account, id).await?;
    let c = &campaign;
    let b = &breakdown;
    let rates = CampaignRates {
        open: Rate {
            part: c.opened,
            whole: c.delivered,
        },
        click: Rate {
            part: c.clicked,
            whole: c.delivered,
        },
        click_to_open: Rate {
            part: c.clicked,
            whole: c.opened,
        },
        hard_bounce: Rate {
            part: b.hard_bounces,
            whole: c.emails,
        },
        soft_bounce: Rate {
            part: b.soft_bounces,
            whole: c.emails,
        },
        blocked: Rate {
            part: b.blocked,
            whole: c.emails,
        },
        complaint: Rate {
            part: b.complaints,
            whole: c.delivered,
        },
        unsubscribe: Rate {
            part: b.unsubscribes,
            whole: c.delivered,
        },
    };
    Ok(CampaignDetail {
        campaign,
        rates,
        hours,
        breakdown,
    })
}

/// People's opens and clicks of a campaign within `[from, to)` (either end
/// open), from its hourly counts: for comparing campaigns over one period.
pub fn in_period(
    hours: &[CampaignHour],
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> (u64, u64) {
    hours
        .iter()
        .filter(|h| from.is_none_or(|f| h.hour >= f) && to.is_none_or(|t| h.hour < t))
        .fold((0, 0), |(o, c), h| (o + h.opens, c + h.clicks))
}

/// Which of a campaign's recipients a list or CSV holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientsOf {
    /// Those who opened.
    Opened,
    /// Those who clicked.
    Clicked,
    /// Those whose email bounced or was blocked.
    Bounced,
}

impl RecipientsOf {
    /// The name in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientsOf::Opened => "opened",
            RecipientsOf::Clicked => "clicked",
            RecipientsOf::Bounced => "bounced",
        }
    }

    /// The list named `name`.
    pub fn parse(name: &str) -> Option<RecipientsOf> {
        [
            RecipientsOf::Opened,
            RecipientsOf::Clicked,
            RecipientsOf::Bounced,
        ]
        .into_iter()
        .find(|r| r.as_str() == name)
    }

    fn kinds(self) -> Vec<Value> {
        let kinds: &[EventKind] = match self {
            RecipientsOf::Opened => &[EventKind::Open],
            RecipientsOf::Clicked => &[EventKind::Click],
            RecipientsOf::Bounced => &[
                EventKind::HardBounce,
                EventKind::SoftBounce,
                EventKind::Blocked,
            ],
        };
        kinds
            .iter()
            .map(|k| Value::Text(k.as_str().to_owned()))
            .collect()
    }
}

fn recipients_query(id: CampaignId, of: RecipientsOf, contains: Option<&str>) -> ReportQuery {
    let mut filters = vec![
        Filter::Equals {
            field: EventField::Campaign,
            value: Value::Int(id.0),
        },
        Filter::OneOf {
            field: EventField::Kind,
            values: of.kinds(),
        },
    ];
    if let Some(c) = contains.map(str::trim).filter(|c| !c.is_empty()) {
        filters.push(Filter::Contains {
            field: EventField::Recipient,
            value: c.to_owned(),
        });
    }
    ReportQuery {
        filters,
        limit: 10_000,
        ..ReportQuery::default()
    }
}

/// The events of campaign `id` of `account` that put a recipient in `of`
/// (filtered by `contains` in the address), newest first, at most `limit`.
pub async fn campaign_recipients(
    h: &Herald,
    account: u64,
    id: CampaignId,
    of: RecipientsOf,
    contains: Option<&str>,
    limit: i64,
) -> Result<Vec<Event>> {
    let mut q = recipients_query(id, of, contains);
    q.limit = limit.clamp(1, 10_000);
    q.check(h.events.report_limits())?;
    Ok(h.events.report(account, &q).await?)
}

/// [`campaign_recipients`] as CSV (the report's columns).
pub async fn campaign_recipients_csv(
    h: &Herald,
    account: u64,
    id: CampaignId,
    of: RecipientsOf,
    contains: Option<&str>,
) -> Result<String> {
    h.events
        .campaign(account, id)
        .await?
        .ok_or(Error::NotFound { what: "campaign" })?;
    let q = recipients_query(id, of, contains);
    q.check(h.events.report_limits())?;
    Ok(h.events.report_csv(account, &q).await?)
}

/// The scheduled list of `account` (R-SND-5).
pub async fn scheduled(h: &Herald, account: u64) -> Result<Vec<ScheduledSend>> {
    Ok(h.outbox.scheduled(account).await?)
}

/// A scheduled send with its content as the recipients will read it (merge
/// fields empty).
#[derive(Debug, Clone)]
pub struct ScheduledContent {
    /// The line of the scheduled list.
    pub send: ScheduledSend,
    /// The content.
    pub preview: herald_message::Preview,
}

/// Scheduled send `id` of `account` and its content; `NotFound` when it is
/// another account's or has nothing left to send.
pub async fn scheduled_send(h: &Herald, account: u64, id: i64) -> Result<ScheduledContent> {
    let send = scheduled(h, account)
        .await?
        .into_iter()
        .find(|s| s.id == id)
        .ok_or(Error::NotFound {
            what: "scheduled send",
        })?;
    // A text is shown as written, from its sender id.
    if send.channel == herald_schedule::Channel::Sms {
        let stored = h.outbox.sms_send(account, id).await?;
        return Ok(ScheduledContent {
            send,
            preview: herald_message::Preview {
                subject: stored.from,
                html: None,
                text: Some(stored.text),
            },
        });
    }
    let stored = h.outbox.view(account, id).await?;
    Ok(ScheduledContent {
        send,
        preview: stored.template.preview(&Default::default()),
    })
}

/// Deletes send `id` of `account`: what is unsent is cancelled and its
/// logged emails removed (as `DELETE /v1/sends/{id}`); how many were cancelled.
pub async fn delete_scheduled(h: &Herald, account: u64, id: i64) -> Result<u64> {
    Ok(h.outbox.delete(account, id, h.clock.now()).await?)
}

/// The event log page's filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// One kind.
    pub kind: Option<EventKind>,
    /// One campaign.
    pub campaign: Option<CampaignId>,
    /// One address (exactly, when it has an `@` inside), or recipients whose
    /// address contains this.
    pub recipient: Option<String>,
    /// From (inclusive).
    pub from: Option<DateTime<Utc>>,
    /// To (exclusive).
    pub to: Option<DateTime<Utc>>,
}

/// Lines per page the event log offers.
pub const EVENT_PAGE_SIZES: [u32; 4] = [10, 25, 50, 100];

/// A page of `account`'s events matching `filter`, newest first, and how many match.
pub async fn events(
    h: &Herald,
    account: u64,
    filter: &EventFilter,
    page: u64,
    per_page: u32,
) -> Result<(Vec<Event>, u64)> {
    if !EVENT_PAGE_SIZES.contains(&per_page) {
        return Err(Error::invalid("per_page", "one of 10, 25, 50, 100"));
    }
    let mut filters = Vec::new();
    if let Some(k) = filter.kind {
        filters.push(Filter::Equals {
            field: EventField::Kind,
            value: Value::Text(k.as_str().to_owned()),
        });
    }
    if let Some(c) = filter.campaign {
        filters.push(Filter::Equals {
            field: EventField::Campaign,
            value: Value::Int(c.0),
        });
    }
    // A whole address is looked up exactly (an index; addresses are stored in
    // lower case); a part of one is a `contains` scan of the account's log.
    if let Some(r) = filter
        .recipient
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
    {
        let whole_address = r.contains('@') && !r.starts_with('@') && !r.ends_with('@');
        filters.push(if whole_address {
            Filter::Equals {
                field: EventField::Recipient,
                value: Value::Text(r.to_lowercase()),
            }
        } else {
            Filter::Contains {
                field: EventField::Recipient,
                value: r.to_owned(),
            }
        });
    }
    if filter.from.is_some() || filter.to.is_some() {
        let from = filter.from.unwrap_or(DateTime::UNIX_EPOCH);
        let to = filter
            .to
            .unwrap_or_else(|| h.clock.now() + Duration::days(1));
        if to <= from {
            return Err(Error::invalid("to", "must be after `from`"));
        }
        filters.push(Filter::Between { from, to });
    }
    let q = ReportQuery {
        filters,
        limit: i64::from(per_page),
        offset: i64::try_from(page.saturating_mul(u64::from(per_page))).unwrap_or(i64::MAX),
        ..ReportQuery::default()
    };
    q.check(h.events.report_limits())?;
    let total = h.events.report_count(account, &q).await?;
    Ok((h.events.report(account, &q).await?, total))
}

/// The full URL of each click of `events` (by event id) that `account`'s
/// message still has: the send's template and the message's merge values
/// give it, as the click endpoint redirects to it. Clicks whose message is
/// gone (deleted with its send) have none.
pub async fn link_urls(
    h: &Herald,
    account: u64,
    events: &[Event],
) -> Result<std::collections::HashMap<i64, String>> {
    let clicks: Vec<(i64, i64, u16)> = events
        .iter()
        .filter(|e| e.kind == EventKind::Click)
        .filter_map(|e| Some((e.id, e.message?, u16::try_from(e.link?).ok()?)))
        .collect();
    let mut ids: Vec<i64> = clicks.iter().map(|(_, m, _)| *m).collect();
    ids.sort_unstable();
    ids.dedup();
    // One query for the page's messages (a page of 100 clicks is not 100 lookups).
    let messages = h.outbox.messages_values(account, &ids).await?;
    let mut out = std::collections::HashMap::new();
    for (event, message, link) in clicks {
        let Some(m) = messages.get(&message) else {
            continue;
        };
        let send = match h.send_cached(m.message.send_id).await {
            Ok(s) => s,
            Err(crate::Error::Schedule(herald_schedule::Error::NotFound { .. })) => continue,
            Err(e) => return Err(e.into()),
        };
        if let Some(url) = send.template.link_url(link, &m.values) {
            out.insert(event, url);
        }
    }
    Ok(out)
}

/// A person's page: the person with their flags, their click history and events.
#[derive(Debug, Clone)]
pub struct PersonDetail {
    /// The person and the flags Herald keeps.
    pub person: super::contacts::PersonView,
    /// Their address is on the account's blocklist (a hard bounce; only an
    /// unblock lifts it). "Email bouncing" is the CRM-facing flag a hard
    /// bounce sets on the person.
    pub blocklisted: bool,
    /// Their clicks, newest first (the seed's click history).
    pub clicks: Vec<Event>,
    /// Their latest events (at most 100), newest first.
    pub events: Vec<Event>,
}

/// Person `id` of `account` with clicks and events; `NotFound` for another account's.
pub async fn person(h: &Herald, account: u64, id: &str) -> Result<PersonDetail> {
    super::contacts::check_id("id", id)?;
    let person = super::contacts::person(h, account, id).await?;
    let clicks = h.events.click_history(account, id).await?;
    let q = ReportQuery {
        filters: vec![Filter::Equals {
            field: EventField::Person,
            value: Value::Text(id.to_owned()),
        }],
        limit: 100,
        ..ReportQuery::default()
    };
    let events = h.events.report(account, &q).await?;
    let blocklisted = match person.person.get("email") {
        Some(email) => h
            .events
            .suppressions(account, email)
            .await?
            .contains(&herald_eventlog::Suppressed::Blocklist),
        None => false,
    };
    Ok(PersonDetail {
        person,
        blocklisted,
        clicks,
        events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: i64, campaign: i64, done: usize) -> ScheduledSend {
        ScheduledSend {
            id,
            deferred_until: DateTime::UNIX_EPOCH,
            created: DateTime::UNIX_EPOCH,
            count: 10,
            user: "u".into(),
            subject: "s".into(),
            kind: herald_message::SendKind::Mass,
            recipient: None,
            done,
            campaign: Some(CampaignId(campaign)),
            channel: herald_schedule::Channel::Email,
        }
    }

    #[test]
    fn a_campaign_sending_wins_over_scheduled() {
        let states = pending_states(&[line(1, 7, 0), line(2, 7, 3), line(3, 8, 0)]);
        assert_eq!(
            states,
            [
                (CampaignId(7), CampaignState::Sending { done: 3, total: 10 }),
                (CampaignId(8), CampaignState::Scheduled)
            ]
        );
    }

    #[test]
    fn a_period_sums_the_hours_inside_it() {
        let at = |h: i64| DateTime::UNIX_EPOCH + Duration::hours(h);
        let hours: Vec<CampaignHour> = (0..5)
            .map(|h| CampaignHour {
                hour: at(h),
                opens: 10,
                clicks: 1,
            })
            .collect();
        assert_eq!(in_period(&hours, None, None), (50, 5));
        assert_eq!(in_period(&hours, Some(at(1)), Some(at(3))), (20, 2));
        assert_eq!(in_period(&hours, Some(at(4)), None), (10, 1));
        assert_eq!(in_period(&hours, Some(at(9)), None), (0, 0));
    }

    #[test]
    fn tabs_round_trip_and_unknown_is_all() {
        for t in CampaignTab::ALL {
            assert_eq!(CampaignTab::parse(t.as_str()), t);
        }
        assert_eq!(CampaignTab::parse("<script>"), CampaignTab::All);
    }
}
