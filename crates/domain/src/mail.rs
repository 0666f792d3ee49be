//! Mail through the outbox (SPEC section 6, R14): a mail is a row written in the same
//! transaction as the change that causes it; a worker sends it, retrying with backoff.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

/// After this many failed attempts a mail is dead: logged and counted, no longer tried.
pub const MAX_MAIL_ATTEMPTS: i32 = 12;
/// The longest wait between two attempts.
pub const MAX_MAIL_BACKOFF_SECONDS: i64 = 600;

/// When to try again after the `attempts`-th failure (1, 2, 4 … seconds, capped), or `None`:
/// the mail is dead.
pub fn retry_at(attempts: i32, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if attempts >= MAX_MAIL_ATTEMPTS {
        return None;
    }
    let wait = 1i64.checked_shl(attempts.clamp(0, 30) as u32).unwrap_or(i64::MAX).min(MAX_MAIL_BACKOFF_SECONDS);
    Some(now + Duration::seconds(wait))
}

/// A mail waiting in the outbox. `payload` is JSON: the facts the template needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    pub id: Uuid,
    pub kind: String,
    pub recipient: String,
    pub payload: String,
    pub attempts: i32,
}

/// What one delivery round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delivery {
    pub sent: usize,
    pub retried: usize,
    pub dead: usize,
}

/// Renders and sends one outbox mail (SMTP).
pub trait Mailer: Send + Sync {
    fn deliver(&self, message: &OutboxMessage) -> Result<(), String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_its_cap_then_the_mail_is_dead() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let waits: Vec<i64> = (1..MAX_MAIL_ATTEMPTS).map(|a| (retry_at(a, now).unwrap() - now).num_seconds()).collect();
        assert_eq!(&waits[..4], &[2, 4, 8, 16]);
        assert_eq!(*waits.last().unwrap(), MAX_MAIL_BACKOFF_SECONDS);
        assert_eq!(retry_at(MAX_MAIL_ATTEMPTS, now), None);
    }
}
