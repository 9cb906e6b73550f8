//! Receiving sites (issue 13): the MX hosts that some recipient domains share,
//! their limits, and the back-off state every worker sees, stored beside the
//! outbox so that all workers on one database share it.
//!
//! A site is written by the worker that resolves one of its domains
//! ([`Sites::record`]); a claim passes over recipients of a suspended site and
//! draws on the site's rate (see [`crate::Outbox::claim_batch`]).

use crate::outbox::{from_millis, millis};
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{AnyPool, Row};

/// How many replies a site keeps in [`SiteState::recent`].
pub const RECENT_REPLIES: usize = 10;

/// A site's limits as workers apply them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteLimits {
    /// Microseconds between messages and the burst (the shared rate), if any.
    pub rate: Option<crate::Gcra>,
    /// Connections open to it at once, per worker.
    pub max_connections: u32,
}

/// One reply (or connection failure) that acted on a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteReply {
    /// When.
    pub at: DateTime<Utc>,
    /// The SMTP reply code, when there was a reply.
    pub code: Option<u16>,
    /// The reply's text, or the connection error.
    pub text: String,
    /// What was done: the rule's name and its action.
    pub action: String,
}

/// A site as stored: its limits and its back-off state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteState {
    /// The site's name (the provider's, or its MX host names).
    pub name: String,
    /// The provider table's entry it matched, if any.
    pub provider: Option<String>,
    /// Its MX host names, most preferred first.
    pub hosts: Vec<String>,
    /// Its limits.
    pub limits: SiteLimits,
    /// Nothing for it is claimed before this time.
    pub suspended_until: Option<DateTime<Utc>>,
    /// Its rate is divided by `slow_factor` until this time.
    pub slowed_until: Option<DateTime<Utc>>,
    /// How much slower it goes while slowed.
    pub slow_factor: u32,
    /// Why it is suspended or slowed.
    pub reason: Option<String>,
    /// Connection failures in a row.
    pub failures: u32,
    /// The last replies that acted on it, newest last.
    pub recent: Vec<SiteReply>,
    /// The domains known to belong to it.
    pub domains: Vec<String>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl SiteState {
    /// Whether it is suspended at `now`.
    pub fn suspended(&self, now: DateTime<Utc>) -> bool {
        self.suspended_until.is_some_and(|t| t > now)
    }
}

/// A back-off action on a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteAction {
    /// Claim nothing for it until `until`.
    Suspend {
        /// Until when.
        until: DateTime<Utc>,
    },
    /// Divide its rate by `factor` until `until`.
    Slow {
        /// By how much.
        factor: u32,
        /// Until when.
        until: DateTime<Utc>,
    },
}

/// A site as a worker resolved it: what [`Sites::record`] stores.
#[derive(Debug, Clone, Copy)]
pub struct NewSite<'a> {
    /// The site's name.
    pub name: &'a str,
    /// The provider it matched.
    pub provider: Option<&'a str>,
    /// Its MX host names.
    pub hosts: &'a [String],
    /// Its limits.
    pub limits: &'a SiteLimits,
}

/// The sites on the outbox's database.
#[derive(Debug, Clone)]
pub struct Sites {
    pool: AnyPool,
    writer: AnyPool,
}

fn state_from_row(row: &sqlx::any::AnyRow) -> Result<SiteState> {
    let hosts: String = row.try_get("hosts")?;
    let recent: String = row.try_get("recent")?;
    let interval: Option<i64> = row.try_get("rate_interval")?;
    let burst: i64 = row.try_get("rate_burst")?;
    let max: i64 = row.try_get("max_connections")?;
    let factor: i64 = row.try_get("slow_factor")?;
    let failures: i64 = row.try_get("failures")?;
    Ok(SiteState {
        name: row.try_get("name")?,
        provider: row.try_get("provider")?,
        hosts: serde_json::from_str(&hosts)?,
        limits: SiteLimits {
            rate: interval.map(|i| crate::Gcra::new(i, burst)),
            max_connections: u32::try_from(max)
                .map_err(|_| Error::Corrupt(format!("max_connections {max}")))?,
        },
        suspended_until: row
            .try_get::<Option<i64>, _>("suspended_until")?
            .map(from_millis),
        slowed_until: row
            .try_get::<Option<i64>, _>("slowed_until")?
            .map(from_millis),
        slow_factor: u32::try_from(factor).unwrap_or(1),
        reason: row.try_get("state_reason")?,
        failures: u32::try_from(failures).unwrap_or(0),
        recent: serde_json::from_str(&recent)?,
        domains: Vec::new(),
        updated_at: from_millis(row.try_get("updated_at")?),
    })
}

const COLUMNS: &str = "name, provider, hosts, rate_interval, rate_burst, max_connections, suspended_until, slowed_until, slow_factor, state_reason, failures, recent, updated_at";

impl Sites {
    pub(crate) fn new(pool: AnyPool, writer: AnyPool) -> Self {
        Sites { pool, writer }
    }

    /// Records that `domain` belongs to site `name` (until `expires_at`, its
    /// MX records' TTL) and the site's hosts and limits; its back-off state is
    /// kept.
    pub async fn record(
        &self,
        domain: &str,
        site: &NewSite<'_>,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let NewSite {
            name,
            provider,
            hosts,
            limits,
        } = *site;
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO herald_sites (name, provider, hosts, rate_interval, rate_burst, max_connections, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (name) DO UPDATE SET provider = $2, hosts = $3, rate_interval = $4, rate_burst = $5, max_connections = $6",
        )
        .bind(name)
        .bind(provider)
        .bind(serde_json::to_string(hosts)?)
        .bind(limits.rate.map(|g| g.interval))
        .bind(limits.rate.map_or(1, |g| g.tolerance / g.interval + 1))
        .bind(i64::from(limits.max_connections))
        .bind(millis(now))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO herald_site_domains (domain, site, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (domain) DO UPDATE SET site = $2, expires_at = $3",
        )
        .bind(domain)
        .bind(name)
        .bind(millis(expires_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Applies a back-off `action` to site `name` because of `reply`: a
    /// suspension or a slow-down only ever lengthens one already running.
    pub async fn act(
        &self,
        name: &str,
        action: SiteAction,
        reply: SiteReply,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        let recent: Option<String> =
            sqlx::query_scalar("SELECT recent FROM herald_sites WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(recent) = recent else {
            return Err(Error::Invalid {
                field: "site",
                rule: format!("no site `{name}` is recorded"),
            });
        };
        let mut recent: Vec<SiteReply> = serde_json::from_str(&recent)?;
        let reason = reply.action.clone();
        recent.push(reply);
        if recent.len() > RECENT_REPLIES {
            recent.drain(..recent.len() - RECENT_REPLIES);
        }
        let recent = serde_json::to_string(&recent)?;
        match action {
            SiteAction::Suspend { until } => {
                sqlx::query(
                    "UPDATE herald_sites SET suspended_until = CASE WHEN suspended_until > $1 THEN suspended_until ELSE $1 END,
                        state_reason = $2, recent = $3, updated_at = $4 WHERE name = $5",
                )
                .bind(millis(until))
                .bind(reason)
                .bind(recent)
                .bind(millis(now))
                .bind(name)
                .execute(&mut *tx)
                .await?;
            }
            SiteAction::Slow { factor, until } => {
                sqlx::query(
                    "UPDATE herald_sites SET slowed_until = CASE WHEN slowed_until > $1 THEN slowed_until ELSE $1 END,
                        slow_factor = CASE WHEN slowed_until > $4 AND slow_factor > $2 THEN slow_factor ELSE $2 END,
                        state_reason = $3, recent = $5, updated_at = $4 WHERE name = $6",
                )
                .bind(millis(until))
                .bind(i64::from(factor.max(1)))
                .bind(reason)
                .bind(millis(now))
                .bind(recent)
                .bind(name)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Counts a failed connection to site `name`; returns the failures in a row.
    pub async fn connection_failed(&self, name: &str, now: DateTime<Utc>) -> Result<u32> {
        let n: Option<i64> = sqlx::query_scalar(
            "UPDATE herald_sites SET failures = failures + 1, updated_at = $1 WHERE name = $2 RETURNING failures",
        )
        .bind(millis(now))
        .bind(name)
        .fetch_optional(&self.writer)
        .await?;
        Ok(n.and_then(|n| u32::try_from(n).ok()).unwrap_or(0))
    }

    /// Clears site `name`'s count of failed connections (a connection worked).
    pub async fn connection_worked(&self, name: &str) -> Result<()> {
        sqlx::query("UPDATE herald_sites SET failures = 0 WHERE name = $1 AND failures > 0")
            .bind(name)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Every site, by name, with its known domains.
    pub async fn list(&self) -> Result<Vec<SiteState>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM herald_sites ORDER BY name"))
            .fetch_all(&self.pool)
            .await?;
        let mut sites = rows
            .iter()
            .map(state_from_row)
            .collect::<Result<Vec<_>>>()?;
        let domains = sqlx::query("SELECT domain, site FROM herald_site_domains ORDER BY domain")
            .fetch_all(&self.pool)
            .await?;
        for row in &domains {
            let domain: String = row.try_get("domain")?;
            let site: String = row.try_get("site")?;
            if let Some(s) = sites.iter_mut().find(|s| s.name == site) {
                s.domains.push(domain);
            }
        }
        Ok(sites)
    }

    /// Site `name`, if recorded.
    pub async fn get(&self, name: &str) -> Result<Option<SiteState>> {
        Ok(self.list().await?.into_iter().find(|s| s.name == name))
    }
}
