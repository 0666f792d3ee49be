//! What the payment use cases need from outside: the payment provider (Stripe), the webhook
//! decoder, and the store. Synchronous, like every port: the HTTP adapter runs them off its
//! async threads.

use chrono::{DateTime, Utc};

use super::checkout::{CheckoutRefusal, CheckoutView, ReturnUrls};
use super::events::{Applied, SessionMode, StripeEvent};
use super::subscription::SubscriptionStatus;
use crate::account::Account;
use crate::error::StoreError;
use crate::idempotency::{IdempotencyKey, Recall, Replayable};
use crate::ids::AccountId;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// Stripe could not be reached, or answered an error: PAYMENTS_UNAVAILABLE.
    #[error("payments unavailable: {0}")]
    Unavailable(String),
}

/// A Checkout Session to create at Stripe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRequest {
    pub account: AccountId,
    pub customer: String,
    pub mode: SessionMode,
    pub price_id: String,
    /// The plan or pack sold (in the session's metadata).
    pub item_id: String,
    pub urls: ReturnUrls,
    /// What Stripe's Idempotency-Key is made from: a retry makes no second session.
    pub idempotency: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedSession {
    pub id: String,
    pub url: Option<String>,
}

/// A subscription the account holds at Stripe, as far as checkout needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSubscription {
    pub id: String,
    pub status: SubscriptionStatus,
    pub item_id: Option<String>,
    pub price_id: Option<String>,
    pub cancel_at_period_end: bool,
}

/// The payment provider (Stripe), as the service calls it.
pub trait PaymentGateway: Send + Sync {
    /// A customer for the account; the same key always gives the same customer.
    fn create_customer(&self, account: AccountId, email: &str, name: &str) -> Result<String, GatewayError>;
    fn create_session(&self, request: &SessionRequest) -> Result<CreatedSession, GatewayError>;
    /// Change a live subscription's price: prorated now (upgrade) or from the next period (downgrade).
    fn change_price(
        &self,
        subscription: &LiveSubscription,
        price_id: &str,
        upgrade: bool,
        idempotency: &str,
    ) -> Result<(), GatewayError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("missing or invalid Stripe-Signature")]
    BadSignature,
    #[error("the signature's timestamp is outside the tolerance")]
    Expired,
    #[error("the event is not readable: {0}")]
    Malformed(String),
}

/// Verifies and reads webhook deliveries (the raw body and its `Stripe-Signature` header).
pub trait WebhookDecoder: Send + Sync {
    fn decode(&self, payload: &[u8], signature: &str) -> Result<StripeEvent, WebhookError>;
}

/// What checkout needs to know of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutContext {
    pub account: Account,
    pub customer: Option<String>,
    pub verified: bool,
    pub live: Option<LiveSubscription>,
}

/// A checkout to record: the session made (or the subscription changed) and the answer given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutRecord {
    pub session: Option<SessionSold>,
    pub view: CheckoutView,
}

/// A session made, and what it sells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSold {
    pub session: CreatedSession,
    pub mode: SessionMode,
    pub item: String,
    pub price_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    #[error("no such account")]
    NotFound,
    #[error(transparent)]
    Refused(#[from] CheckoutRefusal),
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error("this Idempotency-Key was used with another request")]
    IdempotencyKeyReused,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Stripe's side of the store.
pub trait PaymentStore {
    fn checkout_context(&self, account: AccountId) -> Result<CheckoutContext, PaymentError>;
    /// Keep the account's Stripe customer; the first one stored wins (returned).
    fn set_customer(&self, account: AccountId, customer: &str) -> Result<String, PaymentError>;
    /// R11 before a call to Stripe: the first answer to this key, if any.
    fn recall(&self, key: &IdempotencyKey, now: DateTime<Utc>) -> Result<Recall, StoreError>;
    /// Record a checkout (its session and the answer) with its idempotency record.
    fn record_checkout(
        &self,
        account: AccountId,
        record: &CheckoutRecord,
        now: DateTime<Utc>,
        idem: Option<&IdempotencyKey>,
    ) -> Result<Replayable<CheckoutView>, PaymentError>;
    /// Apply one Stripe event, at most once, in one transaction.
    fn apply_stripe_event(&self, event: &StripeEvent, now: DateTime<Utc>) -> Result<Applied, StoreError>;
}
