//! A subscription in the domain's words (R3, R14, R17, R18): Stripe's statuses, the change that
//! waits for the period's end, and the arithmetic of upgrades and refunds.

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};

use crate::account::{Account, Period};
use crate::catalog::{Catalog, Plan};
use crate::credits::Credits;

/// A subscription's status, as Stripe names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscriptionStatus {
    Incomplete,
    IncompleteExpired,
    Trialing,
    Active,
    PastDue,
    Unpaid,
    Canceled,
    Paused,
}

impl SubscriptionStatus {
    pub const ALL: [SubscriptionStatus; 8] = [
        SubscriptionStatus::Incomplete,
        SubscriptionStatus::IncompleteExpired,
        SubscriptionStatus::Trialing,
        SubscriptionStatus::Active,
        SubscriptionStatus::PastDue,
        SubscriptionStatus::Unpaid,
        SubscriptionStatus::Canceled,
        SubscriptionStatus::Paused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionStatus::Incomplete => "incomplete",
            SubscriptionStatus::IncompleteExpired => "incomplete_expired",
            SubscriptionStatus::Trialing => "trialing",
            SubscriptionStatus::Active => "active",
            SubscriptionStatus::PastDue => "past_due",
            SubscriptionStatus::Unpaid => "unpaid",
            SubscriptionStatus::Canceled => "canceled",
            SubscriptionStatus::Paused => "paused",
        }
    }

    /// `None` for a word Stripe does not use: never a silent default.
    pub fn parse(s: &str) -> Option<SubscriptionStatus> {
        SubscriptionStatus::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// R18: a subscription that has not ended at Stripe; a plan change goes through it.
    pub fn is_live(self) -> bool {
        !matches!(self, SubscriptionStatus::IncompleteExpired | SubscriptionStatus::Canceled)
    }

    /// The statuses a live subscription may have.
    pub fn live() -> impl Iterator<Item = SubscriptionStatus> {
        SubscriptionStatus::ALL.into_iter().filter(|s| s.is_live())
    }
}

impl TryFrom<String> for SubscriptionStatus {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        SubscriptionStatus::parse(&s).ok_or_else(|| format!("unknown subscription status {s:?}"))
    }
}

/// A change of plan that waits for the end of the paid period (R14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingChange {
    /// A downgrade to this plan.
    Plan(String),
    /// The subscription ends.
    Cancel,
}

impl PendingChange {
    /// How it is stored and shown: `plan:<id>` or `cancel`.
    pub fn to_text(&self) -> String {
        match self {
            PendingChange::Plan(plan) => format!("plan:{plan}"),
            PendingChange::Cancel => "cancel".to_string(),
        }
    }

    pub fn parse(s: &str) -> Option<PendingChange> {
        match s {
            "cancel" => Some(PendingChange::Cancel),
            _ => s.strip_prefix("plan:").filter(|p| !p.is_empty()).map(|p| PendingChange::Plan(p.to_string())),
        }
    }
}

impl Serialize for PendingChange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_text())
    }
}

/// The plan a Stripe price sells.
pub fn plan_for_price<'c>(catalog: &'c Catalog, price_id: &str) -> Option<&'c Plan> {
    catalog.plans().iter().find(|p| p.stripe_price_id.as_deref() == Some(price_id))
}

/// R14: whether `plan` ranks above the account's plan.
pub fn is_upgrade(catalog: &Catalog, account: &Account, plan: &Plan) -> bool {
    plan.id != account.plan && plan.rank > account.plan(catalog).rank
}

/// R14: what an upgrade adds to the period's allowance: the new plan's monthly credits less the
/// old plan's, times the share of the period still to run at `at` (when Stripe made the change),
/// to the nearest credit, halves up. The same share Stripe charges: an upgrade on the last day
/// buys a day's worth of credits.
pub fn upgrade_growth(old_monthly: Credits, new_monthly: Credits, period: Period, at: DateTime<Utc>) -> Credits {
    let difference = i128::from((new_monthly.get() - old_monthly.get()).max(0));
    let total = i128::from((period.end - period.start).num_milliseconds().max(1));
    let left = i128::from((period.end - at).num_milliseconds()).clamp(0, total);
    // round(difference × left / total), halves up, in integers.
    let grown = (2 * difference * left + total) / (2 * total);
    Credits::new(i64::try_from(grown).unwrap_or(i64::MAX))
}

/// R17: a refund takes back the refunded share of what a payment bought (rounded down: a
/// customer keeps a partial credit), at most what is left of it. `refunded` is Stripe's
/// cumulative amount; `clawed` what earlier refunds already took.
pub fn refund_share(bought: Credits, amount: i64, refunded: i64, clawed: Credits, left: Credits) -> Credits {
    if amount <= 0 {
        return Credits::ZERO;
    }
    let refunded = refunded.clamp(0, amount);
    let share = (i128::from(bought.get()) * i128::from(refunded) / i128::from(amount)) as i64;
    Credits::new((share - clawed.get()).clamp(0, left.get().max(0)))
}

/// SPEC section 5: an event older than the last one applied for the same subscription never
/// rolls its state back.
pub fn is_stale(last_applied: Option<DateTime<Utc>>, created: DateTime<Utc>) -> bool {
    last_applied.is_some_and(|last| created < last)
}

/// When an ended subscription's plan ends (R14): at the end of the paid period, or now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanEnd {
    At(DateTime<Utc>),
    Now,
    /// The account is on no plan it bought (already Free, or an Enterprise contract).
    NotBought,
}

pub fn plan_end(catalog: &Catalog, account: &Account, now: DateTime<Utc>) -> PlanEnd {
    if !catalog.plan(&account.plan).is_some_and(|p| p.sold) {
        return PlanEnd::NotBought;
    }
    match account.period.map(|p| p.end) {
        Some(end) if end > now => PlanEnd::At(end),
        _ => PlanEnd::Now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn period() -> Period {
        let start = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        Period { start, end: start + Duration::days(30) }
    }

    #[test]
    fn an_upgrade_grows_the_allowance_by_the_share_of_the_period_left() {
        let p = period();
        let (creator, pro) = (Credits::new(1700), Credits::new(5000));
        assert_eq!(upgrade_growth(creator, pro, p, p.start), Credits::new(3300));
        assert_eq!(upgrade_growth(creator, pro, p, p.start + Duration::days(15)), Credits::new(1650));
        // The last day buys a day's worth: 3300 / 30 = 110.
        assert_eq!(upgrade_growth(creator, pro, p, p.end - Duration::days(1)), Credits::new(110));
        assert_eq!(upgrade_growth(creator, pro, p, p.end), Credits::ZERO);
        assert_eq!(upgrade_growth(creator, pro, p, p.end + Duration::days(1)), Credits::ZERO);
        // Not an upgrade: nothing.
        assert_eq!(upgrade_growth(pro, creator, p, p.start), Credits::ZERO);
    }

    #[test]
    fn the_growth_rounds_halves_up() {
        let start = DateTime::from_timestamp(0, 0).unwrap();
        let p = Period { start, end: start + Duration::seconds(4) };
        // 3 × 1/4 = 0.75 → 1; 2 × 1/4 = 0.5 → 1; 1 × 1/4 = 0.25 → 0.
        let at = start + Duration::seconds(3);
        assert_eq!(upgrade_growth(Credits::ZERO, Credits::new(3), p, at), Credits::new(1));
        assert_eq!(upgrade_growth(Credits::ZERO, Credits::new(2), p, at), Credits::new(1));
        assert_eq!(upgrade_growth(Credits::ZERO, Credits::new(1), p, at), Credits::ZERO);
    }

    #[test]
    fn a_refund_takes_its_share_at_most_what_is_left() {
        let pack = Credits::new(2000);
        assert_eq!(refund_share(pack, 1800, 900, Credits::ZERO, Credits::new(2000)), Credits::new(1000));
        // The same cumulative refund again: nothing more.
        assert_eq!(refund_share(pack, 1800, 900, Credits::new(1000), Credits::new(1000)), Credits::ZERO);
        // A second refund for the rest.
        assert_eq!(refund_share(pack, 1800, 1800, Credits::new(1000), Credits::new(1000)), Credits::new(1000));
        // Part of the pack was spent: at most what is left.
        assert_eq!(refund_share(pack, 1800, 1800, Credits::ZERO, Credits::new(300)), Credits::new(300));
        // A third of a credit stays with the customer.
        assert_eq!(refund_share(Credits::new(500), 500, 1, Credits::ZERO, Credits::new(500)), Credits::new(1));
    }

    #[test]
    fn statuses_and_pending_changes_read_back_what_they_write_and_nothing_else() {
        for s in SubscriptionStatus::ALL {
            assert_eq!(SubscriptionStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(SubscriptionStatus::parse("actived"), None);
        for p in [PendingChange::Cancel, PendingChange::Plan("creator".into())] {
            assert_eq!(PendingChange::parse(&p.to_text()), Some(p));
        }
        assert_eq!(PendingChange::parse("plan:"), None);
        assert_eq!(PendingChange::parse("downgrade"), None);
        assert!(!SubscriptionStatus::Canceled.is_live() && SubscriptionStatus::Incomplete.is_live());
    }

    #[test]
    fn an_older_event_is_stale() {
        let t = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert!(is_stale(Some(t), t - Duration::seconds(1)));
        assert!(!is_stale(Some(t), t));
        assert!(!is_stale(None, t));
    }
}
