//! `[users]`: the local users, read from their own file (`users.file` or `FORWARDAUTH_USERS_FILE`).
//!
//! The users file is separate so that it can have its own permissions and be rewritten without touching the
//! configuration; its errors name that file, not the configuration file.

use std::path::PathBuf;

use oauth_core::{LocalUser, LocalUsers};
use serde::Deserialize;

use super::ConfigError;
use super::source::{Ctx, Origin, parse_toml};

/// Environment variable overriding `users.file`.
pub const ENV_USERS_FILE: &str = "FORWARDAUTH_USERS_FILE";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUsers {
    file: Option<PathBuf>,
}

/// The users file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUsersFile {
    #[serde(default)]
    users: Vec<RawUser>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUser {
    username: String,
    password_hash: String,
    email: Option<String>,
    name: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
}

pub(super) fn users(ctx: &Ctx<'_>, raw: RawUsers) -> Result<Vec<LocalUser>, ConfigError> {
    let (path, origin) = match (ctx.var(ENV_USERS_FILE), raw.file) {
        (Some(v), _) => (PathBuf::from(v), Origin::Env(ENV_USERS_FILE)),
        (None, Some(p)) => (ctx.base.join(p), Origin::File("users.file")),
        (None, None) => return Ok(Vec::new()),
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| ctx.at(&origin, format!("cannot read {}: {e}", path.display())))?;
    let file = path.display().to_string();
    let raw: RawUsersFile = parse_toml(&text, &path)?;
    let mut list = Vec::with_capacity(raw.users.len());
    for (i, u) in raw.users.into_iter().enumerate() {
        let user_err = |key: &str, reason: &str| ConfigError::Users {
            file: file.clone(),
            reason: format!("users[{i}].{key} (user `{}`): {reason}", u.username),
        };
        if u.username.trim().is_empty() {
            return Err(ConfigError::Users {
                file: file.clone(),
                reason: format!("users[{i}].username: must not be empty"),
            });
        }
        if u.username.contains(char::is_whitespace) {
            return Err(user_err("username", "must not contain whitespace"));
        }
        let mut user = LocalUser::new(u.username.clone(), u.password_hash.clone())
            .with_groups(u.groups.clone());
        if let Some(e) = &u.email {
            if !e.contains('@') {
                return Err(user_err("email", "not an e-mail address"));
            }
            user = user.with_email(e.clone());
        }
        if let Some(n) = &u.name {
            user = user.with_name(n.clone());
        }
        list.push((u, user));
    }
    LocalUsers::new(list.iter().map(|(_, user)| user.clone()).collect()).map_err(|e| {
        ConfigError::Users {
            file: file.clone(),
            reason: e.to_string(),
        }
    })?;
    // A PHC string of another algorithm parses, but no password would ever match it.
    for (i, (u, _)) in list.iter().enumerate() {
        if !u.password_hash.starts_with("$argon2id$") {
            return Err(ConfigError::Users {
                file: file.clone(),
                reason: format!(
                    "users[{i}].password_hash (user `{}`): not an argon2id hash; make one with `forwardauth-svc hash-password`",
                    u.username
                ),
            });
        }
    }
    Ok(list.into_iter().map(|(_, user)| user).collect())
}
