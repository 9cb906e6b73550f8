//! Contacts: persons, organisations, flags and the blocklist: `/v1/persons`,
//! `/v1/organisations`, `/v1/blocklist`.

use super::*;

// ---------------------------------------------------------------- contacts

pub use crate::app::contacts::{OrganisationInput, OrganisationsUpserted, PersonInput, PersonView};

#[utoipa::path(put, path = "/v1/organisations", tag = "api", summary = "Upsert organisations in bulk", request_body = Vec<OrganisationInput>, responses((status = 200, description = "Organisations stored; their persons' organisation fields updated", body = OrganisationsUpserted), Errors), security(("api_key" = [])))]
pub(crate) async fn upsert_organisations(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    Json(orgs): Json<Vec<OrganisationInput>>,
) -> ApiResult<Json<OrganisationsUpserted>> {
    Ok(Json(
        crate::app::contacts::upsert_organisations(&h, a, &orgs).await?,
    ))
}

/// What an upsert stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Upserted {
    /// Persons stored.
    pub upserted: usize,
}

#[utoipa::path(put, path = "/v1/persons", tag = "api", summary = "Upsert persons in bulk",  request_body = Vec<PersonInput>, responses((status = 200, description = "Persons stored", body = Upserted), Errors), security(("api_key" = [])))]
pub(crate) async fn upsert_persons(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    Json(persons): Json<Vec<PersonInput>>,
) -> ApiResult<Json<Upserted>> {
    Ok(Json(Upserted {
        upserted: crate::app::contacts::upsert_persons(&h, a, &persons).await?,
    }))
}

#[utoipa::path(get, path = "/v1/persons/{id}", tag = "api", summary = "A person with its flags", params(("id" = String, Path, description = "The CRM person id")),  responses((status = 200, description = "The person and its flags", body = PersonView), Errors), security(("api_key" = [])))]
pub(crate) async fn get_person(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    P(id): P<String>,
) -> ApiResult<Json<PersonView>> {
    Ok(Json(crate::app::contacts::person(&h, a, &id).await?))
}

#[utoipa::path(get, path = "/v1/persons/{id}/clicks", tag = "api", summary = "A person's click history", params(("id" = String, Path, description = "The CRM person id")),  responses((status = 200, description = "The person's clicks, newest first", body = [Event]), Errors), security(("api_key" = [])))]
pub(crate) async fn person_clicks(
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
pub(crate) async fn unblock(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    Json(body): Json<Unblock>,
) -> ApiResult<Json<Unblocked>> {
    Ok(Json(Unblocked {
        unblocked: h.events.unblock(a, body.email.trim()).await?,
    }))
}
