//! Every branch of every payment decider (`payments::events`), judged on facts built in code: the
//! store's part is to load these facts and write these effects; what they are is decided here.

use chrono::Duration;

use super::tests::{account, catalog, facts, t0, update};
use super::*;
use crate::account::PlanStatus;
use crate::burn::BucketKind;
use crate::credits::Credits;
use crate::ids::BucketId;

fn session(mode: SessionMode, paid: bool) -> SessionInfo {
    SessionInfo {
        id: "cs_1".into(),
        mode: Some(mode),
        paid,
        customer: Some("cus_1".into()),
        subscription: (mode == SessionMode::Subscription).then(|| "sub_1".into()),
        payment_intent: (mode == SessionMode::Payment).then(|| "pi_1".into()),
        amount_total: Some(500),
        amount_subtotal: None,
        currency: Some("usd".into()),
    }
}

fn session_facts(mode: SessionMode, status: SessionStatus) -> SessionFacts {
    SessionFacts {
        account: account("free", None),
        record: SessionRecord {
            id: "cs_1".into(),
            mode,
            item: if mode == SessionMode::Payment { "small".into() } else { "pro".into() },
            status,
            sold: None,
            currency: None,
        },
        pack_granted: false,
    }
}

fn grant(d: &Decision) -> Option<(Credits, chrono::DateTime<chrono::Utc>, i64)> {
    d.effects.iter().find_map(|e| match e {
        Effect::GrantPack { credits, expires_at, amount, .. } => Some((*credits, *expires_at, *amount)),
        _ => None,
    })
}

fn status_set(d: &Decision) -> Option<SessionStatus> {
    d.effects.iter().find_map(|e| match e {
        Effect::SessionStatus(s) => Some(*s),
        _ => None,
    })
}

// ---- checkout sessions ------------------------------------------------------------------------

#[test]
fn a_session_not_made_here_is_not_ours_whatever_its_event() {
    let (c, t) = (catalog(), t0());
    let s = session(SessionMode::Payment, true);
    assert_eq!(decide_session_completed(&c, None, &s, t).unwrap(), Decision::ignored(Ignored::NotOurs));
    assert_eq!(decide_session_paid(&c, None, &s, t).unwrap(), Decision::ignored(Ignored::NotOurs));
    assert_eq!(decide_session_failed(None), Decision::ignored(Ignored::NotOurs));
    assert_eq!(decide_session_expired(None), Decision::ignored(Ignored::NotOurs));
}

#[test]
fn a_completed_subscription_session_links_its_subscription_and_starts_nothing_yet() {
    let (c, t) = (catalog(), t0());
    let f = session_facts(SessionMode::Subscription, SessionStatus::Open);
    let d = decide_session_completed(&c, Some(&f), &session(SessionMode::Subscription, true), t).unwrap();
    assert_eq!(d.applied, Applied::Done(Outcome::SubscriptionLinked));
    assert!(d.effects.contains(&Effect::LinkSubscription { id: "sub_1".into(), customer: "cus_1".into() }));
    assert!(d.effects.contains(&Effect::SetCustomer("cus_1".into())));
    assert_eq!(status_set(&d), Some(SessionStatus::Completed));
    assert!(!d.effects.iter().any(|e| matches!(e, Effect::Plan(_) | Effect::GrantAllowance { .. })), "R14");

    let mut bare = session(SessionMode::Subscription, true);
    bare.subscription = None;
    let d = decide_session_completed(&c, Some(&f), &bare, t).unwrap();
    assert!(matches!(d.applied, Applied::Ignored(Ignored::NothingToDo(_))));
}

#[test]
fn a_paid_pack_session_grants_its_pack_once_expiring_from_payment() {
    let (c, t) = (catalog(), t0());
    let f = session_facts(SessionMode::Payment, SessionStatus::Open);
    let d = decide_session_completed(&c, Some(&f), &session(SessionMode::Payment, true), t).unwrap();
    assert_eq!(d.applied, Applied::Done(Outcome::PackGranted { pack: "small".into(), credits: Credits::new(500) }));
    assert_eq!(grant(&d), Some((Credits::new(500), t + Duration::days(90), 500)));
    assert_eq!(status_set(&d), Some(SessionStatus::Paid));
    assert!(d.effects.contains(&Effect::SetCustomer("cus_1".into())));

    let granted = SessionFacts { pack_granted: true, ..f };
    let d = decide_session_completed(&c, Some(&granted), &session(SessionMode::Payment, true), t).unwrap();
    assert_eq!(d.applied, Applied::Ignored(Ignored::AlreadyApplied));
    assert_eq!(grant(&d), None);
}

#[test]
fn an_unpaid_pack_session_waits_for_its_payment_and_the_payment_grants_it() {
    let (c, t) = (catalog(), t0());
    let f = session_facts(SessionMode::Payment, SessionStatus::Open);
    let d = decide_session_completed(&c, Some(&f), &session(SessionMode::Payment, false), t).unwrap();
    assert_eq!(d.applied, Applied::Done(Outcome::AwaitingPayment));
    assert_eq!((grant(&d), status_set(&d)), (None, Some(SessionStatus::Completed)));

    let later = t + Duration::days(2);
    let d = decide_session_paid(&c, Some(&f), &session(SessionMode::Payment, true), later).unwrap();
    assert_eq!(grant(&d).map(|g| g.1), Some(later + Duration::days(90)), "the expiry counts from the payment");
    let sub = session_facts(SessionMode::Subscription, SessionStatus::Open);
    let d = decide_session_paid(&c, Some(&sub), &session(SessionMode::Subscription, true), later).unwrap();
    assert!(matches!(d.applied, Applied::Ignored(Ignored::NothingToDo(_))));
}

#[test]
fn a_pack_is_granted_as_its_session_sold_it_whatever_the_catalog_says_now() {
    let (c, t) = (catalog(), t0());
    let mut f = session_facts(SessionMode::Payment, SessionStatus::Open);
    f.record.item = "retired".into();
    f.record.sold = Some(PackSold { credits: Credits::new(42), expiry_days: 7, amount: 99 });
    f.record.currency = Some("eur".into());
    let mut s = session(SessionMode::Payment, true);
    (s.amount_total, s.currency) = (None, None);
    let d = decide_session_completed(&c, Some(&f), &s, t).unwrap();
    assert_eq!(grant(&d), Some((Credits::new(42), t + Duration::days(7), 99)));
    assert!(d.effects.iter().any(|e| matches!(e, Effect::GrantPack { currency, .. } if currency == "eur")));

    // Sold before sessions kept what they sold, and gone from the catalog: kept for an admin.
    f.record.sold = None;
    assert_eq!(decide_session_completed(&c, Some(&f), &s, t), Err(Unapplicable::UnknownPack("retired".into())));
}

#[test]
fn a_failed_payment_fails_a_session_not_yet_paid_and_an_expiry_closes_an_open_one() {
    let open = session_facts(SessionMode::Payment, SessionStatus::Open);
    let paid = session_facts(SessionMode::Payment, SessionStatus::Paid);
    let d = decide_session_failed(Some(&open));
    assert_eq!(
        (d.applied, status_set(&decide_session_failed(Some(&open)))),
        (Applied::Done(Outcome::PaymentFailed), Some(SessionStatus::Failed))
    );
    assert_eq!(decide_session_failed(Some(&paid)), Decision::ignored(Ignored::AlreadyApplied));
    let d = decide_session_expired(Some(&open));
    assert_eq!(
        (d.applied.clone(), status_set(&d)),
        (Applied::Done(Outcome::SessionExpired), Some(SessionStatus::Expired))
    );
    let completed = session_facts(SessionMode::Payment, SessionStatus::Completed);
    assert_eq!(decide_session_expired(Some(&completed)), Decision::ignored(Ignored::AlreadyApplied));
}

// ---- refunds, disputes, customers ------------------------------------------------------------

fn purchase(bought: i64, clawed: i64, left: i64) -> PurchaseFacts {
    PurchaseFacts {
        account: account("free", None),
        purchase: Purchase::Pack { id: uuid::Uuid::nil() },
        bucket: Some(BucketId(uuid::Uuid::nil())),
        kind: BucketKind::Topup,
        expires_at: Some(t0() + Duration::days(90)),
        bought: Credits::new(bought),
        clawed: Credits::new(clawed),
        left: Credits::new(left),
        disputed: false,
    }
}

fn charge(amount: i64, refunded: i64) -> ChargeInfo {
    ChargeInfo { id: "ch_1".into(), payment_intent: Some("pi_1".into()), amount, amount_refunded: refunded }
}

fn clawed(d: &Decision) -> Credits {
    d.effects
        .iter()
        .find_map(|e| match e {
            Effect::Clawback { credits, .. } => Some(*credits),
            _ => None,
        })
        .unwrap_or(Credits::ZERO)
}

#[test]
fn a_refund_takes_back_its_share_of_what_is_left_once_per_refunded_amount() {
    let d = decide_refund(None, &charge(500, 500));
    assert_eq!(d, Decision::ignored(Ignored::NotOurs));

    let half = decide_refund(Some(&purchase(500, 0, 500)), &charge(500, 250));
    assert_eq!(
        (half.applied.clone(), clawed(&half)),
        (Applied::Done(Outcome::ClawedBack(Credits::new(250))), Credits::new(250))
    );
    assert!(half.effects.iter().any(|e| matches!(e, Effect::Clawback { reason, .. } if reason == "top-up refunded")));
    assert!(half.effects.contains(&Effect::RecordRefund {
        purchase: Purchase::Pack { id: uuid::Uuid::nil() },
        refunded_amount: 250,
        clawed: Credits::new(250),
    }));

    // The rest refunded after 400 were spent: only what is left is taken.
    let rest = decide_refund(Some(&purchase(500, 250, 100)), &charge(500, 500));
    assert_eq!(clawed(&rest), Credits::new(100));

    // Nothing left to take: the refund is recorded, nothing clawed back.
    let spent = decide_refund(Some(&purchase(500, 0, 0)), &charge(500, 500));
    assert_eq!((clawed(&spent), spent.applied), (Credits::ZERO, Applied::Done(Outcome::ClawedBack(Credits::ZERO))));

    // A payment that granted nothing (no bucket): recorded only.
    let none = decide_refund(Some(&PurchaseFacts { bucket: None, ..purchase(500, 0, 500) }), &charge(500, 500));
    assert_eq!(none.effects.len(), 1);

    let invoice = PurchaseFacts { purchase: Purchase::Invoice { invoice: "in_1".into() }, ..purchase(1700, 0, 1700) };
    let d = decide_refund(Some(&invoice), &charge(100, 100));
    assert!(
        d.effects
            .iter()
            .any(|e| matches!(e, Effect::Clawback { reason, .. } if reason == "subscription invoice refunded"))
    );
}

#[test]
fn a_dispute_takes_back_what_is_left_and_restricts_the_account_once() {
    let dispute = DisputeInfo {
        id: "dp_1".into(),
        charge: None,
        payment_intent: Some("pi_1".into()),
        status: DisputeStatus::Open,
    };
    assert_eq!(decide_dispute_created(None, &dispute), Decision::ignored(Ignored::NotOurs));
    let again = PurchaseFacts { disputed: true, ..purchase(500, 0, 500) };
    assert_eq!(decide_dispute_created(Some(&again), &dispute), Decision::ignored(Ignored::AlreadyApplied));

    let d = decide_dispute_created(Some(&purchase(500, 100, 300)), &dispute);
    assert_eq!(d.applied, Applied::Done(Outcome::Disputed { clawed: Credits::new(300) }));
    assert_eq!(clawed(&d), Credits::new(300));
    assert!(d.effects.iter().any(
        |e| matches!(e, Effect::RecordDispute { clawed, kind: BucketKind::Topup, .. } if *clawed == Credits::new(300))
    ));
    assert!(matches!(d.effects.last(), Some(Effect::Restrict { .. })));

    // All spent: nothing to take, still recorded and restricted.
    let d = decide_dispute_created(Some(&purchase(500, 0, 0)), &dispute);
    assert_eq!(clawed(&d), Credits::ZERO);
    assert!(d.effects.iter().any(|e| matches!(e, Effect::RecordDispute { .. })));
    assert!(d.effects.iter().any(|e| matches!(e, Effect::Restrict { .. })));

    // A payment that granted nothing: the account is restricted all the same.
    let d = decide_dispute_created(Some(&PurchaseFacts { bucket: None, ..purchase(500, 0, 500) }), &dispute);
    assert!(matches!(d.effects.as_slice(), [Effect::Restrict { .. }]));
}

#[test]
fn a_won_dispute_gives_back_what_it_took_and_a_lost_one_keeps_the_restriction() {
    let f = DisputeFacts {
        account: account("free", None),
        status: DisputeStatus::Open,
        kind: Some(BucketKind::Topup),
        expires_at: Some(t0()),
        clawed: Credits::new(300),
    };
    let closed = |status| DisputeInfo { id: "dp_1".into(), charge: None, payment_intent: None, status };
    assert_eq!(decide_dispute_closed(None, &closed(DisputeStatus::Won)), Decision::ignored(Ignored::NotOurs));
    let done = DisputeFacts { status: DisputeStatus::Won, ..f.clone() };
    assert_eq!(
        decide_dispute_closed(Some(&done), &closed(DisputeStatus::Lost)),
        Decision::ignored(Ignored::AlreadyApplied)
    );

    let won = decide_dispute_closed(Some(&f), &closed(DisputeStatus::Won));
    assert_eq!(won.applied, Applied::Done(Outcome::DisputeWon { restored: Credits::new(300) }));
    assert!(won.effects.iter().any(|e| matches!(e, Effect::RestoreBucket { credits, expires_at, .. } if *credits == Credits::new(300) && *expires_at == Some(t0()))));
    assert_eq!(won.effects.last(), Some(&Effect::LiftDisputeRestriction));
    let nothing_taken = DisputeFacts { clawed: Credits::ZERO, ..f.clone() };
    let won = decide_dispute_closed(Some(&nothing_taken), &closed(DisputeStatus::Won));
    assert_eq!(won.effects, vec![Effect::CloseDispute(DisputeStatus::Won), Effect::LiftDisputeRestriction]);

    let lost = decide_dispute_closed(Some(&f), &closed(DisputeStatus::Lost));
    assert_eq!(
        (lost.applied, lost.effects),
        (Applied::Done(Outcome::DisputeLost), vec![Effect::CloseDispute(DisputeStatus::Lost)])
    );
    let open = decide_dispute_closed(Some(&f), &closed(DisputeStatus::Open));
    assert!(matches!(open.applied, Applied::Ignored(Ignored::NothingToDo(_))));
}

#[test]
fn a_deleted_customer_is_forgotten_by_its_account_only() {
    let a = account("free", None);
    let d = decide_customer_deleted(Some(&a), "cus_1");
    assert_eq!(
        (d.applied, d.effects),
        (Applied::Done(Outcome::CustomerForgotten), vec![Effect::ForgetCustomer("cus_1".into())])
    );
    assert_eq!(decide_customer_deleted(None, "cus_1"), Decision::ignored(Ignored::NotOurs));
}

// ---- invoices -----------------------------------------------------------------------------------

fn invoice(reason: BillingReason, price: Option<&str>) -> InvoiceInfo {
    let t = t0();
    InvoiceInfo {
        id: "in_1".into(),
        customer: Some("cus_1".into()),
        subscription: Some("sub_1".into()),
        billing_reason: reason,
        lines: vec![InvoiceLine {
            price_id: price.map(str::to_string),
            amount: 100,
            period_start: t + Duration::days(30),
            period_end: t + Duration::days(60),
            proration: reason == BillingReason::Update,
        }],
        hosted_invoice_url: Some("https://pay/in_1".into()),
        amount_paid: 100,
    }
}

fn plan_of(d: &Decision) -> Option<PlanChange> {
    d.effects.iter().rev().find_map(|e| match e {
        Effect::Plan(p) => Some(p.clone()),
        _ => None,
    })
}

fn jobs(d: &Decision) -> Vec<PaymentJobKind> {
    d.effects
        .iter()
        .filter_map(|e| match e {
            Effect::PaymentJob { kind, .. } => Some(*kind),
            _ => None,
        })
        .collect()
}

#[test]
fn a_paid_invoice_already_applied_of_an_ended_subscription_or_not_a_period_changes_nothing() {
    let (c, t) = (catalog(), t0());
    let applied = SubscriptionFacts { invoice_applied: true, ..facts(account("pro", None)) };
    let inv = invoice(BillingReason::Cycle, Some("price_pro"));
    assert_eq!(
        decide_invoice_paid(&c, &applied, &inv, "sub_1", t).unwrap(),
        Decision::ignored(Ignored::AlreadyApplied)
    );
    let mut ended = facts(account("pro", None));
    ended.subscription.as_mut().unwrap().ended_at = Some(t);
    assert_eq!(decide_invoice_paid(&c, &ended, &inv, "sub_1", t).unwrap(), Decision::ignored(Ignored::Ended));
    let f = facts(account("pro", None));
    let manual = invoice(BillingReason::Other, Some("price_pro"));
    assert!(matches!(
        decide_invoice_paid(&c, &f, &manual, "sub_1", t).unwrap().applied,
        Applied::Ignored(Ignored::NothingToDo(_))
    ));
    let unpriced = invoice(BillingReason::Cycle, None);
    assert!(matches!(
        decide_invoice_paid(&c, &f, &unpriced, "sub_1", t).unwrap().applied,
        Applied::Ignored(Ignored::NothingToDo(_))
    ));
    let unknown = invoice(BillingReason::Cycle, Some("price_gone"));
    assert_eq!(decide_invoice_paid(&c, &f, &unknown, "sub_1", t), Err(Unapplicable::UnknownPrice("price_gone".into())));
}

#[test]
fn a_second_subscription_or_one_of_an_enterprise_account_is_refused_cancelled_and_refunded() {
    let (c, t) = (catalog(), t0());
    let inv = invoice(BillingReason::Create, Some("price_pro"));
    let second =
        SubscriptionFacts { other_live: Some("sub_0".into()), subscription: None, ..facts(account("pro", None)) };
    let d = decide_invoice_paid(&c, &second, &inv, "sub_1", t).unwrap();
    assert_eq!(d.applied, Applied::Done(Outcome::Refused { subscription: "sub_1".into() }));
    assert_eq!(jobs(&d), [PaymentJobKind::CancelSubscription, PaymentJobKind::RefundInvoice]);
    assert!(
        d.effects.iter().any(|e| matches!(e, Effect::Subscription(s) if s.duplicate_of.as_deref() == Some("sub_0")))
    );
    assert!(d.effects.iter().any(|e| matches!(e, Effect::LinkSubscription { .. })), "recorded, to refuse its events");
    assert!(!d.effects.iter().any(|e| matches!(e, Effect::GrantAllowance { .. })));

    let mut marked = facts(account("pro", None));
    marked.subscription.as_mut().unwrap().duplicate_of = Some("sub_0".into());
    assert_eq!(jobs(&decide_invoice_paid(&c, &marked, &inv, "sub_1", t).unwrap()).len(), 2);

    let mut enterprise = account("enterprise", None);
    enterprise.contract =
        Some(crate::account::Contract { monthly_credits: Credits::new(10_000), runs_per_minute: None, starts_at: t });
    let d = decide_invoice_paid(&c, &facts(enterprise), &inv, "sub_1", t).unwrap();
    assert_eq!(d.applied, Applied::Done(Outcome::Refused { subscription: "sub_1".into() }));
}

#[test]
fn a_first_invoice_starts_the_plan_and_a_renewal_renews_it_with_a_fresh_allowance() {
    let (c, t) = (catalog(), t0());
    let first = SubscriptionFacts { started: false, subscription: None, ..facts(account("free", None)) };
    let d = decide_invoice_paid(&c, &first, &invoice(BillingReason::Create, Some("price_pro")), "sub_1", t).unwrap();
    assert_eq!(d.applied, Applied::Done(Outcome::PlanStarted { plan: "pro".into() }));
    assert!(d.effects.contains(&Effect::EndAllowances));
    assert!(d.effects.iter().any(|e| matches!(e, Effect::GrantAllowance { credits, expires_at, .. } if *credits == Credits::new(5000) && *expires_at == t + Duration::days(60))));
    let p = plan_of(&d).unwrap();
    assert_eq!((p.plan.as_deref(), p.status), (Some("pro"), Some(PlanStatus::Active)));
    assert!(
        d.effects.iter().any(|e| matches!(e, Effect::RecordInvoice { credits, .. } if *credits == Credits::new(5000)))
    );

    let renew = decide_invoice_paid(
        &c,
        &facts(account("pro", None)),
        &invoice(BillingReason::Cycle, Some("price_pro")),
        "sub_1",
        t,
    )
    .unwrap();
    assert_eq!(renew.applied, Applied::Done(Outcome::Renewed { plan: "pro".into() }));

    // Cancelling at the period's end: renewed as canceling, the cancellation kept.
    let mut cancelling = facts(account("pro", None));
    cancelling.subscription.as_mut().unwrap().cancel_at_period_end = true;
    let d =
        decide_invoice_paid(&c, &cancelling, &invoice(BillingReason::Cycle, Some("price_pro")), "sub_1", t).unwrap();
    let p = plan_of(&d).unwrap();
    assert_eq!((p.status, p.pending_change), (Some(PlanStatus::Canceling), Some(Some(PendingChange::Cancel))));
}

#[test]
fn an_invoice_for_a_period_before_the_current_one_is_late_and_grants_nothing() {
    let (c, t) = (catalog(), t0());
    let mut late = invoice(BillingReason::Cycle, Some("price_pro"));
    late.lines[0].period_end = t + Duration::days(10); // the account's period ends at t + 30 days
    let d = decide_invoice_paid(&c, &facts(account("pro", None)), &late, "sub_1", t).unwrap();
    assert!(matches!(d.applied, Applied::Ignored(Ignored::NothingToDo(_))));
}

#[test]
fn a_paid_proration_invoice_confirms_an_upgrade_once() {
    let (c, t) = (catalog(), t0());
    let inv = invoice(BillingReason::Update, Some("price_pro"));
    let d = decide_invoice_paid(&c, &facts(account("creator", None)), &inv, "sub_1", t + Duration::days(15)).unwrap();
    assert_eq!(d.applied, Applied::Done(Outcome::Upgraded { plan: "pro".into() }));
    assert!(d.effects.iter().any(|e| matches!(e, Effect::GrowAllowance { credits, .. } if credits.is_positive())));
    // With no allowance bucket, the growth is a new allowance to the period's end.
    let bare = SubscriptionFacts { allowance: None, ..facts(account("creator", None)) };
    let d = decide_invoice_paid(&c, &bare, &inv, "sub_1", t + Duration::days(15)).unwrap();
    assert!(d.effects.iter().any(|e| matches!(e, Effect::GrantAllowance { .. })));
    // The subscription update confirmed it first: the plan is already pro, nothing grows.
    let d = decide_invoice_paid(&c, &facts(account("pro", None)), &inv, "sub_1", t).unwrap();
    assert_eq!(d.applied, Applied::Done(Outcome::Upgraded { plan: "pro".into() }));
    assert!(!d.effects.iter().any(|e| matches!(e, Effect::GrowAllowance { .. } | Effect::Plan(_))));
}

#[test]
fn a_failed_renewal_makes_the_plan_past_due_and_mails_the_invoice_to_pay() {
    let (c, t) = (catalog(), t0());
    let inv = invoice(BillingReason::Cycle, Some("price_pro"));
    let d = decide_invoice_failed(&c, &facts(account("pro", None)), &inv, "sub_1", t);
    assert_eq!(d.applied, Applied::Done(Outcome::PastDue));
    let p = plan_of(&d).unwrap();
    assert_eq!((p.status, p.past_due_since), (Some(PlanStatus::PastDue), Some(Some(t))));
    assert!(d.effects.iter().any(|e| matches!(e, Effect::Mail(m) if m.kind == crate::mail::MailKind::PaymentFailed)));
    // Past due since earlier: that moment is kept.
    let mut a = account("pro", None);
    a.past_due_since = Some(t - Duration::days(2));
    let p = plan_of(&decide_invoice_failed(&c, &facts(a), &inv, "sub_1", t)).unwrap();
    assert_eq!(p.past_due_since, Some(Some(t - Duration::days(2))));
    // Before the plan started: the subscription is past due, the account is not, no mail.
    let first = SubscriptionFacts { started: false, ..facts(account("free", None)) };
    let d = decide_invoice_failed(&c, &first, &inv, "sub_1", t);
    assert_eq!(d.applied, Applied::Done(Outcome::PastDue));
    assert!(!d.effects.iter().any(|e| matches!(e, Effect::Plan(_) | Effect::Mail(_))));
}

#[test]
fn a_failed_upgrade_invoice_mails_and_changes_nothing_else() {
    let (c, t) = (catalog(), t0());
    let d = decide_invoice_failed(
        &c,
        &facts(account("creator", None)),
        &invoice(BillingReason::Update, Some("price_pro")),
        "sub_1",
        t,
    );
    assert_eq!(d.applied, Applied::Done(Outcome::UpgradePaymentFailed));
    assert!(matches!(d.effects.as_slice(), [Effect::Mail(m)] if m.kind == crate::mail::MailKind::UpgradePaymentFailed));
}

#[test]
fn a_failed_invoice_already_paid_ended_refused_or_enterprise_changes_nothing() {
    let (c, t) = (catalog(), t0());
    let inv = invoice(BillingReason::Cycle, Some("price_pro"));
    let applied = SubscriptionFacts { invoice_applied: true, ..facts(account("pro", None)) };
    assert_eq!(decide_invoice_failed(&c, &applied, &inv, "sub_1", t), Decision::ignored(Ignored::AlreadyApplied));
    let mut ended = facts(account("pro", None));
    ended.subscription.as_mut().unwrap().ended_at = Some(t);
    assert_eq!(decide_invoice_failed(&c, &ended, &inv, "sub_1", t), Decision::ignored(Ignored::Ended));
    let mut refused = facts(account("pro", None));
    refused.subscription.as_mut().unwrap().duplicate_of = Some("sub_0".into());
    assert!(matches!(
        decide_invoice_failed(&c, &refused, &inv, "sub_1", t).applied,
        Applied::Ignored(Ignored::NothingToDo(_))
    ));
}

// ---- subscription updates and deletions -------------------------------------------------------

#[test]
fn a_subscription_update_of_an_ended_or_stale_subscription_or_an_unknown_price_changes_nothing() {
    let (c, t) = (catalog(), t0());
    use SubscriptionStatus::{Active, Incomplete};
    let mut ended = facts(account("pro", None));
    ended.subscription.as_mut().unwrap().ended_at = Some(t);
    assert_eq!(
        decide_subscription_updated(&c, &ended, &update("price_pro", false, Active), t, t).unwrap(),
        Decision::ignored(Ignored::Ended)
    );
    let back =
        decide_subscription_updated(&c, &facts(account("pro", None)), &update("price_pro", false, Incomplete), t, t)
            .unwrap();
    assert_eq!(back, Decision::ignored(Ignored::Stale), "never back to incomplete");
    assert_eq!(
        decide_subscription_updated(&c, &facts(account("pro", None)), &update("price_gone", false, Active), t, t),
        Err(Unapplicable::UnknownPrice("price_gone".into()))
    );
}

#[test]
fn a_subscription_not_started_refused_or_of_an_enterprise_account_is_recorded_only() {
    let (c, t) = (catalog(), t0());
    use SubscriptionStatus::Active;
    let new = SubscriptionFacts { started: false, subscription: None, ..facts(account("free", None)) };
    let d = decide_subscription_updated(&c, &new, &update("price_pro", false, Active), t, t).unwrap();
    assert_eq!(d.applied, Applied::Done(Outcome::SubscriptionRecorded { status: Active }));
    assert!(d.effects.iter().any(|e| matches!(e, Effect::LinkSubscription { .. })));
    assert!(!d.effects.iter().any(|e| matches!(e, Effect::Plan(_))));
    let mut refused = facts(account("pro", None));
    refused.subscription.as_mut().unwrap().duplicate_of = Some("sub_0".into());
    let d = decide_subscription_updated(&c, &refused, &update("price_pro", false, Active), t, t).unwrap();
    assert!(!d.effects.iter().any(|e| matches!(e, Effect::Plan(_))));
    // A refused subscription cancelled at Stripe ends here, the account untouched.
    let d = decide_subscription_updated(&c, &refused, &update("price_pro", false, SubscriptionStatus::Canceled), t, t)
        .unwrap();
    assert!(d.effects.iter().any(|e| matches!(e, Effect::Subscription(s) if s.ended_at == Some(t))));
    assert!(!d.effects.iter().any(|e| matches!(e, Effect::Plan(_) | Effect::ToFree)));
}

#[test]
fn an_upgrade_waits_until_stripe_applied_it_and_unpaid_marks_the_plan_unpaid() {
    let (c, t) = (catalog(), t0());
    use SubscriptionStatus::{Active, Unpaid};
    let mut pending = update("price_pro", false, Active);
    pending.pending_update = true;
    let d = decide_subscription_updated(&c, &facts(account("creator", None)), &pending, t, t).unwrap();
    assert_eq!(d.applied, Applied::Done(Outcome::SubscriptionRecorded { status: Active }));
    assert!(!d.effects.iter().any(|e| matches!(e, Effect::GrowAllowance { .. })));
    let d = decide_subscription_updated(&c, &facts(account("pro", None)), &update("price_pro", false, Unpaid), t, t)
        .unwrap();
    let p = plan_of(&d).unwrap();
    assert_eq!((p.status, p.past_due_since), (Some(PlanStatus::Unpaid), Some(Some(t))));
}

#[test]
fn a_subscription_cancelled_or_deleted_keeps_the_plan_to_its_period_end_then_free() {
    let (c, t) = (catalog(), t0());
    let f = facts(account("pro", None));
    let end = f.account.period.unwrap().end;
    let cancel = update("price_pro", false, SubscriptionStatus::Canceled);
    let d = decide_subscription_updated(&c, &f, &cancel, t, t).unwrap();
    assert_eq!(d.applied, Applied::Done(Outcome::PlanEndsAt(end)));
    let d = decide_subscription_deleted(&c, &f, &cancel, t, t);
    assert_eq!(d.applied, Applied::Done(Outcome::PlanEndsAt(end)));
    assert_eq!(plan_of(&d).unwrap().plan_ends_at, Some(Some(end)));
    let d = decide_subscription_deleted(&c, &f, &cancel, end, end);
    assert_eq!(d.applied, Applied::Done(Outcome::OnFree));
    assert!(d.effects.contains(&Effect::ToFree));
    // An account on no plan it bought (Enterprise, Free) keeps its plan.
    let d = decide_subscription_deleted(&c, &facts(account("enterprise", None)), &cancel, t, t);
    assert!(matches!(d.applied, Applied::Ignored(Ignored::NothingToDo(_))));
}

#[test]
fn a_deleted_subscription_ended_refused_or_never_started_only_ends_its_record() {
    let (c, t) = (catalog(), t0());
    let cancel = update("price_pro", false, SubscriptionStatus::Canceled);
    let mut ended = facts(account("pro", None));
    ended.subscription.as_mut().unwrap().ended_at = Some(t);
    assert_eq!(decide_subscription_deleted(&c, &ended, &cancel, t, t), Decision::ignored(Ignored::Ended));
    let never = SubscriptionFacts { started: false, ..facts(account("free", None)) };
    let d = decide_subscription_deleted(&c, &never, &cancel, t, t);
    assert_eq!(d.applied, Applied::Done(Outcome::SubscriptionRecorded { status: SubscriptionStatus::Canceled }));
    assert!(d.effects.iter().any(|e| matches!(e, Effect::Subscription(s) if s.ended_at == Some(t))));
    assert!(!d.effects.iter().any(|e| matches!(e, Effect::Plan(_) | Effect::ToFree)));
}
