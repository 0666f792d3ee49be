//! The ports: what the rules need from the outside (a store, a clock). Synchronous, because the
//! store is; the HTTP adapter calls them off its async threads.

use chrono::{DateTime, Utc};

use crate::apikey::{ApiKeyView, KeyIdentity, NewApiKey};
use crate::error::{AccountError, AdminError, ApiKeyError, RunError, StoreError};
use crate::idempotency::{IdempotencyKey, Replayable};
use crate::ids::{AccountId, RunId};
use crate::operator::{Adjustment, ContractTerms, Operator, Role};
use crate::runs::{Channel, Quote, RunAnswer, RunJob, RunRequest};
use crate::trial::TrialView;
use crate::views::{AccountView, AdjustmentView, AdminAccountView, BalanceView, LedgerPage, LedgerQuery, RunView};

/// The one clock every rule reads (R16, R10, R9, R3, the ledger's timestamps).
pub trait Clock: Send + Sync {
    fn now(&self) -> Result<DateTime<Utc>, StoreError>;
    /// Whether `now` answers from memory, without waiting on I/O (an async caller may then read
    /// it in place instead of on a blocking thread).
    fn in_memory(&self) -> bool {
        false
    }
}

/// The test clock (`clock.mode = "test"`), kept where every instance reads the same time.
pub trait TestClock: Clock {
    fn advance(&self, seconds: i64) -> Result<DateTime<Utc>, StoreError>;
}

/// A new account's details, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccount {
    pub email: String,
    pub name: String,
}

impl NewAccount {
    pub fn new(email: &str, name: &str) -> Result<NewAccount, String> {
        let email = email.trim();
        let name = name.trim();
        let valid_email = email.len() <= 254
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
            })
            && !email.chars().any(|c| c.is_whitespace() || c.is_control());
        if !valid_email {
            return Err("email must be a valid email address".into());
        }
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err("name must be 1-200 characters".into());
        }
        Ok(NewAccount { email: email.to_string(), name: name.to_string() })
    }
}

pub trait AccountStore {
    /// R2: a new account on Free with its one-time lifetime grant, in one transaction.
    fn create_account(
        &self,
        new: &NewAccount,
        now: DateTime<Utc>,
        idem: Option<&IdempotencyKey>,
    ) -> Result<Replayable<AccountView>, AccountError>;
    fn account_view(&self, id: AccountId, now: DateTime<Utc>) -> Result<AccountView, AccountError>;
    /// R6: the balances of several accounts, read together (one snapshot), in the order asked;
    /// `None` for an account that does not exist.
    fn balances(&self, ids: &[AccountId], now: DateTime<Utc>) -> Result<Vec<Option<BalanceView>>, StoreError>;
    fn ledger(&self, id: AccountId, query: &LedgerQuery) -> Result<LedgerPage, AccountError>;
    fn trials(&self, id: AccountId, now: DateTime<Utc>) -> Result<Vec<TrialView>, AccountError>;
}

/// How a run request's answer comes back: called once, with the answer, possibly from another
/// thread (the store's run writer); dropped unanswered only if the writer failed.
pub type RunReply = Box<dyn FnOnce(RunAnswer) + Send>;

pub trait RunStore {
    /// Hand a start, completion or cancellation to the store's run writer, which writes the
    /// requests waiting together (`runs.batch_max`) and answers each through its `reply`. Does
    /// not wait: the caller awaits the reply, holding no thread or connection meanwhile. R20:
    /// a run is finished only through the channel (and a key with the capability) that started it.
    fn submit_run(&self, job: RunJob, reply: RunReply);
    fn quote(
        &self,
        account: AccountId,
        channel: &Channel,
        req: &RunRequest,
        now: DateTime<Utc>,
    ) -> Result<Quote, RunError>;
    fn run(&self, account: AccountId, run: RunId, now: DateTime<Utc>) -> Result<RunView, RunError>;
}

/// An operator as `credits operator list` shows it: never a secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OperatorRecord {
    pub id: uuid::Uuid,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// An account as a search lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSummary {
    pub id: AccountId,
    pub email: String,
    pub name: String,
    pub plan: String,
}

/// A run as support's account page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    pub id: crate::ids::RunId,
    pub model: String,
    pub status: String,
    pub channel: String,
    pub cost: crate::credits::Credits,
    pub captured: Option<crate::credits::Credits>,
    pub created_at: DateTime<Utc>,
}

/// A mail given up after its attempts (the outbox's `dead`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadMail {
    pub id: uuid::Uuid,
    pub kind: String,
    pub recipient: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// One action of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub operator: String,
    pub role: String,
    pub action: String,
    pub details: String,
    pub at: DateTime<Utc>,
}

pub trait OperatorStore {
    /// The live operator whose token hashes to `token_hash` (a revoked one is not found).
    fn operator_by_token_hash(&self, token_hash: &str) -> Result<Option<Operator>, StoreError>;
    /// Every operator, oldest first.
    fn operators(&self) -> Result<Vec<OperatorRecord>, StoreError>;
    /// Revoke an operator's token: it is refused from the next request on. False if there is no
    /// such operator or it was revoked already.
    fn revoke_operator(&self, id: uuid::Uuid, now: DateTime<Utc>) -> Result<bool, StoreError>;
    fn create_operator(
        &self,
        name: &str,
        role: Role,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Operator, StoreError>;
    fn adjust(
        &self,
        by: &Operator,
        account: AccountId,
        adjustment: &Adjustment,
        now: DateTime<Utc>,
        idem: Option<&IdempotencyKey>,
    ) -> Result<Replayable<AdjustmentView>, AdminError>;
    /// Support's search: the accounts whose id, email (any case) or Stripe customer id is
    /// `query`, at most 20; the search is recorded in the audit trail.
    fn find_accounts(&self, by: &Operator, query: &str, now: DateTime<Utc>) -> Result<Vec<AccountSummary>, StoreError>;
    /// The mails given up, newest first.
    fn dead_mail(&self, limit: i64) -> Result<Vec<DeadMail>, StoreError>;
    /// A dead mail back in the outbox, due now with its attempts reset; false if it is not dead.
    /// Recorded in the audit trail.
    fn resend_mail(&self, by: &Operator, id: uuid::Uuid, now: DateTime<Utc>) -> Result<bool, StoreError>;
    /// The account's latest runs and the latest operator actions about it, newest first.
    fn account_activity(
        &self,
        account: AccountId,
        limit: i64,
    ) -> Result<(Vec<RunSummary>, Vec<AuditEntry>), StoreError>;
    fn admin_account(
        &self,
        by: &Operator,
        account: AccountId,
        now: DateTime<Utc>,
    ) -> Result<AdminAccountView, AdminError>;
    /// R18: refused (CONFLICT, naming it) while the account has a live Stripe subscription.
    fn set_enterprise(
        &self,
        by: &Operator,
        account: AccountId,
        terms: ContractTerms,
        now: DateTime<Utc>,
    ) -> Result<AccountView, AdminError>;
    /// R19: restrict the account by hand, with a reason.
    fn restrict(
        &self,
        by: &Operator,
        account: AccountId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<AccountView, AdminError>;
    /// R19: lift every restriction of the account (a dispute's too), with a reason.
    fn lift_restriction(
        &self,
        by: &Operator,
        account: AccountId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<AccountView, AdminError>;
}

pub trait ApiKeyStore {
    /// The key whose secret hashes to `secret_hash`, if it is live, with the plan its account is
    /// judged by at `now` (R8, R14).
    fn api_key_by_hash(&self, secret_hash: &str, now: DateTime<Utc>) -> Result<Option<KeyIdentity>, StoreError>;
    /// R8: a new key within the plan's capabilities. The stored idempotency answer is the view,
    /// which never holds the secret.
    fn create_api_key(
        &self,
        account: AccountId,
        key: &NewApiKey,
        now: DateTime<Utc>,
        idem: Option<&IdempotencyKey>,
    ) -> Result<Replayable<ApiKeyView>, ApiKeyError>;
    /// The account's live keys, each with what its runs used this month (R21).
    fn api_keys(&self, account: AccountId, now: DateTime<Utc>) -> Result<Vec<ApiKeyView>, ApiKeyError>;
    /// R21: set or remove (`None`) a key's monthly credit limit.
    fn set_key_limit(
        &self,
        account: AccountId,
        key: uuid::Uuid,
        limit: Option<crate::credits::Credits>,
        now: DateTime<Utc>,
    ) -> Result<ApiKeyView, ApiKeyError>;
    /// Revoke at once; a key of another account, or one already revoked, is not found.
    fn revoke_api_key(&self, account: AccountId, key: uuid::Uuid, now: DateTime<Utc>) -> Result<(), ApiKeyError>;
}

pub use crate::payments::PaymentStore;

/// Where verification mail goes besides the account: the sales team, and the admin link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailContext {
    pub sales_team: String,
    /// The base of the link in the sales team's mail (…/admin/v1/business-verifications).
    pub admin_url: String,
}

/// One page of the sales queue, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerificationPage {
    pub requests: Vec<crate::verification::VerificationView>,
    pub next_cursor: Option<String>,
}

pub trait VerificationStore {
    /// SPEC section 6: the request, the sales team's mail and the account's receipt, together.
    fn submit_verification(
        &self,
        account: AccountId,
        request: &crate::verification::VerificationRequest,
        mail: &MailContext,
        now: DateTime<Utc>,
        idem: Option<&IdempotencyKey>,
    ) -> Result<Replayable<crate::verification::VerificationView>, crate::error::VerificationError>;
    fn latest_verification(
        &self,
        account: AccountId,
    ) -> Result<Option<crate::verification::VerificationView>, crate::error::VerificationError>;
    /// The queue, oldest first; `cursor` is a page's `next_cursor`.
    fn verification_queue(
        &self,
        status: Option<crate::verification::VerificationStatus>,
        limit: i64,
        cursor: Option<&str>,
    ) -> Result<VerificationPage, crate::error::VerificationError>;
    /// A final decision, with who and when, and its mail to the account.
    fn decide_verification(
        &self,
        by: &Operator,
        request: uuid::Uuid,
        decision: &crate::verification::Decision,
        now: DateTime<Utc>,
    ) -> Result<crate::verification::VerificationView, crate::error::VerificationError>;
}

/// Figures for `/metrics` that only the store knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    pub pool_connections: u32,
    pub pool_idle: u32,
    pub pool_max: u32,
    /// Holds open now.
    pub open_holds: i64,
    /// Holds past their TTL that the sweep has not released yet.
    pub overdue_holds: i64,
    /// Mails waiting to be sent, and mails given up on.
    pub outbox_pending: i64,
    pub outbox_dead: i64,
}

/// Told of the ledger entries a transaction wrote, once it committed (for metrics).
pub trait LedgerObserver: Send + Sync {
    fn committed(&self, entries: &[(crate::views::EntryType, crate::credits::Credits)]);
    /// A batch of `requests` run requests was committed in one transaction (group commit).
    fn batch_committed(&self, _requests: usize) {}
}

/// What one round of [`Maintenance::sweep`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sweep {
    pub holds_released: usize,
    pub buckets_expired: usize,
    pub contracts_refreshed: usize,
}

impl Sweep {
    pub fn is_empty(&self) -> bool {
        self.holds_released + self.buckets_expired + self.contracts_refreshed == 0
    }
}

/// Background work, safe to run on several instances at once. Each returns how much it did.
pub trait Maintenance {
    /// R10: release holds past their TTL.
    fn release_expired_holds(&self, now: DateTime<Utc>, batch: i64) -> Result<usize, StoreError>;
    /// R16: write `expire` entries for buckets past their expiry.
    fn expire_buckets(&self, now: DateTime<Utc>, batch: i64) -> Result<usize, StoreError>;
    /// R3: grant each Enterprise contract's allowance for the period that has begun.
    fn refresh_contracts(&self, now: DateTime<Utc>, batch: i64) -> Result<usize, StoreError>;
    /// R14: move accounts whose cancelled plan has reached its period's end to Free.
    fn end_plans(&self, now: DateTime<Utc>, batch: i64) -> Result<usize, StoreError>;
    /// One round of the time-driven rules at `now`: holds released, buckets expired, contracts
    /// refreshed and plans ended; returns what each did.
    fn sweep(&self, now: DateTime<Utc>, batch: i64) -> Result<Sweep, StoreError> {
        Ok(Sweep {
            holds_released: self.release_expired_holds(now, batch)?,
            buckets_expired: self.expire_buckets(now, batch)?,
            contracts_refreshed: self.refresh_contracts(now, batch)? + self.end_plans(now, batch)?,
        })
    }
    /// R11: forget idempotency records older than 24 hours.
    fn purge_idempotency(&self, now: DateTime<Utc>) -> Result<usize, StoreError>;
    /// Readiness: the database answers.
    fn ping(&self) -> Result<(), StoreError>;
    fn stats(&self, now: DateTime<Utc>) -> Result<StoreStats, StoreError>;
}

/// Section 10's reads.
pub trait ReportStore {
    /// Credits captured and captured runs in `span`, by `group_by`, from the ledger's debits.
    fn usage(
        &self,
        account: AccountId,
        group_by: crate::reports::GroupBy,
        span: crate::reports::Span,
    ) -> Result<Vec<crate::reports::UsageGroup>, AccountError>;
    /// The account's ledger entries of `span` in order, `limit` after the entry `after` (its seq).
    fn ledger_chunk(
        &self,
        account: AccountId,
        span: crate::reports::Span,
        after: Option<i64>,
        limit: i64,
    ) -> Result<Vec<crate::reports::ExportRow>, AccountError>;
    /// The sums of every account's buckets and entries as of `at`.
    fn liability_sums(
        &self,
        at: DateTime<Utc>,
    ) -> Result<(Vec<crate::reports::BucketAsOf>, Vec<crate::reports::MonthFlow>), StoreError>;
}

/// Everything the service needs from its store.
pub trait Store:
    AccountStore
    + RunStore
    + OperatorStore
    + ApiKeyStore
    + PaymentStore
    + VerificationStore
    + ReportStore
    + crate::notify::store::NotifyStore
    + crate::pages::PageStore
    + crate::pages::ConsoleStore
    + Maintenance
    + crate::jobs::Jobs
    + crate::members::MemberStore
    + Send
    + Sync
{
}

impl<T> Store for T where
    T: AccountStore
        + RunStore
        + OperatorStore
        + ApiKeyStore
        + PaymentStore
        + VerificationStore
        + ReportStore
        + crate::notify::store::NotifyStore
        + crate::pages::PageStore
        + crate::pages::ConsoleStore
        + Maintenance
        + crate::jobs::Jobs
        + crate::members::MemberStore
        + Send
        + Sync
{
}
