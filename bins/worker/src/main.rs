//! `herald-worker`: parse the config, build Herald, run the delivery loop until
//! SIGTERM or SIGINT, then finish what is in flight.

use anyhow::Context as _;
use clap::Parser;
use herald::clock::SystemClock;
use herald::config::Config;
use herald::worker::{self, Stats};
use std::path::PathBuf;

mod progress;
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "herald-worker", version, about = "Herald's delivery worker")]
struct Cli {
    /// The TOML configuration file (environment variables HERALD_* override it).
    #[arg(long, short, env = "HERALD_CONFIG", default_value = "herald.toml")]
    config: PathBuf,
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let config =
        Config::load(&cli.config).with_context(|| format!("loading {}", cli.config.display()))?;
    let herald = Arc::new(
        herald::Herald::build(config, Arc::new(SystemClock))
            .await
            .context("starting Herald")?,
    );
    let stats = Arc::new(Stats::default());
    let progress = tokio::spawn(progress::report(Arc::clone(&herald), Arc::clone(&stats)));
    let result = worker::run(herald, shutdown_signal(), Arc::clone(&stats)).await;
    progress.abort();
    result.context("delivery loop")?;
    Ok(())
}
