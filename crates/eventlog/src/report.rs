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

/// An event field a report can filter or sort on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EventField {
    /// The event kind.
    Kind,
    /// The time (filter with [`Filter::Between`]).
    At,
    /// The outbox message number.
    Message,
    /// The campaign number.
    Campaign,
    /// The recipient's address.
    Recipient,
    /// The CRM's person id.
    Person,
    /// The link's index.
    Link,
    /// The link's label.
    Label,
    /// The client IP.
    Ip,
    /// The User-Agent.
    UserAgent,
    /// The SMTP reply or diagnostic.
    Reply,
    /// The client's browser.
    Browser,
    /// The client's operating system.
    Os,
    /// The client's device class.
    Device,
    /// The IP's country (ISO code).
    Country,
    /// The IP's city.
    City,
}

impl EventField {
    fn column(self) -> &'static str {
        match self {
            EventField::Kind => "e.kind",
            EventField::At => "e.at",
            EventField::Message => "e.message",
            EventField::Campaign => "e.campaign",
            EventField::Recipient => "e.recipient",
            EventField::Person => "e.person",
            EventField::Link => "e.link",
            EventField::Label => "e.label",
            EventField::Ip => "e.ip",
            EventField::UserAgent => "e.user_agent",
            EventField::Reply => "e.reply",
            EventField::Browser => "e.browser",
            EventField::Os => "e.os",
            EventField::Device => "e.device",
            EventField::Country => "e.country",
            EventField::City => "e.city",
        }
    }

    fn numeric(self) -> bool {
        matches!(
            self,
            EventField::At | EventField::Message | EventField::Campaign | EventField::Link
        )
    }
}

/// Which set of contact fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Namespace {
    /// Person fields.
    Person,
    /// The person's organisation's fields.
    Organisation,
    /// Custom fields.
    Custom,
}

impl Namespace {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Namespace::Person => "person",
            Namespace::Organisation => "organisation",
            Namespace::Custom => "custom",
        }
    }

    /// The namespace stored as `s` (the inverse of [`Namespace::as_str`];
    /// anything else is custom).
    pub(crate) fn from_stored(s: &str) -> Self {
        match s {
            "person" => Namespace::Person,
            "organisation" => Namespace::Organisation,
            _ => Namespace::Custom,
        }
    }
}

/// A value to compare with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Value {
    /// A number.
    Int(i64),
    /// Text.
    Text(String),
}

/// One condition; a report's conditions all hold (AND).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Filter {
    /// `field = value`.
    Equals {
        /// The field.
        field: EventField,
        /// The value.
        value: Value,
    },
    /// The field's text contains `value`, ignoring ASCII case.
    Contains {
        /// The field.
        field: EventField,
        /// The text (at most 1,000 characters by default).
        #[cfg_attr(feature = "openapi", schema(max_length = 1000))]
        value: String,
    },
    /// `field` is one of `values`.
    OneOf {
        /// The field.
        field: EventField,
        /// The values (at most 1,000 by default).
        #[cfg_attr(feature = "openapi", schema(max_items = 1000))]
        values: Vec<Value>,
    },
    /// The event happened in `[from, to)`.
    Between {
        /// Start, inclusive.
        from: DateTime<Utc>,
        /// End, exclusive.
        to: DateTime<Utc>,
    },
    /// The event is one of these kinds.
    Kinds {
        /// The kinds (at most 1,000 by default).
        #[cfg_attr(feature = "openapi", schema(max_items = 1000))]
        kinds: Vec<EventKind>,
    },
    /// A contact field of the event's person equals `value`.
    PersonEquals {
        /// Person, organisation or custom.
        namespace: Namespace,
        /// The field's name.
        #[cfg_attr(feature = "openapi", schema(max_length = 1000))]
        field: String,
        /// The value.
        #[cfg_attr(feature = "openapi", schema(max_length = 1000))]
        value: String,
    },
    /// A contact field of the event's person contains `value`, ignoring ASCII case.
    PersonContains {
        /// Person, organisation or custom.
        namespace: Namespace,
        /// The field's name.
        #[cfg_attr(feature = "openapi", schema(max_length = 1000))]
        field: String,
        /// The text.
        #[cfg_attr(feature = "openapi", schema(max_length = 1000))]
        value: String,
    },
}

/// A report: filters, order and page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportQuery {
    /// Conditions, all of which hold (at most [`ReportLimits::max_filters`],
    /// 20 by default).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 20))]
    pub filters: Vec<Filter>,
    /// Sort field (default: time of recording).
    #[serde(default)]
    pub sort: Option<EventField>,
    /// Newest / largest first (default true).
    #[serde(default = "yes")]
    pub descending: bool,
    /// Page size (at most 10,000; default 100).
    #[serde(default = "hundred")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 10000))]
    pub limit: i64,
    /// Rows to skip.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub offset: i64,
}

fn yes() -> bool {
    true
}
fn hundred() -> i64 {
    100
}

impl Default for ReportQuery {
    fn default() -> Self {
        ReportQuery {
            filters: Vec::new(),
            sort: None,
            descending: true,
            limit: 100,
            offset: 0,
        }
    }
}

/// The bounds one report may not exceed, so that no account's report keeps
/// the database busy for long (issue 10 §2). A report over one is refused
/// with [`Error::Limit`] naming the bound; one that still runs longer than
/// `timeout_ms` is stopped with [`Error::TimedOut`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportLimits {
    /// Filters per report. Default 20.
    pub max_filters: usize,
    /// Characters in one text value (`equals`, `contains`, a `one_of`
    /// value, a person field's value or name). Default 1,000.
    pub max_value_chars: usize,
    /// Values in one `one_of` or `kinds` list. Default 1,000.
    pub max_values: usize,
    /// Longest time one report query may run, in milliseconds. Default 5,000.
    pub timeout_ms: u64,
}

impl Default for ReportLimits {
    fn default() -> Self {
        ReportLimits {
            max_filters: 20,
            max_value_chars: 1_000,
            max_values: 1_000,
            timeout_ms: 5_000,
        }
    }
}

impl ReportQuery {
    /// Checks the query against `limits` and its page (`limit` 1-10,000,
    /// `offset` not negative); the error names the part and the bound
    /// (`filters[3].value: at most 1000 characters`).
    pub fn check(&self, limits: &ReportLimits) -> Result<()> {
        let over = |field: String, rule: String| Err(Error::Limit { field, rule });
        if !(1..=10_000).contains(&self.limit) {
            return over("limit".into(), "must be 1-10000".into());
        }
        if self.offset < 0 {
            return over("offset".into(), "must not be negative".into());
        }
        if self.filters.len() > limits.max_filters {
            return over(
                "filters".into(),
                format!(
                    "at most {} filters in one report ({} given)",
                    limits.max_filters,
                    self.filters.len()
                ),
            );
        }
        let long = |s: &str| s.chars().count() > limits.max_value_chars;
        let chars = format!("at most {} characters", limits.max_value_chars);
        for (i, f) in self.filters.iter().enumerate() {
            match f {
                Filter::Equals {
                    value: Value::Text(v),
                    ..
                }
                | Filter::Contains { value: v, .. }
                    if long(v) =>
                {
                    return over(format!("filters[{i}].value"), chars);
                }
                Filter::OneOf { values, .. } => {
                    if values.len() > limits.max_values {
                        return over(
                            format!("filters[{i}].values"),
                            format!(
                                "at most {} values ({} given)",
                                limits.max_values,
                                values.len()
                            ),
                        );
                    }
                    if let Some(j) = values
                        .iter()
                        .position(|v| matches!(v, Value::Text(t) if long(t)))
                    {
                        return over(format!("filters[{i}].values[{j}]"), chars);
                    }
                }
                Filter::Kinds { kinds } if kinds.len() > limits.max_values => {
                    return over(
                        format!("filters[{i}].kinds"),
                        format!(
                            "at most {} kinds ({} given)",
                            limits.max_values,
                            kinds.len()
                        ),
                    );
                }
                Filter::PersonEquals { field, value, .. }
                | Filter::PersonContains { field, value, .. } => {
                    if long(field) {
                        return over(format!("filters[{i}].field"), chars);
                    }
                    if long(value) {
                        return over(format!("filters[{i}].value"), chars);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// A bound value.
fn like_pattern(value: &str) -> String {
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

struct Where {
    sql: String,
    /// The values of `sql`'s placeholders, in order ([`Sql::param`]).
    params: Sql,
}

impl Where {
    /// `text` as `LIKE` compares it with a lower-cased pattern, ignoring ASCII
    /// case: SQLite's `LIKE` already does (and `LOWER` would copy every value);
    /// PostgreSQL's does not.
    fn fold(&self, text: &str) -> String {
        match self.params.backend() {
            herald_schedule::Backend::Sqlite => text.to_owned(),
            herald_schedule::Backend::Postgres => format!("LOWER({text})"),
        }
    }

    fn param(&mut self, b: Bind) -> String {
        self.params.param(b)
    }

    /// SQLite: one placeholder per use, so contains filters are written one by one.
    fn sqlite(&self) -> bool {
        self.params.backend() == herald_schedule::Backend::Sqlite
    }
}

fn bind_value(field: EventField, v: &Value) -> Result<Bind> {
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

fn build_where(
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

/// The CSV columns, in order, each with its cell: one table, so the header
/// and the rows cannot disagree.
type CsvColumn = (&'static str, fn(&Event) -> String);

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

const CSV_COLUMNS: [CsvColumn; 20] = [
    ("id", |e| e.id.to_string()),
    ("kind", |e| e.kind.as_str().to_owned()),
    ("at", |e| e.at.to_rfc3339()),
    ("message", |e| opt(&e.message)),
    ("campaign", |e| opt(&e.campaign)),
    ("recipient", |e| e.recipient.clone()),
    ("person", |e| opt(&e.person)),
    ("link", |e| opt(&e.link)),
    ("label", |e| opt(&e.label)),
    ("ip", |e| opt(&e.ip)),
    ("user_agent", |e| opt(&e.user_agent)),
    ("reply", |e| opt(&e.reply)),
    ("reason", |e| opt(&e.reason.map(|r| r.as_str()))),
    ("bot", |e| e.bot.to_string()),
    ("origin", |e| {
        match e.origin {
            crate::bots::Origin::Person => "person",
            crate::bots::Origin::Prefetch => "prefetch",
            crate::bots::Origin::Bot => "bot",
        }
        .to_owned()
    }),
    ("browser", |e| opt(&e.browser)),
    ("os", |e| opt(&e.os)),
    ("device", |e| opt(&e.device)),
    ("country", |e| opt(&e.country)),
    ("city", |e| opt(&e.city)),
];

fn csv_cell(out: &mut String, v: &str) {
    // Quote every cell that needs it; a leading =, +, - or @ is prefixed with '
    // so spreadsheet programs do not run it as a formula.
    let guarded = if v.starts_with(['=', '+', '-', '@']) {
        format!("'{v}")
    } else {
        v.to_owned()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&guarded.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(&guarded);
    }
}

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

    /// The events of `account` matching `query` (one page).
    pub async fn report(&self, account: u64, query: &ReportQuery) -> Result<Vec<Event>> {
        let account = i64::try_from(account).map_err(|_| Error::Invalid {
            field: "account",
            rule: "must be below 2^63".into(),
        })?;
        query.check(&self.report_limits)?;
        let w = build_where(account, &query.filters, self.backend())?;
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
        let account = i64::try_from(account).map_err(|_| Error::Invalid {
            field: "account",
            rule: "must be below 2^63".into(),
        })?;
        query.check(&self.report_limits)?;
        let w = build_where(account, &query.filters, self.backend())?;
        let sql = format!("SELECT COUNT(*) FROM herald_events e WHERE {}", w.sql);
        let rows = self.fetch_limited(&sql, &w.params).await?;
        let n: i64 = match rows.first() {
            Some(r) => r.try_get(0)?,
            None => 0,
        };
        crate::store::stored_u64(n)
    }

    /// The report as CSV (a header line, then one line per event of the page).
    pub async fn report_csv(&self, account: u64, query: &ReportQuery) -> Result<String> {
        let header: Vec<&str> = CSV_COLUMNS.iter().map(|(name, _)| *name).collect();
        let mut out = format!("{}\r\n", header.join(","));
        for e in self.report(account, query).await? {
            for (i, (_, cell)) in CSV_COLUMNS.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                csv_cell(&mut out, &cell(&e));
            }
            out.push_str("\r\n");
        }
        Ok(out)
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
        let account = i64::try_from(account).map_err(|_| Error::Invalid {
            field: "account",
            rule: "must be below 2^63".into(),
        })?;
        query.check(&self.report_limits)?;
        let w = build_where(account, &query.filters, self.backend())?;
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

    /// Stores (replaces) the contact fields of `persons`.
    pub async fn upsert_persons(&self, account: u64, persons: &[PersonRecord]) -> Result<()> {
        let account = i64::try_from(account).map_err(|_| Error::Invalid {
            field: "account",
            rule: "must be below 2^63".into(),
        })?;
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
        let account = i64::try_from(account).map_err(|_| Error::Invalid {
            field: "account",
            rule: "must be below 2^63".into(),
        })?;
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
        let account = i64::try_from(account).map_err(|_| Error::Invalid {
            field: "account",
            rule: "must be below 2^63".into(),
        })?;
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
        let account = i64::try_from(account).map_err(|_| Error::Invalid {
            field: "account",
            rule: "must be below 2^63".into(),
        })?;
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
