//! The command line: `forwardauth-svc [--config PATH] [--log-format human|json] [COMMAND]`.
//!
//! `serve` (the default) runs the gate and the OAuth endpoints; the other commands are small tools over the same
//! configuration and store: `hash-password`, `check-config`, `health`, and the administrative commands
//! `clients list|show|delete`, `revoke --user|--client`, `keys rotate|list`, `users` and `store export|import`;
//! `snippet` prints a proxy configuration and needs no configuration file. They live here rather than in
//! `main.rs` so `main` stays a few lines of wiring and the commands can be tested with an in-memory store.
//!
//! Output meant for people or scripts (the `serve` banner, listings, hashes) goes to stdout; logs go to stderr.
//!
//! # Where the administrative commands run
//! The embedded store is locked by the process that has it open, so an administrative command first tries the
//! running service's admin socket ([`crate::admin_socket`]): if it answers, the service runs the command (the
//! same [`perform`] as here) and the command prints its answer. If nobody listens, the command opens the store
//! itself, as it always could with the service stopped, or beside Redis instances (which learn of revocations and
//! key changes through the store's announcements). A store that is locked while no socket answers is reported
//! as such, with the way to reach the service, rather than as the store's own lock error.

use std::io::{BufRead, IsTerminal as _, Read as _, Write};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use oauth_core::store::ClientRecord;
use oauth_core::{
    Admin, AuthServer, KeyError, KeyInfo, LocalUser, LocalUsers, OpenStoreError, StartError,
    StoreError, StoreExport, StoreTransfer,
};

use crate::admin_socket::{self, AdminRequest, AdminSocketError};

use crate::config::{self, Config, ConfigError, LogFormat, StoreConfig};
use crate::snippet::{self, Proxy, Snippet, SnippetError};
use crate::state::StartupError;

/// `forwardauth-svc`: an OAuth 2.1 authorization server and forward-auth gate for MCP servers.
#[derive(Clone, Debug, Parser)]
#[command(name = "forwardauth-svc", version, about)]
pub struct Cli {
    /// Configuration file (TOML). Without one, the built-in defaults and the FORWARDAUTH_* variables apply.
    #[arg(
        long,
        short = 'c',
        value_name = "PATH",
        env = "FORWARDAUTH_CONFIG",
        global = true
    )]
    pub config: Option<PathBuf>,
    /// Log format; wins over `log_format` in the file and FORWARDAUTH_LOG_FORMAT.
    #[arg(long, value_enum, value_name = "FORMAT", global = true)]
    pub log_format: Option<LogFormatArg>,
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// The command to run: the one given, or `serve`.
    pub fn command(&self) -> Command {
        self.command
            .clone()
            .unwrap_or_else(|| Command::Serve(ServeArgs::default()))
    }
}

/// `--log-format` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

impl From<LogFormatArg> for LogFormat {
    fn from(f: LogFormatArg) -> Self {
        match f {
            LogFormatArg::Human => LogFormat::Human,
            LogFormatArg::Json => LogFormat::Json,
        }
    }
}

/// The commands.
#[derive(Clone, Debug, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Serve the gate and the OAuth endpoints (the default).
    Serve(ServeArgs),
    /// Read a password (from a terminal without echo, twice; else one line of stdin) and print its argon2id hash
    /// for the users file.
    HashPassword,
    /// Load and validate the configuration, then print a summary.
    CheckConfig,
    /// Ask the running service's `/health` on the configured listen address; exit 0 if it answers 200, else 1
    /// (for container health checks: the image needs no HTTP client).
    Health,
    /// The local users (from the users file): username, e-mail, groups, live grants.
    Users,
    /// Registered OAuth clients.
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Revoke every grant (access and refresh tokens) of a user or of a client.
    Revoke(RevokeArgs),
    /// Access-token signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print the Traefik, nginx or Caddy configuration that puts this service in front of MCP servers.
    Snippet(SnippetArgs),
    /// Move clients, signing keys and live revocations between stores (e.g. embedded → Redis).
    #[command(subcommand)]
    Store(StoreCommand),
}

/// `store` subcommands.
#[derive(Clone, Debug, PartialEq, Eq, Subcommand)]
pub enum StoreCommand {
    /// Write the configured store's clients, signing keys (private!) and live revocations to a new file, created
    /// with mode 0600.
    Export {
        /// The file to create; it must not exist.
        file: PathBuf,
    },
    /// Add the contents of an export file to the configured store (existing clients and keys are kept).
    Import {
        /// The export file.
        file: PathBuf,
    },
}

/// `snippet` options.
#[derive(Clone, Debug, PartialEq, Eq, Args)]
pub struct SnippetArgs {
    /// The proxy.
    #[arg(long, value_enum)]
    pub proxy: ProxyArg,
    /// An MCP URL as clients are configured with it (repeat for more); each must be a `[[resources]]` resource.
    #[arg(long = "mcp-url", value_name = "URL", required = true)]
    pub mcp_urls: Vec<String>,
    /// Where the proxy reaches this service.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
    pub auth_url: String,
    /// Where the proxy reaches the MCP server (an origin; request paths are kept).
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:3001")]
    pub upstream: String,
    /// nginx and Caddy: listen on this address only.
    #[arg(long, value_name = "IP")]
    pub bind: Option<IpAddr>,
}

impl From<&SnippetArgs> for Snippet {
    fn from(a: &SnippetArgs) -> Self {
        Snippet {
            proxy: match a.proxy {
                ProxyArg::Traefik => Proxy::Traefik,
                ProxyArg::Nginx => Proxy::Nginx,
                ProxyArg::Caddy => Proxy::Caddy,
            },
            mcp_urls: a.mcp_urls.clone(),
            auth_url: a.auth_url.clone(),
            upstream: a.upstream.clone(),
            bind: a.bind,
        }
    }
}

/// `snippet --proxy` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProxyArg {
    /// Traefik v3 file-provider dynamic configuration (YAML).
    Traefik,
    /// nginx `server` blocks using `auth_request`.
    Nginx,
    /// Caddyfile site blocks using `forward_auth`.
    Caddy,
}

/// `serve` options.
#[derive(Clone, Debug, Default, PartialEq, Eq, Args)]
pub struct ServeArgs {
    /// Address to listen on; wins over `listen` and FORWARDAUTH_LISTEN.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
}

/// `clients` subcommands.
#[derive(Clone, Debug, PartialEq, Eq, Subcommand)]
pub enum ClientsCommand {
    /// List the registered clients: id, name, authentication method, redirect URIs.
    List,
    /// Show one client's registered metadata as JSON (never secrets).
    Show {
        /// The client id.
        id: String,
    },
    /// Revoke a client's tokens and delete its registration.
    Delete {
        /// The client id.
        id: String,
    },
}

/// `revoke` options: exactly one of `--user` or `--client`.
#[derive(Clone, Debug, PartialEq, Eq, Args)]
#[group(required = true, multiple = false)]
pub struct RevokeArgs {
    /// The user's subject, e.g. `local:alice` for the local user `alice`.
    #[arg(long, value_name = "SUBJECT")]
    pub user: Option<String>,
    /// The client id.
    #[arg(long, value_name = "ID")]
    pub client: Option<String>,
}

/// `keys` subcommands.
#[derive(Clone, Debug, PartialEq, Eq, Subcommand)]
pub enum KeysCommand {
    /// Make a fresh signing key active; the old one stays published until its last token has expired.
    Rotate,
    /// The signing keys: kid, algorithm, creation time, which one signs and which only verify (never private
    /// material).
    List,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store or the engine could not be started.
    #[error(transparent)]
    Startup(#[from] StartupError),
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        reason: std::io::Error,
    },
    /// The server stopped with an I/O error.
    #[error("server failed: {0}")]
    Serve(std::io::Error),
    /// Reading stdin or writing stdout failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The password read from stdin was empty.
    #[error("empty password: type the password on stdin, then Enter")]
    EmptyPassword,
    /// The password typed twice at a terminal differed.
    #[error("the two passwords differ; nothing was hashed")]
    PasswordMismatch,
    /// Hashing the password failed.
    #[error(transparent)]
    Hash(#[from] oauth_core::PasswordHashError),
    /// No client with that id.
    #[error("no client `{0}`")]
    UnknownClient(String),
    /// The command needs a persistent store.
    #[error(
        "the store backend is `memory`, which starts empty in every process; `{0}` needs the embedded or the redis store"
    )]
    MemoryStore(&'static str),
    /// Export or import failed.
    #[error(transparent)]
    Transfer(#[from] crate::transfer::TransferError),
    /// A store operation failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// An engine operation failed.
    #[error("{0}")]
    Engine(#[from] oauth_core::Error),
    /// Key rotation failed.
    #[error("signing keys: {0}")]
    Keys(#[from] KeyError),
    /// JSON encoding failed.
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The snippet's URLs are unusable.
    #[error(transparent)]
    Snippet(#[from] SnippetError),
    /// The admin socket could not be reached or answered nonsense.
    #[error(transparent)]
    AdminSocket(#[from] AdminSocketError),
    /// The running service ran the command, and it failed there.
    #[error("{0}")]
    Remote(String),
    /// The embedded store is locked by another process and no admin socket answers.
    #[error("the store {path} is in use by another process (a running forwardauth-svc?); {hint}")]
    StoreInUse {
        /// The store file.
        path: String,
        /// How to reach the running service instead.
        hint: String,
    },
    /// `health`: the service did not answer 200.
    #[error("unhealthy: http://{addr}/health: {reason}")]
    Unhealthy {
        /// The address asked.
        addr: SocketAddr,
        /// What went wrong.
        reason: String,
    },
}

/// The error and its causes on one line, skipping causes the message already quotes.
pub fn report(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !text.contains(&s) {
            text = format!("{text}: {s}");
        }
        cause = c.source();
    }
    text
}

/// The lines `main` prints for a failure, one per problem (a configuration lists every problem it has).
pub fn report_lines(error: &CliError) -> Vec<String> {
    match error {
        CliError::Config(c) => c.problems().into_iter().map(|p| report(p)).collect(),
        other => vec![report(other)],
    }
}

/// The exit status for a failure: 2 for a configuration that cannot be used, 1 for anything else.
pub fn exit_status(error: &CliError) -> u8 {
    match error {
        CliError::Config(_) => 2,
        _ => 1,
    }
}

/// Loads the configuration named by `--config` (or `FORWARDAUTH_CONFIG`), with `serve --listen` and
/// `--log-format` applied on top of the file and the environment.
///
/// # Errors
/// [`CliError::Config`].
pub fn load_config(cli: &Cli, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, CliError> {
    let listen = match cli.command() {
        Command::Serve(args) => args.listen,
        _ => None,
    };
    load_with_listen(cli, listen, env)
}

fn load_with_listen(
    cli: &Cli,
    listen: Option<SocketAddr>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, CliError> {
    // `--listen` goes in as FORWARDAUTH_LISTEN so the default issuer follows it.
    let env = |k: &str| match listen {
        Some(addr) if k == config::ENV_LISTEN => Some(addr.to_string()),
        _ => env(k),
    };
    let mut config = config::load(cli.config.as_deref(), &env)?;
    if let Some(f) = cli.log_format {
        config.log_format = f.into();
    }
    Ok(config)
}

/// Runs every command but `hash-password` (which needs no configuration; see [`hash_password`]).
///
/// # Errors
/// [`CliError`].
pub async fn execute(
    cli: &Cli,
    config: Config,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), CliError> {
    let mut out = std::io::stdout();
    match cli.command() {
        Command::Serve(_) => serve(cli, config, env, &mut out).await,
        Command::HashPassword => hash_password_stdin(),
        Command::Snippet(args) => print_snippet(&args, &mut out),
        Command::CheckConfig => check_config(&config, &mut out),
        Command::Health => health(&config, &mut out),
        Command::Clients(c) => {
            let request = match c {
                ClientsCommand::List => AdminRequest::ClientsList,
                ClientsCommand::Show { id } => AdminRequest::ClientsShow { id },
                ClientsCommand::Delete { id } => AdminRequest::ClientsDelete { id },
            };
            administer(&config, request, &mut out).await
        }
        Command::Revoke(args) => {
            let request = match (args.user, args.client) {
                (Some(subject), _) => AdminRequest::RevokeUser { subject },
                (None, Some(id)) => AdminRequest::RevokeClient { id },
                // clap's argument group requires one of the two.
                (None, None) => return Ok(()),
            };
            administer(&config, request, &mut out).await
        }
        Command::Keys(KeysCommand::Rotate) => {
            administer(&config, AdminRequest::KeysRotate, &mut out).await
        }
        Command::Keys(KeysCommand::List) => {
            administer(&config, AdminRequest::KeysList, &mut out).await
        }
        Command::Users => administer(&config, AdminRequest::Users, &mut out).await,
        Command::Store(c) => store_transfer(&config, &c, &mut out).await,
    }
}

/// Runs an administrative command: over the running service's admin socket if it answers, else on the store.
async fn administer(
    config: &Config,
    request: AdminRequest,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let socket = config.admin_socket();
    if ask_service(socket.as_deref(), &request, out)
        .await?
        .is_some()
    {
        return Ok(());
    }
    let auth = admin_auth(config, request.name(), socket.as_deref()).await?;
    let actor = own_actor();
    let admin = auth.admin();
    let admin = actor.as_deref().map_or(admin, |a| admin.by(a));
    perform(admin, &config.users, request, out).await?;
    Ok(())
}

/// Who runs an administrative command on a store this process opened, as the audit trail names them: this
/// process's effective uid, as the admin socket names its peer ([`admin_socket::actor`]); no name lookup.
#[cfg(unix)]
fn own_actor() -> Option<String> {
    Some(admin_socket::actor(rustix::process::geteuid().as_raw()))
}

/// Off Unix there is no uid to name: the audit trail shows no actor.
#[cfg(not(unix))]
fn own_actor() -> Option<String> {
    None
}

/// Sends `request` to the service at `socket`; `None` if nobody listens there (or no socket is configured).
/// The service's output goes to `out`; its error becomes [`CliError::Remote`].
async fn ask_service(
    socket: Option<&Path>,
    request: &AdminRequest,
    out: &mut (dyn Write + Send),
) -> Result<Option<Option<serde_json::Value>>, CliError> {
    let Some(path) = socket else {
        return Ok(None);
    };
    #[cfg(unix)]
    let answer = admin_socket::send(path, request).await?;
    // No admin socket off Unix: the commands open the store.
    #[cfg(not(unix))]
    let answer: Option<admin_socket::AdminResponse> = {
        let _ = (path, request);
        None
    };
    let Some(answer) = answer else {
        return Ok(None);
    };
    out.write_all(answer.output.as_bytes())?;
    if let Some(e) = answer.error {
        return Err(CliError::Remote(e));
    }
    Ok(Some(answer.export))
}

/// Opens the configured store and engine for an administrative command, which no socket answered.
async fn admin_auth(
    config: &Config,
    command: &'static str,
    socket: Option<&Path>,
) -> Result<std::sync::Arc<AuthServer>, CliError> {
    if config.store == StoreConfig::Memory {
        return Err(CliError::MemoryStore(command));
    }
    crate::state::build_auth(config)
        .await
        .map_err(|e| in_use(e, socket))
}

/// A locked store as [`CliError::StoreInUse`], saying how to reach the service that holds it.
fn in_use(error: StartupError, socket: Option<&Path>) -> CliError {
    let path = match &error {
        StartupError::Store(OpenStoreError::Locked { path })
        | StartupError::Engine(StartError::OpenStore(OpenStoreError::Locked { path })) => {
            path.clone()
        }
        _ => return error.into(),
    };
    let hint = match socket {
        Some(s) => format!(
            "nothing answers on its admin socket {}: run this command with the configuration the service runs with \
             (its `[admin] socket`), or stop the service to run it on the store directly",
            s.display()
        ),
        None => "the admin socket is off (`[admin] socket`): enable it in the service's configuration and restart \
                 the service, or stop the service to run this command on the store directly"
            .to_owned(),
    };
    CliError::StoreInUse { path, hint }
}

/// Runs an administrative command through `admin` (an engine's [`Admin`] facet, naming who acts), printing what
/// the command prints to `out`: the one implementation behind the command line on a store it opened and the
/// running service's admin socket. `store export` returns the export (the caller writes the file); every other
/// command returns `None`.
///
/// # Errors
/// [`CliError`], e.g. [`CliError::UnknownClient`].
pub async fn perform(
    admin: Admin<'_>,
    users: &[LocalUser],
    request: AdminRequest,
    out: &mut (dyn Write + Send),
) -> Result<Option<serde_json::Value>, CliError> {
    match request {
        AdminRequest::ClientsList => clients_list(admin, out).await?,
        AdminRequest::ClientsShow { id } => clients_show(admin, &id, out).await?,
        AdminRequest::ClientsDelete { id } => clients_delete(admin, &id, out).await?,
        AdminRequest::RevokeUser { subject } => {
            let n = admin.revoke_user(&subject).await?;
            writeln!(out, "revoked {n} grant(s) of user {subject}")?;
        }
        AdminRequest::RevokeClient { id } => {
            let n = admin.revoke_client(&id).await?;
            writeln!(out, "revoked {n} grant(s) of client {id}")?;
        }
        AdminRequest::KeysRotate => {
            let kid = admin.rotate_keys().await?;
            writeln!(out, "new signing key: {kid}")?;
        }
        AdminRequest::KeysList => keys_list(admin, out).await?,
        AdminRequest::Users => users_list(admin, users, out).await?,
        AdminRequest::StoreExport => {
            return Ok(Some(serde_json::to_value(admin.export().await?)?));
        }
        AdminRequest::StoreImport { export } => {
            const NAME: &str = "the export";
            let export: StoreExport = serde_json::from_value(export).map_err(|e| {
                crate::transfer::TransferError::Format {
                    path: NAME.into(),
                    reason: e.to_string(),
                }
            })?;
            let s = admin
                .import(&export)
                .await
                .map_err(|e| crate::transfer::import_error(NAME, e))?;
            imported(&crate::transfer::Summary::from(s), out)?;
        }
    }
    Ok(None)
}

/// `store export FILE` / `store import FILE`: through the running service's admin socket if it answers (the
/// file is written and read here, with this user's permissions), else on the store alone, without starting the
/// engine (which would generate a signing key in an empty target).
async fn store_transfer(
    config: &Config,
    command: &StoreCommand,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let socket = config.admin_socket();
    let request = match command {
        StoreCommand::Export { .. } => AdminRequest::StoreExport,
        StoreCommand::Import { file } => AdminRequest::StoreImport {
            export: serde_json::to_value(crate::transfer::read(file)?)?,
        },
    };
    if let Some(export) = ask_service(socket.as_deref(), &request, out).await? {
        if let (StoreCommand::Export { file }, Some(export)) = (command, export) {
            let export: StoreExport = serde_json::from_value(export)?;
            exported(&crate::transfer::export(&export, file)?, file, out)?;
        }
        return Ok(());
    }
    if config.store == StoreConfig::Memory {
        return Err(CliError::MemoryStore("store"));
    }
    let clock: std::sync::Arc<dyn oauth_core::Clock> = std::sync::Arc::new(oauth_core::SystemClock);
    let store = StoreTransfer::open(
        &crate::state::store_settings(&config.store),
        crate::state::sealer(config)?,
        clock,
    )
    .map_err(|e| in_use(StartupError::from(e), socket.as_deref()))?;
    match command {
        StoreCommand::Export { file } => {
            let s = crate::transfer::export(&store.export().await?, file)?;
            exported(&s, file, out)?;
        }
        StoreCommand::Import { file } => {
            let s = crate::transfer::import(&store, file).await?;
            imported(&s, out)?;
        }
    }
    Ok(())
}

fn exported(
    s: &crate::transfer::Summary,
    file: &Path,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    writeln!(
        out,
        "exported {} client(s), {} signing key(s) and {} revocation(s) to {} (mode 0600: it holds private keys)",
        s.clients,
        s.keys,
        s.revocations,
        file.display()
    )?;
    Ok(())
}

fn imported(s: &crate::transfer::Summary, out: &mut dyn Write) -> Result<(), CliError> {
    writeln!(
        out,
        "imported {} client(s) ({} already present), {} signing key(s) ({} already present) and {} revocation(s)",
        s.clients, s.clients_present, s.keys, s.keys_present, s.revocations
    )?;
    Ok(())
}

/// `health`: `GET /health` on the configured listen address (its loopback address when it listens on every
/// address), with a plain HTTP/1.1 request so that a container image needs no HTTP client.
///
/// # Errors
/// [`CliError::Unhealthy`] unless the answer is 200 within 5 seconds.
pub fn health(config: &Config, out: &mut dyn Write) -> Result<(), CliError> {
    let mut addr = config.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            SocketAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        });
    }
    let status = http_status(addr, "/health", Duration::from_secs(5))
        .map_err(|reason| CliError::Unhealthy { addr, reason })?;
    if status != 200 {
        return Err(CliError::Unhealthy {
            addr,
            reason: format!("answered {status}"),
        });
    }
    writeln!(out, "healthy: http://{addr}/health answered 200")?;
    Ok(())
}

/// The status code of `GET path` at `addr`.
fn http_status(addr: SocketAddr, path: &str, timeout: Duration) -> Result<u16, String> {
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: forwardauth-svc health\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    stream
        .take(1024)
        .read_to_end(&mut head)
        .map_err(|e| e.to_string())?;
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or_default();
    line.strip_prefix("HTTP/1.1 ")
        .or_else(|| line.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {line:?}"))
}

/// `serve`: binds, prints the banner (and, on a fresh setup, what to do next), then serves until SIGTERM/SIGINT.
///
/// With port 0 the configuration is loaded again with the port actually bound, so a default issuer names it.
async fn serve(
    cli: &Cli,
    config: Config,
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let listener = TcpListener::bind(config.listen).map_err(|reason| CliError::Bind {
        addr: config.listen,
        reason,
    })?;
    let addr = listener.local_addr()?;
    let config = if config.listen.port() == 0 {
        load_with_listen(cli, Some(addr), env)?
    } else {
        config
    };
    writeln!(out, "forwardauth-svc listening on http://{addr}")?;
    if config.source.is_none() || config.users.is_empty() {
        write!(out, "{}", next_steps(&config))?;
    }
    out.flush()?;
    tracing::info!(%addr, issuer = %config.server.issuer, "listening");
    crate::run(config, listener, std::future::pending())
        .await
        .map_err(CliError::Serve)
}

/// What to do after a first start: the issuer and its metadata URL, and how to add a user.
pub fn next_steps(config: &Config) -> String {
    let issuer = &config.server.issuer;
    let mut s = String::new();
    s.push_str(&format!("\nIssuer:                        {issuer}\n"));
    s.push_str(&format!(
        "Authorization server metadata: {issuer}/.well-known/oauth-authorization-server\n"
    ));
    for r in &config.server.resources {
        s.push_str(&format!("Protected resource:            {}\n", r.resource));
    }
    if config.source.is_none() {
        // The built-in resource is this service's own address, where nothing is served: say so, and what to do.
        s.push_str(concat!(
            "  (a placeholder of the built-in defaults: no MCP server is served there. Write a configuration\n",
            "   whose [[resources]] resource is the URL your proxy serves the MCP server at, starting from\n",
            "   examples/quickstart.toml; README.md \"From zero to a protected MCP server\" walks through it.)\n",
        ));
    }
    if config.users.is_empty() && config.providers.is_empty() {
        s.push_str(concat!(
            "\nNo users yet, so nobody can log in. To add one:\n",
            "  1. forwardauth-svc hash-password          (type the password twice; or pipe it in, one line)\n",
            "  2. put the hash in a users file, e.g. users.toml:\n",
            "       [[users]]\n",
            "       username = \"alice\"\n",
            "       password_hash = \"$argon2id$...\"\n",
            "  3. point the configuration at it: [users] file = \"users.toml\"\n",
            "     (or set FORWARDAUTH_USERS_FILE=users.toml), then restart.\n",
        ));
    } else {
        s.push_str("\nUsers log in with:\n");
        if !config.users.is_empty() {
            s.push_str(&format!(
                "  a password                    {} local user(s) from the users file\n",
                config.users.len()
            ));
        }
        for p in &config.providers {
            let (name, kind, at) = provider_summary(p);
            s.push_str(&format!("  {name:<29} {kind}, {at}\n"));
        }
    }
    s.push_str(concat!(
        "\nPut Traefik, nginx or Caddy in front of your MCP server with the configuration\n",
        "  forwardauth-svc snippet --proxy traefik|nginx|caddy --mcp-url <MCP URL> prints (see README.md).\n",
    ));
    s
}

/// `snippet`: the proxy configuration on `out`.
///
/// # Errors
/// [`CliError::Snippet`] for unusable URLs, I/O.
pub fn print_snippet(args: &SnippetArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let text = snippet::render(&Snippet::from(args))?;
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// `hash-password` on the process's stdin and stdout. From a terminal the password is read without echo, twice
/// (a typo would otherwise lock the user out); from a pipe, one line, so that scripts and tests can feed it.
///
/// # Errors
/// As [`hash_password`]; [`CliError::PasswordMismatch`] when the two entries differ.
pub fn hash_password_stdin() -> Result<(), CliError> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let first = rpassword::prompt_password("Password (not shown): ")?;
        let again = rpassword::prompt_password("Again: ")?;
        if first != again {
            return Err(CliError::PasswordMismatch);
        }
        return hash_password(&mut first.as_bytes(), &mut std::io::stdout());
    }
    hash_password(&mut stdin.lock(), &mut std::io::stdout())
}

/// `hash-password`: one line from `input` (trailing newline stripped), its argon2id PHC hash to `out`.
///
/// # Errors
/// [`CliError::EmptyPassword`] for an empty line or no input, I/O and hashing failures.
pub fn hash_password(input: &mut dyn BufRead, out: &mut dyn Write) -> Result<(), CliError> {
    let mut line = String::new();
    input.read_line(&mut line)?;
    let password = line
        .strip_suffix('\n')
        .map_or(line.as_str(), |l| l.strip_suffix('\r').unwrap_or(l));
    if password.is_empty() {
        return Err(CliError::EmptyPassword);
    }
    let hash = LocalUsers::hash_password(password)?;
    writeln!(out, "{hash}")?;
    out.flush()?;
    Ok(())
}

/// `check-config`: a short summary of a configuration that loaded.
///
/// # Errors
/// I/O.
pub fn check_config(config: &Config, out: &mut dyn Write) -> Result<(), CliError> {
    let source = config.source.as_ref().map_or_else(
        || "built-in defaults".to_owned(),
        |p| p.display().to_string(),
    );
    writeln!(out, "configuration OK ({source})")?;
    writeln!(out, "  issuer:    {}", config.server.issuer)?;
    writeln!(out, "  listen:    {}", config.listen)?;
    let store = match &config.store {
        StoreConfig::Embedded { path, cache_bytes } => format!(
            "embedded, {}, cache {} MiB",
            path.display(),
            cache_bytes / (1024 * 1024)
        ),
        StoreConfig::Memory => "memory (lost at exit)".to_owned(),
        StoreConfig::Redis(r) => format!(
            "redis, {}, key prefix {}",
            oauth_core::store::redact_url(&r.url.0),
            r.key_prefix
        ),
    };
    writeln!(out, "  store:     {store}")?;
    let secrets = match (&config.key_encryption.current, &config.store) {
        (Some(key), _) => format!("sealed with key-encryption key {}", key.id()),
        (None, StoreConfig::Embedded { path, .. }) => format!(
            "sealed with the key-encryption key in {} (generated on first start)",
            crate::state::generated_key_path(path).display()
        ),
        (None, _) => "sealed with a key-encryption key for this process only".to_owned(),
    };
    let previous = config.key_encryption.previous.len();
    let previous = if previous > 0 {
        format!("; {previous} previous key(s) still open what they sealed")
    } else {
        String::new()
    };
    writeln!(out, "  secrets:   {secrets}{previous}")?;
    if let Some(t) = &config.tracing {
        writeln!(
            out,
            "  tracing:   spans exported over OTLP/HTTP to {} as {}",
            t.traces_url, t.service_name
        )?;
    }
    for r in &config.server.resources {
        let name = r
            .name
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        let required = if r.required_scopes.is_empty() {
            "none".to_owned()
        } else {
            r.required_scopes.join(" ")
        };
        let server_wide = &config.server.policy;
        let access = match (r.policy.is_open(), server_wide.is_open()) {
            (true, true) => "every user".to_owned(),
            (true, false) => "as [policy]".to_owned(),
            (false, true) => policy_text(&r.policy),
            (false, false) => format!("{}, within [policy]", policy_text(&r.policy)),
        };
        writeln!(
            out,
            "  resource:  {}{name}; requires scope: {required}; access: {access}",
            r.resource
        )?;
        for g in &r.scope_grants {
            writeln!(
                out,
                "             scope {} only for {}",
                g.scope,
                policy_text(&g.holders)
            )?;
        }
        tool_rules_note(r, config.gate.max_body_bytes, out)?;
    }
    let policy = if config.server.policy.is_open() {
        "none (every user who can log in)".to_owned()
    } else {
        policy_text(&config.server.policy)
    };
    writeln!(out, "  policy:    {policy}")?;
    for p in &config.providers {
        let (name, kind, at) = provider_summary(p);
        writeln!(out, "  provider:  {} ({kind}, {at}): {name}", p.id())?;
    }
    writeln!(out, "  users:     {}", config.users.len())?;
    Ok(())
}

/// Who an access policy admits, list by list: `users local:alice; groups local:admins`.
fn policy_text(p: &oauth_core::AccessPolicy) -> String {
    if p.is_open() {
        return "every user who can log in".to_owned();
    }
    [
        ("users", &p.users),
        ("emails", &p.emails),
        ("email domains", &p.email_domains),
        ("groups", &p.groups),
    ]
    .iter()
    .filter(|(_, list)| !list.is_empty())
    .map(|(what, list)| format!("{what} {}", list.join(", ")))
    .collect::<Vec<_>>()
    .join("; ")
}

/// A provider as the banner and `check-config` name it: display name, type, and where it is (the OpenID
/// issuer, or GitHub's web address).
fn provider_summary(p: &crate::config::ProviderConfig) -> (&str, &'static str, String) {
    match p {
        crate::config::ProviderConfig::Oidc(c) => {
            (&c.display_name, "oidc", format!("issuer {}", c.issuer_url))
        }
        crate::config::ProviderConfig::Github(c) => {
            (&c.display_name, "github", c.web_base_url.clone())
        }
    }
}

/// For a resource with per-tool scopes: the rules, and where the gate reads the call from, which depends on
/// the proxy (only Traefik's `forwardBody` sends the gate the body) and on `mcp_server_validates_headers`.
fn tool_rules_note(
    r: &oauth_core::ResourceConfig,
    max_body_bytes: usize,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    if r.tool_scopes.is_empty() {
        return Ok(());
    }
    let rules: Vec<String> = r
        .tool_scopes
        .iter()
        .map(|t| format!("{} needs {}", t.key, t.scopes.join(" ")))
        .collect();
    writeln!(out, "             tool scopes: {}", rules.join("; "))?;
    writeln!(
        out,
        "             read from the JSON-RPC body where the proxy forwards it (Traefik forwardBody, at most {} KiB);",
        max_body_bytes / 1024
    )?;
    if r.mcp_server_validates_headers {
        writeln!(
            out,
            "             without it (nginx, Caddy) from the Mcp-Method/Mcp-Name headers of MCP 2026-07-28 requests, which"
        )?;
        writeln!(
            out,
            "             the MCP server must reject when they disagree with the body (mcp_server_validates_headers), and"
        )?;
        writeln!(
            out,
            "             every POST of an older client needs every tool scope"
        )?;
    } else {
        writeln!(
            out,
            "             without it (nginx, Caddy) every POST needs every tool scope; set mcp_server_validates_headers"
        )?;
        writeln!(
            out,
            "             = true if the MCP server rejects Mcp-Method/Mcp-Name headers that disagree with the body"
        )?;
    }
    Ok(())
}

/// `clients list`.
async fn clients_list(admin: Admin<'_>, out: &mut (dyn Write + Send)) -> Result<(), CliError> {
    let clients = admin.clients().await?;
    if clients.is_empty() {
        writeln!(out, "no clients registered")?;
        return Ok(());
    }
    let rows: Vec<[String; 4]> = clients
        .iter()
        .map(|c| {
            [
                c.client_id.clone(),
                c.metadata.client_name.clone().unwrap_or_else(|| "-".into()),
                c.metadata.token_endpoint_auth_method.clone(),
                c.metadata.redirect_uris.join(" "),
            ]
        })
        .collect();
    table(
        ["CLIENT ID", "NAME", "AUTH METHOD", "REDIRECT URIS"],
        &rows,
        out,
    )
}

/// Rows under a header, each column as wide as its widest cell (the last one as it comes).
fn table<const N: usize>(
    header: [&str; N],
    rows: &[[String; N]],
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let header = header.map(String::from);
    // Cells come from anyone who registered a client: no control character reaches the operator's terminal
    // (an escape sequence, or a line break that fakes a row).
    let rows: Vec<[String; N]> = rows.iter().map(|r| r.clone().map(printable)).collect();
    let lines = || std::iter::once(&header).chain(&rows);
    let widths: Vec<usize> = (0..N)
        .map(|i| {
            lines()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in lines() {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                let w = widths.get(i).copied().unwrap_or(0);
                line.push_str(&format!("{cell:w$}  "));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// `cell` with every control character written as `\u{…}`.
fn printable(cell: String) -> String {
    if !cell.chars().any(char::is_control) {
        return cell;
    }
    cell.chars()
        .map(|c| {
            if c.is_control() {
                format!("\\u{{{:x}}}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `users`: the local users the configuration (or the running service) holds, with their live grants.
async fn users_list(
    admin: Admin<'_>,
    users: &[LocalUser],
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    if users.is_empty() {
        writeln!(out, "no local users (the users file is `[users] file`)")?;
        return Ok(());
    }
    let mut rows = Vec::with_capacity(users.len());
    for u in users {
        let grants = admin.user_grants(&format!("local:{}", u.username)).await?;
        rows.push([
            u.username.clone(),
            u.email.clone().unwrap_or_else(|| "-".into()),
            if u.groups.is_empty() {
                "-".into()
            } else {
                u.groups.join(",")
            },
            grants.to_string(),
        ]);
    }
    table(["USERNAME", "EMAIL", "GROUPS", "GRANTS"], &rows, out)
}

/// A time as `YYYY-MM-DD HH:MM:SS UTC`.
fn utc(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map_or_else(
            || secs.to_string(),
            |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        )
}

/// What a key does at `now`; `signer` is the key the engine signs with (the latest started, unretired one).
fn key_status(k: &KeyInfo, signer: Option<&str>, now: u64) -> String {
    let starts = k.not_before.unwrap_or(k.created_at);
    if k.publish_until.is_some_and(|u| u <= now) {
        "expired (no longer published)".to_owned()
    } else if signer == Some(k.kid.as_str()) {
        match k.retired_at {
            Some(r) => format!("signs (until {})", utc(r)),
            None => "signs".to_owned(),
        }
    } else if starts > now {
        format!("next: signs from {}", utc(starts))
    } else {
        match k.publish_until {
            Some(u) => format!("verifies only (published until {})", utc(u)),
            None => "verifies only".to_owned(),
        }
    }
}

/// `keys list`.
async fn keys_list(admin: Admin<'_>, out: &mut (dyn Write + Send)) -> Result<(), CliError> {
    let keys = admin.keys().await?;
    let now = oauth_core::Clock::unix(&oauth_core::SystemClock);
    let signer = admin.signing_kid();
    let rows: Vec<[String; 4]> = keys
        .iter()
        .map(|k| {
            [
                k.kid.clone(),
                k.alg.clone(),
                utc(k.created_at),
                key_status(k, signer.as_deref(), now),
            ]
        })
        .collect();
    if rows.is_empty() {
        writeln!(
            out,
            "no signing keys (the service makes one at its first start)"
        )?;
        return Ok(());
    }
    table(["KID", "ALG", "CREATED", "STATUS"], &rows, out)
}

/// The JSON `clients show` prints: ids, timestamps and metadata; the stored hashes stay out.
pub fn client_json(c: &ClientRecord) -> serde_json::Value {
    serde_json::json!({
        "client_id": c.client_id,
        "client_id_issued_at": c.issued_at,
        "has_client_secret": c.secret_hash.is_some(),
        "client_secret_expires_at": c.secret_hash.is_some().then_some(c.secret_expires_at),
        "metadata": c.metadata,
    })
}

/// What the store found for client `id`, or [`CliError::UnknownClient`].
fn known<T>(id: &str, found: Option<T>) -> Result<T, CliError> {
    found.ok_or_else(|| CliError::UnknownClient(id.to_owned()))
}

/// `clients show ID`.
async fn clients_show(
    admin: Admin<'_>,
    id: &str,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let client = known(id, admin.client(id).await?)?;
    writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(&client_json(&client))?
    )?;
    Ok(())
}

/// `clients delete ID`: revokes the client's grants, then deletes the registration.
async fn clients_delete(
    admin: Admin<'_>,
    id: &str,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let grants = known(id, admin.delete_client(id).await?)?;
    writeln!(out, "deleted client {id}; revoked {grants} grant(s)")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("forwardauth-svc").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn the_command_defaults_to_serve_and_global_options_go_anywhere() {
        let cli = parse(&["--config", "x.toml"]);
        assert_eq!(cli.config, Some(PathBuf::from("x.toml")));
        assert_eq!(cli.command(), Command::Serve(ServeArgs::default()));

        let cli = parse(&["check-config", "--config", "y.toml", "--log-format", "json"]);
        assert_eq!(cli.config, Some(PathBuf::from("y.toml")));
        assert_eq!(cli.log_format, Some(LogFormatArg::Json));
        assert_eq!(cli.command(), Command::CheckConfig);

        let cli = parse(&["serve", "--listen", "127.0.0.1:0"]);
        assert_eq!(
            cli.command(),
            Command::Serve(ServeArgs {
                listen: Some("127.0.0.1:0".parse().unwrap())
            })
        );
    }

    #[test]
    fn snippet_prints_the_configuration_for_the_parsed_options() {
        let cli = parse(&[
            "snippet",
            "--proxy",
            "caddy",
            "--mcp-url",
            "https://mcp.example.com/mcp",
            "--upstream",
            "http://mcp:3001",
        ]);
        let Command::Snippet(args) = cli.command() else {
            panic!("not a snippet command: {cli:?}");
        };
        assert_eq!(args.auth_url, "http://127.0.0.1:8080");
        let mut out = Vec::new();
        print_snippet(&args, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("# forwardauth-svc snippet --proxy caddy --mcp-url https://mcp.example.com/mcp --auth-url http://127.0.0.1:8080 --upstream http://mcp:3001\n"), "{text}");
        assert!(Cli::try_parse_from(["forwardauth-svc", "snippet", "--proxy", "nginx"]).is_err());
    }

    #[test]
    fn revoke_needs_exactly_one_of_user_and_client() {
        assert!(Cli::try_parse_from(["forwardauth-svc", "revoke"]).is_err());
        assert!(
            Cli::try_parse_from(["forwardauth-svc", "revoke", "--user", "a", "--client", "b"])
                .is_err()
        );
        let cli = parse(&["revoke", "--user", "local:alice"]);
        assert_eq!(
            cli.command(),
            Command::Revoke(RevokeArgs {
                user: Some("local:alice".into()),
                client: None
            })
        );
    }

    #[test]
    fn serve_listen_wins_over_the_environment_and_moves_the_default_issuer() {
        let cli = parse(&["serve", "--listen", "127.0.0.1:9999"]);
        let env = |k: &str| (k == config::ENV_LISTEN).then(|| "127.0.0.1:7777".to_owned());
        let config = load_config(&cli, &env).unwrap();
        assert_eq!(config.listen, "127.0.0.1:9999".parse().unwrap());
        assert_eq!(config.server.issuer, "http://127.0.0.1:9999");
    }

    #[test]
    fn hash_password_strips_the_newline_and_prints_an_argon2id_hash() {
        let mut out = Vec::new();
        hash_password(&mut &b"s3cret\r\n"[..], &mut out).unwrap();
        let hash = String::from_utf8(out).unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(hash.ends_with('\n'));
        let user = oauth_core::LocalUser::new("u", hash.trim_end());
        assert!(LocalUsers::new(vec![user]).is_ok());
    }

    #[test]
    fn hash_password_refuses_an_empty_password() {
        for input in [&b"\n"[..], &b""[..], &b"\r\n"[..]] {
            let err = hash_password(&mut &input[..], &mut Vec::new()).unwrap_err();
            assert_eq!(
                err.to_string(),
                "empty password: type the password on stdin, then Enter"
            );
        }
    }

    #[test]
    fn report_does_not_repeat_a_cause_the_message_already_quotes() {
        let err = CliError::Bind {
            addr: "127.0.0.1:1".parse().unwrap(),
            reason: std::io::Error::other("in use"),
        };
        assert_eq!(report(&err), "cannot listen on 127.0.0.1:1: in use");
    }

    /// A cell with an escape sequence and a line break (a store written before registration refused them) is
    /// shown escaped, on its own row.
    #[test]
    fn a_table_escapes_control_characters() {
        let mut out = Vec::new();
        table(
            ["ID", "NAME"],
            &[["c1".into(), "Evil\u{1b}[2J\nfake-row".into()]],
            &mut out,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "ID  NAME\nc1  Evil\\u{1b}[2J\\u{a}fake-row\n");
    }

    async fn memory_auth() -> std::sync::Arc<AuthServer> {
        let mut config = Config::defaults("127.0.0.1:8080".parse().unwrap());
        config.store = StoreConfig::Memory;
        crate::state::build_auth(&config).await.unwrap()
    }

    #[tokio::test]
    async fn clients_list_show_and_delete() {
        let auth = memory_auth().await;
        let mut out = Vec::new();
        clients_list(auth.admin(), &mut out).await.unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "no clients registered\n");

        let body = br#"{"client_name":"Demo","redirect_uris":["http://127.0.0.1:3000/cb"],"token_endpoint_auth_method":"client_secret_basic"}"#;
        let reg = auth.register(body, None).await.unwrap();
        let id = reg.client_id.clone();

        let mut out = Vec::new();
        clients_list(auth.admin(), &mut out).await.unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("CLIENT ID"));
        let row: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            row,
            [
                id.as_str(),
                "Demo",
                "client_secret_basic",
                "http://127.0.0.1:3000/cb"
            ]
        );

        let mut out = Vec::new();
        clients_show(auth.admin(), &id, &mut out).await.unwrap();
        let shown: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(shown["client_id"], id.as_str());
        assert_eq!(shown["has_client_secret"], true);
        assert_eq!(shown["metadata"]["client_name"], "Demo");
        assert_eq!(
            shown["metadata"]["redirect_uris"][0],
            "http://127.0.0.1:3000/cb"
        );
        let text = String::from_utf8(out).unwrap();
        let secret = reg.client_secret.unwrap();
        assert!(!text.contains(&secret));
        assert!(!text.contains("hash"), "{text}");

        let mut out = Vec::new();
        clients_delete(auth.admin(), &id, &mut out).await.unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("deleted client {id}; revoked 0 grant(s)\n")
        );
        assert!(auth.admin().client(&id).await.unwrap().is_none());
        let err = clients_show(auth.admin(), &id, &mut Vec::new())
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), format!("no client `{id}`"));
    }

    #[tokio::test]
    async fn revoke_reports_the_number_of_grants() {
        let auth = memory_auth().await;
        let mut out = Vec::new();
        let request = AdminRequest::RevokeUser {
            subject: "local:alice".into(),
        };
        perform(auth.admin(), &[], request, &mut out).await.unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "revoked 0 grant(s) of user local:alice\n"
        );
    }

    /// For a resource with tool rules, check-config says where the gate reads the call from.
    #[test]
    fn check_config_says_where_tool_rules_read_the_call() {
        let mut config = Config::defaults("127.0.0.1:8080".parse().unwrap());
        let resource = oauth_core::ResourceConfig::new(
            "http://127.0.0.1:8080/mcp",
            vec!["mcp".into(), "mcp:admin".into()],
        )
        .with_tool_scopes(vec![
            oauth_core::ToolScope::new("tools/call", vec!["mcp".into()]),
            oauth_core::ToolScope::new("tools/call:delete_repo", vec!["mcp:admin".into()]),
        ]);
        let shown = |config: &Config| {
            let mut out = Vec::new();
            check_config(config, &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        config.server.resources = vec![resource.clone()];
        let text = shown(&config);
        assert!(text.contains(concat!(
            "  resource:  http://127.0.0.1:8080/mcp; requires scope: none; access: every user\n",
            "             tool scopes: tools/call needs mcp; tools/call:delete_repo needs mcp:admin\n",
            "             read from the JSON-RPC body where the proxy forwards it (Traefik forwardBody, at most 4096 KiB);\n",
            "             without it (nginx, Caddy) every POST needs every tool scope; set mcp_server_validates_headers\n",
            "             = true if the MCP server rejects Mcp-Method/Mcp-Name headers that disagree with the body\n",
        )), "{text}");
        config.server.resources = vec![resource.mcp_server_validates_headers(true)];
        let text = shown(&config);
        assert!(text.contains(concat!(
            "             without it (nginx, Caddy) from the Mcp-Method/Mcp-Name headers of MCP 2026-07-28 requests, which\n",
            "             the MCP server must reject when they disagree with the body (mcp_server_validates_headers), and\n",
            "             every POST of an older client needs every tool scope\n",
        )), "{text}");
    }

    #[test]
    fn check_config_summarises_the_defaults() {
        let config = Config::defaults("127.0.0.1:8080".parse().unwrap());
        let mut out = Vec::new();
        check_config(&config, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "configuration OK (built-in defaults)\n  issuer:    http://127.0.0.1:8080\n  listen:    127.0.0.1:8080\n  store:     embedded, data/oauth.redb, cache 16 MiB\n  secrets:   sealed with the key-encryption key in data/oauth.redb.kek (generated on first start)\n  resource:  http://127.0.0.1:8080/mcp; requires scope: none; access: every user\n  policy:    none (every user who can log in)\n  users:     0\n"
        );
    }

    /// A configuration with two providers, a server-wide policy and a restricted resource with a scope grant.
    fn with_providers_and_policy() -> Config {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            r#"
[policy]
allowed_groups = ["keycloak:staff"]

[[providers]]
type = "oidc"
id = "keycloak"
display_name = "Company SSO"
issuer = "https://keycloak.example.com/realms/company"
client_id = "forwardauth"

[[providers]]
type = "github"
client_id = "Iv1.0123456789abcdef"
client_secret = "not-shown"

[[resources]]
resource = "https://mcp.example.com/mcp"
scopes = ["mcp", "mcp:admin"]
required_scopes = ["mcp"]
allowed_users = ["github:octocat"]
allowed_groups = ["keycloak:mcp-users"]
[resources.scope_grants."mcp:admin"]
allowed_groups = ["keycloak:admins"]

[[resources]]
resource = "https://other.example.com/mcp"
scopes = ["mcp"]

[tracing]
otlp_endpoint = "http://127.0.0.1:4318"
"#,
        )
        .unwrap();
        config::load(Some(&path), &|_| None).unwrap()
    }

    #[test]
    fn check_config_shows_providers_policy_access_and_scope_grants() {
        let config = with_providers_and_policy();
        let mut out = Vec::new();
        check_config(&config, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(concat!(
            "  resource:  https://mcp.example.com/mcp; requires scope: mcp; access: users github:octocat; groups keycloak:mcp-users, within [policy]\n",
            "             scope mcp:admin only for groups keycloak:admins\n",
            "  resource:  https://other.example.com/mcp; requires scope: none; access: as [policy]\n",
            "  policy:    groups keycloak:staff\n",
            "  provider:  keycloak (oidc, issuer https://keycloak.example.com/realms/company): Company SSO\n",
            "  provider:  github (github, https://github.com): GitHub\n",
            "  users:     0\n",
        )), "{text}");
        assert!(
            text.contains("  tracing:   spans exported over OTLP/HTTP to http://127.0.0.1:4318/v1/traces as forwardauth-svc\n"),
            "{text}"
        );
        assert!(!text.contains("every user"), "{text}");
        assert!(!text.contains("not-shown"), "{text}");
    }

    #[test]
    fn the_banner_names_the_providers_when_there_are_no_local_users() {
        let config = with_providers_and_policy();
        let text = next_steps(&config);
        assert!(!text.contains("nobody can log in"), "{text}");
        assert!(text.contains(concat!(
            "\nUsers log in with:\n",
            "  Company SSO                   oidc, issuer https://keycloak.example.com/realms/company\n",
            "  GitHub                        github, https://github.com\n",
        )), "{text}");
        assert!(
            !text.contains("placeholder"),
            "a configured resource: {text}"
        );
        let bare = next_steps(&Config::defaults("127.0.0.1:8080".parse().unwrap()));
        assert!(
            bare.contains("No users yet, so nobody can log in."),
            "{bare}"
        );
        // Without a configuration file the protected resource is the service's own address: said to be a
        // placeholder, with what to write instead.
        assert!(
            bare.contains(concat!(
                "Protected resource:            http://127.0.0.1:8080/mcp\n",
                "  (a placeholder of the built-in defaults: no MCP server is served there. Write a configuration\n",
                "   whose [[resources]] resource is the URL your proxy serves the MCP server at, starting from\n",
                "   examples/quickstart.toml; README.md \"From zero to a protected MCP server\" walks through it.)\n",
            )),
            "{bare}"
        );
        // At a terminal `hash-password` asks twice (`hash_password_stdin`); from a pipe it reads one line.
        assert!(
            bare.contains(
                "  1. forwardauth-svc hash-password          (type the password twice; or pipe it in, one line)\n"
            ),
            "{bare}"
        );
    }
}
