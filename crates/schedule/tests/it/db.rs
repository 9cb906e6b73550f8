//! Fresh test databases.

use herald_schedule::{Outbox, SendingRules};
use sqlx::{Connection, Executor};
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}_{}_{n}_{nanos}", std::process::id())
}

pub enum Kind {
    Sqlite,
    Postgres,
}

pub struct TestDb {
    pub url: String,
    cleanup: Option<(String, String)>,
}

pub fn postgres_admin_url() -> String {
    std::env::var("HERALD_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

impl TestDb {
    pub async fn new(kind: Kind) -> Self {
        sqlx::any::install_default_drivers();
        match kind {
            Kind::Sqlite => {
                let path = std::env::temp_dir().join(format!("{}.db", unique("herald_test")));
                TestDb {
                    url: format!("sqlite://{}?mode=rwc", path.display()),
                    cleanup: None,
                }
            }
            Kind::Postgres => {
                let admin = postgres_admin_url();
                let name = unique("herald_test");
                let mut conn = sqlx::AnyConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("PostgreSQL at {admin} is needed (bash .ci/run starts it): {e}")
                    });
                conn.execute(format!("CREATE DATABASE {name}").as_str())
                    .await
                    .unwrap();
                let base = admin.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap();
                TestDb {
                    url: format!("{base}/{name}"),
                    cleanup: Some((admin, name)),
                }
            }
        }
    }

    pub async fn outbox(&self, rules: SendingRules) -> Outbox {
        let outbox = Outbox::connect(&self.url, 5, rules).await.unwrap();
        outbox.migrate().await.unwrap();
        outbox
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.cleanup.take() {
            // Best effort, on a thread of its own: Drop cannot await.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                if let Ok(rt) = rt {
                    rt.block_on(async {
                        if let Ok(mut c) = sqlx::AnyConnection::connect(&admin).await {
                            let _ = c
                                .execute(
                                    format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str(),
                                )
                                .await;
                        }
                    });
                }
            })
            .join();
        } else if let Some(path) = self
            .url
            .strip_prefix("sqlite://")
            .and_then(|p| p.split('?').next())
        {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{path}{suffix}"));
            }
        }
    }
}

/// Runs an async test body on both backends: `both!(name, |db| async move { … })`.
#[macro_export]
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test]
            async fn sqlite() {
                let db = $crate::db::TestDb::new($crate::db::Kind::Sqlite).await;
                ($body)(db).await;
            }
            #[tokio::test]
            async fn postgres() {
                let db = $crate::db::TestDb::new($crate::db::Kind::Postgres).await;
                ($body)(db).await;
            }
        }
    };
}
