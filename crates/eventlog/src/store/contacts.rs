//! Persons as the event log keeps them: their fields, the field names in use,
//! and their click history.

use super::*;

impl EventLog {
    /// The clicks of one person, newest first (R-EVT-6).
    pub async fn click_history(&self, account: u64, person: &str) -> Result<Vec<Event>> {
        let rows = sqlx::query(
            &format!(
                "SELECT {} FROM herald_events WHERE account = $1 AND person = $2 AND kind = 'click' ORDER BY id DESC",
                event_columns("")
            ),
        )
        .bind(account_i64(account)?)
        .bind(person.to_owned())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// One contact field of a person (`None` if unset), e.g. the
    /// `person.email_bouncing` flag a hard bounce sets.
    pub async fn person_field(
        &self,
        account: u64,
        person: &str,
        namespace: crate::report::Namespace,
        field: &str,
    ) -> Result<Option<String>> {
        let row = sqlx::query("SELECT value FROM herald_person_fields WHERE account = $1 AND person = $2 AND namespace = $3 AND field = $4")
            .bind(account_i64(account)?)
            .bind(person.to_owned())
            .bind(namespace.as_str())
            .bind(field.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok(r.try_get::<String, _>(0)?)).transpose()
    }

    /// The stored contact fields of the persons `ids` of `account`, by person
    /// (persons with no fields are absent).
    pub async fn persons(
        &self,
        account: u64,
        ids: &[String],
    ) -> Result<HashMap<String, crate::report::PersonRecord>> {
        use crate::report::{Namespace, PersonRecord};
        let account = account_i64(account)?;
        let mut out: HashMap<String, PersonRecord> = HashMap::new();
        for chunk in ids.chunks(500) {
            let mut sql = Sql::new(self.backend());
            sql.push(
                "SELECT person, namespace, field, value FROM herald_person_fields WHERE account = ",
            )
            .bind(account)
            .push(" AND person IN ")
            .bind_list(chunk.iter().map(|id| id.as_str()))
            .push(" ORDER BY person, namespace, field");
            let q = sql.query();
            for row in q.fetch_all(&self.pool).await? {
                let person: String = row.try_get(0)?;
                let namespace = Namespace::from_stored(&row.try_get::<String, _>(1)?)?;
                let field: String = row.try_get(2)?;
                let value: String = row.try_get(3)?;
                out.entry(person.clone())
                    .or_insert_with(|| PersonRecord {
                        id: person,
                        fields: Vec::new(),
                    })
                    .fields
                    .push((namespace, field, value));
            }
        }
        Ok(out)
    }

    /// The contact field names `account` has stored, by namespace: the merge
    /// fields its templates may use.
    pub async fn field_names(
        &self,
        account: u64,
    ) -> Result<Vec<(crate::report::Namespace, String)>> {
        use crate::report::Namespace;
        let rows = sqlx::query(
            "SELECT DISTINCT namespace, field FROM herald_person_fields WHERE account = $1",
        )
        .bind(account_i64(account)?)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    Namespace::from_stored(&r.try_get::<String, _>(0)?)?,
                    r.try_get::<String, _>(1)?,
                ))
            })
            .collect()
    }
}
