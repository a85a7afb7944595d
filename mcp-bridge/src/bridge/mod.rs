//! The bridge: Streamable HTTP in front of a stdio MCP server, a process per user (or per session).
//!
//! # Layout
//! - [`config`]: the command line checked once ([`Config`]), the child environment allow-list, `{owner}`.
//! - [`identity`]: the gate's identity headers, believed only from trusted proxies.
//! - [`http`]: the MCP endpoint and `/health`; admission (Origin, identity, body size).
//! - [`session`]: MCP sessions and who owns them.
//! - [`pool`]: one child per owner, the process limit, the idle reaper.
//! - [`child`]: one stdio server process: spawn, JSON-RPC multiplexing, stderr logging, graceful stop.
//! - [`jsonrpc`]: the error bodies the bridge writes itself.
//!
//! Other bridges (supergateway, mcp-proxy) run one process for every caller, so every user shares one server's
//! state; behind the gate the bridge knows who calls, so by default each user gets a process of their own, and
//! the user's identity reaches it in `MCP_BRIDGE_*` variables, never as request headers.

pub mod child;
pub mod config;
pub mod http;
pub mod identity;
pub mod jsonrpc;
pub mod pool;
pub mod session;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::cli::BridgeArgs;

pub use config::{Config, ConfigError};

/// Runs the bridge until SIGTERM or Ctrl-C; then stops every child gracefully and returns success.
pub fn run(args: BridgeArgs) -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
    let config = match Config::from_args(args) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("mcp-bridge: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("mcp-bridge: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!("cannot listen on {}: {error}", config.listen);
            return ExitCode::FAILURE;
        }
    };
    let config = Arc::new(config);
    let sessions = Arc::new(session::Sessions::new(
        config.max_sessions,
        config.max_sessions_per_user,
    ));
    let pool = Arc::new(pool::Pool::new(Arc::clone(&config), Arc::clone(&sessions)));
    let state = Arc::new(http::AppState {
        config: Arc::clone(&config),
        pool: Arc::clone(&pool),
        sessions,
        in_flight: Arc::default(),
        shutdown: CancellationToken::new(),
    });
    let reaper = tokio::spawn(reap(Arc::clone(&pool), reap_interval(&config)));
    tracing::info!(listen = %config.listen, path = %config.path, process_per = ?config.process_per,
        command = %config.program.to_string_lossy(), "mcp-bridge listening");
    // No Nagle delay: an SSE answer is written as several small chunks (the event, then the stream's end), and
    // with Nagle on the last one waits for the peer's delayed ACK, 40 ms on Linux, on every call (bench-bridge
    // measured it).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {error}");
        }
    });
    let app = http::router(Arc::clone(&state)).into_make_service_with_connect_info::<SocketAddr>();
    tokio::select! {
        served = axum::serve(listener, app) => {
            if let Err(error) = served {
                tracing::error!("the HTTP server stopped: {error}");
            }
        }
        () = shutdown_signal() => tracing::info!("shutting down: stopping every MCP server process"),
    }
    state.shutdown.cancel();
    reaper.abort();
    pool.stop_all().await;
    tracing::info!("mcp-bridge stopped");
    ExitCode::SUCCESS
}

/// A quarter of the shortest idle timeout, between 50 ms and 5 s.
fn reap_interval(config: &Config) -> Duration {
    (config.idle_timeout.min(config.session_idle_timeout) / 4)
        .clamp(Duration::from_millis(50), Duration::from_secs(5))
}

async fn reap(pool: Arc<pool::Pool>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    loop {
        ticks.tick().await;
        pool.reap();
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
