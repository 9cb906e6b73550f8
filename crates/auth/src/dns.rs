//! The DNS resolver (R-AUTH-5): hickory-resolver, pointed at the name server
//! the configuration names.

use crate::{Error, Result};
use mail_auth::MessageAuthenticator;
use mail_auth::hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts,
};
use mail_auth::hickory_resolver::proto::rr::{Name, RData};
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;
use std::time::Instant;

/// Where DNS questions go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// The name server (UDP and TCP on this address). `None` reads the
    /// system's `/etc/resolv.conf` when the resolver is built.
    pub nameserver: Option<SocketAddr>,
    /// How long one query may take.
    pub timeout: Duration,
    /// How many times a query is tried.
    pub attempts: usize,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            nameserver: None,
            timeout: Duration::from_secs(5),
            attempts: 2,
        }
    }
}

/// The answer to one DNS question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    /// Records were found.
    Found(T),
    /// The name does not exist or has no record of that type (NXDOMAIN/NODATA).
    NotFound,
    /// No answer could be had now (timeout, SERVFAIL, network): try later.
    TempError(String),
}

/// A resolver, shared by the domain checks and mail-auth's SPF evaluation.
pub struct Dns {
    auth: MessageAuthenticator,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns").finish_non_exhaustive()
    }
}

impl Dns {
    /// Builds the resolver. Must be called within a Tokio runtime's context.
    pub fn new(config: &DnsConfig) -> Result<Self> {
        let mut opts = ResolverOpts::default();
        opts.timeout = config.timeout;
        opts.attempts = config.attempts;
        opts.cache_size = 0;
        let auth = match config.nameserver {
            Some(addr) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                let ns = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
                MessageAuthenticator::new(ResolverConfig::from_name_servers(vec![ns]), opts)
            }
            None => MessageAuthenticator::new_system_conf(),
        }
        .map_err(|e| Error::Resolver(e.to_string()))?;
        Ok(Dns { auth })
    }

    /// The mail-auth authenticator on this resolver, for verifying mail
    /// (DKIM, SPF, DMARC, ARF) with the same name server.
    pub fn authenticator(&self) -> &MessageAuthenticator {
        &self.auth
    }

    /// The MX records of `domain` as (preference, exchange without the final
    /// dot), most preferred first. A null MX (RFC 7505) is `(0, "")`.
    pub async fn mx(&self, domain: &str) -> Lookup<Vec<(u16, String)>> {
        match self.mx_until(domain).await {
            Lookup::Found((mx, _)) => Lookup::Found(mx),
            Lookup::NotFound => Lookup::NotFound,
            Lookup::TempError(e) => Lookup::TempError(e),
        }
    }

    /// As [`Dns::mx`], with the time the answer stops being valid (its TTL).
    pub async fn mx_until(&self, domain: &str) -> Lookup<(Vec<(u16, String)>, Instant)> {
        let name = match Name::from_str(&fqdn(domain)) {
            Ok(n) => n,
            Err(e) => return Lookup::TempError(format!("`{domain}` is not a DNS name: {e}")),
        };
        match self.auth.resolver().mx_lookup(name).await {
            Ok(lookup) => {
                let mut out: Vec<(u16, String)> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(mx) => Some((
                            mx.preference,
                            mx.exchange.to_utf8().trim_end_matches('.').to_owned(),
                        )),
                        _ => None,
                    })
                    .collect();
                out.sort();
                if out.is_empty() {
                    Lookup::NotFound
                } else {
                    Lookup::Found((out, lookup.valid_until()))
                }
            }
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => Lookup::NotFound,
            Err(e) => Lookup::TempError(e.to_string()),
        }
    }

    /// The IPv4 and IPv6 addresses of `host` (A, then AAAA).
    pub async fn addresses(&self, host: &str) -> Lookup<Vec<std::net::IpAddr>> {
        match self.addresses_until(host).await {
            Lookup::Found((ips, _)) => Lookup::Found(ips),
            Lookup::NotFound => Lookup::NotFound,
            Lookup::TempError(e) => Lookup::TempError(e),
        }
    }

    /// As [`Dns::addresses`], with the time the answer stops being valid.
    pub async fn addresses_until(&self, host: &str) -> Lookup<(Vec<std::net::IpAddr>, Instant)> {
        match self.auth.resolver().lookup_ip(fqdn(host)).await {
            Ok(lookup) => {
                let ips: Vec<std::net::IpAddr> = lookup.iter().collect();
                if ips.is_empty() {
                    Lookup::NotFound
                } else {
                    Lookup::Found((ips, lookup.valid_until()))
                }
            }
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => Lookup::NotFound,
            Err(e) => Lookup::TempError(e.to_string()),
        }
    }

    /// The TXT records at `name`, each record's strings joined (a name DNS
    /// cannot carry has none).
    pub async fn txt(&self, name: &str) -> Lookup<Vec<String>> {
        use mail_auth::hickory_resolver::proto::rr::RecordType;
        self.records(name, RecordType::TXT, |d| match d {
            RData::TXT(txt) => Some(
                txt.txt_data
                    .iter()
                    .map(|part| String::from_utf8_lossy(part))
                    .collect::<String>(),
            ),
            _ => None,
        })
        .await
    }
}

impl Dns {
    /// Records of one type at `name`, mapped by `pick`. A name DNS cannot
    /// carry has no records.
    async fn records<T>(
        &self,
        name: &str,
        kind: mail_auth::hickory_resolver::proto::rr::RecordType,
        pick: impl Fn(&RData) -> Option<T>,
    ) -> Lookup<Vec<T>> {
        let name = match Name::from_str(&fqdn(name)) {
            Ok(n) => n,
            // A name DNS cannot carry has no records (RFC 7208 treats it as void).
            Err(_) => return Lookup::NotFound,
        };
        match self.auth.resolver().lookup(name, kind).await {
            Ok(lookup) => {
                let out: Vec<T> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| pick(&r.data))
                    .collect();
                if out.is_empty() {
                    Lookup::NotFound
                } else {
                    Lookup::Found(out)
                }
            }
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => Lookup::NotFound,
            Err(e) => Lookup::TempError(e.to_string()),
        }
    }
}

impl crate::check_host::SpfDns for Dns {
    async fn txt(&self, name: &str) -> Lookup<Vec<String>> {
        Dns::txt(self, name).await
    }

    async fn a(&self, name: &str) -> Lookup<Vec<std::net::Ipv4Addr>> {
        use mail_auth::hickory_resolver::proto::rr::RecordType;
        self.records(name, RecordType::A, |d| match d {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .await
    }

    async fn aaaa(&self, name: &str) -> Lookup<Vec<std::net::Ipv6Addr>> {
        use mail_auth::hickory_resolver::proto::rr::RecordType;
        self.records(name, RecordType::AAAA, |d| match d {
            RData::AAAA(a) => Some(a.0),
            _ => None,
        })
        .await
    }

    async fn mx(&self, name: &str) -> Lookup<Vec<String>> {
        match Dns::mx(self, name).await {
            Lookup::Found(v) => Lookup::Found(v.into_iter().map(|(_, h)| h).collect()),
            Lookup::NotFound => Lookup::NotFound,
            Lookup::TempError(e) => Lookup::TempError(e),
        }
    }

    async fn ptr(&self, ip: std::net::IpAddr) -> Lookup<Vec<String>> {
        use mail_auth::hickory_resolver::proto::rr::RecordType;
        let name = Name::from(ip).to_utf8();
        self.records(&name, RecordType::PTR, |d| match d {
            RData::PTR(p) => Some(p.0.to_utf8().trim_end_matches('.').to_owned()),
            _ => None,
        })
        .await
    }
}

/// `name` with the final dot, so no search domain is tried.
fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}
