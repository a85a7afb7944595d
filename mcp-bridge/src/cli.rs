//! The command line: `mcp-bridge [OPTIONS] --listen ADDR -- CMD [ARGS…]` runs the bridge in front of a stdio MCP
//! server; `mcp-bridge echo --listen ADDR` runs the diagnostic MCP server.
//!
//! Every limit has a default an operator can override, so that no client can make the bridge hold an unbounded
//! number of processes, sessions, bytes or waiting requests.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;

/// Streamable HTTP in front of a stdio MCP server, one process per user (or per session).
#[derive(Debug, Parser)]
#[command(name = "mcp-bridge", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub bridge: BridgeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The diagnostic MCP server (Streamable HTTP): echo, printHeader, authContext, requestTiming, healthProbe.
    Echo(EchoArgs),
}

/// Who shares a child process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProcessPer {
    /// One process per user (the gate's user id header): a user's sessions share it; users never share one.
    /// The process is initialized once, by the user's first session: later sessions get its negotiated
    /// protocol version, whichever they asked for (clients that do not speak it disconnect).
    User,
    /// One process per MCP session (as other bridges do).
    Session,
}

#[derive(Debug, Args)]
pub struct BridgeArgs {
    /// Address to listen on (HTTP; put the proxy and the gate in front).
    #[arg(long, default_value = "127.0.0.1:8931")]
    pub listen: SocketAddr,
    /// Path of the MCP endpoint.
    #[arg(long, default_value = "/mcp")]
    pub path: String,
    /// Who shares a child process.
    #[arg(long, value_enum, default_value_t = ProcessPer::User)]
    pub process_per: ProcessPer,
    /// Addresses (CIDR) whose identity headers are trusted: the proxy's. Identity headers from any other address
    /// are refused.
    #[arg(long = "trusted-proxy", default_values = ["127.0.0.1/32", "::1/128"])]
    pub trusted_proxies: Vec<IpNet>,
    /// Serve requests without a user id (only with `--process-per session`): each session is then its own
    /// anonymous owner. Without it, every request needs a user id from a `--trusted-proxy` (401 otherwise), in
    /// both modes, so a bridge reachable without the gate serves nobody by accident.
    #[arg(long)]
    pub allow_anonymous: bool,
    /// Header carrying the user id (set by the gate).
    #[arg(long, default_value = "X-User-Id")]
    pub user_id_header: String,
    /// Header carrying the user's display name (set by the gate).
    #[arg(long, default_value = "X-User-Name")]
    pub user_name_header: String,
    /// Header carrying the user's email (set by the gate).
    #[arg(long, default_value = "X-User-Email")]
    pub user_email_header: String,
    /// Most child processes running at once.
    #[arg(long, default_value_t = 64)]
    pub max_processes: usize,
    /// Most MCP sessions open at once.
    #[arg(long, default_value_t = 1024)]
    pub max_sessions: usize,
    /// Most MCP sessions one user may have open at once (more are refused: 503), so that one user cannot take
    /// every session.
    #[arg(long, default_value_t = 16)]
    pub max_sessions_per_user: usize,
    /// Most requests in flight at once over all users (more are refused: 503, JSON-RPC error -32002).
    #[arg(long, default_value_t = 256)]
    pub max_requests_in_flight: usize,
    /// Most requests in flight at once for one process owner (a user, or a session per session).
    #[arg(long, default_value_t = 32)]
    pub max_requests_per_owner: usize,
    /// A process with no request in flight for this long is stopped (the next request starts a new one).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10m")]
    pub idle_timeout: Duration,
    /// A session with no request for this long is closed (its id then gets 404). Longer than `--idle-timeout`,
    /// so that a session outlives its idle process and simply restarts it.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1h")]
    pub session_idle_timeout: Duration,
    /// Time a new child has to answer `initialize`.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub start_timeout: Duration,
    /// Time a child has to answer one request.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2m")]
    pub request_timeout: Duration,
    /// Time a child has to exit after its stdin is closed, and again after SIGTERM, before SIGKILL.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    pub shutdown_grace: Duration,
    /// Largest JSON-RPC message, in bytes, from a client (HTTP body) or from a child (one line of stdout).
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    pub max_message_bytes: usize,
    /// Environment variable passed from the bridge's environment to children (repeatable). Always passed:
    /// PATH, HOME, LANG, LC_ALL, TZ, TMPDIR.
    #[arg(long = "pass-env", value_name = "NAME")]
    pub pass_env: Vec<String>,
    /// Environment variable set for children (repeatable): `NAME=VALUE`; `{owner}` in VALUE becomes the process
    /// owner (the user id, or the session id) encoded as a safe file name.
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Origin allowed to call the bridge (repeatable); requests with any other `Origin` header are refused. The
    /// bridge sends no CORS headers: for browser clients the proxy adds them.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    pub allow_origins: Vec<String>,
    /// The stdio MCP server: a program and its arguments, exec'd directly (no shell).
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct EchoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8932")]
    pub listen: SocketAddr,
    /// Path of the MCP endpoint.
    #[arg(long, default_value = "/mcp")]
    pub path: String,
    /// Serve MCP on stdin/stdout instead of HTTP (to run as a child of the bridge); `--listen` and `--path` are
    /// then not used.
    #[arg(long)]
    pub stdio: bool,
    /// `Host` header value (a name, or `name:port`) accepted over HTTP (repeatable), against DNS rebinding; `*`
    /// accepts any. Behind a proxy that passes the client's `Host` on, list the public host name.
    #[arg(long = "allow-host", value_name = "HOST", default_values = ["localhost", "127.0.0.1", "::1"])]
    pub allow_hosts: Vec<String>,
}

/// Whether `path` is a plain URL path (`/` then `[A-Za-z0-9._~/-]`) that axum routes as written: a route pattern
/// (`/:id`, `/*rest`, `/{id}`) would make its router panic, or match more than the operator meant.
pub fn is_plain_path(path: &str) -> bool {
    path.starts_with('/')
        && path
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"._~/-".contains(&byte))
}
