//! What each Stripe event means (SPEC section 5, R3, R4, R14, R17): one pure `decide_*` per event
//! kind, from the facts the store loaded under the account's lock to the effects it writes, all
//! in the event's one transaction. The store decides nothing; these decide everything.

use chrono::{DateTime, Utc};

use super::subscription::{
    PendingChange, PlanEnd, SubscriptionStatus, is_stale, is_upgrade, plan_end, plan_for_price, refund_share,
    upgrade_growth,
};
use crate::account::{Account, Period, PlanStatus};
use crate::burn::BucketKind;
use crate::catalog::{Catalog, Plan};
use crate::credits::Credits;
use crate::ids::BucketId;
use crate::mail::{Mail, MailKind};
use crate::reports::UnitValue;

// ---- the events, as the Stripe adapter reads them ---------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionMode {
    Payment,
    Subscription,
}

impl SessionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionMode::Payment => "payment",
            SessionMode::Subscription => "subscription",
        }
    }

    pub fn parse(s: &str) -> Option<SessionMode> {
        [SessionMode::Payment, SessionMode::Subscription].into_iter().find(|m| m.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub id: String,
    /// `None` for a mode this service never sells (`setup`).
    pub mode: Option<SessionMode>,
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

/// Why Stripe made an invoice (`billing_reason`), as far as it matters here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillingReason {
    /// The first invoice of a subscription: the plan starts (R14).
    Create,
    /// A renewal (R3).
    Cycle,
    /// The proration invoice of a price change (an upgrade, R14).
    Update,
    /// Anything else (manual invoices, thresholds): no credits.
    Other,
}

impl BillingReason {
    pub fn parse(s: Option<&str>) -> BillingReason {
        match s {
            Some("subscription_create") => BillingReason::Create,
            Some("subscription_cycle" | "subscription") => BillingReason::Cycle,
            Some("subscription_update") => BillingReason::Update,
            _ => BillingReason::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BillingReason::Create => "subscription_create",
            BillingReason::Cycle => "subscription_cycle",
            BillingReason::Update => "subscription_update",
            BillingReason::Other => "other",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceInfo {
    pub id: String,
    pub customer: Option<String>,
    pub subscription: Option<String>,
    pub billing_reason: BillingReason,
    pub lines: Vec<InvoiceLine>,
    pub hosted_invoice_url: Option<String>,
    pub amount_paid: i64,
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
    pub status: SubscriptionStatus,
    pub price_id: Option<String>,
    pub item_id: Option<String>,
    pub cancel_at_period_end: bool,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    /// Stripe keeps the old price while an upgrade's payment is not through (R14).
    pub pending_update: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeInfo {
    pub id: String,
    pub payment_intent: Option<String>,
    pub amount: i64,
    /// Cumulative, as Stripe reports it.
    pub amount_refunded: i64,
}

/// How a dispute ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisputeStatus {
    Open,
    Won,
    Lost,
}

impl DisputeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DisputeStatus::Open => "open",
            DisputeStatus::Won => "won",
            DisputeStatus::Lost => "lost",
        }
    }

    pub fn parse(s: &str) -> Option<DisputeStatus> {
        [DisputeStatus::Open, DisputeStatus::Won, DisputeStatus::Lost].into_iter().find(|d| d.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeInfo {
    pub id: String,
    pub charge: Option<String>,
    pub payment_intent: Option<String>,
    /// Stripe's statuses before the end (`needs_response`, `under_review`, …) are all `Open`.
    pub status: DisputeStatus,
}

/// What a payment (a PaymentIntent) paid for, as Stripe links them: since 2025-03-31 an invoice
/// names no PaymentIntent and a charge names no invoice, so the payment's invoice is looked up.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PaymentLink {
    pub payment_intent: Option<String>,
    pub invoice: Option<String>,
}

/// A PaymentIntent, as far as R22 reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentInfo {
    pub id: String,
    /// `metadata.auto_topup_id`: the auto top-up it pays for, when this service made it.
    pub auto_topup: Option<String>,
    /// `last_payment_error.message`: why it failed, in Stripe's words.
    pub failure: Option<String>,
    /// `last_payment_error.code`: `authentication_required` when the bank wants the customer.
    pub failure_code: Option<String>,
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
    ChargeRefunded(ChargeInfo, PaymentLink),
    SessionExpired(SessionInfo),
    DisputeCreated(DisputeInfo, PaymentLink),
    DisputeClosed(DisputeInfo),
    CustomerDeleted {
        customer: String,
    },
    /// R22: `payment_intent.succeeded`.
    IntentSucceeded(IntentInfo),
    /// R22: `payment_intent.payment_failed`.
    IntentFailed(IntentInfo),
    /// A type this service does not act on: recorded, answered 200.
    Other,
}

impl PaymentEvent {
    /// The PaymentIntent whose invoice the service must learn from Stripe before applying this.
    pub fn payment_to_link(&mut self) -> Option<&mut PaymentLink> {
        match self {
            PaymentEvent::ChargeRefunded(_, link) | PaymentEvent::DisputeCreated(_, link) => {
                Some(link).filter(|l| l.payment_intent.is_some() && l.invoice.is_none())
            }
            _ => None,
        }
    }
}

/// A verified event from Stripe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeEvent {
    pub id: String,
    pub event_type: String,
    pub created: DateTime<Utc>,
    pub payload: PaymentEvent,
    /// The verified body, kept with an event that could not be applied, to apply it again.
    pub raw: String,
}

/// An event the service cannot apply because of its own configuration (SPEC section 5): answered
/// 500 so Stripe retries, kept for an admin, never recorded as applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unapplicable {
    #[error("the price {0:?} sells no plan in the catalog")]
    UnknownPrice(String),
    #[error("the pack {0:?} is not in the catalog and its session did not keep what it sold")]
    UnknownPack(String),
}

// ---- what applying an event did --------------------------------------------------------------

/// Why an event changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ignored {
    /// A type this service does not act on.
    NotActedOn,
    /// A session this service did not make, or a subscription or charge of no account here.
    NotOurs,
    /// Its effect was already applied (by this event or another about the same thing).
    AlreadyApplied,
    /// Older than the last event applied for its subscription.
    Stale,
    /// The subscription has ended.
    Ended,
    /// Nothing in it this service acts on (a manual invoice, an invoice with no plan line, …).
    NothingToDo(&'static str),
}

impl std::fmt::Display for Ignored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ignored::NotActedOn => f.write_str("ignored: not a type this service acts on"),
            Ignored::NotOurs => f.write_str("ignored: nothing of this service's"),
            Ignored::AlreadyApplied => f.write_str("ignored: already applied"),
            Ignored::Stale => f.write_str("ignored: older than the last event applied"),
            Ignored::Ended => f.write_str("ignored: the subscription has ended"),
            Ignored::NothingToDo(why) => write!(f, "ignored: {why}"),
        }
    }
}

/// What an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    PackGranted {
        pack: String,
        credits: Credits,
    },
    AwaitingPayment,
    PaymentFailed,
    SubscriptionLinked,
    PlanStarted {
        plan: String,
    },
    Renewed {
        plan: String,
    },
    Upgraded {
        plan: String,
    },
    PastDue,
    SubscriptionRecorded {
        status: SubscriptionStatus,
    },
    PlanEndsAt(DateTime<Utc>),
    OnFree,
    ClawedBack(Credits),
    UpgradePaymentFailed,
    SessionExpired,
    /// R18: a second subscription, or one of an Enterprise account: nothing granted, it is
    /// cancelled and refunded at Stripe.
    Refused {
        subscription: String,
    },
    Disputed {
        clawed: Credits,
    },
    DisputeWon {
        restored: Credits,
    },
    DisputeLost,
    CustomerForgotten,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::PackGranted { pack, credits } => write!(f, "granted pack {pack} ({credits} credits)"),
            Outcome::AwaitingPayment => f.write_str("awaiting an asynchronous payment"),
            Outcome::PaymentFailed => f.write_str("payment failed"),
            Outcome::SubscriptionLinked => f.write_str("subscription linked"),
            Outcome::PlanStarted { plan } => write!(f, "plan {plan} started"),
            Outcome::Renewed { plan } => write!(f, "plan {plan} renewed"),
            Outcome::Upgraded { plan } => write!(f, "upgraded to {plan}"),
            Outcome::PastDue => f.write_str("past_due; the account is mailed"),
            Outcome::SubscriptionRecorded { status } => write!(f, "subscription {}", status.as_str()),
            Outcome::PlanEndsAt(at) => write!(f, "ended; the plan lasts to {at}"),
            Outcome::OnFree => f.write_str("ended; the account is on Free"),
            Outcome::ClawedBack(c) => write!(f, "clawed back {c} credits"),
            Outcome::UpgradePaymentFailed => f.write_str("the upgrade's payment failed; the old plan stays"),
            Outcome::SessionExpired => f.write_str("checkout session expired"),
            Outcome::Refused { subscription } => {
                write!(f, "subscription {subscription} refused: granted nothing, cancelled and refunded")
            }
            Outcome::Disputed { clawed } => write!(f, "disputed: clawed back {clawed} credits; account restricted"),
            Outcome::DisputeWon { restored } => write!(f, "dispute won: {restored} credits restored"),
            Outcome::DisputeLost => f.write_str("dispute lost; the account stays restricted"),
            Outcome::CustomerForgotten => f.write_str("the Stripe customer is forgotten"),
        }
    }
}

/// What applying an event did, recorded beside it (for operators and logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Done(Outcome),
    Ignored(Ignored),
    /// This event id was applied before.
    Replay,
}

impl std::fmt::Display for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Applied::Done(o) => o.fmt(f),
            Applied::Ignored(i) => i.fmt(f),
            Applied::Replay => f.write_str("already applied"),
        }
    }
}

// ---- the effects the store writes --------------------------------------------------------------

/// A change to the account's plan state; `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlanChange {
    pub plan: Option<String>,
    pub status: Option<PlanStatus>,
    pub period: Option<Period>,
    pub pending_change: Option<Option<PendingChange>>,
    pub plan_ends_at: Option<Option<DateTime<Utc>>>,
    pub past_due_since: Option<Option<DateTime<Utc>>>,
}

/// A subscription's current period as Stripe reports it (either end may be missing).
pub type StripePeriod = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// A change to the subscription's record; `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubscriptionChange {
    pub status: Option<SubscriptionStatus>,
    pub price_id: Option<Option<String>>,
    pub item_id: Option<String>,
    pub cancel_at_period_end: Option<bool>,
    pub period: Option<StripePeriod>,
    pub last_event_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// R18: recorded as a second subscription of the account (the first one's id).
    pub duplicate_of: Option<String>,
}

/// The state of a checkout session of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    Open,
    Completed,
    Paid,
    Failed,
    Expired,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Open => "open",
            SessionStatus::Completed => "completed",
            SessionStatus::Paid => "paid",
            SessionStatus::Failed => "failed",
            SessionStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<SessionStatus> {
        [
            SessionStatus::Open,
            SessionStatus::Completed,
            SessionStatus::Paid,
            SessionStatus::Failed,
            SessionStatus::Expired,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// A call to Stripe a change decided, made by a worker after the commit (R18).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentJobKind {
    CancelSubscription,
    RefundInvoice,
}

impl PaymentJobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentJobKind::CancelSubscription => "cancel_subscription",
            PaymentJobKind::RefundInvoice => "refund_invoice",
        }
    }

    pub fn parse(s: &str) -> Option<PaymentJobKind> {
        [PaymentJobKind::CancelSubscription, PaymentJobKind::RefundInvoice].into_iter().find(|k| k.as_str() == s)
    }
}

/// What a payment bought, for refunds and disputes (R17, R19).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purchase {
    /// A pack, by its purchase record: bought through a checkout session or by an auto top-up's
    /// PaymentIntent (R22: refunded and disputed alike).
    Pack { id: uuid::Uuid },
    /// A subscription invoice's allowance (or an upgrade's growth).
    Invoice { invoice: String },
}

/// One write the store makes for an event, in order, in the event's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Keep this Stripe customer for the account, if it has none.
    SetCustomer(String),
    /// The account forgets its Stripe customer (deleted at Stripe): the next checkout makes one.
    ForgetCustomer(String),
    /// The account's subscription (linked, not yet started: R14 starts a plan with its first paid invoice).
    LinkSubscription {
        id: String,
        customer: String,
    },
    /// The event's checkout session.
    SessionStatus(SessionStatus),
    /// R4: a top-up bucket, recorded as the session's purchase.
    GrantPack {
        pack: String,
        credits: Credits,
        expires_at: DateTime<Utc>,
        payment_intent: Option<String>,
        amount: i64,
        currency: String,
    },
    /// R3: the account's live allowances end now (no rollover).
    EndAllowances,
    /// R3: the period's allowance, granted by the event's invoice, with what the plan sells it for
    /// (section 10: a plan's price over its monthly credits).
    GrantAllowance {
        credits: Credits,
        expires_at: DateTime<Utc>,
        reason: String,
        value: Option<UnitValue>,
    },
    /// R14: an upgrade grows the current allowance.
    GrowAllowance {
        bucket: BucketId,
        credits: Credits,
        reason: String,
    },
    /// The invoice is applied (at most once), with what it granted (the allowance this decision
    /// granted or grew, and its credits), for refunds and disputes.
    RecordInvoice {
        subscription: String,
        billing_reason: BillingReason,
        credits: Credits,
        amount_paid: i64,
    },
    Plan(PlanChange),
    Subscription(SubscriptionChange),
    /// R14: back on Free: allowance gone, top-ups and the lifetime remainder kept, no new grant.
    ToFree,
    /// R17, R19: credits taken back from a bucket.
    Clawback {
        bucket: BucketId,
        credits: Credits,
        reference: String,
        reason: String,
    },
    /// R17: what refunds of a purchase have taken, so each refund claws back once.
    RecordRefund {
        purchase: Purchase,
        refunded_amount: i64,
        clawed: Credits,
    },
    /// R19: the dispute, what it took from which bucket.
    RecordDispute {
        purchase: Purchase,
        bucket: BucketId,
        kind: BucketKind,
        expires_at: Option<DateTime<Utc>>,
        clawed: Credits,
    },
    CloseDispute(DisputeStatus),
    /// R19: a bucket like the one a dispute took from, with what it took and its expiry.
    RestoreBucket {
        kind: BucketKind,
        credits: Credits,
        expires_at: Option<DateTime<Utc>>,
        reason: String,
    },
    /// R19: the account is restricted because of this dispute.
    Restrict {
        reason: String,
    },
    /// R19: the restriction this dispute caused is lifted (others stay).
    LiftDisputeRestriction,
    /// R18: a call to Stripe, made by a worker after the commit.
    PaymentJob {
        kind: PaymentJobKind,
        subject: String,
    },
    Mail(Mail),
}

/// A decision: the effects to write, and what to record of the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub effects: Vec<Effect>,
    pub applied: Applied,
}

impl Decision {
    pub fn ignored(why: Ignored) -> Decision {
        Decision { effects: Vec::new(), applied: Applied::Ignored(why) }
    }

    fn done(outcome: Outcome, effects: Vec<Effect>) -> Decision {
        Decision { effects, applied: Applied::Done(outcome) }
    }
}

// ---- the facts the store loads under the account's lock ------------------------------------

/// What a pack session sold, as it kept it (R18): a pack is granted as sold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackSold {
    pub credits: Credits,
    pub expiry_days: u32,
    pub amount: i64,
}

/// A checkout session this service made, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: String,
    pub mode: SessionMode,
    /// The plan or pack sold.
    pub item: String,
    pub status: SessionStatus,
    /// `None` for sessions made before sessions kept what they sold.
    pub sold: Option<PackSold>,
    pub currency: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionFacts {
    pub account: Account,
    pub record: SessionRecord,
    /// Whether this session's pack was already granted.
    pub pack_granted: bool,
}

/// A subscription of the account, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRecord {
    pub id: String,
    pub status: SubscriptionStatus,
    pub item_id: Option<String>,
    pub cancel_at_period_end: bool,
    pub last_event_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// R18: a second subscription of the account, refused.
    pub duplicate_of: Option<String>,
}

/// The account's current allowance bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowanceBucket {
    pub id: BucketId,
    pub granted: Credits,
    pub remaining: Credits,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionFacts {
    pub account: Account,
    /// `None`: the account's subscription not seen before (events come in any order).
    pub subscription: Option<SubscriptionRecord>,
    pub customer: String,
    /// Whether any invoice of the subscription was applied (the plan has started).
    pub started: bool,
    /// Whether this event's invoice was already applied.
    pub invoice_applied: bool,
    pub allowance: Option<AllowanceBucket>,
    /// R18: another subscription of the account that has started and not ended.
    pub other_live: Option<String>,
}

/// What a payment bought, for its refunds and disputes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseFacts {
    pub account: Account,
    pub purchase: Purchase,
    /// The bucket its credits went to (none: it granted nothing).
    pub bucket: Option<BucketId>,
    pub kind: BucketKind,
    pub expires_at: Option<DateTime<Utc>>,
    /// The credits the payment bought.
    pub bought: Credits,
    /// What earlier refunds and disputes took.
    pub clawed: Credits,
    /// What is left of the bucket to take (unexpired, not held).
    pub left: Credits,
    /// Whether a dispute of this payment was already applied.
    pub disputed: bool,
}

/// A dispute as recorded, for its close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeFacts {
    pub account: Account,
    pub status: DisputeStatus,
    pub kind: Option<BucketKind>,
    pub expires_at: Option<DateTime<Utc>>,
    pub clawed: Credits,
}

// ---- the decisions ------------------------------------------------------------------------

/// `checkout.session.completed`.
pub fn decide_session_completed(
    catalog: &Catalog,
    facts: Option<&SessionFacts>,
    s: &SessionInfo,
    now: DateTime<Utc>,
) -> Result<Decision, Unapplicable> {
    let Some(facts) = facts else { return Ok(Decision::ignored(Ignored::NotOurs)) };
    let mut effects: Vec<Effect> = s.customer.iter().map(|c| Effect::SetCustomer(c.clone())).collect();
    Ok(match facts.record.mode {
        SessionMode::Subscription => {
            let (Some(sub), Some(customer)) = (&s.subscription, &s.customer) else {
                return Ok(Decision::ignored(Ignored::NothingToDo("a subscription session without its subscription")));
            };
            effects.push(Effect::LinkSubscription { id: sub.clone(), customer: customer.clone() });
            effects.push(Effect::SessionStatus(SessionStatus::Completed));
            // R14: the plan starts when the first invoice is paid, not here.
            Decision::done(Outcome::SubscriptionLinked, effects)
        }
        SessionMode::Payment if s.paid => {
            let mut pack = decide_pack(catalog, facts, s, now)?;
            effects.append(&mut pack.effects);
            Decision { effects, applied: pack.applied }
        }
        SessionMode::Payment => {
            effects.push(Effect::SessionStatus(SessionStatus::Completed));
            Decision::done(Outcome::AwaitingPayment, effects)
        }
    })
}

/// `checkout.session.async_payment_succeeded`.
pub fn decide_session_paid(
    catalog: &Catalog,
    facts: Option<&SessionFacts>,
    s: &SessionInfo,
    now: DateTime<Utc>,
) -> Result<Decision, Unapplicable> {
    match facts {
        Some(f) if f.record.mode == SessionMode::Payment => decide_pack(catalog, f, s, now),
        Some(_) => Ok(Decision::ignored(Ignored::NothingToDo("not a pack"))),
        None => Ok(Decision::ignored(Ignored::NotOurs)),
    }
}

/// `checkout.session.async_payment_failed`.
pub fn decide_session_failed(facts: Option<&SessionFacts>) -> Decision {
    match facts {
        Some(f) if f.record.status != SessionStatus::Paid => {
            Decision::done(Outcome::PaymentFailed, vec![Effect::SessionStatus(SessionStatus::Failed)])
        }
        Some(_) => Decision::ignored(Ignored::AlreadyApplied),
        None => Decision::ignored(Ignored::NotOurs),
    }
}

/// `checkout.session.expired`: the session is closed; the next checkout makes a new one.
pub fn decide_session_expired(facts: Option<&SessionFacts>) -> Decision {
    match facts {
        Some(f) if f.record.status == SessionStatus::Open => {
            Decision::done(Outcome::SessionExpired, vec![Effect::SessionStatus(SessionStatus::Expired)])
        }
        Some(_) => Decision::ignored(Ignored::AlreadyApplied),
        None => Decision::ignored(Ignored::NotOurs),
    }
}

/// R4, R18: one paid session grants its pack once, as it was sold, expiring `expiry_days` after
/// payment.
fn decide_pack(
    catalog: &Catalog,
    facts: &SessionFacts,
    s: &SessionInfo,
    now: DateTime<Utc>,
) -> Result<Decision, Unapplicable> {
    if facts.pack_granted {
        return Ok(Decision::ignored(Ignored::AlreadyApplied));
    }
    let item = &facts.record.item;
    let (sold, currency) = match (facts.record.sold, catalog.pack(item)) {
        (Some(sold), pack) => {
            let currency = facts.record.currency.clone().or_else(|| pack.map(|p| p.price.currency.clone()));
            (sold, currency)
        }
        (None, Some(pack)) => (
            PackSold { credits: pack.credits, expiry_days: pack.expiry_days, amount: pack.price.amount },
            Some(pack.price.currency.clone()),
        ),
        (None, None) => return Err(Unapplicable::UnknownPack(item.clone())),
    };
    Ok(Decision::done(
        Outcome::PackGranted { pack: item.clone(), credits: sold.credits },
        vec![
            Effect::GrantPack {
                pack: item.clone(),
                credits: sold.credits,
                expires_at: now + chrono::Duration::days(i64::from(sold.expiry_days)),
                payment_intent: s.payment_intent.clone(),
                amount: s.amount_total.unwrap_or(sold.amount),
                currency: s.currency.clone().or(currency).unwrap_or_else(|| "usd".into()),
            },
            Effect::SessionStatus(SessionStatus::Paid),
        ],
    ))
}

/// The subscription's record, or the link that makes it (events come in any order).
fn link(facts: &SubscriptionFacts, id: &str) -> Vec<Effect> {
    if facts.subscription.is_none() {
        vec![Effect::LinkSubscription { id: id.to_string(), customer: facts.customer.clone() }]
    } else {
        Vec::new()
    }
}

/// Section 10: a plan's allowance is worth its price over its monthly credits.
fn plan_value(plan: &Plan) -> Option<UnitValue> {
    let price = plan.price.as_ref()?;
    let credits = plan.monthly_credits?.get();
    (credits > 0).then(|| UnitValue { amount: price.amount, credits, currency: price.currency.clone() })
}

fn is_enterprise(account: &Account) -> bool {
    account.plan == crate::catalog::ENTERPRISE_PLAN && account.contract.is_some()
}

/// R18: a subscription that must not be granted anything is recorded, cancelled and its invoice
/// refunded at Stripe.
fn refuse(facts: &SubscriptionFacts, sub_id: &str, inv: &InvoiceInfo) -> Decision {
    let mut effects = link(facts, sub_id);
    if let Some(first) = &facts.other_live {
        effects.push(Effect::Subscription(SubscriptionChange {
            duplicate_of: Some(first.clone()),
            ..SubscriptionChange::default()
        }));
    }
    effects.push(Effect::RecordInvoice {
        subscription: sub_id.to_string(),
        billing_reason: inv.billing_reason,
        credits: Credits::ZERO,
        amount_paid: inv.amount_paid,
    });
    effects.push(Effect::PaymentJob { kind: PaymentJobKind::CancelSubscription, subject: sub_id.to_string() });
    effects.push(Effect::PaymentJob { kind: PaymentJobKind::RefundInvoice, subject: inv.id.clone() });
    Decision::done(Outcome::Refused { subscription: sub_id.to_string() }, effects)
}

/// `invoice.paid`: a plan starts (R14) or renews (R3), or an upgrade is confirmed (R14); late,
/// repeated and stray invoices change nothing (section 5); a second subscription, or one of an
/// Enterprise account, is refused (R18).
pub fn decide_invoice_paid(
    catalog: &Catalog,
    facts: &SubscriptionFacts,
    inv: &InvoiceInfo,
    sub_id: &str,
    created: DateTime<Utc>,
) -> Result<Decision, Unapplicable> {
    if facts.invoice_applied {
        return Ok(Decision::ignored(Ignored::AlreadyApplied));
    }
    if facts.subscription.as_ref().is_some_and(|r| r.ended_at.is_some()) {
        return Ok(Decision::ignored(Ignored::Ended));
    }
    if inv.billing_reason == BillingReason::Other {
        return Ok(Decision::ignored(Ignored::NothingToDo("not a subscription period invoice")));
    }
    let Some(line) = inv.plan_line() else { return Ok(Decision::ignored(Ignored::NothingToDo("no priced line"))) };
    let price = line.price_id.clone().unwrap_or_default();
    let plan = plan_for_price(catalog, &price).ok_or(Unapplicable::UnknownPrice(price))?;
    let duplicate = facts.subscription.as_ref().is_some_and(|r| r.duplicate_of.is_some());
    if duplicate || is_enterprise(&facts.account) || facts.other_live.is_some() {
        return Ok(refuse(facts, sub_id, inv));
    }
    let mut effects = link(facts, sub_id);
    let cancelling = facts.subscription.as_ref().is_some_and(|s| s.cancel_at_period_end);
    let account = &facts.account;
    let (outcome, credits) = match inv.billing_reason {
        BillingReason::Create | BillingReason::Cycle => {
            // Section 5: an invoice for a period that ends before the account's current one is late.
            if facts.started && account.period.is_some_and(|p| line.period_end < p.end) {
                return Ok(Decision::ignored(Ignored::NothingToDo("a period before the current one")));
            }
            effects.push(Effect::EndAllowances);
            let monthly = plan.monthly_credits.unwrap_or(Credits::ZERO);
            if monthly.is_positive() {
                effects.push(Effect::GrantAllowance {
                    credits: monthly,
                    expires_at: line.period_end,
                    reason: format!("{} allowance", plan.name),
                    value: plan_value(plan),
                });
            }
            effects.push(Effect::Plan(PlanChange {
                plan: Some(plan.id.clone()),
                status: Some(if cancelling { PlanStatus::Canceling } else { PlanStatus::Active }),
                period: Some(Period { start: line.period_start, end: line.period_end }),
                pending_change: Some(cancelling.then_some(PendingChange::Cancel)),
                plan_ends_at: Some(None),
                past_due_since: Some(None),
            }));
            effects.push(Effect::Subscription(SubscriptionChange {
                status: Some(SubscriptionStatus::Active),
                price_id: Some(line.price_id.clone()),
                period: Some((Some(line.period_start), Some(line.period_end))),
                ..SubscriptionChange::default()
            }));
            let outcome = if facts.started {
                Outcome::Renewed { plan: plan.id.clone() }
            } else {
                Outcome::PlanStarted { plan: plan.id.clone() }
            };
            (outcome, monthly)
        }
        _ => {
            // R14: the upgrade's proration invoice, paid: it confirms the upgrade, unless the
            // subscription update did first.
            if is_upgrade(catalog, account, plan) {
                let (mut upgrade, grown) = upgrade(catalog, facts, plan, created);
                effects.append(&mut upgrade);
                (Outcome::Upgraded { plan: plan.id.clone() }, grown)
            } else {
                (Outcome::Upgraded { plan: plan.id.clone() }, Credits::ZERO)
            }
        }
    };
    effects.push(Effect::RecordInvoice {
        subscription: sub_id.to_string(),
        billing_reason: inv.billing_reason,
        credits,
        amount_paid: inv.amount_paid,
    });
    Ok(Decision::done(outcome, effects))
}

/// R14: the allowance grows by the new plan's monthly credits less the old plan's, times the
/// share of the period still to run at `at` (when Stripe confirmed the change); the plan changes,
/// and a pending downgrade or cancellation is gone.
fn upgrade(catalog: &Catalog, facts: &SubscriptionFacts, plan: &Plan, at: DateTime<Utc>) -> (Vec<Effect>, Credits) {
    let account = &facts.account;
    let old = account.plan(catalog).monthly_credits.unwrap_or(Credits::ZERO);
    let new = plan.monthly_credits.unwrap_or(Credits::ZERO);
    let grown = match account.period {
        Some(period) => upgrade_growth(old, new, period, at),
        None => Credits::ZERO,
    };
    let mut effects = Vec::new();
    if grown.is_positive() {
        let reason = format!("upgrade to {}", plan.name);
        match (facts.allowance, account.period) {
            (Some(bucket), _) => effects.push(Effect::GrowAllowance { bucket: bucket.id, credits: grown, reason }),
            (None, Some(period)) => effects.push(Effect::GrantAllowance {
                credits: grown,
                expires_at: period.end,
                reason,
                value: plan_value(plan),
            }),
            (None, None) => {}
        }
    }
    effects.push(Effect::Plan(PlanChange {
        plan: Some(plan.id.clone()),
        status: Some(PlanStatus::Active),
        pending_change: Some(None),
        ..PlanChange::default()
    }));
    (effects, grown)
}

/// `invoice.payment_failed`: R14. A renewal leaves the account past_due with no new allowance
/// and mails it the invoice to pay; an upgrade's failed proration invoice changes nothing but a
/// mail; an invoice already paid, or of an ended or refused subscription, changes nothing.
pub fn decide_invoice_failed(
    catalog: &Catalog,
    facts: &SubscriptionFacts,
    inv: &InvoiceInfo,
    sub_id: &str,
    created: DateTime<Utc>,
) -> Decision {
    if facts.invoice_applied {
        return Decision::ignored(Ignored::AlreadyApplied);
    }
    let record = facts.subscription.as_ref();
    if record.is_some_and(|r| r.ended_at.is_some()) {
        return Decision::ignored(Ignored::Ended);
    }
    if record.is_some_and(|r| r.duplicate_of.is_some()) || is_enterprise(&facts.account) {
        return Decision::ignored(Ignored::NothingToDo("a subscription this account is not billed by"));
    }
    let a = &facts.account;
    let pay_url = inv.hosted_invoice_url.clone().unwrap_or_default();
    if inv.billing_reason == BillingReason::Update {
        let plan = inv
            .plan_line()
            .and_then(|l| l.price_id.as_deref())
            .and_then(|p| plan_for_price(catalog, p))
            .map(|p| p.id.clone())
            .unwrap_or_else(|| "new".into());
        let mail = Mail::new(MailKind::UpgradePaymentFailed, &a.email, Some(a.id), &inv.id)
            .fact("invoice", inv.id.clone())
            .fact("plan", plan)
            .fact("name", a.name.clone())
            .fact("pay_url", pay_url);
        return Decision::done(Outcome::UpgradePaymentFailed, vec![Effect::Mail(mail)]);
    }
    let mut effects = link(facts, sub_id);
    effects.push(Effect::Subscription(SubscriptionChange {
        status: Some(SubscriptionStatus::PastDue),
        ..SubscriptionChange::default()
    }));
    if facts.started {
        effects.push(Effect::Plan(PlanChange {
            status: Some(PlanStatus::PastDue),
            past_due_since: Some(Some(a.past_due_since.unwrap_or(created))),
            ..PlanChange::default()
        }));
        effects.push(Effect::Mail(
            Mail::new(MailKind::PaymentFailed, &a.email, Some(a.id), &inv.id)
                .fact("invoice", inv.id.clone())
                .fact("plan", a.plan.clone())
                .fact("name", a.name.clone())
                .fact("pay_url", pay_url),
        ));
    }
    Decision::done(Outcome::PastDue, effects)
}

/// `customer.subscription.created` / `.updated`: R14's price changes, cancellations, statuses,
/// never rolled back by an older or a same-time event (section 5).
pub fn decide_subscription_updated(
    catalog: &Catalog,
    facts: &SubscriptionFacts,
    s: &SubscriptionInfo,
    created: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Decision, Unapplicable> {
    let mut effects = link(facts, &s.id);
    if let Some(record) = &facts.subscription {
        if is_stale(record.last_event_at, created) {
            return Ok(Decision::ignored(Ignored::Stale));
        }
        if record.ended_at.is_some() {
            return Ok(Decision::ignored(Ignored::Ended));
        }
        // Stripe never takes a subscription back to incomplete: such an event is older news.
        if s.status == SubscriptionStatus::Incomplete && record.status != SubscriptionStatus::Incomplete {
            return Ok(Decision::ignored(Ignored::Stale));
        }
    }
    let plan = match s.price_id.as_deref() {
        Some(price) => Some(plan_for_price(catalog, price).ok_or_else(|| Unapplicable::UnknownPrice(price.into()))?),
        None => None,
    };
    effects.push(Effect::Subscription(SubscriptionChange {
        status: Some(s.status),
        price_id: Some(s.price_id.clone()),
        item_id: s.item_id.clone(),
        cancel_at_period_end: Some(s.cancel_at_period_end),
        period: Some((s.period_start, s.period_end)),
        last_event_at: Some(created),
        ..SubscriptionChange::default()
    }));
    let refused = facts.subscription.as_ref().is_some_and(|r| r.duplicate_of.is_some());
    if s.status == SubscriptionStatus::Canceled {
        if refused {
            effects.push(Effect::Subscription(SubscriptionChange { ended_at: Some(now), ..Default::default() }));
            return Ok(Decision::done(Outcome::SubscriptionRecorded { status: s.status }, effects));
        }
        let ended = decide_end(catalog, &facts.account, now);
        effects.extend(ended.effects);
        return Ok(Decision { effects, applied: ended.applied });
    }
    // Before the first paid invoice the plan has not started (R14); a refused subscription, or
    // one of an Enterprise account, bills nothing here.
    if !facts.started || refused || is_enterprise(&facts.account) {
        return Ok(Decision::done(Outcome::SubscriptionRecorded { status: s.status }, effects));
    }
    let account = &facts.account;
    // A pending downgrade is replaced by what the subscription says now; a cancellation stays
    // until the subscription says otherwise.
    let mut pending = account.pending_change.clone().filter(|p| *p == PendingChange::Cancel);
    let mut outcome = Outcome::SubscriptionRecorded { status: s.status };
    let mut plan_change = PlanChange::default();
    if let Some(plan) = plan {
        if is_upgrade(catalog, account, plan) {
            // R14: only once Stripe applied it: active, with no pending update.
            if s.status == SubscriptionStatus::Active && !s.pending_update {
                let (mut upgrade, _) = upgrade(catalog, facts, plan, created);
                effects.append(&mut upgrade);
                outcome = Outcome::Upgraded { plan: plan.id.clone() };
                pending = None;
            }
        } else if plan.id != account.plan {
            pending = Some(PendingChange::Plan(plan.id.clone()));
        }
    }
    let status = if s.cancel_at_period_end {
        pending = Some(PendingChange::Cancel);
        PlanStatus::Canceling
    } else {
        if pending == Some(PendingChange::Cancel) {
            pending = None;
        }
        match s.status {
            SubscriptionStatus::PastDue => {
                plan_change.past_due_since = Some(Some(account.past_due_since.unwrap_or(created)));
                PlanStatus::PastDue
            }
            SubscriptionStatus::Unpaid => {
                plan_change.past_due_since = Some(Some(account.past_due_since.unwrap_or(created)));
                PlanStatus::Unpaid
            }
            _ => {
                plan_change.past_due_since = Some(None);
                PlanStatus::Active
            }
        }
    };
    plan_change.status = Some(status);
    plan_change.pending_change = Some(pending);
    effects.push(Effect::Plan(plan_change));
    Ok(Decision::done(outcome, effects))
}

/// `customer.subscription.deleted`.
pub fn decide_subscription_deleted(
    catalog: &Catalog,
    facts: &SubscriptionFacts,
    s: &SubscriptionInfo,
    created: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Decision {
    if facts.subscription.as_ref().is_some_and(|r| r.ended_at.is_some()) {
        return Decision::ignored(Ignored::Ended);
    }
    let mut effects = link(facts, &s.id);
    effects.push(Effect::Subscription(SubscriptionChange {
        status: Some(SubscriptionStatus::Canceled),
        last_event_at: Some(created),
        ..SubscriptionChange::default()
    }));
    let refused = facts.subscription.as_ref().is_some_and(|r| r.duplicate_of.is_some());
    if refused || !facts.started {
        effects.push(Effect::Subscription(SubscriptionChange { ended_at: Some(now), ..Default::default() }));
        return Decision::done(Outcome::SubscriptionRecorded { status: SubscriptionStatus::Canceled }, effects);
    }
    let ended = decide_end(catalog, &facts.account, now);
    effects.extend(ended.effects);
    Decision { effects, applied: ended.applied }
}

/// R14: the plan is kept to the end of the paid period, then the account is on Free.
fn decide_end(catalog: &Catalog, account: &Account, now: DateTime<Utc>) -> Decision {
    let mut effects =
        vec![Effect::Subscription(SubscriptionChange { ended_at: Some(now), ..SubscriptionChange::default() })];
    match plan_end(catalog, account, now) {
        PlanEnd::NotBought => Decision {
            effects,
            applied: Applied::Ignored(Ignored::NothingToDo("the account was on no plan it bought")),
        },
        PlanEnd::At(end) => {
            effects.push(Effect::Plan(PlanChange {
                status: Some(PlanStatus::Canceling),
                pending_change: Some(Some(PendingChange::Cancel)),
                plan_ends_at: Some(Some(end)),
                ..PlanChange::default()
            }));
            Decision::done(Outcome::PlanEndsAt(end), effects)
        }
        PlanEnd::Now => {
            effects.push(Effect::ToFree);
            Decision::done(Outcome::OnFree, effects)
        }
    }
}

/// `charge.refunded` (R17): the refunded share of what the payment bought (a pack, or a
/// subscription invoice's allowance), at most what is left, once per refunded amount.
pub fn decide_refund(facts: Option<&PurchaseFacts>, c: &ChargeInfo) -> Decision {
    let Some(p) = facts else { return Decision::ignored(Ignored::NotOurs) };
    let take = match p.bucket {
        Some(_) => refund_share(p.bought, c.amount, c.amount_refunded, p.clawed, p.left),
        None => Credits::ZERO,
    };
    let mut effects = Vec::new();
    if let (Some(bucket), true) = (p.bucket, take.is_positive()) {
        let reason = match p.purchase {
            Purchase::Pack { .. } => "top-up refunded",
            Purchase::Invoice { .. } => "subscription invoice refunded",
        };
        effects.push(Effect::Clawback {
            bucket,
            credits: take,
            reference: format!("refund:{}", c.id),
            reason: reason.into(),
        });
    }
    effects.push(Effect::RecordRefund {
        purchase: p.purchase.clone(),
        refunded_amount: c.amount_refunded,
        clawed: take,
    });
    Decision::done(Outcome::ClawedBack(take), effects)
}

/// `charge.dispute.created` (R19): what is left of what the payment bought is clawed back and
/// the account is restricted.
pub fn decide_dispute_created(facts: Option<&PurchaseFacts>, d: &DisputeInfo) -> Decision {
    let Some(p) = facts else { return Decision::ignored(Ignored::NotOurs) };
    if p.disputed {
        return Decision::ignored(Ignored::AlreadyApplied);
    }
    let mut effects = Vec::new();
    let mut take = Credits::ZERO;
    if let Some(bucket) = p.bucket {
        take = Credits::new((p.bought.get() - p.clawed.get()).clamp(0, p.left.get().max(0)));
        if take.is_positive() {
            effects.push(Effect::Clawback {
                bucket,
                credits: take,
                reference: format!("dispute:{}", d.id),
                reason: "payment disputed".into(),
            });
        }
        effects.push(Effect::RecordDispute {
            purchase: p.purchase.clone(),
            bucket,
            kind: p.kind,
            expires_at: p.expires_at,
            clawed: take,
        });
    }
    effects.push(Effect::Restrict { reason: format!("payment disputed ({})", d.id) });
    Decision::done(Outcome::Disputed { clawed: take }, effects)
}

/// `charge.dispute.closed` (R19): won gives the credits back with their original expiry and
/// lifts the restriction the dispute caused; lost keeps the account restricted.
pub fn decide_dispute_closed(facts: Option<&DisputeFacts>, d: &DisputeInfo) -> Decision {
    let Some(f) = facts else { return Decision::ignored(Ignored::NotOurs) };
    if f.status != DisputeStatus::Open {
        return Decision::ignored(Ignored::AlreadyApplied);
    }
    match d.status {
        DisputeStatus::Won => {
            let mut effects = vec![Effect::CloseDispute(DisputeStatus::Won)];
            if let (Some(kind), true) = (f.kind, f.clawed.is_positive()) {
                effects.push(Effect::RestoreBucket {
                    kind,
                    credits: f.clawed,
                    expires_at: f.expires_at,
                    reason: format!("dispute {} won", d.id),
                });
            }
            effects.push(Effect::LiftDisputeRestriction);
            Decision::done(Outcome::DisputeWon { restored: f.clawed }, effects)
        }
        DisputeStatus::Lost => Decision::done(Outcome::DisputeLost, vec![Effect::CloseDispute(DisputeStatus::Lost)]),
        DisputeStatus::Open => Decision::ignored(Ignored::NothingToDo("the dispute is still open")),
    }
}

/// `customer.deleted`: the account forgets its Stripe customer; the next checkout makes one.
pub fn decide_customer_deleted(account: Option<&Account>, customer: &str) -> Decision {
    match account {
        Some(_) => Decision::done(Outcome::CustomerForgotten, vec![Effect::ForgetCustomer(customer.to_string())]),
        None => Decision::ignored(Ignored::NotOurs),
    }
}
