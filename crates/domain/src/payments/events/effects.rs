//! The effects a decision returns, in order, for the store to write in the event's transaction.

use chrono::{DateTime, Utc};

use super::*;
use crate::account::{Period, PlanStatus};
use crate::burn::BucketKind;
use crate::credits::Credits;
use crate::ids::BucketId;
use crate::mail::Mail;
use crate::payments::subscription::{PendingChange, SubscriptionStatus};
use crate::reports::UnitValue;

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

    pub(super) fn done(outcome: Outcome, effects: Vec<Effect>) -> Decision {
        Decision { effects, applied: Applied::Done(outcome) }
    }
}
