//! The whole authorization server and forward-auth gate on axum, on the embedded store in a temporary directory,
//! with one local user (`alice` / `wonderland`) and one MCP server (`{issuer}/mcp`, scope `mcp`). The adapter is
//! `examples/src/axum_server.rs`; this file only wires it up.
//!
//! Run with `cargo run -p examples --example axum [ADDRESS]` (default `127.0.0.1:8080`); stop with Ctrl-C.

use examples::axum_server::{self, DEMO_PASSWORD, DEMO_USER, Settings};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let addr = std::env::args().nth(1);
    let listener =
        tokio::net::TcpListener::bind(addr.as_deref().unwrap_or("127.0.0.1:8080")).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let dir = tempfile::tempdir()?;
    let server = axum_server::demo_server(&base, dir.path()).await?;
    println!("listening on {base}");
    println!(
        "user {DEMO_USER} / {DEMO_PASSWORD}; protected resource {base}/mcp; gate {base}/verify"
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    axum_server::serve(listener, server, Settings::default(), shutdown).await?;
    Ok(())
}
