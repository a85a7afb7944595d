//! Protocol values as newtypes, and secrets that cannot leak.
//!
//! Secrets (client secrets, authorization codes, refresh tokens, registration access tokens, PKCE verifiers, the
//! handles of pending authorizations) are [`Secret`]s: their `Debug` prints `[redacted]`, they are not `Clone`,
//! and they are compared only through their [`TokenHash`] in constant time. Only the hash ever reaches a store,
//! so a leaked database cannot be replayed against the server. (The few secrets the server must read back are
//! sealed instead: see `seal`.)

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// SHA-256 of a secret: the only form in which secrets are stored or compared.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TokenHash(#[serde(with = "hex32")] [u8; 32]);

impl TokenHash {
    /// Hash of the given secret bytes.
    pub fn of(secret: &[u8]) -> Self {
        TokenHash(Sha256::digest(secret).into())
    }

    /// Constant-time equality, for comparing a presented secret's hash with a stored one.
    pub fn ct_eq(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    /// Lower-case hex, used as a storage key.
    pub fn to_hex(&self) -> String {
        hex32::encode(&self.0)
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TokenHash({}…)",
            self.to_hex().get(..8).unwrap_or_default()
        )
    }
}

mod hex32 {
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub fn encode(bytes: &[u8; 32]) -> String {
        use std::fmt::Write as _;
        let mut out = String::with_capacity(64);
        for b in bytes {
            let _ = write!(out, "{b:02x}");
        }
        out
    }

    pub fn decode(s: &str) -> Option<[u8; 32]> {
        let raw = s.as_bytes();
        if raw.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (slot, pair) in out.iter_mut().zip(raw.chunks_exact(2)) {
            let text = std::str::from_utf8(pair).ok()?;
            *slot = u8::from_str_radix(text, 16).ok()?;
        }
        Some(out)
    }

    pub fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        decode(&s).ok_or_else(|| serde::de::Error::custom("expected 64 hex characters"))
    }
}

/// `n` bytes from the operating system's CSPRNG, base64url without padding.
pub(crate) fn random_token(n: usize) -> String {
    let mut buf = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(&buf)
}

/// A secret string: redacted `Debug`, no `Clone`, compared only by hash.
#[derive(PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret received from a client.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// A fresh secret of 256 random bits.
    pub fn generate() -> Self {
        Secret(random_token(32))
    }

    /// The secret's hash, the form in which it is stored.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(self.0.as_bytes())
    }

    /// Whether this secret hashes to `stored`, compared in constant time.
    pub fn matches(&self, stored: &TokenHash) -> bool {
        self.hash().ct_eq(stored)
    }

    /// The plaintext, for the one place it is handed to the client.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The plaintext, consuming the secret.
    pub fn into_exposed(self) -> String {
        self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// What a `Debug` implementation prints in place of a secret: the reader learns that the field is there, never
/// what it holds. Types that carry secrets as plain strings (the wire forms, store records) write their `Debug` by
/// hand with this and [`redacted`], destructuring `self` so that a field added later cannot slip past.
pub(crate) const REDACTED: &str = "[redacted]";

/// An optional secret field for `Debug`: `Some("[redacted]")` when present, `None` when absent.
pub(crate) fn redacted<T>(field: &Option<T>) -> Option<&'static str> {
    field.as_ref().map(|_| REDACTED)
}

/// `Debug` for a struct that carries secrets: `debug_redacted!(Type { plain, token: secret, key: hidden })` prints
/// every field by name, an optional `secret` as [`redacted`] (present or not, never its value) and a `hidden` one
/// as [`REDACTED`]. The struct is destructured, so a field added later does not compile until it is listed here.
macro_rules! debug_redacted {
    ($ty:ident { $($field:ident $(: $kind:ident)?),* $(,)? }) => {
        impl ::std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                let $ty { $($field),* } = self;
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($field), &$crate::types::debug_redacted!(@show $field $($kind)?)))*
                    .finish()
            }
        }
    };
    (@show $field:ident) => { $field };
    (@show $field:ident secret) => { $crate::types::redacted($field) };
    (@show $field:ident hidden) => {{
        let _ = $field;
        $crate::types::REDACTED
    }};
}
pub(crate) use debug_redacted;

/// For tests: `value`'s `Debug` shows none of `hidden` and every one of `shown` (which is how a test of a
/// redaction can fail: a value that shows nothing at all would pass the first half).
#[cfg(test)]
pub(crate) fn assert_debug(value: &impl std::fmt::Debug, hidden: &[&str], shown: &[&str]) {
    let text = format!("{value:?}");
    for h in hidden {
        assert!(!text.contains(h), "{h} in {text}");
    }
    for s in shown {
        assert!(text.contains(s), "{s} missing in {text}");
    }
}

/// A space-separated scope value (RFC 6749 §3.3) as an ordered set of scope tokens.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ScopeSet(Vec<String>);

impl ScopeSet {
    /// Whether `token` is one scope token (RFC 6749 §3.3: `1*( %x21 / %x23-5B / %x5D-7E )`): non-empty printable
    /// ASCII without space, `"` or `\`. The one statement of the rule, for requests and configuration alike.
    pub fn is_token(token: &str) -> bool {
        !token.is_empty()
            && token
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
    }

    /// Parses a `scope` parameter. Returns `None` if a token contains a character RFC 6749 §3.3 forbids.
    pub fn parse(value: &str) -> Option<Self> {
        let mut out: Vec<String> = Vec::new();
        for token in value.split(' ').filter(|t| !t.is_empty()) {
            if !Self::is_token(token) {
                return None;
            }
            if !out.iter().any(|t| t == token) {
                out.push(token.to_owned());
            }
        }
        Some(ScopeSet(out))
    }

    /// A set from already-validated tokens.
    pub fn from_tokens<I: IntoIterator<Item = S>, S: Into<String>>(tokens: I) -> Self {
        let mut out: Vec<String> = Vec::new();
        for t in tokens {
            let t = t.into();
            if !out.contains(&t) {
                out.push(t);
            }
        }
        ScopeSet(out)
    }

    /// Whether the set contains `token`.
    pub fn contains(&self, token: &str) -> bool {
        self.0.iter().any(|t| t == token)
    }

    /// Whether every token of `self` is in `other`.
    pub fn is_subset_of(&self, other: &ScopeSet) -> bool {
        self.0.iter().all(|t| other.contains(t))
    }

    /// The tokens.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The set without `token`.
    pub fn without(&self, token: &str) -> ScopeSet {
        ScopeSet(self.0.iter().filter(|t| *t != token).cloned().collect())
    }

    /// The set holding no spare capacity, for a value kept long (the verified-token cache): its heap bytes are
    /// then exactly one `String` per token and the tokens' text.
    pub(crate) fn compact(mut self) -> Self {
        self.0.shrink_to_fit();
        self
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, token) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(token)?;
        }
        Ok(())
    }
}

/// Who logged in, as the engine needs it: from a local user or an upstream identity provider.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Stable subject identifier, namespaced by provider (e.g. `local:alice`), becomes the token's `sub`.
    pub subject: String,
    /// Login name, becomes `preferred_username`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// E-mail address (only when verified), becomes `email`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Display name, becomes `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Group memberships, becomes `groups`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// What we hold of a user's session at an upstream identity provider, to re-check them later (at refresh).
///
/// # Security
/// These are the upstream's live credentials: they never leave the server (no token passthrough), are never
/// logged (`Debug` is redacted), and are stored only [`Sealed`](crate::Sealed) (bound to the user's subject), in
/// the browser session, code and grant they belong to.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamSession {
    /// The provider's id.
    pub provider: String,
    /// The upstream access token.
    pub access_token: String,
    /// The upstream refresh token, if one was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// When the upstream access token expires, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// When the provider last vouched for the user (the login, or a re-check that read their current claims).
    /// The engine sets it; a provider leaves it `None`. `None` in a session stored before it was recorded: the
    /// grant's creation counts instead. A grant whose user can no longer be re-checked ends
    /// [`max_unverified_age`](crate::ServerConfig::max_unverified_age) after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<u64>,
}

impl crate::seal::Sealable for UpstreamSession {
    const KIND: &'static str = "upstream-session";
}

impl fmt::Debug for UpstreamSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamSession")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}
