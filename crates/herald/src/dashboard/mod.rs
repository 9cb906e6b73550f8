//! The dashboard (R-UI-1): server-rendered pages under `/dashboard`, for a CRM
//! user signed in through a one-time link ([`crate::app::dashboard`]).
//!
//! - `GET /dashboard/signin/{token}`: redeems the link, sets the session
//!   cookie (HttpOnly, SameSite=Lax, Path=/dashboard, Secure when the base URL
//!   is https) and redirects to the status page.
//! - `GET /dashboard`: status; `/dashboard/campaigns` (tabs, search, pages),
//!   `/dashboard/campaigns/{id}` (with `recipients.csv`), `/dashboard/compare`,
//!   `/dashboard/scheduled` and `/dashboard/scheduled/{id}`, `/dashboard/events`,
//!   `/dashboard/persons/{id}`.
//! - `POST` (each with the session's CSRF token): star/archive a campaign,
//!   delete a scheduled send, switch language, sign out.
//!
//! The handlers read the request, call one use case and render its result:
//! no rule lives here. Every page is sent with a strict Content-Security-Policy
//! (`default-src 'none'`, styles from `/dashboard/assets` only, no script at
//! all), `no-store`, `nosniff` and `frame-ancestors 'none'`; maud escapes
//! every value. Another account's campaign, send or person is a 404, as an
//! unknown one.

mod chart;
mod pages;

use crate::app::dashboard as uc;
use crate::i18n::{Language, Texts};
use crate::service::Herald;
use axum::Router;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use herald_message::CampaignId;
use serde::Deserialize;
use std::sync::Arc;

/// The session cookie's name.
pub const COOKIE: &str = "herald_session";

/// The Content-Security-Policy of every dashboard page.
pub const CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = include_str!("style.css");
const STATUS_JS: &str = include_str!("status.js");

/// The `/dashboard` routes (see the module documentation).
pub fn routes(herald: Arc<Herald>) -> Router {
    Router::new()
        .route("/dashboard", get(status))
        .route("/dashboard/signin/{token}", get(sign_in))
        .route("/dashboard/signout", post(sign_out))
        .route("/dashboard/language", post(language))
        .route("/dashboard/campaigns", get(campaigns))
        .route("/dashboard/campaigns/{id}", get(campaign))
        .route("/dashboard/campaigns/{id}/mark", post(mark))
        .route(
            "/dashboard/campaigns/{id}/recipients.csv",
            get(recipients_csv),
        )
        .route("/dashboard/compare", get(compare))
        .route("/dashboard/scheduled", get(scheduled))
        .route("/dashboard/scheduled/{id}", get(scheduled_send))
        .route("/dashboard/scheduled/{id}/delete", post(delete_scheduled))
        .route("/dashboard/events", get(events))
        .route("/dashboard/persons/{id}", get(person))
        .route("/dashboard/assets/style.css", get(style))
        .route("/dashboard/assets/status.js", get(status_js))
        .layer(axum::middleware::from_fn(headers))
        .with_state(herald)
}

/// Security headers on every dashboard answer.
async fn headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    r
}

async fn status_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STATUS_JS,
    )
        .into_response()
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLE,
    )
        .into_response()
}

/// A page the tracking endpoints show a recipient, in `language`, with the
/// dashboard's templates and stylesheet.
pub(crate) fn recipient_page(
    h: &Herald,
    language: Language,
    p: &crate::tracking::TrackingPage,
) -> String {
    let ctx = Ctx {
        texts: Arc::clone(&h.texts),
        lang: language,
        tz: chrono_tz::UTC,
        user: None,
        csrf: String::new(),
        refresh_secs: 0,
    };
    pages::recipient(&ctx, p).into_string()
}

// ---------------------------------------------------------------- sessions

/// What a page renders with: the texts, the language and time zone, the
/// session's user and CSRF token.
pub(crate) struct Ctx {
    texts: Arc<Texts>,
    /// The page's language.
    pub lang: Language,
    /// The account's time zone.
    pub tz: chrono_tz::Tz,
    /// The signed-in user's name (none on pages shown signed out).
    pub user: Option<String>,
    /// The session's CSRF token (empty signed out).
    pub csrf: String,
    /// The status page's refresh.
    pub refresh_secs: u32,
}

impl Ctx {
    /// Message `id`.
    pub fn t(&self, id: &str) -> String {
        self.texts.get(self.lang, id)
    }
    /// Message `id` with arguments.
    pub fn ta(&self, id: &str, args: &[(&str, String)]) -> String {
        self.texts.with(self.lang, id, args)
    }
    /// A count.
    pub fn n(&self, n: u64) -> String {
        self.lang.count(n)
    }
    /// A rate as a percentage.
    pub fn pct(&self, rate: f64) -> String {
        self.lang.percent(rate)
    }
    /// A time in the account's zone.
    pub fn at(&self, at: chrono::DateTime<chrono::Utc>) -> String {
        self.lang.datetime(at, self.tz)
    }
}

/// A signed-in request: the session's secret, the session and its page context.
pub(crate) struct Signed {
    token: String,
    account: u64,
    csrf: String,
    ctx: Ctx,
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 100)
}

/// The language of a page shown signed out: the browser's first that Herald speaks.
pub(crate) fn browser_language(headers: &HeaderMap) -> Language {
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    Language::first_of(accept.split(',').map(|t| t.split(';').next().unwrap_or("")))
}

fn signed_out_ctx(h: &Herald, headers: &HeaderMap) -> Ctx {
    Ctx {
        texts: Arc::clone(&h.texts),
        lang: browser_language(headers),
        tz: chrono_tz::UTC,
        user: None,
        csrf: String::new(),
        refresh_secs: 0,
    }
}

impl FromRequestParts<Arc<Herald>> for Signed {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, h: &Arc<Herald>) -> Result<Self, Response> {
        let signed_out = || {
            let ctx = signed_out_ctx(h, &parts.headers);
            page(StatusCode::UNAUTHORIZED, pages::signed_out(&ctx))
        };
        let Some(token) = cookie(&parts.headers) else {
            return Err(signed_out());
        };
        let (session, account) = match uc::session(h, &token).await {
            Ok(Some(s)) => s,
            Ok(None) => return Err(signed_out()),
            Err(e) => return Err(error_page(&signed_out_ctx(h, &parts.headers), e)),
        };
        let tz = account.timezone.parse().unwrap_or(chrono_tz::UTC);
        Ok(Signed {
            account: session.user.account,
            csrf: session.csrf.clone(),
            ctx: Ctx {
                texts: Arc::clone(&h.texts),
                lang: uc::language_of(&session.user.language),
                tz,
                user: Some(session.user.user),
                csrf: session.csrf,
                refresh_secs: h.config.dashboard.refresh_secs,
            },
            token,
        })
    }
}

impl Signed {
    /// Refuses a state-changing request whose form lacks the session's CSRF token.
    fn check_csrf(&self, given: &str) -> Result<(), Refusal> {
        let (a, b) = (given.as_bytes(), self.csrf.as_bytes());
        let same =
            a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
        if same && !b.is_empty() {
            Ok(())
        } else {
            Err(page(StatusCode::FORBIDDEN, pages::forbidden(&self.ctx)).into())
        }
    }
}

/// A use case's error as a page.
fn error_page(ctx: &Ctx, e: crate::app::Error) -> Response {
    use crate::app::Error as E;
    let status = match &e {
        E::Invalid { .. } => StatusCode::BAD_REQUEST,
        E::NotFound { .. } => StatusCode::NOT_FOUND,
        E::NotEnabled | E::NotInPlan { .. } => StatusCode::FORBIDDEN,
        E::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        E::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        E::Herald(crate::Error::EventLog(herald_eventlog::Error::Invalid { .. }))
        | E::Herald(crate::Error::EventLog(herald_eventlog::Error::Limit { .. }))
        | E::Herald(crate::Error::Schedule(herald_schedule::Error::Invalid { .. })) => {
            StatusCode::BAD_REQUEST
        }
        E::Herald(crate::Error::Schedule(herald_schedule::Error::NotFound { .. })) => {
            StatusCode::NOT_FOUND
        }
        E::Herald(crate::Error::Schedule(herald_schedule::Error::NothingToCancel { .. })) => {
            StatusCode::CONFLICT
        }
        E::Herald(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = %e, "dashboard");
    }
    let detail = match status {
        StatusCode::INTERNAL_SERVER_ERROR => None,
        StatusCode::NOT_FOUND => None,
        _ => Some(e.to_string()),
    };
    page(status, pages::error(ctx, status, detail.as_deref()))
}

/// A page refused (an error page, boxed: a `Response` is large).
pub(crate) struct Refusal(Box<Response>);

impl From<Response> for Refusal {
    fn from(r: Response) -> Self {
        Refusal(Box::new(r))
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        *self.0
    }
}

type PageResult = Result<Response, Refusal>;

fn page(status: StatusCode, markup: maud::Markup) -> Response {
    let mut r = html(markup);
    *r.status_mut() = status;
    r
}

fn html(markup: maud::Markup) -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

// ---------------------------------------------------------------- sign-in

async fn sign_in(
    State(h): State<Arc<Herald>>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    let ctx = signed_out_ctx(&h, &headers);
    if token.len() > 100 {
        return page(StatusCode::NOT_FOUND, pages::link_invalid(&ctx));
    }
    match uc::sign_in(&h, &token).await {
        Ok(signed) => {
            let secure = if h.config.tracking.base_url.starts_with("https://") {
                "; Secure"
            } else {
                ""
            };
            let cookie = format!(
                "{COOKIE}={}; Path=/dashboard; HttpOnly; SameSite=Lax{secure}",
                signed.token
            );
            let mut r = Redirect::to("/dashboard").into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Err(crate::app::Error::NotFound { .. }) => {
            page(StatusCode::NOT_FOUND, pages::link_invalid(&ctx))
        }
        Err(e) => error_page(&ctx, e),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn sign_out(
    State(h): State<Arc<Herald>>,
    s: Signed,
    axum::Form(f): axum::Form<CsrfForm>,
) -> PageResult {
    s.check_csrf(&f.csrf)?;
    uc::sign_out(&h, &s.token)
        .await
        .map_err(|e| error_page(&s.ctx, e))?;
    let mut r = html(pages::signed_out_now(&s.ctx));
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "herald_session=; Path=/dashboard; HttpOnly; SameSite=Lax; Max-Age=0",
        ),
    );
    Ok(r)
}

#[derive(Deserialize)]
struct LanguageForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    language: String,
    #[serde(default)]
    back: String,
}

/// `back` if it is a dashboard path (never another site: no open redirect).
fn back_to(back: &str) -> String {
    let ok = back.starts_with("/dashboard")
        && !back.contains("//")
        && !back.contains('\\')
        && !back.chars().any(char::is_control);
    if ok {
        back.to_owned()
    } else {
        "/dashboard".to_owned()
    }
}

async fn language(
    State(h): State<Arc<Herald>>,
    s: Signed,
    axum::Form(f): axum::Form<LanguageForm>,
) -> PageResult {
    s.check_csrf(&f.csrf)?;
    let lang = uc::language_of(&f.language);
    uc::set_language(&h, &s.token, lang)
        .await
        .map_err(|e| error_page(&s.ctx, e))?;
    Ok(Redirect::to(&back_to(&f.back)).into_response())
}

// ---------------------------------------------------------------- pages

async fn status(State(h): State<Arc<Herald>>, s: Signed) -> PageResult {
    let (account, totals) = uc::status(&h, s.account)
        .await
        .map_err(|e| error_page(&s.ctx, e))?;
    Ok(html(pages::status(&s.ctx, &account, &totals)))
}

#[derive(Deserialize, Default)]
struct CampaignsQuery {
    #[serde(default)]
    tab: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: u64,
}

const CAMPAIGNS_PER_PAGE: u32 = 25;

async fn campaigns(
    State(h): State<Arc<Herald>>,
    s: Signed,
    Query(q): Query<CampaignsQuery>,
) -> PageResult {
    let tab = uc::CampaignTab::parse(&q.tab);
    let list = uc::campaigns(&h, s.account, tab, Some(&q.q), q.page, CAMPAIGNS_PER_PAGE)
        .await
        .map_err(|e| error_page(&s.ctx, e))?;
    Ok(html(pages::campaigns(
        &s.ctx,
        tab,
        &q.q,
        q.page,
        CAMPAIGNS_PER_PAGE,
        &list,
    )))
}

#[derive(Deserialize, Default)]
struct CampaignQuery {
    #[serde(default)]
    list: String,
    #[serde(default)]
    contains: String,
}

async fn campaign(
    State(h): State<Arc<Herald>>,
    s: Signed,
    Path(id): Path<String>,
    Query(q): Query<CampaignQuery>,
) -> PageResult {
    let id = campaign_id(&s, &id)?;
    let detail = uc::campaign(&h, s.account, id)
        .await
        .map_err(|e| error_page(&s.ctx, e))?;
    let of = uc::RecipientsOf::parse(&q.list).unwrap_or(uc::RecipientsOf::Opened);
    let recipients = uc::campaign_recipients(&h, s.account, id, of, Some(&q.contains), 100)
        .await
        .map_err(|e| error_page(&s.ctx, e))?;
    let urls = uc::link_urls(&h, s.account, &recipients)
        .await
        .map_err(|e| error_page(&s.ctx, e))?;
    Ok(html(pages::campaign(
        &s.ctx,
        &detail,
        of,
        &q.contains,
        &recipients,
        &urls,
    )))
}

fn campaign_id(s: &Signed, id: &str) -> Result<CampaignId, Refusal> {
    id.parse::<i64>()
        .map(CampaignId)
        .map_err(|_| error_page(&s.ctx, crate::app::Error::NotFound { what: "campaign" }).into())
}

async fn recipients_csv(
    State(h): State<Arc<Herald>>,
    s: Signed,
    Path(id): Path<String>,
    Query(q): Query<CampaignQuery>,
) -> PageResult {
    let id = campaign_id(&s, &id)?;
    let of = uc::RecipientsOf::parse(&q.list).unwrap_or(uc::RecipientsOf::Opened);
    let csv = uc::campaign_recipients_csv(&h, s.account, id, of, Some(&q.contains))
        .await
        .map_err(|e| error_page(&s.ctx, e))?;
    let disposition = format!(
        "attachment; filename=\"campaign-{}-{}.csv\"",
        id.0,
        of.as_str()
    );
    let mut r = ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response();
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

#[derive(Deserialize)]
struct MarkForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    starred: Option<bool>,
    #[serde(default)]
    archived: Option<bool>,
    #[serde(default)]
    back: String,
}

async fn mark(
    State(h): State<Arc<Herald>>,
    s: Signed,
    Path(id): Path<String>,
    axum::Form(f): axum::Form<MarkForm>,
) -> PageResult {
    s.check_csrf(&f.csrf)?;
    let id = campaign_id(&s, &id)?;
    uc::mark_campaign(&h, s.account, id, f.starred, f.archived)
        .await
        .map_err(|e| error_page(&s.ctx, e))?;
    Ok(Redirect::to(&back_to(&f.back)).into_response())
}

async fn compare(
    State(h): State<Arc<Herald>>,
    s: Signed,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> PageResult {
    // `?id=1&id=2&from=…&to=…`: several values of one name (serde's form reader keeps one).
    let raw = raw.unwrap_or_default();
    let value = |name: &str| {
        raw.split('&')
            .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_default()
            .to_owned()
    };
    let (from_text, to_text) = (value("from"), value("to"));
    let period = (|| -> Result<_, crate::app::Error> {
        Ok((
            day_start("from", &from_text, s.ctx.tz)?,
            day_start("to", &to_text, s.ctx.tz)?.map(|t| t + chrono::Duration::days(1)),
        ))
    })()
    .map_err(|e| error_page(&s.ctx, e))?;
    let ids: Vec<CampaignId> = raw
        .split('&')
        .filter_map(|p| p.strip_prefix("id="))
        .filter_map(|v| v.parse().ok())
        .map(CampaignId)
        .take(6)
        .collect();
    let mut details = Vec::new();
    for id in ids {
        details.push(
            uc::campaign(&h, s.account, id)
                .await
                .map_err(|e| error_page(&s.ctx, e))?,
        );
    }
    let list = uc::campaigns(&h, s.account, uc::CampaignTab::All, None, 0, 100)
        .await
        .map_err(|e| error_page(&s.ctx, e))?;
    let in_period: Vec<(u64, u64)> = details
        .iter()
        .map(|d| uc::in_period(&d.hours, period.0, period.1))
        .collect();
    Ok(html(pages::compare(
        &s.ctx,
        &details,
        &list,
        (&from_text, &to_text),
        &in_period,
    )))
}

async fn scheduled(State(h): State<Arc<Herald>>, s: Signed) -> PageResult {
    let list = uc::scheduled(&h, s.account)
        .await
        .map_err(|e| error_page(&s.ctx, e))?;
    Ok(html(pages::scheduled(&s.ctx, &list)))
}

#[derive(Deserialize, Default)]
struct ConfirmQuery {
    #[serde(default)]
    confirm: bool,
}

async fn scheduled_send(
    State(h): State<Arc<Herald>>,
    s: Signed,
    Path(id): Path<String>,
    Query(q): Query<ConfirmQuery>,
) -> PageResult {
    let not_found = || {
        error_page(
            &s.ctx,
            crate::app::Error::NotFound {
                what: "scheduled send",
            },
        )
    };
    let id: i64 = id.parse().map_err(|_| not_found())?;
    let content = uc::scheduled_send(&h, s.account, id)
        .await
        .map_err(|e| error_page(&s.ctx, e))?;
    Ok(html(pages::scheduled_send(&s.ctx, &content, q.confirm)))
}

async fn delete_scheduled(
    State(h): State<Arc<Herald>>,
    s: Signed,
    Path(id): Path<String>,
    axum::Form(f): axum::Form<CsrfForm>,
) -> PageResult {
    s.check_csrf(&f.csrf)?;
    let id: i64 = id.parse().map_err(|_| {
        error_page(
            &s.ctx,
            crate::app::Error::NotFound {
                what: "scheduled send",
            },
        )
    })?;
    // Only a send on the scheduled list: another account's is not found.
    uc::scheduled_send(&h, s.account, id)
        .await
        .map_err(|e| error_page(&s.ctx, e))?;
    let cancelled = uc::delete_scheduled(&h, s.account, id)
        .await
        .map_err(|e| error_page(&s.ctx, e))?;
    Ok(html(pages::deleted(&s.ctx, cancelled)))
}

#[derive(Deserialize, Default)]
struct EventsQuery {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    campaign: String,
    #[serde(default)]
    recipient: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    per_page: Option<u32>,
    #[serde(default)]
    page: u64,
}

/// A `YYYY-MM-DD` day of the form as its start in `tz`.
fn day_start(
    field: &str,
    value: &str,
    tz: chrono_tz::Tz,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, crate::app::Error> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(None);
    }
    let day = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map_err(|_| crate::app::Error::invalid(field, "a day as YYYY-MM-DD"))?;
    let start = day
        .and_hms_opt(0, 0, 0)
        .and_then(|t| t.and_local_timezone(tz).earliest())
        .ok_or_else(|| {
            crate::app::Error::invalid(field, "a day that exists in the account's time zone")
        })?;
    Ok(Some(start.with_timezone(&chrono::Utc)))
}

async fn events(
    State(h): State<Arc<Herald>>,
    s: Signed,
    Query(q): Query<EventsQuery>,
) -> PageResult {
    let filter = (|| -> Result<uc::EventFilter, crate::app::Error> {
        Ok(uc::EventFilter {
            kind: match q.kind.trim() {
                "" => None,
                k => Some(
                    herald_eventlog::EventKind::parse(k)
                        .ok_or_else(|| crate::app::Error::invalid("kind", "an event kind"))?,
                ),
            },
            campaign: match q.campaign.trim() {
                "" => None,
                c => Some(CampaignId(c.parse().map_err(|_| {
                    crate::app::Error::invalid("campaign", "a campaign number")
                })?)),
            },
            recipient: Some(q.recipient.clone()).filter(|r| !r.trim().is_empty()),
            from: day_start("from", &q.from, s.ctx.tz)?,
            // `to` is the last day shown: the filter ends at the next day's start.
            to: day_start("to", &q.to, s.ctx.tz)?.map(|t| t + chrono::Duration::days(1)),
        })
    })()
    .map_err(|e| error_page(&s.ctx, e))?;
    let per_page = q.per_page.unwrap_or(25);
    let (list, total) = uc::events(&h, s.account, &filter, q.page, per_page)
        .await
        .map_err(|e| error_page(&s.ctx, e))?;
    let urls = uc::link_urls(&h, s.account, &list)
        .await
        .map_err(|e| error_page(&s.ctx, e))?;
    Ok(html(pages::events(
        &s.ctx,
        &pages::EventsForm {
            kind: &q.kind,
            campaign: &q.campaign,
            recipient: &q.recipient,
            from: &q.from,
            to: &q.to,
            per_page,
            page: q.page,
        },
        &list,
        total,
        &urls,
    )))
}

async fn person(State(h): State<Arc<Herald>>, s: Signed, Path(id): Path<String>) -> PageResult {
    let detail = uc::person(&h, s.account, &id)
        .await
        .map_err(|e| error_page(&s.ctx, e))?;
    let mut events = detail.events.clone();
    events.extend(detail.clicks.iter().cloned());
    let urls = uc::link_urls(&h, s.account, &events)
        .await
        .map_err(|e| error_page(&s.ctx, e))?;
    Ok(html(pages::person(&s.ctx, &detail, &urls)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_never_leaves_the_dashboard() {
        for (given, want) in [
            (
                "/dashboard/campaigns?tab=starred",
                "/dashboard/campaigns?tab=starred",
            ),
            ("https://evil.test/", "/dashboard"),
            ("//evil.test/dashboard", "/dashboard"),
            ("/dashboard//evil.test", "/dashboard"),
            ("/dashboard\\..\\x", "/dashboard"),
            ("/dashboard\r\nSet-Cookie: x", "/dashboard"),
            ("", "/dashboard"),
        ] {
            assert_eq!(back_to(given), want, "{given}");
        }
    }

    #[test]
    fn the_session_cookie_is_read_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; herald_session=abc; b=2"),
        );
        assert_eq!(cookie(&h).as_deref(), Some("abc"));
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("herald_sessionx=abc"),
        );
        assert_eq!(cookie(&h), None);
    }
}
