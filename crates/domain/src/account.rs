//! An account's plan state: plan, status, billing period, Enterprise contract (R3, R12, R14).

use chrono::{DateTime, Months, Utc};
use serde::{Deserialize, Serialize};

use crate::catalog::{Capability, Catalog, Plan};
use crate::credits::Credits;
use crate::ids::AccountId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PlanStatus {
    Active,
    /// R14: a renewal payment failed; judged as Free once the grace days are over.
    PastDue,
    /// R14: Stripe gave up collecting; judged as Free until the invoice is paid.
    Unpaid,
    Canceling,
}

impl PlanStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanStatus::Active => "active",
            PlanStatus::PastDue => "past_due",
            PlanStatus::Unpaid => "unpaid",
            PlanStatus::Canceling => "canceling",
        }
    }

    pub fn parse(s: &str) -> Option<PlanStatus> {
        [PlanStatus::Active, PlanStatus::PastDue, PlanStatus::Unpaid, PlanStatus::Canceling]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

impl TryFrom<String> for PlanStatus {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        PlanStatus::parse(&s).ok_or_else(|| format!("unknown plan status {s:?}"))
    }
}

/// A billing period, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Period {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// An Enterprise contract set by an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Contract {
    pub monthly_credits: Credits,
    /// `None`: unlimited (R12).
    pub runs_per_minute: Option<u32>,
    pub starts_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub email: String,
    pub name: String,
    pub plan: String,
    pub status: PlanStatus,
    pub period: Option<Period>,
    pub contract: Option<Contract>,
    /// A change waiting for the period's end: a downgrade or a cancellation.
    pub pending_change: Option<crate::payments::PendingChange>,
    /// When a cancelled plan ends (R14).
    pub plan_ends_at: Option<DateTime<Utc>>,
    /// R14: when the renewal's first payment failed (the grace is counted from here).
    pub past_due_since: Option<DateTime<Utc>>,
    /// R19: runs, quotes, checkouts and new API keys are refused.
    pub restricted: bool,
    pub created_at: DateTime<Utc>,
}

/// The billing settings the rules read (`billing.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BillingRules {
    /// R14: how long a past_due account keeps its plan (`billing.past_due_grace_days`, 7).
    pub past_due_grace: chrono::Duration,
}

impl Default for BillingRules {
    fn default() -> Self {
        BillingRules { past_due_grace: chrono::Duration::days(7) }
    }
}

impl Account {
    pub fn plan<'c>(&self, catalog: &'c Catalog) -> &'c Plan {
        catalog.plan_or_free(&self.plan)
    }

    /// R14: when the plan this account bought ends, if that moment is known: an ended
    /// subscription's paid period, or the period of a subscription cancelled at its end.
    pub fn plan_end(&self) -> Option<DateTime<Utc>> {
        let cancelled = match (&self.pending_change, self.period) {
            (Some(crate::payments::PendingChange::Cancel), Some(p)) => Some(p.end),
            _ => None,
        };
        self.plan_ends_at.or(cancelled)
    }

    /// The account as it stands at `now` (R14: every date is judged when the request comes, not
    /// only by a sweep): a plan whose end has come is Free from that moment, whether the sweep
    /// has written it yet or not.
    pub fn as_of(&self, now: DateTime<Utc>) -> Account {
        match self.plan_end() {
            Some(end) if end <= now && self.plan != crate::catalog::ENTERPRISE_PLAN => Account {
                plan: crate::catalog::FREE_PLAN.to_string(),
                status: PlanStatus::Active,
                period: None,
                pending_change: None,
                plan_ends_at: None,
                past_due_since: None,
                ..self.clone()
            },
            _ => self.clone(),
        }
    }

    /// R14: whether the account is judged as Free at `now` though it keeps its plan: `unpaid`, or
    /// `past_due` for longer than the grace.
    pub fn judged_free(&self, now: DateTime<Utc>, rules: &BillingRules) -> bool {
        match self.status {
            PlanStatus::Unpaid => true,
            PlanStatus::PastDue => self.past_due_since.is_some_and(|since| since + rules.past_due_grace <= now),
            _ => false,
        }
    }

    /// The account the rules judge at `now` (tiers, capabilities, API access, rate limits): as it
    /// stands then, on Free while `judged_free`.
    pub fn judged(&self, now: DateTime<Utc>, rules: &BillingRules) -> Account {
        let at = self.as_of(now);
        if at.judged_free(now, rules) {
            Account { plan: crate::catalog::FREE_PLAN.to_string(), contract: None, ..at }
        } else {
            at
        }
    }

    /// R12: the contract's figure on Enterprise, else the plan's; `None` is unlimited.
    pub fn runs_per_minute(&self, catalog: &Catalog) -> Option<u32> {
        match (&self.contract, self.plan == crate::catalog::ENTERPRISE_PLAN) {
            (Some(c), true) => c.runs_per_minute,
            _ => self.plan(catalog).runs_per_minute,
        }
    }

    pub fn capabilities<'c>(&self, catalog: &'c Catalog) -> impl Iterator<Item = Capability> + 'c {
        self.plan(catalog).capabilities.iter().copied()
    }
}

/// R3 for Enterprise: one calendar month from the contract's start, then month by month. The
/// period that contains `now` (or the first one, if `now` is before the start). Months are
/// counted from the start each time, so a contract from the 31st keeps the 31st where a month
/// has one (Jan 31 → Feb 28 → Mar 31).
pub fn contract_period(starts_at: DateTime<Utc>, now: DateTime<Utc>) -> Period {
    let nth = |n: u32| starts_at.checked_add_months(Months::new(n)).unwrap_or(DateTime::<Utc>::MAX_UTC);
    let mut n = 0u32;
    // Jump close by whole years first, then step: at most a dozen steps however far now is.
    if now > starts_at {
        let days = (now - starts_at).num_days().max(0) as u32;
        n = (days / 31).saturating_sub(1);
    }
    while nth(n + 1) <= now {
        n += 1;
    }
    Period { start: nth(n), end: nth(n + 1) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn an_enterprise_period_is_a_calendar_month_counted_from_the_start() {
        let start = Utc.with_ymd_and_hms(2026, 1, 31, 12, 0, 0).unwrap();
        let p = contract_period(start, start);
        assert_eq!((p.start, p.end), (start, Utc.with_ymd_and_hms(2026, 2, 28, 12, 0, 0).unwrap()));
        let march = contract_period(start, Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap());
        assert_eq!(march.start, Utc.with_ymd_and_hms(2026, 2, 28, 12, 0, 0).unwrap());
        assert_eq!(march.end, Utc.with_ymd_and_hms(2026, 3, 31, 12, 0, 0).unwrap());
    }

    #[test]
    fn the_period_containing_now_is_found_years_later() {
        let start = Utc.with_ymd_and_hms(2026, 5, 10, 0, 0, 0).unwrap();
        let now = Utc.with_ymd_and_hms(2029, 8, 9, 23, 59, 59).unwrap();
        let p = contract_period(start, now);
        assert_eq!(p.start, Utc.with_ymd_and_hms(2029, 7, 10, 0, 0, 0).unwrap());
        assert!(p.start <= now && now < p.end);
    }
}
