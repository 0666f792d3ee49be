//! What the notify use cases need from the store (R22, R23, section 9), and the views they answer.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::autotopup::AutoTopupRequest;
use super::webhooks::EventType;
use crate::Credits;
use crate::error::StoreError;
use crate::ids::AccountId;

/// `GET /v1/auto-topup`: the settings, and what the account cannot set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AutoTopupView {
    pub enabled: bool,
    /// Credits: a capture that leaves `available` below this starts an auto top-up.
    pub threshold: Option<Credits>,
    /// The pack bought.
    pub pack: Option<String>,
    /// The most auto top-ups a calendar month (UTC).
    pub monthly_limit: u32,
    /// Whether a pack checkout saved a card at Stripe (auto top-up needs one).
    pub card_saved: bool,
    /// Auto top-ups started this calendar month.
    pub used_this_month: u32,
    pub last_attempt: Option<AutoTopupAttempt>,
}

/// The newest auto top-up and how it ended (or that it has not yet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AutoTopupAttempt {
    pub id: Uuid,
    pub pack: String,
    /// `pending` (the payment is still to be asked for), `processing` (asked; Stripe has not said
    /// it is paid), `succeeded` (the pack is granted), `failed`.
    pub status: String,
    pub payment_intent: Option<String>,
    /// Why it failed, as Stripe said.
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// `GET /v1/alerts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertsView {
    /// Credits; `null`: no low-balance alert (`balance.depleted` and `.recovered` are still sent).
    pub low_balance_threshold: Option<Credits>,
    /// Where the balance stood after its last change: `normal`, `low` or `depleted`.
    pub balance_level: super::alerts::BalanceLevel,
}

/// A webhook endpoint as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EndpointView {
    pub id: Uuid,
    pub url: String,
    pub events: Vec<EventType>,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Since when every attempt to it has failed (5 days of it disables it).
    pub failing_since: Option<DateTime<Utc>>,
    /// Set when it was disabled for failing: nothing more is sent to it.
    pub disabled_at: Option<DateTime<Utc>>,
}

/// A new endpoint as the store keeps it: the secret only sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEndpoint {
    pub id: Uuid,
    pub url: String,
    pub events: Vec<EventType>,
    pub description: Option<String>,
    pub secret_sealed: Vec<u8>,
}

/// One attempt to deliver an event to an endpoint, or a delivery not yet attempted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryAttemptView {
    /// The event (its `webhook-id`).
    pub event_id: String,
    pub event_type: EventType,
    /// `delivered` (a 2xx in time), `failed` (tried again at `next_attempt_at`, or given up when
    /// that is null), or `pending` (not attempted yet).
    pub status: String,
    /// The HTTP status the endpoint answered; null when it gave none (no connection, timeout).
    pub response_code: Option<u16>,
    pub error: Option<String>,
    pub attempted_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// A delivery the worker claimed: what it signs and sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    pub id: Uuid,
    pub account: AccountId,
    pub endpoint: Uuid,
    pub url: String,
    pub secret_sealed: Vec<u8>,
    pub event_id: String,
    pub body: String,
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    Delivered { status: u16 },
    Failed { status: Option<u16>, error: String },
}

/// What the auto top-up worker asks of Stripe for one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueTopup {
    pub id: Uuid,
    pub account: AccountId,
    pub customer: Option<String>,
    pub pack: String,
    pub amount: i64,
    pub currency: String,
}

/// Stripe's answer to an auto top-up's off-session PaymentIntent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntentAnswer {
    /// Paid at once: the pack is granted now (and not again when the event comes).
    Succeeded { payment_intent: String },
    /// Stripe is still working on it: its event will say.
    Processing { payment_intent: String },
    /// Declined, or needing the customer (3-D Secure) while nobody is there.
    Failed {
        payment_intent: Option<String>,
        reason: String,
        /// The bank wants the customer (3-D Secure): `requires_action` off-session.
        needs_customer: bool,
    },
    /// Stripe could not be asked (down, a 5xx): tried again later with the same idempotency key.
    Unavailable(String),
}

/// Errors of the notify use cases.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    #[error("no such account or endpoint")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    /// This instance is not configured for it (no `webhooks.encryption_key`).
    #[error("{0}")]
    Unconfigured(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub trait NotifyStore {
    fn auto_topup(&self, account: AccountId, now: DateTime<Utc>) -> Result<AutoTopupView, NotifyError>;
    /// Validates (`autotopup::validate`) under the account's lock and keeps the settings.
    fn set_auto_topup(
        &self,
        account: AccountId,
        request: &AutoTopupRequest,
        now: DateTime<Utc>,
    ) -> Result<AutoTopupView, NotifyError>;
    fn alerts(&self, account: AccountId) -> Result<AlertsView, NotifyError>;
    /// Sets the threshold and re-bases the level (`alerts::rebase`): setting it is no crossing.
    fn set_alerts(
        &self,
        account: AccountId,
        threshold: Option<Credits>,
        now: DateTime<Utc>,
    ) -> Result<AlertsView, NotifyError>;

    fn endpoints(&self, account: AccountId) -> Result<Vec<EndpointView>, NotifyError>;
    /// Keeps a new endpoint unless the account has `MAX_ENDPOINTS` (checked under its lock).
    fn create_endpoint(
        &self,
        account: AccountId,
        endpoint: &NewEndpoint,
        now: DateTime<Utc>,
    ) -> Result<EndpointView, NotifyError>;
    fn delete_endpoint(&self, account: AccountId, endpoint: Uuid) -> Result<(), NotifyError>;
    /// The endpoint's attempts, newest first (at most `limit`).
    fn deliveries(
        &self,
        account: AccountId,
        endpoint: Uuid,
        limit: i64,
    ) -> Result<Vec<DeliveryAttemptView>, NotifyError>;

    /// R23: `credits.expiring` for the buckets expiring within `notice` that have not had it.
    fn notice_expiring(&self, now: DateTime<Utc>, notice: chrono::TimeDelta, batch: i64) -> Result<usize, StoreError>;
}
