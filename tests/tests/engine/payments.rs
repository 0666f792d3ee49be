//! The payments issue: the four ways money leaked at the edges of the Stripe lifecycle, each
//! shut by a test named for what it prevents, and events of one new subscription arriving
//! together. Real HTTP, the fake Stripe, events signed as Stripe signs them.

use credits_tests::stripe::{
    FakeStripe, charge, dispute, event, invoice, invoice_payment, new_id, payment_intent, subscription,
};
use credits_tests::{As, TestApp};
use serde_json::{Value, json};

use super::stripe::{DAY, Sub, buy, checkout, price_of, remaining, subscribe};

/// The account's queued mails, by kind.
fn mail_kinds(app: &TestApp) -> Vec<String> {
    use diesel::prelude::*;
    credits_db::schema::outbox::table.select(credits_db::schema::outbox::kind).load(&mut app.db.conn()).unwrap()
}

/// The subscription as the fake Stripe holds it, so the service can change it there.
async fn at_stripe(fake: &FakeStripe, sub: &Sub) {
    fake.put(json!([subscription(&sub.id, &sub.customer, &sub.price, sub.start, sub.end, "active")])).await;
}

/// A paid invoice of `sub` for (price, amount) with its PaymentIntent, charge and invoice payment
/// at the fake Stripe; returns (invoice, charge id, PaymentIntent id).
async fn paid_invoice(fake: &FakeStripe, sub: &Sub, reason: &str, price: &str, amount: i64) -> (Value, String, String) {
    let inv_id = new_id("in_");
    let (ch, pi) = (new_id("ch_"), new_id("pi_"));
    let mut inv = invoice(&inv_id, &sub.customer, &sub.id, reason, &[(price, amount, false)], sub.start, sub.end);
    inv["amount_paid"] = json!(amount);
    fake.put(json!([
        inv.clone(),
        payment_intent(&pi, &ch, amount, &sub.customer),
        charge(&ch, &pi, amount, 0),
        invoice_payment(&inv_id, &pi, amount),
    ]))
    .await;
    (inv, ch, pi)
}

#[actix_web::test]
async fn an_upgrade_whose_payment_fails_grants_nothing() {
    let (app, fake) = TestApp::spawn_with_stripe().await;
    let acct = app.account().await;
    let sub = subscribe(&app, &fake, &acct, "creator").await;
    at_stripe(&fake, &sub).await;
    fake.arm_payment_failure(&sub.customer, "card_declined").await;
    app.advance(10 * DAY).await;
    checkout(&app, &acct, "subscription", "pro").await.expect(201);
    // Asked so that Stripe applies the new price only once its prorated invoice is paid.
    let asked = fake.requests("POST", &format!("/v1/subscriptions/{}", sub.id)).await;
    let form = &asked.last().unwrap()["form"];
    assert_eq!(
        (form["proration_behavior"].as_str(), form["payment_behavior"].as_str()),
        (Some("always_invoice"), Some("pending_if_incomplete"))
    );
    // Stripe kept the old price with a pending update and an open proration invoice.
    let at_stripe = fake.get(&sub.id).await;
    assert!(at_stripe["pending_update"].is_object(), "the fake kept the update pending: {at_stripe}");
    let open = fake.get(at_stripe["latest_invoice"].as_str().unwrap()).await;
    let now = app.clock().await;
    app.webhook(&event("invoice.payment_failed", open, now)).await.expect(200);
    app.webhook(&event("customer.subscription.updated", at_stripe.clone(), now + 1)).await.expect(200);
    // Even an update that carries the new price is no upgrade until Stripe applies it: one with
    // its pending update, or past_due (what allow_incomplete would have left), grants nothing.
    let mut pending = subscription(&sub.id, &sub.customer, &price_of("pro"), sub.start, sub.end, "active");
    pending["pending_update"] = at_stripe["pending_update"].clone();
    app.webhook(&event("customer.subscription.updated", pending, now + 2)).await.expect(200);
    let past_due = subscription(&sub.id, &sub.customer, &price_of("pro"), sub.start, sub.end, "past_due");
    app.webhook(&event("customer.subscription.updated", past_due, now + 3)).await.expect(200);
    let info = app.get(&acct, "/v1/account").await.expect(200);
    assert_eq!(info["plan"], "creator");
    assert_eq!(remaining(&app, &acct, "allowance").await, 1700, "no credits for an unpaid upgrade");
    assert_eq!(app.available(&acct).await, 1700 + 250);
    assert!(mail_kinds(&app).contains(&"upgrade_payment_failed".to_string()));
    app.assert_ledger_consistent();
    app.assert_invariants().await;
}

#[actix_web::test]
async fn an_upgrade_on_the_last_day_buys_a_days_worth_of_credits() {
    let (app, fake) = TestApp::spawn_with_stripe().await;
    let acct = app.account().await;
    let sub = subscribe(&app, &fake, &acct, "creator").await;
    at_stripe(&fake, &sub).await;
    // Day 29 of 30: Pro for the last day. Stripe charges a thirtieth of the difference...
    app.advance(sub.end - DAY - app.clock().await).await;
    checkout(&app, &acct, "subscription", "pro").await.expect(201);
    let now = app.clock().await;
    app.webhook(&event(
        "customer.subscription.updated",
        subscription(&sub.id, &sub.customer, &price_of("pro"), sub.start, sub.end, "active"),
        now,
    ))
    .await
    .expect(200);
    assert_eq!(app.get(&acct, "/v1/account").await.expect(200)["plan"], "pro");
    // ...and the allowance grows by a thirtieth of (5000 - 1700): 110, not 3300.
    assert_eq!(remaining(&app, &acct, "allowance").await, 1700 + 110);
    // Downgrading at once changes nothing before the period's end: no credits to farm.
    app.webhook(&event(
        "customer.subscription.updated",
        subscription(&sub.id, &sub.customer, &price_of("creator"), sub.start, sub.end, "active"),
        now + 1,
    ))
    .await
    .expect(200);
    assert_eq!(remaining(&app, &acct, "allowance").await, 1700 + 110);
    assert_eq!(app.get(&acct, "/v1/account").await.expect(200)["pending_change"], "plan:creator");
    app.assert_ledger_consistent();
    app.assert_invariants().await;
}

#[actix_web::test]
async fn a_second_paid_subscription_grants_nothing_and_is_cancelled_and_refunded() {
    let (app, fake) = TestApp::spawn_with_stripe().await;
    let acct = app.account().await;
    let first = subscribe(&app, &fake, &acct, "creator").await;
    // A second tab's checkout, paid: Stripe reports another subscription of the same customer.
    let now = app.clock().await;
    let second = Sub {
        id: new_id("sub_"),
        customer: first.customer.clone(),
        price: price_of("pro"),
        start: now,
        end: now + 30 * DAY,
    };
    fake.put(json!([subscription(&second.id, &second.customer, &second.price, second.start, second.end, "active")]))
        .await;
    let (inv, ch, _) = paid_invoice(&fake, &second, "subscription_create", &second.price, 2900).await;
    app.webhook(&event("invoice.paid", inv, now)).await.expect(200);
    let info = app.get(&acct, "/v1/account").await.expect(200);
    assert_eq!(info["plan"], "creator", "the first subscription stays the account's");
    assert_eq!(app.available(&acct).await, 1700 + 250, "nothing granted for the second");
    // The second is cancelled and its invoice refunded at Stripe; the first is untouched.
    app.eventually("the second subscription cancelled at Stripe", || async {
        fake.get(&second.id).await["status"] == "canceled"
    })
    .await;
    app.eventually("the second subscription's invoice refunded", || async {
        fake.get(&ch).await["amount_refunded"] == 2900
    })
    .await;
    assert!(fake.requests("DELETE", &format!("/v1/subscriptions/{}", first.id)).await.is_empty());
    // Asking for another plan still changes the first subscription, never the second.
    at_stripe(&fake, &first).await;
    checkout(&app, &acct, "subscription", "pro").await.expect(201);
    assert_eq!(fake.requests("POST", &format!("/v1/subscriptions/{}", first.id)).await.len(), 1);
    app.assert_ledger_consistent();
    app.assert_invariants().await;
}

#[actix_web::test]
async fn a_dispute_of_a_spent_pack_claws_back_what_is_left_and_restricts_the_account() {
    let (app, fake) = TestApp::spawn_with_stripe().await;
    let acct = app.account().await;
    let (_, pi) = buy(&app, &fake, &acct, "small", true).await;
    // 16 credits spent from the pack (it expires before the lifetime grant).
    app.run(&acct, json!({"model": "flux-schnell", "images": 8, "capture": true})).await.expect(201);
    let held = app.run(&acct, json!({"model": "flux-schnell", "images": 1})).await.expect(201);
    let ch = new_id("ch_");
    let dp = new_id("dp_");
    app.webhook(&event("charge.dispute.created", dispute(&dp, &ch, &pi, 500, "needs_response"), app.clock().await))
        .await
        .expect(200);
    assert_eq!(remaining(&app, &acct, "topup").await, 2, "what the open hold reserves stays");
    assert_eq!(app.get(&acct, "/v1/account").await.expect(200)["restricted"], true);
    app.run(&acct, json!({"model": "flux-schnell", "images": 1})).await.expect_error(403, "ACCOUNT_RESTRICTED");
    let quote = app.post(&acct, "/v1/quote", json!({"model": "flux-schnell", "images": 1})).await.expect(200);
    assert_eq!(
        (quote["allowed"].as_bool(), quote["denial"]["code"].as_str()),
        (Some(false), Some("ACCOUNT_RESTRICTED"))
    );
    checkout(&app, &acct, "topup", "small").await.expect_error(403, "ACCOUNT_RESTRICTED");
    // The open hold may still finish.
    let id = held["id"].as_str().unwrap();
    app.post(&acct, &format!("/v1/runs/{id}/complete"), json!({})).await.expect(200);
    // Lost: the account stays restricted until an operator lifts it.
    app.webhook(&event("charge.dispute.closed", dispute(&dp, &ch, &pi, 500, "lost"), app.clock().await))
        .await
        .expect(200);
    app.run(&acct, json!({"model": "flux-schnell", "images": 1})).await.expect_error(403, "ACCOUNT_RESTRICTED");
    let support = app.operator(credits_domain::operator::Role::Support);
    app.call(
        &support,
        "DELETE",
        &format!("/admin/v1/accounts/{}/restriction", credits_tests::account_id(&acct)),
        Some(json!({"reason": "settled with the customer"})),
        None,
    )
    .await
    .expect(200);
    app.run(&acct, json!({"model": "flux-schnell", "images": 1, "capture": true})).await.expect(201);
    app.assert_ledger_consistent();
    app.assert_invariants().await;
}

#[actix_web::test]
async fn a_refunded_subscription_invoice_claws_back_its_allowance_once() {
    let (app, fake) = TestApp::spawn_with_stripe().await;
    let acct = app.account().await;
    let body = checkout(&app, &acct, "subscription", "creator").await.expect(201);
    let session = fake.get(body["session_id"].as_str().unwrap()).await;
    let now = app.clock().await;
    let sub = Sub {
        id: new_id("sub_"),
        customer: session["customer"].as_str().unwrap().to_string(),
        price: price_of("creator"),
        start: now,
        end: now + 30 * DAY,
    };
    let (inv, ch, pi) = paid_invoice(&fake, &sub, "subscription_create", &sub.price, 1200).await;
    app.webhook(&event("invoice.paid", inv, now)).await.expect(200);
    assert_eq!(remaining(&app, &acct, "allowance").await, 1700);
    // Half refunded, reported twice (Stripe's amount_refunded is cumulative): half the allowance, once.
    let half = event("charge.refunded", charge(&ch, &pi, 1200, 600), app.clock().await);
    app.webhook(&half).await.expect(200);
    app.webhook(&event("charge.refunded", charge(&ch, &pi, 1200, 600), app.clock().await)).await.expect(200);
    assert_eq!(remaining(&app, &acct, "allowance").await, 850);
    app.webhook(&event("charge.refunded", charge(&ch, &pi, 1200, 1200), app.clock().await)).await.expect(200);
    assert_eq!(remaining(&app, &acct, "allowance").await, 0);
    assert_eq!(app.available(&acct).await, 250);
    app.assert_ledger_consistent();
    app.assert_invariants().await;
}

/// `invoice.paid` and `customer.subscription.created` of one new subscription, delivered at once
/// (Stripe sends them within milliseconds): both are applied, never a 500 or a deadlock, and the
/// allowance is granted once.
#[actix_web::test]
async fn the_first_invoice_and_the_subscriptions_creation_apply_together_without_a_500() {
    let (app, fake) = TestApp::spawn_with_stripe().await;
    for _ in 0..8 {
        let acct: As = app.account().await;
        let body = checkout(&app, &acct, "subscription", "creator").await.expect(201);
        let session = fake.get(body["session_id"].as_str().unwrap()).await;
        let now = app.clock().await;
        let sub = Sub {
            id: new_id("sub_"),
            customer: session["customer"].as_str().unwrap().to_string(),
            price: price_of("creator"),
            start: now,
            end: now + 30 * DAY,
        };
        let created = event(
            "customer.subscription.created",
            subscription(&sub.id, &sub.customer, &sub.price, now, sub.end, "active"),
            now,
        );
        let inv = invoice(
            &new_id("in_"),
            &sub.customer,
            &sub.id,
            "subscription_create",
            &[(&sub.price, 1200, false)],
            now,
            sub.end,
        );
        let paid = event("invoice.paid", inv, now);
        let (a, b) = tokio::join!(app.webhook(&created), app.webhook(&paid));
        a.expect(200);
        b.expect(200);
        assert_eq!(app.get(&acct, "/v1/account").await.expect(200)["plan"], "creator");
        assert_eq!(remaining(&app, &acct, "allowance").await, 1700);
    }
    app.assert_ledger_consistent();
    app.assert_invariants().await;
}

#[actix_web::test]
async fn an_event_the_catalog_cannot_apply_is_500_kept_for_an_admin_and_never_recorded_as_applied() {
    let (app, fake) = TestApp::spawn_with_stripe().await;
    let acct = app.account().await;
    let sub = subscribe(&app, &fake, &acct, "creator").await;
    let unknown = event(
        "customer.subscription.updated",
        subscription(&sub.id, &sub.customer, "price_made_in_the_dashboard", sub.start, sub.end, "active"),
        app.clock().await,
    );
    app.webhook(&unknown).await.expect_error(500, "INTERNAL");
    app.webhook(&unknown).await.expect_error(500, "INTERNAL");
    assert_eq!(app.get(&acct, "/v1/account").await.expect(200)["plan"], "creator");
    let admin = app.admin();
    let listed = app.get(&admin, "/admin/v1/stripe-events?status=failed").await.expect(200);
    let kept = listed["events"].as_array().unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!((kept[0]["id"].as_str(), kept[0]["attempts"].as_i64()), (unknown["id"].as_str(), Some(2)));
    // Applied again while the catalog still does not name the price: still kept, still 500.
    let id = unknown["id"].as_str().unwrap();
    app.call(&admin, "POST", &format!("/admin/v1/stripe-events/{id}/reprocess"), None, None)
        .await
        .expect_error(500, "INTERNAL");
    let metrics =
        app.http.get(format!("{}/metrics", app.instance.base_url)).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("credits_stripe_events_failed_total{type=\"customer.subscription.updated\"} 3"),
        "{metrics}"
    );
}
