//! The JSON API (R-API-1) under `/v1`: accounts and keys, domains, contacts,
//! sends, the scheduled list, the event log, reports and campaigns, inbound
//! bounces. Every error is `application/problem+json` naming the field and the
//! rule; bad input never gives a 500.
//!
//! Authentication: `Authorization: Bearer <key>`. An account's API key
//! (`hk_…`) reaches that account's data only: every query is scoped by the
//! account the key resolves to, and another account's send, campaign, person or
//! event is simply not found (404). The operator's admin token (configured)
//! opens the admin endpoints: creating, listing and deleting accounts, and
//! posting inbound messages.

use crate::accounts::{Account, Domain, NewAccount, NewApiKey, key_hash};
use crate::service::Herald;
use axum::Router;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use herald_eventlog::{
    Campaign, Event, EventKind, Namespace, PersonRecord, ReportQuery, Suppressed, Totals,
};
use herald_message::{
    Attachment, FieldSchema, Mailbox, MergeData, Preview, SendKind, SenderIdentity, Template,
    TrackingOptions,
};
use herald_schedule::{NewRecipient, NewSend, ScheduledSend, SkipReason, When};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

// ---------------------------------------------------------------- errors

/// An API error, answered as RFC 9457 `application/problem+json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`about:blank` for plain HTTP ones).
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What is wrong, for a person: the field and the rule it breaks.
    pub detail: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Problem {
    fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Problem {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
        }
    }

    fn invalid(field: &str, rule: impl std::fmt::Display) -> Self {
        let mut p = Problem::new(StatusCode::BAD_REQUEST, format!("{field}: {rule}"));
        p.field = Some(field.to_owned());
        p
    }

    fn not_found(what: &str) -> Self {
        Problem::new(StatusCode::NOT_FOUND, format!("{what} not found"))
    }

    fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "API request failed");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; it has been logged",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut r = (status, body).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"herald\""),
            );
        }
        r
    }
}

impl From<JsonRejection> for Problem {
    fn from(r: JsonRejection) -> Self {
        // 400 for malformed JSON, 415 without a JSON content type, 413 for a
        // body over the limit, 422 for JSON of the wrong shape.
        Problem::new(r.status(), r.body_text())
    }
}
impl From<QueryRejection> for Problem {
    fn from(r: QueryRejection) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, r.body_text())
    }
}
impl From<PathRejection> for Problem {
    fn from(r: PathRejection) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, r.body_text())
    }
}

impl From<herald_schedule::Error> for Problem {
    fn from(e: herald_schedule::Error) -> Self {
        use herald_schedule::Error as E;
        match e {
            E::Invalid { field, rule } => Problem::invalid(field, rule),
            E::Rule(v) => {
                let mut p = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, v.to_string());
                p.field = Some("scheduled_at".into());
                p
            }
            E::NotFound { what, .. } => Problem::not_found(what),
            E::NothingToCancel { .. } => Problem::new(StatusCode::CONFLICT, e.to_string()),
            e => Problem::internal(e),
        }
    }
}

impl From<herald_message::Error> for Problem {
    fn from(e: herald_message::Error) -> Self {
        match e {
            herald_message::Error::Invalid { field, rule } => Problem::invalid(field, rule),
            e => Problem::new(StatusCode::BAD_REQUEST, e.to_string()),
        }
    }
}

impl From<herald_eventlog::Error> for Problem {
    fn from(e: herald_eventlog::Error) -> Self {
        match e {
            herald_eventlog::Error::Invalid { field, rule } => Problem::invalid(field, rule),
            e => Problem::internal(e),
        }
    }
}

impl From<crate::Error> for Problem {
    fn from(e: crate::Error) -> Self {
        match e {
            crate::Error::Auth(e) => Problem::new(StatusCode::BAD_REQUEST, e.to_string()),
            crate::Error::Schedule(e) => e.into(),
            crate::Error::EventLog(e) => e.into(),
            crate::Error::Message(e) => e.into(),
            e => Problem::internal(e),
        }
    }
}

/// The error answers every operation may give, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // only its derive is used
enum Errors {
    /// Bad input: the detail names the field and the rule.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// No key, or a key that is not valid.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// Not found, or another account's.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// The body is over the limit.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// The body is not JSON.
    #[response(status = 415, content_type = "application/problem+json")]
    NotJson(Problem),
    /// JSON of the wrong shape, or a sending rule refused the send.
    #[response(status = 422, content_type = "application/problem+json")]
    Unprocessable(Problem),
}

type ApiResult<T> = Result<T, Problem>;

/// A JSON body whose rejection is a [`Problem`].
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(Problem))]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Problem))]
struct Q<T>(T);

#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Problem))]
struct P<T>(T);

// ---------------------------------------------------------------- authentication

fn bearer(parts: &Parts) -> Option<&str> {
    let v = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The account an API key opens; a request without a valid key gets 401.
#[derive(Debug, Clone, Copy)]
pub struct Tenant(pub u64);

impl FromRequestParts<Arc<Herald>> for Tenant {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, h: &Arc<Herald>) -> ApiResult<Self> {
        let Some(key) = bearer(parts) else {
            return Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                "an API key is required: Authorization: Bearer <key>",
            ));
        };
        match crate::accounts::authenticate(&h.accounts, key).await? {
            Some(account) => Ok(Tenant(account)),
            None => Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                "the API key is not valid",
            )),
        }
    }
}

/// The operator, holding the configured admin token.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequestParts<Arc<Herald>> for Admin {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, h: &Arc<Herald>) -> ApiResult<Self> {
        let Some(expected) = h.config.api.admin_token.as_deref() else {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "admin endpoints are disabled: no api.admin_token is configured",
            ));
        };
        // Compare digests, so the comparison's time says nothing about the token.
        match bearer(parts) {
            Some(t) if key_hash(t) == key_hash(expected) => Ok(Admin),
            _ => Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                "the admin token is required: Authorization: Bearer <admin token>",
            )),
        }
    }
}

async fn enabled(h: &Herald, account: u64) -> ApiResult<Account> {
    let a = h.accounts.get(account).await?;
    if !a.enabled {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "the account is not enabled: accept the sending rules first (POST /v1/account/rules)",
        ));
    }
    Ok(a)
}

// ---------------------------------------------------------------- accounts

/// `POST /v1/accounts`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct CreateAccount {
    /// The account's name.
    pub name: String,
    /// IANA time zone (default UTC).
    #[serde(default)]
    pub timezone: String,
    /// chrono date format of mass campaign names (default `%Y-%m-%d`).
    #[serde(default)]
    pub date_format: String,
}

/// A created account and its first API key (shown once).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CreatedAccount {
    /// The account.
    pub account: Account,
    /// Its first API key.
    pub api_key: NewApiKey,
}

#[utoipa::path(post, path = "/v1/accounts", tag = "admin", summary = "Create an account",  request_body = CreateAccount, responses((status = 201, description = "The account (disabled until the rules are accepted) and its first API key, shown once", body = CreatedAccount), Errors), security(("admin_token" = [])))]
async fn create_account(
    State(h): State<Arc<Herald>>,
    _: Admin,
    Json(body): Json<CreateAccount>,
) -> ApiResult<(StatusCode, Json<CreatedAccount>)> {
    let new = NewAccount {
        name: body.name,
        timezone: body.timezone,
        date_format: body.date_format,
    };
    let (account, api_key) = crate::accounts::open(&h.accounts, &new, None, h.clock.now()).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedAccount { account, api_key }),
    ))
}

#[utoipa::path(get, path = "/v1/accounts", tag = "admin", summary = "List accounts",   responses((status = 200, description = "All accounts", body = [Account]), Errors), security(("admin_token" = [])))]
async fn list_accounts(State(h): State<Arc<Herald>>, _: Admin) -> ApiResult<Json<Vec<Account>>> {
    Ok(Json(h.accounts.list().await?))
}

#[utoipa::path(delete, path = "/v1/accounts/{id}", tag = "admin", summary = "Delete an account and all its data", params(("id" = u64, Path, description = "Account number")),  responses((status = 204, description = "The account and all its data are deleted"), Errors), security(("admin_token" = [])))]
async fn delete_account_admin(
    State(h): State<Arc<Herald>>,
    _: Admin,
    P(id): P<u64>,
) -> ApiResult<StatusCode> {
    h.delete_account(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An account with its status totals (R-ACC-1, R-EVT-3).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AccountStatus {
    /// The account.
    pub account: Account,
    /// Its totals.
    pub totals: Totals,
}

#[utoipa::path(get, path = "/v1/account", tag = "api", summary = "The key's account and its totals",   responses((status = 200, description = "The account and its status totals", body = AccountStatus), Errors), security(("api_key" = [])))]
async fn get_account(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
) -> ApiResult<Json<AccountStatus>> {
    Ok(Json(AccountStatus {
        account: h.accounts.get(a).await?,
        totals: h.events.totals(a).await?,
    }))
}

#[utoipa::path(delete, path = "/v1/account", tag = "api", summary = "Delete the key's account and all its data",   responses((status = 204, description = "The account and all its data are deleted"), Errors), security(("api_key" = [])))]
async fn delete_own_account(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
) -> ApiResult<StatusCode> {
    h.delete_account(a).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/account/rules`: who accepts the sending rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct AcceptRules {
    /// The person accepting (name or email).
    pub accepted_by: String,
}

#[utoipa::path(post, path = "/v1/account/rules", tag = "api", summary = "Accept the sending rules (enables the account)",  request_body = AcceptRules, responses((status = 200, description = "The account, enabled", body = Account), Errors), security(("api_key" = [])))]
async fn accept_rules(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    Json(body): Json<AcceptRules>,
) -> ApiResult<Json<Account>> {
    Ok(Json(
        h.accounts
            .accept_rules(a, &body.accepted_by, h.clock.now())
            .await?,
    ))
}

#[utoipa::path(post, path = "/v1/account/keys", tag = "api", summary = "Create another API key",   responses((status = 201, description = "A new API key, shown once", body = NewApiKey), Errors), security(("api_key" = [])))]
async fn create_key(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
) -> ApiResult<(StatusCode, Json<NewApiKey>)> {
    Ok((
        StatusCode::CREATED,
        Json(crate::accounts::create_key(&h.accounts, a, h.clock.now()).await?),
    ))
}

// ---------------------------------------------------------------- domains

/// `POST /v1/domains`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct AddDomain {
    /// The sending domain, e.g. `shop.example`.
    pub domain: String,
}

#[utoipa::path(post, path = "/v1/domains", tag = "api", summary = "Add a sending domain",  request_body = AddDomain, responses((status = 201, description = "The domain with its DKIM record to publish", body = Domain), Errors), security(("api_key" = [])))]
async fn add_domain(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    Json(body): Json<AddDomain>,
) -> ApiResult<(StatusCode, Json<Domain>)> {
    let d = crate::accounts::add_domain(&h.accounts, a, &body.domain, &h.config.domains.selector)
        .await?;
    Ok((StatusCode::CREATED, Json(d)))
}

#[utoipa::path(get, path = "/v1/domains", tag = "api", summary = "List sending domains",   responses((status = 200, description = "The sending domains", body = [Domain]), Errors), security(("api_key" = [])))]
async fn list_domains(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
) -> ApiResult<Json<Vec<Domain>>> {
    Ok(Json(h.accounts.domains(a).await?))
}

/// A domain check's outcome.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DomainCheckResult {
    /// The domain, with `verified` updated.
    pub domain: Domain,
    /// SPF, DKIM and DMARC verdicts with reasons and the records to publish.
    #[schema(value_type = Object)]
    pub report: herald_auth::DomainReport,
}

#[utoipa::path(post, path = "/v1/domains/{domain}/check", tag = "api", summary = "Check a domain", params(("domain" = String, Path, description = "The domain")),  responses((status = 200, description = "SPF, DKIM and DMARC verdicts; verified when all pass", body = DomainCheckResult), Errors), security(("api_key" = [])))]
async fn check_domain(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    P(domain): P<String>,
) -> ApiResult<Json<DomainCheckResult>> {
    let d = h
        .accounts
        .domain(a, &domain)
        .await?
        .ok_or(Problem::not_found("domain"))?;
    let key = crate::accounts::domain_key(&h.accounts, a, &d.domain).await?;
    let c = &h.config.domains;
    let report = crate::domains::check(crate::domains::DomainCheck {
        domain: &d.domain,
        selector: &d.selector,
        key: key.as_ref(),
        mail_from: None,
        platform: herald_auth::PlatformAuth {
            spf_include: c.spf_include.clone(),
            sending_ips: c.sending_ips.clone(),
            bounce_domain: h.config.platform.bounce_domain.clone(),
        },
        dns: herald_auth::DnsConfig {
            nameserver: c.nameserver,
            timeout: std::time::Duration::from_secs(c.dns_timeout_secs),
            attempts: 2,
        },
    })
    .await
    .map_err(|e| Problem::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    h.accounts
        .set_verified(a, &d.domain, report.passed(), h.clock.now())
        .await?;
    h.forget_signers(a);
    let domain = h
        .accounts
        .domain(a, &d.domain)
        .await?
        .ok_or(Problem::not_found("domain"))?;
    Ok(Json(DomainCheckResult { domain, report }))
}

// ---------------------------------------------------------------- contacts

/// A person as the CRM sends it (`PUT /v1/persons`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct PersonInput {
    /// The CRM's person id.
    pub id: String,
    /// Person fields (`email`, `first_name`, …), used as `{{person.x}}`.
    #[serde(default)]
    pub person: BTreeMap<String, String>,
    /// Organisation fields, used as `{{organisation.x}}`.
    #[serde(default)]
    pub organisation: BTreeMap<String, String>,
    /// Custom fields, used as `{{custom.x}}`.
    #[serde(default)]
    pub custom: BTreeMap<String, String>,
    /// The "block mass emails" flag: no newsletters to this person.
    #[serde(default)]
    pub block_mass_emails: bool,
    /// The person's organisation (upserted with `PUT /v1/organisations`):
    /// when `organisation` is empty, its fields are the organisation's.
    #[serde(default)]
    pub organisation_id: Option<String>,
}

/// An organisation as the CRM sends it (`PUT /v1/organisations`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrganisationInput {
    /// The CRM's organisation id.
    pub id: String,
    /// Its fields, used as `{{organisation.x}}` for its persons.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

/// What an organisation upsert stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrganisationsUpserted {
    /// Organisations stored.
    pub upserted: usize,
    /// Persons whose organisation fields were updated.
    pub persons_updated: u64,
}

#[utoipa::path(put, path = "/v1/organisations", tag = "api", summary = "Upsert organisations in bulk", request_body = Vec<OrganisationInput>, responses((status = 200, description = "Organisations stored; their persons' organisation fields updated", body = OrganisationsUpserted), Errors), security(("api_key" = [])))]
async fn upsert_organisations(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    Json(orgs): Json<Vec<OrganisationInput>>,
) -> ApiResult<Json<OrganisationsUpserted>> {
    at_most(
        "organisations",
        orgs.len(),
        h.config.api.max_persons_per_upsert,
    )?;
    let mut records = Vec::with_capacity(orgs.len());
    for (i, o) in orgs.iter().enumerate() {
        check_id(&format!("organisations[{i}].id"), &o.id)?;
        for (k, v) in &o.fields {
            check_field_name(&format!("organisations[{i}].fields"), k)?;
            if v.len() > 10_000 {
                return Err(Problem::invalid(
                    &format!("organisations[{i}].fields.{k}"),
                    "at most 10,000 bytes",
                ));
            }
        }
        records.push(herald_eventlog::OrganisationRecord {
            id: o.id.clone(),
            fields: o
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        });
    }
    let persons_updated = h.events.upsert_organisations(a, &records).await?;
    Ok(Json(OrganisationsUpserted {
        upserted: records.len(),
        persons_updated,
    }))
}

/// Refuses a bulk request of more than `max` items.
fn at_most(field: &str, len: usize, max: usize) -> ApiResult<()> {
    if len > max {
        return Err(Problem::invalid(
            field,
            format!("at most {max} {field} per request"),
        ));
    }
    Ok(())
}

fn check_id(field: &str, id: &str) -> ApiResult<()> {
    if id.trim().is_empty() || id.len() > 200 || id.chars().any(char::is_control) {
        return Err(Problem::invalid(
            field,
            "must be 1-200 characters without control characters",
        ));
    }
    Ok(())
}

/// A person as stored, with the flags Herald keeps.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PersonView {
    /// The CRM's person id.
    pub id: String,
    /// Person fields.
    pub person: BTreeMap<String, String>,
    /// Organisation fields.
    pub organisation: BTreeMap<String, String>,
    /// Custom fields.
    pub custom: BTreeMap<String, String>,
    /// "Block mass emails".
    pub block_mass_emails: bool,
    /// The person's organisation.
    pub organisation_id: Option<String>,
    /// "Email bouncing": the address is on the blocklist (hard bounce).
    pub email_bouncing: bool,
    /// Unsubscribed or complained: no mass email.
    pub unsubscribed: bool,
}

const BLOCK_MASS: &str = "block_mass_emails";
const ORGANISATION_ID: &str = "organisation_id";

fn check_field_name(field: &str, name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Problem::invalid(
            field,
            format!("`{name}` must be 1-64 letters, digits, `_` or `-`"),
        ))
    }
}

fn to_record(
    i: usize,
    p: &PersonInput,
    organisations: &std::collections::HashMap<String, herald_eventlog::OrganisationRecord>,
) -> ApiResult<PersonRecord> {
    check_id(&format!("persons[{i}].id"), &p.id)?;
    let mut fields = Vec::new();
    for (ns, map, label) in [
        (Namespace::Person, &p.person, "person"),
        (Namespace::Organisation, &p.organisation, "organisation"),
        (Namespace::Custom, &p.custom, "custom"),
    ] {
        for (k, v) in map {
            check_field_name(&format!("persons[{i}].{label}"), k)?;
            if ns == Namespace::Person && k == BLOCK_MASS {
                return Err(Problem::invalid(
                    &format!("persons[{i}].person.{k}"),
                    "is a flag: set `block_mass_emails` on the person",
                ));
            }
            if v.len() > 10_000 {
                return Err(Problem::invalid(
                    &format!("persons[{i}].{label}.{k}"),
                    "at most 10,000 bytes",
                ));
            }
            fields.push((ns, k.clone(), v.clone()));
        }
    }
    if let Some(email) = p.person.get("email").filter(|e| !e.is_empty()) {
        Mailbox::for_field(&format!("persons[{i}].person.email"), None, email)?;
    }
    if p.block_mass_emails {
        fields.push((Namespace::Person, BLOCK_MASS.into(), "true".into()));
    }
    if let Some(org) = &p.organisation_id {
        check_id(&format!("persons[{i}].organisation_id"), org)?;
        if p.person.contains_key(ORGANISATION_ID) {
            return Err(Problem::invalid(
                &format!("persons[{i}].person.{ORGANISATION_ID}"),
                "set `organisation_id` on the person",
            ));
        }
        fields.push((Namespace::Person, ORGANISATION_ID.into(), org.clone()));
        if p.organisation.is_empty()
            && let Some(o) = organisations.get(org)
        {
            for (k, v) in &o.fields {
                fields.push((Namespace::Organisation, k.clone(), v.clone()));
            }
        }
    }
    Ok(PersonRecord {
        id: p.id.clone(),
        fields,
    })
}

/// What an upsert stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Upserted {
    /// Persons stored.
    pub upserted: usize,
}

#[utoipa::path(put, path = "/v1/persons", tag = "api", summary = "Upsert persons in bulk",  request_body = Vec<PersonInput>, responses((status = 200, description = "Persons stored", body = Upserted), Errors), security(("api_key" = [])))]
async fn upsert_persons(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    Json(persons): Json<Vec<PersonInput>>,
) -> ApiResult<Json<Upserted>> {
    at_most(
        "persons",
        persons.len(),
        h.config.api.max_persons_per_upsert,
    )?;
    // Every record is checked before anything is stored: one bad person loses
    // nothing, and the whole request is refused with that person's field.
    let org_ids: Vec<String> = persons
        .iter()
        .filter_map(|p| p.organisation_id.clone())
        .collect();
    let organisations = h.events.organisations(a, &org_ids).await?;
    let records = persons
        .iter()
        .enumerate()
        .map(|(i, p)| to_record(i, p, &organisations))
        .collect::<ApiResult<Vec<_>>>()?;
    h.events.upsert_persons(a, &records).await?;
    Ok(Json(Upserted {
        upserted: records.len(),
    }))
}

fn view_of(record: PersonRecord) -> PersonView {
    let mut v = PersonView {
        id: record.id,
        person: BTreeMap::new(),
        organisation: BTreeMap::new(),
        custom: BTreeMap::new(),
        block_mass_emails: false,
        organisation_id: None,
        email_bouncing: false,
        unsubscribed: false,
    };
    for (ns, k, val) in record.fields {
        match ns {
            Namespace::Person if k == BLOCK_MASS => v.block_mass_emails = val == "true",
            Namespace::Person if k == ORGANISATION_ID => v.organisation_id = Some(val),
            Namespace::Person if k == "email_bouncing" => {}
            Namespace::Person => {
                v.person.insert(k, val);
            }
            Namespace::Organisation => {
                v.organisation.insert(k, val);
            }
            Namespace::Custom => {
                v.custom.insert(k, val);
            }
        }
    }
    v
}

#[utoipa::path(get, path = "/v1/persons/{id}", tag = "api", summary = "A person with its flags", params(("id" = String, Path, description = "The CRM person id")),  responses((status = 200, description = "The person and its flags", body = PersonView), Errors), security(("api_key" = [])))]
async fn get_person(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    P(id): P<String>,
) -> ApiResult<Json<PersonView>> {
    let mut found = h.events.persons(a, std::slice::from_ref(&id)).await?;
    let record = found.remove(&id).ok_or(Problem::not_found("person"))?;
    let mut v = view_of(record);
    if let Some(email) = v.person.get("email").cloned() {
        for s in h.events.suppressions(a, &email).await? {
            match s {
                Suppressed::Blocklist => v.email_bouncing = true,
                _ => v.unsubscribed = true,
            }
        }
    }
    Ok(Json(v))
}

#[utoipa::path(get, path = "/v1/persons/{id}/clicks", tag = "api", summary = "A person's click history", params(("id" = String, Path, description = "The CRM person id")),  responses((status = 200, description = "The person's clicks, newest first", body = [Event]), Errors), security(("api_key" = [])))]
async fn person_clicks(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    P(id): P<String>,
) -> ApiResult<Json<Vec<Event>>> {
    Ok(Json(h.events.click_history(a, &id).await?))
}

/// `POST /v1/blocklist/unblock`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct Unblock {
    /// The blocklisted address.
    pub email: String,
}

/// Whether an address was on the blocklist.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Unblocked {
    /// It was, and is not any more.
    pub unblocked: bool,
}

#[utoipa::path(post, path = "/v1/blocklist/unblock", tag = "api", summary = "Lift the blocklist entry of an address",  request_body = Unblock, responses((status = 200, description = "Whether the address was blocklisted", body = Unblocked), Errors), security(("api_key" = [])))]
async fn unblock(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    Json(body): Json<Unblock>,
) -> ApiResult<Json<Unblocked>> {
    Ok(Json(Unblocked {
        unblocked: h.events.unblock(a, body.email.trim()).await?,
    }))
}

// ---------------------------------------------------------------- sends

/// The CRM user a send is from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct FromInput {
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Address.
    pub email: String,
}

/// One recipient given by address.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct AddressInput {
    /// Address.
    pub email: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// The CRM's person id, if any (carried into the events).
    #[serde(default)]
    pub person_id: Option<String>,
    /// Merge data for this recipient (person fields).
    #[serde(default)]
    pub person: BTreeMap<String, String>,
    /// Organisation fields.
    #[serde(default)]
    pub organisation: BTreeMap<String, String>,
    /// Custom fields.
    #[serde(default)]
    pub custom: BTreeMap<String, String>,
}

/// Who gets a send: persons stored with `PUT /v1/persons`, the persons of a
/// saved report, or addresses with their merge data.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub enum Recipients {
    /// Person ids.
    Persons(Vec<String>),
    /// The persons of the events a report matches (R-EVT-6).
    Report(ReportQuery),
    /// Addresses.
    Addresses(Vec<AddressInput>),
}

/// `POST /v1/sends` and `POST /v1/sends/preview`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct SendInput {
    /// `individual` or `mass`.
    pub kind: SendKind,
    /// The CRM user.
    pub from: FromInput,
    /// Subject, with merge fields.
    pub subject: String,
    /// HTML body, with merge fields.
    #[serde(default)]
    pub html: String,
    /// Text body, with merge fields.
    #[serde(default)]
    pub text: String,
    /// Who.
    pub recipients: Recipients,
    /// Campaign name (default: "Emails YYYY MM" for individual mail, the date
    /// and subject for mass mail, R-EVT-4); a name given again joins that campaign.
    #[serde(default)]
    pub campaign: Option<String>,
    /// When to send (default now).
    #[serde(default)]
    pub scheduled_at: Option<DateTime<Utc>>,
    /// Files sent with every message (`data` base64).
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    /// Track clicks (default true).
    #[serde(default = "yes")]
    pub track_links: bool,
    /// Track opens (default true).
    #[serde(default = "yes")]
    pub track_opens: bool,
}

fn yes() -> bool {
    true
}

/// What `POST /v1/sends` accepted.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SendAccepted {
    /// The send's number.
    pub send_id: i64,
    /// When it is due.
    pub due_at: DateTime<Utc>,
    /// Messages queued.
    pub queued: usize,
    /// Recipients skipped, by reason.
    pub skipped: BTreeMap<String, usize>,
    /// The campaign's number.
    pub campaign_id: i64,
    /// The campaign's name.
    pub campaign: String,
}

struct Prepared {
    send: NewSend,
    recipients: Vec<NewRecipient>,
    skipped: BTreeMap<String, usize>,
    due: DateTime<Utc>,
}

fn merge_data(
    person: &BTreeMap<String, String>,
    organisation: &BTreeMap<String, String>,
    custom: &BTreeMap<String, String>,
) -> MergeData {
    MergeData {
        person: person.clone(),
        organisation: organisation.clone(),
        custom: custom.clone(),
    }
}

fn display_name(p: &BTreeMap<String, String>) -> Option<String> {
    if let Some(n) = p.get("full_name").filter(|n| !n.trim().is_empty()) {
        return Some(n.clone());
    }
    let n = [p.get("first_name"), p.get("last_name")]
        .into_iter()
        .flatten()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (!n.is_empty()).then_some(n)
}

/// One recipient before compiling: address, name, person, merge data.
struct Target {
    email: String,
    name: Option<String>,
    person: Option<String>,
    data: MergeData,
}

async fn targets(
    h: &Herald,
    account: u64,
    input: &SendInput,
    skipped: &mut BTreeMap<String, usize>,
) -> ApiResult<Vec<Target>> {
    let ids = match &input.recipients {
        Recipients::Addresses(list) => {
            return Ok(list
                .iter()
                .map(|r| Target {
                    email: r.email.clone(),
                    name: r.name.clone(),
                    person: r.person_id.clone(),
                    data: merge_data(&r.person, &r.organisation, &r.custom),
                })
                .collect());
        }
        Recipients::Persons(ids) => ids.clone(),
        Recipients::Report(q) => h.events.report_persons(account, q).await?,
    };
    let mut records = h.events.persons(account, &ids).await?;
    let mut out = Vec::with_capacity(ids.len());
    let mut seen = std::collections::HashSet::new();
    for id in ids {
        if !seen.insert(id.clone()) {
            continue;
        }
        let Some(record) = records.remove(&id) else {
            *skipped.entry("unknown person".into()).or_default() += 1;
            continue;
        };
        let v = view_of(record);
        let Some(email) = v.person.get("email").filter(|e| !e.trim().is_empty()) else {
            *skipped.entry("no email address".into()).or_default() += 1;
            continue;
        };
        if v.block_mass_emails && input.kind == SendKind::Mass {
            *skipped
                .entry(SkipReason::BlocksMassEmail.as_str().into())
                .or_default() += 1;
            continue;
        }
        out.push(Target {
            email: email.clone(),
            name: display_name(&v.person),
            person: Some(id),
            data: merge_data(&v.person, &v.organisation, &v.custom),
        });
    }
    Ok(out)
}

/// The merge fields a send may use: the standard ones, every field the
/// account has stored for its persons, and those its recipients carry.
fn schema_for(stored: &[(Namespace, String)], targets: &[Target]) -> FieldSchema {
    let mut schema = FieldSchema::standard();
    for (ns, k) in stored {
        schema = match ns {
            Namespace::Person => schema.with_person_field(k),
            Namespace::Organisation => schema.with_organisation_field(k),
            Namespace::Custom => schema.with_custom_field(k),
        };
    }
    for t in targets {
        for k in t.data.person.keys() {
            schema = schema.with_person_field(k);
        }
        for k in t.data.organisation.keys() {
            schema = schema.with_organisation_field(k);
        }
        for k in t.data.custom.keys() {
            schema = schema.with_custom_field(k);
        }
    }
    schema
}

async fn prepare(h: &Herald, account: &Account, input: &SendInput) -> ApiResult<Prepared> {
    let now = h.clock.now();
    let from = Mailbox::for_field("from.email", input.from.name.as_deref(), &input.from.email)?;
    if input.subject.chars().any(|c| c.is_control() && c != '\t') {
        return Err(Problem::invalid(
            "subject",
            "must not contain control characters (CR, LF, …)",
        ));
    }
    let mut skipped = BTreeMap::new();
    let targets = targets(h, account.id, input, &mut skipped).await?;
    let template = Template {
        subject: input.subject.clone(),
        html: input.html.clone(),
        text: input.text.clone(),
    }
    .compile(
        &schema_for(&h.events.field_names(account.id).await?, &targets),
        &TrackingOptions {
            track_links: input.track_links,
            track_opens: input.track_opens,
            unsubscribe_link: input.kind == SendKind::Mass,
            ..TrackingOptions::default()
        },
    )?;
    let mut recipients = Vec::with_capacity(targets.len());
    for (i, t) in targets.into_iter().enumerate() {
        let to = Mailbox::for_field(
            &format!("recipients[{i}].email"),
            t.name.as_deref(),
            t.email.trim(),
        )?;
        let values = template
            .resolve(&t.data)
            .map_err(|e| Problem::invalid(&format!("recipients[{i}]"), e))?;
        recipients.push(NewRecipient {
            to,
            values,
            person: t.person,
        });
    }
    let when = match input.scheduled_at {
        Some(at) => When::At(at),
        None => When::Now,
    };
    let due = input.scheduled_at.unwrap_or(now).max(now);
    let verified = h
        .accounts
        .domain(account.id, from.address.domain())
        .await?
        .is_some_and(|d| d.verified)
        || h.signers
            .domains
            .contains_key(&from.address.domain().to_ascii_lowercase());
    Ok(Prepared {
        send: NewSend {
            account: account.id,
            kind: input.kind,
            template,
            sender: SenderIdentity {
                user: from,
                domain_verified: verified,
            },
            campaign: None,
            when,
            subject: input.subject.clone(),
            attachments: input.attachments.clone(),
        },
        recipients,
        skipped,
        due,
    })
}

#[utoipa::path(post, path = "/v1/sends", tag = "api", summary = "Send an individual or mass email",  request_body = SendInput, responses((status = 201, description = "The send is queued", body = SendAccepted), (status = 403, description = "The account is not enabled", body = Problem, content_type = "application/problem+json"), Errors), security(("api_key" = [])))]
async fn create_send(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    Json(input): Json<SendInput>,
) -> ApiResult<(StatusCode, Json<SendAccepted>)> {
    let account = enabled(&h, a).await?;
    let now = h.clock.now();
    let mut p = prepare(&h, &account, &input).await?;
    if p.recipients.is_empty() {
        return Err(Problem::invalid(
            "recipients",
            format!(
                "no recipient left to send to (skipped: {})",
                p.skipped
                    .iter()
                    .map(|(k, v)| format!("{v} {k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    // The rules are checked before a campaign is created for the send.
    h.outbox
        .rules()
        .check(now, p.recipients.len(), p.send.when)
        .map_err(herald_schedule::Error::from)?;
    let tz: chrono_tz::Tz = account.timezone.parse().unwrap_or(chrono_tz::UTC);
    // The subject as a campaign shows it: merge fields at their defaults.
    let subject = p.send.template.render_subject(&Default::default());
    let name = match input.campaign.as_deref().map(str::trim) {
        Some(n) if !n.is_empty() => {
            if n.chars().any(char::is_control) || n.chars().count() > 200 {
                return Err(Problem::invalid(
                    "campaign",
                    "at most 200 characters, no control characters",
                ));
            }
            n.to_owned()
        }
        _ => match input.kind {
            SendKind::Individual => herald_eventlog::individual_campaign_name(p.due, tz),
            SendKind::Mass => {
                herald_eventlog::mass_campaign_name(p.due, tz, &account.date_format, &subject)
            }
        },
    };
    let campaign_id = h
        .events
        .campaign_for(account.id, &name, &subject, now)
        .await?;
    p.send.campaign = u64::try_from(campaign_id).ok();
    let accepted = h
        .outbox
        .enqueue(p.send, p.recipients, &h.events, now)
        .await?;
    for (reason, n) in accepted.skipped {
        *p.skipped.entry(reason.as_str().into()).or_default() += n;
    }
    h.metrics.sends_accepted.fetch_add(1, Ordering::Relaxed);
    h.metrics
        .messages_queued
        .fetch_add(accepted.queued as u64, Ordering::Relaxed);
    Ok((
        StatusCode::CREATED,
        Json(SendAccepted {
            send_id: accepted.send_id,
            due_at: accepted.due_at,
            queued: accepted.queued,
            skipped: p.skipped,
            campaign_id,
            campaign: name,
        }),
    ))
}

/// A preview of a send for its first recipient.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PreviewOut {
    /// The recipient previewed.
    pub to: String,
    /// The merged message.
    #[serde(flatten)]
    pub preview: Preview,
}

#[utoipa::path(post, path = "/v1/sends/preview", tag = "api", summary = "Preview a send",  request_body = SendInput, responses((status = 200, description = "The message merged for its first recipient", body = PreviewOut), Errors), security(("api_key" = [])))]
async fn preview_send(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    Json(input): Json<SendInput>,
) -> ApiResult<Json<PreviewOut>> {
    let account = h.accounts.get(a).await?;
    let p = prepare(&h, &account, &input).await?;
    let first = p
        .recipients
        .first()
        .ok_or(Problem::invalid("recipients", "no recipient to preview"))?;
    Ok(Json(PreviewOut {
        to: first.to.address.as_str().to_owned(),
        preview: p.send.template.preview(&first.values),
    }))
}

#[utoipa::path(get, path = "/v1/sends", tag = "api", summary = "The scheduled list",   responses((status = 200, description = "The scheduled list", body = [ScheduledSend]), Errors), security(("api_key" = [])))]
async fn list_sends(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
) -> ApiResult<Json<Vec<ScheduledSend>>> {
    Ok(Json(h.outbox.scheduled(a).await?))
}

/// A send as viewed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SendView {
    /// The send's number.
    pub id: i64,
    /// Individual or mass.
    pub kind: SendKind,
    /// From.
    pub from: String,
    /// The subject as written.
    pub subject: String,
    /// The campaign's number.
    pub campaign_id: Option<u64>,
    /// Messages by state.
    pub messages: BTreeMap<String, usize>,
}

#[utoipa::path(get, path = "/v1/sends/{id}", tag = "api", summary = "View a send", params(("id" = i64, Path, description = "The send number")),  responses((status = 200, description = "The send and its messages by state", body = SendView), Errors), security(("api_key" = [])))]
async fn get_send(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    P(id): P<i64>,
) -> ApiResult<Json<SendView>> {
    let s = h.outbox.view(a, id).await?;
    let counts = h.outbox.counts(id).await?;
    Ok(Json(SendView {
        id: s.id,
        kind: s.kind,
        from: s.sender.user.address.as_str().to_owned(),
        subject: s.template.render_subject(&Default::default()),
        campaign_id: s.campaign,
        messages: counts
            .into_iter()
            .map(|(k, v)| (k.as_str().to_owned(), v))
            .collect(),
    }))
}

/// What deleting a send did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Cancelled {
    /// Unsent messages cancelled.
    pub cancelled: u64,
}

#[utoipa::path(delete, path = "/v1/sends/{id}", tag = "api", summary = "Delete a send", params(("id" = i64, Path, description = "The send number")),  responses((status = 200, description = "Unsent messages cancelled", body = Cancelled), (status = 409, description = "Nothing left to cancel", body = Problem, content_type = "application/problem+json"), Errors), security(("api_key" = [])))]
async fn delete_send(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    P(id): P<i64>,
) -> ApiResult<Json<Cancelled>> {
    Ok(Json(Cancelled {
        cancelled: h.outbox.delete(a, id, h.clock.now()).await?,
    }))
}

// ---------------------------------------------------------------- SMS

/// One SMS recipient given by number.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NumberInput {
    /// Phone number with country code (`+4512345678`).
    pub phone: String,
    /// The CRM's person id, if any.
    #[serde(default)]
    pub person_id: Option<String>,
    /// Person fields for the merge.
    #[serde(default)]
    pub person: BTreeMap<String, String>,
    /// Organisation fields.
    #[serde(default)]
    pub organisation: BTreeMap<String, String>,
    /// Custom fields.
    #[serde(default)]
    pub custom: BTreeMap<String, String>,
}

/// Who gets an SMS: stored persons (their `mobile`, else `phone`), the
/// persons of a report, or numbers.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SmsRecipients {
    /// Person ids.
    Persons(Vec<String>),
    /// The persons of the events a report matches.
    Report(ReportQuery),
    /// Numbers.
    Numbers(Vec<NumberInput>),
}

/// `POST /v1/sms`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmsInput {
    /// Sender id (1-11 letters and digits, or a number); default `sms.default_sender`.
    #[serde(default)]
    pub from: Option<String>,
    /// The text, with merge fields.
    pub text: String,
    /// Who.
    pub recipients: SmsRecipients,
}

/// What happened to one text.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SmsOutcome {
    /// The number.
    pub to: String,
    /// The CRM person.
    pub person: Option<String>,
    /// Segments the text was sent as.
    pub segments: usize,
    /// `sent` (the gateway accepted it) or `failed`.
    pub status: String,
    /// The gateway's HTTP status, if it answered.
    pub gateway_status: Option<u16>,
    /// The gateway's answer or the error.
    pub detail: String,
}

/// What `POST /v1/sms` did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SmsSent {
    /// Texts the gateway accepted.
    pub sent: usize,
    /// Texts it refused or did not answer.
    pub failed: usize,
    /// Segments of the accepted texts.
    pub segments: usize,
    /// Recipients skipped, by reason.
    pub skipped: BTreeMap<String, usize>,
    /// Each text.
    pub results: Vec<SmsOutcome>,
}

#[utoipa::path(post, path = "/v1/sms", tag = "api", summary = "Send an SMS through the gateway", request_body = SmsInput, responses((status = 200, description = "Each text, sent or failed", body = SmsSent), (status = 403, description = "The account is not enabled", body = Problem, content_type = "application/problem+json"), (status = 503, description = "No SMS gateway is configured", body = Problem, content_type = "application/problem+json"), Errors), security(("api_key" = [])))]
async fn send_sms(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    Json(input): Json<SmsInput>,
) -> ApiResult<Json<SmsSent>> {
    let account = enabled(&h, a).await?;
    let Some(gateway) = h.sms.clone() else {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SMS is not configured on this server (sms.gateway_url)",
        ));
    };
    let from = input
        .from
        .clone()
        .unwrap_or_else(|| gateway.config.default_sender.clone());
    crate::sms::check_sender("from", &from).map_err(|rule| Problem::invalid("from", rule))?;
    let mut skipped: BTreeMap<String, usize> = BTreeMap::new();
    // (number, person, merge data)
    let mut targets: Vec<(String, Option<String>, MergeData)> = Vec::new();
    let ids = match &input.recipients {
        SmsRecipients::Numbers(list) => {
            for (i, n) in list.iter().enumerate() {
                let number = crate::sms::normalize_number(&n.phone).ok_or_else(|| {
                    Problem::invalid(
                        &format!("recipients[{i}].phone"),
                        format!(
                            "`{}` is not a number with country code (+4512345678)",
                            n.phone
                        ),
                    )
                })?;
                targets.push((
                    number,
                    n.person_id.clone(),
                    merge_data(&n.person, &n.organisation, &n.custom),
                ));
            }
            Vec::new()
        }
        SmsRecipients::Persons(ids) => ids.clone(),
        SmsRecipients::Report(q) => h.events.report_persons(account.id, q).await?,
    };
    if !ids.is_empty() {
        let mut records = h.events.persons(account.id, &ids).await?;
        for id in ids {
            let Some(record) = records.remove(&id) else {
                *skipped.entry("unknown person".into()).or_default() += 1;
                continue;
            };
            let v = view_of(record);
            let number = ["mobile", "phone"]
                .iter()
                .filter_map(|f| v.person.get(*f))
                .find_map(|n| crate::sms::normalize_number(n));
            let Some(number) = number else {
                *skipped.entry("no mobile number".into()).or_default() += 1;
                continue;
            };
            targets.push((
                number,
                Some(id),
                merge_data(&v.person, &v.organisation, &v.custom),
            ));
        }
    }
    let max = gateway.config.max_recipients;
    if targets.len() > max {
        return Err(Problem::invalid(
            "recipients",
            format!("at most {max} recipients per SMS send"),
        ));
    }
    let schema = {
        let stored = h.events.field_names(account.id).await?;
        let as_targets: Vec<Target> = targets
            .iter()
            .map(|(n, p, d)| Target {
                email: n.clone(),
                name: None,
                person: p.clone(),
                data: d.clone(),
            })
            .collect();
        schema_for(&stored, &as_targets)
    };
    let template = herald_message::sms::SmsTemplate::compile(&input.text, &schema)
        .map_err(|e| Problem::invalid("text", e))?;
    let limit = Arc::new(tokio::sync::Semaphore::new(
        gateway.config.concurrency.max(1),
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (number, person, data)) in targets.into_iter().enumerate() {
        let (text, length) = template.render(&template.resolve(&data));
        let gateway = gateway.clone();
        let limit = Arc::clone(&limit);
        let from = from.clone();
        let reference = format!("{}-{i}", account.id);
        tasks.spawn(async move {
            let _permit = limit.acquire().await;
            let reply = gateway
                .send(&crate::sms::Sms {
                    to: &number,
                    from: &from,
                    text: &text,
                    segments: length.segments,
                    encoding: length.encoding,
                    reference: &reference,
                })
                .await;
            (i, number, person, length.segments, reply)
        });
    }
    let mut results = Vec::new();
    while let Some(done) = tasks.join_next().await {
        results.push(done.map_err(Problem::internal)?);
    }
    results.sort_by_key(|r| r.0);
    let mut out = SmsSent {
        sent: 0,
        failed: 0,
        segments: 0,
        skipped,
        results: Vec::with_capacity(results.len()),
    };
    for (_, to, person, segments, reply) in results {
        if reply.accepted {
            out.sent += 1;
            out.segments += segments;
            h.metrics.sms_sent.fetch_add(1, Ordering::Relaxed);
        } else {
            out.failed += 1;
            h.metrics.sms_failed.fetch_add(1, Ordering::Relaxed);
        }
        out.results.push(SmsOutcome {
            to,
            person,
            segments,
            status: if reply.accepted { "sent" } else { "failed" }.into(),
            gateway_status: reply.status,
            detail: reply.detail,
        });
    }
    Ok(Json(out))
}

// ---------------------------------------------------------------- events, reports, campaigns

/// `GET /v1/events` query.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only this kind (e.g. `click`).
    #[serde(default)]
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
async fn list_events(
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
    pub format: Option<String>,
}

#[utoipa::path(post, path = "/v1/reports", tag = "api", summary = "Run a report", params(ReportFormat), request_body = ReportQuery, responses((status = 200, description = "The page of events and the total count, or with ?format=csv the CSV export", content((ReportPage = "application/json"), (String = "text/csv"))), Errors), security(("api_key" = [])))]
async fn run_report(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    Q(f): Q<ReportFormat>,
    Json(q): Json<ReportQuery>,
) -> ApiResult<Response> {
    if !(1..=10_000).contains(&q.limit) {
        return Err(Problem::invalid("limit", "must be 1-10000"));
    }
    if q.offset < 0 {
        return Err(Problem::invalid("offset", "must not be negative"));
    }
    match f.format.as_deref() {
        Some("csv") => {
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
        None | Some("json") => Ok(Json(ReportPage {
            count: h.events.report_count(a, &q).await?,
            events: h.events.report(a, &q).await?,
        })
        .into_response()),
        Some(other) => Err(Problem::invalid(
            "format",
            format!("`{other}` is not json or csv"),
        )),
    }
}

/// The persons of a report.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReportPersons {
    /// Their CRM ids.
    pub persons: Vec<String>,
}

#[utoipa::path(post, path = "/v1/reports/persons", tag = "api", summary = "The persons of a report",  request_body = ReportQuery, responses((status = 200, description = "The persons of the report", body = ReportPersons), Errors), security(("api_key" = [])))]
async fn report_persons(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    Json(q): Json<ReportQuery>,
) -> ApiResult<Json<ReportPersons>> {
    Ok(Json(ReportPersons {
        persons: h.events.report_persons(a, &q).await?,
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
async fn report_update(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    Json(u): Json<ReportUpdate>,
) -> ApiResult<Json<Updated>> {
    check_field_name("field", &u.field)?;
    Ok(Json(Updated {
        updated: h
            .events
            .update_report_persons(a, &u.query, u.namespace, &u.field, &u.value)
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
async fn list_campaigns(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    Q(q): Q<CampaignsQuery>,
) -> ApiResult<Json<Vec<Campaign>>> {
    Ok(Json(h.events.campaigns(a, q.archived).await?))
}

async fn find_campaign(h: &Herald, account: u64, id: i64) -> ApiResult<Campaign> {
    h.events
        .campaigns(account, true)
        .await?
        .into_iter()
        .find(|c| c.id == id)
        .ok_or(Problem::not_found("campaign"))
}

#[utoipa::path(get, path = "/v1/campaigns/{id}", tag = "api", summary = "A campaign", params(("id" = i64, Path, description = "The campaign number")),  responses((status = 200, description = "The campaign", body = Campaign), Errors), security(("api_key" = [])))]
async fn get_campaign(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    P(id): P<i64>,
) -> ApiResult<Json<Campaign>> {
    Ok(Json(find_campaign(&h, a, id).await?))
}

/// `PATCH /v1/campaigns/{id}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct CampaignMarks {
    /// Star or unstar.
    #[serde(default)]
    pub starred: Option<bool>,
    /// Archive or unarchive.
    #[serde(default)]
    pub archived: Option<bool>,
}

#[utoipa::path(patch, path = "/v1/campaigns/{id}", tag = "api", summary = "Star or archive a campaign", params(("id" = i64, Path, description = "The campaign number")), request_body = CampaignMarks, responses((status = 200, description = "The campaign", body = Campaign), Errors), security(("api_key" = [])))]
async fn mark_campaign(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    P(id): P<i64>,
    Json(m): Json<CampaignMarks>,
) -> ApiResult<Json<Campaign>> {
    if !h.events.mark_campaign(a, id, m.starred, m.archived).await? {
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
async fn inbound(
    State(h): State<Arc<Herald>>,
    _: Admin,
    body: axum::body::Bytes,
) -> ApiResult<Json<InboundResult>> {
    if body.is_empty() {
        return Err(Problem::invalid("body", "the raw message is empty"));
    }
    let out = crate::inbound::ingest(&h, &body).await?;
    h.metrics.inbound.fetch_add(1, Ordering::Relaxed);
    Ok(Json(InboundResult {
        kind: format!("{:?}", out.kind).to_lowercase(),
        mapped: out.message.is_some(),
        events: out.events,
    }))
}

// ---------------------------------------------------------------- router

async fn not_found_route() -> Problem {
    Problem::not_found("route")
}

async fn count(
    State(h): State<Arc<Herald>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let r = next.run(req).await;
    h.metrics.count_status(r.status().as_u16());
    r
}

/// The `/v1` routes (see the module documentation).
pub fn routes(herald: Arc<Herald>) -> Router {
    let limit = herald.config.api.max_body_bytes;
    Router::new()
        .route("/v1/accounts", post(create_account).get(list_accounts))
        .route(
            "/v1/accounts/{id}",
            axum::routing::delete(delete_account_admin),
        )
        .route("/v1/account", get(get_account).delete(delete_own_account))
        .route("/v1/account/rules", post(accept_rules))
        .route("/v1/account/keys", post(create_key))
        .route("/v1/domains", post(add_domain).get(list_domains))
        .route("/v1/domains/{domain}/check", post(check_domain))
        .route("/v1/persons", axum::routing::put(upsert_persons))
        .route(
            "/v1/organisations",
            axum::routing::put(upsert_organisations),
        )
        .route("/v1/persons/{id}", get(get_person))
        .route("/v1/persons/{id}/clicks", get(person_clicks))
        .route("/v1/blocklist/unblock", post(unblock))
        .route("/v1/sends", post(create_send).get(list_sends))
        .route("/v1/sends/preview", post(preview_send))
        .route("/v1/sends/{id}", get(get_send).delete(delete_send))
        .route("/v1/sms", post(send_sms))
        .route("/v1/events", get(list_events))
        .route("/v1/reports", post(run_report))
        .route("/v1/reports/persons", post(report_persons))
        .route("/v1/reports/update", post(report_update))
        .route("/v1/campaigns", get(list_campaigns))
        .route("/v1/campaigns/{id}", get(get_campaign).patch(mark_campaign))
        .route("/v1/inbound", post(inbound))
        .fallback(not_found_route)
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&herald),
            count,
        ))
        .with_state(herald)
}

/// Used by the quick start: the send a demo newsletter makes, as JSON.
pub fn demo_send_json(from: &str) -> serde_json::Value {
    serde_json::json!({
        "kind": "mass",
        "from": {"name": "Demo Shop", "email": from},
        "subject": "Hello {{person.first_name | \"there\"}}",
        "html": "<p>Hi {{person.first_name | \"there\"}},</p><p>Our <a href=\"https://example.com/spring\">spring sale</a> has started.</p>",
        "recipients": {"persons": ["demo-1", "demo-2", "demo-3"]}
    })
}

/// Demo persons for the quick start.
pub fn demo_persons() -> Vec<PersonInput> {
    ["Ada", "Grace", "Linus"]
        .iter()
        .enumerate()
        .map(|(i, n)| PersonInput {
            id: format!("demo-{}", i + 1),
            person: BTreeMap::from([
                ("first_name".to_owned(), (*n).to_owned()),
                (
                    "email".to_owned(),
                    format!("{}@example.com", n.to_lowercase()),
                ),
            ]),
            ..PersonInput::default()
        })
        .collect()
}
