//! Sealing a rotation's response so that only the holder of the old refresh token can open it.
//!
//! The refresh grace window must answer a retry with *the same* new pair, yet refresh tokens are stored only as
//! hashes. So the response is encrypted (AES-256-GCM) under a key derived from the old refresh token itself,
//! with a domain separator distinct from the storage hash: the store holds ciphertext that neither the store's
//! reader nor anyone without the old token can open.

use aes_gcm::aead::{Aead as _, KeyInit as _};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore as _;
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
