//! Persons and organisations as the CRM sends them: one validation for every
//! path that writes a contact field (`PUT /v1/persons`, `PUT
//! /v1/organisations`, `POST /v1/reports/update`, the quick start), and the
//! person as a send or a page reads it.

use super::{Error, Result};
use crate::service::Herald;
use herald_eventlog::{Namespace, OrganisationRecord, PersonRecord, ReportQuery, Suppressed};
use herald_message::{Mailbox, MergeData};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The person field holding the "block mass emails" flag.
pub const BLOCK_MASS: &str = "block_mass_emails";
/// The person field holding the "no SMS" flag (the person opted out of texts).
pub const BLOCK_SMS: &str = "block_sms";
/// The person field naming the person's organisation.
pub const ORGANISATION_ID: &str = herald_eventlog::ORGANISATION_ID;

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
    /// The "no SMS" flag: the person opted out of texts; SMS sends skip them.
    #[serde(default)]
    pub block_sms: bool,
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
    /// "No SMS": opted out of texts.
    pub block_sms: bool,
    /// The person's organisation.
    pub organisation_id: Option<String>,
    /// "Email bouncing": the address is on the blocklist (hard bounce).
    pub email_bouncing: bool,
    /// Unsubscribed or complained: no mass email.
    pub unsubscribed: bool,
    /// The person's mobile number opted out of SMS (a STOP the gateway
    /// reported, or `POST /v1/sms/opt-outs`): no texts.
    pub sms_opted_out: bool,
}

impl PersonView {
    /// The person's merge data.
    pub fn merge_data(&self) -> MergeData {
        MergeData {
            person: self.person.clone(),
            organisation: self.organisation.clone(),
            custom: self.custom.clone(),
        }
    }

    /// The number texts go to: `mobile`, else `phone`, in E.164 form; none
    /// when neither is a number with country code.
    pub fn mobile_number(&self) -> Option<String> {
        ["mobile", "phone"]
            .iter()
            .filter_map(|f| self.person.get(*f))
            .find_map(|n| crate::sms::normalize_number(n))
    }

    /// The name to put beside the address: `full_name`, else first and last name.
    pub fn display_name(&self) -> Option<String> {
        let p = &self.person;
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
}

/// Refuses a bulk request of more than `max` items.
pub fn at_most(field: &str, len: usize, max: usize) -> Result<()> {
    if len > max {
        return Err(Error::invalid(
            field,
            format!("at most {max} {field} per request"),
        ));
    }
    Ok(())
}

/// A CRM id (person, organisation): 1-200 characters, no control characters.
pub fn check_id(field: &str, id: &str) -> Result<()> {
    if id.trim().is_empty() || id.chars().count() > 200 || id.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            "must be 1-200 characters without control characters",
        ));
    }
    Ok(())
}

/// A contact field's name: 1-64 letters, digits, `_` or `-`.
pub fn check_field_name(field: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("`{name}` must be 1-64 letters, digits, `_` or `-`"),
        ))
    }
}

/// The one validation of a stored field value: at most 10,000 bytes; no
/// control characters except tab and line breaks; no line breaks in person
/// fields (names and the address end up in header fields); `person.email`,
/// when not empty, a valid address.
pub fn check_field_value(field: &str, ns: Namespace, key: &str, value: &str) -> Result<()> {
    if value.len() > 10_000 {
        return Err(Error::invalid(field, "at most 10,000 bytes"));
    }
    let line_breaks_ok = ns != Namespace::Person;
    if value
        .chars()
        .any(|c| c.is_control() && !(c == '\t' || (line_breaks_ok && (c == '\r' || c == '\n'))))
    {
        return Err(Error::invalid(
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

/// `persons[i]` checked and turned into the record stored. An organisation
/// named by `organisation_id` lends its fields when `organisation` is empty;
/// the event log copies them in the same transaction.
fn to_record(i: usize, p: &PersonInput) -> Result<PersonRecord> {
    check_id(&format!("persons[{i}].id"), &p.id)?;
    let mut fields = Vec::new();
    for (ns, map, label) in [
        (Namespace::Person, &p.person, "person"),
        (Namespace::Organisation, &p.organisation, "organisation"),
        (Namespace::Custom, &p.custom, "custom"),
    ] {
        for (k, v) in map {
            check_field_name(&format!("persons[{i}].{label}"), k)?;
            if ns == Namespace::Person && (k == BLOCK_MASS || k == BLOCK_SMS) {
                return Err(Error::invalid(
                    format!("persons[{i}].person.{k}"),
                    format!("is a flag: set `{k}` on the person"),
                ));
            }
            check_field_value(&format!("persons[{i}].{label}.{k}"), ns, k, v)?;
            fields.push((ns, k.clone(), v.clone()));
        }
    }
    if p.block_mass_emails {
        fields.push((Namespace::Person, BLOCK_MASS.into(), "true".into()));
    }
    if p.block_sms {
        fields.push((Namespace::Person, BLOCK_SMS.into(), "true".into()));
    }
    if let Some(org) = &p.organisation_id {
        check_id(&format!("persons[{i}].organisation_id"), org)?;
        if p.person.contains_key(ORGANISATION_ID) {
            return Err(Error::invalid(
                format!("persons[{i}].person.{ORGANISATION_ID}"),
                "set `organisation_id` on the person",
            ));
        }
        fields.push((Namespace::Person, ORGANISATION_ID.into(), org.clone()));
    }
    Ok(PersonRecord {
        id: p.id.clone(),
        fields,
    })
}

/// Stores (replaces) `persons` for `account`. Every record is checked before
/// anything is stored: one bad person loses nothing, and the whole request is
/// refused naming that person's field. Returns how many were stored.
pub async fn upsert_persons(h: &Herald, account: u64, persons: &[PersonInput]) -> Result<usize> {
    at_most(
        "persons",
        persons.len(),
        h.config.api.max_persons_per_upsert,
    )?;
    let records = persons
        .iter()
        .enumerate()
        .map(|(i, p)| to_record(i, p))
        .collect::<Result<Vec<_>>>()?;
    h.events.upsert_persons(account, &records).await?;
    Ok(records.len())
}

/// What an organisation upsert stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrganisationsUpserted {
    /// Organisations stored.
    pub upserted: usize,
    /// Persons whose organisation fields were updated.
    pub persons_updated: u64,
}

/// Stores (replaces) `organisations` and copies their fields to their persons.
pub async fn upsert_organisations(
    h: &Herald,
    account: u64,
    orgs: &[OrganisationInput],
) -> Result<OrganisationsUpserted> {
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
        records.push(OrganisationRecord {
            id: o.id.clone(),
            fields: o
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        });
    }
    let persons_updated = h.events.upsert_organisations(account, &records).await?;
    Ok(OrganisationsUpserted {
        upserted: records.len(),
        persons_updated,
    })
}

/// Sets field `field` of `namespace` to `value` for every person `query`
/// matches, validated as a person upsert validates it. Returns how many.
pub async fn update_report_persons(
    h: &Herald,
    account: u64,
    query: &ReportQuery,
    namespace: Namespace,
    field: &str,
    value: &str,
) -> Result<u64> {
    check_field_name("field", field)?;
    check_field_value("value", namespace, field, value)?;
    Ok(h.events
        .update_report_persons(account, query, namespace, field, value)
        .await?)
}

/// A stored record as a person view (flags unset: see [`person`]).
pub fn view_of(record: PersonRecord) -> PersonView {
    let mut v = PersonView {
        id: record.id,
        person: BTreeMap::new(),
        organisation: BTreeMap::new(),
        custom: BTreeMap::new(),
        block_mass_emails: false,
        block_sms: false,
        organisation_id: None,
        email_bouncing: false,
        unsubscribed: false,
        sms_opted_out: false,
    };
    for (ns, k, val) in record.fields {
        match ns {
            Namespace::Person if k == BLOCK_MASS => v.block_mass_emails = val == "true",
            Namespace::Person if k == BLOCK_SMS => v.block_sms = val == "true",
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

/// The stored persons `ids` of `account`, by id, as views (unknown ids absent).
pub async fn persons(
    h: &Herald,
    account: u64,
    ids: &[String],
) -> Result<std::collections::HashMap<String, PersonView>> {
    Ok(h.events
        .persons(account, ids)
        .await?
        .into_iter()
        .map(|(id, r)| (id, view_of(r)))
        .collect())
}

/// Person `id` of `account` with its flags: on the blocklist, unsubscribed.
pub async fn person(h: &Herald, account: u64, id: &str) -> Result<PersonView> {
    let mut v = persons(h, account, &[id.to_owned()])
        .await?
        .remove(id)
        .ok_or(Error::NotFound { what: "person" })?;
    if let Some(email) = v.person.get("email").cloned() {
        for s in h.events.suppressions(account, &email).await? {
            match s {
                Suppressed::Blocklist => v.email_bouncing = true,
                Suppressed::SmsOptOut => {}
                _ => v.unsubscribed = true,
            }
        }
    }
    if let Some(number) = v.mobile_number() {
        v.sms_opted_out = h
            .events
            .suppressions(account, &number)
            .await?
            .contains(&Suppressed::SmsOptOut);
    }
    Ok(v)
}

/// The persons the quick start stores for its demo account.
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
