//! Contacts: persons, organisations, flags and the blocklist: `/v1/persons`,
//! `/v1/organisations`, `/v1/blocklist`.

use super::*;

// ---------------------------------------------------------------- contacts

/// A person as the CRM sends it (`PUT /v1/persons`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct PersonInput {
    /// The CRM's person id.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
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
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
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
pub(crate) async fn upsert_organisations(
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
            check_field_value(
                &format!("organisations[{i}].fields.{k}"),
                Namespace::Organisation,
                k,
                v,
            )?;
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
pub(super) fn at_most(field: &str, len: usize, max: usize) -> ApiResult<()> {
    if len > max {
        return Err(Problem::invalid(
            field,
            format!("at most {max} {field} per request"),
        ));
    }
    Ok(())
}

pub(super) fn check_id(field: &str, id: &str) -> ApiResult<()> {
    if id.trim().is_empty() || id.chars().count() > 200 || id.chars().any(char::is_control) {
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

pub(super) const BLOCK_MASS: &str = "block_mass_emails";
pub(super) const ORGANISATION_ID: &str = "organisation_id";

pub(super) fn check_field_name(field: &str, name: &str) -> ApiResult<()> {
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

/// The one validation of a stored field value, for `PUT /v1/persons` and
/// `POST /v1/reports/update` alike: at most 10,000 bytes; no control
/// characters except tab and line breaks; no line breaks in person fields
/// (names and the address end up in header fields); `person.email`, when not
/// empty, a valid address.
pub(super) fn check_field_value(
    field: &str,
    ns: Namespace,
    key: &str,
    value: &str,
) -> ApiResult<()> {
    if value.len() > 10_000 {
        return Err(Problem::invalid(field, "at most 10,000 bytes"));
    }
    let line_breaks_ok = ns != Namespace::Person;
    if value
        .chars()
        .any(|c| c.is_control() && !(c == '\t' || (line_breaks_ok && (c == '\r' || c == '\n'))))
    {
        return Err(Problem::invalid(
            field,
            if line_breaks_ok {
                "no control characters other than tab and line breaks"
            } else {
                "no control characters or line breaks in person fields"
            },
        ));
    }
    if ns == Namespace::Person && key == "email" && !value.is_empty() {
        Mailbox::for_field(field, None, value)?;
    }
    Ok(())
}

pub(super) fn to_record(
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
            check_field_value(&format!("persons[{i}].{label}.{k}"), ns, k, v)?;
            fields.push((ns, k.clone(), v.clone()));
        }
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
pub(crate) async fn upsert_persons(
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

pub(super) fn view_of(record: PersonRecord) -> PersonView {
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
pub(crate) async fn get_person(
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
