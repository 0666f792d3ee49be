//! Charges: refunds and disputes (R17, R19), and a customer deleted at Stripe.

use super::*;
use crate::account::Account;
use crate::credits::Credits;
use crate::payments::subscription::refund_share;

/// `charge.refunded` (R17): the refunded share of what the payment bought (a pack, or a
/// subscription invoice's allowance), at most what is left, once per refunded amount.
pub fn decide_refund(facts: Option<&PurchaseFacts>, c: &ChargeInfo) -> Decision {
    let Some(p) = facts else { return Decision::ignored(Ignored::NotOurs) };
    let take = match p.bucket {
        Some(_) => refund_share(p.bought, c.amount, c.amount_refunded, p.clawed, p.left),
        None => Credits::ZERO,
    };
    let mut effects = Vec::new();
    if let (Some(bucket), true) = (p.bucket, take.is_positive()) {
        let reason = match p.purchase {
            Purchase::Pack { .. } => "top-up refunded",
            Purchase::Invoice { .. } => "subscription invoice refunded",
        };
        effects.push(Effect::Clawback {
            bucket,
            credits: take,
            reference: format!("refund:{}", c.id),
            reason: reason.into(),
        });
    }
    effects.push(Effect::RecordRefund {
        purchase: p.purchase.clone(),
        refunded_amount: c.amount_refunded,
        clawed: take,
    });
    Decision::done(Outcome::ClawedBack(take), effects)
}

/// `charge.dispute.created` (R19): what is left of what the payment bought is clawed back and
/// the account is restricted.
pub fn decide_dispute_created(facts: Option<&PurchaseFacts>, d: &DisputeInfo) -> Decision {
    let Some(p) = facts else { return Decision::ignored(Ignored::NotOurs) };
    if p.disputed {
        return Decision::ignored(Ignored::AlreadyApplied);
    }
    let mut effects = Vec::new();
    let mut take = Credits::ZERO;
    if let Some(bucket) = p.bucket {
        take = Credits::new((p.bought.get() - p.clawed.get()).clamp(0, p.left.get().max(0)));
        if take.is_positive() {
            effects.push(Effect::Clawback {
                bucket,
                credits: take,
                reference: format!("dispute:{}", d.id),
                reason: "payment disputed".into(),
            });
        }
        effects.push(Effect::RecordDispute {
            purchase: p.purchase.clone(),
            bucket,
            kind: p.kind,
            expires_at: p.expires_at,
            clawed: take,
        });
    }
    effects.push(Effect::Restrict { reason: format!("payment disputed ({})", d.id) });
    Decision::done(Outcome::Disputed { clawed: take }, effects)
}

/// `charge.dispute.closed` (R19): won gives the credits back with their original expiry and
/// lifts the restriction the dispute caused; lost keeps the account restricted.
pub fn decide_dispute_closed(facts: Option<&DisputeFacts>, d: &DisputeInfo) -> Decision {
    let Some(f) = facts else { return Decision::ignored(Ignored::NotOurs) };
    if f.status != DisputeStatus::Open {
        return Decision::ignored(Ignored::AlreadyApplied);
    }
    match d.status {
        DisputeStatus::Won => {
            let mut effects = vec![Effect::CloseDispute(DisputeStatus::Won)];
            if let (Some(kind), true) = (f.kind, f.clawed.is_positive()) {
                effects.push(Effect::RestoreBucket {
                    kind,
                    credits: f.clawed,
                    expires_at: f.expires_at,
                    reason: format!("dispute {} won", d.id),
                });
            }
            effects.push(Effect::LiftDisputeRestriction);
            Decision::done(Outcome::DisputeWon { restored: f.clawed }, effects)
        }
        DisputeStatus::Lost => Decision::done(Outcome::DisputeLost, vec![Effect::CloseDispute(DisputeStatus::Lost)]),
        DisputeStatus::Open => Decision::ignored(Ignored::NothingToDo("the dispute is still open")),
    }
}

/// `customer.deleted`: the account forgets its Stripe customer; the next checkout makes one.
pub fn decide_customer_deleted(account: Option<&Account>, customer: &str) -> Decision {
    match account {
        Some(_) => Decision::done(Outcome::CustomerForgotten, vec![Effect::ForgetCustomer(customer.to_string())]),
        None => Decision::ignored(Ignored::NotOurs),
    }
}
