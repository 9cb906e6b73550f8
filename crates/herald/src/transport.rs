//! Transports (R-SND-6): an SMTP relay (lettre: STARTTLS or implicit TLS, AUTH,
//! a pool of reused connections) and a file transport (one `.eml` per message).

use herald_message::Envelope;
use herald_schedule::Attempt;
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// How to secure the SMTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tls {
    /// Plain SMTP (local relays and tests only).
    None,
    /// STARTTLS, required.
    #[default]
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// A relay's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpConfig {
    /// Host name or IP.
    pub host: String,
    /// Port. Default 587.
    #[serde(default = "default_port")]
    pub port: u16,
    /// TLS mode.
    #[serde(default)]
    pub tls: Tls,
    /// AUTH user name, if the relay wants one.
    pub username: Option<String>,
    /// AUTH password.
    pub password: Option<String>,
    /// Connections kept open and reused. Default 4.
    #[serde(default = "default_pool")]
    pub pool_size: u32,
    /// Seconds a command may take. Default 30.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_port() -> u16 {
    587
}
fn default_pool() -> u32 {
    4
}
fn default_timeout() -> u64 {
    30
}

/// Where built messages go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TransportConfig {
    /// An SMTP relay.
    Smtp(SmtpConfig),
    /// One `.eml` file per message in `dir` (development, the quick start).
    File {
        /// The folder.
        dir: PathBuf,
    },
}

/// A live transport.
#[derive(Clone)]
pub enum Transport {
    /// SMTP relay with a connection pool.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// Files.
    File(PathBuf),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Smtp(_) => f.write_str("Transport::Smtp"),
            Transport::File(dir) => write!(f, "Transport::File({})", dir.display()),
        }
    }
}

/// A transport that cannot be built from its settings.
#[derive(Debug, thiserror::Error)]
#[error("transport: {0}")]
pub struct TransportError(pub String);

impl Transport {
    /// Builds a transport (no connection is made until the first message).
    pub fn new(config: &TransportConfig) -> Result<Self, TransportError> {
        match config {
            TransportConfig::File { dir } => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| TransportError(format!("creating {}: {e}", dir.display())))?;
                Ok(Transport::File(dir.clone()))
            }
            TransportConfig::Smtp(c) => {
                let builder = match c.tls {
                    Tls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&c.host),
                    Tls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&c.host)
                        .map_err(|e| TransportError(e.to_string()))?,
                    Tls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&c.host)
                        .map_err(|e| TransportError(e.to_string()))?,
                };
                let mut builder = builder
                    .port(c.port)
                    .timeout(Some(Duration::from_secs(c.timeout_secs)))
                    .pool_config(PoolConfig::new().max_size(c.pool_size.max(1)));
                if let (Some(u), Some(p)) = (&c.username, &c.password) {
                    builder = builder.credentials(Credentials::new(u.clone(), p.clone()));
                }
                Ok(Transport::Smtp(builder.build()))
            }
        }
    }

    /// Sends one message; every result is an [`Attempt`], never an error.
    pub async fn send(&self, envelope: &Envelope, message_id: &str, message: &[u8]) -> Attempt {
        match self {
            Transport::File(dir) => {
                let name: String = message_id
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '.' || c == '@' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                let path = dir.join(format!("{name}.eml"));
                let tmp = dir.join(format!(".{name}.tmp"));
                let written = async {
                    tokio::fs::write(&tmp, message).await?;
                    tokio::fs::rename(&tmp, &path).await
                };
                match written.await {
                    Ok(()) => Attempt::Reply {
                        code: 250,
                        text: format!("2.0.0 written to {}", path.display()),
                    },
                    Err(e) => Attempt::Unreachable {
                        reason: format!("writing {}: {e}", path.display()),
                    },
                }
            }
            Transport::Smtp(smtp) => {
                let from = envelope.mail_from.parse();
                let to = envelope.rcpt_to.parse();
                let env = match (from, to) {
                    (Ok(f), Ok(t)) => lettre::address::Envelope::new(Some(f), vec![t]),
                    _ => {
                        return Attempt::Reply {
                            code: 553,
                            text: "5.1.3 envelope address not accepted by the SMTP client".into(),
                        };
                    }
                };
                let env = match env {
                    Ok(e) => e,
                    Err(e) => {
                        return Attempt::Reply {
                            code: 553,
                            text: format!("5.1.3 {e}"),
                        };
                    }
                };
                match smtp.send_raw(&env, message).await {
                    Ok(resp) => Attempt::Reply {
                        code: u16::from(resp.code()),
                        text: resp.message().collect::<Vec<_>>().join(" "),
                    },
                    Err(e) => match e.status() {
                        Some(code) => Attempt::Reply {
                            code: u16::from(code),
                            text: error_text(&e),
                        },
                        None => Attempt::Unreachable {
                            reason: error_text(&e),
                        },
                    },
                }
            }
        }
    }
}

fn error_text(e: &lettre::transport::smtp::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
