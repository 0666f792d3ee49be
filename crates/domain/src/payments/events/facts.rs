//! The facts the store loads under the account's lock before a decision.

use chrono::{DateTime, Utc};

use super::*;
use crate::account::Account;
use crate::burn::BucketKind;
use crate::credits::Credits;
use crate::ids::BucketId;
use crate::payments::subscription::SubscriptionStatus;

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
