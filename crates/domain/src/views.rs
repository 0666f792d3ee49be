//! Read models: what the service shows of accounts, balances, the ledger and runs. Serialized
//! as they are into responses and into idempotency records, so a replay is byte-identical.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::burn::BucketKind;
use crate::catalog::Capability;
use crate::credits::Credits;
use crate::ids::{AccountId, BucketId, EntryId, RunId};
use crate::runs::RunStatus;
use crate::trial::TrialGrant;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RateLimitView {
    /// `null`: unlimited.
    pub runs_per_minute: Option<u32>,
    pub window_seconds: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContractView {
    pub monthly_credits: Credits,
    pub runs_per_minute: Option<u32>,
    pub starts_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerificationSummary {
    pub id: Uuid,
    pub status: String,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountView {
    pub id: AccountId,
    pub email: String,
    pub name: String,
    pub plan: String,
    pub status: crate::account::PlanStatus,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    pub capabilities: Vec<Capability>,
    pub api_access: bool,
    /// The latest business-verification request, or `null` if none was ever submitted.
    pub business_verification: Option<VerificationSummary>,
    pub rate_limit: RateLimitView,
    pub enterprise_contract: Option<ContractView>,
    /// A plan change waiting for the period's end (a downgrade or a cancellation), if any.
    /// `plan:<id>` (a downgrade) or `cancel`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "plan:creator"))]
    pub pending_change: Option<crate::payments::PendingChange>,
    /// R19: runs, quotes, checkouts and new API keys are refused while set.
    pub restricted: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BucketView {
    pub id: BucketId,
    pub kind: BucketKind,
    pub granted: Credits,
    /// The sum of the bucket's ledger entries.
    pub remaining: Credits,
    /// What open holds reserve in it.
    pub held: Credits,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BalanceView {
    pub account_id: AccountId,
    pub available: Credits,
    pub held: Credits,
    pub total: Credits,
    pub plan: String,
    pub period_end: Option<DateTime<Utc>>,
    /// The buckets that still count (unexpired), soonest to burn first; expired ones are in the ledger.
    pub buckets: Vec<BucketView>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EntryType {
    Grant,
    Debit,
    Expire,
    Clawback,
    Adjustment,
}

impl EntryType {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryType::Grant => "grant",
            EntryType::Debit => "debit",
            EntryType::Expire => "expire",
            EntryType::Clawback => "clawback",
            EntryType::Adjustment => "adjustment",
        }
    }

    pub fn parse(s: &str) -> Option<EntryType> {
        [EntryType::Grant, EntryType::Debit, EntryType::Expire, EntryType::Clawback, EntryType::Adjustment]
            .into_iter()
            .find(|e| e.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LedgerEntryView {
    pub id: EntryId,
    #[serde(rename = "type")]
    pub entry_type: EntryType,
    pub credits: Credits,
    pub bucket_id: BucketId,
    pub bucket_kind: BucketKind,
    pub run_id: Option<RunId>,
    pub reference: Option<String>,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LedgerPage {
    pub entries: Vec<LedgerEntryView>,
    pub next_cursor: Option<String>,
}

/// One page of the ledger: newest first, at most `limit` entries, after `cursor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerQuery {
    pub limit: i64,
    pub cursor: Option<i64>,
}

pub const LEDGER_DEFAULT_LIMIT: i64 = 50;
pub const LEDGER_MAX_LIMIT: i64 = 500;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChargeView {
    pub bucket_id: BucketId,
    pub kind: BucketKind,
    pub credits: Credits,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunView {
    pub id: RunId,
    pub account_id: AccountId,
    pub model: String,
    pub status: RunStatus,
    /// The cost of the requested parameters (R1), what the hold reserved unless a trial pays.
    pub cost: Credits,
    pub images: Option<i64>,
    pub duration_seconds: Option<i64>,
    pub workflow_id: Option<String>,
    pub channel: String,
    /// R25: the member the run was for (`X-Member-Id`, or its API key's); `null`: none named.
    pub member_id: Option<uuid::Uuid>,
    /// What the capture took, bucket by bucket (empty until captured, and for trial runs).
    pub charged: Vec<ChargeView>,
    /// What the hold reserves, bucket by bucket, while it is held.
    pub reserved: Vec<ChargeView>,
    /// The credits captured, once captured.
    pub captured_credits: Option<Credits>,
    /// Non-null when the run is paid by a Free-plan trial (R9): then it is free of charge.
    pub trial: Option<TrialGrant>,
    pub hold_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdjustmentView {
    pub account_id: AccountId,
    pub credits: Credits,
    pub reason: String,
    pub expires_at: Option<DateTime<Utc>>,
    /// The new `adjustment` bucket of a grant.
    pub bucket_id: Option<BucketId>,
    pub entries: Vec<LedgerEntryView>,
    pub created_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminAccountView {
    pub account: AccountView,
    pub balance: BalanceView,
}
