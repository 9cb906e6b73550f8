//! Event webhooks to the CRM (issue 14, R-HOOK-1): the Standard Webhooks
//! signature, the SSRF guard on endpoint URLs, and the sender that delivers
//! the deliveries recorded events owe (claimed with `SKIP LOCKED`, so any
//! worker sends them and a crash loses nothing), batched per endpoint, with
//! retries and back-off.

use crate::service::Herald;
use base64::Engine as _;
use herald_eventlog::{OwedDelivery, WebhookAttempt, WebhookEndpoint};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// The `[webhooks]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Allow `http://` endpoints (development). Default false: https only.
    pub allow_http: bool,
    /// Allow endpoints that resolve to loopback, private, link-local or other
    /// non-public addresses. Default false.
    pub allow_private: bool,
    /// Events in one batch at most. Default 100.
    pub batch_max: usize,
    /// How long events gather before a batch goes, in milliseconds. Default 1000.
    pub batch_ms: u64,
    /// Seconds one delivery attempt may take. Default 10.
    pub timeout_secs: u64,
    /// Hours the previous secret keeps signing after a rotation. Default 24.
    pub rotation_hours: i64,
    /// Days of failures after which an endpoint is disabled. Default 5.
    pub disable_after_days: i64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            allow_http: false,
            allow_private: false,
            batch_max: 100,
            batch_ms: 1000,
            timeout_secs: 10,
            rotation_hours: 24,
            disable_after_days: 5,
        }
    }
}

/// A signing secret that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("webhook secret: {0}")]
pub struct SecretError(pub String);

/// A new signing secret: `whsec_` and 24 random bytes in base64.
pub fn new_secret() -> Result<String, SecretError> {
    let mut key = [0u8; 24];
    getrandom::fill(&mut key).map_err(|e| SecretError(e.to_string()))?;
    Ok(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    ))
}

/// The Standard Webhooks signature of `body` sent as message `id` at
/// `timestamp` (Unix seconds): `v1,` and the base64 HMAC-SHA256, keyed with
/// the secret's bytes, of `id.timestamp.body`.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, SecretError> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| SecretError(format!("not base64 after `whsec_`: {e}")))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|e| SecretError(e.to_string()))?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// Why an endpoint URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("url: {0}")]
pub struct UrlRefused(pub String);

/// Whether `ip` is an address on the public Internet (not loopback, private,
/// link-local, shared, documentation, multicast, unspecified, …).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10, shared
                || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0.0/24
                || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18.0.0/15, benchmarking
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] == 0x2001 && s[1] == 0x0db8)) // documentation
        }
    }
}

/// Checks an endpoint URL: https (http only when allowed), a host, no user
/// or password, and every address it resolves to public unless private ones
/// are allowed. Returns the URL and the address to connect to (so a DNS
/// answer that changes between the check and the request cannot redirect it).
pub async fn check_url(
    raw: &str,
    config: &WebhooksConfig,
) -> Result<(url::Url, SocketAddr), UrlRefused> {
    let url = url::Url::parse(raw).map_err(|e| UrlRefused(format!("`{raw}` is not a URL: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" if config.allow_http => {}
        "http" => {
            return Err(UrlRefused(
                "must be https (webhooks.allow_http allows http for development)".into(),
            ));
        }
        other => return Err(UrlRefused(format!("scheme `{other}`: must be https"))),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlRefused("must not hold a user name or password".into()));
    }
    let host = url
        .host_str()
        .ok_or_else(|| UrlRefused("must name a host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| UrlRefused("must have a port".into()))?;
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| UrlRefused(format!("`{host}` does not resolve: {e}")))?
        .collect();
    let first = *addrs
        .first()
        .ok_or_else(|| UrlRefused(format!("`{host}` has no address")))?;
    if !config.allow_private
        && let Some(bad) = addrs.iter().find(|a| !is_public(a.ip()))
    {
        return Err(UrlRefused(format!(
            "`{host}` resolves to {}, which is not a public address (webhooks.allow_private allows it)",
            bad.ip()
        )));
    }
    Ok((url, first))
}

/// The retry schedule after each failed attempt (Standard Webhooks' with two
/// more days): 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, then daily; with a
/// tenth of jitter either way.
pub fn retry_delay(attempts: u32, jitter: f64) -> Duration {
    const SCHEDULE: [u64; 7] = [5, 300, 1_800, 7_200, 18_000, 36_000, 36_000];
    let base = SCHEDULE
        .get(usize::try_from(attempts).unwrap_or(usize::MAX))
        .copied()
        .unwrap_or(86_400);
    let factor = 1.0 + (jitter.clamp(0.0, 1.0) - 0.5) / 5.0;
    Duration::from_secs_f64(base as f64 * factor)
}

/// TLS with the same provider (aws-lc-rs) and roots (webpki) as SMTP and the
/// SMS gateway, passed in rather than installed process-wide.
fn tls_config() -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        })
        .with_no_client_auth())
}

/// An error with its sources, for the delivery log.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn jitter() -> f64 {
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX)
}

/// `Retry-After` in seconds (a number of seconds; a date is read as none).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s.min(86_400)))
}

/// Sends one batch to `endpoint`; returns the attempt, when to retry (none:
/// delivered or disabled) and the reason to disable the endpoint.
async fn send_batch(
    herald: &Herald,
    tls: &Result<rustls::ClientConfig, String>,
    endpoint: &WebhookEndpoint,
    batch: &[OwedDelivery],
) -> (
    WebhookAttempt,
    Option<chrono::DateTime<chrono::Utc>>,
    Option<String>,
) {
    let config = &herald.config.webhooks;
    let now = herald.clock.now();
    let sequence = herald
        .events
        .next_webhook_sequence(endpoint.id)
        .await
        .unwrap_or(0);
    let mut body = String::from("[");
    for (i, d) in batch.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&d.payload);
    }
    body.push(']');
    let id = format!("msg_{}_{}", endpoint.id, batch.first().map_or(0, |d| d.id));
    let timestamp = now.timestamp();
    let mut attempt = WebhookAttempt {
        at: now,
        events: u32::try_from(batch.len()).unwrap_or(u32::MAX),
        status: None,
        latency_ms: 0,
        excerpt: String::new(),
        sequence,
        id: 0,
        event_ids: batch.iter().map(|d| d.event_id.clone()).collect(),
    };
    let attempts = batch.iter().map(|d| d.attempts).min().unwrap_or(0);
    let retry = |wait: Duration| {
        now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::days(1))
    };
    // Failing for days: disabled, and says so in the API.
    let failing_too_long = endpoint
        .failing_since
        .is_some_and(|t| now - t > chrono::Duration::days(config.disable_after_days.max(1)));
    let mut signatures = Vec::new();
    for secret in std::iter::once(Some(&endpoint.secret)).chain(std::iter::once(
        endpoint
            .previous_secret
            .as_ref()
            .filter(|_| endpoint.previous_until.is_some_and(|t| t > now)),
    )) {
        match secret.map(|s| sign(s, &id, timestamp, body.as_bytes())) {
            Some(Ok(sig)) => signatures.push(sig),
            Some(Err(e)) => {
                attempt.excerpt = e.to_string();
                return (attempt, None, Some(format!("its secret cannot sign: {e}")));
            }
            None => {}
        }
    }
    let (url, addr) = match check_url(&endpoint.url, config).await {
        Ok(v) => v,
        Err(e) => {
            attempt.excerpt = e.to_string();
            let retry_at = (!failing_too_long).then(|| retry(retry_delay(attempts, jitter())));
            let disable = failing_too_long.then(|| {
                format!(
                    "failing since {}: {e}",
                    endpoint
                        .failing_since
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_default()
                )
            });
            return (attempt, retry_at, disable);
        }
    };
    let host = url.host_str().unwrap_or_default().to_owned();
    let client = match tls.clone().and_then(|tls| {
        reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(config.timeout_secs.max(1)))
            .resolve(&host, addr)
            .build()
            .map_err(|e| e.to_string())
    }) {
        Ok(c) => c,
        Err(e) => {
            attempt.excerpt = format!("building the HTTP client: {e}");
            return (attempt, Some(retry(retry_delay(attempts, jitter()))), None);
        }
    };
    let started = std::time::Instant::now();
    let sent = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signatures.join(" "))
        .header("herald-sequence", sequence.to_string())
        .body(body)
        .send()
        .await;
    let (retry_at, disable) = match sent {
        Ok(mut response) => {
            let status = response.status().as_u16();
            attempt.status = Some(status);
            let wait_hint = retry_after(response.headers());
            // Up to 1 KB of the answer, never more.
            let mut excerpt = Vec::new();
            while excerpt.len() < 1024 {
                match response.chunk().await {
                    Ok(Some(chunk)) => {
                        excerpt.extend_from_slice(&chunk[..chunk.len().min(1024 - excerpt.len())])
                    }
                    _ => break,
                }
            }
            attempt.excerpt = String::from_utf8_lossy(&excerpt).into_owned();
            match status {
                200..=299 => (None, None),
                410 => (None, Some("the endpoint answered 410 Gone".to_owned())),
                _ if failing_too_long => (
                    None,
                    Some(format!(
                        "failing for more than {} days",
                        config.disable_after_days
                    )),
                ),
                _ => {
                    let wait = retry_delay(attempts, jitter());
                    let wait = wait_hint.map_or(wait, |h| h.max(wait));
                    (Some(retry(wait)), None)
                }
            }
        }
        Err(e) => {
            attempt.excerpt = error_chain(&e);
            if failing_too_long {
                (
                    None,
                    Some(format!(
                        "failing for more than {} days",
                        config.disable_after_days
                    )),
                )
            } else {
                (Some(retry(retry_delay(attempts, jitter()))), None)
            }
        }
    };
    attempt.latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    (attempt, retry_at, disable)
}

/// One round: claims what is due (up to 1,000), sends it in batches per
/// endpoint (oldest first, `batch_max` at most), records each attempt.
/// Returns the events delivered.
pub async fn deliver_due(herald: &Arc<Herald>) -> Result<u64, crate::Error> {
    let config = &herald.config.webhooks;
    let lease =
        chrono::Duration::seconds(i64::try_from(config.timeout_secs.max(1)).unwrap_or(10) * 3);
    let owed = herald
        .events
        .claim_webhooks(1_000, lease, herald.clock.now())
        .await?;
    if owed.is_empty() {
        return Ok(0);
    }
    let mut by_endpoint: BTreeMap<i64, Vec<OwedDelivery>> = BTreeMap::new();
    for d in owed {
        by_endpoint.entry(d.endpoint).or_default().push(d);
    }
    let ids: Vec<i64> = by_endpoint.keys().copied().collect();
    let endpoints = herald.events.webhooks_by_id(&ids).await?;
    // One TLS set-up a round (the root store is the costly part), each batch's
    // client built on a copy of it with its checked address pinned.
    let tls = Arc::new(tls_config());
    let mut tasks = tokio::task::JoinSet::new();
    for endpoint in endpoints {
        let Some(owed) = by_endpoint.remove(&endpoint.id) else {
            continue;
        };
        let herald = Arc::clone(herald);
        let tls = Arc::clone(&tls);
        tasks.spawn(async move {
            let mut delivered = 0u64;
            let batches: Vec<&[OwedDelivery]> =
                owed.chunks(herald.config.webhooks.batch_max.max(1)).collect();
            for (n, batch) in batches.iter().enumerate() {
                let (attempt, retry_at, disable) = send_batch(&herald, &tls, &endpoint, batch).await;
                let ids: Vec<i64> = batch.iter().map(|d| d.id).collect();
                let ok = retry_at.is_none() && disable.is_none();
                if let Some(reason) = &disable {
                    tracing::warn!(endpoint = endpoint.id, account = endpoint.account, %reason, "webhook endpoint disabled");
                }
                herald
                    .events
                    .finish_webhooks(endpoint.id, &ids, &attempt, retry_at, disable.as_deref())
                    .await?;
                if ok {
                    delivered += batch.len() as u64;
                } else {
                    // The rest waits behind the failed batch, in order.
                    let rest: Vec<i64> = batches[n + 1..]
                        .iter()
                        .flat_map(|b| b.iter().map(|d| d.id))
                        .collect();
                    herald
                        .events
                        .postpone_webhooks(&rest, retry_at.unwrap_or(attempt.at))
                        .await?;
                    break;
                }
            }
            Ok::<u64, crate::Error>(delivered)
        });
    }
    let mut delivered = 0;
    while let Some(done) = tasks.join_next().await {
        delivered += done.map_err(|e| crate::Error::Task(e.to_string()))??;
    }
    Ok(delivered)
}

/// Sends webhooks until `stop` says so: a round every `batch_ms` (so events
/// gather into batches), a storage error logged and retried next round.
pub async fn run(herald: Arc<Herald>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let every = Duration::from_millis(herald.config.webhooks.batch_ms.max(10));
    loop {
        if let Err(e) = deliver_due(&herald).await {
            tracing::warn!(error = %e, "webhook deliveries failed this round; trying again");
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            () = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks reference libraries' test vector.
    #[test]
    fn signs_as_the_standard_webhooks_reference_does() {
        let sig = sign(
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1_649_367_553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        )
        .expect("signs");
        assert_eq!(sig, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
        assert!(sign("whsec_not base64!", "m", 1, b"x").is_err());
        let s = new_secret().expect("random");
        assert!(s.starts_with("whsec_") && sign(&s, "m", 1, b"x").is_ok());
    }

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "198.18.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "2001:db8::1",
            "192.0.2.1",
        ] {
            assert!(!is_public(ip.parse().expect("ip")), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111", "8.8.8.8"] {
            assert!(is_public(ip.parse().expect("ip")), "{ip}");
        }
    }

    #[tokio::test]
    async fn endpoint_urls_are_checked() {
        let strict = WebhooksConfig::default();
        for (url, needle) in [
            ("http://crm.example/hook", "must be https"),
            ("ftp://crm.example/hook", "scheme"),
            ("https://user:pw@127.0.0.1/hook", "user name"),
            ("https://127.0.0.1/hook", "not a public address"),
            ("https://[::1]:8443/hook", "not a public address"),
            ("not a url", "not a URL"),
        ] {
            let e = check_url(url, &strict).await.expect_err(url).to_string();
            assert!(e.contains(needle), "{url}: {e}");
        }
        let dev = WebhooksConfig {
            allow_http: true,
            allow_private: true,
            ..WebhooksConfig::default()
        };
        let (_, addr) = check_url("http://127.0.0.1:9/hook", &dev)
            .await
            .expect("allowed");
        assert_eq!(addr.port(), 9);
    }

    #[test]
    fn retries_follow_the_schedule_for_days() {
        assert_eq!(retry_delay(0, 0.5), Duration::from_secs(5));
        assert_eq!(retry_delay(1, 0.5), Duration::from_secs(300));
        assert_eq!(retry_delay(6, 0.5), Duration::from_secs(36_000));
        assert_eq!(retry_delay(20, 0.5), Duration::from_secs(86_400));
        let total: u64 = (0..9).map(|a| retry_delay(a, 0.5).as_secs()).sum();
        assert!(total >= 3 * 86_400, "retries span {total} s");
        assert!(retry_delay(0, 0.0) < retry_delay(0, 1.0));
        assert!(retry_delay(0, 1.0) <= Duration::from_secs(6));
    }
}
