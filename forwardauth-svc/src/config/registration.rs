//! `[registration]`: the dynamic client registration policy (RFC 7591), with the
//! `FORWARDAUTH_INITIAL_ACCESS_TOKEN` override.
//!
//! Initial access tokens are hashed here, as soon as they are read: the engine and its store only ever see the
//! hashes.

use std::time::Duration;

use oauth_core::{Secret, ServerConfig};
use serde::Deserialize;

use super::ConfigError;
use super::source::{AT_LEAST_ONE, Ctx, SecretString};

/// Environment variable overriding `registration.initial_access_tokens` with one token.
pub const ENV_INITIAL_ACCESS_TOKEN: &str = "FORWARDAUTH_INITIAL_ACCESS_TOKEN";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRegistration {
    initial_access_tokens: Option<Vec<SecretString>>,
    allowed_schemes: Option<Vec<String>>,
    max_redirect_uris: Option<usize>,
    downgrade_secret_to_none: Option<bool>,
    max_clients: Option<usize>,
    never_used_client_ttl_secs: Option<u64>,
    idle_client_ttl_secs: Option<u64>,
}

/// Whether `s` is a URI scheme (RFC 3986 §3.1).
fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

pub(super) fn apply_registration(
    ctx: &Ctx<'_>,
    raw: RawRegistration,
    server: &mut ServerConfig,
) -> Result<(), ConfigError> {
    let policy = &mut server.registration;
    if let Some(t) = ctx.var(ENV_INITIAL_ACCESS_TOKEN) {
        if t.contains(char::is_whitespace) {
            return Err(ConfigError::Env {
                var: ENV_INITIAL_ACCESS_TOKEN,
                reason: "must not contain whitespace".into(),
            });
        }
        policy.initial_access_tokens = vec![Secret::new(t).hash()];
    } else if let Some(tokens) = raw.initial_access_tokens {
        let mut hashes = Vec::with_capacity(tokens.len());
        for (i, SecretString(t)) in tokens.into_iter().enumerate() {
            if t.is_empty() || t.contains(char::is_whitespace) {
                return Err(ctx.invalid(
                    format!("registration.initial_access_tokens[{i}]"),
                    "must be non-empty and without whitespace",
                ));
            }
            hashes.push(Secret::new(t).hash());
        }
        policy.initial_access_tokens = hashes;
    }
    if let Some(schemes) = raw.allowed_schemes {
        for (i, s) in schemes.iter().enumerate() {
            let key = format!("registration.allowed_schemes[{i}]");
            if !is_scheme(s) {
                return Err(ctx.invalid(key, format!("{s:?} is not a URI scheme")));
            }
            if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") {
                return Err(ctx.invalid(
                    key,
                    "http and https are always handled; list only private-use schemes",
                ));
            }
        }
        policy.allowed_schemes = schemes;
    }
    if let Some(n) = ctx.nonzero(
        "registration.max_redirect_uris",
        raw.max_redirect_uris,
        AT_LEAST_ONE,
    )? {
        policy.max_redirect_uris = n;
    }
    if let Some(d) = raw.downgrade_secret_to_none {
        policy.downgrade_secret_to_none = d;
    }
    if let Some(n) = raw.max_clients {
        policy.max_clients = n;
    }
    let keep_or = |secs: u64| (secs > 0).then(|| Duration::from_secs(secs));
    if let Some(s) = raw.never_used_client_ttl_secs {
        policy.never_used_client_ttl = keep_or(s);
    }
    if let Some(s) = raw.idle_client_ttl_secs {
        policy.idle_client_ttl = keep_or(s);
    }
    Ok(())
}
