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

// ---- subscription state (R14) ---------------------------------------------------------------------

/// What a paid invoice is for, by its `billing_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoicePurpose {
    /// The first invoice (the plan starts, R14) or a renewal (R3): the period's allowance in
    /// full, the previous one gone.
    Period,
    /// The proration invoice of a price change: an upgrade, if it is one and not yet applied.
    PriceChange,
    /// Anything else (manual invoices, thresholds): no credits.
    Other,
}

pub fn invoice_purpose(billing_reason: Option<&str>) -> InvoicePurpose {
    match billing_reason {
        Some("subscription_create" | "subscription_cycle" | "subscription") => InvoicePurpose::Period,
        Some("subscription_update") => InvoicePurpose::PriceChange,
        _ => InvoicePurpose::Other,
    }
}

/// R14: whether `plan` is an upgrade of the account's plan (applied as soon as Stripe confirms).
pub fn is_upgrade(catalog: &Catalog, account: &Account, plan: &Plan) -> bool {
    plan.id != account.plan && plan.rank > account.plan(catalog).rank
}

/// What a subscription update means for an account whose plan has started (R14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionChange<'c> {
    /// A higher plan: applied now.
    pub upgrade: Option<&'c Plan>,
    /// What waits for the period's end: `plan:<id>` (a downgrade) or `cancel`.
    pub pending_change: Option<String>,
    pub status: crate::account::PlanStatus,
    /// Words for the event's recorded outcome.
    pub summary: Vec<String>,
}

pub fn decide_subscription_update<'c>(
    catalog: &'c Catalog,
    account: &Account,
    update: &SubscriptionInfo,
) -> SubscriptionChange<'c> {
    use crate::account::PlanStatus;
    let mut summary = Vec::new();
    let mut upgrade = None;
    // A pending downgrade is replaced by what the subscription says now; a cancellation stays
    // until the subscription says otherwise.
    let mut pending = account.pending_change.clone().filter(|p| p == "cancel");
    if let Some(plan) = update.price_id.as_deref().and_then(|p| plan_for_price(catalog, p)) {
        if is_upgrade(catalog, account, plan) {
            summary.push(format!("upgraded to {}", plan.id));
            upgrade = Some(plan);
        } else if plan.id != account.plan {
            summary.push(format!("downgrade to {} at the period's end", plan.id));
            pending = Some(format!("plan:{}", plan.id));
        }
    }
    let status = if update.cancel_at_period_end {
        summary.push("cancels at the period's end".into());
        pending = Some("cancel".into());
        PlanStatus::Canceling
    } else if matches!(update.status.as_str(), "past_due" | "unpaid") {
        PlanStatus::PastDue
    } else {
        if pending.as_deref() == Some("cancel") {
            pending = None;
        }
        PlanStatus::Active
    };
    SubscriptionChange { upgrade, pending_change: pending, status, summary }
}

/// When an ended subscription's plan ends (R14): at the end of the paid period, or now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanEnd {
    At(DateTime<Utc>),
    Now,
    /// The account is on no plan it bought (already Free, or an Enterprise contract).
    NotBought,
}

pub fn plan_end(catalog: &Catalog, account: &Account, now: DateTime<Utc>) -> PlanEnd {
    if !catalog.plan(&account.plan).is_some_and(|p| p.sold) {
        return PlanEnd::NotBought;
    }
    match account.period.map(|p| p.end) {
        Some(end) if end > now => PlanEnd::At(end),
        _ => PlanEnd::Now,
    }
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

    /// Plans like the shipped catalog's, built in code (the domain reads no files).
    fn catalog() -> Catalog {
        use crate::catalog::{Price, RawCatalog, RawPlan};
        let plan = |id: &str, rank: u32, monthly: Option<i64>, sold: bool| RawPlan {
            id: id.into(),
            name: None,
            rank,
            lifetime_credits: (id == "free").then_some(250),
            monthly_credits: monthly,
            capabilities: vec!["canvas".into()],
            api_access: false,
            runs_per_minute: None,
            requires_verification: false,
            trials: id == "free",
            sold,
            price: sold.then(|| Price { amount: 100, currency: "usd".into() }),
            stripe_price_id: sold.then(|| format!("price_{id}")),
        };
        Catalog::from_raw(RawCatalog {
            plans: vec![
                plan("free", 0, None, false),
                plan("creator", 1, Some(1700), true),
                plan("pro", 2, Some(5000), true),
                plan("enterprise", 4, None, false),
            ],
            models: vec![],
            topup_packs: vec![],
        })
        .unwrap()
    }

    fn account(plan: &str, pending: Option<&str>) -> Account {
        let t = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        Account {
            id: AccountId(uuid::Uuid::nil()),
            email: "a@b.co".into(),
            name: "A".into(),
            plan: plan.into(),
            status: crate::account::PlanStatus::Active,
            period: Some(crate::account::Period { start: t, end: t + Duration::days(30) }),
            contract: None,
            pending_change: pending.map(str::to_string),
            plan_ends_at: None,
            created_at: t,
        }
    }

    fn update(price: &str, cancel: bool, status: &str) -> SubscriptionInfo {
        SubscriptionInfo {
            id: "sub_1".into(),
            customer: None,
            status: status.into(),
            price_id: Some(price.into()),
            item_id: None,
            cancel_at_period_end: cancel,
            period_start: None,
            period_end: None,
        }
    }

    #[test]
    fn a_higher_price_upgrades_now_a_lower_one_waits_for_the_period_end() {
        let c = catalog();
        let up = decide_subscription_update(&c, &account("creator", None), &update("price_pro", false, "active"));
        assert_eq!((up.upgrade.map(|p| p.id.as_str()), up.pending_change), (Some("pro"), None));
        let down = decide_subscription_update(&c, &account("pro", None), &update("price_creator", false, "active"));
        assert_eq!((down.upgrade, down.pending_change.as_deref()), (None, Some("plan:creator")));
        let same = decide_subscription_update(
            &c,
            &account("pro", Some("plan:creator")),
            &update("price_pro", false, "active"),
        );
        assert_eq!(same.pending_change, None, "going back to the current price drops the downgrade");
    }

    #[test]
    fn cancelling_and_past_due_set_the_status_and_an_uncancel_clears_the_cancellation() {
        use crate::account::PlanStatus;
        let c = catalog();
        let cancel = decide_subscription_update(&c, &account("pro", None), &update("price_pro", true, "active"));
        assert_eq!((cancel.status, cancel.pending_change.as_deref()), (PlanStatus::Canceling, Some("cancel")));
        let back =
            decide_subscription_update(&c, &account("pro", Some("cancel")), &update("price_pro", false, "active"));
        assert_eq!((back.status, back.pending_change), (PlanStatus::Active, None));
        let due = decide_subscription_update(&c, &account("pro", None), &update("price_pro", false, "past_due"));
        assert_eq!(due.status, PlanStatus::PastDue);
    }

    #[test]
    fn invoices_start_renew_or_change_a_plan_by_their_reason() {
        assert_eq!(invoice_purpose(Some("subscription_create")), InvoicePurpose::Period);
        assert_eq!(invoice_purpose(Some("subscription_cycle")), InvoicePurpose::Period);
        assert_eq!(invoice_purpose(Some("subscription_update")), InvoicePurpose::PriceChange);
        assert_eq!(invoice_purpose(Some("manual")), InvoicePurpose::Other);
        assert_eq!(invoice_purpose(None), InvoicePurpose::Other);
    }

    #[test]
    fn an_ended_plan_lasts_to_its_period_end_and_only_a_bought_plan_ends() {
        let c = catalog();
        let a = account("pro", None);
        let end = a.period.unwrap().end;
        assert_eq!(plan_end(&c, &a, end - Duration::days(1)), PlanEnd::At(end));
        assert_eq!(plan_end(&c, &a, end), PlanEnd::Now);
        assert_eq!(plan_end(&c, &account("free", None), end), PlanEnd::NotBought);
        assert_eq!(plan_end(&c, &account("enterprise", None), end), PlanEnd::NotBought);
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
