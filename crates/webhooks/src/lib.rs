//! Outbound webhooks (SPEC section 9), the adapter's side: an endpoint's signing secret and the
//! Standard Webhooks signature of a delivery (<https://www.standardwebhooks.com/>). What may be
//! sent, where and when is the domain's (`credits_domain::notify::webhooks`); how a secret is
//! kept at rest is `seal`'s.

pub mod deliver;
pub mod seal;

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

const PREFIX: &str = "whsec_";
/// Section 9: a secret is 32 random bytes.
pub const SECRET_LEN: usize = 32;

/// An endpoint's signing secret. Shown once, as `whsec_` + base64; never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; SECRET_LEN]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("a webhook secret starts with whsec_")]
    Prefix,
    #[error("a webhook secret is whsec_ and the base64 of {SECRET_LEN} bytes")]
    Encoding,
}

impl Secret {
    /// A new secret from the thread's CSPRNG (ChaCha, seeded from the OS).
    pub fn generate() -> Secret {
        let mut bytes = [0u8; SECRET_LEN];
        rand::rng().fill_bytes(&mut bytes);
        Secret(bytes)
    }

    pub fn from_bytes(bytes: [u8; SECRET_LEN]) -> Secret {
        Secret(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; SECRET_LEN] {
        &self.0
    }

    /// Reads `whsec_` + base64 (padding optional), as a receiver's library does.
    pub fn parse(text: &str) -> Result<Secret, SecretError> {
        let encoded = text.strip_prefix(PREFIX).ok_or(SecretError::Prefix)?;
        let bytes =
            STANDARD.decode(encoded).or_else(|_| STANDARD_NO_PAD.decode(encoded)).map_err(|_| SecretError::Encoding)?;
        bytes.try_into().map(Secret).map_err(|_| SecretError::Encoding)
    }

    /// The form shown to the account, once.
    pub fn reveal(&self) -> String {
        format!("{PREFIX}{}", STANDARD.encode(self.0))
    }

    /// `webhook-signature`: `v1,` + base64 of HMAC-SHA256 over `id.timestamp.body`, keyed with
    /// the secret's bytes. `timestamp` is the attempt's Unix seconds on the real wall clock.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        sign_with(&self.0, id, timestamp, body)
    }
}

fn sign_with(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(whsec_…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks specification's own example: secret, id, timestamp and body, and the
    /// signature its reference library (`standardwebhooks` on PyPI, `Webhook.sign`) gives.
    #[test]
    fn signs_the_specifications_example_as_the_reference_library_does() {
        let key = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            sign_with(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, br#"{"test": 2432232314}"#),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_signature_changes_with_the_id_the_timestamp_the_body_and_the_secret() {
        let (a, b) = (Secret::generate(), Secret::generate());
        let base = a.sign("evt_1", 1_800_000_000, b"{}");
        assert_ne!(base, a.sign("evt_2", 1_800_000_000, b"{}"));
        assert_ne!(base, a.sign("evt_1", 1_800_000_001, b"{}"));
        assert_ne!(base, a.sign("evt_1", 1_800_000_000, b"{ }"));
        assert_ne!(base, b.sign("evt_1", 1_800_000_000, b"{}"));
        assert_eq!(base, a.sign("evt_1", 1_800_000_000, b"{}"));
    }

    #[test]
    fn a_secret_is_whsec_and_32_fresh_bytes_that_read_back() {
        let secret = Secret::generate();
        let shown = secret.reveal();
        assert!(shown.starts_with("whsec_"));
        assert_eq!(Secret::parse(&shown), Ok(secret.clone()));
        assert_eq!(Secret::parse(shown.trim_end_matches('=')), Ok(secret.clone()), "padding is optional");
        assert_ne!(Secret::generate(), secret);
        assert_eq!(Secret::parse("sk_abc"), Err(SecretError::Prefix));
        assert_eq!(Secret::parse("whsec_c2hvcnQ="), Err(SecretError::Encoding), "5 bytes is not a secret");
        assert!(!format!("{secret:?}").contains(&shown["whsec_".len()..]), "Debug never shows it");
    }
}
