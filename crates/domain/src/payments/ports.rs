//! What the payment use cases need from outside: the payment provider (Stripe), the webhook
//! decoder, and the store. Synchronous, like every port: the HTTP adapter runs them off its
//! async threads.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::checkout::{CheckoutRefusal, CheckoutView, ReturnUrls};
use super::events::{Applied, SessionMode, StripeEvent, Unapplicable};
use super::subscription::SubscriptionStatus;
use crate::account::Account;
use crate::catalog::{Plan, TopupPack};
use crate::credits::Credits;
use crate::error::StoreError;
use crate::idempotency::{IdempotencyKey, Recall, Replayable};
use crate::ids::AccountId;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// Stripe could not be reached, or answered an error: PAYMENTS_UNAVAILABLE.
    #[error("payments unavailable: {0}")]
    Unavailable(String),
    /// Stripe has no such customer (deleted in its Dashboard): the account needs a new one.
    #[error("Stripe has no customer {0}")]
    MissingCustomer(String),
}

/// What a Checkout Session sells, kept with it (R18): a pack is granted as sold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sold {
    pub mode: SessionMode,
    /// The plan or pack.
    pub item: String,
    pub price_id: String,
    /// A pack's credits and expiry; a plan's monthly credits.
    pub credits: Credits,
    pub expiry_days: Option<u32>,
    pub amount: i64,
    pub currency: String,
}

impl Sold {
    pub fn plan(plan: &Plan, price_id: &str) -> Sold {
        let price = plan.price.clone();
        Sold {
            mode: SessionMode::Subscription,
            item: plan.id.clone(),
            price_id: price_id.to_string(),
            credits: plan.monthly_credits.unwrap_or(Credits::ZERO),
            expiry_days: None,
            amount: price.as_ref().map(|p| p.amount).unwrap_or(0),
            currency: price.map(|p| p.currency).unwrap_or_else(|| "usd".into()),
        }
    }

    pub fn pack(pack: &TopupPack) -> Sold {
        Sold {
            mode: SessionMode::Payment,
            item: pack.id.clone(),
            price_id: pack.stripe_price_id.clone(),
            credits: pack.credits,
            expiry_days: Some(pack.expiry_days),
            amount: pack.price.amount,
            currency: pack.price.currency.clone(),
        }
    }
}

/// A Checkout Session to create at Stripe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRequest {
    pub account: AccountId,
    pub customer: String,
    pub sold: Sold,
    pub urls: ReturnUrls,
    /// What Stripe's Idempotency-Key is made from: a retry makes no second session.
    pub idempotency: String,
    /// R28: what it asks of Stripe Tax; `None` with `billing.automatic_tax` off.
    pub tax: Option<super::tax::SessionTax>,
}

/// An invoice as Stripe has it (`GET /v1/invoices`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InvoiceView {
    pub id: String,
    pub number: Option<String>,
    pub status: Option<String>,
    pub amount_paid: i64,
    /// R28: the amount before tax, and the tax (minor units; 0 when none).
    pub subtotal: i64,
    pub tax: i64,
    pub currency: String,
    pub created: DateTime<Utc>,
    pub hosted_invoice_url: Option<String>,
    pub invoice_pdf: Option<String>,
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

/// A payment the account made: a pack's (its PaymentIntent) or a subscription invoice's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseView {
    /// How Stripe's refund and dispute events name the payment.
    pub payment: crate::payments::PaymentLink,
    /// The pack's id, or the invoice's billing reason.
    pub what: String,
    pub credits: crate::credits::Credits,
    /// In the currency's smallest unit.
    pub amount: i64,
    pub refunded_amount: i64,
    pub created_at: DateTime<Utc>,
}

/// A dispute of one of the account's payments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeView {
    pub id: String,
    pub payment_intent: Option<String>,
    pub status: crate::payments::DisputeStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Purchases {
    pub payments: Vec<PurchaseView>,
    pub disputes: Vec<DisputeView>,
}

/// With simulated payments (SPEC section 5), a call to the simulated Stripe that Stripe answers
/// with events: the simulated pages' adapter makes those events and applies them as Stripe's are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimulatedCall {
    /// `customer.subscription.updated` with the new price; an upgrade's proration invoice paid.
    ChangePrice { subscription: LiveSubscription, price_id: String, upgrade: bool },
    /// `customer.subscription.updated` with `cancel_at_period_end` cleared.
    Resume { subscription: LiveSubscription },
}

/// The payment provider (Stripe), as the service calls it.
pub trait PaymentGateway: Send + Sync {
    /// A customer for the account; the same (account, generation) always gives the same customer.
    /// `generation` counts the account's customers deleted at Stripe.
    fn create_customer(
        &self,
        account: AccountId,
        email: &str,
        name: &str,
        generation: u32,
    ) -> Result<String, GatewayError>;
    fn create_session(&self, request: &SessionRequest) -> Result<CreatedSession, GatewayError>;
    /// Expire an open Checkout Session (one no longer open is left as it is).
    fn expire_session(&self, session: &str) -> Result<(), GatewayError>;
    /// Change a live subscription's price (R14): an upgrade invoiced now and applied only once that
    /// invoice is paid; a downgrade from the next period.
    fn change_price(
        &self,
        subscription: &LiveSubscription,
        price_id: &str,
        upgrade: bool,
        idempotency: &str,
    ) -> Result<(), GatewayError>;
    /// R14: a subscription cancelled at its period's end goes on.
    fn resume(&self, subscription: &LiveSubscription, idempotency: &str) -> Result<(), GatewayError>;
    /// R18: end a subscription now.
    fn cancel_subscription(&self, subscription: &str, idempotency: &str) -> Result<(), GatewayError>;
    /// R18: refund what an invoice was paid.
    fn refund_invoice(&self, invoice: &str, idempotency: &str) -> Result<(), GatewayError>;
    /// The invoice a PaymentIntent paid, if any (Stripe links them by invoice payments).
    fn invoice_for_payment(&self, payment_intent: &str) -> Result<Option<String>, GatewayError>;
    /// The customer's invoices, newest first.
    fn invoices(&self, customer: &str) -> Result<Vec<InvoiceView>, GatewayError>;
    /// A Customer Portal session's URL.
    fn portal_session(&self, customer: &str, return_url: &str) -> Result<String, GatewayError>;
    /// R22: an off-session PaymentIntent for an auto top-up, confirmed at once with the customer's
    /// saved card.
    fn pay_off_session(&self, payment: &OffSessionPayment<'_>) -> crate::notify::store::IntentAnswer;
}

/// R22: what an auto top-up asks Stripe for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffSessionPayment<'a> {
    pub customer: &'a str,
    pub amount: i64,
    pub currency: &'a str,
    pub account: AccountId,
    pub pack: &'a str,
    pub auto_topup: uuid::Uuid,
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
    /// A body verified before (an event kept as failed, applied again by an admin).
    fn decode_verified(&self, payload: &[u8]) -> Result<StripeEvent, WebhookError>;
}

/// An open Checkout Session of the account for a plan (R18).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSession {
    pub id: String,
    pub url: Option<String>,
    pub plan: String,
}

/// What checkout needs to know of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutContext {
    /// As it stands at the request's time.
    pub account: Account,
    pub customer: Option<String>,
    /// How many of the account's Stripe customers were deleted at Stripe.
    pub customer_generation: u32,
    pub verified: bool,
    /// R18: the account's subscription that has not ended at Stripe, if any.
    pub live: Option<LiveSubscription>,
    pub open_session: Option<OpenSession>,
}

/// A checkout to record: the session made (or the subscription changed), the session expired
/// first (R18), and the answer given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutRecord {
    pub session: Option<SessionSold>,
    pub expired: Option<String>,
    pub view: CheckoutView,
}

/// A session made, and what it sells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSold {
    pub session: CreatedSession,
    pub sold: Sold,
}

/// Why applying an event failed: the store, or the service's own configuration (kept for an admin).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Unapplicable(#[from] Unapplicable),
}

/// An event that could not be applied, as an admin sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FailedEventView {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub created: DateTime<Utc>,
    pub error: Option<String>,
    pub attempts: i32,
    pub received_at: DateTime<Utc>,
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
    fn checkout_context(&self, account: AccountId, now: DateTime<Utc>) -> Result<CheckoutContext, PaymentError>;
    /// Keep the account's Stripe customer; the first one stored wins (returned).
    fn set_customer(&self, account: AccountId, customer: &str) -> Result<String, PaymentError>;
    /// The account forgets this customer (gone at Stripe), if it is still the account's.
    fn forget_customer(&self, account: AccountId, customer: &str) -> Result<(), PaymentError>;
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
    /// Apply one Stripe event, at most once, in one transaction; one the configuration cannot
    /// apply is kept as failed (not applied) for an admin.
    fn apply_stripe_event(&self, event: &StripeEvent, now: DateTime<Utc>) -> Result<Applied, ApplyError>;
    /// A checkout session this service made: its account, its record, and the account's Stripe
    /// customer (simulated payments read it to play Stripe's part).
    fn checkout_session(
        &self,
        id: &str,
    ) -> Result<Option<(AccountId, crate::payments::SessionRecord, Option<String>)>, StoreError>;
    /// The account a subscription this service knows belongs to.
    fn subscription_account(&self, subscription: &str) -> Result<Option<AccountId>, StoreError>;
    /// What the account paid for (packs and subscription invoices, newest first) and its
    /// disputes: simulated payments refund and dispute these as Stripe would.
    fn purchases(&self, account: AccountId) -> Result<Purchases, StoreError>;
    /// Events kept as failed, oldest first.
    fn failed_stripe_events(&self, limit: i64) -> Result<Vec<FailedEventView>, StoreError>;
    /// The verified body of a kept event (to apply it again).
    fn stripe_event_payload(&self, id: &str) -> Result<Option<String>, StoreError>;
}

/// Why a webhook delivery was not applied: answered 500, so Stripe sends it again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookFailure {
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

/// The webhook use case: learn from Stripe what the event does not say (the invoice a refunded or
/// disputed payment paid), then apply it once.
pub struct WebhookService<'a, S: ?Sized, G: ?Sized> {
    pub store: &'a S,
    pub gateway: &'a G,
}

impl<S: PaymentStore + ?Sized, G: PaymentGateway + ?Sized> WebhookService<'_, S, G> {
    pub fn apply(&self, mut event: StripeEvent, now: DateTime<Utc>) -> Result<Applied, WebhookFailure> {
        if let Some(link) = event.payload.payment_to_link()
            && let Some(payment_intent) = link.payment_intent.clone()
        {
            link.invoice = self.gateway.invoice_for_payment(&payment_intent)?;
        }
        Ok(self.store.apply_stripe_event(&event, now)?)
    }
}
