//! `herald-server`: Herald's server binary. Its HTTP serving arrives with the
//! server issue; today it carries the operator commands.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use herald::auth::{DkimKey, DnsConfig, PlatformAuth};
use herald::domains::{self, DomainCheck};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "herald-server",
    version,
    about = "Herald: email and SMS sending engine for CRMs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the tracking endpoints and health probes; with --with-worker, also
    /// deliver mail in the same process (a single node).
    Serve {
        /// The TOML configuration file (HERALD_* environment variables override it).
        #[arg(long, short, env = "HERALD_CONFIG", default_value = "herald.toml")]
        config: std::path::PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Run the delivery loop in this process too.
        #[arg(long)]
        with_worker: bool,
    },
    /// Check a customer's domain: SPF, DKIM and DMARC, with the records to publish.
    /// Exits 0 when every check passes, 1 when one fails, 75 when DNS gave no answer.
    CheckDomain {
        /// The customer's domain, e.g. shop.example.
        domain: String,
        /// The DKIM selector Herald signs with.
        #[arg(long, default_value = "herald")]
        selector: String,
        /// A platform sending IP; SPF check_host must pass for it (repeatable).
        #[arg(long = "ip")]
        ips: Vec<IpAddr>,
        /// Envelope sender for check_host (default postmaster@DOMAIN).
        #[arg(long)]
        mail_from: Option<String>,
        /// Name server to ask, IP or IP:PORT (default: the system's resolver).
        #[arg(long, value_parser = parse_nameserver)]
        nameserver: Option<SocketAddr>,
        /// The platform's SPF domain that customers include.
        #[arg(
            long,
            env = "HERALD_PLATFORM_SPF",
            default_value = "spf.herald.invalid"
        )]
        platform_spf: String,
        /// The platform's bounce domain (envelope senders), for DMARC SPF alignment.
        #[arg(
            long,
            env = "HERALD_BOUNCE_DOMAIN",
            default_value = "bounces.herald.invalid"
        )]
        bounce_domain: String,
        /// Herald's DKIM private key for the domain (PEM), to compare with the published key.
        #[arg(long)]
        dkim_key: Option<std::path::PathBuf>,
        /// Seconds one DNS query may take.
        #[arg(long, default_value_t = 5)]
        dns_timeout: u64,
    },
}

fn parse_nameserver(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| format!("`{s}` is not IP or IP:PORT (e.g. 127.0.0.1:5353 or [::1]:53)"))
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Serve {
            config,
            listen,
            with_worker,
        } => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info".into()),
                )
                .init();
            let config = herald::config::Config::load(&config)
                .with_context(|| format!("loading {}", config.display()))?;
            let node = std::sync::Arc::new(
                herald::Herald::build(config, std::sync::Arc::new(herald::clock::SystemClock))
                    .await
                    .context("starting Herald")?,
            );
            herald::http::serve_node(node, listen, with_worker)
                .await
                .context("serving")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckDomain {
            domain,
            selector,
            ips,
            mail_from,
            nameserver,
            platform_spf,
            bounce_domain,
            dkim_key,
            dns_timeout,
        } => {
            let key = match &dkim_key {
                Some(path) => Some(
                    std::fs::read_to_string(path)
                        .map_err(anyhow::Error::from)
                        .and_then(|pem| Ok(DkimKey::from_pem(&pem)?))
                        .with_context(|| format!("--dkim-key {}", path.display()))?,
                ),
                None => None,
            };
            let report = domains::check(DomainCheck {
                domain: &domain,
                selector: &selector,
                key: key.as_ref(),
                mail_from: mail_from.as_deref(),
                platform: PlatformAuth {
                    spf_include: platform_spf,
                    sending_ips: ips,
                    bounce_domain,
                },
                dns: DnsConfig {
                    nameserver,
                    timeout: Duration::from_secs(dns_timeout),
                    attempts: 2,
                },
            })
            .await?;
            print!("{}", domains::render(&report));
            Ok(ExitCode::from(domains::exit_status(&report)))
        }
    }
}
