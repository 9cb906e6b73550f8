//! SMS through an HTTP gateway (R-MSG-8): each text is merged for its
//! recipient, its segments counted, and POSTed to the configured gateway as
//! JSON:
//!
//! ```json
//! {"to": "+4512345678", "from": "Shop", "text": "Hi Ada …", "segments": 1, "encoding": "Gsm7", "reference": "1-42"}
//! ```
//!
//! with the configured `Authorization` header. A 2xx answer means the gateway
//! accepted the text; any other answer (or none within the timeout) is a
//! failure reported with its status and body. Most SMS providers accept such a
//! request directly or through a small adapter.

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
    /// The most recipients of one SMS send (they are sent while the request
    /// waits). Default 1,000.
    pub max_recipients: usize,
    /// Requests to the gateway at once. Default 8.
    pub concurrency: usize,
}

impl Default for SmsConfig {
    fn default() -> Self {
        SmsConfig {
            gateway_url: None,
            authorization: None,
            default_sender: "Herald".into(),
            timeout_secs: 10,
            max_recipients: 1000,
            concurrency: 8,
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
    /// Herald's reference (`<account>-<n>`).
    pub reference: &'a str,
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
                let body = resp.text().await.unwrap_or_default();
                GatewayReply {
                    accepted: status.is_success(),
                    status: Some(status.as_u16()),
                    detail: body.chars().take(500).collect(),
                }
            }
            Err(e) => GatewayReply {
                accepted: false,
                status: None,
                detail: e.to_string(),
            },
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

    #[test]
    fn sender_ids_are_short_names_or_numbers() {
        assert!(check_sender("from", "Shop").is_ok());
        assert!(check_sender("from", "+4512345678").is_ok());
        assert!(check_sender("from", "A very long name").is_err());
        assert!(check_sender("from", "12345").is_err());
        assert!(check_sender("from", "Shop\r\n").is_err());
    }
}
