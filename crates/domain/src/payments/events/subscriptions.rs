//! Subscriptions and their invoices: paid, failed, updated, deleted (R3, R13, R14, R18).

use chrono::{DateTime, Utc};

use super::*;
use crate::account::{Account, Period, PlanStatus};
use crate::catalog::{Catalog, Plan};
use crate::credits::Credits;
use crate::mail::{Mail, MailKind};
use crate::payments::subscription::{
    PendingChange, PlanEnd, SubscriptionStatus, is_stale, is_upgrade, plan_end, plan_for_price, upgrade_growth,
};
use crate::reports::UnitValue;

/// The subscription's record, or the link that makes it (events come in any order).
pub(super) fn link(facts: &SubscriptionFacts, id: &str) -> Vec<Effect> {
    if facts.subscription.is_none() {
        vec![Effect::LinkSubscription { id: id.to_string(), customer: facts.customer.clone() }]
    } else {
        Vec::new()
    }
}

/// Section 10: a plan's allowance is worth its price over its monthly credits.
pub(super) fn plan_value(plan: &Plan) -> Option<UnitValue> {
    let price = plan.price.as_ref()?;
    let credits = plan.monthly_credits?.get();
    (credits > 0).then(|| UnitValue { amount: price.amount, credits, currency: price.currency.clone() })
}

pub(super) fn is_enterprise(account: &Account) -> bool {
    account.plan == crate::catalog::ENTERPRISE_PLAN && account.contract.is_some()
}

/// R18: a subscription that must not be granted anything is recorded, cancelled and its invoice
/// refunded at Stripe.
fn refuse(facts: &SubscriptionFacts, sub_id: &str, inv: &InvoiceInfo) -> Decision {
    let mut effects = link(facts, sub_id);
    if let Some(first) = &facts.other_live {
        effects.push(Effect::Subscription(SubscriptionChange {
            duplicate_of: Some(first.clone()),
            ..SubscriptionChange::default()
        }));
    }
    effects.push(Effect::RecordInvoice {
        subscription: sub_id.to_string(),
        billing_reason: inv.billing_reason,
        credits: Credits::ZERO,
        amount_paid: inv.amount_paid,
    });
    effects.push(Effect::PaymentJob { kind: PaymentJobKind::CancelSubscription, subject: sub_id.to_string() });
    effects.push(Effect::PaymentJob { kind: PaymentJobKind::RefundInvoice, subject: inv.id.clone() });
    Decision::done(Outcome::Refused { subscription: sub_id.to_string() }, effects)
}

/// `invoice.paid`: a plan starts (R14) or renews (R3), or an upgrade is confirmed (R14); late,
/// repeated and stray invoices change nothing (section 5); a second subscription, or one of an
/// Enterprise account, is refused (R18).
pub fn decide_invoice_paid(
    catalog: &Catalog,
    facts: &SubscriptionFacts,
    inv: &InvoiceInfo,
    sub_id: &str,
    created: DateTime<Utc>,
) -> Result<Decision, Unapplicable> {
    if facts.invoice_applied {
        return Ok(Decision::ignored(Ignored::AlreadyApplied));
    }
    if facts.subscription.as_ref().is_some_and(|r| r.ended_at.is_some()) {
        return Ok(Decision::ignored(Ignored::Ended));
    }
    if inv.billing_reason == BillingReason::Other {
        return Ok(Decision::ignored(Ignored::NothingToDo("not a subscription period invoice")));
    }
    let Some(line) = inv.plan_line() else { return Ok(Decision::ignored(Ignored::NothingToDo("no priced line"))) };
    let price = line.price_id.clone().unwrap_or_default();
    let plan = plan_for_price(catalog, &price).ok_or(Unapplicable::UnknownPrice(price))?;
    let duplicate = facts.subscription.as_ref().is_some_and(|r| r.duplicate_of.is_some());
    if duplicate || is_enterprise(&facts.account) || facts.other_live.is_some() {
        return Ok(refuse(facts, sub_id, inv));
    }
    let mut effects = link(facts, sub_id);
    let cancelling = facts.subscription.as_ref().is_some_and(|s| s.cancel_at_period_end);
    let account = &facts.account;
    let (outcome, credits) = match inv.billing_reason {
        BillingReason::Create | BillingReason::Cycle => {
            // Section 5: an invoice for a period that ends before the account's current one is late.
            if facts.started && account.period.is_some_and(|p| line.period_end < p.end) {
                return Ok(Decision::ignored(Ignored::NothingToDo("a period before the current one")));
            }
            effects.push(Effect::EndAllowances);
            let monthly = plan.monthly_credits.unwrap_or(Credits::ZERO);
            if monthly.is_positive() {
                effects.push(Effect::GrantAllowance {
                    credits: monthly,
                    expires_at: line.period_end,
                    reason: format!("{} allowance", plan.name),
                    value: plan_value(plan),
                });
            }
            effects.push(Effect::Plan(PlanChange {
                plan: Some(plan.id.clone()),
                status: Some(if cancelling { PlanStatus::Canceling } else { PlanStatus::Active }),
                period: Some(Period { start: line.period_start, end: line.period_end }),
                pending_change: Some(cancelling.then_some(PendingChange::Cancel)),
                plan_ends_at: Some(None),
                past_due_since: Some(None),
            }));
            effects.push(Effect::Subscription(SubscriptionChange {
                status: Some(SubscriptionStatus::Active),
                price_id: Some(line.price_id.clone()),
                period: Some((Some(line.period_start), Some(line.period_end))),
                ..SubscriptionChange::default()
            }));
            let outcome = if facts.started {
                Outcome::Renewed { plan: plan.id.clone() }
            } else {
                Outcome::PlanStarted { plan: plan.id.clone() }
            };
            (outcome, monthly)
        }
        _ => {
            // R14: the upgrade's proration invoice, paid: it confirms the upgrade, unless the
            // subscription update did first.
            if is_upgrade(catalog, account, plan) {
                let (mut upgrade, grown) = upgrade(catalog, facts, plan, created);
                effects.append(&mut upgrade);
                (Outcome::Upgraded { plan: plan.id.clone() }, grown)
            } else {
                (Outcome::Upgraded { plan: plan.id.clone() }, Credits::ZERO)
            }
        }
    };
    effects.push(Effect::RecordInvoice {
        subscription: sub_id.to_string(),
        billing_reason: inv.billing_reason,
        credits,
        amount_paid: inv.amount_paid,
    });
    Ok(Decision::done(outcome, effects))
}

/// R14: the allowance grows by the new plan's monthly credits less the old plan's, times the
/// share of the period still to run at `at` (when Stripe confirmed the change); the plan changes,
/// and a pending downgrade or cancellation is gone.
fn upgrade(catalog: &Catalog, facts: &SubscriptionFacts, plan: &Plan, at: DateTime<Utc>) -> (Vec<Effect>, Credits) {
    let account = &facts.account;
    let old = account.plan(catalog).monthly_credits.unwrap_or(Credits::ZERO);
    let new = plan.monthly_credits.unwrap_or(Credits::ZERO);
    let grown = match account.period {
        Some(period) => upgrade_growth(old, new, period, at),
        None => Credits::ZERO,
    };
    let mut effects = Vec::new();
    if grown.is_positive() {
        let reason = format!("upgrade to {}", plan.name);
        match (facts.allowance, account.period) {
            (Some(bucket), _) => effects.push(Effect::GrowAllowance { bucket: bucket.id, credits: grown, reason }),
            (None, Some(period)) => effects.push(Effect::GrantAllowance {
                credits: grown,
                expires_at: period.end,
                reason,
                value: plan_value(plan),
            }),
            (None, None) => {}
        }
    }
    effects.push(Effect::Plan(PlanChange {
        plan: Some(plan.id.clone()),
        status: Some(PlanStatus::Active),
        pending_change: Some(None),
        ..PlanChange::default()
    }));
    (effects, grown)
}

/// `invoice.payment_failed`: R14. A renewal leaves the account past_due with no new allowance
/// and mails it the invoice to pay; an upgrade's failed proration invoice changes nothing but a
/// mail; an invoice already paid, or of an ended or refused subscription, changes nothing.
pub fn decide_invoice_failed(
    catalog: &Catalog,
    facts: &SubscriptionFacts,
    inv: &InvoiceInfo,
    sub_id: &str,
    created: DateTime<Utc>,
) -> Decision {
    if facts.invoice_applied {
        return Decision::ignored(Ignored::AlreadyApplied);
    }
    let record = facts.subscription.as_ref();
    if record.is_some_and(|r| r.ended_at.is_some()) {
        return Decision::ignored(Ignored::Ended);
    }
    if record.is_some_and(|r| r.duplicate_of.is_some()) || is_enterprise(&facts.account) {
        return Decision::ignored(Ignored::NothingToDo("a subscription this account is not billed by"));
    }
    let a = &facts.account;
    let pay_url = inv.hosted_invoice_url.clone().unwrap_or_default();
    if inv.billing_reason == BillingReason::Update {
        let plan = inv
            .plan_line()
            .and_then(|l| l.price_id.as_deref())
            .and_then(|p| plan_for_price(catalog, p))
            .map(|p| p.id.clone())
            .unwrap_or_else(|| "new".into());
        let mail = Mail::new(MailKind::UpgradePaymentFailed, &a.email, Some(a.id), &inv.id)
            .fact("invoice", inv.id.clone())
            .fact("plan", plan)
            .fact("name", a.name.clone())
            .fact("pay_url", pay_url);
        return Decision::done(Outcome::UpgradePaymentFailed, vec![Effect::Mail(mail)]);
    }
    let mut effects = link(facts, sub_id);
    effects.push(Effect::Subscription(SubscriptionChange {
        status: Some(SubscriptionStatus::PastDue),
        ..SubscriptionChange::default()
    }));
    if facts.started {
        effects.push(Effect::Plan(PlanChange {
            status: Some(PlanStatus::PastDue),
            past_due_since: Some(Some(a.past_due_since.unwrap_or(created))),
            ..PlanChange::default()
        }));
        effects.push(Effect::Mail(
            Mail::new(MailKind::PaymentFailed, &a.email, Some(a.id), &inv.id)
                .fact("invoice", inv.id.clone())
                .fact("plan", a.plan.clone())
                .fact("name", a.name.clone())
                .fact("pay_url", pay_url),
        ));
    }
    Decision::done(Outcome::PastDue, effects)
}

/// `customer.subscription.created` / `.updated`: R14's price changes, cancellations, statuses,
/// never rolled back by an older or a same-time event (section 5).
pub fn decide_subscription_updated(
    catalog: &Catalog,
    facts: &SubscriptionFacts,
    s: &SubscriptionInfo,
    created: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Decision, Unapplicable> {
    let mut effects = link(facts, &s.id);
    if let Some(record) = &facts.subscription {
        if is_stale(record.last_event_at, created) {
            return Ok(Decision::ignored(Ignored::Stale));
        }
        if record.ended_at.is_some() {
            return Ok(Decision::ignored(Ignored::Ended));
        }
        // Stripe never takes a subscription back to incomplete: such an event is older news.
        if s.status == SubscriptionStatus::Incomplete && record.status != SubscriptionStatus::Incomplete {
            return Ok(Decision::ignored(Ignored::Stale));
        }
    }
    let plan = match s.price_id.as_deref() {
        Some(price) => Some(plan_for_price(catalog, price).ok_or_else(|| Unapplicable::UnknownPrice(price.into()))?),
        None => None,
    };
    effects.push(Effect::Subscription(SubscriptionChange {
        status: Some(s.status),
        price_id: Some(s.price_id.clone()),
        item_id: s.item_id.clone(),
        cancel_at_period_end: Some(s.cancel_at_period_end),
        period: Some((s.period_start, s.period_end)),
        last_event_at: Some(created),
        ..SubscriptionChange::default()
    }));
    let refused = facts.subscription.as_ref().is_some_and(|r| r.duplicate_of.is_some());
    if s.status == SubscriptionStatus::Canceled {
        if refused {
            effects.push(Effect::Subscription(SubscriptionChange { ended_at: Some(now), ..Default::default() }));
            return Ok(Decision::done(Outcome::SubscriptionRecorded { status: s.status }, effects));
        }
        let ended = decide_end(catalog, &facts.account, now);
        effects.extend(ended.effects);
        return Ok(Decision { effects, applied: ended.applied });
    }
    // Before the first paid invoice the plan has not started (R14); a refused subscription, or
    // one of an Enterprise account, bills nothing here.
    if !facts.started || refused || is_enterprise(&facts.account) {
        return Ok(Decision::done(Outcome::SubscriptionRecorded { status: s.status }, effects));
    }
    let account = &facts.account;
    // A pending downgrade is replaced by what the subscription says now; a cancellation stays
    // until the subscription says otherwise.
    let mut pending = account.pending_change.clone().filter(|p| *p == PendingChange::Cancel);
    let mut outcome = Outcome::SubscriptionRecorded { status: s.status };
    let mut plan_change = PlanChange::default();
    if let Some(plan) = plan {
        if is_upgrade(catalog, account, plan) {
            // R14: only once Stripe applied it: active, with no pending update.
            if s.status == SubscriptionStatus::Active && !s.pending_update {
                let (mut upgrade, _) = upgrade(catalog, facts, plan, created);
                effects.append(&mut upgrade);
                outcome = Outcome::Upgraded { plan: plan.id.clone() };
                pending = None;
            }
        } else if plan.id != account.plan {
            pending = Some(PendingChange::Plan(plan.id.clone()));
        }
    }
    let status = if s.cancel_at_period_end {
        pending = Some(PendingChange::Cancel);
        PlanStatus::Canceling
    } else {
        if pending == Some(PendingChange::Cancel) {
            pending = None;
        }
        match s.status {
            SubscriptionStatus::PastDue => {
                plan_change.past_due_since = Some(Some(account.past_due_since.unwrap_or(created)));
                PlanStatus::PastDue
            }
            SubscriptionStatus::Unpaid => {
                plan_change.past_due_since = Some(Some(account.past_due_since.unwrap_or(created)));
                PlanStatus::Unpaid
            }
            _ => {
                plan_change.past_due_since = Some(None);
                PlanStatus::Active
            }
        }
    };
    plan_change.status = Some(status);
    plan_change.pending_change = Some(pending);
    effects.push(Effect::Plan(plan_change));
    Ok(Decision::done(outcome, effects))
}

/// `customer.subscription.deleted`.
pub fn decide_subscription_deleted(
    catalog: &Catalog,
    facts: &SubscriptionFacts,
    s: &SubscriptionInfo,
    created: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Decision {
    if facts.subscription.as_ref().is_some_and(|r| r.ended_at.is_some()) {
        return Decision::ignored(Ignored::Ended);
    }
    let mut effects = link(facts, &s.id);
    effects.push(Effect::Subscription(SubscriptionChange {
        status: Some(SubscriptionStatus::Canceled),
        last_event_at: Some(created),
        ..SubscriptionChange::default()
    }));
    let refused = facts.subscription.as_ref().is_some_and(|r| r.duplicate_of.is_some());
    if refused || !facts.started {
        effects.push(Effect::Subscription(SubscriptionChange { ended_at: Some(now), ..Default::default() }));
        return Decision::done(Outcome::SubscriptionRecorded { status: SubscriptionStatus::Canceled }, effects);
    }
    let ended = decide_end(catalog, &facts.account, now);
    effects.extend(ended.effects);
    Decision { effects, applied: ended.applied }
}

/// R14: the plan is kept to the end of the paid period, then the account is on Free.
pub(super) fn decide_end(catalog: &Catalog, account: &Account, now: DateTime<Utc>) -> Decision {
    let mut effects =
        vec![Effect::Subscription(SubscriptionChange { ended_at: Some(now), ..SubscriptionChange::default() })];
    match plan_end(catalog, account, now) {
        PlanEnd::NotBought => Decision {
            effects,
            applied: Applied::Ignored(Ignored::NothingToDo("the account was on no plan it bought")),
        },
        PlanEnd::At(end) => {
            effects.push(Effect::Plan(PlanChange {
                status: Some(PlanStatus::Canceling),
                pending_change: Some(Some(PendingChange::Cancel)),
                plan_ends_at: Some(Some(end)),
                ..PlanChange::default()
            }));
            Decision::done(Outcome::PlanEndsAt(end), effects)
        }
        PlanEnd::Now => {
            effects.push(Effect::ToFree);
            Decision::done(Outcome::OnFree, effects)
        }
    }
}
