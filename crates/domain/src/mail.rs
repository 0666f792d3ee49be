//! Mail through the outbox (SPEC section 6, R14): a mail is a row written in the same
//! transaction as the change that causes it; a worker sends it, retrying with backoff.

use uuid::Uuid;

use crate::ids::AccountId;

/// What a mail is about: each kind has its templates (`crates/email/templates/<kind>.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MailKind {
    /// R14: a renewal payment failed; the account is past_due.
    PaymentFailed,
    /// R14: an upgrade's proration invoice was not paid; the old plan stays.
    UpgradePaymentFailed,
    VerificationSales,
    VerificationReceipt,
    VerificationApproved,
    VerificationRejected,
    /// R23: `available` fell below the account's low-balance threshold.
    BalanceLow,
    /// R23: a change took `available` to 0.
    BalanceDepleted,
    /// R23: `available` rose back to the threshold.
    BalanceRecovered,
    /// R23: a bucket with credits left expires within `alerts.expiry_notice_days`.
    CreditsExpiring,
    /// R22: an auto top-up's payment failed; auto top-up is off.
    AutoTopupFailed,
    /// Section 9: an endpoint failed for 5 days and is disabled.
    WebhookEndpointDisabled,
    /// R24: a person was added to an account's team.
    MemberAdded,
    /// R26: a member's use reached 80% of their monthly limit.
    MemberLimitNearly,
    /// R26: a member's use reached their monthly limit.
    MemberLimitReached,
}

impl MailKind {
    pub const ALL: [MailKind; 15] = [
        MailKind::PaymentFailed,
        MailKind::UpgradePaymentFailed,
        MailKind::VerificationSales,
        MailKind::VerificationReceipt,
        MailKind::VerificationApproved,
        MailKind::VerificationRejected,
        MailKind::BalanceLow,
        MailKind::BalanceDepleted,
        MailKind::BalanceRecovered,
        MailKind::CreditsExpiring,
        MailKind::AutoTopupFailed,
        MailKind::WebhookEndpointDisabled,
        MailKind::MemberAdded,
        MailKind::MemberLimitNearly,
        MailKind::MemberLimitReached,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::PaymentFailed => "payment_failed",
            MailKind::UpgradePaymentFailed => "upgrade_payment_failed",
            MailKind::VerificationSales => "verification_sales",
            MailKind::VerificationReceipt => "verification_receipt",
            MailKind::VerificationApproved => "verification_approved",
            MailKind::VerificationRejected => "verification_rejected",
            MailKind::BalanceLow => "balance_low",
            MailKind::BalanceDepleted => "balance_depleted",
            MailKind::BalanceRecovered => "balance_recovered",
            MailKind::CreditsExpiring => "credits_expiring",
            MailKind::AutoTopupFailed => "auto_topup_failed",
            MailKind::WebhookEndpointDisabled => "webhook_endpoint_disabled",
            MailKind::MemberAdded => "member_added",
            MailKind::MemberLimitNearly => "member_limit_nearly",
            MailKind::MemberLimitReached => "member_limit_reached",
        }
    }

    /// `None` for a kind this build does not know: an error where it is read, never a default.
    pub fn parse(s: &str) -> Option<MailKind> {
        MailKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A mail a change causes, written to the outbox in the change's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub kind: MailKind,
    pub to: String,
    pub account: Option<AccountId>,
    /// One mail per key, however often the change is applied (`<kind>:<what it is about>`).
    pub dedupe_key: String,
    /// The facts its templates show, by name.
    pub facts: Vec<(&'static str, String)>,
}

impl Mail {
    /// A mail of `kind` about `about` (an invoice, a request): its dedupe key is `<kind>:<about>`.
    pub fn new(kind: MailKind, to: &str, account: Option<AccountId>, about: &str) -> Mail {
        Mail { kind, to: to.to_string(), account, dedupe_key: format!("{}:{about}", kind.as_str()), facts: Vec::new() }
    }

    pub fn fact(mut self, name: &'static str, value: impl Into<String>) -> Mail {
        self.facts.push((name, value.into()));
        self
    }
}

/// A mail waiting in the outbox. `payload` is JSON: the facts the template needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    pub id: Uuid,
    pub kind: MailKind,
    pub recipient: String,
    pub payload: String,
    pub attempts: i32,
}

/// Renders and sends one outbox mail (SMTP).
pub trait Mailer: Send + Sync {
    fn deliver(&self, message: &OutboxMessage) -> Result<(), String>;
}
