//! Structured logs for both binaries (R-OPS-3): `tracing` to standard error,
//! filtered by `RUST_LOG` (default `info`, sqlx at `warn`), as JSON lines when
//! `HERALD_LOG_FORMAT=json`, readable lines otherwise.

/// Installs the subscriber; call once, first thing in `main`.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn".into());
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    if std::env::var("HERALD_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
