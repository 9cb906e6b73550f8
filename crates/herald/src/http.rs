//! Herald's HTTP surface: `router(herald)` for tests (call it with tower's
//! `oneshot`, no socket) and `serve` for the binary: the JSON API under `/v1`
//! ([`crate::api`]), the tracking endpoints ([`crate::tracking`]), the OpenAPI
//! document, `/metrics` and the health probes.

use crate::service::Herald;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// Every route: the API (`/v1/…`), tracking (`/c`, `/o`, `/u`), the
/// dashboard (`/dashboard/…`),
/// `GET /openapi.json`, `GET /metrics` (Prometheus), `GET /healthz` (the
/// process answers) and `GET /readyz` (the database answers). Call it inside a
/// Tokio runtime: it starts the tracking endpoints' recorder tasks.
pub fn router(herald: Arc<Herald>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .with_state(Arc::clone(&herald))
        .merge(crate::tracking::routes(Arc::clone(&herald)))
        .merge(crate::dashboard::routes(Arc::clone(&herald)))
        .merge(crate::api::routes(herald))
}

async fn metrics(State(herald): State<Arc<Herald>>) -> impl IntoResponse {
    let pending = herald.outbox.pending().await.ok();
    let mut text = herald.metrics.render(pending);
    if let Ok(sites) = crate::app::sites::list(&herald).await {
        text.push_str(&crate::metrics::render_sites(&sites));
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::json(),
    )
}

async fn ready(State(herald): State<Arc<Herald>>) -> (StatusCode, &'static str) {
    // A probe answers within seconds: during an outage the pool would wait
    // its whole acquire timeout (30 s) for a connection.
    let answered = tokio::time::timeout(std::time::Duration::from_secs(2), herald.outbox.ping());
    if answered.await.unwrap_or(false) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
    }
}

/// Serves [`router`] on `addr` until `shutdown` completes, then lets requests
/// in progress finish.
pub async fn serve(
    herald: Arc<Herald>,
    addr: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_on(herald, listener, shutdown).await
}

/// Serves [`router`] on a bound listener until `shutdown` completes.
async fn serve_on(
    herald: Arc<Herald>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt as _;
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "listening");
    }
    // Answers are small and written at once: send them without Nagle's delay.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    // The peer's address reaches the tracking endpoints (the client's IP).
    axum::serve(
        listener,
        router(herald).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Serves on `addr` and, with `with_worker`, runs the delivery loop in the same
/// process (the quick start's single node), until SIGINT or SIGTERM.
pub async fn serve_node(
    herald: Arc<Herald>,
    addr: SocketAddr,
    with_worker: bool,
) -> Result<(), crate::Error> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    // Bind first: a port in use stops the start before anything is delivered.
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| crate::Error::Task(format!("HTTP server: cannot listen on {addr}: {e}")))?;
    let worker = with_worker.then(|| {
        let stats = Arc::new(crate::worker::Stats::default());
        tokio::spawn(crate::worker::run(
            Arc::clone(&herald),
            stopped(stop_rx.clone()),
            stats,
        ))
    });
    let mut server = tokio::spawn(serve_on(herald, listener, stopped(stop_rx)));
    // Until a signal, or the server ends on its own (an error): either way
    // the worker finishes what is in flight.
    let early = tokio::select! {
        () = crate::signals::shutdown() => None,
        r = &mut server => Some(r),
    };
    let _ = stop_tx.send(true);
    if let Some(worker) = worker {
        worker
            .await
            .map_err(|e| crate::Error::Task(e.to_string()))??;
    }
    let result = match early {
        Some(r) => r,
        None => server.await,
    };
    result
        .map_err(|e| crate::Error::Task(e.to_string()))?
        .map_err(|e| crate::Error::Task(format!("HTTP server: {e}")))
}
