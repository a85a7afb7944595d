//! `[admin]`: where the running service listens for the command line's administrative commands
//! (`crate::admin_socket`).
//!
//! The embedded store is one file that one process holds at a time, so the commands that manage it (`clients`,
//! `revoke`, `keys`, `users`, `store`) reach a running service over a Unix domain socket instead of opening the
//! file. It lives beside the store by default (`<store path>.admin.sock`), in the directory the service already
//! owns; with Redis or the memory store there is no default (the commands open Redis themselves, and the memory
//! store has nothing to open), so the socket is only there when configured. `""` or `"off"` disables it. A
//! configured path belongs in a directory only the service's user may write: in a shared one such as `/tmp`,
//! another user could put a socket of theirs there first and receive the commands.

use std::path::PathBuf;

use serde::Deserialize;

use super::source::{Ctx, Origin};
use super::{ConfigError, StoreConfig};

/// The longest admin socket path: a Unix socket path holds 107 bytes on Linux (104 on the BSDs), and the
/// service first binds a temporary name up to 12 bytes longer (`.<pid>.tmp`) before renaming it into place.
pub const MAX_SOCKET_PATH: usize = 92;

/// Environment variable overriding `admin.socket` (`off` disables the socket).
pub const ENV_ADMIN_SOCKET: &str = "FORWARDAUTH_ADMIN_SOCKET";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    socket: Option<String>,
}

/// The default socket of a store: `<store file>.admin.sock` beside the embedded store, none otherwise, and none
/// when that path is longer than [`MAX_SOCKET_PATH`] (a store deep in the file system must not stop the service
/// from starting: the commands then open the store while the service is stopped, or `[admin] socket` names a
/// shorter path).
pub fn default_socket(store: &StoreConfig) -> Option<PathBuf> {
    match store {
        StoreConfig::Embedded { path, .. } => {
            let mut name = path.file_name().unwrap_or_default().to_os_string();
            name.push(".admin.sock");
            let socket = path.with_file_name(name);
            (socket.as_os_str().len() <= MAX_SOCKET_PATH).then_some(socket)
        }
        StoreConfig::Memory | StoreConfig::Redis(_) => None,
    }
}

/// `admin.socket` as configured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AdminSocket {
    /// Not configured: the store's default ([`default_socket`]).
    #[default]
    Default,
    /// `""` or `"off"`: no socket.
    Off,
    /// This path (relative paths in the file resolve against its directory).
    Path(PathBuf),
}

/// Reads `admin.socket` (or [`ENV_ADMIN_SOCKET`]).
pub(super) fn admin_socket(ctx: &Ctx<'_>, raw: RawAdmin) -> Result<AdminSocket, ConfigError> {
    let (value, origin, base) = match (ctx.var(ENV_ADMIN_SOCKET), raw.socket) {
        (Some(v), _) => (v, Origin::Env(ENV_ADMIN_SOCKET), PathBuf::new()),
        (None, Some(v)) => (v, Origin::File("admin.socket"), ctx.base.clone()),
        (None, None) => return Ok(AdminSocket::Default),
    };
    if value.is_empty() || value == "off" {
        return Ok(AdminSocket::Off);
    }
    let path = base.join(&value);
    if path.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(ctx.at(
            &origin,
            format!(
                "{}: longer than the {MAX_SOCKET_PATH} bytes an admin socket path may have (a Unix socket path \
                 holds 107, and the socket is first bound under a name 12 bytes longer); choose a shorter path",
                path.display()
            ),
        ));
    }
    Ok(AdminSocket::Path(path))
}
