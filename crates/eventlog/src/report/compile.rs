//! A report's filters compiled to one `WHERE` clause with its values bound
//! ([`herald_schedule::sql::Sql`]): each filter a condition, person filters one
//! subquery, cost linear in the filters.

use super::*;

/// A bound value.
pub(super) fn like_pattern(value: &str) -> String {
    let mut out = String::from("%");
    for c in value.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

pub(super) struct Where {
    pub(super) sql: String,
    /// The values of `sql`'s placeholders, in order ([`Sql::param`]).
    pub(super) params: Sql,
}

impl Where {
    /// `text` as `LIKE` compares it with a lower-cased pattern, ignoring ASCII
    /// case: SQLite's `LIKE` already does (and `LOWER` would copy every value);
    /// PostgreSQL's does not.
    pub(super) fn fold(&self, text: &str) -> String {
        match self.params.backend() {
            herald_schedule::Backend::Sqlite => text.to_owned(),
            herald_schedule::Backend::Postgres => format!("LOWER({text})"),
        }
    }

    pub(super) fn param(&mut self, b: Bind) -> String {
        self.params.param(b)
    }

    /// SQLite: one placeholder per use, so contains filters are written one by one.
    pub(super) fn sqlite(&self) -> bool {
        self.params.backend() == herald_schedule::Backend::Sqlite
    }
}

pub(super) fn bind_value(field: EventField, v: &Value) -> Result<Bind> {
    match (field.numeric(), v) {
        (true, Value::Int(i)) => Ok(Bind::from(*i)),
        (false, Value::Text(t)) => Ok(Bind::from(if field == EventField::Recipient {
            t.to_ascii_lowercase()
        } else {
            t.clone()
        })),
        (false, Value::Int(i)) => Ok(Bind::from(i.to_string())),
        (true, Value::Text(t)) => t
            .parse::<i64>()
            .map(Bind::from)
            .map_err(|_| Error::Invalid {
                field: "filter",
                rule: format!("`{t}` is not a number, and {field:?} is numeric"),
            }),
    }
}

pub(super) fn build_where(
    account: i64,
    filters: &[Filter],
    backend: herald_schedule::Backend,
) -> Result<Where> {
    let mut w = Where {
        sql: String::new(),
        params: Sql::new(backend),
    };
    let p = w.param(Bind::from(account));
    w.sql = format!("e.account = {p}");
    for f in filters {
        let clause = match f {
            Filter::Equals { field, value } => {
                let p = w.param(bind_value(*field, value)?);
                format!("{} = {p}", field.column())
            }
            // PostgreSQL: grouped by field below, so each field is lower-cased once.
            Filter::Contains { .. } if !w.sqlite() => continue,
            Filter::Contains { field, value } => {
                let p = w.param(Bind::from(like_pattern(value)));
                let text = format!("COALESCE({}, '')", field.column());
                format!("{} LIKE {p} ESCAPE '\\'", w.fold(&text))
            }
            Filter::OneOf { field, values } => {
                if values.is_empty() {
                    "1 = 0".to_owned()
                } else {
                    let ps: Vec<String> = values
                        .iter()
                        .map(|v| bind_value(*field, v).map(|b| w.param(b)))
                        .collect::<Result<_>>()?;
                    format!("{} IN ({})", field.column(), ps.join(", "))
                }
            }
            Filter::Between { from, to } => {
                let a = w.param(Bind::from(from.timestamp_millis()));
                let b = w.param(Bind::from(to.timestamp_millis()));
                format!("e.at >= {a} AND e.at < {b}")
            }
            Filter::Kinds { kinds } => {
                if kinds.is_empty() {
                    "1 = 0".to_owned()
                } else {
                    let ps: Vec<String> = kinds
                        .iter()
                        .map(|k| w.param(Bind::from(k.as_str().to_owned())))
                        .collect();
                    format!("e.kind IN ({})", ps.join(", "))
                }
            }
            // All person filters together become one set of persons, below.
            Filter::PersonEquals { .. } | Filter::PersonContains { .. } => continue,
        };
        w.sql.push_str(" AND ");
        w.sql.push_str(&clause);
    }
    // PostgreSQL: the `contains` filters of one field are one `LIKE ALL`, so
    // the field is lower-cased once per row, not once per filter (its
    // default `LIKE` escape is the backslash `like_pattern` writes).
    if !w.sqlite() {
        let mut by_field: Vec<(EventField, Vec<&String>)> = Vec::new();
        for f in filters {
            if let Filter::Contains { field, value } = f {
                match by_field.iter_mut().find(|(g, _)| g == field) {
                    Some((_, values)) => values.push(value),
                    None => by_field.push((*field, vec![value])),
                }
            }
        }
        for (field, values) in by_field {
            let ps: Vec<String> = values
                .into_iter()
                .map(|v| format!("{}::text", w.param(Bind::from(like_pattern(v)))))
                .collect();
            w.sql.push_str(&format!(
                " AND LOWER(COALESCE({}, '')) LIKE ALL (ARRAY[{}])",
                field.column(),
                ps.join(", ")
            ));
        }
    }
    // All person filters are one subquery over the person's fields, one
    // `MAX(CASE …)` per filter, so the cost grows linearly in the filters
    // (one `EXISTS` per filter made SQLite's planner grow with their
    // product). Correlated, read by the primary key for each event: a narrow
    // report reads only its events' persons. On SQLite with several person
    // filters, the persons that meet them all are found once instead, in one
    // scan of the fields they name, and the events matched against that set
    // (measured: 2.0-3.3 s instead of 4.9-8.8 s for the worst such report; on
    // PostgreSQL the set was slower for filters that match most persons).
    let person: Vec<(&Namespace, &String, &String, bool)> = filters
        .iter()
        .filter_map(|f| match f {
            Filter::PersonEquals {
                namespace,
                field,
                value,
            } => Some((namespace, field, value, true)),
            Filter::PersonContains {
                namespace,
                field,
                value,
            } => Some((namespace, field, value, false)),
            _ => None,
        })
        .collect();
    if person.is_empty() {
        return Ok(w);
    }
    let head = if person.len() == 1 || !w.sqlite() {
        " AND EXISTS (SELECT 1 FROM herald_person_fields f WHERE f.account = e.account AND f.person = e.person GROUP BY f.person HAVING ".to_owned()
    } else {
        let a = w.param(Bind::from(account));
        let mut pairs = Vec::with_capacity(person.len());
        for (namespace, field, _, _) in &person {
            let ns = w.param(Bind::from(namespace.as_str().to_owned()));
            let name = w.param(Bind::from((*field).clone()));
            pairs.push(format!("(f.namespace = {ns} AND f.field = {name})"));
        }
        format!(
            " AND e.person IN (SELECT f.person FROM herald_person_fields f WHERE f.account = {a} AND ({}) GROUP BY f.person HAVING ",
            pairs.join(" OR ")
        )
    };
    let mut checks = Vec::with_capacity(person.len());
    for (namespace, field, value, exact) in person {
        let ns = w.param(Bind::from(namespace.as_str().to_owned()));
        let name = w.param(Bind::from(field.clone()));
        let cmp = if exact {
            format!("f.value = {}", w.param(Bind::from(value.clone())))
        } else {
            let pattern = w.param(Bind::from(like_pattern(value)));
            format!("{} LIKE {pattern} ESCAPE '\\'", w.fold("f.value"))
        };
        checks.push(format!(
            "MAX(CASE WHEN f.namespace = {ns} AND f.field = {name} AND {cmp} THEN 1 ELSE 0 END) = 1"
        ));
    }
    w.sql.push_str(&head);
    w.sql.push_str(&checks.join(" AND "));
    w.sql.push(')');
    Ok(w)
}
