//! What each Stripe event means (SPEC section 5, R3, R4, R14, R17): one pure `decide_*` per event
//! kind, from the facts the store loaded under the account's lock to the effects it writes, all
//! in the event's one transaction. The store decides nothing; these decide everything.

use chrono::{DateTime, Utc};

use super::subscription::{
    PendingChange, PlanEnd, SubscriptionStatus, is_stale, is_upgrade, plan_end, plan_for_price, refund_share,
};
use crate::account::{Account, Period, PlanStatus};
use crate::catalog::{Catalog, Plan};
use crate::credits::Credits;
use crate::ids::BucketId;
use crate::mail::{Mail, MailKind};

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
    PackGranted { pack: String, credits: Credits },
    AwaitingPayment,
    PaymentFailed,
    SubscriptionLinked,
    PlanStarted { plan: String },
    Renewed { plan: String },
    Upgraded { plan: String },
    PastDue,
    SubscriptionRecorded { status: SubscriptionStatus },
    PlanEndsAt(DateTime<Utc>),
    OnFree,
    ClawedBack(Credits),
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

/// One write the store makes for an event, in order, in the event's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Keep this Stripe customer for the account, if it has none.
    SetCustomer(String),
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
    /// R3: the period's allowance, granted by the event's invoice.
    GrantAllowance {
        credits: Credits,
        expires_at: DateTime<Utc>,
        reason: String,
    },
    /// R14: an upgrade grows the current allowance.
    GrowAllowance {
        bucket: BucketId,
        credits: Credits,
        reason: String,
    },
    /// The invoice is applied (at most once): with the allowance this decision granted, if any.
    RecordInvoice {
        subscription: String,
        billing_reason: BillingReason,
    },
    Plan(PlanChange),
    Subscription(SubscriptionChange),
    /// R14: back on Free: allowance gone, top-ups and the lifetime remainder kept, no new grant.
    ToFree,
    /// R17: credits taken back from a bucket.
    Clawback {
        bucket: BucketId,
        credits: Credits,
        reference: String,
        reason: String,
    },
    /// R17: what a refund of a pack has taken, so each refund claws back once.
    RecordRefund {
        refunded_amount: i64,
        clawed: Credits,
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

/// A checkout session this service made, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: String,
    pub mode: SessionMode,
    /// The plan or pack sold.
    pub item: String,
    pub status: SessionStatus,
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
}

/// What a refunded charge paid for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseFacts {
    pub account: Account,
    pub bucket: BucketId,
    /// The credits the payment bought.
    pub bought: Credits,
    /// What earlier refunds took.
    pub clawed: Credits,
    /// What is left of them to take (unexpired, not held).
    pub left: Credits,
}

// ---- the decisions ------------------------------------------------------------------------

/// `checkout.session.completed`.
pub fn decide_session_completed(
    catalog: &Catalog,
    facts: Option<&SessionFacts>,
    s: &SessionInfo,
    now: DateTime<Utc>,
) -> Decision {
    let Some(facts) = facts else { return Decision::ignored(Ignored::NotOurs) };
    let mut effects: Vec<Effect> = s.customer.iter().map(|c| Effect::SetCustomer(c.clone())).collect();
    match facts.record.mode {
        SessionMode::Subscription => {
            let (Some(sub), Some(customer)) = (&s.subscription, &s.customer) else {
                return Decision::ignored(Ignored::NothingToDo("a subscription session without its subscription"));
            };
            effects.push(Effect::LinkSubscription { id: sub.clone(), customer: customer.clone() });
            effects.push(Effect::SessionStatus(SessionStatus::Completed));
            // R14: the plan starts when the first invoice is paid, not here.
            Decision::done(Outcome::SubscriptionLinked, effects)
        }
        SessionMode::Payment if s.paid => {
            let mut pack = decide_pack(catalog, facts, s, now);
            effects.append(&mut pack.effects);
            Decision { effects, applied: pack.applied }
        }
        SessionMode::Payment => {
            effects.push(Effect::SessionStatus(SessionStatus::Completed));
            Decision::done(Outcome::AwaitingPayment, effects)
        }
    }
}

/// `checkout.session.async_payment_succeeded`.
pub fn decide_session_paid(
    catalog: &Catalog,
    facts: Option<&SessionFacts>,
    s: &SessionInfo,
    now: DateTime<Utc>,
) -> Decision {
    match facts {
        Some(f) if f.record.mode == SessionMode::Payment => decide_pack(catalog, f, s, now),
        Some(_) => Decision::ignored(Ignored::NothingToDo("not a pack")),
        None => Decision::ignored(Ignored::NotOurs),
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

/// R4: one paid session grants its pack once, expiring `expiry_days` after payment.
fn decide_pack(catalog: &Catalog, facts: &SessionFacts, s: &SessionInfo, now: DateTime<Utc>) -> Decision {
    if facts.pack_granted {
        return Decision::ignored(Ignored::AlreadyApplied);
    }
    let Some(pack) = catalog.pack(&facts.record.item) else {
        return Decision::ignored(Ignored::NothingToDo("the pack is not in the catalog"));
    };
    Decision::done(
        Outcome::PackGranted { pack: pack.id.clone(), credits: pack.credits },
        vec![
            Effect::GrantPack {
                pack: pack.id.clone(),
                credits: pack.credits,
                expires_at: now + chrono::Duration::days(i64::from(pack.expiry_days)),
                payment_intent: s.payment_intent.clone(),
                amount: s.amount_total.unwrap_or(pack.price.amount),
                currency: s.currency.clone().unwrap_or_else(|| pack.price.currency.clone()),
            },
            Effect::SessionStatus(SessionStatus::Paid),
        ],
    )
}

/// The subscription's record, or the link that makes it (events come in any order).
fn link(facts: &SubscriptionFacts, id: &str) -> Vec<Effect> {
    if facts.subscription.is_none() {
        vec![Effect::LinkSubscription { id: id.to_string(), customer: facts.customer.clone() }]
    } else {
        Vec::new()
    }
}

/// `invoice.paid`: a plan starts (R14) or renews (R3), or an upgrade is confirmed (R14).
pub fn decide_invoice_paid(
    catalog: &Catalog,
    facts: &SubscriptionFacts,
    inv: &InvoiceInfo,
    sub_id: &str,
    now: DateTime<Utc>,
) -> Decision {
    if facts.invoice_applied {
        return Decision::ignored(Ignored::AlreadyApplied);
    }
    let Some(line) = inv.plan_line() else { return Decision::ignored(Ignored::NothingToDo("no priced line")) };
    let Some(plan) = line.price_id.as_deref().and_then(|p| plan_for_price(catalog, p)) else {
        return Decision::ignored(Ignored::NothingToDo("a price that sells no plan"));
    };
    let mut effects = link(facts, sub_id);
    let cancelling = facts.subscription.as_ref().is_some_and(|s| s.cancel_at_period_end);
    let outcome = match inv.billing_reason {
        BillingReason::Create | BillingReason::Cycle => {
            effects.push(Effect::EndAllowances);
            let monthly = plan.monthly_credits.unwrap_or(Credits::ZERO);
            if monthly.is_positive() {
                effects.push(Effect::GrantAllowance {
                    credits: monthly,
                    expires_at: line.period_end,
                    reason: format!("{} allowance", plan.name),
                });
            }
            effects.push(Effect::Plan(PlanChange {
                plan: Some(plan.id.clone()),
                status: Some(if cancelling { PlanStatus::Canceling } else { PlanStatus::Active }),
                period: Some(Period { start: line.period_start, end: line.period_end }),
                pending_change: Some(cancelling.then_some(PendingChange::Cancel)),
                plan_ends_at: Some(None),
            }));
            effects.push(Effect::Subscription(SubscriptionChange {
                status: Some(SubscriptionStatus::Active),
                price_id: Some(line.price_id.clone()),
                period: Some((Some(line.period_start), Some(line.period_end))),
                ..SubscriptionChange::default()
            }));
            if facts.started {
                Outcome::Renewed { plan: plan.id.clone() }
            } else {
                Outcome::PlanStarted { plan: plan.id.clone() }
            }
        }
        BillingReason::Update => {
            if is_upgrade(catalog, &facts.account, plan) {
                effects.extend(upgrade(facts, plan, now));
            }
            Outcome::Upgraded { plan: plan.id.clone() }
        }
        BillingReason::Other => return Decision::ignored(Ignored::NothingToDo("not a subscription period invoice")),
    };
    effects.push(Effect::RecordInvoice { subscription: sub_id.to_string(), billing_reason: inv.billing_reason });
    Decision::done(outcome, effects)
}

/// R14: the period's allowance becomes the new plan's allowance less what was charged to it.
fn upgrade(facts: &SubscriptionFacts, plan: &Plan, _at: DateTime<Utc>) -> Vec<Effect> {
    let mut effects = Vec::new();
    if let Some(bucket) = facts.allowance {
        let monthly = plan.monthly_credits.unwrap_or(Credits::ZERO);
        let used = (bucket.granted.get() - bucket.remaining.get()).max(0);
        let target = (monthly.get() - used).max(0);
        let more = Credits::new((target - bucket.remaining.get()).max(0));
        if more.is_positive() {
            effects.push(Effect::GrowAllowance {
                bucket: bucket.id,
                credits: more,
                reason: format!("upgrade to {}", plan.name),
            });
        }
    }
    effects.push(Effect::Plan(PlanChange {
        plan: Some(plan.id.clone()),
        pending_change: Some(None),
        ..PlanChange::default()
    }));
    effects
}

/// `invoice.payment_failed`: R14, past_due with no new allowance, and the account mailed.
pub fn decide_invoice_failed(facts: &SubscriptionFacts, inv: &InvoiceInfo, sub_id: &str) -> Decision {
    let mut effects = link(facts, sub_id);
    effects.push(Effect::Subscription(SubscriptionChange {
        status: Some(SubscriptionStatus::PastDue),
        ..SubscriptionChange::default()
    }));
    effects.push(Effect::Plan(PlanChange { status: Some(PlanStatus::PastDue), ..PlanChange::default() }));
    let a = &facts.account;
    effects.push(Effect::Mail(
        Mail::new(MailKind::PaymentFailed, &a.email, Some(a.id), &inv.id)
            .fact("invoice", inv.id.clone())
            .fact("plan", a.plan.clone())
            .fact("name", a.name.clone())
            .fact("pay_url", inv.hosted_invoice_url.clone().unwrap_or_default()),
    ));
    Decision::done(Outcome::PastDue, effects)
}

/// `customer.subscription.created` / `.updated`: R14's price changes, cancellations, statuses.
pub fn decide_subscription_updated(
    catalog: &Catalog,
    facts: &SubscriptionFacts,
    s: &SubscriptionInfo,
    created: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Decision {
    let mut effects = link(facts, &s.id);
    if let Some(record) = &facts.subscription {
        if is_stale(record.last_event_at, created) {
            return Decision::ignored(Ignored::Stale);
        }
        if record.ended_at.is_some() {
            return Decision::ignored(Ignored::Ended);
        }
    }
    effects.push(Effect::Subscription(SubscriptionChange {
        status: Some(s.status),
        price_id: Some(s.price_id.clone()),
        item_id: s.item_id.clone(),
        cancel_at_period_end: Some(s.cancel_at_period_end),
        period: Some((s.period_start, s.period_end)),
        last_event_at: Some(created),
        ..SubscriptionChange::default()
    }));
    if s.status == SubscriptionStatus::Canceled {
        let ended = decide_end(catalog, &facts.account, now);
        effects.extend(ended.effects);
        return Decision { effects, applied: ended.applied };
    }
    // Before the first paid invoice the plan has not started (R14): nothing more to do.
    if !facts.started {
        return Decision::done(Outcome::SubscriptionRecorded { status: s.status }, effects);
    }
    let account = &facts.account;
    // A pending downgrade is replaced by what the subscription says now; a cancellation stays
    // until the subscription says otherwise.
    let mut pending = account.pending_change.clone().filter(|p| *p == PendingChange::Cancel);
    let mut outcome = Outcome::SubscriptionRecorded { status: s.status };
    if let Some(plan) = s.price_id.as_deref().and_then(|p| plan_for_price(catalog, p)) {
        if is_upgrade(catalog, account, plan) {
            effects.extend(upgrade(facts, plan, created));
            outcome = Outcome::Upgraded { plan: plan.id.clone() };
        } else if plan.id != account.plan {
            pending = Some(PendingChange::Plan(plan.id.clone()));
        }
    }
    let status = if s.cancel_at_period_end {
        pending = Some(PendingChange::Cancel);
        PlanStatus::Canceling
    } else if matches!(s.status, SubscriptionStatus::PastDue | SubscriptionStatus::Unpaid) {
        PlanStatus::PastDue
    } else {
        if pending == Some(PendingChange::Cancel) {
            pending = None;
        }
        PlanStatus::Active
    };
    effects.push(Effect::Plan(PlanChange {
        status: Some(status),
        pending_change: Some(pending),
        ..PlanChange::default()
    }));
    Decision::done(outcome, effects)
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
    let ended = decide_end(catalog, &facts.account, now);
    effects.extend(ended.effects);
    Decision { effects, applied: ended.applied }
}

/// R14: the plan is kept to the end of the paid period, then the account is on Free.
fn decide_end(catalog: &Catalog, account: &Account, now: DateTime<Utc>) -> Decision {
    let mut effects =
        vec![Effect::Subscription(SubscriptionChange { ended_at: Some(now), ..SubscriptionChange::default() })];
    match plan_end(catalog, account, now) {
        PlanEnd::NotBought => Decision::ignored(Ignored::NothingToDo("ended; the account was on no plan it bought")),
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

/// `charge.refunded` of a pack (R17): the refunded share, at most what is left, once per amount.
pub fn decide_refund(facts: Option<&PurchaseFacts>, c: &ChargeInfo) -> Decision {
    let Some(p) = facts else { return Decision::ignored(Ignored::NotOurs) };
    let take = refund_share(p.bought, c.amount, c.amount_refunded, p.clawed, p.left);
    let mut effects = Vec::new();
    if take.is_positive() {
        effects.push(Effect::Clawback {
            bucket: p.bucket,
            credits: take,
            reference: format!("refund:{}", c.id),
            reason: "top-up refunded".into(),
        });
    }
    effects.push(Effect::RecordRefund { refunded_amount: c.amount_refunded, clawed: take });
    Decision::done(Outcome::ClawedBack(take), effects)
}
