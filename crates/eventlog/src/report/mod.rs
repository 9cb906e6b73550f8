//! Reports (R-EVT-6): typed filters over every event field and over person
//! and organisation fields, sorting, pagination, CSV export, and the two report
//! actions (the persons of a report; a person field updated for all of them).
//!
//! Every value is a bound parameter; column names come from enums, never from
//! input. `contains` ignores ASCII case on both databases (a lower-cased
//! pattern with `%`, `_` and `\` escaped; `LOWER(..) LIKE` on PostgreSQL,
//! SQLite's own case-folding `LIKE` there; on PostgreSQL the `contains`
//! filters of one field are one `LIKE ALL`). Reports are bounded by
//! [`ReportLimits`] and time-limited.

/// The person field naming the person's organisation: its organisation fields
/// are that organisation's unless the person gives its own.
pub const ORGANISATION_ID: &str = "organisation_id";

use crate::event::{Event, EventKind};
use crate::store::{EventLog, event_columns, event_from_row};
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use herald_schedule::sql::{Bind, Sql};
use serde::{Deserialize, Serialize};
use sqlx::Row;

mod compile;
mod contacts;
mod csv;
mod query;
use compile::*;
pub use contacts::*;
#[cfg(test)]
use csv::*;
pub use query::*;

impl EventLog {
    /// Runs one report statement within [`ReportLimits::timeout_ms`]. On
    /// PostgreSQL the server stops it (`SET LOCAL statement_timeout` in a
    /// read-only transaction); on SQLite the wait is cut short and the
    /// statement's connection finishes it in the background (the bounds keep
    /// that short).
    async fn fetch_limited(&self, sql: &str, params: &Sql) -> Result<Vec<sqlx::any::AnyRow>> {
        let ms = self.report_limits.timeout_ms.max(1);
        match self.backend() {
            herald_schedule::Backend::Postgres => {
                let mut tx = self.pool().begin().await?;
                sqlx::query(&format!("SET LOCAL statement_timeout = {ms}"))
                    .execute(&mut *tx)
                    .await?;
                let rows =
                    params
                        .query_with(sql)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(|e| match &e {
                            sqlx::Error::Database(d) if d.code().as_deref() == Some("57014") => {
                                Error::TimedOut { ms }
                            }
                            _ => Error::Database(e),
                        })?;
                tx.rollback().await?;
                Ok(rows)
            }
            herald_schedule::Backend::Sqlite => tokio::time::timeout(
                std::time::Duration::from_millis(ms),
                params.query_with(sql).fetch_all(self.pool()),
            )
            .await
            .map_err(|_| Error::TimedOut { ms })?
            .map_err(Error::from),
        }
    }

    /// `query` checked against this log's bounds and its filters compiled for
    /// `account`: the start of every report.
    fn checked_where(&self, account: u64, query: &ReportQuery) -> Result<Where> {
        let account = crate::store::account_i64(account)?;
        query.check(&self.report_limits)?;
        build_where(account, &query.filters, self.backend())
    }

    /// The events of `account` matching `query` (one page).
    pub async fn report(&self, account: u64, query: &ReportQuery) -> Result<Vec<Event>> {
        let w = self.checked_where(account, query)?;
        let order = query.sort.map_or("e.id", EventField::column);
        let dir = if query.descending { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT {} FROM herald_events e WHERE {} ORDER BY {order} {dir}, e.id {dir} LIMIT {} OFFSET {}",
            event_columns("e."),
            w.sql,
            query.limit.clamp(0, 10_000),
            query.offset.max(0)
        );
        let rows = self.fetch_limited(&sql, &w.params).await?;
        rows.iter().map(event_from_row).collect()
    }

    /// How many events of `account` match `query`'s filters.
    pub async fn report_count(&self, account: u64, query: &ReportQuery) -> Result<u64> {
        let w = self.checked_where(account, query)?;
        let sql = format!("SELECT COUNT(*) FROM herald_events e WHERE {}", w.sql);
        let rows = self.fetch_limited(&sql, &w.params).await?;
        let n: i64 = match rows.first() {
            Some(r) => r.try_get(0)?,
            None => 0,
        };
        crate::store::stored_u64(n)
    }

    /// One page (`query.limit`, `query.offset`) of [`EventLog::report_persons`].
    pub async fn report_persons_page(
        &self,
        account: u64,
        query: &ReportQuery,
    ) -> Result<Vec<String>> {
        self.persons_of(account, query, Some((query.limit, query.offset)))
            .await
    }

    /// The distinct persons of all events matching `query`'s filters: the
    /// recipients of a new mass email made from a report.
    pub async fn report_persons(&self, account: u64, query: &ReportQuery) -> Result<Vec<String>> {
        self.persons_of(account, query, None).await
    }

    async fn persons_of(
        &self,
        account: u64,
        query: &ReportQuery,
        page: Option<(i64, i64)>,
    ) -> Result<Vec<String>> {
        let w = self.checked_where(account, query)?;
        let page = page.map_or(String::new(), |(limit, offset)| {
            format!(" LIMIT {} OFFSET {}", limit.clamp(0, 10_000), offset.max(0))
        });
        let sql = format!(
            "SELECT DISTINCT e.person FROM herald_events e WHERE {} AND e.person IS NOT NULL ORDER BY e.person{page}",
            w.sql
        );
        let rows = self.fetch_limited(&sql, &w.params).await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>(0)?))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
        assert_eq!(like_pattern("ABC"), "%abc%");
    }

    #[test]
    fn csv_cells_are_quoted_and_formula_guarded() {
        let mut out = String::new();
        csv_cell(&mut out, "=HYPERLINK(\"x\")");
        assert_eq!(out, "\"'=HYPERLINK(\"\"x\"\")\"");
        let mut out = String::new();
        csv_cell(&mut out, "plain");
        assert_eq!(out, "plain");
    }

    #[test]
    fn numeric_fields_refuse_text() {
        assert!(bind_value(EventField::Campaign, &Value::Text("1; DROP TABLE x".into())).is_err());
        assert!(matches!(
            bind_value(EventField::Campaign, &Value::Text("12".into())),
            Ok(Bind::Int(Some(12)))
        ));
    }
}
