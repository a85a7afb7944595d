//! Local users with argon2id password hashes: the embedded identity source that needs nothing external.
//!
//! # Security
//! Password checks run on the blocking pool through a bounded [`PasswordChecker`] (argon2 is deliberately slow
//! and memory-hard; see [`super::password`]). An unknown user is checked against a fixed dummy hash so that the
//! answer takes as long as for a known user with a wrong password; both say only "login failed".

use std::collections::HashMap;
use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, SaltString};
use async_trait::async_trait;

use super::password::{PasswordCheckLimits, PasswordChecker};
use super::{
    Credentials, IdentityProvider, Login, LoginStart, Recheck, SignIn, UpstreamError,
    UpstreamRequest,
};
use crate::types::{Identity, UpstreamSession};

/// Why a list of local users was refused. Each names the user, since a users file is edited by hand.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LocalUsersError {
    /// The user's `password_hash` is not a PHC string (`$argon2id$v=19$…`): no password could ever match it.
    #[error("user `{username}`: password_hash is not a valid PHC hash: {reason}")]
    InvalidHash {
        /// The user.
        username: String,
        /// The parser's message.
        reason: String,
    },
    /// Two users have the same username: which password counts would be a guess.
    #[error("user `{username}` is listed twice")]
    Duplicate {
        /// The user.
        username: String,
    },
}

/// Hashing a password failed (argon2 refused the parameters or the salt): nothing the caller can change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot hash the password: {0}")]
pub struct PasswordHashError(String);

/// One local user.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalUser {
    /// Login name; the subject is `local:{username}`.
    pub username: String,
    /// PHC-format argon2id hash.
    pub password_hash: String,
    /// E-mail address.
    pub email: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Groups.
    pub groups: Vec<String>,
}

impl LocalUser {
    /// A user with a login name and a PHC password hash (see [`LocalUsers::hash_password`]).
    pub fn new(username: impl Into<String>, password_hash: impl Into<String>) -> Self {
        LocalUser {
            username: username.into(),
            password_hash: password_hash.into(),
            email: None,
            name: None,
            groups: Vec::new(),
        }
    }

    /// Sets the e-mail address.
    pub fn with_email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    /// Sets the display name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the groups.
    pub fn with_groups(mut self, groups: Vec<String>) -> Self {
        self.groups = groups;
        self
    }
}

impl std::fmt::Debug for LocalUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalUser")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The local user directory. Clones share the users and the bound on password checks.
#[derive(Clone, Debug)]
pub struct LocalUsers {
    users: Arc<HashMap<String, LocalUser>>,
    checker: PasswordChecker,
}

impl Default for LocalUsers {
    fn default() -> Self {
        LocalUsers {
            users: Arc::default(),
            checker: PasswordChecker::new(PasswordCheckLimits::default()),
        }
    }
}

/// A valid argon2id hash of a random string nobody knows, used for unknown users.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$bQbZhmQZ4kqPC9QqgNf0P3Wq7Xh3sF0OjB8o4yF8o7Y";

impl LocalUsers {
    /// A directory of the given users.
    ///
    /// # Errors
    /// [`LocalUsersError`] naming the user whose hash is not a valid PHC string, or a duplicate username.
    pub fn new(users: Vec<LocalUser>) -> Result<Self, LocalUsersError> {
        let mut map = HashMap::new();
        for u in users {
            PasswordHash::new(&u.password_hash).map_err(|e| LocalUsersError::InvalidHash {
                username: u.username.clone(),
                reason: e.to_string(),
            })?;
            if map.contains_key(&u.username) {
                return Err(LocalUsersError::Duplicate {
                    username: u.username,
                });
            }
            map.insert(u.username.clone(), u);
        }
        Ok(LocalUsers {
            users: Arc::new(map),
            checker: PasswordChecker::new(PasswordCheckLimits::default()),
        })
    }

    /// Bounds the password checks of this directory (default [`PasswordCheckLimits::default`]).
    #[must_use]
    pub fn with_limits(mut self, limits: PasswordCheckLimits) -> Self {
        self.checker = PasswordChecker::new(limits);
        self
    }

    /// The bounded pool the password checks run in.
    pub fn checker(&self) -> &PasswordChecker {
        &self.checker
    }

    /// Hashes a password with argon2id and a random salt, in PHC format.
    ///
    /// # Errors
    /// [`PasswordHashError`] if argon2 fails.
    pub fn hash_password(password: &str) -> Result<String, PasswordHashError> {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| PasswordHashError(e.to_string()))
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether there are no users.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The identity of `username` if `password` is theirs. Unknown users cost a check against [`DUMMY_HASH`].
    async fn check(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<Identity>, UpstreamError> {
        let user = self.users.get(username);
        let stored = user.map_or(DUMMY_HASH, |u| u.password_hash.as_str());
        let ok = self
            .checker
            .verify(stored.to_owned(), password.to_owned())
            .await
            .map_err(|busy| UpstreamError::Busy {
                retry_after: busy.retry_after,
            })?;
        Ok(user.filter(|_| ok).map(identity_of))
    }
}

fn identity_of(user: &LocalUser) -> Identity {
    Identity {
        subject: format!("local:{}", user.username),
        username: Some(user.username.clone()),
        email: user.email.clone(),
        name: user.name.clone(),
        groups: user.groups.clone(),
    }
}

#[async_trait]
impl IdentityProvider for LocalUsers {
    fn id(&self) -> &str {
        "local"
    }

    fn display_name(&self) -> &str {
        "Local account"
    }

    fn sign_in(&self) -> SignIn {
        if self.users.is_empty() {
            SignIn::Hidden
        } else {
            SignIn::PasswordForm
        }
    }

    async fn start(&self, _request: &UpstreamRequest) -> Result<LoginStart, UpstreamError> {
        Ok(LoginStart::PasswordForm)
    }

    async fn authenticate(&self, credentials: Credentials<'_>) -> Result<Login, UpstreamError> {
        let Credentials::Password { username, password } = credentials else {
            return Err(UpstreamError::Unsupported("upstream callbacks"));
        };
        self.check(username, password)
            .await?
            .map(Login::local)
            .ok_or(UpstreamError::LoginFailed)
    }

    /// A local user is current while the users file still lists them; the identity is re-read from it (so a
    /// changed e-mail or group applies at the next refresh).
    async fn recheck(
        &self,
        identity: &Identity,
        _session: Option<&UpstreamSession>,
    ) -> Result<Recheck, UpstreamError> {
        let name = identity.subject.strip_prefix("local:").unwrap_or_default();
        Ok(match self.users.get(name) {
            Some(u) => Recheck::Current(Login::local(identity_of(u))),
            None => Recheck::Gone,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dummy_hash_is_a_real_argon2id_hash_so_unknown_users_cost_the_same() {
        let parsed = PasswordHash::new(DUMMY_HASH).expect("dummy hash parses");
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        // Verifying against it does the full argon2 work and fails for any password.
        assert!(!super::super::password::verify_phc(DUMMY_HASH, b"anything"));
    }
}
