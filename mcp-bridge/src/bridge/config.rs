//! The bridge's settings, checked once at startup: the command line ([`BridgeArgs`]) is the raw form, [`Config`]
//! the validated one, so that a bad `--env` or `--path` stops the bridge before it listens rather than when the
//! first user arrives.
//!
//! This module also owns the two rules about what a child may see of the world: the environment allow-list
//! ([`Config::child_env`]) and the `{owner}` encoding ([`owner_file_name`]), which makes any user id safe to use as
//! a file name (never `/`, `.` or `..`), because operators put it in paths such as `MEMORY_FILE_PATH`.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStringExt;
use std::time::Duration;

use axum::http::HeaderName;
use ipnet::IpNet;

use crate::cli::{BridgeArgs, ProcessPer};

use super::identity::Identity;

/// Variables always passed from the bridge's environment to children (when set).
pub const ALWAYS_PASSED: [&str; 6] = ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"];

/// A command line the bridge cannot run with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "no command: give the stdio MCP server after `--`, e.g. `mcp-bridge --listen 127.0.0.1:8931 -- npx server`"
    )]
    NoCommand,
    #[error(
        "--path {0:?}: must start with `/`, hold only letters, digits and `._~/-` (no route patterns such as `:id`, `*` or `{{id}}`), and not be `/health`"
    )]
    Path(String),
    #[error("--env {0:?}: expected NAME=VALUE with a non-empty NAME without `=` or NUL")]
    Env(String),
    #[error("--pass-env {0:?}: not a variable name")]
    PassEnv(String),
    #[error("--{0} {1:?}: not a valid HTTP header name")]
    Header(&'static str, String),
    #[error(
        "--allow-anonymous needs --process-per session: per user, a process belongs to a user id"
    )]
    AnonymousPerUser,
    #[error("--{0}: must be at least 1")]
    Zero(&'static str),
}

/// The validated settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub path: String,
    pub process_per: ProcessPer,
    /// Requests without a user id are served (per session only).
    pub allow_anonymous: bool,
    pub trusted_proxies: Vec<IpNet>,
    pub user_id_header: HeaderName,
    pub user_name_header: HeaderName,
    pub user_email_header: HeaderName,
    pub max_processes: usize,
    pub max_sessions: usize,
    pub max_sessions_per_user: usize,
    pub max_requests_in_flight: usize,
    pub max_requests_per_owner: usize,
    pub idle_timeout: Duration,
    pub session_idle_timeout: Duration,
    pub start_timeout: Duration,
    pub request_timeout: Duration,
    pub shutdown_grace: Duration,
    pub max_message_bytes: usize,
    /// The allow-listed part of the bridge's own environment, read once at startup.
    pub passed_env: Vec<(OsString, OsString)>,
    /// `--env` settings; VALUE may hold `{owner}`.
    pub set_env: Vec<(String, String)>,
    pub allow_origins: Vec<String>,
    pub program: OsString,
    pub args: Vec<OsString>,
}

impl Config {
    /// Checks the command line and reads the allow-listed variables from the bridge's environment.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the option at fault.
    pub fn from_args(args: BridgeArgs) -> Result<Self, ConfigError> {
        let mut command = args.command.into_iter();
        let program = command.next().ok_or(ConfigError::NoCommand)?;
        let path_ok = crate::cli::is_plain_path(&args.path) && args.path != "/health";
        if !path_ok {
            return Err(ConfigError::Path(args.path));
        }
        if args.allow_anonymous && args.process_per == ProcessPer::User {
            return Err(ConfigError::AnonymousPerUser);
        }
        let header = |option: &'static str, name: String| {
            HeaderName::try_from(name.as_str()).map_err(|_| ConfigError::Header(option, name))
        };
        let mut set_env = Vec::with_capacity(args.env.len());
        for setting in args.env {
            match setting.split_once('=') {
                Some((name, value))
                    if !name.is_empty() && !name.contains('\0') && !value.contains('\0') =>
                {
                    set_env.push((name.to_owned(), value.to_owned()));
                }
                _ => return Err(ConfigError::Env(setting)),
            }
        }
        let mut names: Vec<String> = ALWAYS_PASSED
            .iter()
            .map(|name| (*name).to_owned())
            .collect();
        for name in args.pass_env {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                return Err(ConfigError::PassEnv(name));
            }
            if !names.contains(&name) {
                names.push(name);
            }
        }
        let passed_env = names
            .into_iter()
            .filter_map(|name| std::env::var_os(&name).map(|value| (OsString::from(name), value)))
            .collect();
        for (option, value) in [
            ("max-processes", args.max_processes),
            ("max-sessions", args.max_sessions),
            ("max-message-bytes", args.max_message_bytes),
            ("max-sessions-per-user", args.max_sessions_per_user),
            ("max-requests-in-flight", args.max_requests_in_flight),
            ("max-requests-per-owner", args.max_requests_per_owner),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(option));
            }
        }
        Ok(Config {
            listen: args.listen,
            path: args.path,
            process_per: args.process_per,
            allow_anonymous: args.allow_anonymous,
            trusted_proxies: args.trusted_proxies,
            user_id_header: header("user-id-header", args.user_id_header)?,
            user_name_header: header("user-name-header", args.user_name_header)?,
            user_email_header: header("user-email-header", args.user_email_header)?,
            max_processes: args.max_processes,
            max_sessions: args.max_sessions,
            max_sessions_per_user: args.max_sessions_per_user,
            max_requests_in_flight: args.max_requests_in_flight,
            max_requests_per_owner: args.max_requests_per_owner,
            idle_timeout: args.idle_timeout,
            session_idle_timeout: args.session_idle_timeout,
            start_timeout: args.start_timeout,
            request_timeout: args.request_timeout,
            shutdown_grace: args.shutdown_grace,
            max_message_bytes: args.max_message_bytes,
            passed_env,
            set_env,
            allow_origins: args.allow_origins,
            program: OsString::from(program),
            args: command.map(OsString::from).collect(),
        })
    }

    /// The whole environment of a child: the allow-list, then `--env` (with `{owner}` replaced), then the
    /// identity the gate sent (`MCP_BRIDGE_USER_ID`, `MCP_BRIDGE_USER_NAME`, `MCP_BRIDGE_USER_EMAIL`) and, per
    /// session, `MCP_BRIDGE_SESSION_ID`. Nothing else of the request reaches the child.
    ///
    /// `owner` is the process owner already encoded by [`owner_file_name`] (the pool's key).
    pub fn child_env(
        &self,
        owner: &str,
        identity: &Identity,
        session: Option<&str>,
    ) -> Vec<(OsString, OsString)> {
        let mut env = self.passed_env.clone();
        for (name, value) in &self.set_env {
            env.push((
                OsString::from(name),
                OsString::from(value.replace("{owner}", owner)),
            ));
        }
        for (name, value) in [
            ("MCP_BRIDGE_USER_ID", &identity.user_id),
            ("MCP_BRIDGE_USER_NAME", &identity.user_name),
            ("MCP_BRIDGE_USER_EMAIL", &identity.user_email),
        ] {
            if let Some(value) = value {
                env.push((
                    OsString::from(name),
                    OsString::from_vec(value.as_bytes().to_vec()),
                ));
            }
        }
        if let Some(session) = session {
            env.push((
                OsString::from("MCP_BRIDGE_SESSION_ID"),
                OsString::from(session),
            ));
        }
        env
    }
}

/// `owner` as a safe file name: `[A-Za-z0-9_-]` kept, every other byte `%XX` (upper-case hex). The result never
/// holds `/` or `.`, so it is never a path, `.` or `..`, and distinct owners stay distinct.
pub fn owner_file_name(owner: &[u8]) -> String {
    let mut name = String::with_capacity(owner.len());
    for &byte in owner {
        if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
            name.push(char::from(byte));
        } else {
            name.push_str(&format!("%{byte:02X}"));
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Config, ConfigError, owner_file_name};
    use crate::cli::Cli;

    fn config(options: &[&str]) -> Result<Config, ConfigError> {
        let cli = Cli::try_parse_from(
            ["mcp-bridge"]
                .iter()
                .chain(options)
                .chain(&["--", "server"]),
        )
        .expect("the command line parses");
        Config::from_args(cli.bridge)
    }

    /// axum's router panics on route patterns; the bridge refuses them before it listens.
    #[test]
    fn path_is_a_plain_path() {
        for ok in ["/mcp", "/a/b-c_d.e~f", "/"] {
            assert!(config(&["--path", ok]).is_ok(), "{ok}");
        }
        for bad in [
            "mcp",
            "/mcp/:id",
            "/mcp/*rest",
            "/mcp/{id}",
            "/health",
            "/m cp",
            "/mcp?x",
        ] {
            let error = config(&["--path", bad]).expect_err(bad).to_string();
            assert!(error.starts_with("--path"), "{error}");
        }
    }

    #[test]
    fn owner_names_are_safe_file_names() {
        assert_eq!(owner_file_name(b"alice"), "alice");
        assert_eq!(owner_file_name(b"a_b-C9"), "a_b-C9");
        assert_eq!(owner_file_name(b".."), "%2E%2E");
        assert_eq!(owner_file_name(b"../etc/passwd"), "%2E%2E%2Fetc%2Fpasswd");
        assert_eq!(owner_file_name("ü@x".as_bytes()), "%C3%BC%40x");
        assert_eq!(owner_file_name(b"%"), "%25");
    }
}
