//! SPEC section 8: the billing page's access. The canvas backend asks for a one-time link (valid
//! five minutes to open); opening it starts a session for that account alone (one hour). The
//! adapter keeps only hashes of the link's and the session's tokens.

use chrono::{DateTime, TimeDelta, Utc};

use crate::error::{AccountError, StoreError};
use crate::ids::AccountId;

/// A billing-page link may be opened this long after it was made, once.
pub const LINK_TTL: TimeDelta = TimeDelta::minutes(5);
/// A billing-page session lasts this long from its opening.
pub const SESSION_TTL: TimeDelta = TimeDelta::hours(1);

/// A live billing-page session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageSession {
    pub account: AccountId,
    /// R27: the member the page acts as; `None`: the account's first owner.
    pub member: Option<uuid::Uuid>,
    /// R27: their role now (a session of a member since removed is found no more).
    pub role: crate::members::Role,
    /// The token every form of the session carries (CSRF).
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

/// Whether a link made at `created_at` and `used` or not may be opened at `now`.
pub fn may_open(created_at: DateTime<Utc>, used: bool, now: DateTime<Utc>) -> bool {
    !used && now < created_at + LINK_TTL
}

pub trait PageStore {
    /// Keeps a new one-time link of `account` (by its token's hash), acting as `member` (R27);
    /// returns when it expires.
    fn create_page_link(
        &self,
        account: AccountId,
        member: Option<uuid::Uuid>,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, AccountError>;
    /// Uses the link (once, within `LINK_TTL`) and starts a session keyed by `session_hash`,
    /// whose forms carry `csrf`. `None`: no such link, used, or expired.
    fn open_page_link(
        &self,
        token_hash: &str,
        session_hash: &str,
        csrf: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<PageSession>, StoreError>;
    /// The live session keyed by `session_hash`, if any.
    fn page_session(&self, session_hash: &str, now: DateTime<Utc>) -> Result<Option<PageSession>, StoreError>;
    fn end_page_session(&self, session_hash: &str) -> Result<(), StoreError>;
}

/// A console session ends after this long without a request…
pub const CONSOLE_IDLE: TimeDelta = TimeDelta::minutes(30);
/// …and after this long in any case.
pub const CONSOLE_MOST: TimeDelta = TimeDelta::hours(12);

/// A live operator-console session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    pub operator: crate::operator::Operator,
    pub csrf: String,
    /// Section 7: a session opened with the bootstrap admin token (no operator record) keeps that
    /// token's hash, and lives only while it is still the configured token.
    pub bootstrap_token_hash: Option<String>,
}

pub trait ConsoleStore {
    /// Starts a console session of `session.operator` keyed by `session_hash`.
    fn start_console_session(
        &self,
        session_hash: &str,
        session: &ConsoleSession,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// The live session (not idle for `CONSOLE_IDLE`, not older than `CONSOLE_MOST`), and notes
    /// this use of it; a revoked operator's session is not found.
    fn console_session(&self, session_hash: &str, now: DateTime<Utc>) -> Result<Option<ConsoleSession>, StoreError>;
    fn end_console_session(&self, session_hash: &str) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_opens_once_within_five_minutes() {
        let made = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert!(may_open(made, false, made + TimeDelta::minutes(4)));
        assert!(!may_open(made, false, made + LINK_TTL));
        assert!(!may_open(made, true, made + TimeDelta::seconds(1)));
    }
}
