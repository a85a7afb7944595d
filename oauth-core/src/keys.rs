//! Signing keys: generation, persistence, rotation, the JWK set, and signature verification.
//!
//! This module and `cimd::assertion` (client assertions, `private_key_jwt`) are the only ones that touch josekit. Keys are generated on first start and persisted in the
//! [`Store`], so a restart keeps verifying the tokens it issued. Rotation makes a new key the signer and keeps the
//! retired one published (and accepted) until the last token it signed has expired.
//!
//! # Several instances
//! Instances sharing a store share the keys: the first to start stores its key with
//! [`Store::put_first_key`] and the others load that one. A rotation stores the new key with a `not_before` in
//! the future (the configured activation delay) and sets the old key's `retired_at` to the same instant, so every
//! instance switches signer at the same moment, and only after it has had time to load (and so to verify) the new
//! key. Which key signs is decided at signing time from the records and the clock, not at load time. An instance
//! that still meets an unknown `kid` reloads the keys (rate-limited) before rejecting the token
//! ([`crate::AuthServer::verify_request_with_reload`]).
//!
//! # At rest
//! A key's private half is stored [`Sealed`](crate::Sealed) under the key-encryption key, bound to its `kid`
//! (see [`Sealer`]): a copy of the store yields no key to sign with, and a private key moved into another record
//! does not open. A key found in plaintext (a store from an earlier version) or sealed with a previous
//! key-encryption key is sealed again with the current one when the keys are loaded at start.
//!
//! # Rotation on a schedule
//! With [`ServerConfig::signing_key_rotation`](crate::ServerConfig::signing_key_rotation) set, the housekeeping
//! loop rotates the signing key once the newest one has signed that long ([`JosekitKeyManager::rotation_due`]),
//! through the same [`JosekitKeyManager::rotate`] as an operator's `keys rotate`, so the other instances learn of
//! it the same way. Instances sharing a store all see the rotation fall due at the same moment; the store elects
//! the one that performs it (see `AuthServer::rotate_keys_if_due`).
//!
//! # Security
//! Verification never trusts the token header to choose an algorithm: the `kid` selects one of *our* keys, and
//! the header's `alg` must be that key's algorithm, which is always asymmetric. So `alg: none`, an HMAC alg keyed
//! with a public key, and unknown `kid`s are all rejected before any signature check.

use std::collections::HashMap;
use std::sync::Arc;

use josekit::jwk::Jwk;
use josekit::jws::{ES256, EdDSA, JwsHeader, JwsSigner, JwsVerifier, RS256};
use josekit::jwt::{self, JwtPayload};
use parking_lot::RwLock;

use crate::clock::Clock;
use crate::config::SigningAlg;
use crate::seal::{SealError, Sealer};
use crate::store::{KeyRecord, PrivateJwk, Store, StoreError};

/// A key failure.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Key material could not be generated, parsed or used.
    #[error("key material: {0}")]
    Material(String),
    /// The keys could not be loaded or saved.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A token failed verification; the text says why (for logs and `error_description`).
    #[error("{0}")]
    Rejected(&'static str),
    /// A stored private key could not be sealed or opened (e.g. its key-encryption key is not configured).
    #[error(transparent)]
    Sealed(#[from] SealError),
}

/// A key that may sign during `[from, until)`.
struct SigningKey {
    kid: String,
    from: u64,
    until: Option<u64>,
    created_at: u64,
    signer: Box<dyn JwsSigner>,
}

struct KeySet {
    /// Newest first: by `from`, then `created_at`, then `kid` (the same order on every instance).
    signers: Vec<SigningKey>,
    verifiers: HashMap<String, Box<dyn JwsVerifier>>,
    jwks: serde_json::Value,
}

impl KeySet {
    /// The key that signs at `now`: the newest whose window contains `now`. If none does (a clock behind the
    /// instance that rotated), the newest that has started, retired or not: it is still published, so every
    /// instance verifies what it signs.
    fn signer_at(&self, now: u64) -> Option<&SigningKey> {
        self.signers
            .iter()
            .find(|k| k.from <= now && k.until.is_none_or(|u| u > now))
            .or_else(|| self.signers.iter().find(|k| k.from <= now))
    }
}

/// Manages the signing keys with josekit.
pub struct JosekitKeyManager {
    keys: RwLock<Arc<KeySet>>,
    alg: SigningAlg,
    sealer: Sealer,
}

impl std::fmt::Debug for JosekitKeyManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JosekitKeyManager")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

fn material(e: impl std::fmt::Display) -> KeyError {
    KeyError::Material(e.to_string())
}

fn generate(alg: SigningAlg, now: u64, sealer: &Sealer) -> Result<KeyRecord, KeyError> {
    let mut jwk = match alg {
        SigningAlg::Es256 => {
            use josekit::jwk::KeyPair as _;
            ES256
                .generate_key_pair()
                .map_err(material)?
                .to_jwk_key_pair()
        }
        SigningAlg::Rs256 => {
            use josekit::jwk::KeyPair as _;
            RS256
                .generate_key_pair(2048)
                .map_err(material)?
                .to_jwk_key_pair()
        }
        SigningAlg::EdDsa => {
            use josekit::jwk::KeyPair as _;
            EdDSA
                .generate_key_pair(josekit::jwk::alg::ed::EdCurve::Ed25519)
                .map_err(material)?
                .to_jwk_key_pair()
        }
    };
    let kid = crate::types::random_token(12);
    jwk.set_key_id(&kid);
    jwk.set_algorithm(alg.name());
    jwk.set_key_use("sig");
    Ok(KeyRecord {
        private_jwk: sealer.seal(&PrivateJwk::new(jwk.to_string()), &kid)?,
        kid,
        alg: alg.name().to_owned(),
        created_at: now,
        retired_at: None,
        publish_until: None,
        not_before: None,
    })
}

fn signer(alg: SigningAlg, jwk: &Jwk) -> Result<Box<dyn JwsSigner>, KeyError> {
    Ok(match alg {
        SigningAlg::Es256 => Box::new(Es256Signer::from_jwk(jwk)?),
        SigningAlg::Rs256 => Box::new(RS256.signer_from_jwk(jwk).map_err(material)?),
        SigningAlg::EdDsa => Box::new(EdDSA.signer_from_jwk(jwk).map_err(material)?),
    })
}

fn verifier(alg: SigningAlg, jwk: &Jwk) -> Result<Box<dyn JwsVerifier>, KeyError> {
    Ok(match alg {
        SigningAlg::Es256 => Box::new(ES256.verifier_from_jwk(jwk).map_err(material)?),
        SigningAlg::Rs256 => Box::new(RS256.verifier_from_jwk(jwk).map_err(material)?),
        SigningAlg::EdDsa => Box::new(EdDSA.verifier_from_jwk(jwk).map_err(material)?),
    })
}

/// ES256 signing without OpenSSL's `EVP_DigestSign*` layer.
///
/// josekit's ES256 signer builds an `EVP_DigestSign` context per signature (on OpenSSL 3, a provider lookup each
/// time), has OpenSSL encode the signature in DER and decodes it again into JWS's `r || s`. Every access token is
/// one signature, so that overhead is paid on every code exchange and refresh: here the SHA-256 digest is taken in
/// Rust and signed with `ECDSA_do_sign` on a key parsed once, and `r` and `s` are written padded to 32 bytes each.
/// What comes out is the same JWS; josekit's own ES256 verifier checks it (a test does).
#[derive(Clone)]
struct Es256Signer {
    key: openssl::ec::EcKey<openssl::pkey::Private>,
    kid: Option<String>,
}

impl std::fmt::Debug for Es256Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private key.
        f.debug_struct("Es256Signer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Es256Signer {
    fn from_jwk(jwk: &Jwk) -> Result<Self, KeyError> {
        use base64::Engine as _;
        use openssl::bn::BigNum;
        use openssl::ec::{EcGroup, EcKey};
        use openssl::nid::Nid;

        // josekit checks the JWK (kty, crv, use, key_ops, the members) exactly as it does for its own signer.
        ES256.signer_from_jwk(jwk).map_err(material)?;
        let member = |name: &str| -> Result<BigNum, KeyError> {
            let text = jwk
                .parameter(name)
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| KeyError::Material(format!("EC key without `{name}`")))?;
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(text)
                .map_err(material)?;
            BigNum::from_slice(&bytes).map_err(material)
        };
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(material)?;
        let (x, y, d) = (member("x")?, member("y")?, member("d")?);
        let public = EcKey::from_public_key_affine_coordinates(&group, &x, &y).map_err(material)?;
        let key =
            EcKey::from_private_components(&group, &d, public.public_key()).map_err(material)?;
        // `EC_KEY_check_key`: the point is on the curve and is `d` times the generator.
        key.check_key().map_err(material)?;
        Ok(Self {
            key,
            kid: jwk.key_id().map(str::to_owned),
        })
    }
}

impl JwsSigner for Es256Signer {
    fn algorithm(&self) -> &dyn josekit::jws::JwsAlgorithm {
        &ES256
    }

    fn key_id(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    fn signature_len(&self) -> usize {
        64
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, josekit::JoseError> {
        use sha2::Digest as _;
        let fail = |e: openssl::error::ErrorStack| josekit::JoseError::InvalidSignature(e.into());
        let digest = sha2::Sha256::digest(message);
        let sig = openssl::ecdsa::EcdsaSig::sign(&digest, &self.key).map_err(fail)?;
        let mut out = sig.r().to_vec_padded(32).map_err(fail)?;
        out.extend_from_slice(&sig.s().to_vec_padded(32).map_err(fail)?);
        Ok(out)
    }

    fn box_clone(&self) -> Box<dyn JwsSigner> {
        Box::new(self.clone())
    }
}

/// The public half of a private JWK: only the members RFC 7517/7518/8037 define as public are kept.
fn public_jwk(private: &Jwk) -> serde_json::Value {
    const PUBLIC: &[&str] = &["kty", "crv", "x", "y", "n", "e", "kid", "alg", "use"];
    let map: serde_json::Map<String, serde_json::Value> = private
        .as_ref()
        .iter()
        .filter(|(k, _)| PUBLIC.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    serde_json::Value::Object(map)
}

/// Whether a stored key is still of use: published, and of an algorithm we know.
fn is_live(rec: &KeyRecord, now: u64) -> bool {
    rec.publish_until.is_none_or(|until| until > now) && SigningAlg::from_name(&rec.alg).is_some()
}

/// Whether a plaintext private key in `records` is one to migrate: only in a store from before sealing, where no
/// key is sealed. Once one is, a plaintext key can only have been written by someone without the key-encryption
/// key (write access to the store is not the power to add a signing key), and it is ignored, never sealed.
fn plaintext_is_legacy(records: &[KeyRecord]) -> bool {
    records.iter().all(|r| r.private_jwk.key_id().is_none())
}

/// When a key starts signing.
fn starts(rec: &KeyRecord) -> u64 {
    rec.not_before.unwrap_or(rec.created_at)
}

fn build(
    records: &[KeyRecord],
    alg: SigningAlg,
    now: u64,
    sealer: &Sealer,
) -> Result<Option<KeySet>, KeyError> {
    let mut signers = Vec::new();
    let mut verifiers = HashMap::new();
    let mut public = Vec::new();
    let legacy_allowed = plaintext_is_legacy(records);
    for rec in records.iter().filter(|r| is_live(r, now)) {
        let Some(rec_alg) = SigningAlg::from_name(&rec.alg) else {
            continue;
        };
        if rec.private_jwk.key_id().is_none() && !legacy_allowed {
            tracing::warn!(kid = %rec.kid, "a plaintext signing key in a store of sealed keys: ignored (not written with the key-encryption key)");
            continue;
        }
        let private = sealer.open(&rec.private_jwk, &rec.kid)?;
        let jwk = Jwk::from_bytes(private.expose().as_bytes()).map_err(material)?;
        verifiers.insert(rec.kid.clone(), verifier(rec_alg, &jwk)?);
        public.push(public_jwk(&jwk));
        if rec_alg == alg {
            signers.push(SigningKey {
                kid: rec.kid.clone(),
                from: starts(rec),
                until: rec.retired_at,
                created_at: rec.created_at,
                signer: signer(rec_alg, &jwk)?,
            });
        }
    }
    // The same order on every instance, whatever order the store lists the keys in.
    public.sort_by(|a, b| a["kid"].as_str().cmp(&b["kid"].as_str()));
    signers.sort_by(|a, b| (b.from, b.created_at, &b.kid).cmp(&(a.from, a.created_at, &a.kid)));
    let set = KeySet {
        signers,
        verifiers,
        jwks: serde_json::json!({ "keys": public }),
    };
    // Usable if some key signs now, or one will once its activation comes (after a rotation).
    let usable = set
        .signer_at(now)
        .is_some_and(|k| k.until.is_none_or(|u| u > now))
        || set
            .signers
            .iter()
            .any(|k| k.until.is_none() && k.from > now);
    Ok(usable.then_some(set))
}

/// Seals every live key that the current key-encryption key did not seal (a plaintext key from an earlier
/// version, or one sealed with a previous key-encryption key) with the current one, in `records` and in the
/// store. Returns how many.
async fn reseal(
    store: &dyn Store,
    records: &mut [KeyRecord],
    sealer: &Sealer,
    now: u64,
) -> Result<usize, KeyError> {
    let mut resealed = 0;
    let legacy_allowed = plaintext_is_legacy(records);
    for rec in records.iter_mut().filter(|r| {
        is_live(r, now)
            && !sealer.is_current(&r.private_jwk)
            && (legacy_allowed || r.private_jwk.key_id().is_some())
    }) {
        rec.private_jwk = sealer.reseal(rec.private_jwk.clone(), &rec.kid)?;
        // Onto the record as it is now: another instance may have retired the key since it was read, and only
        // the private half is this write's business.
        let Some(mut latest) = store.keys().await?.into_iter().find(|r| r.kid == rec.kid) else {
            continue;
        };
        latest.private_jwk = rec.private_jwk.clone();
        store.put_key(&latest).await?;
        *rec = latest;
        resealed += 1;
    }
    if resealed > 0 {
        tracing::info!(
            keys = resealed,
            key_encryption_key = sealer.current_id(),
            "signing keys sealed with the current key-encryption key"
        );
    }
    Ok(resealed)
}

impl JosekitKeyManager {
    /// Loads the keys from the store, generating and persisting a key for `alg` when there is none. Private keys
    /// are opened with `sealer`; those it did not seal with its current key are sealed again with it (and
    /// written back).
    ///
    /// # Errors
    /// [`KeyError`] if the store fails, stored key material is unusable, or a private key does not open
    /// ([`KeyError::Sealed`]: e.g. its key-encryption key is not configured).
    pub async fn load_or_generate(
        store: &dyn Store,
        alg: SigningAlg,
        sealer: &Sealer,
        clock: &dyn Clock,
    ) -> Result<Self, KeyError> {
        let now = clock.unix();
        let mut records = store.keys().await?;
        reseal(store, &mut records, sealer, now).await?;
        if build(&records, alg, now, sealer)?.is_none() {
            let fresh = generate(alg, now, sealer)?;
            // If another instance stored a first key meanwhile, use what is stored now.
            if records.is_empty() {
                store.put_first_key(&fresh).await?;
            } else {
                store.put_key(&fresh).await?;
            }
            records = store.keys().await?;
        }
        let set = build(&records, alg, now, sealer)?
            .ok_or(KeyError::Material("no usable signing key".into()))?;
        Ok(JosekitKeyManager {
            keys: RwLock::new(Arc::new(set)),
            alg,
            sealer: sealer.clone(),
        })
    }

    /// Whether a rotation on a schedule of `every` is due at the clock's time: `Some` with the `kid` of the
    /// newest key of this algorithm that has not been retired, if it started signing `every` ago (`Some("")`
    /// if there is no such key), else `None`. Decided from the store, not from this instance's memory, so that
    /// an instance does not rotate again right after another one did.
    ///
    /// # Errors
    /// [`KeyError::Store`].
    pub async fn rotation_due(
        &self,
        store: &dyn Store,
        clock: &dyn Clock,
        every: std::time::Duration,
    ) -> Result<Option<String>, KeyError> {
        let now = clock.unix();
        let records = store.keys().await?;
        let newest = records
            .iter()
            .filter(|r| r.alg == self.alg.name() && r.retired_at.is_none())
            .max_by_key(|r| (starts(r), r.created_at, r.kid.as_str()));
        Ok(match newest {
            None => Some(String::new()),
            Some(r) if now >= starts(r).saturating_add(every.as_secs()) => Some(r.kid.clone()),
            Some(_) => None,
        })
    }

    /// Makes a fresh key the signer `activate_after` from now (zero: at once). The current signer keeps signing
    /// until then and stays published and accepted for `retire_after` (the access-token lifetime plus leeway)
    /// after that; keys past their publication are deleted from the store. The new key is stored before the old
    /// one is retired, so a failure in between leaves a usable set.
    ///
    /// # Errors
    /// [`KeyError`] if generation or the store fails.
    pub async fn rotate(
        &self,
        store: &dyn Store,
        clock: &dyn Clock,
        retire_after: std::time::Duration,
        activate_after: std::time::Duration,
    ) -> Result<String, KeyError> {
        let now = clock.unix();
        let activation = now.saturating_add(activate_after.as_secs());
        let mut fresh = generate(self.alg, now, &self.sealer)?;
        if activation > now {
            fresh.not_before = Some(activation);
        }
        store.put_key(&fresh).await?;
        for mut rec in store.keys().await? {
            if rec.kid == fresh.kid {
                continue;
            }
            if rec.publish_until.is_some_and(|u| u <= now) {
                store.delete_key(&rec.kid).await?;
            } else if rec.retired_at.is_none_or(|r| r > activation) {
                rec.retired_at = Some(activation);
                rec.publish_until = Some(activation.saturating_add(retire_after.as_secs()));
                store.put_key(&rec).await?;
            }
        }
        self.reload(store, clock).await?;
        Ok(fresh.kid)
    }

    /// Re-reads the keys from the store (after another instance rotated them).
    ///
    /// # Errors
    /// [`KeyError`] if the store fails or has no usable key.
    pub async fn reload(&self, store: &dyn Store, clock: &dyn Clock) -> Result<(), KeyError> {
        let records = store.keys().await?;
        let set = build(&records, self.alg, clock.unix(), &self.sealer)?
            .ok_or(KeyError::Material("no usable signing key".into()))?;
        *self.keys.write() = Arc::new(set);
        Ok(())
    }

    /// Signs a claim set as an RFC 9068 access token (`typ: at+jwt`) with the key that signs at `now`.
    ///
    /// # Errors
    /// [`KeyError::Material`] if the claims cannot be encoded, no key may sign yet, or signing fails.
    pub fn sign(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
        now: u64,
    ) -> Result<String, KeyError> {
        let keys = Arc::clone(&self.keys.read());
        let key = keys
            .signer_at(now)
            .ok_or(KeyError::Material("no signing key is active yet".into()))?;
        let mut header = JwsHeader::new();
        header.set_token_type("at+jwt");
        header.set_key_id(&key.kid);
        let payload = JwtPayload::from_map(claims.clone()).map_err(material)?;
        jwt::encode_with_signer(&payload, &header, key.signer.as_ref()).map_err(material)
    }

    /// Whether `compact` names a `kid` this instance has not loaded (another instance may have rotated).
    pub fn is_unknown_kid(&self, compact: &str) -> bool {
        match JoseHeader::of(compact).and_then(|h| h.kid) {
            Some(kid) => !self.keys.read().verifiers.contains_key(&kid),
            None => false,
        }
    }

    /// Checks a compact JWS's header and signature against our keys and returns its claims (not yet validated:
    /// see [`crate::jwt`]).
    ///
    /// # Errors
    /// [`KeyError::Rejected`] with the reason, for any token that is not ours and intact.
    pub fn verify(
        &self,
        compact: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, KeyError> {
        let keys = Arc::clone(&self.keys.read());
        let header = JoseHeader::of(compact).ok_or(KeyError::Rejected("malformed token"))?;
        if SigningAlg::from_name(header.alg.as_deref().unwrap_or_default()).is_none() {
            return Err(KeyError::Rejected("token algorithm is not accepted"));
        }
        let typ = header.typ.as_deref().unwrap_or_default();
        if !typ.eq_ignore_ascii_case("at+jwt") && !typ.eq_ignore_ascii_case("application/at+jwt") {
            return Err(KeyError::Rejected("token is not an access token (typ)"));
        }
        let verifier = keys
            .verifiers
            .get(header.kid.as_deref().unwrap_or_default())
            .ok_or(KeyError::Rejected("token signed by an unknown key"))?;
        let (payload, _) = jwt::decode_with_verifier(compact, verifier.as_ref())
            .map_err(|_| KeyError::Rejected("token signature is invalid"))?;
        Ok(payload.claims_set().clone())
    }

    /// The public JWK set (RFC 7517 §5): every key that can still verify a live token.
    pub fn jwks(&self) -> serde_json::Value {
        self.keys.read().jwks.clone()
    }

    /// The `kid` of the key that signs at `now`.
    pub fn active_kid(&self, now: u64) -> Option<String> {
        self.keys.read().signer_at(now).map(|k| k.kid.clone())
    }
}

/// The JOSE header fields verification looks at, read without josekit: a token that is not even a JWS is
/// refused here, cheaply. (josekit reports a malformed token through `anyhow`, which captures a backtrace when
/// `RUST_BACKTRACE` is set: tens of microseconds for every junk token a client sends.)
#[derive(serde::Deserialize)]
struct JoseHeader {
    alg: Option<String>,
    typ: Option<String>,
    kid: Option<String>,
}

impl JoseHeader {
    /// The header of a compact JWS (three base64url segments), if it is a JSON object.
    fn of(compact: &str) -> Option<Self> {
        use base64::Engine as _;
        let mut parts = compact.split('.');
        let (Some(header), Some(_payload), Some(_signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .ok()?;
        serde_json::from_slice(&json).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn es256_jwk() -> Jwk {
        let sealer = crate::testing::sealer();
        let rec = generate(SigningAlg::Es256, 0, &sealer).unwrap();
        let private = sealer.open(&rec.private_jwk, &rec.kid).unwrap();
        Jwk::from_bytes(private.expose().as_bytes()).unwrap()
    }

    #[test]
    fn our_es256_signatures_verify_with_josekit_and_are_fresh_each_time() {
        let jwk = es256_jwk();
        let ours = Es256Signer::from_jwk(&jwk).unwrap();
        let verifier = ES256.verifier_from_jwk(&jwk).unwrap();
        assert_eq!(ours.key_id(), jwk.key_id());
        let a = ours.sign(b"header.payload").unwrap();
        let b = ours.sign(b"header.payload").unwrap();
        assert_eq!((a.len(), ours.signature_len()), (64, 64));
        assert_ne!(a, b, "ECDSA draws a fresh nonce for each signature");
        verifier.verify(b"header.payload", &a).unwrap();
        verifier.verify(b"header.payload", &b).unwrap();
        assert!(verifier.verify(b"header.payloaD", &a).is_err());
        // A whole JWT, as `sign` makes it, through josekit's decoder.
        let mut header = JwsHeader::new();
        header.set_token_type("at+jwt");
        let mut payload = JwtPayload::new();
        payload.set_subject("someone");
        let jwt = jwt::encode_with_signer(&payload, &header, &ours).unwrap();
        let (decoded, _) = jwt::decode_with_verifier(&jwt, &verifier).unwrap();
        assert_eq!(decoded.subject(), Some("someone"));
        // Never the private key in a Debug rendering.
        let d = jwk.parameter("d").unwrap().as_str().unwrap().to_owned();
        assert!(!format!("{ours:?}").contains(&d));
    }

    #[test]
    fn an_es256_key_whose_private_part_does_not_match_its_public_point_is_refused() {
        let (a, b) = (es256_jwk(), es256_jwk());
        let with = |name: &str, value: Option<serde_json::Value>| {
            let mut map = a.as_ref().clone();
            match value {
                Some(v) => map.insert(name.to_owned(), v),
                None => map.remove(name),
            };
            Jwk::from_map(map).unwrap()
        };
        let mixed = with("d", b.parameter("d").cloned());
        assert!(matches!(
            Es256Signer::from_jwk(&mixed),
            Err(KeyError::Material(_))
        ));
        assert!(Es256Signer::from_jwk(&with("d", None)).is_err());
        // x of another key: not a point on the curve with this y.
        assert!(Es256Signer::from_jwk(&with("x", b.parameter("x").cloned())).is_err());
        assert!(Es256Signer::from_jwk(&a).is_ok());
    }
}
