//! Contact writes: persons and organisations upserted, and a field set for a
//! report's persons.

use super::*;

/// One organisation's fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrganisationRecord {
    /// The CRM's organisation id.
    pub id: String,
    /// Fields by name (`{{organisation.<name>}}` in templates).
    pub fields: Vec<(String, String)>,
}

/// One person's contact fields, for reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonRecord {
    /// The CRM's person id.
    pub id: String,
    /// Fields by namespace and name.
    pub fields: Vec<(Namespace, String, String)>,
}

impl EventLog {
    /// Stores (replaces) the contact fields of `persons`.
    pub async fn upsert_persons(&self, account: u64, persons: &[PersonRecord]) -> Result<()> {
        let account = crate::store::account_i64(account)?;
        let mut tx = self.writer().begin().await?;
        for p in persons {
            sqlx::query("DELETE FROM herald_person_fields WHERE account = $1 AND person = $2")
                .bind(account)
                .bind(p.id.as_str())
                .execute(&mut *tx)
                .await?;
            for chunk in p.fields.chunks(100) {
                let mut sql = Sql::new(self.backend());
                sql.push(
                    "INSERT INTO herald_person_fields (account, person, namespace, field, value) VALUES ",
                );
                for (i, (ns, field, value)) in chunk.iter().enumerate() {
                    if i > 0 {
                        sql.push(",");
                    }
                    sql.bind_list([
                        Bind::from(account),
                        p.id.as_str().into(),
                        ns.as_str().into(),
                        field.as_str().into(),
                        value.as_str().into(),
                    ]);
                }
                let q = sql.query();
                q.execute(&mut *tx).await?;
            }
            // A person naming an organisation and giving no organisation
            // fields of its own gets the organisation's.
            let organisation = p
                .fields
                .iter()
                .find(|(ns, k, _)| *ns == Namespace::Person && k == ORGANISATION_ID)
                .map(|(_, _, v)| v.as_str());
            let own = p
                .fields
                .iter()
                .any(|(ns, _, _)| *ns == Namespace::Organisation);
            if let (Some(org), false) = (organisation, own) {
                sqlx::query(
                    "INSERT INTO herald_person_fields (account, person, namespace, field, value)
                     SELECT account, $2, 'organisation', field, value FROM herald_organisation_fields WHERE account = $1 AND organisation = $3",
                )
                .bind(account)
                .bind(p.id.as_str())
                .bind(org)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stores (replaces) the fields of `organisations` and copies them into
    /// the organisation fields of every person whose person field
    /// `organisation_id` names one of them, in one transaction. Returns how
    /// many persons were updated.
    pub async fn upsert_organisations(
        &self,
        account: u64,
        organisations: &[OrganisationRecord],
    ) -> Result<u64> {
        let account = crate::store::account_i64(account)?;
        let mut tx = self.writer().begin().await?;
        let mut updated = 0;
        for o in organisations {
            sqlx::query(
                "DELETE FROM herald_organisation_fields WHERE account = $1 AND organisation = $2",
            )
            .bind(account)
            .bind(o.id.as_str())
            .execute(&mut *tx)
            .await?;
            for (field, value) in &o.fields {
                sqlx::query("INSERT INTO herald_organisation_fields (account, organisation, field, value) VALUES ($1, $2, $3, $4)")
                    .bind(account)
                    .bind(o.id.as_str())
                    .bind(field.as_str())
                    .bind(value.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            let persons: Vec<String> = sqlx::query(
                "SELECT person FROM herald_person_fields WHERE account = $1 AND namespace = 'person' AND field = $2 AND value = $3",
            )
            .bind(account)
            .bind(ORGANISATION_ID)
            .bind(o.id.as_str())
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<std::result::Result<_, _>>()?;
            for p in &persons {
                sqlx::query("DELETE FROM herald_person_fields WHERE account = $1 AND person = $2 AND namespace = 'organisation'")
                    .bind(account)
                    .bind(p.as_str())
                    .execute(&mut *tx)
                    .await?;
                for (field, value) in &o.fields {
                    sqlx::query("INSERT INTO herald_person_fields (account, person, namespace, field, value) VALUES ($1, $2, 'organisation', $3, $4)")
                        .bind(account)
                        .bind(p.as_str())
                        .bind(field.as_str())
                        .bind(value.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
            }
            updated += persons.len() as u64;
        }
        tx.commit().await?;
        Ok(updated)
    }

    /// The stored fields of the organisations `ids` of `account`, by id
    /// (unknown ones are absent).
    pub async fn organisations(
        &self,
        account: u64,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, OrganisationRecord>> {
        let account = crate::store::account_i64(account)?;
        let mut out = std::collections::HashMap::new();
        for chunk in ids.chunks(500) {
            let mut sql = Sql::new(self.backend());
            sql.push("SELECT organisation, field, value FROM herald_organisation_fields WHERE account = ")
                .bind(account)
                .push(" AND organisation IN ")
                .bind_list(chunk.iter().map(|id| id.as_str()))
                .push(" ORDER BY organisation, field");
            let q = sql.query();
            for row in q.fetch_all(self.pool()).await? {
                let id: String = row.try_get(0)?;
                out.entry(id.clone())
                    .or_insert_with(|| OrganisationRecord {
                        id,
                        fields: Vec::new(),
                    })
                    .fields
                    .push((row.try_get(1)?, row.try_get(2)?));
            }
        }
        Ok(out)
    }

    /// Sets one contact field of every person of a report (the second report
    /// action); returns how many persons were updated.
    pub async fn update_report_persons(
        &self,
        account: u64,
        query: &ReportQuery,
        namespace: Namespace,
        field: &str,
        value: &str,
    ) -> Result<u64> {
        let persons = self.report_persons(account, query).await?;
        let account = crate::store::account_i64(account)?;
        let mut tx = self.writer().begin().await?;
        for p in &persons {
            sqlx::query("DELETE FROM herald_person_fields WHERE account = $1 AND person = $2 AND namespace = $3 AND field = $4")
                .bind(account)
                .bind(p.as_str())
                .bind(namespace.as_str())
                .bind(field)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO herald_person_fields (account, person, namespace, field, value) VALUES ($1, $2, $3, $4, $5)")
                .bind(account)
                .bind(p.as_str())
                .bind(namespace.as_str())
                .bind(field)
                .bind(value)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(persons.len() as u64)
    }
}
