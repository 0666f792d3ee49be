//! An account's plan state: plan, status, billing period, Enterprise contract (R3, R12, R14).

use chrono::{DateTime, Months, Utc};
use serde::{Deserialize, Serialize};

use crate::catalog::{Capability, Catalog, Plan};
use crate::credits::Credits;
use crate::ids::AccountId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanStatus {
    Active,
    PastDue,
    Canceling,
}

impl PlanStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanStatus::Active => "active",
            PlanStatus::PastDue => "past_due",
            PlanStatus::Canceling => "canceling",
        }
    }

    pub fn parse(s: &str) -> Option<PlanStatus> {
        [PlanStatus::Active, PlanStatus::PastDue, PlanStatus::Canceling].into_iter().find(|p| p.as_str() == s)
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
pub struct Period {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// An Enterprise contract set by an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
    pub created_at: DateTime<Utc>,
}

impl Account {
    pub fn plan<'c>(&self, catalog: &'c Catalog) -> &'c Plan {
        catalog.plan_or_free(&self.plan)
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
