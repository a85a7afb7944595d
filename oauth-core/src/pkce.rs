//! PKCE (RFC 7636) with the S256 method only, as OAuth 2.1 and the MCP authorization spec require.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::wire::error::OAuthError;

/// Checks that a `code_challenge` has the shape of an S256 challenge: 43 base64url characters (RFC 7636 §4.2).
///
/// # Errors
/// `invalid_request` describing the problem.
pub fn check_challenge(challenge: &str) -> Result<(), OAuthError> {
    if challenge.len() != 43
        || !challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(OAuthError::invalid_request(
            "code_challenge must be the base64url-encoded SHA-256 of the code_verifier (43 characters)",
        ));
    }
    Ok(())
}

/// Whether `verifier` is well formed (RFC 7636 §4.1: 43–128 characters of `[A-Za-z0-9-._~]`).
pub fn verifier_is_well_formed(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The S256 challenge of a verifier.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `verifier` matches the stored S256 `challenge`, compared in constant time.
pub fn verify(challenge: &str, verifier: &str) -> bool {
    verifier_is_well_formed(verifier)
        && s256(verifier).as_bytes().ct_eq(challenge.as_bytes()).into()
}
