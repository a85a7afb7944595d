//! # forwardauth-svc
//!
//! A thin actix-web adapter over [`oauth_core`]: the `/verify` gate for Traefik ForwardAuth, nginx
//! `auth_request` and Caddy `forward_auth`, and the OAuth 2.1 endpoints MCP clients discover through it.
//!
//! Handlers extract, make one engine call, and shape the response; errors meet the wire in one place
//! ([`error`]). [`endpoints::ENDPOINTS`] is the only route table; [`routes::configure`] registers it for `main` and every test. [`run`] serves a
//! configuration on a listener until a shutdown future resolves, so tests can bind `127.0.0.1:0`.

pub mod cli;
pub mod config;
pub mod endpoints;
pub mod error;
mod extract;
mod handlers;
mod identity_headers;
pub mod logging;
mod pages;
pub mod routes;
pub mod snippet;
pub mod state;
pub mod transfer;

use std::future::Future;
use std::net::TcpListener;
use std::time::Duration;

use actix_web::{App, HttpServer, web};

pub use config::Config;
pub use state::AppState;

/// How often revocations from other instances are pulled (a shared store also announces them at once) and
/// expired records purged.
const SYNC_EVERY: Duration = Duration::from_secs(1);
const PURGE_EVERY: Duration = Duration::from_secs(300);
/// How often rate-limit entries that carry no information any more are dropped.
const TIDY_EVERY: Duration = Duration::from_secs(60);
/// How often unused registered clients are collected.
const COLLECT_EVERY: Duration = Duration::from_secs(3600);
/// How often an instance on a shared store re-reads the signing keys (besides announcements), well within
/// [`config::REDIS_KEY_ACTIVATION_DELAY`], so a rotated-in key is loaded everywhere before it signs.
const KEY_RELOAD_EVERY: Duration = Duration::from_secs(10);

/// Serves `config` on `listener` until `shutdown` resolves (or SIGTERM/SIGINT), then drains gracefully.
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
    serve(state, listener, shutdown).await
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
    let background = tokio::spawn(background(state.auth.clone()));
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .wrap_fn(routes::request_log)
            .configure(routes::configure)
    })
    .listen(listener)?
    .shutdown_timeout(10)
    .run();
    let handle = server.handle();
    tokio::spawn(async move {
        shutdown.await;
        handle.stop(true).await;
    });
    let result = server.await;
    background.abort();
    result
}

/// The instance's housekeeping: revocation sync, purge, and on a shared store the announcements of other
/// instances and a periodic key reload. Failures are logged and retried on the next tick; while the store is away
/// `/verify` fails closed once the revocation state is too old (see `oauth_core::ServerConfig`).
async fn background(auth: std::sync::Arc<oauth_core::AuthServer>) {
    let mut events = auth.store().events();
    let shared = events.is_some();
    let mut sync = tokio::time::interval(SYNC_EVERY);
    let mut purge = tokio::time::interval(PURGE_EVERY);
    let mut keys = tokio::time::interval(KEY_RELOAD_EVERY);
    let mut tidy = tokio::time::interval(TIDY_EVERY);
    // The first collection one period after start, not at start: it walks every registered client, which is
    // work a start (and a restart loop) should not pay.
    let mut collect =
        tokio::time::interval_at(tokio::time::Instant::now() + COLLECT_EVERY, COLLECT_EVERY);
    sync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = sync.tick() => if let Err(e) = auth.sync().await {
                tracing::warn!(error = %e, "revocation sync failed");
            },
            _ = purge.tick() => if let Err(e) = auth.store().purge_expired().await {
                tracing::warn!(error = %e, "purge failed");
            },
            _ = tidy.tick() => auth.tidy_rate_limits(),
            _ = collect.tick() => match auth.collect_clients().await {
                Ok(c) if c.never_used + c.idle > 0 => tracing::info!(never_used = c.never_used, idle = c.idle, "unused clients deleted"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "collecting unused clients failed"),
            },
            _ = keys.tick(), if shared => if let Err(e) = auth.reload_keys().await {
                tracing::warn!(error = %e, "key reload failed");
            },
            event = next_event(&mut events) => {
                let event = match event {
                    Ok(e) => e,
                    // Announcements were dropped: catch up as after a reconnection.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => oauth_core::StoreEvent::Reconnected,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        events = None;
                        continue;
                    }
                };
                if let Err(e) = auth.on_store_event(event).await {
                    tracing::warn!(error = %e, ?event, "acting on a store announcement failed");
                }
            }
        }
    }
}

/// The next announcement; never resolves without a channel.
async fn next_event(
    events: &mut Option<tokio::sync::broadcast::Receiver<oauth_core::StoreEvent>>,
) -> Result<oauth_core::StoreEvent, tokio::sync::broadcast::error::RecvError> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
