//! Transports (R-SND-6): an SMTP relay (lettre: STARTTLS or implicit TLS, AUTH,
//! a pool of reused connections) and a file transport (one `.eml` per message).

use crate::destinations::{
    Destination, Destinations, LimitsConfig, ProviderTable, Site, Unroutable,
};
use herald_auth::{Dns, DnsConfig};
use herald_message::Envelope;
use herald_schedule::{Attempt, Stage};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How to secure the SMTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tls {
    /// Plain SMTP (local relays and tests only).
    None,
    /// STARTTLS when the server offers it, without certificate checks (what
    /// MTAs do towards MX hosts); plain otherwise.
    Opportunistic,
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

/// Delivery straight to each recipient domain's MX hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MxConfig {
    /// The SMTP port of MX hosts. Default 25 (tests point it elsewhere).
    #[serde(default = "default_mx_port")]
    pub port: u16,
    /// Connections to one destination host at most. Default 4.
    #[serde(default = "default_pool")]
    pub per_destination: u32,
    /// Seconds a command may take. Default 30.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// The name server for MX and address lookups, `IP:PORT`; default the system's.
    pub nameserver: Option<std::net::SocketAddr>,
    /// Seconds one DNS query may take. Default 5.
    #[serde(default = "default_dns_timeout")]
    pub dns_timeout_secs: u64,
}

fn default_dns_timeout() -> u64 {
    5
}

fn default_mx_port() -> u16 {
    25
}

/// Where built messages go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TransportConfig {
    /// An SMTP relay.
    Smtp(SmtpConfig),
    /// Direct to MX.
    Mx(MxConfig),
    /// One `.eml` file per message in `dir` (development, the quick start).
    File {
        /// The folder.
        dir: PathBuf,
    },
}

/// A pool of SMTP connections to one server: connections are reused, at most
/// `pool_size` are open, a pooled connection is checked (NOOP) before reuse,
/// and one that failed is dropped. Sockets have TCP_NODELAY set: lettre writes
/// the message body and its final `.` separately, which with Nagle's algorithm
/// and delayed ACKs would stall every message by tens of milliseconds.
pub struct SmtpPool {
    config: SmtpConfig,
    tls_name: String,
    /// Idle connections with the number of messages each has carried.
    idle: tokio::sync::Mutex<Vec<(AsyncSmtpConnection, u32)>>,
    permits: tokio::sync::Semaphore,
    hello: ClientId,
    /// Messages one connection carries before it is closed (none: no limit).
    messages_per_connection: Option<u32>,
    /// New connections wait on this limiter (a site's connection rate).
    connection_rate: Option<Arc<governor::DefaultDirectRateLimiter>>,
    /// The local address connections are made from (an egress source).
    source: Option<IpAddr>,
}

impl SmtpPool {
    /// A pool for the server `config` names (no connection is made yet).
    pub fn new(config: SmtpConfig, hello: ClientId) -> Self {
        let size = usize::try_from(config.pool_size.max(1)).unwrap_or(1);
        let tls_name = config.host.clone();
        SmtpPool {
            config,
            tls_name,
            idle: tokio::sync::Mutex::new(Vec::new()),
            permits: tokio::sync::Semaphore::new(size),
            hello,
            messages_per_connection: None,
            connection_rate: None,
            source: None,
        }
    }

    /// Connects from the local address `source` (an egress pool's).
    pub fn with_source(mut self, source: Option<IpAddr>) -> Self {
        self.source = source;
        self
    }

    /// Closes each connection after `n` messages.
    pub fn with_messages_per_connection(mut self, n: u32) -> Self {
        self.messages_per_connection = Some(n.max(1));
        self
    }

    /// Opens new connections no faster than `limiter` lets them.
    pub fn with_connection_rate(
        mut self,
        limiter: Arc<governor::DefaultDirectRateLimiter>,
    ) -> Self {
        self.connection_rate = Some(limiter);
        self
    }

    /// The name TLS expects in the server's certificate, when `host` is an IP.
    pub fn with_tls_name(mut self, name: &str) -> Self {
        self.tls_name = name.to_owned();
        self
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        if let Some(gate) = &self.connection_rate {
            gate.until_ready().await;
        }
        let c = &self.config;
        let timeout = Duration::from_secs(c.timeout_secs);
        let mut conn = if c.tls == Tls::Tls {
            let tls = TlsParameters::new(self.tls_name.clone())?;
            AsyncSmtpConnection::connect_tokio1(
                (c.host.as_str(), c.port),
                Some(timeout),
                &self.hello,
                Some(tls),
                self.source,
            )
            .await?
        } else {
            let tcp = tokio::time::timeout(timeout, self.tcp(&c.host, c.port))
                .await
                .map_err(|_| {
                    SendError::Io(format!("connecting to {}:{} timed out", c.host, c.port))
                })?
                .map_err(|e| SendError::Io(format!("connecting to {}:{}: {e}", c.host, c.port)))?;
            let _ = tcp.set_nodelay(true);
            let mut conn =
                AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello).await?;
            if c.tls == Tls::StartTls {
                conn.starttls(TlsParameters::new(self.tls_name.clone())?, &self.hello)
                    .await?;
            } else if c.tls == Tls::Opportunistic && conn.can_starttls() {
                let tls = TlsParameters::builder(self.tls_name.clone())
                    .dangerous_accept_invalid_certs(true)
                    .build()?;
                conn.starttls(tls, &self.hello).await?;
            }
            conn
        };
        if let (Some(u), Some(p)) = (&c.username, &c.password) {
            conn.auth(
                &[Mechanism::Plain, Mechanism::Login],
                &Credentials::new(u.clone(), p.clone()),
            )
            .await?;
        }
        Ok(conn)
    }

    /// A TCP connection to `host:port`, from the pool's source address if it
    /// has one.
    async fn tcp(&self, host: &str, port: u16) -> std::io::Result<tokio::net::TcpStream> {
        let Some(source) = self.source else {
            return tokio::net::TcpStream::connect((host, port)).await;
        };
        let mut last = std::io::Error::other(format!("{host} has no address"));
        for addr in tokio::net::lookup_host((host, port)).await? {
            if addr.is_ipv4() != source.is_ipv4() {
                continue;
            }
            let socket = if source.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            socket.bind(std::net::SocketAddr::new(source, 0))?;
            match socket.connect(addr).await {
                Ok(s) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// One SMTP transaction on a pooled connection.
    pub async fn send(&self, envelope: &lettre::address::Envelope, message: &[u8]) -> Attempt {
        let Ok(_permit) = self.permits.acquire().await else {
            return Attempt::Unreachable {
                reason: "the connection pool is closed".into(),
            };
        };
        let limit = Duration::from_secs(self.config.timeout_secs.saturating_mul(4).max(1));
        let work = async {
            let (mut conn, carried) = loop {
                let reused = self.idle.lock().await.pop();
                match reused {
                    Some((mut conn, carried)) => {
                        if conn.test_connected().await {
                            break (conn, carried);
                        }
                    }
                    None => {
                        break (self.connect().await.map_err(|e| (Stage::Session, e))?, 0);
                    }
                }
            };
            let result = transaction(&mut conn, envelope, message).await;
            let carried = carried + 1;
            if result.is_ok() && !conn.has_broken() {
                if self.messages_per_connection.is_some_and(|n| carried >= n) {
                    conn.quit().await.ok();
                } else {
                    self.idle.lock().await.push((conn, carried));
                }
            }
            result
        };
        match tokio::time::timeout(limit, work).await {
            Err(_) => Attempt::Unreachable {
                reason: format!(
                    "no answer from {}:{} within {} s",
                    self.config.host,
                    self.config.port,
                    limit.as_secs()
                ),
            },
            Ok(Ok(resp)) => Attempt::Reply {
                code: u16::from(resp.code()),
                text: resp.message().collect::<Vec<_>>().join(" "),
                stage: Stage::Data,
            },
            Ok(Err((_, SendError::Io(reason)))) => Attempt::Unreachable { reason },
            Ok(Err((stage, SendError::Smtp(e)))) => match e.status() {
                Some(code) => Attempt::Reply {
                    code: u16::from(code),
                    text: error_text(&e),
                    stage,
                },
                None => Attempt::Unreachable {
                    reason: error_text(&e),
                },
            },
        }
    }
}

/// One mail transaction (MAIL FROM, RCPT TO, DATA) on an open connection,
/// each command's refusal tagged with its stage: only RCPT TO and DATA speak
/// about the recipient. The options are lettre's own choice (SMTPUTF8 for
/// non-ASCII addresses, 8BITMIME for a non-ASCII body).
async fn transaction(
    conn: &mut AsyncSmtpConnection,
    envelope: &lettre::address::Envelope,
    message: &[u8],
) -> Result<lettre::transport::smtp::response::Response, (Stage, SendError)> {
    use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
    use lettre::transport::smtp::extension::{Extension, MailBodyParameter, MailParameter};
    let mut options = Vec::new();
    let info = conn.server_info();
    let non_ascii = envelope.from().is_some_and(|a| !a.to_string().is_ascii())
        || envelope.to().iter().any(|a| !a.to_string().is_ascii());
    if non_ascii {
        if !info.supports_feature(Extension::SmtpUtfEight) {
            return Err((
                Stage::Recipient,
                SendError::Io(
                    "the address is not ASCII and the server does not offer SMTPUTF8".into(),
                ),
            ));
        }
        options.push(MailParameter::SmtpUtfEight);
    }
    if !message.is_ascii() && info.supports_feature(Extension::EightBitMime) {
        options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    let tag = |stage: Stage| move |e| (stage, SendError::Smtp(e));
    let result = async {
        conn.command(Mail::new(envelope.from().cloned(), options))
            .await
            .map_err(tag(Stage::Sender))?;
        for to in envelope.to() {
            conn.command(Rcpt::new(to.clone(), vec![]))
                .await
                .map_err(tag(Stage::Recipient))?;
        }
        conn.command(Data).await.map_err(tag(Stage::Data))?;
        conn.message(message).await.map_err(tag(Stage::Data))
    }
    .await;
    if result.is_err() {
        // As lettre does: QUIT and drop; the connection is never pooled again.
        conn.abort().await;
    }
    result
}

/// Why a transaction did not get a reply.
enum SendError {
    /// Could not connect.
    Io(String),
    /// lettre's error: a reply (with a status) or a network/TLS failure.
    Smtp(lettre::transport::smtp::Error),
}

impl From<lettre::transport::smtp::Error> for SendError {
    fn from(e: lettre::transport::smtp::Error) -> Self {
        SendError::Smtp(e)
    }
}

/// Per worker, per site: connections open at once, and new connections' rate.
struct SiteGate {
    connections: tokio::sync::Semaphore,
    connection_rate: Option<Arc<governor::DefaultDirectRateLimiter>>,
}

/// Direct-to-MX delivery: each recipient domain is resolved to a destination
/// (its site and MX hosts, cached for the TTL); every address of every MX host
/// is tried in order; connections are pooled per host address and limited per
/// site (connections at once, messages per connection, connection rate).
pub struct MxTransport {
    config: MxConfig,
    destinations: Arc<Destinations>,
    pools: tokio::sync::Mutex<HashMap<PoolKey, Arc<SmtpPool>>>,
    gates: tokio::sync::Mutex<HashMap<GateKey, Arc<SiteGate>>>,
}

/// A connection pool's key: source address, MX host name, host address.
type PoolKey = (Option<IpAddr>, String, IpAddr);
/// A site gate's key: source address, site name.
type GateKey = (Option<IpAddr>, String);

impl MxTransport {
    /// The connection limits of one source → site pair.
    async fn gate(&self, source: Option<IpAddr>, site: &Site) -> Arc<SiteGate> {
        let mut gates = self.gates.lock().await;
        let gate = gates.entry((source, site.name.clone())).or_insert_with(|| {
            let permits = usize::try_from(site.limits.max_connections)
                .unwrap_or(1)
                .max(1);
            Arc::new(SiteGate {
                connections: tokio::sync::Semaphore::new(permits),
                connection_rate: site
                    .limits
                    .connection_rate
                    .map(|r| Arc::new(governor::RateLimiter::direct(r.quota()))),
            })
        });
        Arc::clone(gate)
    }

    async fn pool(
        &self,
        source: Option<IpAddr>,
        site: &Site,
        gate: &SiteGate,
        host: &str,
        ip: IpAddr,
    ) -> Arc<SmtpPool> {
        let mut pools = self.pools.lock().await;
        let pool = pools
            .entry((source, host.to_ascii_lowercase(), ip))
            .or_insert_with(|| {
                let config = SmtpConfig {
                    host: ip.to_string(),
                    port: self.config.port,
                    tls: Tls::Opportunistic,
                    username: None,
                    password: None,
                    pool_size: self.config.per_destination.min(site.limits.max_connections),
                    timeout_secs: self.config.timeout_secs,
                };
                let mut pool = SmtpPool::new(config, ClientId::default())
                    .with_tls_name(host)
                    .with_messages_per_connection(site.limits.messages_per_connection)
                    .with_source(source);
                if let Some(rate) = &gate.connection_rate {
                    pool = pool.with_connection_rate(Arc::clone(rate));
                }
                Arc::new(pool)
            });
        Arc::clone(pool)
    }

    /// The destination of `domain`, or the attempt that says why there is none:
    /// a null MX (RFC 7505) is a permanent failure; no host, or DNS not
    /// answering, a temporary one.
    pub async fn destination(&self, domain: &str) -> Result<(Arc<Destination>, bool), Attempt> {
        self.destinations
            .resolve(domain)
            .await
            .map_err(|e| match e {
                Unroutable::NullMx => Attempt::Reply {
                    code: 556,
                    text: format!("5.1.10 {domain} accepts no mail (null MX)"),
                    stage: Stage::Recipient,
                },
                Unroutable::NoHost(reason) | Unroutable::Dns(reason) => {
                    Attempt::Unreachable { reason }
                }
            })
    }

    /// Delivers to `destination`'s MX hosts, most preferred first, each of a
    /// host's addresses in turn, within the site's connection limit.
    async fn send_to(
        &self,
        destination: &Destination,
        source: Option<IpAddr>,
        envelope: &lettre::address::Envelope,
        message: &[u8],
    ) -> Attempt {
        let site = &destination.site;
        let gate = self.gate(source, site).await;
        let Ok(_permit) = gate.connections.acquire().await else {
            return Attempt::Unreachable {
                reason: "the site's connections are closed".into(),
            };
        };
        let mut last = Attempt::Unreachable {
            reason: format!("{}: no MX host has an address", destination.domain),
        };
        for host in &destination.hosts {
            for ip in &host.addresses {
                match self
                    .pool(source, site, &gate, &host.name, *ip)
                    .await
                    .send(envelope, message)
                    .await
                {
                    Attempt::Unreachable { reason } => {
                        last = Attempt::Unreachable {
                            reason: format!("{} ({ip}): {reason}", host.name),
                        }
                    }
                    reply => return reply,
                }
            }
        }
        last
    }
}

/// One message's delivery: the attempt, and for direct-to-MX delivery the
/// destination it went to (and whether it was resolved just now).
pub struct Delivery {
    /// What happened.
    pub attempt: Attempt,
    /// The destination, for MX delivery.
    pub destination: Option<(Arc<Destination>, bool)>,
}

/// A live transport.
pub enum Transport {
    /// SMTP relay with a connection pool.
    Smtp(Box<SmtpPool>),
    /// Direct to MX.
    Mx(Box<MxTransport>),
    /// Files.
    File(PathBuf),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Smtp(p) => write!(f, "Transport::Smtp({}:{})", p.config.host, p.config.port),
            Transport::Mx(m) => write!(f, "Transport::Mx(port {})", m.config.port),
            Transport::File(dir) => write!(f, "Transport::File({})", dir.display()),
        }
    }
}

/// A transport that cannot be built from its settings.
#[derive(Debug, thiserror::Error)]
#[error("transport: {0}")]
pub struct TransportError(pub String);

impl Transport {
    /// Builds a transport (no connection is made until the first message),
    /// with the built-in provider table for MX delivery.
    pub fn new(config: &TransportConfig) -> Result<Self, TransportError> {
        let table = ProviderTable::built_in().map_err(|e| TransportError(e.to_string()))?;
        Self::with_table(config, table, HashMap::new())
    }

    /// Builds a transport; MX delivery shapes each site by `table` and the
    /// per-site `overrides`.
    pub fn with_table(
        config: &TransportConfig,
        table: ProviderTable,
        overrides: HashMap<String, LimitsConfig>,
    ) -> Result<Self, TransportError> {
        match config {
            TransportConfig::File { dir } => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| TransportError(format!("creating {}: {e}", dir.display())))?;
                Ok(Transport::File(dir.clone()))
            }
            TransportConfig::Smtp(c) => {
                if c.host.is_empty() {
                    return Err(TransportError("smtp host is empty".into()));
                }
                Ok(Transport::Smtp(Box::new(SmtpPool::new(
                    c.clone(),
                    ClientId::default(),
                ))))
            }
            TransportConfig::Mx(c) => {
                let dns = Dns::new(&DnsConfig {
                    nameserver: c.nameserver,
                    timeout: Duration::from_secs(c.dns_timeout_secs.max(1)),
                    attempts: 2,
                })
                .map_err(|e| TransportError(e.to_string()))?;
                Ok(Transport::Mx(Box::new(MxTransport {
                    config: c.clone(),
                    destinations: Arc::new(Destinations::new(dns, table, overrides)),
                    pools: tokio::sync::Mutex::new(HashMap::new()),
                    gates: tokio::sync::Mutex::new(HashMap::new()),
                })))
            }
        }
    }

    /// Sends one message; every result is an [`Attempt`], never an error.
    pub async fn send(&self, envelope: &Envelope, message_id: &str, message: &[u8]) -> Attempt {
        self.deliver(envelope, message_id, message).await.attempt
    }

    /// Sends one message and says, for MX delivery, to which destination.
    pub async fn deliver(&self, envelope: &Envelope, message_id: &str, message: &[u8]) -> Delivery {
        self.deliver_from(None, envelope, message_id, message).await
    }

    /// As [`Transport::deliver`], connecting from the local address `source`
    /// (an egress pool's) for direct-to-MX delivery.
    pub async fn deliver_from(
        &self,
        source: Option<IpAddr>,
        envelope: &Envelope,
        message_id: &str,
        message: &[u8],
    ) -> Delivery {
        if let Transport::Mx(mx) = self {
            let env = match smtp_envelope(envelope) {
                Ok(env) => env,
                Err(refused) => {
                    return Delivery {
                        attempt: refused,
                        destination: None,
                    };
                }
            };
            let domain = envelope.rcpt_to.rsplit_once('@').map_or("", |(_, d)| d);
            return match mx.destination(domain).await {
                Ok((d, fresh)) => Delivery {
                    attempt: mx.send_to(&d, source, &env, message).await,
                    destination: Some((d, fresh)),
                },
                Err(attempt) => Delivery {
                    attempt,
                    destination: None,
                },
            };
        }
        let attempt = match self {
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
                    tokio::fs::write(&tmp, as_delivered(message)).await?;
                    tokio::fs::rename(&tmp, &path).await
                };
                match written.await {
                    Ok(()) => Attempt::Reply {
                        code: 250,
                        text: format!("2.0.0 written to {}", path.display()),
                        stage: Stage::Data,
                    },
                    Err(e) => Attempt::Unreachable {
                        reason: format!("writing {}: {e}", path.display()),
                    },
                }
            }
            Transport::Smtp(pool) => match smtp_envelope(envelope) {
                Ok(env) => pool.send(&env, message).await,
                Err(refused) => refused,
            },
            Transport::Mx(_) => Attempt::Unreachable {
                reason: "unreachable: MX delivery is handled above".into(),
            },
        };
        Delivery {
            attempt,
            destination: None,
        }
    }
}

/// The message as SMTP DATA delivers it: ending with CRLF (a receiving MTA
/// adds it before the final `.`), so a file reads as the delivered mail does
/// and DKIM verifiers that read files agree with those that read SMTP.
fn as_delivered(message: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if message.ends_with(b"\r\n") {
        std::borrow::Cow::Borrowed(message)
    } else {
        let mut owned = message.to_vec();
        if owned.ends_with(b"\r") {
            owned.push(b'\n');
        } else {
            owned.extend_from_slice(b"\r\n");
        }
        std::borrow::Cow::Owned(owned)
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

/// The SMTP envelope, or the permanent failure when the client cannot use it.
fn smtp_envelope(envelope: &Envelope) -> Result<lettre::address::Envelope, Attempt> {
    let refused = |stage: Stage, why: String| Attempt::Reply {
        code: 553,
        text: format!("5.1.3 {why}"),
        stage,
    };
    let from = envelope.mail_from.parse().map_err(|e| {
        refused(
            Stage::Sender,
            format!("MAIL FROM <{}>: {e}", envelope.mail_from),
        )
    })?;
    let to = envelope.rcpt_to.parse().map_err(|e| {
        refused(
            Stage::Recipient,
            format!("RCPT TO <{}>: {e}", envelope.rcpt_to),
        )
    })?;
    lettre::address::Envelope::new(Some(from), vec![to])
        .map_err(|e| refused(Stage::Recipient, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::as_delivered;

    #[test]
    fn files_end_as_smtp_data_delivers_them() {
        assert_eq!(
            &*as_delivered(b"Subject: x\r\n\r\nbody"),
            b"Subject: x\r\n\r\nbody\r\n"
        );
        assert_eq!(&*as_delivered(b"a\r\n\r\nb\r"), b"a\r\n\r\nb\r\n");
        assert_eq!(&*as_delivered(b"a\r\n\r\nb\r\n"), b"a\r\n\r\nb\r\n");
    }
}
