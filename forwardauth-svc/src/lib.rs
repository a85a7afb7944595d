//! # forwardauth-svc
//!
//! A thin actix-web adapter over [`oauth_core`]: the `/verify` gate for Traefik ForwardAuth, nginx
//! `auth_request` and Caddy `forward_auth`, and the OAuth 2.1 endpoints MCP clients discover through it.
//!
//! Handlers extract, make one engine call, and shape the response; errors meet the wire in one place
//! ([`error`]). [`endpoints::ENDPOINTS`] is the only route table; [`routes::configure`] registers it for `main` and every test. [`run`] serves a
//! configuration on a listener until a shutdown future resolves, so tests can bind `127.0.0.1:0`.

pub mod admin_socket;
pub mod cli;
pub mod config;
pub mod endpoints;
pub mod error;
mod extract;
mod handlers;
mod identity_headers;
pub mod logging;
pub mod observe;
pub mod pages;
pub mod routes;
pub mod snippet;
pub mod state;
pub mod transfer;

#[cfg(test)]
mod testing;

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;

use actix_web::{App, HttpServer, web};

pub use config::Config;
pub use state::AppState;

/// Serves `config` on `listener` until `shutdown` resolves (or SIGTERM/SIGINT), then drains gracefully; the
/// admin socket ([`admin_socket`], if configured) is served alongside.
///
/// # Errors
/// Startup failures (store, engine, users) as `io::Error` with the cause in the message, and server I/O errors.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = AppState::build(&config)
        .await
        .map_err(std::io::Error::other)?;
    // Bound once the store is ours (a second process on the same store fails before touching the socket), and
    // removed when serving ends.
    #[cfg(unix)]
    let _admin = match config.admin_socket() {
        Some(path) => Some(
            admin_socket::serve(
                &path,
                admin_socket::AdminContext {
                    auth: state.auth.clone(),
                    users: config.users.clone().into(),
                },
            )
            .map_err(std::io::Error::other)?,
        ),
        None => None,
    };
    serve(state, listener, shutdown).await
}

/// The worker threads of the public listener: one per available core, at most the 512 actix-web accepts.
pub fn workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(512)
}

/// Serves a prepared state (see [`run`]).
///
/// # Errors
/// Server I/O errors.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The engine's housekeeping (revocation sync, purge, key reload…) for as long as the server runs.
    let auth = state.auth.clone();
    // Prometheus metrics on their own listener, never the public one.
    let metrics = match &state.metrics {
        Some((metrics, addr)) => {
            let listener = TcpListener::bind(addr).map_err(|e| {
                std::io::Error::new(e.kind(), format!("metrics.listen {addr}: {e}"))
            })?;
            let server = observe::metrics::serve(listener, Arc::clone(metrics), Arc::clone(&auth))?;
            let handle = server.handle();
            tokio::spawn(server);
            Some(handle)
        }
        None => None,
    };
    let maintenance = tokio::spawn(async move { auth.maintain().await });
    // Idle connections outlast the proxies' own idle timeouts, and their number is bounded (see `config::http`).
    let http = state.http;
    let workers = workers();
    if http.keep_alive <= config::HttpConfig::PROXY_IDLE_TIMEOUT {
        tracing::warn!(
            keep_alive_secs = http.keep_alive.as_secs(),
            "[http] keep_alive_secs is not above Caddy's ({} s) and Traefik's (90 s) idle timeouts: such a proxy \
             may send a check on a connection the gate is closing (Traefik then answers 500)",
            config::HttpConfig::PROXY_IDLE_TIMEOUT.as_secs()
        );
    }
    let connections = state.metrics.as_ref().map(|(m, _)| Arc::clone(m));
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .wrap_fn(routes::request_log)
            .wrap_fn(observe::request)
            .configure(routes::configure)
    })
    .workers(workers)
    .keep_alive(http.keep_alive)
    .max_connections(http.max_connections_per_worker(workers));
    // Connections are counted only for the metrics: without them no per-connection hook is installed.
    let server = match connections {
        Some(m) => server.on_connect(move |_, _| m.connection()),
        None => server,
    };
    let server = server.listen(listener)?.shutdown_timeout(10).run();
    let handle = server.handle();
    tokio::spawn(async move {
        shutdown.await;
        handle.stop(true).await;
    });
    let result = server.await;
    maintenance.abort();
    if let Some(metrics) = metrics {
        metrics.stop(true).await;
    }
    result
}
