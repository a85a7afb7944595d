//! `[tokens]`: lifetimes and the signing algorithm, written onto the engine's [`ServerConfig`].
//!
//! Only what the file sets is changed; everything else keeps the engine's default, so the defaults live in one
//! place (`ServerConfig::new`).

use std::time::Duration;

use oauth_core::{ServerConfig, SigningAlg};
use serde::Deserialize;

use super::ConfigError;
use super::source::{Ctx, GREATER_THAN_ZERO};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTokens {
    access_token_ttl_secs: Option<u64>,
    refresh_token_ttl_secs: Option<u64>,
    code_ttl_secs: Option<u64>,
    refresh_grace_secs: Option<u64>,
    session_ttl_secs: Option<u64>,
    max_unverified_age_secs: Option<u64>,
    consent_ttl_secs: Option<u64>,
    signing_alg: Option<String>,
    signing_key_rotation_secs: Option<u64>,
}

pub(super) fn apply_tokens(
    ctx: &Ctx<'_>,
    raw: RawTokens,
    server: &mut ServerConfig,
) -> Result<(), ConfigError> {
    let positive = |key: &str, v: Option<u64>, into: &mut Duration| {
        if let Some(s) = ctx.nonzero(format!("tokens.{key}"), v, GREATER_THAN_ZERO)? {
            *into = Duration::from_secs(s);
        }
        Ok::<(), ConfigError>(())
    };
    positive(
        "access_token_ttl_secs",
        raw.access_token_ttl_secs,
        &mut server.access_token_ttl,
    )?;
    positive(
        "refresh_token_ttl_secs",
        raw.refresh_token_ttl_secs,
        &mut server.refresh_token_ttl,
    )?;
    positive("code_ttl_secs", raw.code_ttl_secs, &mut server.code_ttl)?;
    positive(
        "session_ttl_secs",
        raw.session_ttl_secs,
        &mut server.session_ttl,
    )?;
    positive(
        "max_unverified_age_secs",
        raw.max_unverified_age_secs,
        &mut server.max_unverified_age,
    )?;
    positive(
        "consent_ttl_secs",
        raw.consent_ttl_secs,
        &mut server.consent_ttl,
    )?;
    if let Some(s) = raw.refresh_grace_secs {
        server.refresh_grace = Duration::from_secs(s);
    }
    if let Some(s) = raw.signing_key_rotation_secs {
        server.signing_key_rotation = (s > 0).then(|| Duration::from_secs(s));
    }
    if let Some(alg) = raw.signing_alg {
        server.signing_alg = SigningAlg::from_name(&alg).ok_or_else(|| {
            ctx.invalid(
                "tokens.signing_alg",
                format!("expected \"ES256\", \"RS256\" or \"EdDSA\", not {alg:?}"),
            )
        })?;
    }
    Ok(())
}
