//! What applying an event did: its outcome, or why it was ignored.

use chrono::{DateTime, Utc};

use crate::credits::Credits;
use crate::payments::subscription::SubscriptionStatus;

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

/// What a received Stripe event's record says while its transaction applies it (replaced by the
/// `Applied` it came to), and of one the configuration could not apply.
pub const OUTCOME_APPLYING: &str = "applying";
pub const OUTCOME_FAILED: &str = "failed";
