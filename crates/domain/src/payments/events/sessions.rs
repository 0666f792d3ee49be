//! Checkout sessions: completed, paid later, failed, expired (R4, R13).

use chrono::{DateTime, Utc};

use super::*;
use crate::catalog::Catalog;

// ---- the decisions ------------------------------------------------------------------------

/// `checkout.session.completed`.
pub fn decide_session_completed(
    catalog: &Catalog,
    facts: Option<&SessionFacts>,
    s: &SessionInfo,
    now: DateTime<Utc>,
) -> Result<Decision, Unapplicable> {
    let Some(facts) = facts else { return Ok(Decision::ignored(Ignored::NotOurs)) };
    let mut effects: Vec<Effect> = s.customer.iter().map(|c| Effect::SetCustomer(c.clone())).collect();
    Ok(match facts.record.mode {
        SessionMode::Subscription => {
            let (Some(sub), Some(customer)) = (&s.subscription, &s.customer) else {
                return Ok(Decision::ignored(Ignored::NothingToDo("a subscription session without its subscription")));
            };
            effects.push(Effect::LinkSubscription { id: sub.clone(), customer: customer.clone() });
            effects.push(Effect::SessionStatus(SessionStatus::Completed));
            // R14: the plan starts when the first invoice is paid, not here.
            Decision::done(Outcome::SubscriptionLinked, effects)
        }
        SessionMode::Payment if s.paid => {
            let mut pack = decide_pack(catalog, facts, s, now)?;
            effects.append(&mut pack.effects);
            Decision { effects, applied: pack.applied }
        }
        SessionMode::Payment => {
            effects.push(Effect::SessionStatus(SessionStatus::Completed));
            Decision::done(Outcome::AwaitingPayment, effects)
        }
    })
}

/// `checkout.session.async_payment_succeeded`.
pub fn decide_session_paid(
    catalog: &Catalog,
    facts: Option<&SessionFacts>,
    s: &SessionInfo,
    now: DateTime<Utc>,
) -> Result<Decision, Unapplicable> {
    match facts {
        Some(f) if f.record.mode == SessionMode::Payment => decide_pack(catalog, f, s, now),
        Some(_) => Ok(Decision::ignored(Ignored::NothingToDo("not a pack"))),
        None => Ok(Decision::ignored(Ignored::NotOurs)),
    }
}

/// `checkout.session.async_payment_failed`.
pub fn decide_session_failed(facts: Option<&SessionFacts>) -> Decision {
    match facts {
        Some(f) if f.record.status != SessionStatus::Paid => {
            Decision::done(Outcome::PaymentFailed, vec![Effect::SessionStatus(SessionStatus::Failed)])
        }
        Some(_) => Decision::ignored(Ignored::AlreadyApplied),
        None => Decision::ignored(Ignored::NotOurs),
    }
}

/// `checkout.session.expired`: the session is closed; the next checkout makes a new one.
pub fn decide_session_expired(facts: Option<&SessionFacts>) -> Decision {
    match facts {
        Some(f) if f.record.status == SessionStatus::Open => {
            Decision::done(Outcome::SessionExpired, vec![Effect::SessionStatus(SessionStatus::Expired)])
        }
        Some(_) => Decision::ignored(Ignored::AlreadyApplied),
        None => Decision::ignored(Ignored::NotOurs),
    }
}

/// R4, R18: one paid session grants its pack once, as it was sold, expiring `expiry_days` after
/// payment.
fn decide_pack(
    catalog: &Catalog,
    facts: &SessionFacts,
    s: &SessionInfo,
    now: DateTime<Utc>,
) -> Result<Decision, Unapplicable> {
    if facts.pack_granted {
        return Ok(Decision::ignored(Ignored::AlreadyApplied));
    }
    let item = &facts.record.item;
    let (sold, currency) = match (facts.record.sold, catalog.pack(item)) {
        (Some(sold), pack) => {
            let currency = facts.record.currency.clone().or_else(|| pack.map(|p| p.price.currency.clone()));
            (sold, currency)
        }
        (None, Some(pack)) => (
            PackSold { credits: pack.credits, expiry_days: pack.expiry_days, amount: pack.price.amount },
            Some(pack.price.currency.clone()),
        ),
        (None, None) => return Err(Unapplicable::UnknownPack(item.clone())),
    };
    Ok(Decision::done(
        Outcome::PackGranted { pack: item.clone(), credits: sold.credits },
        vec![
            Effect::GrantPack {
                pack: item.clone(),
                credits: sold.credits,
                expires_at: now + chrono::Duration::days(i64::from(sold.expiry_days)),
                payment_intent: s.payment_intent.clone(),
                // R28: a purchase is worth what it cost before tax.
                amount: crate::payments::tax::session_value(s.amount_subtotal, s.amount_total, sold.amount),
                currency: s.currency.clone().or(currency).unwrap_or_else(|| "usd".into()),
            },
            Effect::SessionStatus(SessionStatus::Paid),
        ],
    ))
}
