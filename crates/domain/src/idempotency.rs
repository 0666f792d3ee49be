//! R11: Idempotency-Key. The same key with the same request, from the same caller, within 24
//! hours returns the first response and does nothing again; with another request it is refused.
//! Only successes are kept, in the same transaction as the change they answer.

use chrono::{DateTime, Duration, Utc};

pub const IDEMPOTENCY_TTL_HOURS: i64 = 24;
pub const MAX_KEY_LEN: usize = 255;

/// A key as the store needs it: whose it is (`scope`, e.g. the account), the key, a fingerprint
/// of the request it came with, and the status a success answers with (kept for the replay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub scope: String,
    pub key: String,
    pub fingerprint: String,
    pub success_status: u16,
}

impl IdempotencyKey {
    pub fn new(scope: String, key: &str, fingerprint: String, success_status: u16) -> Result<IdempotencyKey, String> {
        if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(format!("Idempotency-Key must be 1-{MAX_KEY_LEN} visible ASCII characters"));
        }
        Ok(IdempotencyKey { scope, key: key.to_string(), fingerprint, success_status })
    }
}

/// The first response to a key, as it was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
}

/// A use case's answer: done now, or the replay of the first answer to the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replayable<T> {
    Fresh(T),
    Replay(StoredResponse),
}

/// A key found in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub fingerprint: String,
    pub created_at: DateTime<Utc>,
    pub response: StoredResponse,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recall {
    /// Never seen, or seen more than 24 hours ago: do the work.
    Unused,
    /// The same request: answer the first response again.
    Replay(StoredResponse),
    /// Another request under the same key: IDEMPOTENCY_KEY_REUSED.
    Reused,
}

pub fn recall(found: Option<Recorded>, key: &IdempotencyKey, now: DateTime<Utc>) -> Recall {
    match found {
        Some(r) if now - r.created_at < Duration::hours(IDEMPOTENCY_TTL_HOURS) => {
            if r.fingerprint == key.fingerprint {
                Recall::Replay(r.response)
            } else {
                Recall::Reused
            }
        }
        _ => Recall::Unused,
    }
}
