//! The payment decisions, judged on facts built in code.

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::account::{Account, Period, PlanStatus};
use crate::catalog::Catalog;
use crate::credits::Credits;
use crate::ids::{AccountId, BucketId};

pub(super) fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

/// Plans like the shipped catalog's, built in code (the domain reads no files).
pub(crate) fn catalog() -> Catalog {
    use crate::catalog::{Price, RawCatalog, RawPack, RawPlan};
    let plan = |id: &str, rank: u32, monthly: Option<i64>, sold: bool| RawPlan {
        id: id.into(),
        name: None,
        rank,
        lifetime_credits: (id == "free").then_some(250),
        monthly_credits: monthly,
        capabilities: vec!["canvas".into()],
        api_access: false,
        runs_per_minute: None,
        requires_verification: false,
        max_members: match id {
            "free" | "creator" => Some(1),
            "pro" => Some(3),
            _ => None,
        },
        trials: id == "free",
        sold,
        price: sold.then(|| Price { amount: 100, currency: "usd".into() }),
        stripe_price_id: sold.then(|| format!("price_{id}")),
    };
    Catalog::from_raw(RawCatalog {
        plans: vec![
            plan("free", 0, None, false),
            plan("creator", 1, Some(1700), true),
            plan("pro", 2, Some(5000), true),
            plan("enterprise", 4, None, false),
        ],
        models: vec![],
        topup_packs: vec![RawPack {
            id: "small".into(),
            name: None,
            credits: 500,
            expiry_days: 90,
            price: Price { amount: 500, currency: "usd".into() },
            stripe_price_id: "price_small".into(),
        }],
    })
    .unwrap()
}

pub(crate) fn account(plan: &str, pending: Option<PendingChange>) -> Account {
    let t = t0();
    Account {
        id: AccountId(uuid::Uuid::nil()),
        email: "a@b.co".into(),
        name: "A".into(),
        plan: plan.into(),
        status: PlanStatus::Active,
        period: Some(Period { start: t, end: t + Duration::days(30) }),
        contract: None,
        pending_change: pending,
        plan_ends_at: None,
        past_due_since: None,
        restricted: false,
        created_at: t,
    }
}

pub(super) fn facts(account: Account) -> SubscriptionFacts {
    SubscriptionFacts {
        account,
        subscription: Some(SubscriptionRecord {
            id: "sub_1".into(),
            status: SubscriptionStatus::Active,
            item_id: None,
            cancel_at_period_end: false,
            last_event_at: None,
            ended_at: None,
            duplicate_of: None,
        }),
        customer: "cus_1".into(),
        started: true,
        invoice_applied: false,
        allowance: Some(AllowanceBucket {
            id: BucketId(uuid::Uuid::nil()),
            granted: Credits::new(1700),
            remaining: Credits::new(1700),
        }),
        other_live: None,
    }
}

pub(super) fn update(price: &str, cancel: bool, status: SubscriptionStatus) -> SubscriptionInfo {
    SubscriptionInfo {
        id: "sub_1".into(),
        customer: Some("cus_1".into()),
        status,
        price_id: Some(price.into()),
        item_id: None,
        cancel_at_period_end: cancel,
        period_start: None,
        period_end: None,
        pending_update: false,
    }
}

fn plan_change(d: &Decision) -> PlanChange {
    d.effects
        .iter()
        .rev()
        .find_map(|e| match e {
            Effect::Plan(p) if p.status.is_some() || p.plan.is_some() => Some(p.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn grown(d: &Decision) -> Credits {
    d.effects
        .iter()
        .filter_map(|e| match e {
            Effect::GrowAllowance { credits, .. } => Some(*credits),
            _ => None,
        })
        .fold(Credits::ZERO, |a, b| Credits::new(a.get() + b.get()))
}

#[test]
fn a_higher_price_upgrades_now_a_lower_one_waits_for_the_period_end() {
    use SubscriptionStatus::Active;
    let c = catalog();
    let t = t0();
    let up =
        decide_subscription_updated(&c, &facts(account("creator", None)), &update("price_pro", false, Active), t, t)
            .unwrap();
    assert_eq!(up.applied, Applied::Done(Outcome::Upgraded { plan: "pro".into() }));
    assert!(grown(&up).is_positive());
    let down =
        decide_subscription_updated(&c, &facts(account("pro", None)), &update("price_creator", false, Active), t, t)
            .unwrap();
    assert_eq!(plan_change(&down).pending_change, Some(Some(PendingChange::Plan("creator".into()))));
    let same = decide_subscription_updated(
        &c,
        &facts(account("pro", Some(PendingChange::Plan("creator".into())))),
        &update("price_pro", false, Active),
        t,
        t,
    )
    .unwrap();
    assert_eq!(plan_change(&same).pending_change, Some(None), "going back to the current price drops the downgrade");
}

#[test]
fn cancelling_and_past_due_set_the_status_and_an_uncancel_clears_the_cancellation() {
    use SubscriptionStatus::{Active, PastDue};
    let c = catalog();
    let t = t0();
    let cancel =
        decide_subscription_updated(&c, &facts(account("pro", None)), &update("price_pro", true, Active), t, t)
            .unwrap();
    let p = plan_change(&cancel);
    assert_eq!((p.status, p.pending_change), (Some(PlanStatus::Canceling), Some(Some(PendingChange::Cancel))));
    let back = decide_subscription_updated(
        &c,
        &facts(account("pro", Some(PendingChange::Cancel))),
        &update("price_pro", false, Active),
        t,
        t,
    )
    .unwrap();
    let p = plan_change(&back);
    assert_eq!((p.status, p.pending_change), (Some(PlanStatus::Active), Some(None)));
    let due = decide_subscription_updated(&c, &facts(account("pro", None)), &update("price_pro", false, PastDue), t, t)
        .unwrap();
    assert_eq!(plan_change(&due).status, Some(PlanStatus::PastDue));
}

#[test]
fn an_event_older_than_the_last_applied_changes_nothing() {
    let c = catalog();
    let t = t0();
    let mut f = facts(account("creator", None));
    f.subscription.as_mut().unwrap().last_event_at = Some(t);
    let d = decide_subscription_updated(
        &c,
        &f,
        &update("price_pro", false, SubscriptionStatus::Active),
        t - Duration::seconds(1),
        t,
    )
    .unwrap();
    assert_eq!(d, Decision::ignored(Ignored::Stale));
}

#[test]
fn invoices_start_renew_or_change_a_plan_by_their_reason() {
    assert_eq!(BillingReason::parse(Some("subscription_create")), BillingReason::Create);
    assert_eq!(BillingReason::parse(Some("subscription_cycle")), BillingReason::Cycle);
    assert_eq!(BillingReason::parse(Some("subscription_update")), BillingReason::Update);
    assert_eq!(BillingReason::parse(Some("manual")), BillingReason::Other);
    assert_eq!(BillingReason::parse(None), BillingReason::Other);
}

#[test]
fn an_ended_plan_lasts_to_its_period_end_and_only_a_bought_plan_ends() {
    let c = catalog();
    let a = account("pro", None);
    let end = a.period.unwrap().end;
    assert_eq!(plan_end(&c, &a, end - Duration::days(1)), PlanEnd::At(end));
    assert_eq!(plan_end(&c, &a, end), PlanEnd::Now);
    assert_eq!(plan_end(&c, &account("free", None), end), PlanEnd::NotBought);
    assert_eq!(plan_end(&c, &account("enterprise", None), end), PlanEnd::NotBought);
}
