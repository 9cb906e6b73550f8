//! The operator's view of the receiving sites (issue 13): their limits,
//! back-off state and recent replies, as every worker shares them.

use crate::service::{Error, Herald};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// One reply that acted on a site.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SiteReplyView {
    /// When.
    pub at: DateTime<Utc>,
    /// The SMTP reply code (none for a connection failure).
    pub code: Option<u16>,
    /// The reply text or the connection error.
    pub text: String,
    /// What was done (the rule and its action).
    pub action: String,
}

/// A receiving site as workers see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SiteView {
    /// The site's name: the provider's, or its MX host names.
    pub name: String,
    /// The provider table's entry it matched.
    pub provider: Option<String>,
    /// Its MX host names.
    pub hosts: Vec<String>,
    /// The recipient domains known to belong to it.
    pub domains: Vec<String>,
    /// `active`, `suspended` or `slowed`.
    pub state: String,
    /// Until when it is suspended.
    pub suspended_until: Option<DateTime<Utc>>,
    /// Until when it is slowed.
    pub slowed_until: Option<DateTime<Utc>>,
    /// How much slower while slowed.
    pub slow_factor: u32,
    /// Why it is suspended or slowed.
    pub reason: Option<String>,
    /// Messages per second it is allowed (shared by all workers), if limited.
    pub rate_per_second: Option<f64>,
    /// Connections per worker.
    pub max_connections: u32,
    /// Connection failures in a row.
    pub failures: u32,
    /// The last replies that acted on it, newest last.
    pub recent: Vec<SiteReplyView>,
}

/// Every recorded site, by name.
pub async fn list(h: &Herald) -> Result<Vec<SiteView>, Error> {
    let now = h.clock.now();
    Ok(h.outbox
        .sites()
        .list()
        .await?
        .into_iter()
        .map(|s| {
            let state = if s.suspended(now) {
                "suspended"
            } else if s.slowed_until.is_some_and(|t| t > now) {
                "slowed"
            } else {
                "active"
            };
            SiteView {
                state: state.to_owned(),
                rate_per_second: s.limits.rate.map(|g| 1_000_000.0 / g.interval as f64),
                max_connections: s.limits.max_connections,
                name: s.name,
                provider: s.provider,
                hosts: s.hosts,
                domains: s.domains,
                suspended_until: s.suspended_until,
                slowed_until: s.slowed_until,
                slow_factor: s.slow_factor,
                reason: s.reason,
                failures: s.failures,
                recent: s
                    .recent
                    .into_iter()
                    .map(|r| SiteReplyView {
                        at: r.at,
                        code: r.code,
                        text: r.text,
                        action: r.action,
                    })
                    .collect(),
            }
        })
        .collect())
}
