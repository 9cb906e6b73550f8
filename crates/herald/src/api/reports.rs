//! The event log, reports, campaigns and inbound messages: `/v1/events`,
//! `/v1/reports`, `/v1/campaigns`, `/v1/inbound`.

use super::*;

// ---------------------------------------------------------------- events, reports, campaigns

/// `GET /v1/events` query.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only this kind (e.g. `click`).
    #[serde(default)]
    #[param(value_type = Option<EventKind>)]
    pub kind: Option<String>,
    /// Page size, 1-1000 (default 100).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// Rows to skip (default 0).
    #[serde(default)]
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

#[utoipa::path(get, path = "/v1/events", tag = "api", summary = "The event log", params(EventsQuery),  responses((status = 200, description = "Events, newest first", body = [Event]), Errors), security(("api_key" = [])))]
pub(crate) async fn list_events(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    Q(q): Q<EventsQuery>,
) -> ApiResult<Json<Vec<Event>>> {
    let kind = match q.kind.as_deref() {
        None | Some("") => None,
        Some(k) => Some(
            EventKind::parse(k)
                .ok_or_else(|| Problem::invalid("kind", format!("`{k}` is not an event kind")))?,
        ),
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::invalid("limit", "must be 1-1000"));
    }
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(Problem::invalid("offset", "must not be negative"));
    }
    Ok(Json(h.events.events(a, kind, limit, offset).await?))
}

/// A report's page.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReportPage {
    /// Events matching the filters, in all.
    pub count: u64,
    /// This page.
    pub events: Vec<Event>,
}

/// `?format=csv`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportFormat {
    /// `json` (default) or `csv`.
    #[serde(default)]
    #[param(inline)]
    pub format: Option<ExportFormat>,
}

/// A report's answer: JSON (a page and the count) or CSV (the page).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// `application/json`.
    Json,
    /// `text/csv`.
    Csv,
}

#[utoipa::path(post, path = "/v1/reports", tag = "api", summary = "Run a report", params(ReportFormat), request_body = ReportQuery, responses((status = 200, description = "The page of events and the total count, or with ?format=csv the CSV export", content((ReportPage = "application/json"), (String = "text/csv"))), Errors), security(("api_key" = [])))]
pub(crate) async fn run_report(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    Q(f): Q<ReportFormat>,
    Json(q): Json<ReportQuery>,
) -> ApiResult<Response> {
    match f.format {
        Some(ExportFormat::Csv) => {
            let csv = h.events.report_csv(a, &q).await?;
            let mut r = csv.into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            r.headers_mut().insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"report.csv\""),
            );
            Ok(r)
        }
        None | Some(ExportFormat::Json) => Ok(Json(ReportPage {
            count: h.events.report_count(a, &q).await?,
            events: h.events.report(a, &q).await?,
        })
        .into_response()),
    }
}

/// The persons of a report.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReportPersons {
    /// Their CRM ids.
    pub persons: Vec<String>,
}

#[utoipa::path(post, path = "/v1/reports/persons", tag = "api", summary = "The persons of a report",  request_body = ReportQuery, responses((status = 200, description = "The persons of the report", body = ReportPersons), Errors), security(("api_key" = [])))]
pub(crate) async fn report_persons(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    Json(q): Json<ReportQuery>,
) -> ApiResult<Json<ReportPersons>> {
    Ok(Json(ReportPersons {
        persons: h.events.report_persons_page(a, &q).await?,
    }))
}

/// `POST /v1/reports/update`: set one field of every person of a report.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct ReportUpdate {
    /// The report.
    pub query: ReportQuery,
    /// `person`, `organisation` or `custom`.
    pub namespace: Namespace,
    /// The field.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub field: String,
    /// Its new value.
    pub value: String,
}

/// How many persons an update changed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Updated {
    /// Persons updated.
    pub updated: u64,
}

#[utoipa::path(post, path = "/v1/reports/update", tag = "api", summary = "Set a field of a report's persons",  request_body = ReportUpdate, responses((status = 200, description = "Persons updated", body = Updated), Errors), security(("api_key" = [])))]
pub(crate) async fn report_update(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    Json(u): Json<ReportUpdate>,
) -> ApiResult<Json<Updated>> {
    Ok(Json(Updated {
        updated: crate::app::contacts::update_report_persons(
            &h,
            a,
            &u.query,
            u.namespace,
            &u.field,
            &u.value,
        )
        .await?,
    }))
}

/// `GET /v1/campaigns` query.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CampaignsQuery {
    /// Include archived campaigns (default false).
    #[serde(default)]
    pub archived: bool,
}

#[utoipa::path(get, path = "/v1/campaigns", tag = "api", summary = "List campaigns", params(CampaignsQuery),  responses((status = 200, description = "Campaigns, newest first", body = [Campaign]), Errors), security(("api_key" = [])))]
pub(crate) async fn list_campaigns(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    Q(q): Q<CampaignsQuery>,
) -> ApiResult<Json<Vec<Campaign>>> {
    Ok(Json(h.events.campaigns(a, q.archived).await?))
}

pub(crate) async fn find_campaign(h: &Herald, account: u64, id: i64) -> ApiResult<Campaign> {
    h.events
        .campaign(account, herald_message::CampaignId(id))
        .await?
        .ok_or(Problem::not_found("campaign"))
}

#[utoipa::path(get, path = "/v1/campaigns/{id}", tag = "api", summary = "A campaign", params(("id" = i64, Path, description = "The campaign number")),  responses((status = 200, description = "The campaign", body = Campaign), Errors), security(("api_key" = [])))]
pub(crate) async fn get_campaign(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    P(id): P<i64>,
) -> ApiResult<Json<Campaign>> {
    Ok(Json(find_campaign(&h, a, id).await?))
}

/// `PATCH /v1/campaigns/{id}`: an object with either field.
// Read through a map: serde would otherwise also take an array such as
// `[null, null]` for a struct.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    deny_unknown_fields,
    try_from = "serde_json::Map<String, serde_json::Value>"
)]
#[derive(utoipa::ToSchema)]
pub struct CampaignMarks {
    /// Star or unstar.
    #[serde(default)]
    pub starred: Option<bool>,
    /// Archive or unarchive.
    #[serde(default)]
    pub archived: Option<bool>,
}

/// The fields of [`CampaignMarks`], read from an object only.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CampaignMarkFields {
    #[serde(default)]
    starred: Option<bool>,
    #[serde(default)]
    archived: Option<bool>,
}

impl TryFrom<serde_json::Map<String, serde_json::Value>> for CampaignMarks {
    type Error = serde_json::Error;
    fn try_from(map: serde_json::Map<String, serde_json::Value>) -> Result<Self, Self::Error> {
        let f: CampaignMarkFields = serde_json::from_value(serde_json::Value::Object(map))?;
        Ok(CampaignMarks {
            starred: f.starred,
            archived: f.archived,
        })
    }
}

#[utoipa::path(patch, path = "/v1/campaigns/{id}", tag = "api", summary = "Star or archive a campaign", params(("id" = i64, Path, description = "The campaign number")), request_body = CampaignMarks, responses((status = 200, description = "The campaign", body = Campaign), Errors), security(("api_key" = [])))]
pub(crate) async fn mark_campaign(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    P(id): P<i64>,
    Json(m): Json<CampaignMarks>,
) -> ApiResult<Json<Campaign>> {
    if !h
        .events
        .mark_campaign(a, herald_message::CampaignId(id), m.starred, m.archived)
        .await?
    {
        return Err(Problem::not_found("campaign"));
    }
    Ok(Json(find_campaign(&h, a, id).await?))
}

// ---------------------------------------------------------------- inbound

/// What an inbound message recorded.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InboundResult {
    /// What the message is: `bounce`, `complaint`, `auto_reply` or `other`.
    pub kind: String,
    /// Whether it mapped to a message Herald sent.
    pub mapped: bool,
    /// The events recorded.
    pub events: Vec<EventKind>,
}

#[utoipa::path(post, path = "/v1/inbound", tag = "admin", summary = "Post a raw bounce or complaint message",  request_body(content((String = "message/rfc822"), (String = "text/plain")), description = "The raw message"), responses((status = 200, description = "What the message recorded", body = InboundResult), Errors), security(("admin_token" = [])))]
pub(crate) async fn inbound(
    State(h): State<Arc<Herald>>,
    _: Admin,
    body: axum::body::Bytes,
) -> ApiResult<Json<InboundResult>> {
    if body.is_empty() {
        return Err(Problem::invalid("body", "the raw message is empty"));
    }
    let out = crate::inbound::ingest(&h, &body).await?;
    h.metrics.inbound.fetch_add(1, Ordering::Relaxed);
    let kind = match out.kind {
        herald_eventlog::InboundKind::Dsn { .. } => "bounce",
        herald_eventlog::InboundKind::Complaint { .. } => "complaint",
        herald_eventlog::InboundKind::AutoReply => "auto_reply",
        herald_eventlog::InboundKind::Other => "other",
    };
    Ok(Json(InboundResult {
        kind: kind.to_owned(),
        mapped: out.message.is_some(),
        events: out.events,
    }))
}
