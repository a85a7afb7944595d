//! Signing keys: generation, persistence, rotation, the JWK set, and signature verification.
//!
//! This is the only module that touches josekit. Keys are generated on first start and persisted in the
//! [`Store`], so a restart keeps verifying the tokens it issued. Rotation makes a new key the signer and keeps the
//! retired one published (and accepted) until the last token it signed has expired.
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
use crate::store::{KeyRecord, Store, StoreError};

/// A key failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
}

struct ActiveKey {
    kid: String,
    signer: Box<dyn JwsSigner>,
}

struct KeySet {
    active: ActiveKey,
    verifiers: HashMap<String, Box<dyn JwsVerifier>>,
    jwks: serde_json::Value,
}

/// Manages the signing keys with josekit.
pub struct JosekitKeyManager {
    keys: RwLock<Arc<KeySet>>,
    alg: SigningAlg,
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

fn generate(alg: SigningAlg, now: u64) -> Result<KeyRecord, KeyError> {
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
        kid,
        alg: alg.name().to_owned(),
        private_jwk: jwk.to_string(),
        created_at: now,
        retired_at: None,
        publish_until: None,
    })
}

fn signer(alg: SigningAlg, jwk: &Jwk) -> Result<Box<dyn JwsSigner>, KeyError> {
    Ok(match alg {
        SigningAlg::Es256 => Box::new(ES256.signer_from_jwk(jwk).map_err(material)?),
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

fn build(records: &[KeyRecord], alg: SigningAlg, now: u64) -> Result<Option<KeySet>, KeyError> {
    let mut active: Option<ActiveKey> = None;
    let mut verifiers = HashMap::new();
    let mut public = Vec::new();
    let mut newest_active = 0u64;
    for rec in records {
        if rec.publish_until.is_some_and(|until| until <= now) {
            continue;
        }
        let Some(rec_alg) = SigningAlg::from_name(&rec.alg) else {
            continue;
        };
        let jwk = Jwk::from_bytes(rec.private_jwk.as_bytes()).map_err(material)?;
        verifiers.insert(rec.kid.clone(), verifier(rec_alg, &jwk)?);
        public.push(public_jwk(&jwk));
        if rec.retired_at.is_none()
            && rec_alg == alg
            && (active.is_none() || rec.created_at >= newest_active)
        {
            newest_active = rec.created_at;
            active = Some(ActiveKey {
                kid: rec.kid.clone(),
                signer: signer(rec_alg, &jwk)?,
            });
        }
    }
    Ok(active.map(|active| KeySet {
        active,
        verifiers,
        jwks: serde_json::json!({ "keys": public }),
    }))
}

impl JosekitKeyManager {
    /// Loads the keys from the store, generating and persisting a key for `alg` when there is none.
    ///
    /// # Errors
    /// [`KeyError`] if the store fails or stored key material is unusable.
    pub async fn load_or_generate(
        store: &dyn Store,
        alg: SigningAlg,
        clock: &dyn Clock,
    ) -> Result<Self, KeyError> {
        let now = clock.unix();
        let mut records = store.keys().await?;
        if build(&records, alg, now)?.is_none() {
            let fresh = generate(alg, now)?;
            // If another instance stored a first key meanwhile, use what is stored now.
            if records.is_empty() {
                store.put_first_key(&fresh).await?;
            } else {
                store.put_key(&fresh).await?;
            }
            records = store.keys().await?;
        }
        let set =
            build(&records, alg, now)?.ok_or(KeyError::Material("no usable signing key".into()))?;
        Ok(JosekitKeyManager {
            keys: RwLock::new(Arc::new(set)),
            alg,
        })
    }

    /// Makes a fresh key the signer. The previous one stays published and accepted for `retire_after` (the
    /// access-token lifetime plus leeway), then disappears; keys past that are deleted from the store.
    ///
    /// # Errors
    /// [`KeyError`] if generation or the store fails.
    pub async fn rotate(
        &self,
        store: &dyn Store,
        clock: &dyn Clock,
        retire_after: std::time::Duration,
    ) -> Result<String, KeyError> {
        let now = clock.unix();
        for mut rec in store.keys().await? {
            if rec.publish_until.is_some_and(|u| u <= now) {
                store.delete_key(&rec.kid).await?;
            } else if rec.retired_at.is_none() {
                rec.retired_at = Some(now);
                rec.publish_until = Some(now.saturating_add(retire_after.as_secs()));
                store.put_key(&rec).await?;
            }
        }
        let fresh = generate(self.alg, now)?;
        store.put_key(&fresh).await?;
        self.reload(store, clock).await?;
        Ok(fresh.kid)
    }

    /// Re-reads the keys from the store (after another instance rotated them).
    ///
    /// # Errors
    /// [`KeyError`] if the store fails or has no usable key.
    pub async fn reload(&self, store: &dyn Store, clock: &dyn Clock) -> Result<(), KeyError> {
        let records = store.keys().await?;
        let set = build(&records, self.alg, clock.unix())?
            .ok_or(KeyError::Material("no usable signing key".into()))?;
        *self.keys.write() = Arc::new(set);
        Ok(())
    }

    /// Signs a claim set as an RFC 9068 access token (`typ: at+jwt`) with the active key.
    ///
    /// # Errors
    /// [`KeyError::Material`] if the claims cannot be encoded or signing fails.
    pub fn sign(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String, KeyError> {
        let keys = Arc::clone(&self.keys.read());
        let mut header = JwsHeader::new();
        header.set_token_type("at+jwt");
        header.set_key_id(&keys.active.kid);
        let payload = JwtPayload::from_map(claims.clone()).map_err(material)?;
        jwt::encode_with_signer(&payload, &header, keys.active.signer.as_ref()).map_err(material)
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
        let header =
            jwt::decode_header(compact).map_err(|_| KeyError::Rejected("malformed token"))?;
        let alg = header
            .claim("alg")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        if SigningAlg::from_name(alg).is_none() {
            return Err(KeyError::Rejected("token algorithm is not accepted"));
        }
        let typ = header
            .claim("typ")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        if !typ.eq_ignore_ascii_case("at+jwt") && !typ.eq_ignore_ascii_case("application/at+jwt") {
            return Err(KeyError::Rejected("token is not an access token (typ)"));
        }
        let kid = header
            .claim("kid")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let verifier = keys
            .verifiers
            .get(kid)
            .ok_or(KeyError::Rejected("token signed by an unknown key"))?;
        let (payload, _) = jwt::decode_with_verifier(compact, verifier.as_ref())
            .map_err(|_| KeyError::Rejected("token signature is invalid"))?;
        Ok(payload.claims_set().clone())
    }

    /// The public JWK set (RFC 7517 §5): every key that can still verify a live token.
    pub fn jwks(&self) -> serde_json::Value {
        self.keys.read().jwks.clone()
    }

    /// The `kid` of the key that signs now.
    pub fn active_kid(&self) -> String {
        self.keys.read().active.kid.clone()
    }
}
