//! One error enum per use case. The API maps each variant to SPEC's code and status in one place.

use crate::runs::Denial;

/// The store could not do its part: the database is down, or something broke inside.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// Section 7: a lock was not had within `database.lock_timeout_ms`; nothing was written.
    #[error("busy: {0}")]
    Busy(String),
    #[error("internal error: {0}")]
    Internal(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("no such account")]
    NotFound,
    #[error("{0}")]
    InvalidParameters(String),
    #[error("this Idempotency-Key was used with another request")]
    IdempotencyKeyReused,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Denied(Denial),
    #[error("no such run")]
    NotFound,
    /// R20: another channel, or a key without the run's capability.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("this Idempotency-Key was used with another request")]
    IdempotencyKeyReused,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    #[error("no such account")]
    NotFound,
    #[error("{message}")]
    InvalidParameters { message: String, available: Option<crate::credits::Credits> },
    #[error("{0}")]
    Conflict(String),
    #[error("this Idempotency-Key was used with another request")]
    IdempotencyKeyReused,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<AccountError> for AdminError {
    fn from(e: AccountError) -> AdminError {
        match e {
            AccountError::NotFound => AdminError::NotFound,
            AccountError::InvalidParameters(message) => AdminError::InvalidParameters { message, available: None },
            AccountError::IdempotencyKeyReused => AdminError::IdempotencyKeyReused,
            AccountError::Store(s) => AdminError::Store(s),
        }
    }
}

impl From<AccountError> for RunError {
    fn from(e: AccountError) -> RunError {
        match e {
            AccountError::NotFound => RunError::NotFound,
            AccountError::InvalidParameters(message) => RunError::Denied(Denial::InvalidParameters { message }),
            AccountError::IdempotencyKeyReused => RunError::IdempotencyKeyReused,
            AccountError::Store(s) => RunError::Store(s),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    #[error("no such API key or account")]
    NotFound,
    #[error(transparent)]
    Refused(crate::apikey::KeyRefusal),
    #[error("this Idempotency-Key was used with another request")]
    IdempotencyKeyReused,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerificationError {
    #[error("no such account or request")]
    NotFound,
    #[error("{0}")]
    InvalidParameters(String),
    #[error("{0}")]
    Conflict(String),
    #[error("this Idempotency-Key was used with another request")]
    IdempotencyKeyReused,
    #[error(transparent)]
    Store(#[from] StoreError),
}
