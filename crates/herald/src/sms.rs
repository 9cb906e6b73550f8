//! SMS through an HTTP gateway (R-MSG-8, R-SMS-1). A send's texts are merged
//! when it is created and queued in the outbox (lane `sms`); workers claim
//! them under the SMS rate (`throttle.sms`) and POST each to the configured
//! gateway as JSON:
//!
//! ```json
//! {"to": "+4512345678", "from": "Shop", "text": "Hi Ada …", "segments": 1, "encoding": "Gsm7",
//!  "reference": "42", "report_url": "https://herald.example/v1/sms/reports"}
//! ```
//!
//! with the configured `Authorization` header. A 2xx answer means the gateway
//! accepted the text (`sms_sent`); a 408, 429 or 5xx answer, a time-out or a
//! connection error is retried on the `[sms.retry]` schedule (honouring
//! `Retry-After`) until it gives up (`sms_failed`); any other answer is a
//! refusal (`sms_failed`). The gateway reports back what became of the text
//! at `report_url` (`POST /v1/sms/reports`, with `reference`), authenticated
//! with `sms.report_token`. Most SMS providers accept such a request directly
//! or through a small adapter.

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// The `[sms]` section of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmsConfig {
    /// The gateway's URL (http or https); none disables SMS.
    pub gateway_url: Option<String>,
    /// The `Authorization` header value sent to the gateway, e.g. `Bearer …`
    /// (or `HERALD_SMS_AUTHORIZATION`).
    pub authorization: Option<String>,
    /// The sender id used when a request names none (at most 11 letters and
    /// digits, or a phone number).
    pub default_sender: String,
    /// Seconds one gateway request may take. Default 10.
    pub timeout_secs: u64,
    /// The most recipients of one SMS send. Default 50,000.
    pub max_recipients: usize,
    /// Requests to the gateway at once, per worker. Default 8.
    pub concurrency: usize,
    /// The bearer token the gateway sends with its delivery reports
    /// (`Authorization: Bearer …` on `POST /v1/sms/reports`), or
    /// `HERALD_SMS_REPORT_TOKEN`; at least 32 characters. None refuses every
    /// report.
    pub report_token: Option<String>,
    /// Retries of texts the gateway did not take (408, 429, 5xx, time-outs):
    /// shorter than mail's, since a late text is worth less. Default: first
    /// after 30 s, doubling up to 15 minutes, given up after 1 day.
    pub retry: herald_schedule::RetryPolicy,
}

impl Default for SmsConfig {
    fn default() -> Self {
        SmsConfig {
            gateway_url: None,
            authorization: None,
            default_sender: "Herald".into(),
            timeout_secs: 10,
            max_recipients: 50_000,
            concurrency: 8,
            report_token: None,
            retry: herald_schedule::RetryPolicy {
                initial_secs: 30,
                max_secs: 900,
                give_up_secs: 86_400,
            },
        }
    }
}

/// SMS errors.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    /// The configuration.
    #[error("sms.{field}: {rule}")]
    Config {
        /// The setting.
        field: &'static str,
        /// The rule it breaks.
        rule: String,
    },
    /// No gateway is configured.
    #[error("SMS is not configured: set sms.gateway_url")]
    Disabled,
}

/// What the gateway answered for one text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayReply {
    /// Accepted (2xx).
    pub accepted: bool,
    /// The HTTP status, if the gateway answered.
    pub status: Option<u16>,
    /// The answer's body (first 500 characters) or the connection error.
    pub detail: String,
    /// The wait the gateway asked for (`Retry-After` in seconds), if any.
    pub retry_after: Option<u64>,
}

impl GatewayReply {
    /// Whether the text may go through later: no answer (a time-out, a
    /// connection error), 408, 429 or a 5xx.
    pub fn retryable(&self) -> bool {
        match self.status {
            None => true,
            Some(s) => s == 408 || s == 429 || s >= 500,
        }
    }

    /// The reply as the outbox keeps it: `503 {"error": …}` or the error.
    pub fn reply(&self) -> String {
        match self.status {
            Some(s) => format!("{s} {}", self.detail).trim().to_owned(),
            None => self.detail.clone(),
        }
    }
}

/// One text to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sms<'a> {
    /// E.164 number.
    pub to: &'a str,
    /// Sender id.
    pub from: &'a str,
    /// The merged text.
    pub text: &'a str,
    /// Segments it is sent as.
    pub segments: usize,
    /// GSM-7 or UCS-2.
    pub encoding: herald_message::sms::SmsEncoding,
    /// Herald's reference (the outbox message number), which the gateway's
    /// delivery reports name.
    pub reference: &'a str,
    /// Where the gateway posts its delivery reports, when Herald knows its
    /// public origin (`tracking.base_url`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_url: Option<&'a str>,
}

/// The gateway client.
#[derive(Debug, Clone)]
pub struct SmsGateway {
    client: reqwest::Client,
    url: String,
    authorization: Option<String>,
    /// The configuration.
    pub config: SmsConfig,
}

/// The shortest delivery-report token accepted.
pub const MIN_REPORT_TOKEN: usize = 32;

impl SmsGateway {
    /// The client for `config`; `Ok(None)` when no gateway is configured.
    pub fn new(config: &SmsConfig) -> Result<Option<Self>, SmsError> {
        let Some(url) = config.gateway_url.clone() else {
            return Ok(None);
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(SmsError::Config {
                field: "gateway_url",
                rule: format!("`{url}` must start with http:// or https://"),
            });
        }
        check_sender("sms.default_sender", &config.default_sender).map_err(|rule| {
            SmsError::Config {
                field: "default_sender",
                rule,
            }
        })?;
        if let Some(t) = &config.report_token
            && t.chars().count() < MIN_REPORT_TOKEN
        {
            return Err(SmsError::Config {
                field: "report_token",
                rule: format!("must be at least {MIN_REPORT_TOKEN} characters"),
            });
        }
        // TLS with the same provider (aws-lc-rs) and roots (webpki) as SMTP,
        // passed in rather than installed process-wide.
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| SmsError::Config {
                field: "gateway_url",
                rule: format!("TLS: {e}"),
            })?
            .with_root_certificates(rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            })
            .with_no_client_auth();
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(Duration::from_secs(config.timeout_secs.max(1)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SmsError::Config {
                field: "gateway_url",
                rule: e.to_string(),
            })?;
        Ok(Some(SmsGateway {
            client,
            url,
            authorization: config.authorization.clone(),
            config: config.clone(),
        }))
    }

    /// Sends one text; never fails, the reply says what happened.
    pub async fn send(&self, sms: &Sms<'_>) -> GatewayReply {
        let mut req = self.client.post(&self.url).json(sms);
        if let Some(a) = &self.authorization {
            req = req.header(reqwest::header::AUTHORIZATION, a);
        }
        match req.send().await {
            Ok(resp) => {
                let status = resp.status();
                let retry_after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                let body = resp.text().await.unwrap_or_default();
                GatewayReply {
                    accepted: status.is_success(),
                    status: Some(status.as_u16()),
                    detail: body.chars().take(500).collect(),
                    retry_after,
                }
            }
            Err(e) => GatewayReply {
                accepted: false,
                status: None,
                detail: e.to_string(),
                retry_after: None,
            },
        }
    }
}

/// What one round of SMS delivery did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    /// Texts posted to the gateway this round.
    pub attempted: usize,
    /// When the SMS rate held texts back: when it lets the next one go.
    pub throttled_until: Option<chrono::DateTime<chrono::Utc>>,
}

/// What the gateway's reply means for a text: sent, retried at the
/// `[sms.retry]` schedule (or the gateway's `Retry-After`, whichever is
/// later) until the give-up age, or failed.
pub fn text_outcome(
    reply: &GatewayReply,
    attempts: u32,
    first_attempt_at: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
    policy: &herald_schedule::RetryPolicy,
) -> herald_schedule::Outcome {
    use herald_schedule::Outcome;
    if reply.accepted {
        return Outcome::Delivered {
            reply: reply.reply(),
        };
    }
    if !reply.retryable() {
        return Outcome::Failed {
            reason: format!("the gateway refused the text: {}", reply.reply()),
        };
    }
    let at_least = chrono::Duration::seconds(
        i64::try_from(reply.retry_after.unwrap_or(0).min(86_400)).unwrap_or(0),
    );
    match policy.retry_at(attempts, first_attempt_at, now, at_least) {
        Some(retry_at) => Outcome::Deferred {
            retry_at,
            reply: reply.reply(),
        },
        None => Outcome::Failed {
            reason: format!("gave up after {} attempts: {}", attempts + 1, reply.reply()),
        },
    }
}

/// One round of SMS delivery: claims the due texts the SMS rate lets go
/// (up to four times `sms.concurrency`), posts them to the gateway
/// `sms.concurrency` at a time, records each outcome in the outbox and its
/// events (`sms_processed` at the first attempt, then `sms_sent` or
/// `sms_failed`) in the event log.
pub async fn deliver_due(
    herald: &std::sync::Arc<crate::service::Herald>,
    stats: &std::sync::Arc<crate::worker::Stats>,
) -> Result<Round, crate::Error> {
    use herald_eventlog::{EventKind, NewEvent};
    use herald_schedule::Outcome;
    use std::sync::atomic::Ordering;
    let Some(gateway) = herald.sms.clone() else {
        return Ok(Round::default());
    };
    let worker = herald.config.worker.id.clone();
    let lease = chrono::Duration::seconds(herald.config.worker.lease_secs.max(1));
    let concurrency = gateway.config.concurrency.max(1);
    let claims = herald
        .outbox
        .claim_sms(&worker, concurrency * 4, lease, herald.clock.now())
        .await?;
    let round = Round {
        attempted: claims.messages.len(),
        throttled_until: claims.throttled_until,
    };
    if claims.messages.is_empty() {
        return Ok(round);
    }
    let report_url = format!(
        "{}/v1/sms/reports",
        herald.config.tracking.base_url.trim_end_matches('/')
    );
    let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    for m in claims.messages {
        let gateway = gateway.clone();
        let limit = std::sync::Arc::clone(&limit);
        let herald = std::sync::Arc::clone(herald);
        let stats = std::sync::Arc::clone(stats);
        let worker = worker.clone();
        let report_url = report_url.clone();
        tasks.spawn(async move {
            let reply = {
                let _permit = limit.acquire().await;
                gateway
                    .send(&Sms {
                        to: &m.to,
                        from: &m.text.from,
                        text: &m.text.text,
                        segments: m.text.segments as usize,
                        encoding: m.text.encoding,
                        reference: &m.id.to_string(),
                        report_url: Some(&report_url),
                    })
                    .await
            };
            let now = herald.clock.now();
            let outcome = text_outcome(
                &reply,
                m.attempts,
                m.first_attempt_at,
                now,
                &gateway.config.retry,
            );
            let counter = match &outcome {
                Outcome::Delivered { .. } => &stats.sms_sent,
                Outcome::Deferred { .. } => &stats.sms_deferred,
                _ => &stats.sms_failed,
            };
            if !crate::worker::record_with_retries(&herald, &worker, m.id, &outcome).await? {
                stats.lost_claims.fetch_add(1, Ordering::Relaxed);
                return Ok::<_, crate::Error>(Vec::new());
            }
            counter.fetch_add(1, Ordering::Relaxed);
            let event = |kind: EventKind| {
                let mut e = NewEvent::new(kind, now, m.account, &m.to);
                e.message = Some(m.id);
                e.campaign = m.campaign;
                e.person = m.person.clone();
                e.segments = Some(m.text.segments);
                e
            };
            let mut owed = Vec::with_capacity(2);
            if m.attempts == 0 {
                owed.push(event(EventKind::SmsProcessed));
            }
            match &outcome {
                Outcome::Delivered { reply } => {
                    let mut e = event(EventKind::SmsSent);
                    e.reply = Some(reply.clone());
                    owed.push(e);
                }
                Outcome::Failed { reason } => {
                    let mut e = event(EventKind::SmsFailed);
                    e.reply = Some(reason.clone());
                    owed.push(e);
                }
                Outcome::Deferred { reply, .. } => {
                    tracing::info!(message = m.id, reply = %reply, "the SMS gateway did not take the text; retried later");
                }
                Outcome::Bounced { .. } => {}
            }
            Ok(owed)
        });
    }
    let mut events = Vec::new();
    let mut failed = None;
    while let Some(done) = tasks.join_next().await {
        match done.map_err(|e| crate::Error::Task(e.to_string()))? {
            Ok(owed) => events.extend(owed),
            // Its outcome was not recorded: the text is claimed again after its lease.
            Err(e) => failed = Some(e),
        }
    }
    // One transaction for the round's events; if it fails the outbox still
    // owes them and the worker's recovery records them.
    if let Err(e) = crate::worker::record_events(herald, &events).await {
        tracing::error!(error = %e, events = events.len(), "recording SMS events failed; they are recorded by the recovery");
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(round),
    }
}

/// Sends due texts until `stop` turns true: a round whenever the last one
/// took texts, else at the time the SMS rate lets the next go or at the
/// worker's poll interval. Started by [`crate::worker::run`] when a gateway
/// is configured.
pub async fn run(
    herald: std::sync::Arc<crate::service::Herald>,
    stats: std::sync::Arc<crate::worker::Stats>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let poll = Duration::from_millis(herald.config.worker.poll_ms.max(1));
    loop {
        let wait = match deliver_due(&herald, &stats).await {
            Ok(round) => {
                let now = herald.clock.now();
                match round.throttled_until.filter(|t| *t > now) {
                    Some(t) => (t - now).to_std().unwrap_or(poll).min(poll),
                    None if round.attempted > 0 => Duration::ZERO,
                    None => poll,
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "SMS delivery failed this round; trying again");
                poll
            }
        };
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Checks an SMS sender id: 1-11 ASCII letters, digits or spaces (with a
/// letter), or a phone number.
pub fn check_sender(field: &str, sender: &str) -> Result<(), String> {
    let _ = field;
    if normalize_number(sender).is_some() {
        return Ok(());
    }
    let ok = (1..=11).contains(&sender.len())
        && sender
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == ' ')
        && sender.chars().any(|c| c.is_ascii_alphabetic());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{sender}` must be 1-11 letters, digits or spaces with a letter, or a phone number (+4512345678)"
        ))
    }
}

/// A phone number in E.164 form (`+` and 8-15 digits), with spaces, dashes,
/// dots and parentheses removed and a leading `00` read as `+`; `None` if it
/// is not one.
pub fn normalize_number(raw: &str) -> Option<String> {
    let mut s: String = raw
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    if let Some(rest) = s.strip_prefix("00") {
        s = format!("+{rest}");
    }
    let digits = s.strip_prefix('+')?;
    ((8..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()))
        .then(|| format!("+{digits}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_normalized_to_e164_or_refused() {
        assert_eq!(
            normalize_number("+45 12 34 56 78").as_deref(),
            Some("+4512345678")
        );
        assert_eq!(
            normalize_number("0045-1234-5678").as_deref(),
            Some("+4512345678")
        );
        assert_eq!(normalize_number("12345678"), None, "no country code");
        assert_eq!(
            normalize_number("+45 1234 5678\r\n"),
            Some("+4512345678".into())
        );
        assert_eq!(normalize_number("+45abc45678"), None);
        assert_eq!(normalize_number("+1234567"), None, "too short");
    }

    /// Gateway answers and what they make of a text (first attempt, the
    /// default `[sms.retry]`: 30 s, give up after a day).
    #[test]
    fn gateway_answers_are_sent_retried_or_failed() {
        use herald_schedule::Outcome;
        let policy = SmsConfig::default().retry;
        let now = chrono::DateTime::from_timestamp(1_764_000_000, 0).unwrap_or_default();
        let reply = |status: Option<u16>, retry_after: Option<u64>| GatewayReply {
            accepted: status.is_some_and(|s| (200..300).contains(&s)),
            status,
            detail: "x".into(),
            retry_after,
        };
        // (status, Retry-After, expected: "sent" | "retry in N s" | "failed")
        let cases: [(Option<u16>, Option<u64>, &str); 9] = [
            (Some(200), None, "sent"),
            (Some(202), None, "sent"),
            (Some(503), None, "retry 30"),
            (Some(503), Some(120), "retry 120"),
            (Some(429), Some(5), "retry 30"),
            (Some(408), None, "retry 30"),
            (None, None, "retry 30"),
            (Some(400), None, "failed"),
            (Some(401), None, "failed"),
        ];
        for (status, retry_after, want) in cases {
            let got = match text_outcome(&reply(status, retry_after), 0, None, now, &policy) {
                Outcome::Delivered { .. } => "sent".to_owned(),
                Outcome::Deferred { retry_at, .. } => {
                    format!("retry {}", (retry_at - now).num_seconds())
                }
                Outcome::Failed { .. } => "failed".to_owned(),
                Outcome::Bounced { .. } => "bounced".to_owned(),
            };
            assert_eq!(got, want, "{status:?} {retry_after:?}");
        }
        // Past the give-up age a retryable answer fails the text.
        let first = now - chrono::Duration::hours(24);
        assert!(matches!(
            text_outcome(&reply(Some(503), None), 20, Some(first), now, &policy),
            Outcome::Failed { .. }
        ));
    }

    #[test]
    fn sender_ids_are_short_names_or_numbers() {
        assert!(check_sender("from", "Shop").is_ok());
        assert!(check_sender("from", "+4512345678").is_ok());
        assert!(check_sender("from", "A very long name").is_err());
        assert!(check_sender("from", "12345").is_err());
        assert!(check_sender("from", "Shop\r\n").is_err());
    }
}
