//! `herald-server`: Herald's server binary. Without a command it runs the quick
//! start (a single node in `./herald-data`); `serve` runs from a configuration
//! file; `migrate`, `create-account`, `check-domain` and `openapi` are the
//! operator commands. The logic lives in the `herald` facade.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use herald::auth::{DkimKey, DnsConfig, PlatformAuth};
use herald::domains::{self, DomainCheck};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "herald-server",
    version,
    about = "Herald: email and SMS sending engine for CRMs"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// The quick start (the default): a single node with an in-process worker,
    /// a SQLite file, the file transport and a demo account, all in --data-dir.
    Quickstart {
        /// Where the database, keys and .eml files go.
        #[arg(long, default_value = "herald-data")]
        data_dir: std::path::PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
    /// Run the database migrations of every crate, then exit.
    Migrate {
        /// The TOML configuration file (HERALD_* environment variables override it).
        #[arg(long, short, env = "HERALD_CONFIG", default_value = "herald.toml")]
        config: std::path::PathBuf,
    },
    /// Create an account and print its first API key (shown once), as JSON.
    CreateAccount {
        /// The TOML configuration file.
        #[arg(long, short, env = "HERALD_CONFIG", default_value = "herald.toml")]
        config: std::path::PathBuf,
        /// The account's name.
        #[arg(long)]
        name: String,
        /// IANA time zone.
        #[arg(long, default_value = "UTC")]
        timezone: String,
        /// chrono date format of mass campaign names.
        #[arg(long, default_value = "%Y-%m-%d")]
        date_format: String,
        /// Record that this person accepted the sending rules (enables the account).
        #[arg(long)]
        accept_rules: Option<String>,
        /// The account's plan; `dashboard.plans` (default plus, enterprise)
        /// says which plans include the dashboard.
        #[arg(long, default_value = "free")]
        plan: String,
    },
    /// Print the OpenAPI document of the HTTP API.
    Openapi,
    /// Print a new random key for `domains.key_encryption_key` (`ID:BASE64`).
    GenerateEncryptionKey {
        /// The key's id, stored with every key it seals (1-32 of a-z, 0-9, - and _).
        #[arg(long, default_value = "k1")]
        id: String,
    },
    /// Re-seal every stored customer DKIM key under `domains.key_encryption_key`
    /// (keys stored as PEM, or sealed with one of
    /// `domains.previous_key_encryption_keys`), then print what it did as JSON.
    RotateDkimKeys {
        /// The TOML configuration file (HERALD_* environment variables override it).
        #[arg(long, short, env = "HERALD_CONFIG", default_value = "herald.toml")]
        config: std::path::PathBuf,
    },
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
    /// Exits 0 when every check passes, 1 when one fails (the domain's records
    /// need changing), 75 when DNS gave no answer (try later), 2 when DOMAIN
    /// is not a domain name.
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
        /// The platform's HELO/EHLO name: check the HELO identity too.
        #[arg(long)]
        helo: Option<String>,
        /// Print the report as one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn parse_nameserver(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| format!("`{s}` is not IP or IP:PORT (e.g. 127.0.0.1:5353 or [::1]:53)"))
}

async fn build(config: herald::config::Config) -> anyhow::Result<Arc<herald::Herald>> {
    Ok(Arc::new(
        herald::Herald::build(
            config,
            herald::clock::from_env().map_err(anyhow::Error::msg)?,
        )
        .await
        .context("starting Herald")?,
    ))
}

fn load(path: &std::path::Path) -> anyhow::Result<herald::config::Config> {
    herald::config::Config::load(path).with_context(|| format!("loading {}", path.display()))
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let command = Cli::parse().command.unwrap_or(Command::Quickstart {
        data_dir: "herald-data".into(),
        listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
    });
    match command {
        Command::Quickstart { data_dir, listen } => {
            herald::logs::init();
            let (config, admin) = herald::quickstart::config(&data_dir, listen)
                .with_context(|| format!("preparing {}", data_dir.display()))?;
            let config = config.apply_env(std::env::vars()).context("environment")?;
            let node = build(config).await?;
            let demo = herald::quickstart::seed(&node, &data_dir, &admin)
                .await
                .context("creating the demo account")?;
            println!("{}", herald::quickstart::guide(&demo));
            herald::http::serve_node(node, listen, true)
                .await
                .context("serving")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve {
            config,
            listen,
            with_worker,
        } => {
            herald::logs::init();
            let node = build(load(&config)?).await?;
            herald::http::serve_node(node, listen, with_worker)
                .await
                .context("serving")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate { config } => {
            build(load(&config)?).await?;
            println!("migrations are up to date");
            Ok(ExitCode::SUCCESS)
        }
        Command::CreateAccount {
            config,
            name,
            timezone,
            date_format,
            accept_rules,
            plan,
        } => {
            let node = build(load(&config)?).await?;
            let new = herald::accounts::NewAccount {
                name,
                timezone,
                date_format,
                plan,
            };
            let (account, key) =
                herald::app::accounts::open(&node, &new, accept_rules.as_deref()).await?;
            println!(
                "{}",
                serde_json::json!({"account": account, "api_key": key})
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Openapi => {
            println!("{}", herald::openapi::json());
            Ok(ExitCode::SUCCESS)
        }
        Command::GenerateEncryptionKey { id } => {
            let key = herald::vault::KeyVault::generate(&id)?;
            // Check the id as the configuration will.
            herald::vault::KeyVault::new(Some(&key), &[])?;
            println!("{key}");
            Ok(ExitCode::SUCCESS)
        }
        Command::RotateDkimKeys { config } => {
            let node = build(load(&config)?).await?;
            let done = herald::vault::reseal_all(&node.accounts, &node.vault).await?;
            println!("{}", serde_json::json!(done));
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
            helo,
            json,
        } => {
            if !herald::domains::valid_domain(&domain) {
                eprintln!(
                    "herald-server check-domain: `{domain}` is not a domain name (labels of letters, digits and inner hyphens, separated by dots)"
                );
                return Ok(ExitCode::from(2));
            }
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
                    helo,
                },
                dns: DnsConfig {
                    nameserver,
                    timeout: Duration::from_secs(dns_timeout),
                    attempts: 2,
                },
            })
            .await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).context("writing the report")?
                );
            } else {
                print!("{}", domains::render(&report));
            }
            Ok(ExitCode::from(domains::exit_status(&report)))
        }
    }
}
