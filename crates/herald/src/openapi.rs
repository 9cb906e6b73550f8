//! The OpenAPI 3.1 document of the HTTP API (R-API-1), generated from the
//! handlers' annotations with utoipa, served at `GET /openapi.json` and
//! checked in as `docs/openapi.json` (a test keeps the two equal; regenerate
//! with `cargo run -p herald-server -- openapi > docs/openapi.json`).

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Herald API",
        description = "Email and SMS sending engine for CRMs: accounts, domains, contacts, sends, the event log, reports and campaigns. Errors are application/problem+json.",
    ),
    paths(
        crate::api::create_account,
        crate::api::list_accounts,
        crate::api::list_sites,
        crate::api::delete_account_admin,
        crate::api::update_account,
        crate::api::create_dashboard_link,
        crate::api::update_own_account,
        crate::api::record_unsubscribe,
        crate::api::get_account,
        crate::api::delete_own_account,
        crate::api::accept_rules,
        crate::api::create_key,
        crate::api::add_domain,
        crate::api::list_domains,
        crate::api::check_domain,
        crate::api::upsert_persons,
        crate::api::upsert_organisations,
        crate::api::get_person,
        crate::api::person_clicks,
        crate::api::unblock,
        crate::api::create_send,
        crate::api::preview_send,
        crate::api::list_sends,
        crate::api::get_send,
        crate::api::delete_send,
        crate::api::send_sms,
        crate::api::get_sms,
        crate::api::delete_sms,
        crate::api::sms_reports,
        crate::api::sms_opt_out,
        crate::api::sms_opt_in,
        crate::api::list_events,
        crate::api::run_report,
        crate::api::report_persons,
        crate::api::report_update,
        crate::api::list_campaigns,
        crate::api::get_campaign,
        crate::api::mark_campaign,
        crate::api::inbound,
        crate::api::create_webhook,
        crate::api::list_webhooks,
        crate::api::get_webhook,
        crate::api::update_webhook,
        crate::api::delete_webhook,
        crate::api::rotate_webhook,
        crate::api::webhook_attempts,
        crate::api::test_webhook,
        crate::api::replay_webhook,
        crate::api::replay_webhook_attempt
    ),
    modifiers(&Security),
    tags(
        (name = "api", description = "Endpoints of one account, opened by its API key"),
        (name = "admin", description = "Operator endpoints, opened by the admin token"),
    )
)]
struct Document;

struct Security;
impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "sms_report_token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document, as pretty-printed JSON.
pub fn json() -> String {
    let mut doc = Document::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
