//! Dashboard sign-in links and sessions (R-UI-1), on the outbox's database.
//!
//! A CRM asks for a one-time link for one of its users; opening it starts a
//! session. Both are stored by the digest of their secret, which the caller
//! computes (the facade uses SHA-256), never by the secret itself: a copy of
//! the database opens no dashboard. A link is redeemed at most once, by one
//! conditional `UPDATE` (two racing requests cannot both win); a session
//! ends when it is idle longer than the caller's limit, when it is signed out,
//! or when its account is deleted.

use crate::Result;
use crate::outbox::{account_i64, from_millis, millis};
use chrono::{DateTime, Duration, Utc};
use sqlx::{AnyPool, Row};

/// Who a sign-in link or a session is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardUser {
    /// The account.
    pub account: u64,
    /// The CRM user's name, as the CRM gave it.
    pub user: String,
    /// The language the pages are shown in (a code the caller checked).
    pub language: String,
}

/// A live dashboard session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Whose it is.
    pub user: DashboardUser,
    /// The token every state-changing request of this session must carry.
    pub csrf: String,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When it was last used.
    pub last_seen: DateTime<Utc>,
}

/// Sign-in links and sessions on one database.
#[derive(Debug, Clone)]
pub struct Sessions {
    pool: AnyPool,
    writer: AnyPool,
}

/// A session is touched at most once a minute: reads stay reads.
const TOUCH_EVERY_MS: i64 = 60_000;

impl Sessions {
    /// The store on `pool` (reads) and `writer` (writes); the tables come with
    /// [`crate::Outbox::migrate`]. [`crate::Outbox::sessions`] makes one on the
    /// outbox's pools.
    pub fn new(pool: AnyPool, writer: AnyPool) -> Self {
        Sessions { pool, writer }
    }

    /// Stores a sign-in link for `user` by its `digest`, valid until `expires_at`.
    pub async fn add_link(
        &self,
        digest: &str,
        user: &DashboardUser,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query("INSERT INTO herald_dashboard_links (hash, account, user_name, language, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(digest)
            .bind(account_i64(user.account)?)
            .bind(user.user.as_str())
            .bind(user.language.as_str())
            .bind(millis(expires_at))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Redeems the link with `digest` at `now`: who it is for, once; `None`
    /// when it is unknown, expired or already used.
    pub async fn redeem_link(
        &self,
        digest: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<DashboardUser>> {
        // fetch_all: SQLite finishes an UPDATE … RETURNING only when stepped to its end.
        let rows = sqlx::query("UPDATE herald_dashboard_links SET used_at = $1 WHERE hash = $2 AND used_at IS NULL AND expires_at > $1 RETURNING account, user_name, language")
            .bind(millis(now))
            .bind(digest)
            .fetch_all(&self.writer)
            .await?;
        rows.first()
            .map(|r| {
                Ok(DashboardUser {
                    account: crate::outbox::account_u64(r.try_get(0)?)?,
                    user: r.try_get(1)?,
                    language: r.try_get(2)?,
                })
            })
            .transpose()
    }

    /// Starts a session for `user` under `digest` with its `csrf` token.
    pub async fn start(
        &self,
        digest: &str,
        user: &DashboardUser,
        csrf: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query("INSERT INTO herald_dashboard_sessions (hash, account, user_name, language, csrf, created_at, last_seen) VALUES ($1, $2, $3, $4, $5, $6, $6)")
            .bind(digest)
            .bind(account_i64(user.account)?)
            .bind(user.user.as_str())
            .bind(user.language.as_str())
            .bind(csrf)
            .bind(millis(now))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// The session with `digest` if it was used within `idle` of `now`; marks
    /// it used (at most once a minute). An idle session is ended here.
    pub async fn session(
        &self,
        digest: &str,
        now: DateTime<Utc>,
        idle: Duration,
    ) -> Result<Option<Session>> {
        let row = sqlx::query("SELECT account, user_name, language, csrf, created_at, last_seen FROM herald_dashboard_sessions WHERE hash = $1")
            .bind(digest)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let last_seen: i64 = row.try_get(5)?;
        let now_ms = millis(now);
        if now_ms - last_seen > idle.num_milliseconds() {
            self.end(digest).await?;
            return Ok(None);
        }
        if now_ms - last_seen >= TOUCH_EVERY_MS {
            sqlx::query("UPDATE herald_dashboard_sessions SET last_seen = $1 WHERE hash = $2")
                .bind(now_ms)
                .bind(digest)
                .execute(&self.writer)
                .await?;
        }
        Ok(Some(Session {
            user: DashboardUser {
                account: crate::outbox::account_u64(row.try_get(0)?)?,
                user: row.try_get(1)?,
                language: row.try_get(2)?,
            },
            csrf: row.try_get(3)?,
            created_at: from_millis(row.try_get(4)?),
            last_seen: from_millis(now_ms.max(last_seen)),
        }))
    }

    /// Shows the session with `digest` in `language` from now on.
    pub async fn set_language(&self, digest: &str, language: &str) -> Result<()> {
        sqlx::query("UPDATE herald_dashboard_sessions SET language = $1 WHERE hash = $2")
            .bind(language)
            .bind(digest)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Ends the session with `digest` (sign-out); whether there was one.
    pub async fn end(&self, digest: &str) -> Result<bool> {
        Ok(
            sqlx::query("DELETE FROM herald_dashboard_sessions WHERE hash = $1")
                .bind(digest)
                .execute(&self.writer)
                .await?
                .rows_affected()
                > 0,
        )
    }

    /// Ends every session of `account` (its plan lost the dashboard); how many.
    pub async fn end_all(&self, account: u64) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM herald_dashboard_sessions WHERE account = $1")
                .bind(account_i64(account)?)
                .execute(&self.writer)
                .await?
                .rows_affected(),
        )
    }

    /// Deletes links that expired or were used and sessions idle longer than
    /// `idle` at `now`; how many rows went.
    pub async fn prune(&self, now: DateTime<Utc>, idle: Duration) -> Result<u64> {
        let now_ms = millis(now);
        let links = sqlx::query(
            "DELETE FROM herald_dashboard_links WHERE expires_at <= $1 OR used_at IS NOT NULL",
        )
        .bind(now_ms)
        .execute(&self.writer)
        .await?
        .rows_affected();
        let sessions = sqlx::query("DELETE FROM herald_dashboard_sessions WHERE last_seen < $1")
            .bind(now_ms - idle.num_milliseconds())
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(links + sessions)
    }
}
