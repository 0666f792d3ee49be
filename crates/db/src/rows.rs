//! Diesel rows and their conversions to the domain's types.

use chrono::{DateTime, Utc};
use credits_domain::account::{Account, Contract, Period, PlanStatus};
use credits_domain::burn::{Bucket, BucketKind};
use credits_domain::catalog::Capability;
use credits_domain::credits::Credits;
use credits_domain::ids::{AccountId, BucketId, EntryId, RunId};
use credits_domain::payments::PendingChange;
use credits_domain::pricing::Priced;
use credits_domain::runs::{HeldRun, RunStatus, StartedBy};
use credits_domain::trial::{TrialGrant, TrialKind};
use credits_domain::views::{EntryType, LedgerEntryView};
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::{accounts, buckets, ledger_entries, runs};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = accounts, check_for_backend(diesel::pg::Pg))]
pub struct AccountRow {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub plan_id: String,
    pub plan_status: String,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    pub contract_monthly_credits: Option<i64>,
    pub contract_runs_per_minute: Option<i32>,
    pub contract_starts_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub stripe_customer_id: Option<String>,
    pub business_verified_at: Option<DateTime<Utc>>,
    pub pending_change: Option<String>,
    pub plan_ends_at: Option<DateTime<Utc>>,
    pub past_due_since: Option<DateTime<Utc>>,
    pub restricted_at: Option<DateTime<Utc>>,
    pub stripe_customer_generation: i32,
}

/// A stored value this build cannot read: an error, never a silent default.
pub fn undecodable(what: &str, value: &str) -> diesel::result::Error {
    diesel::result::Error::DeserializationError(format!("unknown {what} {value:?} in the database").into())
}

/// A column's text as the domain's type: an unknown value is an error, never a default (a
/// bucket taken for another kind would burn in the wrong order).
pub fn decode<T>(what: &str, value: &str, parse: impl FnOnce(&str) -> Option<T>) -> QueryResult<T> {
    parse(value).ok_or_else(|| undecodable(what, value))
}

pub fn bucket_kind(value: &str) -> QueryResult<BucketKind> {
    decode("bucket kind", value, BucketKind::parse)
}

impl AccountRow {
    pub fn to_domain(&self) -> QueryResult<Account> {
        Ok(Account {
            id: AccountId(self.id),
            email: self.email.clone(),
            name: self.name.clone(),
            plan: self.plan_id.clone(),
            status: PlanStatus::parse(&self.plan_status)
                .ok_or_else(|| undecodable("plan status", &self.plan_status))?,
            period: match (self.period_start, self.period_end) {
                (Some(start), Some(end)) => Some(Period { start, end }),
                _ => None,
            },
            contract: match (self.contract_monthly_credits, self.contract_starts_at) {
                (Some(m), Some(starts_at)) => Some(Contract {
                    monthly_credits: Credits::new(m),
                    runs_per_minute: self.contract_runs_per_minute.and_then(|n| u32::try_from(n).ok()),
                    starts_at,
                }),
                _ => None,
            },
            pending_change: self
                .pending_change
                .as_deref()
                .map(|p| PendingChange::parse(p).ok_or_else(|| undecodable("pending change", p)))
                .transpose()?,
            plan_ends_at: self.plan_ends_at,
            past_due_since: self.past_due_since,
            restricted: self.restricted_at.is_some(),
            created_at: self.created_at,
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = buckets, check_for_backend(diesel::pg::Pg))]
pub struct BucketRow {
    pub id: Uuid,
    pub account_id: Uuid,
    pub kind: String,
    pub granted: i64,
    pub remaining: i64,
    pub expires_at: Option<DateTime<Utc>>,
    pub reference: Option<String>,
    pub created_at: DateTime<Utc>,
    pub value_amount: Option<i64>,
    pub value_credits: Option<i64>,
    pub currency: Option<String>,
}

impl BucketRow {
    pub fn to_domain(&self) -> QueryResult<Bucket> {
        Ok(Bucket {
            id: BucketId(self.id),
            kind: bucket_kind(&self.kind)?,
            granted: Credits::new(self.granted),
            remaining: Credits::new(self.remaining),
            expires_at: self.expires_at,
            created_at: self.created_at,
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = ledger_entries, check_for_backend(diesel::pg::Pg))]
pub struct NewEntryRow {
    pub id: Uuid,
    pub account_id: Uuid,
    pub bucket_id: Uuid,
    pub entry_type: String,
    pub credits: i64,
    pub run_id: Option<Uuid>,
    pub reference: Option<String>,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A ledger entry with its order key and its bucket's kind.
#[derive(Debug, Clone, Queryable)]
pub struct EntryRow {
    pub seq: i64,
    pub entry: NewEntryRow,
    pub bucket_kind: String,
}

impl EntryRow {
    pub fn to_view(&self) -> QueryResult<LedgerEntryView> {
        let e = &self.entry;
        Ok(LedgerEntryView {
            id: EntryId(e.id),
            entry_type: decode("ledger entry type", &e.entry_type, EntryType::parse)?,
            credits: Credits::new(e.credits),
            bucket_id: BucketId(e.bucket_id),
            bucket_kind: bucket_kind(&self.bucket_kind)?,
            run_id: e.run_id.map(RunId),
            reference: e.reference.clone(),
            reason: e.reason.clone(),
            created_at: e.created_at,
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = runs, check_for_backend(diesel::pg::Pg))]
pub struct RunRow {
    pub id: Uuid,
    pub account_id: Uuid,
    pub model_id: String,
    pub channel: String,
    pub workflow_id: Option<String>,
    pub images: Option<i64>,
    pub duration_seconds: Option<i64>,
    pub cost: i64,
    pub status: String,
    pub captured_credits: Option<i64>,
    pub captured_images: Option<i64>,
    pub captured_duration_seconds: Option<i64>,
    pub trial_kind: Option<String>,
    pub trial_generations: i64,
    pub trial_window_opens_at: Option<DateTime<Utc>>,
    pub trial_window_closes_at: Option<DateTime<Utc>>,
    pub hold_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub release_reason: Option<String>,
    pub api_key_id: Option<Uuid>,
    pub member_id: Option<Uuid>,
}

impl RunRow {
    pub fn status(&self) -> QueryResult<RunStatus> {
        decode("run status", &self.status, RunStatus::parse)
    }

    pub fn trial(&self) -> QueryResult<Option<TrialGrant>> {
        let Some(kind) = self.trial_kind.as_deref() else { return Ok(None) };
        Ok(Some(TrialGrant {
            kind: decode("trial kind", kind, TrialKind::parse)?,
            generations: self.trial_generations,
            window_opens_at: self.trial_window_opens_at,
            window_closes_at: self.trial_window_closes_at,
        }))
    }

    pub fn to_held(&self) -> QueryResult<HeldRun> {
        Ok(HeldRun {
            id: RunId(self.id),
            model: self.model_id.clone(),
            requested: Priced {
                images: self.images,
                duration_seconds: self.duration_seconds,
                cost: Credits::new(self.cost),
            },
            status: self.status()?,
            trial: self.trial()?,
            hold_expires_at: self.hold_expires_at,
            started_by: match self.channel.as_str() {
                "api" if self.workflow_id.is_some() => StartedBy::Api { needs: Capability::WorkflowRun },
                "api" => StartedBy::Api { needs: Capability::ModelRun },
                "canvas" => StartedBy::Canvas,
                other => return Err(undecodable("run channel", other)),
            },
        })
    }
}
