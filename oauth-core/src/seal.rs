//! Secrets at rest: what the store holds of a secret it must give back, encrypted so that a copy of the store
//! (a backup, a Redis dump, a stolen disk) yields nothing usable.
//!
//! Most secrets never need to come back and are stored only as a [`TokenHash`](crate::TokenHash). A few must:
//! the private signing keys (to sign), a user's upstream access and refresh tokens (to re-check them at every
//! refresh), and our PKCE verifier towards the upstream (to finish its login). Those are stored [`Sealed`], in two
//! ways, for two reasons.
//!
//! # Under the key-encryption key: [`Sealer`]
//! A [`KeyEncryptionKey`] is 256 bits the embedder supplies (the service reads it from a file or the
//! environment) and the store never sees. Each value is encrypted with AES-256-GCM under its own key, derived
//! from the key-encryption key and a random 128-bit salt (HMAC-SHA-256), so the limit of about 2^32 random GCM
//! nonces under one key never applies however many values are sealed. The associated data names the kind of
//! value ([`Sealable::KIND`]) and what it is bound to (a signing key's `kid`, an upstream session's subject), so a
//! sealed value copied into another field or record does not open. Only the secret field is sealed, not the
//! record: grant ids, refresh-chain generations and expiry stay readable, which the Redis scripts rely on.
//!
//! A sealed value names the key that sealed it by a short id (derived from the key, so nothing has to be
//! numbered by hand). That is what makes the key-encryption key rotatable: one key is *current* and seals,
//! previous ones still open, and [`Sealer::reseal`] moves a value to the current key. Values written before
//! sealing existed (plaintext, a store from an earlier version) still load as legacy values and are sealed the
//! next time they are written.
//!
//! # Under the old refresh token (the refresh grace window)
//! The refresh grace window must answer a retry with *the same* new pair, yet refresh tokens are stored only as
//! hashes. So the response is encrypted (AES-256-GCM) under a key derived from the old refresh token itself,
//! with a domain separator distinct from the storage hash: the store holds ciphertext that neither the store's
//! reader nor anyone without the old token can open, key-encryption key or not.

use std::fmt;

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac as _};
use rand::RngCore as _;
use serde::de::{DeserializeOwned, IntoDeserializer as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

fn cipher(token: &str) -> Aes256Gcm {
    let key = Sha256::new()
        .chain_update(b"oauth-core refresh grace v1\0")
        .chain_update(token.as_bytes())
        .finalize();
    Aes256Gcm::new(&key)
}

/// Encrypts `plaintext` under a key derived from `token`. Output: 12-byte nonce, then ciphertext and tag.
pub(crate) fn seal(token: &str, plaintext: &[u8]) -> Option<Vec<u8>> {
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let mut out = nonce.to_vec();
    out.extend(
        cipher(token)
            .encrypt(Nonce::from_slice(&nonce), plaintext)
            .ok()?,
    );
    Some(out)
}

/// Decrypts what [`seal`] produced with the same token; `None` for any other token or tampered data.
pub(crate) fn open(token: &str, sealed: &[u8]) -> Option<Vec<u8>> {
    let (nonce, body) = sealed.split_at_checked(12)?;
    cipher(token).decrypt(Nonce::from_slice(nonce), body).ok()
}

/// How a sealed value starts when stored: nothing else a store holds in these fields starts like this (a JWK
/// starts with `{`, an upstream session is an object, our PKCE verifiers are base64url).
const SEALED_PREFIX: &str = "sealed:v1:";
/// Random bytes per sealed value, from which its own AES key is derived.
const SALT_LEN: usize = 16;

/// A 256-bit key-encryption key: what seals the secrets a store must give back (see the
/// [module documentation](self)). `Debug` shows its id, never the key.
#[derive(Clone)]
pub struct KeyEncryptionKey {
    key: [u8; 32],
    id: String,
}

impl fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyEncryptionKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Why text is not a key-encryption key. The message never quotes the text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyEncryptionKeyError {
    /// The text is not base64.
    #[error(
        "not base64 (expected the base64 of 32 random bytes, e.g. from `openssl rand -base64 32`)"
    )]
    NotBase64,
    /// The text decodes to another length.
    #[error("decodes to {0} bytes, not 32 (expected the base64 of 32 random bytes)")]
    Length(usize),
}

impl KeyEncryptionKey {
    /// The key `bytes`.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"oauth-core key-encryption key id v1\0")
            .chain_update(bytes)
            .finalize();
        let id = URL_SAFE_NO_PAD.encode(digest.get(..6).unwrap_or_default());
        KeyEncryptionKey { key: bytes, id }
    }

    /// A fresh key of 256 random bits from the operating system.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self::from_bytes(bytes)
    }

    /// The key written as base64 (standard or URL-safe alphabet, padded or not), surrounding whitespace ignored:
    /// the form of a key file or an environment variable.
    ///
    /// # Errors
    /// [`KeyEncryptionKeyError`] if the text is not the base64 of 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, KeyEncryptionKeyError> {
        let text = text.trim();
        let bytes = [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .ok_or(KeyEncryptionKeyError::NotBase64)?;
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyEncryptionKeyError::Length(bytes.len()))?;
        Ok(Self::from_bytes(key))
    }

    /// The key as standard base64, for writing it to a key file.
    ///
    /// # Security
    /// This is the key itself: whoever reads it opens every sealed value. Write it only to a file only the
    /// service's user can read.
    pub fn expose_base64(&self) -> String {
        STANDARD.encode(self.key)
    }

    /// A short id derived from the key (eight base64url characters), which every value sealed with it names:
    /// safe to log, and the way an operator tells which key a store needs.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The AES key of one sealed value: HMAC-SHA-256 of its salt under the key-encryption key.
    fn cipher(&self, salt: &[u8]) -> Result<Aes256Gcm, SealError> {
        let mut mac = <Hmac<Sha256> as hmac::Mac>::new_from_slice(&self.key)
            .map_err(|_| SealError::Invalid)?;
        mac.update(b"oauth-core sealed value v1\0");
        mac.update(salt);
        Ok(Aes256Gcm::new(&mac.finalize().into_bytes()))
    }
}

/// A value that may be stored [`Sealed`]: encoded as JSON inside the seal.
pub trait Sealable: Serialize + DeserializeOwned {
    /// What the value is, bound into every seal's associated data: a sealed value of one kind never opens as
    /// another.
    const KIND: &'static str;
}

/// Why a sealed value could not be sealed or opened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The value was sealed with a key-encryption key that is configured neither as the current nor as a
    /// previous key.
    #[error(
        "a stored secret is sealed with key-encryption key `{id}`, which is not configured (the current key is `{current}`); configure it as a previous key"
    )]
    UnknownKey {
        /// The id of the key that sealed it.
        id: String,
        /// The id of the current key.
        current: String,
    },
    /// The sealed value does not open with the key it names: it was altered, or copied from another record.
    #[error("a stored secret does not open: altered, or moved from another record")]
    Invalid,
    /// The value could not be encoded or decoded inside the seal.
    #[error("a stored secret could not be encoded or decoded: {0}")]
    Encoding(String),
}

/// A secret as a store holds it: sealed under a key-encryption key, or, when it was written before sealing
/// existed, a legacy plaintext value that is sealed the next time it is written. Only a [`Sealer`] makes one
/// (or deserializing a stored record), and only a [`Sealer`] opens one: a record cannot be given an unsealed
/// secret by mistake. `Debug` shows which key sealed it, never the value.
pub struct Sealed<T> {
    form: Form<T>,
}

enum Form<T> {
    /// Sealed under the key-encryption key with this id: salt, then ciphertext and tag.
    Sealed { kek: String, body: Vec<u8> },
    /// Written in plaintext by an earlier version.
    Legacy(T),
}

impl<T> Sealed<T> {
    /// The id of the key-encryption key that sealed the value; `None` for a legacy plaintext value.
    pub fn key_id(&self) -> Option<&str> {
        match &self.form {
            Form::Sealed { kek, .. } => Some(kek),
            Form::Legacy(_) => None,
        }
    }
}

impl<T: Clone> Clone for Sealed<T> {
    fn clone(&self) -> Self {
        let form = match &self.form {
            Form::Sealed { kek, body } => Form::Sealed {
                kek: kek.clone(),
                body: body.clone(),
            },
            Form::Legacy(v) => Form::Legacy(v.clone()),
        };
        Sealed { form }
    }
}

impl<T: PartialEq> PartialEq for Sealed<T> {
    fn eq(&self, other: &Self) -> bool {
        match (&self.form, &other.form) {
            (Form::Sealed { kek: a, body: x }, Form::Sealed { kek: b, body: y }) => {
                a == b && x == y
            }
            (Form::Legacy(a), Form::Legacy(b)) => a == b,
            _ => false,
        }
    }
}

impl<T: Eq> Eq for Sealed<T> {}

impl<T> fmt::Debug for Sealed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.form {
            Form::Sealed { kek, .. } => write!(f, "Sealed(key {kek:?}, [redacted])"),
            Form::Legacy(_) => f.write_str("Sealed(legacy plaintext, [redacted])"),
        }
    }
}

impl<T: Serialize> Serialize for Sealed<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.form {
            Form::Sealed { kek, body } => s.serialize_str(&format!(
                "{SEALED_PREFIX}{kek}:{}",
                URL_SAFE_NO_PAD.encode(body)
            )),
            // Only a value read from an old store and written back before it was resealed.
            Form::Legacy(v) => v.serialize(s),
        }
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Sealed<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr<T> {
            Text(String),
            Plain(T),
        }
        let form = match Repr::<T>::deserialize(d)? {
            Repr::Text(text) => match text.strip_prefix(SEALED_PREFIX) {
                Some(rest) => {
                    let malformed = || serde::de::Error::custom("malformed sealed value");
                    let (kek, body) = rest.split_once(':').ok_or_else(malformed)?;
                    let body = URL_SAFE_NO_PAD.decode(body).map_err(|_| malformed())?;
                    if kek.is_empty() || body.len() <= SALT_LEN {
                        return Err(malformed());
                    }
                    Form::Sealed {
                        kek: kek.to_owned(),
                        body,
                    }
                }
                None => Form::Legacy(T::deserialize(text.into_deserializer())?),
            },
            Repr::Plain(v) => Form::Legacy(v),
        };
        Ok(Sealed { form })
    }
}

/// Seals and opens secrets at rest with the current key-encryption key, opening with previous ones too (see the
/// [module documentation](self)). Cheap to clone. `Debug` shows the key ids only.
#[derive(Clone, Debug)]
pub struct Sealer {
    current: KeyEncryptionKey,
    previous: Vec<KeyEncryptionKey>,
}

impl Sealer {
    /// Seals with `current` (and opens what it sealed).
    pub fn new(current: KeyEncryptionKey) -> Self {
        Sealer {
            current,
            previous: Vec::new(),
        }
    }

    /// Also opens what `previous` keys sealed (during a rotation of the key-encryption key). A key equal to the
    /// current one, or listed twice, is ignored.
    #[must_use]
    pub fn with_previous(mut self, previous: impl IntoIterator<Item = KeyEncryptionKey>) -> Self {
        for key in previous {
            if key.id != self.current.id && !self.previous.iter().any(|k| k.id == key.id) {
                self.previous.push(key);
            }
        }
        self
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> &str {
        self.current.id()
    }

    /// The ids of the previous keys, which open but do not seal.
    pub fn previous_ids(&self) -> impl Iterator<Item = &str> {
        self.previous.iter().map(KeyEncryptionKey::id)
    }

    fn associated_data<T: Sealable>(binding: &str) -> Vec<u8> {
        let mut aad = b"oauth-core sealed v1\0".to_vec();
        aad.extend_from_slice(T::KIND.as_bytes());
        aad.push(0);
        aad.extend_from_slice(binding.as_bytes());
        aad
    }

    /// Seals `value` with the current key, bound to `binding` (what the record documents: a `kid`, a subject…);
    /// it opens only with the same binding.
    ///
    /// # Errors
    /// [`SealError::Encoding`] if the value cannot be encoded.
    pub fn seal<T: Sealable>(&self, value: &T, binding: &str) -> Result<Sealed<T>, SealError> {
        let plaintext =
            serde_json::to_vec(value).map_err(|e| SealError::Encoding(e.to_string()))?;
        let mut body = vec![0u8; SALT_LEN];
        rand::rngs::OsRng.fill_bytes(&mut body);
        let aad = Self::associated_data::<T>(binding);
        let salt = body.get(..SALT_LEN).unwrap_or_default();
        // Every value has a key of its own (from its salt), so a fixed nonce never repeats under one key.
        let ciphertext = self
            .current
            .cipher(salt)?
            .encrypt(
                &Nonce::default(),
                Payload {
                    msg: &plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Invalid)?;
        body.extend(ciphertext);
        Ok(Sealed {
            form: Form::Sealed {
                kek: self.current.id.clone(),
                body,
            },
        })
    }

    /// Opens a sealed value bound to `binding`; a legacy plaintext value is returned as it is.
    ///
    /// # Errors
    /// [`SealError::UnknownKey`] if the key that sealed it is not configured, [`SealError::Invalid`] if it does
    /// not open (altered, or from another record), [`SealError::Encoding`] if what it holds is not a `T`.
    pub fn open<T: Sealable + Clone>(
        &self,
        sealed: &Sealed<T>,
        binding: &str,
    ) -> Result<T, SealError> {
        let (kek, body) = match &sealed.form {
            Form::Legacy(v) => return Ok(v.clone()),
            Form::Sealed { kek, body } => (kek, body),
        };
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| &k.id == kek)
            .ok_or_else(|| SealError::UnknownKey {
                id: kek.clone(),
                current: self.current.id.clone(),
            })?;
        let (salt, ciphertext) = body.split_at_checked(SALT_LEN).ok_or(SealError::Invalid)?;
        let aad = Self::associated_data::<T>(binding);
        let plaintext = key
            .cipher(salt)?
            .decrypt(
                &Nonce::default(),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Invalid)?;
        serde_json::from_slice(&plaintext).map_err(|e| SealError::Encoding(e.to_string()))
    }

    /// Whether `sealed` is sealed with the current key (else [`Self::reseal`] would change it).
    pub fn is_current<T>(&self, sealed: &Sealed<T>) -> bool {
        sealed.key_id() == Some(self.current.id())
    }

    /// `sealed` as the current key seals it: unchanged if it already is, else opened (a legacy plaintext value, or
    /// one sealed with a previous key) and sealed again.
    ///
    /// # Errors
    /// As [`Self::open`].
    pub fn reseal<T: Sealable + Clone>(
        &self,
        sealed: Sealed<T>,
        binding: &str,
    ) -> Result<Sealed<T>, SealError> {
        if self.is_current(&sealed) {
            return Ok(sealed);
        }
        self.seal(&self.open(&sealed, binding)?, binding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(transparent)]
    struct Note(String);

    impl Sealable for Note {
        const KIND: &'static str = "note";
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(transparent)]
    struct Other(String);

    impl Sealable for Other {
        const KIND: &'static str = "other";
    }

    fn key(byte: u8) -> KeyEncryptionKey {
        KeyEncryptionKey::from_bytes([byte; 32])
    }

    #[test]
    fn a_sealed_value_opens_only_with_its_key_its_binding_and_its_kind() {
        let sealer = Sealer::new(key(1));
        let sealed = sealer.seal(&Note("hush-value".into()), "rec-1").unwrap();
        let stored = serde_json::to_string(&sealed).unwrap();
        assert!(!stored.contains("hush-value"), "{stored}");
        assert!(
            stored.starts_with(&format!("\"sealed:v1:{}:", key(1).id())),
            "{stored}"
        );
        let back: Sealed<Note> = serde_json::from_str(&stored).unwrap();
        assert_eq!(back, sealed);
        assert_eq!(
            sealer.open(&back, "rec-1").unwrap(),
            Note("hush-value".into())
        );
        assert_eq!(sealer.open(&back, "rec-2"), Err(SealError::Invalid));
        // The same ciphertext read as another kind of value.
        let moved: Sealed<Other> = serde_json::from_str(&stored).unwrap();
        assert_eq!(sealer.open(&moved, "rec-1"), Err(SealError::Invalid));
        assert_eq!(
            Sealer::new(key(2)).open(&back, "rec-1"),
            Err(SealError::UnknownKey {
                id: key(1).id().to_owned(),
                current: key(2).id().to_owned()
            })
        );
        // Altered.
        let (head, body) = stored.trim_matches('"').rsplit_once(':').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(body).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        let text = format!("\"{head}:{}\"", URL_SAFE_NO_PAD.encode(&bytes));
        let altered: Sealed<Note> = serde_json::from_str(&text).unwrap();
        assert_eq!(sealer.open(&altered, "rec-1"), Err(SealError::Invalid));
        // Two seals of one value differ (each has its own salt).
        let again = sealer.seal(&Note("hush-value".into()), "rec-1").unwrap();
        assert_ne!(again, sealed);
        assert!(format!("{sealed:?}").contains(key(1).id()));
        assert!(!format!("{sealed:?}").contains("hush"));
    }

    #[test]
    fn a_previous_key_opens_and_reseal_moves_values_to_the_current_key() {
        let old = Sealer::new(key(1));
        let sealed = old.seal(&Note("v".into()), "b").unwrap();
        let rotated = Sealer::new(key(2)).with_previous([key(1), key(2), key(1)]);
        assert_eq!(rotated.previous_ids().collect::<Vec<_>>(), [key(1).id()]);
        assert!(!rotated.is_current(&sealed));
        assert_eq!(rotated.open(&sealed, "b").unwrap(), Note("v".into()));
        let moved = rotated.reseal(sealed, "b").unwrap();
        assert_eq!(moved.key_id(), Some(key(2).id()));
        assert!(rotated.is_current(&moved));
        assert_eq!(
            Sealer::new(key(2)).open(&moved, "b").unwrap(),
            Note("v".into())
        );
        let same = rotated.reseal(moved.clone(), "b").unwrap();
        assert_eq!(same, moved, "already current: left as it is");
    }

    #[test]
    fn a_legacy_plaintext_value_loads_and_is_sealed_when_resealed() {
        let legacy: Sealed<Note> = serde_json::from_str("\"plain-old-value\"").unwrap();
        assert_eq!(legacy.key_id(), None);
        assert_eq!(
            serde_json::to_string(&legacy).unwrap(),
            "\"plain-old-value\"",
            "written back as read until resealed"
        );
        let sealer = Sealer::new(key(3));
        assert_eq!(
            sealer.open(&legacy, "any").unwrap(),
            Note("plain-old-value".into())
        );
        let sealed = sealer.reseal(legacy, "b").unwrap();
        assert!(
            !serde_json::to_string(&sealed)
                .unwrap()
                .contains("plain-old-value")
        );
        assert!(
            format!("{:?}", sealer.seal(&Note("x".into()), "b").unwrap()).contains("[redacted]")
        );
        for bad in [
            "\"sealed:v1:\"",
            "\"sealed:v1:abc\"",
            "\"sealed:v1::AAAA\"",
            "\"sealed:v1:abc:!!\"",
            "\"sealed:v1:abc:AAAA\"",
        ] {
            assert!(serde_json::from_str::<Sealed<Note>>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_material_is_read_from_base64_and_never_shown() {
        let k = KeyEncryptionKey::generate();
        let text = k.expose_base64();
        let back = KeyEncryptionKey::from_base64(&format!("  {text}\n")).unwrap();
        assert_eq!(back.id(), k.id());
        assert_eq!(k.id().len(), 8);
        let url_safe = URL_SAFE_NO_PAD.encode([9u8; 32]);
        assert_eq!(
            KeyEncryptionKey::from_base64(&url_safe).unwrap().id(),
            key(9).id()
        );
        assert_eq!(
            KeyEncryptionKey::from_base64("not base64 at all!").unwrap_err(),
            KeyEncryptionKeyError::NotBase64
        );
        assert_eq!(
            KeyEncryptionKey::from_base64(&STANDARD.encode([1u8; 16])).unwrap_err(),
            KeyEncryptionKeyError::Length(16)
        );
        let shown = format!("{k:?} {:?}", Sealer::new(k.clone()));
        assert!(!shown.contains(&text), "{shown}");
        assert!(shown.contains(k.id()), "{shown}");
    }
}
