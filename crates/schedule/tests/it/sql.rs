//! Placeholders mean the same on SQLite and PostgreSQL (see `herald_schedule::sql`).

use crate::both;
use crate::db::TestDb;
use herald_schedule::SendingRules;
use herald_schedule::sql::Sql;
use sqlx::Row;

both!(
    numbered_placeholders_bind_by_number_on_both,
    |db: TestDb| async move {
        let outbox = db.outbox(SendingRules::default()).await;
        // Used twice and out of order: argument N goes to every `$N`.
        let row = sqlx::query("SELECT $2 || $1 || $2, $3 + $3")
            .bind("a")
            .bind("b")
            .bind(20_i64)
            .fetch_one(outbox.pool())
            .await
            .unwrap();
        assert_eq!(row.get::<String, _>(0), "bab");
        assert_eq!(row.get::<i64, _>(1), 40);
    }
);

both!(
    built_statements_bind_in_order_on_both,
    |db: TestDb| async move {
        let outbox = db.outbox(SendingRules::default()).await;
        let mut sql = Sql::new(outbox.backend());
        sql.push("SELECT CASE WHEN ")
            .bind(777_i64)
            .push(" IN ")
            .bind_list(0..1000_i64)
            .push(" THEN 'in' ELSE 'out' END, COALESCE(")
            .bind(None::<String>)
            .push(", 'none'), ")
            .bind("last");
        assert_eq!(sql.len(), 1003);
        let row = sql.query().fetch_one(outbox.pool()).await.unwrap();
        assert_eq!(row.get::<String, _>(0), "in");
        assert_eq!(row.get::<String, _>(1), "none");
        assert_eq!(row.get::<String, _>(2), "last");
    }
);
