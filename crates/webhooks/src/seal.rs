//! Endpoint secrets at rest. The service must sign with a secret, so it cannot keep only a hash
//! of it (as it does for API keys); it keeps it sealed with XChaCha20-Poly1305 under
//! `webhooks.encryption_key`, a key that comes from the environment and never from the database.
//! The endpoint's id is the associated data, so a sealed secret copied onto another endpoint's
//! row does not open.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::{SECRET_LEN, Secret};

/// The first byte of a sealed secret: the format (and, later, which key), so keys can rotate.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// What a sealed secret's column holds: version, nonce, ciphertext and tag.
pub const SEALED_LEN: usize = 1 + NONCE_LEN + SECRET_LEN + TAG_LEN;

/// `webhooks.encryption_key`: the base64 of 32 random bytes (`openssl rand -base64 32`).
#[derive(Clone)]
pub struct SealingKey(XChaCha20Poly1305);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("webhooks.encryption_key must be the base64 of 32 bytes (openssl rand -base64 32)")]
    Key,
    #[error("a webhook secret did not open: another key sealed it, or it belongs to another endpoint")]
    Open,
}

impl SealingKey {
    pub fn from_base64(text: &str) -> Result<SealingKey, SealError> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| SealError::Key)?;
        XChaCha20Poly1305::new_from_slice(&bytes).map(SealingKey).map_err(|_| SealError::Key)
    }

    /// Seals `secret` for the endpoint `owner` (its id's bytes), with a fresh random nonce.
    pub fn seal(&self, secret: &Secret, owner: &[u8]) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .0
            .encrypt(&nonce, Payload { msg: secret.as_bytes(), aad: owner })
            .expect("XChaCha20-Poly1305 seals 32 bytes");
        let mut out = Vec::with_capacity(SEALED_LEN);
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    pub fn open(&self, sealed: &[u8], owner: &[u8]) -> Result<Secret, SealError> {
        if sealed.len() != SEALED_LEN || sealed[0] != VERSION {
            return Err(SealError::Open);
        }
        let (nonce, body) = sealed[1..].split_at(NONCE_LEN);
        let plain = self
            .0
            .decrypt(XNonce::from_slice(nonce), Payload { msg: body, aad: owner })
            .map_err(|_| SealError::Open)?;
        plain.try_into().map(Secret::from_bytes).map_err(|_| SealError::Open)
    }
}

/// The domain's `SecretKeeper`: a new secret, sealed for its endpoint.
impl credits_domain::notify::webhooks::SecretKeeper for SealingKey {
    fn issue(&self, endpoint: uuid::Uuid) -> (String, Vec<u8>) {
        let secret = Secret::generate();
        let sealed = self.seal(&secret, endpoint.as_bytes());
        (secret.reveal(), sealed)
    }
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealingKey(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SealingKey {
        SealingKey::from_base64(&STANDARD.encode([7u8; 32])).unwrap()
    }

    #[test]
    fn a_sealed_secret_opens_for_its_endpoint_and_does_not_contain_the_secret() {
        let secret = Secret::generate();
        let sealed = key().seal(&secret, b"endpoint-1");
        assert_eq!(sealed.len(), SEALED_LEN);
        assert!(!sealed.windows(SECRET_LEN).any(|w| w == secret.as_bytes()), "not in clear");
        assert_eq!(key().open(&sealed, b"endpoint-1"), Ok(secret.clone()));
        assert_ne!(key().seal(&secret, b"endpoint-1"), sealed, "a fresh nonce each time");
    }

    #[test]
    fn it_does_not_open_for_another_endpoint_another_key_or_a_changed_byte() {
        let secret = Secret::generate();
        let sealed = key().seal(&secret, b"endpoint-1");
        assert_eq!(key().open(&sealed, b"endpoint-2"), Err(SealError::Open));
        let other = SealingKey::from_base64(&STANDARD.encode([8u8; 32])).unwrap();
        assert_eq!(other.open(&sealed, b"endpoint-1"), Err(SealError::Open));
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert_eq!(key().open(&bad, b"endpoint-1"), Err(SealError::Open), "byte {i}");
        }
        assert_eq!(key().open(&sealed[..SEALED_LEN - 1], b"endpoint-1"), Err(SealError::Open));
    }

    #[test]
    fn the_key_is_32_bytes_of_base64_and_is_never_printed() {
        assert_eq!(SealingKey::from_base64("c2hvcnQ=").unwrap_err(), SealError::Key);
        assert_eq!(SealingKey::from_base64("not base64!").unwrap_err(), SealError::Key);
        let text = STANDARD.encode([9u8; 32]);
        let key = SealingKey::from_base64(&format!("{text}\n")).unwrap();
        assert!(!format!("{key:?}").contains(&text));
    }
}
