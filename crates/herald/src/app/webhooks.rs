//! Webhook endpoints of an account (issue 14, R-HOOK-1): registered with the
//! event kinds they want, their URL checked against the SSRF guard, their
//! signing secret made here and shown once at creation and at each rotation.

use super::{Error, Result};
use crate::service::Herald;
use crate::webhooks::check_url;
use herald_eventlog::{EventKind, WebhookAttempt, WebhookEndpoint};
use serde::Serialize;

/// An endpoint as the API shows it: never its secrets.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Webhook {
    /// Its number.
    pub id: i64,
    /// Where deliveries go.
    pub url: String,
    /// The event kinds it gets; empty: every kind.
    pub kinds: Vec<String>,
    /// Whether deliveries go out.
    pub enabled: bool,
    /// Why it was disabled (`410 Gone`, failing for days).
    pub disabled_reason: Option<String>,
    /// Failing since, when the last attempts failed.
    pub failing_since: Option<chrono::DateTime<chrono::Utc>>,
    /// Until when the previous secret also signs (a rotation in progress).
    pub previous_secret_until: Option<chrono::DateTime<chrono::Utc>>,
    /// Batches sent so far (the last batch's `herald-sequence`).
    pub sequence: i64,
    /// Deliveries still owed to it.
    pub backlog: u64,
    /// Created.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// An endpoint with its new secret: what creation and rotation answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WebhookWithSecret {
    /// The endpoint.
    #[serde(flatten)]
    pub webhook: Webhook,
    /// The signing secret (`whsec_…`), shown this once.
    pub secret: String,
}

async fn view(h: &Herald, w: WebhookEndpoint) -> Result<Webhook> {
    let backlog = h
        .events
        .webhook_backlog(w.id)
        .await
        .map_err(crate::Error::from)?;
    let now = h.clock.now();
    Ok(Webhook {
        id: w.id,
        url: w.url,
        kinds: w.kinds.iter().map(|k| k.as_str().to_owned()).collect(),
        enabled: w.enabled,
        disabled_reason: w.disabled_reason,
        failing_since: w.failing_since,
        previous_secret_until: w.previous_until.filter(|t| *t > now),
        sequence: w.sequence,
        backlog,
        created_at: w.created_at,
    })
}

fn kinds(field: &str, names: &[String]) -> Result<Vec<EventKind>> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            EventKind::parse(n).ok_or_else(|| {
                Error::invalid(
                    format!("{field}[{i}]"),
                    format!(
                        "`{n}` is not an event kind (processed, delivered, open, click, soft_bounce, hard_bounce, blocked, spam_complaint, unsubscribe, failed, …)"
                    ),
                )
            })
        })
        .collect()
}

async fn checked_url(h: &Herald, url: &str) -> Result<String> {
    if url.len() > 2_000 {
        return Err(Error::invalid("url", "at most 2,000 characters"));
    }
    let (u, _) = check_url(url, &h.config.webhooks)
        .await
        .map_err(|e| Error::invalid("url", e.0))?;
    Ok(u.to_string())
}

/// Endpoint `id` of `account` as stored; not found when it is another account's.
async fn endpoint(h: &Herald, account: u64, id: i64) -> Result<WebhookEndpoint> {
    h.events
        .webhook(account, id)
        .await
        .map_err(crate::Error::from)?
        .ok_or(Error::NotFound { what: "webhook" })
}

fn secret() -> Result<String> {
    crate::webhooks::new_secret().map_err(|e| Error::Unavailable(e.to_string()))
}

/// Registers an endpoint for `account`.
pub async fn create(
    h: &Herald,
    account: u64,
    url: &str,
    event_kinds: &[String],
) -> Result<WebhookWithSecret> {
    let url = checked_url(h, url).await?;
    let kinds = kinds("kinds", event_kinds)?;
    let secret = secret()?;
    let w = h
        .events
        .create_webhook(account, &url, &kinds, &secret, h.clock.now())
        .await
        .map_err(crate::Error::from)?;
    Ok(WebhookWithSecret {
        webhook: view(h, w).await?,
        secret,
    })
}

/// The endpoints of `account`.
pub async fn list(h: &Herald, account: u64) -> Result<Vec<Webhook>> {
    let mut out = Vec::new();
    for w in h
        .events
        .webhooks(account)
        .await
        .map_err(crate::Error::from)?
    {
        out.push(view(h, w).await?);
    }
    Ok(out)
}

/// Endpoint `id` of `account`.
pub async fn get(h: &Herald, account: u64, id: i64) -> Result<Webhook> {
    let w = endpoint(h, account, id).await?;
    view(h, w).await
}

/// Changes endpoint `id`: URL, kinds, enabled (enabling again clears the reason it was disabled).
pub async fn update(
    h: &Herald,
    account: u64,
    id: i64,
    url: Option<&str>,
    event_kinds: Option<&[String]>,
    enabled: Option<bool>,
) -> Result<Webhook> {
    let url = match url {
        Some(u) => Some(checked_url(h, u).await?),
        None => None,
    };
    let kinds = event_kinds.map(|k| kinds("kinds", k)).transpose()?;
    let w = h
        .events
        .update_webhook(
            account,
            id,
            url.as_deref(),
            kinds.as_deref(),
            enabled,
            h.clock.now(),
        )
        .await
        .map_err(crate::Error::from)?
        .ok_or(Error::NotFound { what: "webhook" })?;
    view(h, w).await
}

/// Deletes endpoint `id` with what it is still owed and its log.
pub async fn delete(h: &Herald, account: u64, id: i64) -> Result<()> {
    if h.events
        .delete_webhook(account, id)
        .await
        .map_err(crate::Error::from)?
    {
        Ok(())
    } else {
        Err(Error::NotFound { what: "webhook" })
    }
}

/// A new secret for endpoint `id`; the old one also signs for
/// `webhooks.rotation_hours`, so the receiver can switch without a gap.
pub async fn rotate(h: &Herald, account: u64, id: i64) -> Result<WebhookWithSecret> {
    let secret = secret()?;
    let now = h.clock.now();
    let until = now + chrono::Duration::hours(h.config.webhooks.rotation_hours.max(0));
    let w = h
        .events
        .rotate_webhook_secret(account, id, &secret, until, now)
        .await
        .map_err(crate::Error::from)?
        .ok_or(Error::NotFound { what: "webhook" })?;
    Ok(WebhookWithSecret {
        webhook: view(h, w).await?,
        secret,
    })
}

/// The delivery log of endpoint `id`, newest first (the last 100 attempts).
pub async fn log(h: &Herald, account: u64, id: i64) -> Result<Vec<WebhookAttempt>> {
    get(h, account, id).await?;
    Ok(h.events
        .webhook_log(account, id, 100)
        .await
        .map_err(crate::Error::from)?)
}

/// Owes endpoint `id` a test event of type `webhook.test` (it goes out with
/// the next round, signed like any other). Returns the event's id.
pub async fn send_test(h: &Herald, account: u64, id: i64) -> Result<String> {
    let w = endpoint(h, account, id).await?;
    let now = h.clock.now();
    let event_id = format!("evt_test_{}_{}", w.id, now.timestamp_millis());
    let payload = serde_json::json!({
        "id": event_id,
        "type": "webhook.test",
        "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": {"account": account, "endpoint": w.id},
    })
    .to_string();
    h.events
        .owe_webhook_event(w.id, &event_id, &payload, now)
        .await
        .map_err(crate::Error::from)?;
    Ok(event_id)
}

/// Owes endpoint `id` again every event of the log in `[from, to)` it wants
/// (those retention has not pruned), with their own ids. Returns how many.
pub async fn replay(
    h: &Herald,
    account: u64,
    id: i64,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> Result<u64> {
    if to <= from {
        return Err(Error::invalid("to", "must be after `from`"));
    }
    let w = endpoint(h, account, id).await?;
    Ok(h.events
        .replay_webhook(account, &w, from, to, h.clock.now())
        .await
        .map_err(crate::Error::from)?)
}

/// Delivers again what attempt `attempt` of endpoint `id` of `account` carried
/// (a line of its delivery log, by its `id`): the same events, with their own
/// ids, as the log still keeps them. Returns how many were queued.
pub async fn replay_attempt(h: &Herald, account: u64, id: i64, attempt: i64) -> Result<u64> {
    let w = endpoint(h, account, id).await?;
    h.events
        .replay_webhook_attempt(account, &w, attempt, h.clock.now())
        .await
        .map_err(crate::Error::from)?
        .ok_or(Error::NotFound {
            what: "webhook attempt",
        })
}
