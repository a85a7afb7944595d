//! `private_key_jwt` client authentication (RFC 7523 §2.2 and §3, RFC 7521 §4.2) for document clients.
//!
//! The client signs a short-lived JWT with `iss` = `sub` = its `client_id` and the authorization server as
//! `aud`, and sends it as `client_assertion` with `client_assertion_type` =
//! `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`. The signature is checked against the public keys
//! of the client's metadata document (`jwks`, or `jwks_uri` fetched with the same safeguards as the document).
//!
//! # Security
//! * The algorithm comes from an allow-list of asymmetric algorithms. `none` and the HMAC family are refused:
//!   a document is public, so a "key" in it shared with an HMAC would be known to everyone; keys of type `oct`
//!   and keys carrying private members are ignored for the same reason.
//! * Lifetime is bounded (at most [`MAX_LIFETIME`] from now), so a leaked assertion is short-lived.
//! * `jti` is single-use until the assertion expires ([`JtiLedger`]). The ledger is in memory, per instance: with
//!   several instances behind one Redis a replay to *another* instance within the assertion's few minutes is not
//!   detected. The bounded lifetime and TLS limit that window; a store-backed ledger would close it.
//! * This module and `keys.rs` are the only ones that touch josekit.

use std::collections::HashMap;
use std::time::Duration;

use josekit::jwk::{Jwk, JwkSet};
use josekit::jws::{
    ES256, ES384, ES512, EdDSA, JwsVerifier, PS256, PS384, PS512, RS256, RS384, RS512,
};
use josekit::jwt;
use parking_lot::Mutex;

use crate::types::TokenHash;

/// RFC 7523 §2.2: the `client_assertion_type` of a JWT client assertion.
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The signing algorithms accepted in client assertions (advertised as
/// `token_endpoint_auth_signing_alg_values_supported`).
pub(crate) const SIGNING_ALGS: &[&str] = &[
    "ES256", "ES384", "ES512", "EdDSA", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512",
];

/// The longest an assertion may still be valid when presented.
pub(crate) const MAX_LIFETIME: Duration = Duration::from_secs(300);

/// How many unexpired `jti`s are remembered at most.
const LEDGER_CAPACITY: usize = 100_000;

fn verifier(alg: &str, jwk: &Jwk) -> Option<Box<dyn JwsVerifier>> {
    fn boxed<V: JwsVerifier + 'static>(
        v: Result<V, josekit::JoseError>,
    ) -> Option<Box<dyn JwsVerifier>> {
        v.ok().map(|v| Box::new(v) as Box<dyn JwsVerifier>)
    }
    match alg {
        "ES256" => boxed(ES256.verifier_from_jwk(jwk)),
        "ES384" => boxed(ES384.verifier_from_jwk(jwk)),
        "ES512" => boxed(ES512.verifier_from_jwk(jwk)),
        "EdDSA" => boxed(EdDSA.verifier_from_jwk(jwk)),
        "PS256" => boxed(PS256.verifier_from_jwk(jwk)),
        "PS384" => boxed(PS384.verifier_from_jwk(jwk)),
        "PS512" => boxed(PS512.verifier_from_jwk(jwk)),
        "RS256" => boxed(RS256.verifier_from_jwk(jwk)),
        "RS384" => boxed(RS384.verifier_from_jwk(jwk)),
        "RS512" => boxed(RS512.verifier_from_jwk(jwk)),
        _ => None,
    }
}

/// A public key fit for checking a client assertion: asymmetric, without private members.
fn usable(jwk: &Jwk) -> bool {
    const PRIVATE: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "k"];
    jwk.key_type() != "oct"
        && !PRIVATE.iter().any(|m| jwk.parameter(m).is_some())
        && jwk.key_use().is_none_or(|u| u == "sig")
}

/// The `sub` of an assertion, unverified: which client it claims to be, to find its keys.
pub(crate) fn claimed_client(assertion: &str) -> Option<String> {
    let payload = assertion.split('.').nth(1)?;
    let raw =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&raw).ok()?;
    claims.get("sub")?.as_str().map(str::to_owned)
}

/// Checks the header and signature of `assertion` against `jwks` and returns its claims (not yet validated).
///
/// # Errors
/// Why the assertion is refused, for `error_description`.
pub(crate) fn verify_signature(
    assertion: &str,
    jwks: &serde_json::Value,
) -> Result<serde_json::Map<String, serde_json::Value>, &'static str> {
    let header = jwt::decode_header(assertion).map_err(|_| "the client assertion is not a JWT")?;
    let alg = header
        .claim("alg")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    if !SIGNING_ALGS.contains(&alg) {
        return Err("the client assertion's alg is not accepted (asymmetric algorithms only)");
    }
    let set = match jwks {
        serde_json::Value::Object(map) => JwkSet::from_map(map.clone()).ok(),
        _ => None,
    }
    .ok_or("the client's JWK set is not valid")?;
    let candidates = match header.claim("kid").and_then(|v| v.as_str()) {
        Some(kid) => set.get(kid),
        None => set.keys(),
    };
    for jwk in candidates.into_iter().filter(|k| usable(k)) {
        let Some(v) = verifier(alg, jwk) else {
            continue;
        };
        if let Ok((payload, _)) = jwt::decode_with_verifier(assertion, v.as_ref()) {
            return Ok(payload.claims_set().clone());
        }
    }
    Err("the client assertion's signature does not verify with the client's keys")
}

/// Remembers the `jti`s of accepted assertions until they expire, so each is accepted once.
#[derive(Debug, Default)]
pub(crate) struct JtiLedger {
    seen: Mutex<HashMap<TokenHash, u64>>,
}

impl JtiLedger {
    /// Records `(client_id, jti)` until `expires_at`; `Ok(false)` if it was already recorded.
    ///
    /// # Errors
    /// When the ledger is full of unexpired entries (then the assertion cannot be checked for replay).
    pub fn first_use(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: u64,
        now: u64,
    ) -> Result<bool, &'static str> {
        // NUL cannot occur in a client_id URL, so the pair is unambiguous.
        let key = TokenHash::of(format!("{client_id}\0{jti}").as_bytes());
        let mut seen = self.seen.lock();
        if seen.get(&key).is_some_and(|exp| *exp >= now) {
            return Ok(false);
        }
        if seen.len() >= LEDGER_CAPACITY {
            seen.retain(|_, exp| *exp >= now);
            if seen.len() >= LEDGER_CAPACITY {
                return Err("too many client assertions in flight; try again shortly");
            }
        }
        seen.insert(key, expires_at);
        Ok(true)
    }
}
