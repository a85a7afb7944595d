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
//! administer anyway. The peer's uid is also who the audit trail says acted: each command runs as
//! `auth.admin().by("unix:uid=<uid>")` ([`actor`]), as the command line names its own user on a store it opens.
//!
//! # Whom the command line talks to
//! The command line checks the other way too, before it sends anything (an import carries private keys, an
//! export's answer does): the process answering on the socket (its peer credentials) must be trusted.
//! - A caller that is not root trusts a server of its own uid or of root, nobody else: another user who got to
//!   the path first hears nothing.
//! - Root trusts a root server, and a server of another uid only when that uid is the one that put the socket
//!   there and the only one (besides root) who could have: the socket file itself (`lstat`, so a symlink is
//!   refused) is owned by the server's uid, and its directory (as the path names it) is owned by that uid or
//!   root and is writable by neither group nor others (`mode & 0o022 == 0`), and so is every directory above it
//!   (symbolic links resolved), except that a directory owned by root may be writable by all if it is sticky
//!   (`/tmp`: others cannot rename or remove what they do not own in it). That is how root administers a
//!   service running as its own user (a systemd `DynamicUser`, whose state directory is its own, mode 0700).
//!
//! Why root may trust that uid: the socket's path comes from the configuration root passed, so it is root's own
//! statement of where the service lives; the uid that alone controls that directory is the service's user by
//! that statement (by default the directory also holds the store, which that uid may replace at will, so it is
//! already trusted with everything the commands touch). A directory others may write (a `/tmp`) proves nothing:
//! anyone could have bound the path, so the command is refused, saying why, and nothing is sent.
//!
//! The facts are read after connecting, through the same path: the peer's uid is fixed when it listened, and
//! once the directory is shown to be writable only by that uid (or root), nobody else could have swapped the
//! entry between the connection and the check, so the socket that was inspected is the one that answered, or
//! one that same uid put in its place. The directories above are checked as OpenSSH checks the path of an
//! `authorized_keys` file: a configured `/tmp/fa/admin.sock` whose `/tmp/fa` did not exist yet could otherwise
//! be created (or pointed elsewhere) by anyone, who would then own the directory the socket is in. The rule
//! itself (`trust`) is a function of those facts alone.
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

/// Who acts, as the audit trail names an operator of this service ([`oauth_core::Admin::by`]): the user id
/// (`unix:uid=1000`), the peer's on the socket, the command line's own on a store it opened. Only the number:
/// resolving a name would mean a user-database (NSS) lookup in the service, for each command.
pub fn actor(uid: u32) -> String {
    format!("unix:uid={uid}")
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
    /// The process answering on the socket is not one this user may trust (see the
    /// [module documentation](self)).
    #[error(
        "admin socket {path}: {reason}; nothing was sent (someone else may hold the socket's path: keep it in a \
         directory only the service's user may write)"
    )]
    Stranger {
        /// The socket.
        path: String,
        /// The answering process's uid, if the kernel said.
        uid: Option<u32>,
        /// Why it is not trusted.
        reason: String,
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
    let Some(uid) = peer.filter(|&p| Some(p) == owner || p == 0) else {
        tracing::warn!(
            peer_uid = ?peer,
            "admin socket: refused a connection from another user"
        );
        return;
    };
    let actor = actor(uid);
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
                tracing::info!(command = request.name(), %actor, "admin command over the socket");
                perform(&context, &actor, request).await
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
/// Runs `request` as the command line does, on behalf of `actor` (the peer), into a response.
async fn perform(context: &AdminContext, actor: &str, request: AdminRequest) -> AdminResponse {
    let mut out = Vec::new();
    let admin = context.auth.admin().by(actor);
    let result = crate::cli::perform(admin, &context.users, request, &mut out).await;
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
    // this user may trust is told anything (see the module documentation). Another user who bound the path first
    // gets nothing.
    let server = stream.peer_cred().ok().map(|c| c.uid());
    if let Err(reason) = trust(server, rustix::process::geteuid().as_raw(), || {
        placement(path)
    }) {
        return Err(AdminSocketError::Stranger {
            path: name(),
            uid: server,
            reason,
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
/// What the socket's path shows about who put the socket there: the facts root's trust in a server of another
/// uid rests on.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Placement {
    /// What the path is when not a socket (`"a symbolic link"`, …); `None` for a socket.
    not_a_socket: Option<&'static str>,
    /// The owner of what the path names (not followed).
    socket_owner: u32,
    /// The directory holding it, as the path names it.
    dir: PathBuf,
    /// The directory's owner.
    dir_owner: u32,
    /// The directory's mode bits.
    dir_mode: u32,
    /// Every directory above it, symbolic links resolved, from the nearest to `/`: path, owner, mode bits.
    above: Vec<(PathBuf, u32, u32)>,
}

#[cfg(unix)]
/// The [`Placement`] of the socket at `path`: the path itself not followed (`lstat`), its directory as named.
///
/// # Errors
/// Why either cannot be read.
fn placement(path: &Path) -> Result<Placement, String> {
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
    let socket = std::fs::symlink_metadata(path)
        .map_err(|e| format!("cannot inspect {}: {e}", path.display()))?;
    let kind = socket.file_type();
    let not_a_socket = if kind.is_socket() {
        None
    } else if kind.is_symlink() {
        Some("a symbolic link")
    } else {
        Some("not a socket")
    };
    let dir = directory_of(path);
    let meta =
        std::fs::metadata(&dir).map_err(|e| format!("cannot inspect {}: {e}", dir.display()))?;
    let real = std::fs::canonicalize(&dir)
        .map_err(|e| format!("cannot resolve {}: {e}", dir.display()))?;
    let mut above = Vec::new();
    for up in real.ancestors().skip(1) {
        let m =
            std::fs::metadata(up).map_err(|e| format!("cannot inspect {}: {e}", up.display()))?;
        above.push((up.to_path_buf(), m.uid(), m.mode() & 0o7777));
    }
    Ok(Placement {
        not_a_socket,
        socket_owner: socket.uid(),
        dir_owner: meta.uid(),
        dir_mode: meta.mode() & 0o7777,
        dir,
        above,
    })
}

#[cfg(unix)]
/// The directory holding `path`, as the path names it (`.` for a bare name).
fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(unix)]
/// Whether a server of uid `server` may hear the commands of a caller of uid `me` (the rule of the
/// [module documentation](self)): the same user or root always; for a root caller, another uid too when the
/// socket's `placement` (read only then) shows that uid alone could have put the socket there.
///
/// # Errors
/// Why not, for the command's error message.
fn trust(
    server: Option<u32>,
    me: u32,
    placement: impl FnOnce() -> Result<Placement, String>,
) -> Result<(), String> {
    let Some(uid) = server else {
        return Err("the kernel did not say which user answers on it".into());
    };
    if uid == me || uid == 0 {
        return Ok(());
    }
    if me != 0 {
        return Err(format!(
            "answered by a process of uid {uid}, neither this user nor root"
        ));
    }
    let place = placement().map_err(|e| format!("answered by uid {uid}, but {e}"))?;
    if let Some(what) = place.not_a_socket {
        return Err(format!(
            "answered by uid {uid}, but the path is {what}, not the socket itself"
        ));
    }
    if place.socket_owner != uid {
        return Err(format!(
            "answered by uid {uid}, which does not own the socket (uid {} does)",
            place.socket_owner
        ));
    }
    if place.dir_owner != uid && place.dir_owner != 0 {
        return Err(format!(
            "answered by uid {uid}, which does not own {} (uid {} does)",
            place.dir.display(),
            place.dir_owner
        ));
    }
    if place.dir_mode & 0o022 != 0 {
        return Err(format!(
            "answered by uid {uid}, but {} is writable by its group or others (mode {:04o}), so anyone could \
             have put the socket there",
            place.dir.display(),
            place.dir_mode
        ));
    }
    for (up, owner, mode) in &place.above {
        if *owner != uid && *owner != 0 {
            return Err(format!(
                "answered by uid {uid}, but {} above the socket is owned by uid {owner}, who could have put \
                 the socket's directory there",
                up.display()
            ));
        }
        let sticky_root = *owner == 0 && mode & 0o1000 != 0;
        if mode & 0o022 != 0 && !sticky_root {
            return Err(format!(
                "answered by uid {uid}, but {} above the socket is writable by its group or others (mode \
                 {mode:04o}), so anyone could have put the socket's directory there",
                up.display()
            ));
        }
    }
    Ok(())
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

    /// The facts of a socket of uid 1000 in its own directory, mode 0700: what root trusts.
    fn own_place() -> Placement {
        Placement {
            not_a_socket: None,
            socket_owner: 1000,
            dir: PathBuf::from("/var/lib/forwardauth"),
            dir_owner: 1000,
            dir_mode: 0o700,
            above: vec![
                (PathBuf::from("/var/lib"), 0, 0o755),
                (PathBuf::from("/var"), 0, 0o755),
                (PathBuf::from("/"), 0, 0o755),
            ],
        }
    }

    /// A placement that must not be read: the decision needs no facts.
    fn unread() -> Result<Placement, String> {
        panic!("the placement was read, but the uids alone decide")
    }

    #[test]
    fn a_user_trusts_itself_and_root_and_nobody_else_whatever_the_socket_looks_like() {
        assert_eq!(trust(Some(1000), 1000, unread), Ok(()));
        assert_eq!(trust(Some(0), 1000, unread), Ok(()));
        assert_eq!(trust(Some(0), 0, unread), Ok(()));
        assert_eq!(
            trust(Some(1001), 1000, unread),
            Err("answered by a process of uid 1001, neither this user nor root".into())
        );
        // Even a socket that uid alone could have placed: a user other than root trusts no other user.
        assert!(trust(Some(1001), 1000, || Ok(own_place())).is_err());
        assert_eq!(
            trust(None, 1000, unread),
            Err("the kernel did not say which user answers on it".into())
        );
        assert_eq!(
            trust(None, 0, unread),
            Err("the kernel did not say which user answers on it".into())
        );
    }

    #[test]
    fn root_trusts_another_uid_only_where_that_uid_alone_could_have_put_the_socket() {
        // Its own directory (a DynamicUser's state directory), or a root directory nobody else may write.
        assert_eq!(trust(Some(1000), 0, || Ok(own_place())), Ok(()));
        for (owner, mode) in [(0, 0o755), (1000, 0o750), (1000, 0o755), (0, 0o700)] {
            let place = Placement {
                dir_owner: owner,
                dir_mode: mode,
                ..own_place()
            };
            assert_eq!(
                trust(Some(1000), 0, || Ok(place)),
                Ok(()),
                "{owner} {mode:o}"
            );
        }

        // A directory its group or others may write: anyone could have bound the path.
        for mode in [0o1777, 0o777, 0o770, 0o702, 0o720] {
            for owner in [0, 1000] {
                let place = Placement {
                    dir_owner: owner,
                    dir_mode: mode,
                    ..own_place()
                };
                assert_eq!(
                    trust(Some(1000), 0, || Ok(place)),
                    Err(format!(
                        "answered by uid 1000, but /var/lib/forwardauth is writable by its group or others \
                         (mode {mode:04o}), so anyone could have put the socket there"
                    ))
                );
            }
        }

        // Another user's directory.
        let place = Placement {
            dir_owner: 1001,
            ..own_place()
        };
        assert_eq!(
            trust(Some(1000), 0, || Ok(place)),
            Err(
                "answered by uid 1000, which does not own /var/lib/forwardauth (uid 1001 does)"
                    .into()
            )
        );

        // A socket file of someone else: not the one that uid bound.
        for owner in [0, 1001] {
            let place = Placement {
                socket_owner: owner,
                ..own_place()
            };
            assert_eq!(
                trust(Some(1000), 0, || Ok(place)),
                Err(format!(
                    "answered by uid 1000, which does not own the socket (uid {owner} does)"
                ))
            );
        }

        // A symbolic link where the socket should be: whatever it points to, it proves nothing.
        let place = Placement {
            not_a_socket: Some("a symbolic link"),
            ..own_place()
        };
        assert_eq!(
            trust(Some(1000), 0, || Ok(place)),
            Err(
                "answered by uid 1000, but the path is a symbolic link, not the socket itself"
                    .into()
            )
        );

        // Above the directory: root's, or that uid's, and written by nobody else; a sticky directory of root's
        // (a /tmp) is fine above it, as its entries cannot be moved by others.
        let above = |dirs: &[(&str, u32, u32)]| Placement {
            dir: PathBuf::from("/tmp/fa"),
            above: dirs
                .iter()
                .map(|(p, o, m)| (PathBuf::from(p), *o, *m))
                .collect(),
            ..own_place()
        };
        for ok in [
            above(&[("/tmp", 0, 0o1777), ("/", 0, 0o755)]),
            above(&[
                ("/home/svc", 1000, 0o755),
                ("/home", 0, 0o755),
                ("/", 0, 0o755),
            ]),
        ] {
            assert_eq!(trust(Some(1000), 0, || Ok(ok.clone())), Ok(()), "{ok:?}");
        }
        // `/tmp/fa` created by another user who now owns the directory above: the directory the socket is in
        // could have been theirs (or a link of theirs) when the command connected.
        assert_eq!(
            trust(Some(1000), 0, || Ok(above(&[
                ("/tmp/x", 1001, 0o700),
                ("/tmp", 0, 0o1777),
                ("/", 0, 0o755)
            ]))),
            Err(
                "answered by uid 1000, but /tmp/x above the socket is owned by uid 1001, who could have put the \
                 socket's directory there"
                    .into()
            )
        );
        for (owner, mode) in [(0, 0o777), (1000, 0o1777), (0, 0o775)] {
            assert_eq!(
                trust(Some(1000), 0, || Ok(above(&[
                    ("/srv", owner, mode),
                    ("/", 0, 0o755)
                ]))),
                Err(format!(
                    "answered by uid 1000, but /srv above the socket is writable by its group or others (mode \
                     {mode:04o}), so anyone could have put the socket's directory there"
                )),
                "{owner} {mode:o}"
            );
        }

        // Facts that cannot be read: refused.
        assert_eq!(
            trust(Some(1000), 0, || Err("cannot inspect /x: gone".into())),
            Err("answered by uid 1000, but cannot inspect /x: gone".into())
        );
    }

    #[test]
    fn the_placement_is_read_from_the_socket_not_followed_and_its_directory() {
        use std::os::unix::fs::PermissionsExt as _;
        let me = rustix::process::geteuid().as_raw();
        let dir = tempfile::tempdir().unwrap();
        let socket_dir = dir.path().join("run");
        std::fs::create_dir(&socket_dir).unwrap();
        let path = socket_dir.join("admin.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();

        // The directories above, symbolic links resolved: the temporary directory (ours), …, `/`.
        let real_tmp = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::set_permissions(&real_tmp, std::fs::Permissions::from_mode(0o711)).unwrap();
        for mode in [0o700, 0o755, 0o777, 0o1777, 0o770] {
            std::fs::set_permissions(&socket_dir, std::fs::Permissions::from_mode(mode)).unwrap();
            let place = placement(&path).unwrap();
            assert_eq!(
                place,
                Placement {
                    not_a_socket: None,
                    socket_owner: me,
                    dir: socket_dir.clone(),
                    dir_owner: me,
                    dir_mode: mode,
                    above: place.above.clone(),
                }
            );
            assert_eq!(place.above.first(), Some(&(real_tmp.clone(), me, 0o711)));
            assert_eq!(
                place.above.last().map(|a| a.0.as_path()),
                Some(Path::new("/"))
            );
            assert_eq!(place.above.len(), real_tmp.ancestors().count());
        }

        // A symbolic link to the socket is seen as such, and its own directory is the one that counts.
        let link = dir.path().join("link.sock");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let place = placement(&link).unwrap();
        assert_eq!(place.not_a_socket, Some("a symbolic link"));
        assert_eq!(place.dir, dir.path());

        let file = socket_dir.join("file");
        std::fs::write(&file, "").unwrap();
        assert_eq!(placement(&file).unwrap().not_a_socket, Some("not a socket"));

        let gone = socket_dir.join("gone.sock");
        assert!(
            placement(&gone)
                .unwrap_err()
                .starts_with(&format!("cannot inspect {}: ", gone.display()))
        );
        assert_eq!(directory_of(Path::new("admin.sock")), Path::new("."));
        assert_eq!(directory_of(Path::new("/admin.sock")), Path::new("/"));
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
