//! One way to write a statement for both dialects, shared by Herald's storage
//! crates.
//!
//! - A fixed statement is written with PostgreSQL's numbered placeholders
//!   (`$1`, `$2`, …) and bound once per number, in number order. The same text
//!   runs on SQLite: SQLite reads `$1` as a named parameter and sqlx's SQLite
//!   driver binds a parameter named `$N` (or `?N`) to argument N, so a number
//!   may be used twice or out of order (`tests/it/sql.rs` shows it on both).
//! - A statement built at run time (bulk inserts, `IN` lists, report filters)
//!   is written with [`Sql`]: text and values are pushed together, and it
//!   numbers the placeholders for PostgreSQL and leaves them anonymous (`?`)
//!   for SQLite, whose lookup of named parameters makes binding quadratic in
//!   their count (a bulk insert or a 1,000-value `IN` list has hundreds).

use crate::Backend;
use sqlx::any::AnyArguments;
use sqlx::query::Query;

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    /// An integer, or NULL.
    Int(Option<i64>),
    /// A text, or NULL.
    Text(Option<String>),
}

impl From<i64> for Bind {
    fn from(v: i64) -> Self {
        Bind::Int(Some(v))
    }
}
impl From<Option<i64>> for Bind {
    fn from(v: Option<i64>) -> Self {
        Bind::Int(v)
    }
}
impl From<String> for Bind {
    fn from(v: String) -> Self {
        Bind::Text(Some(v))
    }
}
impl From<&str> for Bind {
    fn from(v: &str) -> Self {
        Bind::Text(Some(v.to_owned()))
    }
}
impl From<Option<String>> for Bind {
    fn from(v: Option<String>) -> Self {
        Bind::Text(v)
    }
}
impl From<Option<&str>> for Bind {
    fn from(v: Option<&str>) -> Self {
        Bind::Text(v.map(str::to_owned))
    }
}

/// A statement built at run time: its text and its values, in order.
#[derive(Debug, Clone)]
pub struct Sql {
    text: String,
    binds: Vec<Bind>,
    backend: Backend,
}

impl Sql {
    /// An empty statement for `backend`.
    pub fn new(backend: Backend) -> Self {
        Sql {
            text: String::new(),
            binds: Vec::new(),
            backend,
        }
    }

    /// Appends SQL text (never a value: values go through [`Sql::bind`]).
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder for `value`.
    pub fn bind(&mut self, value: impl Into<Bind>) -> &mut Self {
        let p = self.param(value);
        self.text.push_str(&p);
        self
    }

    /// Records `value` and returns its placeholder, for text assembled elsewhere
    /// and appended in the same order.
    pub fn param(&mut self, value: impl Into<Bind>) -> String {
        self.binds.push(value.into());
        match self.backend {
            Backend::Sqlite => "?".to_owned(),
            Backend::Postgres => format!("${}", self.binds.len()),
        }
    }

    /// Appends `(p, p, …)` with one placeholder per item of `values`.
    pub fn bind_list<B: Into<Bind>>(&mut self, values: impl IntoIterator<Item = B>) -> &mut Self {
        self.text.push('(');
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.bind(v);
        }
        self.text.push(')');
        self
    }

    /// An empty statement for the database behind `conn` (a transaction derefs to one).
    pub fn for_connection(conn: &sqlx::AnyConnection) -> Self {
        Sql::new(if conn.backend_name().eq_ignore_ascii_case("postgresql") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        })
    }

    /// The database this statement is for.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The statement's text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// How many values it binds.
    pub fn len(&self) -> usize {
        self.binds.len()
    }

    /// Whether it binds no value.
    pub fn is_empty(&self) -> bool {
        self.binds.is_empty()
    }

    /// The statement ready to run, its values bound.
    pub fn query(&self) -> Query<'_, sqlx::Any, AnyArguments<'_>> {
        self.query_with(&self.text)
    }

    /// `text` with this statement's values bound: for a statement assembled
    /// elsewhere around the placeholders [`Sql::param`] returned, in their order.
    pub fn query_with<'q>(&'q self, text: &'q str) -> Query<'q, sqlx::Any, AnyArguments<'q>> {
        let mut q = sqlx::query(text);
        for b in &self.binds {
            q = match b {
                Bind::Int(i) => q.bind(*i),
                Bind::Text(t) => q.bind(t.as_deref()),
            };
        }
        q
    }
}
