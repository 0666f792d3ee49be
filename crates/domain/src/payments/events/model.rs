//! The Stripe events as the Stripe adapter reads them: sessions, invoices, subscriptions,
//! charges, disputes, PaymentIntents, in the domain's words.

use chrono::{DateTime, Utc};

use crate::payments::subscription::SubscriptionStatus;

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
    /// R28: the amount before tax (Stripe's `amount_subtotal`).
    pub amount_subtotal: Option<i64>,
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
