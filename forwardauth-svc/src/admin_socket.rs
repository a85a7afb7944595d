//! The admin socket: how the command line's administrative commands reach a running service.
//!
//! # Why
//! The embedded store is one file, locked by the process that has it open, so `clients delete`, `revoke`,
//! `keys rotate`… could not run beside the service they administer. The running service therefore serves those
//! commands itself on a Unix domain socket (`[admin] socket`, by default `<store path>.admin.sock`), calling the
//! same engine methods ([`oauth_core::AuthServer::admin`]) the command line calls on a store it opens; the
//! command line tries the socket first and opens the store only when nobody answers (see [`crate::cli`]).
//!
//! # Who may use it
//! Nothing on the network: there is no TCP admin listener. The socket is created with mode 0600 (bound under a
//! temporary name, restricted, then renamed into place, so it is never reachable with wider permissions) in the
//! directory the service owns, and every connection's peer credentials are checked as well: only the service's
//! own user (and root) are served. That is the same boundary as the store file, which whoever can read can
//! administer anyway.
//!
//! # Protocol
//! One request per connection: a JSON [`AdminRequest`] on one line, answered with one JSON [`AdminResponse`]
//! line. The service runs the command as the command line would (the same code renders the output), so a command
//! prints the same thing over the socket and offline. Export and import move the file's contents through the
//! socket, never a path: the command line reads and writes the file, with its own user's permissions.
//!
//! # A stale socket
//! A process that was killed leaves its socket file behind. At start, an existing socket that refuses
//! connections is removed; one that answers means another process serves it, and the start fails; a path that
//! is not a socket is never removed.
//!
//! Unix only: elsewhere the service serves no socket and the commands always open the store.

#[cfg(unix)]
use std::path::{Path, PathBuf};
use std::sync::Arc;
#[cfg(unix)]
use std::time::Duration;

use oauth_core::{AuthServer, LocalUser};
use serde::{Deserialize, Serialize};
#[cfg(unix)]
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
#[cfg(unix)]
use tokio::net::{UnixListener, UnixStream};

/// The most a request may weigh (an import carries a whole export).
#[cfg(unix)]
const MAX_REQUEST_BYTES: u64 = 256 * 1024 * 1024;

/// How long the command line waits for the service's answer.
#[cfg(unix)]
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// An administrative command, as the command line sends it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AdminRequest {
    /// `clients list`.
    ClientsList,
    /// `clients show ID`.
    ClientsShow {
        /// The client id.
        id: String,
    },
    /// `clients delete ID`.
    ClientsDelete {
        /// The client id.
        id: String,
    },
    /// `revoke --user SUBJECT`.
    RevokeUser {
        /// The subject.
        subject: String,
    },
    /// `revoke --client ID`.
    RevokeClient {
        /// The client id.
        id: String,
    },
    /// `keys rotate`.
    KeysRotate,
    /// `keys list`.
    KeysList,
    /// `users`.
    Users,
    /// `store export`: the answer carries the export.
    StoreExport,
    /// `store import`: the export travels in the request.
    StoreImport {
        /// The export file's contents.
        export: serde_json::Value,
    },
}

impl AdminRequest {
    /// The command's name, for the log (never its arguments' secrets: there are none, but an export is large).
    pub fn name(&self) -> &'static str {
        match self {
            AdminRequest::ClientsList => "clients list",
            AdminRequest::ClientsShow { .. } => "clients show",
            AdminRequest::ClientsDelete { .. } => "clients delete",
            AdminRequest::RevokeUser { .. } => "revoke --user",
            AdminRequest::RevokeClient { .. } => "revoke --client",
            AdminRequest::KeysRotate => "keys rotate",
            AdminRequest::KeysList => "keys list",
            AdminRequest::Users => "users",
            AdminRequest::StoreExport => "store export",
            AdminRequest::StoreImport { .. } => "store import",
        }
    }
}

/// The service's answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AdminResponse {
    /// What the command printed.
    #[serde(default)]
    pub output: String,
    /// Why it failed, if it did (the command line's error message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `store export`: the export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<serde_json::Value>,
}

/// What the service needs to answer.
#[derive(Clone)]
pub struct AdminContext {
    /// The engine.
    pub auth: Arc<AuthServer>,
    /// The local users the service loaded.
    pub users: Arc<[LocalUser]>,
}

/// Why the socket could not be served or reached. Every message names the socket.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminSocketError {
    /// The socket could not be created.
    #[error(
        "admin socket {path}: {reason} (set `[admin] socket` to another path, or to \"off\" to run without it)"
    )]
    Bind {
        /// The socket.
        path: String,
        /// Why.
        reason: String,
    },
    /// The process answering on the socket runs as neither this user nor root.
    #[error(
        "admin socket {path}: answered by a process of uid {uid:?}, neither this user nor root; nothing was sent \
         (someone else may hold the socket's path: keep it in a directory only the service's user may write)"
    )]
    Stranger {
        /// The socket.
        path: String,
        /// The answering process's uid, if the kernel said.
        uid: Option<u32>,
    },
    /// The socket exists but cannot be used by this user.
    #[error(
        "admin socket {path}: {reason}; run the command as the service's user (the socket is mode 0600)"
    )]
    Denied {
        /// The socket.
        path: String,
        /// Why.
        reason: String,
    },
    /// The exchange failed half-way, or the answer was not one.
    #[error("admin socket {path}: {reason}")]
    Exchange {
        /// The socket.
        path: String,
        /// Why.
        reason: String,
    },
}

#[cfg(unix)]
/// The socket being served; dropping it stops serving and removes the socket file.
#[derive(Debug)]
pub struct AdminServer {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

#[cfg(unix)]
impl AdminServer {
    /// Where it listens.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(unix)]
impl Drop for AdminServer {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(unix)]
/// Creates the socket at `path` (mode 0600; a stale one is replaced, see the [module documentation](self)) and
/// serves `context` on it until the returned guard drops. Needs a Tokio runtime.
///
/// # Errors
/// [`AdminSocketError::Bind`].
pub fn serve(path: &Path, context: AdminContext) -> Result<AdminServer, AdminSocketError> {
    let listener = bind(path).map_err(|reason| AdminSocketError::Bind {
        path: path.display().to_string(),
        reason,
    })?;
    let owner = owner_uid(path);
    let context = Arc::new(context);
    let task = tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(answer(stream, Arc::clone(&context), owner));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "admin socket: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    tracing::info!(path = %path.display(), "admin socket ready");
    Ok(AdminServer {
        path: path.to_path_buf(),
        task,
    })
}

#[cfg(unix)]
/// The uid owning the socket file: the service's own.
fn owner_uid(path: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).ok().map(|m| m.uid())
}

#[cfg(unix)]
/// Binds the socket at `path`, replacing a stale one.
fn bind(path: &Path) -> Result<UnixListener, String> {
    use std::os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, PermissionsExt as _};
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => return Err("another process answers on it".into()),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                tracing::info!(path = %path.display(), "admin socket: removing the stale socket of a process that is gone");
                std::fs::remove_file(path)
                    .map_err(|e| format!("cannot remove the stale socket: {e}"))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot tell whether it is in use: {e}")),
        },
        Ok(_) => return Err("exists and is not a socket".into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.to_string()),
    }
    // Bound under a name of its own, restricted, then renamed into place: never reachable with the umask's mode.
    let mut draft = path.as_os_str().to_owned();
    draft.push(format!(".{}.tmp", std::process::id()));
    let draft = PathBuf::from(draft);
    let _ = std::fs::remove_file(&draft);
    let listener = std::os::unix::net::UnixListener::bind(&draft).map_err(|e| e.to_string())?;
    let placed = std::fs::set_permissions(&draft, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&draft, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&draft);
        return Err(e.to_string());
    }
    listener
        .set_nonblocking(true)
        .and_then(|()| UnixListener::from_std(listener))
        .map_err(|e| e.to_string())
}

#[cfg(unix)]
/// Answers one connection: one request line, one response line.
async fn answer(stream: UnixStream, context: Arc<AdminContext>, owner: Option<u32>) {
    let peer = stream.peer_cred().ok().map(|c| c.uid());
    if peer.is_none() || (peer != owner && peer != Some(0)) {
        tracing::warn!(
            peer_uid = ?peer,
            "admin socket: refused a connection from another user"
        );
        return;
    }
    let (read, mut write) = stream.into_split();
    let mut line = Vec::new();
    let read = BufReader::new(read.take(MAX_REQUEST_BYTES))
        .read_until(b'\n', &mut line)
        .await;
    let response = match read {
        Err(e) => {
            tracing::warn!(error = %e, "admin socket: cannot read the request");
            return;
        }
        Ok(_) => match serde_json::from_slice::<AdminRequest>(&line) {
            Ok(request) => {
                tracing::info!(command = request.name(), "admin command over the socket");
                perform(&context, request).await
            }
            Err(e) => AdminResponse {
                error: Some(format!("not an admin request: {e}")),
                ..AdminResponse::default()
            },
        },
    };
    let Ok(mut bytes) = serde_json::to_vec(&response) else {
        return;
    };
    bytes.push(b'\n');
    if let Err(e) = write.write_all(&bytes).await {
        tracing::warn!(error = %e, "admin socket: cannot send the answer");
    }
}

#[cfg(unix)]
/// Runs `request` as the command line does, into a response.
async fn perform(context: &AdminContext, request: AdminRequest) -> AdminResponse {
    let mut out = Vec::new();
    let result = crate::cli::perform(&context.auth, &context.users, request, &mut out).await;
    let output = String::from_utf8_lossy(&out).into_owned();
    match result {
        Ok(export) => AdminResponse {
            output,
            error: None,
            export,
        },
        Err(e) => AdminResponse {
            output,
            error: Some(crate::cli::report(&e)),
            export: None,
        },
    }
}

#[cfg(unix)]
/// Sends `request` to the service listening at `path`; `None` if nobody listens there (no socket file, or a
/// stale one).
///
/// # Errors
/// [`AdminSocketError::Denied`] when the socket is there but not this user's to use,
/// [`AdminSocketError::Exchange`] when the exchange fails.
pub async fn send(
    path: &Path,
    request: &AdminRequest,
) -> Result<Option<AdminResponse>, AdminSocketError> {
    let name = || path.display().to_string();
    let stream = match UnixStream::connect(path).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(AdminSocketError::Denied {
                path: name(),
                reason: e.to_string(),
            });
        }
        Err(e) => {
            return Err(AdminSocketError::Exchange {
                path: name(),
                reason: format!("cannot connect: {e}"),
            });
        }
    };
    // The answer may carry private keys (`store export`) and the request may too (`store import`): only a server
    // running as this user or as root is told anything. Another user who bound the path first gets nothing.
    let server = stream.peer_cred().ok().map(|c| c.uid());
    if !trusted_server(server, rustix::process::geteuid().as_raw()) {
        return Err(AdminSocketError::Stranger {
            path: name(),
            uid: server,
        });
    }
    let exchange = async {
        let mut stream = stream;
        let mut bytes = serde_json::to_vec(request).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        stream.write_all(&bytes).await?;
        stream.shutdown().await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(ANSWER_TIMEOUT, exchange)
        .await
        .map_err(|_| AdminSocketError::Exchange {
            path: name(),
            reason: format!("no answer within {} s", ANSWER_TIMEOUT.as_secs()),
        })?
        .map_err(|e| AdminSocketError::Exchange {
            path: name(),
            reason: e.to_string(),
        })?;
    if answer.is_empty() {
        // The service closes without a word on a peer it does not serve.
        return Err(AdminSocketError::Denied {
            path: name(),
            reason: "the service closed the connection without answering".into(),
        });
    }
    serde_json::from_slice(&answer)
        .map(Some)
        .map_err(|e| AdminSocketError::Exchange {
            path: name(),
            reason: format!("not an answer: {e}"),
        })
}

#[cfg(unix)]
/// Whether a server of uid `server` may hear the commands of a caller of uid `me`: the same user, or root.
fn trusted_server(server: Option<u32>, me: u32) -> bool {
    server.is_some_and(|uid| uid == me || uid == 0)
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;

    async fn context() -> AdminContext {
        let mut config = crate::Config::defaults("127.0.0.1:8080".parse().unwrap());
        config.store = crate::config::StoreConfig::Memory;
        AdminContext {
            auth: crate::state::build_auth(&config).await.unwrap(),
            users: Arc::from(Vec::new()),
        }
    }

    #[tokio::test]
    async fn the_longest_path_the_configuration_accepts_binds() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().as_os_str().len() + 1;
        let path = dir
            .path()
            .join("s".repeat(crate::config::MAX_SOCKET_PATH - base));
        assert_eq!(path.as_os_str().len(), crate::config::MAX_SOCKET_PATH);
        let _server = serve(&path, context().await).unwrap();
        let answer = send(&path, &AdminRequest::ClientsList).await.unwrap();
        assert!(answer.is_some());
    }

    #[test]
    fn only_this_user_or_root_is_trusted_to_answer() {
        assert!(trusted_server(Some(1000), 1000));
        assert!(trusted_server(Some(0), 1000));
        assert!(trusted_server(Some(0), 0));
        assert!(!trusted_server(Some(1001), 1000));
        assert!(!trusted_server(Some(1000), 0));
        assert!(!trusted_server(None, 1000));
    }

    #[tokio::test]
    async fn a_request_is_answered_over_a_0600_socket_that_goes_away_with_the_server() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.sock");
        let server = serve(&path, context().await).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let answer = send(&path, &AdminRequest::ClientsList)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(answer.output, "no clients registered\n");
        assert_eq!(answer.error, None);
        let answer = send(&path, &AdminRequest::ClientsShow { id: "nope".into() })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(answer.error.as_deref(), Some("no client `nope`"));

        // A second server on the same path is refused while the first answers.
        let err = serve(&path, context().await).unwrap_err().to_string();
        assert!(err.contains("another process answers on it"), "{err}");

        drop(server);
        assert!(!path.exists());
        assert_eq!(send(&path, &AdminRequest::ClientsList).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced_and_a_file_is_never_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.sock");
        // A socket whose process is gone: bound, then its listener closed.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        assert_eq!(send(&path, &AdminRequest::ClientsList).await.unwrap(), None);
        let server = serve(&path, context().await).unwrap();
        assert!(
            send(&path, &AdminRequest::KeysList)
                .await
                .unwrap()
                .is_some()
        );
        drop(server);

        std::fs::write(&path, "not a socket").unwrap();
        let err = serve(&path, context().await).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "admin socket {}: exists and is not a socket (set `[admin] socket` to another path, or to \"off\" to run without it)",
                path.display()
            )
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a socket");
    }

    #[tokio::test]
    async fn a_request_that_is_not_one_gets_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.sock");
        let _server = serve(&path, context().await).unwrap();
        let mut stream = UnixStream::connect(&path).await.unwrap();
        stream
            .write_all(b"{\"command\":\"drop_tables\"}\n")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        let answer: AdminResponse = serde_json::from_str(&answer).unwrap();
        assert!(
            answer
                .error
                .as_deref()
                .unwrap()
                .starts_with("not an admin request: unknown variant `drop_tables`"),
            "{answer:?}"
        );
    }
}
