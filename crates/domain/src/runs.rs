//! Runs (R1, R6-R10, R12): judging a run request in SPEC's order, quoting, completing and
//! cancelling a hold. Pure: the store locks the account, loads the state, calls these, and
//! writes what they decided.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::account::Account;
use crate::burn::{Insufficient, Portion, Wallet, capture_split};
use crate::catalog::{Capability, Catalog, Model};
use crate::credits::Credits;
use crate::error::RunError;
use crate::idempotency::{IdempotencyKey, Replayable};
use crate::ids::{AccountId, RunId};
use crate::pricing::{Priced, RunParams, price, price_actual};
use crate::trial::{self, TrialGrant, TrialRefusal, TrialUsage};
use crate::views::RunView;

/// What a restricted account is told (the reasons stay with the operators).
pub const RESTRICTED: &str = "runs, checkouts and new API keys are paused; contact support";

/// R12's rolling window.
pub const RATE_WINDOW_SECONDS: i64 = 60;

/// How a request arrived (R8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channel {
    /// The canvas backend, acting for an account: open to every plan.
    Canvas,
    /// An API key: the scopes it holds now (those chosen at its creation that the plan still
    /// has), and the key itself (R20, R21).
    Api { scopes: BTreeSet<Capability>, key: KeyRef },
}

/// The API key a request came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRef {
    pub id: uuid::Uuid,
    /// R21: credits its runs may hold or capture in a calendar month (UTC); `None`: no cap.
    pub monthly_credit_limit: Option<Credits>,
}

/// R21: the calendar month (UTC) that `now` is in starts here.
pub fn month_start(now: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::{Datelike, TimeZone};
    Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0).single().unwrap_or(now)
}

impl Channel {
    pub fn as_str(&self) -> &'static str {
        match self {
            Channel::Canvas => "canvas",
            Channel::Api { .. } => "api",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRequest {
    pub model: String,
    /// A field-level problem the edge found (a wrong type, an unknown field): judged as
    /// INVALID_PARAMETERS in its place, after the rate limit.
    pub malformed: Option<String>,
    pub params: RunParams,
    pub workflow_id: Option<String>,
    pub capture: bool,
    /// R25: the member the run is for: named by the canvas (`X-Member-Id`), or its API key's.
    pub member: Option<uuid::Uuid>,
}

/// A run request as the store's run writer takes it (`RunStore::submit_run`).
#[derive(Debug, Clone)]
pub enum RunOp {
    Start { channel: Channel, req: RunRequest },
    Complete { channel: Channel, run: RunId, actual: RunParams },
    Cancel { channel: Channel, run: RunId },
}

/// One request: its account, what it asks, the time it is judged at and its R11 key.
#[derive(Debug, Clone)]
pub struct RunJob {
    pub account: AccountId,
    pub op: RunOp,
    pub now: DateTime<Utc>,
    pub idem: Option<IdempotencyKey>,
}

/// A run request's answer: the run (fresh, or R11's replay), or why it was refused.
pub type RunAnswer = Result<Replayable<RunView>, RunError>;

/// Why a run is refused, or a quote denied; each is one of SPEC's error codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    #[error("too many runs: at most {limit} a minute on this plan")]
    RateLimited { limit: u32, retry_after_seconds: u32 },
    #[error("unknown model {model:?}")]
    UnknownModel { model: String },
    #[error("{message}")]
    InvalidParameters { message: String },
    #[error("the account is restricted: {reason}")]
    AccountRestricted { reason: String },
    #[error("the API needs a plan with API access")]
    ApiAccessRequired,
    #[error("this API key or plan lacks the {capability} capability")]
    CapabilityRequired { capability: Capability },
    #[error("the free trial of this model is used up; it needs the {required_plan} plan")]
    TrialExhausted { required_plan: String },
    #[error("the free trial window of this model has closed; it needs the {required_plan} plan")]
    TrialExpired { required_plan: String },
    #[error("this model needs the {required_plan} plan")]
    ModelTierRequired { required_plan: String },
    #[error("this API key may use {limit} credits this month; {used} are used and this run needs {required}")]
    KeyCreditLimit { limit: Credits, used: Credits, required: Credits },
    /// R25: the member named is not a current member of the account.
    #[error("{member} is not a member of this account")]
    NotAMember { member: uuid::Uuid },
    /// R26.
    #[error("this member may use {limit} credits this month; {used} are used and this run needs {required}")]
    MemberCreditLimit { limit: Credits, used: Credits, required: Credits },
    #[error("this run costs {required} credits; {available} are available")]
    InsufficientCredits { required: Credits, available: Credits },
}

impl From<Insufficient> for Denial {
    fn from(i: Insufficient) -> Denial {
        Denial::InsufficientCredits { required: i.required, available: i.available }
    }
}

/// What the rules see of an account when judging a run.
pub struct RunState<'a> {
    pub catalog: &'a Catalog,
    pub account: &'a Account,
    /// How the request arrived (R8).
    pub channel: &'a Channel,
    pub wallet: &'a Wallet,
    /// The account's use of this model's trial, if it has any.
    pub trial: TrialUsage,
    /// R12: when the `limit`-th newest run of the last minute started, if there were that many
    /// (refused runs are not runs).
    pub window_full_since: Option<DateTime<Utc>>,
    /// R21: what the request's API key holds or captured this month (zero without a cap).
    pub key_used_this_month: Credits,
    /// R25, R26: the member the run is for, as the account has them.
    pub member: RunMember,
    pub now: DateTime<Utc>,
}

/// R25, R26: the member a run is for, read under the account's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunMember {
    /// The run names no member.
    #[default]
    None,
    /// A current member of the account; `used_this_month` is read only when it has a cap.
    Current { id: uuid::Uuid, monthly_credit_limit: Option<Credits>, used_this_month: Credits },
    /// Not a current member of the account: another account's, removed, or unknown.
    NotCurrent { id: uuid::Uuid },
}

impl RunMember {
    pub fn id(&self) -> Option<uuid::Uuid> {
        match self {
            RunMember::None => None,
            RunMember::Current { id, .. } | RunMember::NotCurrent { id } => Some(*id),
        }
    }
}

/// How a run is paid for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Charge {
    /// R9: through the model's trial, free of charge.
    Trial(TrialGrant),
    /// From the balance, bucket by bucket (R5).
    Credits(Vec<Portion>),
}

/// A run the rules let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub model: String,
    pub priced: Priced,
    pub charge: Charge,
}

/// R12: whether one more run fits in the rolling minute; if not, how long until it does.
/// `limit_th_newest` is when the `limit`-th newest run of the window started, if the window holds
/// that many: then it is full, and a place frees when that run leaves it.
pub fn rate_limit(limit: Option<u32>, limit_th_newest: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<Denial> {
    let limit = limit?;
    let started = limit_th_newest.filter(|t| *t > now - Duration::seconds(RATE_WINDOW_SECONDS))?;
    let frees_at = started + Duration::seconds(RATE_WINDOW_SECONDS);
    let wait_ms = (frees_at - now).num_milliseconds().max(0);
    let retry_after_seconds = u32::try_from((wait_ms + 999) / 1000).unwrap_or(u32::MAX).max(1);
    Some(Denial::RateLimited { limit, retry_after_seconds })
}

fn validate<'c>(catalog: &'c Catalog, req: &RunRequest) -> Result<(&'c Model, Priced), Denial> {
    if let Some(message) = &req.malformed {
        return Err(Denial::InvalidParameters { message: message.clone() });
    }
    let model = catalog.model(&req.model).ok_or_else(|| Denial::UnknownModel { model: req.model.clone() })?;
    let priced = price(model, req.params).map_err(|message| Denial::InvalidParameters { message })?;
    if let Some(w) = &req.workflow_id
        && (w.is_empty() || w.len() > 200)
    {
        return Err(Denial::InvalidParameters { message: "workflow_id must be 1-200 characters".into() });
    }
    Ok((model, priced))
}

/// R8: the channel and capability gates.
fn channel_gate(state: &RunState<'_>, req: &RunRequest) -> Option<Denial> {
    let Channel::Api { scopes, .. } = state.channel else {
        return None;
    };
    let plan = state.account.plan(state.catalog);
    if !plan.api_access {
        return Some(Denial::ApiAccessRequired);
    }
    let needed = if req.workflow_id.is_some() { Capability::WorkflowRun } else { Capability::ModelRun };
    if !plan.has(needed) || !scopes.contains(&needed) {
        return Some(Denial::CapabilityRequired { capability: needed });
    }
    None
}

/// Trial (R9) and tier (R7), after the channel: how the run is paid, or why it is refused.
fn pay(state: &RunState<'_>, model: &Model, priced: &Priced) -> Result<Charge, Denial> {
    let plan = state.account.plan(state.catalog);
    if let Some(spec) = trial::applies(plan, model) {
        return trial::admit(spec, state.trial, priced, state.now).map(Charge::Trial).map_err(|r| match r {
            TrialRefusal::Exhausted => Denial::TrialExhausted { required_plan: model.min_plan.clone() },
            TrialRefusal::Expired => Denial::TrialExpired { required_plan: model.min_plan.clone() },
        });
    }
    let min_rank = state.catalog.plan(&model.min_plan).map(|p| p.rank).unwrap_or(u32::MAX);
    if plan.rank < min_rank {
        return Err(Denial::ModelTierRequired { required_plan: model.min_plan.clone() });
    }
    Ok(Charge::Credits(Vec::new()))
}

/// The whole judgement of a run, in SPEC's order: 429, 422, 403 (restriction, channel,
/// capability, trial, tier), 402.
pub fn decide_run(state: &RunState<'_>, req: &RunRequest) -> Result<Admitted, Denial> {
    // R25: who the run is for is judged with who asks (401), before the rest.
    if let RunMember::NotCurrent { id } = state.member {
        return Err(Denial::NotAMember { member: id });
    }
    let limit = state.account.runs_per_minute(state.catalog);
    if let Some(denial) = rate_limit(limit, state.window_full_since, state.now) {
        return Err(denial);
    }
    let (model, priced) = validate(state.catalog, req)?;
    admit(state, req, model, priced)
}

fn admit(state: &RunState<'_>, req: &RunRequest, model: &Model, priced: Priced) -> Result<Admitted, Denial> {
    // R19: first of the 403s.
    if state.account.restricted {
        return Err(Denial::AccountRestricted { reason: RESTRICTED.into() });
    }
    if let Some(denial) = channel_gate(state, req) {
        return Err(denial);
    }
    let charge = match pay(state, model, &priced)? {
        Charge::Credits(_) => {
            key_cap(state, priced.cost)?;
            member_cap(state, priced.cost)?;
            Charge::Credits(state.wallet.split(priced.cost, state.now)?)
        }
        trial => trial,
    };
    Ok(Admitted { model: model.id.clone(), priced, charge })
}

/// R21: a run through a capped key may not take what the key used this month above its limit;
/// judged just before the balance.
fn key_cap(state: &RunState<'_>, cost: Credits) -> Result<(), Denial> {
    if let Channel::Api { key: KeyRef { monthly_credit_limit: Some(limit), .. }, .. } = state.channel {
        let used = state.key_used_this_month;
        if used.get().saturating_add(cost.get()) > limit.get() {
            return Err(Denial::KeyCreditLimit { limit: *limit, used, required: cost });
        }
    }
    Ok(())
}

/// R26: a run for a capped member may not take what the member used this month above their
/// limit; judged after the key's cap and before the balance.
fn member_cap(state: &RunState<'_>, cost: Credits) -> Result<(), Denial> {
    if let RunMember::Current { monthly_credit_limit: Some(limit), used_this_month, .. } = state.member
        && used_this_month.get().saturating_add(cost.get()) > limit.get()
    {
        return Err(Denial::MemberCreditLimit { limit, used: used_this_month, required: cost });
    }
    Ok(())
}

/// A quote (`POST /v1/quote`): the cost, and the refusal a run would get now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    pub model: String,
    pub priced: Priced,
    pub trial: Option<TrialGrant>,
    pub denial: Option<Denial>,
}

/// A quote is a run judged without effect. A bad request is refused as for a run (422); every
/// other refusal (429, 403, 402) is the quote's `denial`.
pub fn decide_quote(state: &RunState<'_>, req: &RunRequest) -> Result<Quote, Denial> {
    if let RunMember::NotCurrent { id } = state.member {
        return Err(Denial::NotAMember { member: id });
    }
    let (model, priced) = validate(state.catalog, req)?;
    let limit = state.account.runs_per_minute(state.catalog);
    let outcome = match rate_limit(limit, state.window_full_since, state.now) {
        Some(denial) => Err(denial),
        None => admit(state, req, model, priced),
    };
    Ok(match outcome {
        Ok(a) => Quote {
            model: a.model,
            priced,
            trial: match a.charge {
                Charge::Trial(t) => Some(t),
                Charge::Credits(_) => None,
            },
            denial: None,
        },
        Err(denial) => Quote { model: model.id.clone(), priced, trial: None, denial: Some(denial) },
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Held,
    Captured,
    Released,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Held => "held",
            RunStatus::Captured => "captured",
            RunStatus::Released => "released",
        }
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        [RunStatus::Held, RunStatus::Captured, RunStatus::Released].into_iter().find(|r| r.as_str() == s)
    }
}

/// Who started a run, as far as finishing it goes (R20).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartedBy {
    Canvas,
    /// Through the api: a key of the account with this capability may finish it.
    Api {
        needs: Capability,
    },
}

impl StartedBy {
    /// How a run started through `channel` with (or without) a workflow is finished.
    pub fn of(channel: &Channel, workflow: bool) -> StartedBy {
        match channel {
            Channel::Canvas => StartedBy::Canvas,
            Channel::Api { .. } => {
                StartedBy::Api { needs: if workflow { Capability::WorkflowRun } else { Capability::ModelRun } }
            }
        }
    }
}

/// A run as the rules need it to finish it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldRun {
    pub id: RunId,
    pub model: String,
    pub requested: Priced,
    pub status: RunStatus,
    pub trial: Option<TrialGrant>,
    pub hold_expires_at: Option<DateTime<Utc>>,
    pub started_by: StartedBy,
}

impl HeldRun {
    /// The status a reader sees: a hold past its TTL is released, even before the sweep says so.
    pub fn effective_status(&self, now: DateTime<Utc>) -> RunStatus {
        match (self.status, self.hold_expires_at) {
            (RunStatus::Held, Some(at)) if now >= at => RunStatus::Released,
            (s, _) => s,
        }
    }
}

/// Why a hold cannot be finished.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FinishRefusal {
    /// R20: another channel, or a key without the run's capability.
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("the run is already {0}")]
    NotHeld(&'static str),
    #[error("{0}")]
    InvalidParameters(String),
}

/// Completing a hold (R10): the actual cost is captured from what the hold reserved, the rest
/// released; a trial run returns the generations it did not use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    pub actual: Priced,
    pub debits: Vec<Portion>,
    pub generations_returned: i64,
}

impl Capture {
    /// What the run is charged: its debits, the actual cost, or nothing for a trial run (R9).
    pub fn charged(&self) -> Credits {
        self.debits.iter().map(|p| p.credits).sum()
    }
}

/// R20: only the channel that started a run finishes it; through the api, a key of the account
/// that holds the capability the run needed.
pub fn may_finish(run: &HeldRun, caller: &Channel) -> Result<(), FinishRefusal> {
    match (run.started_by, caller) {
        (StartedBy::Canvas, Channel::Canvas) => Ok(()),
        (StartedBy::Api { needs }, Channel::Api { scopes, .. }) if scopes.contains(&needs) => Ok(()),
        (StartedBy::Api { .. }, Channel::Api { .. }) => {
            Err(FinishRefusal::Forbidden("this API key lacks the capability the run needed"))
        }
        (StartedBy::Canvas, _) => Err(FinishRefusal::Forbidden("a canvas run is finished through the canvas")),
        (StartedBy::Api { .. }, _) => Err(FinishRefusal::Forbidden("an api run is finished through an API key")),
    }
}

fn ensure_held(run: &HeldRun, now: DateTime<Utc>) -> Result<(), FinishRefusal> {
    match run.effective_status(now) {
        RunStatus::Held => Ok(()),
        other => Err(FinishRefusal::NotHeld(other.as_str())),
    }
}

pub fn decide_capture(
    catalog: &Catalog,
    wallet: &Wallet,
    run: &HeldRun,
    caller: &Channel,
    actual: RunParams,
    now: DateTime<Utc>,
) -> Result<Capture, FinishRefusal> {
    may_finish(run, caller)?;
    ensure_held(run, now)?;
    let model = catalog.model(&run.model).ok_or_else(|| {
        FinishRefusal::InvalidParameters(format!("model {:?} is no longer in the catalog", run.model))
    })?;
    let actual = price_actual(model, &run.requested, actual).map_err(FinishRefusal::InvalidParameters)?;
    Ok(match run.trial {
        Some(t) => Capture {
            actual,
            debits: Vec::new(),
            generations_returned: if t.generations > 0 { t.generations - actual.generations() } else { 0 },
        },
        None => Capture { debits: capture_split(wallet, run.id, actual.cost), actual, generations_returned: 0 },
    })
}

/// Cancelling a hold (R10) releases all of it; a trial run gives its generations back (R9).
pub fn decide_cancel(run: &HeldRun, caller: &Channel, now: DateTime<Utc>) -> Result<i64, FinishRefusal> {
    may_finish(run, caller)?;
    ensure_held(run, now)?;
    Ok(run.trial.map(|t| t.generations).unwrap_or(0))
}

#[cfg(test)]
mod rate_tests {
    use super::*;

    #[test]
    fn a_full_window_is_refused_until_its_oldest_counted_run_leaves_it() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert_eq!(rate_limit(None, Some(now), now), None, "no limit");
        assert_eq!(rate_limit(Some(10), None, now), None, "fewer runs than the limit");
        let d = rate_limit(Some(10), Some(now - Duration::seconds(45)), now);
        assert_eq!(d, Some(Denial::RateLimited { limit: 10, retry_after_seconds: 15 }));
        let d = rate_limit(Some(10), Some(now - Duration::milliseconds(59_500)), now);
        assert_eq!(d, Some(Denial::RateLimited { limit: 10, retry_after_seconds: 1 }));
        assert_eq!(rate_limit(Some(10), Some(now - Duration::seconds(60)), now), None, "it has left the window");
    }
}
