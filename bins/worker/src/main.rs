//! `herald-worker`: parse the config, build Herald, run the delivery loop until
//! SIGTERM or SIGINT, then finish what is in flight. `herald-worker ingest`
//! reads one bounce or complaint from standard input (an MTA's pipe transport);
//! `herald-worker classify` says what one is, with no configuration at all.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use herald::config::Config;
use herald::worker::{self, Stats};
use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

mod progress;
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "herald-worker", version, about = "Herald's delivery worker")]
struct Cli {
    /// The TOML configuration file (environment variables HERALD_* override it).
    #[arg(
        long,
        short,
        env = "HERALD_CONFIG",
        default_value = "herald.toml",
        global = true
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the delivery loop (the default).
    Run,
    /// Read one raw bounce (DSN) or complaint (ARF) from standard input, record
    /// its events and print what it was as JSON. Exits 0 when the message was
    /// read (mapped or not), 75 when it could not be recorded now (retry later).
    Ingest,
    /// Read one raw message from standard input and print what it is as one
    /// JSON object: `{"kind": "dsn"|"complaint"|"autoreply"|"other",
    /// "recipients": [{"address", "class", "reason", "status", "action",
    /// "diagnostic"}]}`, recipients in the order the report gives them. Needs
    /// no configuration and records nothing.
    Classify,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    herald::logs::init();
    let cli = Cli::parse();
    if let Some(Command::Classify) = cli.command {
        let mut raw = Vec::new();
        std::io::stdin()
            .read_to_end(&mut raw)
            .context("reading standard input")?;
        let kind = herald::eventlog::inbound::classify_message(&raw);
        println!(
            "{}",
            serde_json::to_string(&kind.classification()).context("writing the result")?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let config =
        Config::load(&cli.config).with_context(|| format!("loading {}", cli.config.display()))?;
    let herald = Arc::new(
        herald::Herald::build(
            config,
            herald::clock::from_env().map_err(anyhow::Error::msg)?,
        )
        .await
        .context("starting Herald")?,
    );
    if let Some(Command::Ingest) = cli.command {
        let mut raw = Vec::new();
        std::io::stdin()
            .read_to_end(&mut raw)
            .context("reading standard input")?;
        return Ok(match herald::inbound::ingest(&herald, &raw).await {
            Ok(outcome) => {
                println!(
                    "{}",
                    serde_json::to_string(&outcome).context("writing the outcome")?
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("herald-worker ingest: {e}");
                ExitCode::from(75) // EX_TEMPFAIL: the MTA keeps the message and retries
            }
        });
    }
    let stats = Arc::new(Stats::default());
    if let Some(addr) = herald.config.worker.health_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("worker.health_addr: binding {addr}"))?;
        let routes = worker::health_routes(Arc::clone(&stats));
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, routes).await {
                tracing::error!(error = %e, "the health endpoint stopped");
            }
        });
    }
    let progress = tokio::spawn(progress::report(Arc::clone(&herald), Arc::clone(&stats)));
    let result = worker::run(herald, herald::signals::shutdown(), Arc::clone(&stats)).await;
    progress.abort();
    result.context("delivery loop")?;
    Ok(ExitCode::SUCCESS)
}
