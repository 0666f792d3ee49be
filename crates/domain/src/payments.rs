//! Payments (R3, R4, R13, R14, R17, SPEC section 5) in the domain's words: what checkout may
//! sell, what each payment event means, and the arithmetic of upgrades and refunds. The Stripe
//! adapter turns Stripe's events into `PaymentEvent`s; the store applies them, one transaction
//! each, through the functions here.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::account::Account;
use crate::catalog::{Catalog, Plan, TopupPack};
use crate::credits::Credits;
use crate::ids::AccountId;

// ---- checkout ---------------------------------------------------------------------------------

/// A subscription the account holds at Stripe, as far as checkout needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSubscription {
    pub id: String,
    pub item_id: Option<String>,
    pub price_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckoutRefusal {
    #[error("{0}")]
    InvalidParameters(String),
    #[error("the Business plan needs an approved business verification")]
    BusinessVerificationRequired,
    #[error("{0}")]
    Conflict(String),
}

/// What a plan checkout does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanCheckout<'c> {
    /// A new subscription through a Checkout Session.
    New { plan: &'c Plan, price_id: String },
    /// A change of the live subscription's price: an upgrade at once (prorated), a downgrade
    /// at the period's end (R14).
    Change { plan: &'c Plan, price_id: String, subscription: LiveSubscription, upgrade: bool },
}

fn url(field: &str, value: &str) -> Result<String, CheckoutRefusal> {
    let v = value.trim();
    let ok = (v.starts_with("https://") || v.starts_with("http://"))
        && v.len() <= 2048
        && v.split("://").nth(1).is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
        && !v.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(v.to_string())
    } else {
        Err(CheckoutRefusal::InvalidParameters(format!("{field} must be an http(s) URL")))
    }
}

/// The return URLs of a Checkout Session, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnUrls {
    pub success_url: String,
    pub cancel_url: String,
}

impl ReturnUrls {
    pub fn new(success_url: &str, cancel_url: &str) -> Result<ReturnUrls, CheckoutRefusal> {
        Ok(ReturnUrls { success_url: url("success_url", success_url)?, cancel_url: url("cancel_url", cancel_url)? })
    }
}

/// SPEC section 5 and R13: which plans checkout sells, and how.
pub fn decide_plan_checkout<'c>(
    catalog: &'c Catalog,
    account: &Account,
    plan_id: &str,
    verified: bool,
    live: Option<LiveSubscription>,
) -> Result<PlanCheckout<'c>, CheckoutRefusal> {
    let plan =
        catalog.plan(plan_id).ok_or_else(|| CheckoutRefusal::InvalidParameters(format!("unknown plan {plan_id:?}")))?;
    let price_id = match (plan.sold, &plan.stripe_price_id) {
        (true, Some(p)) => p.clone(),
        _ => return Err(CheckoutRefusal::InvalidParameters(format!("the {} plan is not sold by checkout", plan.id))),
    };
    if plan.requires_verification && !verified {
        return Err(CheckoutRefusal::BusinessVerificationRequired);
    }
    match live {
        Some(sub) => {
            if sub.price_id.as_deref() == Some(price_id.as_str()) {
                return Err(CheckoutRefusal::Conflict(format!("the subscription is already on the {} plan", plan.id)));
            }
            let current = account.plan(catalog);
            Ok(PlanCheckout::Change { plan, price_id, upgrade: plan.rank > current.rank, subscription: sub })
        }
        None if account.plan == plan.id => {
            Err(CheckoutRefusal::Conflict(format!("the account is already on the {} plan", plan.id)))
        }
        None => Ok(PlanCheckout::New { plan, price_id }),
    }
}

pub fn decide_pack_checkout<'c>(catalog: &'c Catalog, pack_id: &str) -> Result<&'c TopupPack, CheckoutRefusal> {
    catalog.pack(pack_id).ok_or_else(|| CheckoutRefusal::InvalidParameters(format!("unknown top-up pack {pack_id:?}")))
}

/// What `POST /v1/checkout/*` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckoutView {
    pub checkout_url: Option<String>,
    pub session_id: Option<String>,
    /// For a plan change of a live subscription: its new state at Stripe.
    pub subscription: Option<SubscriptionChangeView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionChangeView {
    pub id: String,
    pub plan: String,
    /// `now` for an upgrade (applied when Stripe confirms it), `period_end` for a downgrade.
    pub effective: &'static str,
}

// ---- events -----------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionMode {
    Payment,
    Subscription,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub id: String,
    pub mode: SessionMode,
    /// `payment_status == "paid"` (or no payment required).
    pub paid: bool,
    pub customer: Option<String>,
    pub subscription: Option<String>,
    pub payment_intent: Option<String>,
    pub amount_total: Option<i64>,
    pub currency: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceLine {
    pub price_id: Option<String>,
    pub amount: i64,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub proration: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceInfo {
    pub id: String,
    pub customer: Option<String>,
    pub subscription: Option<String>,
    pub billing_reason: Option<String>,
    pub lines: Vec<InvoiceLine>,
}

impl InvoiceInfo {
    /// The line that says which plan the invoice pays for: the costliest line with a price (an
    /// upgrade's proration invoice lists the old price's credit first, then the new price).
    pub fn plan_line(&self) -> Option<&InvoiceLine> {
        self.lines.iter().filter(|l| l.price_id.is_some()).max_by_key(|l| l.amount)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionInfo {
    pub id: String,
    pub customer: Option<String>,
    pub status: String,
    pub price_id: Option<String>,
    pub item_id: Option<String>,
    pub cancel_at_period_end: bool,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeInfo {
    pub id: String,
    pub payment_intent: Option<String>,
    pub amount: i64,
    /// Cumulative, as Stripe reports it.
    pub amount_refunded: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentEvent {
    CheckoutCompleted(SessionInfo),
    AsyncPaymentSucceeded(SessionInfo),
    AsyncPaymentFailed(SessionInfo),
    InvoicePaid(InvoiceInfo),
    InvoicePaymentFailed(InvoiceInfo),
    SubscriptionUpdated(SubscriptionInfo),
    SubscriptionDeleted(SubscriptionInfo),
    ChargeRefunded(ChargeInfo),
    /// A type this service does not act on: recorded, answered 200.
    Other,
}

/// A verified event from Stripe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeEvent {
    pub id: String,
    pub event_type: String,
    pub created: DateTime<Utc>,
    pub payload: PaymentEvent,
}

/// What applying an event did, recorded beside it (for operators and logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Done(String),
    Replay,
    Ignored(String),
}

// ---- the arithmetic ------------------------------------------------------------------------------

/// The plan a Stripe price sells.
pub fn plan_for_price<'c>(catalog: &'c Catalog, price_id: &str) -> Option<&'c Plan> {
    catalog.plans().iter().find(|p| p.stripe_price_id.as_deref() == Some(price_id))
}

/// R4: a pack bought now expires `expiry_days` later.
pub fn topup_expiry(pack: &TopupPack, paid_at: DateTime<Utc>) -> DateTime<Utc> {
    paid_at + Duration::days(i64::from(pack.expiry_days))
}

/// R14: an upgrade makes the period's allowance the new plan's allowance less what was already
/// charged to it this period (open holds do not count). Given the current allowance bucket's
/// granted and remaining (remaining includes what holds reserve), how much to add to it.
pub fn upgrade_increase(new_monthly: Credits, granted: Credits, remaining: Credits) -> Credits {
    let used = (granted.get() - remaining.get()).max(0);
    let target = (new_monthly.get() - used).max(0);
    Credits::new((target - remaining.get()).max(0))
}

/// R17: a refund claws back the refunded share of the pack's credits (rounded down: a customer
/// keeps a partial credit), at most what is left of the pack. `refunded` is Stripe's cumulative
/// amount; `clawed` what earlier refunds already took.
pub fn clawback(pack_credits: Credits, amount: i64, refunded: i64, clawed: Credits, left: Credits) -> Credits {
    if amount <= 0 {
        return Credits::ZERO;
    }
    let refunded = refunded.clamp(0, amount);
    let share = (i128::from(pack_credits.get()) * i128::from(refunded) / i128::from(amount)) as i64;
    Credits::new((share - clawed.get()).clamp(0, left.get().max(0)))
}

/// SPEC section 5: an event older than the last one applied for the same subscription never
/// rolls its state back.
pub fn is_stale(last_applied: Option<DateTime<Utc>>, created: DateTime<Utc>) -> bool {
    last_applied.is_some_and(|last| created < last)
}

// ---- ports ------------------------------------------------------------------------------------

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
    pub item_id: String,
    pub urls: ReturnUrls,
    /// Sent as Stripe's Idempotency-Key: a retry makes no second session.
    pub idempotency_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedSession {
    pub id: String,
    pub url: Option<String>,
}

/// The payment provider (Stripe), as the service calls it. Synchronous: called off the async threads.
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
        idempotency_key: &str,
    ) -> Result<(), GatewayError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upgrade_grants_the_new_allowance_less_what_was_used() {
        // Creator (1700) with 200 used: Pro (5000) gives 4800 for the rest of the period.
        assert_eq!(upgrade_increase(Credits::new(5000), Credits::new(1700), Credits::new(1500)), Credits::new(3300));
        // Nothing used: the whole difference.
        assert_eq!(upgrade_increase(Credits::new(5000), Credits::new(1700), Credits::new(1700)), Credits::new(3300));
        // Used more than the new plan gives: nothing more (and nothing taken).
        assert_eq!(upgrade_increase(Credits::new(1000), Credits::new(1700), Credits::new(100)), Credits::ZERO);
    }

    #[test]
    fn a_refund_claws_back_its_share_at_most_what_is_left() {
        let pack = Credits::new(2000);
        assert_eq!(clawback(pack, 1800, 900, Credits::ZERO, Credits::new(2000)), Credits::new(1000));
        // The same cumulative refund again: nothing more.
        assert_eq!(clawback(pack, 1800, 900, Credits::new(1000), Credits::new(1000)), Credits::ZERO);
        // A second refund for the rest.
        assert_eq!(clawback(pack, 1800, 1800, Credits::new(1000), Credits::new(1000)), Credits::new(1000));
        // Part of the pack was spent: at most what is left.
        assert_eq!(clawback(pack, 1800, 1800, Credits::ZERO, Credits::new(300)), Credits::new(300));
        // A third of a credit stays with the customer.
        assert_eq!(clawback(Credits::new(500), 500, 1, Credits::ZERO, Credits::new(500)), Credits::new(1));
    }

    #[test]
    fn an_older_event_is_stale() {
        let t = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert!(is_stale(Some(t), t - Duration::seconds(1)));
        assert!(!is_stale(Some(t), t));
        assert!(!is_stale(None, t));
    }
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
    pub session: Option<(CreatedSession, SessionMode, String, String)>,
    pub view: CheckoutView,
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
    Store(#[from] crate::error::StoreError),
}
