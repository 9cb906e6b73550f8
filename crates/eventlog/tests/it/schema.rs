//! The SQLite and PostgreSQL migrations are kept by hand, one folder each:
//! this migrates a fresh database of each kind (the outbox's and the event
//! log's migrations, as the service runs them) and compares what they built —
//! tables, columns with their type class and nullability, primary keys, and
//! every index with its columns, uniqueness and partiality.

use crate::db::{Kind, TestDb};
use herald_eventlog::EventLog;
use herald_schedule::{Backend, Outbox, SendingRules};
use sqlx::{AnyPool, Row};
use std::collections::BTreeSet;

/// One fact about a schema, comparable across the two dialects.
type Fact = String;

/// The type class both dialects agree on (SQLite's affinity rules, §3.1 of
/// its datatype document; PostgreSQL's types mapped onto them).
fn class(declared: &str) -> &'static str {
    let t = declared.to_ascii_lowercase();
    if t.contains("int") {
        "integer"
    } else if t.contains("char") || t.contains("clob") || t.contains("text") {
        "text"
    } else if t.contains("real") || t.contains("floa") || t.contains("doub") {
        "real"
    } else if t.is_empty() || t.contains("blob") || t == "bytea" {
        "blob"
    } else if t == "boolean" {
        "boolean"
    } else {
        "numeric"
    }
}

async fn sqlite_facts(pool: &AnyPool) -> BTreeSet<Fact> {
    let mut facts = BTreeSet::new();
    let tables: Vec<String> = sqlx::query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get::<String, _>(0))
    .collect();
    for t in &tables {
        facts.insert(format!("table {t}"));
        let cols = sqlx::query(
            "SELECT name, type, \"notnull\", pk FROM pragma_table_info($1) ORDER BY cid",
        )
        .bind(t.as_str())
        .fetch_all(pool)
        .await
        .unwrap();
        let mut pk = Vec::new();
        for c in &cols {
            let name: String = c.get(0);
            let ty: String = c.get(1);
            let not_null: i64 = c.get(2);
            let key: i64 = c.get(3);
            if key > 0 {
                pk.push((key, name.clone()));
            }
            let null = if not_null != 0 || key > 0 {
                "not null"
            } else {
                "null"
            };
            facts.insert(format!("column {t}.{name} {} {null}", class(&ty)));
        }
        pk.sort();
        let pk: Vec<String> = pk.into_iter().map(|(_, n)| n).collect();
        if !pk.is_empty() {
            facts.insert(format!("primary key {t}({})", pk.join(",")));
        }
        let indexes = sqlx::query(
            "SELECT il.name, il.\"unique\", il.origin, il.partial,
                    (SELECT group_concat(COALESCE(ii.name, '<expr>'), ',') FROM (SELECT * FROM pragma_index_xinfo(il.name) WHERE key = 1 ORDER BY seqno) ii)
             FROM pragma_index_list($1) il ORDER BY il.name",
        )
        .bind(t.as_str())
        .fetch_all(pool)
        .await
        .unwrap();
        for i in &indexes {
            let name: String = i.get(0);
            let unique: i64 = i.get(1);
            let origin: String = i.get(2);
            let partial: i64 = i.get(3);
            let cols: String = i.get(4);
            if origin == "pk" {
                continue; // the primary key, compared above
            }
            facts.insert(index_fact(
                t,
                (origin == "c").then_some(name.as_str()),
                &cols,
                unique != 0,
                partial != 0,
            ));
        }
    }
    facts
}

fn index_fact(table: &str, name: Option<&str>, cols: &str, unique: bool, partial: bool) -> Fact {
    format!(
        "{}index {} on {table}({cols}){}",
        if unique { "unique " } else { "" },
        // Indexes a UNIQUE constraint makes are named by each database its own way.
        name.unwrap_or("(of a constraint)"),
        if partial { " where …" } else { "" }
    )
}

async fn postgres_facts(pool: &AnyPool) -> BTreeSet<Fact> {
    let mut facts = BTreeSet::new();
    let cols = sqlx::query(
        "SELECT c.table_name::text, c.column_name::text, c.data_type::text, c.is_nullable::text
         FROM information_schema.columns c JOIN information_schema.tables t
           ON t.table_schema = c.table_schema AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE'
         WHERE c.table_schema = 'public' AND c.table_name <> '_sqlx_migrations'
         ORDER BY c.table_name, c.ordinal_position",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for c in &cols {
        let (t, name, ty, nullable): (String, String, String, String) =
            (c.get(0), c.get(1), c.get(2), c.get(3));
        facts.insert(format!("table {t}"));
        let null = if nullable == "NO" { "not null" } else { "null" };
        facts.insert(format!("column {t}.{name} {} {null}", class(&ty)));
    }
    let indexes = sqlx::query(
        "SELECT t.relname::text, i.relname::text,
                (CASE WHEN ix.indisunique THEN 1 ELSE 0 END)::bigint,
                (CASE WHEN ix.indisprimary THEN 1 ELSE 0 END)::bigint,
                (CASE WHEN ix.indpred IS NOT NULL THEN 1 ELSE 0 END)::bigint,
                (CASE WHEN EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.oid) THEN 1 ELSE 0 END)::bigint,
                (SELECT string_agg(COALESCE(a.attname::text, '<expr>'), ',' ORDER BY k.ord)
                   FROM unnest(ix.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
                   LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
                   WHERE k.ord <= ix.indnkeyatts)
         FROM pg_index ix
         JOIN pg_class i ON i.oid = ix.indexrelid
         JOIN pg_class t ON t.oid = ix.indrelid
         JOIN pg_namespace n ON n.oid = t.relnamespace
         WHERE n.nspname = 'public' AND t.relname <> '_sqlx_migrations'
         ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for i in &indexes {
        let t: String = i.get(0);
        let name: String = i.get(1);
        let unique: i64 = i.get(2);
        let primary: i64 = i.get(3);
        let partial: i64 = i.get(4);
        let constraint: i64 = i.get(5);
        let cols: String = i.get(6);
        if primary != 0 {
            facts.insert(format!("primary key {t}({cols})"));
            continue;
        }
        facts.insert(index_fact(
            &t,
            (constraint == 0).then_some(name.as_str()),
            &cols,
            unique != 0,
            partial != 0,
        ));
    }
    facts
}

async fn migrated(kind: Kind) -> (TestDb, Outbox) {
    let db = TestDb::new(kind).await;
    let outbox = db.outbox(SendingRules::default()).await;
    let log = EventLog::new(outbox.pool().clone(), outbox.backend(), 50_000);
    log.migrate().await.unwrap();
    (db, outbox)
}

#[tokio::test]
async fn sqlite_and_postgresql_migrations_build_the_same_schema() {
    let (_s, sqlite) = migrated(Kind::Sqlite).await;
    let (_p, postgres) = migrated(Kind::Postgres).await;
    assert_eq!(sqlite.backend(), Backend::Sqlite);
    assert_eq!(postgres.backend(), Backend::Postgres);
    let s = sqlite_facts(sqlite.pool()).await;
    let p = postgres_facts(postgres.pool()).await;
    assert!(
        s.iter().filter(|f| f.starts_with("table ")).count() >= 10,
        "the introspection found the tables: {s:#?}"
    );
    let only_sqlite: Vec<_> = s.difference(&p).collect();
    let only_postgres: Vec<_> = p.difference(&s).collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "the schemas differ\nonly on SQLite: {only_sqlite:#?}\nonly on PostgreSQL: {only_postgres:#?}"
    );
    // The comparison sees a difference of one index or one column's nullability.
    sqlx::query("CREATE INDEX herald_only_here ON herald_events (kind)")
        .execute(postgres.pool())
        .await
        .unwrap();
    sqlx::query("ALTER TABLE herald_sends ALTER COLUMN user_name SET NOT NULL")
        .execute(postgres.pool())
        .await
        .unwrap();
    let changed = postgres_facts(postgres.pool()).await;
    let differs: Vec<_> = changed.symmetric_difference(&s).collect();
    assert_eq!(
        differs,
        vec![
            "column herald_sends.user_name text not null",
            "column herald_sends.user_name text null",
            "index herald_only_here on herald_events(kind)",
        ],
        "what the comparison reports"
    );
}
