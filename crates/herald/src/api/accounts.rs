//! Accounts, API keys and sending domains: `/v1/accounts`, `/v1/account`, `/v1/domains`.

use super::*;

// ---------------------------------------------------------------- accounts

/// `POST /v1/accounts`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct CreateAccount {
    /// The account's name.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub name: String,
    /// IANA time zone (default UTC).
    #[serde(default)]
    pub timezone: String,
    /// chrono date format of mass campaign names (default `%Y-%m-%d`).
    #[serde(default)]
    pub date_format: String,
    /// The account's plan (default `free`); `dashboard.plans` says which plans
    /// include the dashboard (default `plus` and `enterprise`).
    #[serde(default)]
    #[schema(pattern = "^[a-z0-9_-]{0,40}$")]
    pub plan: String,
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
pub(crate) async fn create_account(
    State(h): State<Arc<Herald>>,
    _: Admin,
    Json(body): Json<CreateAccount>,
) -> ApiResult<(StatusCode, Json<CreatedAccount>)> {
    let new = NewAccount {
        name: body.name,
        timezone: body.timezone,
        date_format: body.date_format,
        plan: body.plan,
    };
    let (account, api_key) = crate::app::accounts::open(&h, &new, None).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedAccount { account, api_key }),
    ))
}

#[utoipa::path(get, path = "/v1/accounts", tag = "admin", summary = "List accounts",   responses((status = 200, description = "All accounts", body = [Account]), Errors), security(("admin_token" = [])))]
pub(crate) async fn list_accounts(
    State(h): State<Arc<Herald>>,
    _: Admin,
) -> ApiResult<Json<Vec<Account>>> {
    Ok(Json(crate::app::accounts::list(&h).await?))
}

#[utoipa::path(get, path = "/v1/sites", tag = "admin", summary = "List receiving sites: limits, back-off state, recent replies",   responses((status = 200, description = "Every site a worker has delivered to, by name", body = [crate::app::sites::SiteView]), Errors), security(("admin_token" = [])))]
pub(crate) async fn list_sites(
    State(h): State<Arc<Herald>>,
    _: Admin,
) -> ApiResult<Json<Vec<crate::app::sites::SiteView>>> {
    Ok(Json(crate::app::sites::list(&h).await?))
}

#[utoipa::path(delete, path = "/v1/accounts/{id}", tag = "admin", summary = "Delete an account and all its data", params(("id" = u64, Path, description = "Account number")),  responses((status = 204, description = "The account and all its data are deleted"), Errors), security(("admin_token" = [])))]
pub(crate) async fn delete_account_admin(
    State(h): State<Arc<Herald>>,
    _: Admin,
    P(id): P<u64>,
) -> ApiResult<StatusCode> {
    crate::app::accounts::delete(&h, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PATCH /v1/accounts/{id}`: what the operator changes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct UpdateAccount {
    /// The account's plan. Moving to a plan without the dashboard ends the
    /// account's dashboard sessions at once.
    #[schema(pattern = "^[a-z0-9_-]{1,40}$")]
    pub plan: String,
}

#[utoipa::path(patch, path = "/v1/accounts/{id}", tag = "admin", summary = "Change an account's plan", params(("id" = u64, Path, description = "Account number")), request_body = UpdateAccount, responses((status = 200, description = "The account", body = Account), Errors), security(("admin_token" = [])))]
pub(crate) async fn update_account(
    State(h): State<Arc<Herald>>,
    _: Admin,
    P(id): P<u64>,
    Json(body): Json<UpdateAccount>,
) -> ApiResult<Json<Account>> {
    Ok(Json(
        crate::app::accounts::set_plan(&h, id, &body.plan).await?,
    ))
}

/// `POST /v1/dashboard/links`: the CRM user to sign in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct LinkRequest {
    /// The CRM user's name, shown on the dashboard.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub user: String,
    /// The language to show (`en`, `fr`, `de`, `es`, or a tag such as
    /// `de-AT`); default the account's; any other is English.
    #[serde(default)]
    #[schema(max_length = 35, pattern = "^[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})*$")]
    pub language: Option<String>,
}

pub use crate::app::dashboard::SignInLink;

#[utoipa::path(post, path = "/v1/dashboard/links", tag = "api", summary = "A one-time dashboard sign-in link for a CRM user", request_body = LinkRequest, responses((status = 201, description = "The link: it works once, for `dashboard.link_secs` (5 minutes by default)", body = SignInLink), (status = 403, description = "The account's plan does not include the dashboard", body = Problem, content_type = "application/problem+json"), Errors), security(("api_key" = [])))]
pub(crate) async fn create_dashboard_link(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    Json(body): Json<LinkRequest>,
) -> ApiResult<(StatusCode, Json<SignInLink>)> {
    let link =
        crate::app::dashboard::create_link(&h, a, &body.user, body.language.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(link)))
}

/// `PATCH /v1/account`: what an account changes itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct AccountSettings {
    /// The account's own unsubscribe landing page (the CRM's): an absolute
    /// https URL; `null` for Herald's page. Herald records the click on the
    /// unsubscribe link, then sends the person there with `herald_token=<token>`,
    /// which the CRM hands back to `POST /v1/unsubscribes`.
    #[schema(max_length = 2000, pattern = "^https?://[^\\s]+$")]
    pub landing_page: Option<String>,
}

#[utoipa::path(patch, path = "/v1/account", tag = "api", summary = "Change the key's account (its unsubscribe landing page)", request_body = AccountSettings, responses((status = 200, description = "The account", body = Account), Errors), security(("api_key" = [])))]
pub(crate) async fn update_own_account(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    Json(body): Json<AccountSettings>,
) -> ApiResult<Json<Account>> {
    Ok(Json(
        crate::app::unsubscribe::set_landing_page(&h, a, body.landing_page.as_deref()).await?,
    ))
}

/// `POST /v1/unsubscribes`: the choice a person made on the account's own landing page.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct UnsubscribeChoice {
    /// The `herald_token` the landing page was opened with.
    #[schema(min_length = 1, max_length = 500)]
    pub token: String,
    /// `campaign`: this kind of newsletter; `all`: all mass email from the account.
    pub scope: crate::app::unsubscribe::Scope,
}

/// What recording a choice did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UnsubscribeRecorded {
    /// The choice is recorded (a repeated one changes nothing).
    pub recorded: bool,
}

#[utoipa::path(post, path = "/v1/unsubscribes", tag = "api", summary = "Record a person's unsubscribe choice from the account's own landing page", request_body = UnsubscribeChoice, responses((status = 200, description = "Recorded", body = UnsubscribeRecorded), Errors), security(("api_key" = [])))]
pub(crate) async fn record_unsubscribe(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    Json(body): Json<UnsubscribeChoice>,
) -> ApiResult<Json<UnsubscribeRecorded>> {
    crate::app::unsubscribe::record_choice(&h, a, &body.token, body.scope).await?;
    Ok(Json(UnsubscribeRecorded { recorded: true }))
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
pub(crate) async fn get_account(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
) -> ApiResult<Json<AccountStatus>> {
    let (account, totals) = crate::app::accounts::status(&h, a).await?;
    Ok(Json(AccountStatus { account, totals }))
}

#[utoipa::path(delete, path = "/v1/account", tag = "api", summary = "Delete the key's account and all its data",   responses((status = 204, description = "The account and all its data are deleted"), Errors), security(("api_key" = [])))]
pub(crate) async fn delete_own_account(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
) -> ApiResult<StatusCode> {
    crate::app::accounts::delete(&h, a).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/account/rules`: who accepts the sending rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct AcceptRules {
    /// The person accepting (name or email).
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub accepted_by: String,
    /// That person's language (`en`, `fr`, `de`, `es`, or a tag such as
    /// `fr-CA`): it becomes the account's; any other is English.
    #[serde(default)]
    #[schema(max_length = 35, pattern = "^[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})*$")]
    pub language: Option<String>,
}

#[utoipa::path(post, path = "/v1/account/rules", tag = "api", summary = "Accept the sending rules (enables the account)",  request_body = AcceptRules, responses((status = 200, description = "The account, enabled", body = Account), Errors), security(("api_key" = [])))]
pub(crate) async fn accept_rules(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    Json(body): Json<AcceptRules>,
) -> ApiResult<Json<Account>> {
    Ok(Json(
        crate::app::accounts::accept_rules(&h, a, &body.accepted_by, body.language.as_deref())
            .await?,
    ))
}

#[utoipa::path(post, path = "/v1/account/keys", tag = "api", summary = "Create another API key",   responses((status = 201, description = "A new API key, shown once", body = NewApiKey), Errors), security(("api_key" = [])))]
pub(crate) async fn create_key(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
) -> ApiResult<(StatusCode, Json<NewApiKey>)> {
    Ok((
        StatusCode::CREATED,
        Json(crate::app::accounts::create_key(&h, a).await?),
    ))
}

// ---------------------------------------------------------------- domains

/// `POST /v1/domains`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct AddDomain {
    /// The sending domain, e.g. `shop.example`.
    #[schema(
        min_length = 1,
        max_length = 253,
        pattern = "^[A-Za-z0-9.-]*\\.[A-Za-z0-9.-]*$"
    )]
    pub domain: String,
}

#[utoipa::path(post, path = "/v1/domains", tag = "api", summary = "Add a sending domain",  request_body = AddDomain, responses((status = 201, description = "The domain with its DKIM record to publish", body = Domain), (status = 409, description = "Another account has verified this domain", body = Problem, content_type = "application/problem+json"), Errors), security(("api_key" = [])))]
pub(crate) async fn add_domain(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    Json(body): Json<AddDomain>,
) -> ApiResult<(StatusCode, Json<Domain>)> {
    let d = crate::app::domains::add(&h, a, &body.domain).await?;
    Ok((StatusCode::CREATED, Json(d)))
}

#[utoipa::path(get, path = "/v1/domains", tag = "api", summary = "List sending domains",   responses((status = 200, description = "The sending domains", body = [Domain]), Errors), security(("api_key" = [])))]
pub(crate) async fn list_domains(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
) -> ApiResult<Json<Vec<Domain>>> {
    Ok(Json(crate::app::domains::list(&h, a).await?))
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

#[utoipa::path(post, path = "/v1/domains/{domain}/check", tag = "api", summary = "Check a domain", params(("domain" = String, Path, description = "The domain")),  responses((status = 200, description = "SPF, DKIM and DMARC verdicts; verified when all pass", body = DomainCheckResult), (status = 409, description = "The checks passed but another account has verified this domain", body = Problem, content_type = "application/problem+json"), Errors), security(("api_key" = [])))]
pub(crate) async fn check_domain(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    P(domain): P<String>,
) -> ApiResult<Json<DomainCheckResult>> {
    let crate::app::domains::Checked { domain, report } =
        crate::app::domains::check(&h, a, &domain).await?;
    Ok(Json(DomainCheckResult { domain, report }))
}
