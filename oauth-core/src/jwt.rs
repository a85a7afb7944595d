//! Access-token claims in the RFC 9068 shape, and their validation.
//!
//! Signature checks live in [`JosekitKeyManager`](crate::JosekitKeyManager); this module decides whether a correctly signed claim set is
//! acceptable *now*, *here*: `iss` is ours byte for byte, `aud` is the resource being accessed, `exp`/`nbf`/`iat`
//! hold against the injected clock with a small leeway.

use serde::{Deserialize, Serialize};

/// The claims of our access tokens (RFC 9068 §2.2, plus identity claims from RFC 9068 §2.2.1/OIDC Core §5.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// Issuer.
    pub iss: String,
    /// Subject: the user.
    pub sub: String,
    /// Audience: the protected resource (RFC 8707).
    pub aud: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// Granted scope, space-separated.
    pub scope: String,
    /// Expiry.
    pub exp: u64,
    /// Issue time.
    pub iat: u64,
    /// Token identifier.
    pub jti: String,
    /// The grant (token family) this token belongs to; revoking the grant revokes the token.
    pub sid: String,
    /// Login name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// E-mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Not before (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

impl AccessTokenClaims {
    /// The claims as a JSON object, as the signer wants them.
    pub fn to_map(&self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        }
    }

    /// Reads claims from a verified JSON object.
    ///
    /// # Errors
    /// A reason if a required claim is missing or has the wrong type.
    pub fn from_map(map: serde_json::Map<String, serde_json::Value>) -> Result<Self, &'static str> {
        // `aud` may legally be an array (RFC 7519 §4.1.3); ours is always a single string.
        serde_json::from_value(serde_json::Value::Object(map))
            .map_err(|_| "token claims are malformed")
    }
}

/// Why a correctly signed token is not acceptable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimsRejection {
    /// `exp` has passed.
    Expired,
    /// `nbf` or `iat` is in the future.
    NotYetValid,
    /// `iss` is not ours.
    WrongIssuer,
    /// `aud` is not the resource being accessed.
    WrongAudience,
}

impl ClaimsRejection {
    /// A description for `error_description`.
    pub fn describe(self) -> &'static str {
        match self {
            ClaimsRejection::Expired => "the access token has expired",
            ClaimsRejection::NotYetValid => "the access token is not valid yet",
            ClaimsRejection::WrongIssuer => {
                "the access token was not issued by this authorization server"
            }
            ClaimsRejection::WrongAudience => "the access token was not issued for this resource",
        }
    }
}

/// Checks time claims against `now` (seconds) with `leeway` seconds of tolerance.
///
/// # Errors
/// [`ClaimsRejection::Expired`] or [`ClaimsRejection::NotYetValid`].
pub fn check_time(
    claims: &AccessTokenClaims,
    now: u64,
    leeway: u64,
) -> Result<(), ClaimsRejection> {
    if now >= claims.exp.saturating_add(leeway) {
        return Err(ClaimsRejection::Expired);
    }
    let not_before = claims.nbf.unwrap_or(claims.iat);
    if not_before > now.saturating_add(leeway) {
        return Err(ClaimsRejection::NotYetValid);
    }
    Ok(())
}

/// Full validation: time, issuer, and (when given) audience.
///
/// # Errors
/// The first failing check.
pub fn validate(
    claims: &AccessTokenClaims,
    now: u64,
    leeway: u64,
    issuer: &str,
    audience: Option<&str>,
) -> Result<(), ClaimsRejection> {
    check_time(claims, now, leeway)?;
    if claims.iss != issuer {
        return Err(ClaimsRejection::WrongIssuer);
    }
    if audience.is_some_and(|aud| claims.aud != aud) {
        return Err(ClaimsRejection::WrongAudience);
    }
    Ok(())
}
