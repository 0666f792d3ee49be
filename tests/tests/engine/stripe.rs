//! Issue 4: Stripe checkout, webhooks, renewals, plan changes and refunds, through real HTTP,
//! a fake Stripe HTTP server, and events signed as Stripe signs them.

use credits_tests::stripe::{FakeStripe, WEBHOOK_SECRETS, charge, event, invoice, new_id, subscription};
use credits_tests::{As, TestApp, account_id};
use serde_json::{Value, json};

pub(crate) const DAY: i64 = 86400;
pub(crate) const URLS: (&str, &str) = ("https://app.example.test/ok", "https://app.example.test/cancel");

pub(crate) struct Sub {
    pub(crate) id: String,
    pub(crate) customer: String,
    pub(crate) price: String,
    pub(crate) start: i64,
    pub(crate) end: i64,
}

pub(crate) fn price_of(plan: &str) -> String {
    format!("price_credits_{plan}_monthly")
}

pub(crate) async fn checkout(app: &TestApp, acct: &As, kind: &str, item: &str) -> credits_tests::Response {
    let field = if kind == "subscription" { "plan" } else { "pack" };
    app.post(acct, &format!("/v1/checkout/{kind}"), json!({field: item, "success_url": URLS.0, "cancel_url": URLS.1}))
        .await
}

/// Checkout, checkout.session.completed, invoice.paid (subscription_create).
pub(crate) async fn subscribe(app: &TestApp, fake: &FakeStripe, acct: &As, plan: &str) -> Sub {
    let body = checkout(app, acct, "subscription", plan).await.expect(201);
    let mut session = fake.get(body["session_id"].as_str().unwrap()).await;
    let customer = session["customer"].as_str().unwrap().to_string();
    let now = app.clock().await;
    let sub = Sub { id: new_id("sub_"), customer, price: price_of(plan), start: now, end: now + 30 * DAY };
    session["status"] = json!("complete");
    session["payment_status"] = json!("paid");
    session["subscription"] = json!(sub.id);
    app.webhook(&event("checkout.session.completed", session, now)).await.expect(200);
    let inv = invoice(
        &new_id("in_"),
        &sub.customer,
        &sub.id,
        "subscription_create",
        &[(&sub.price, 1200, false)],
        sub.start,
        sub.end,
    );
    app.webhook(&event("invoice.paid", inv, now)).await.expect(200);
    sub
}

/// Checkout for a pack, then checkout.session.completed (paid or not); the session and its payment intent.
pub(crate) async fn buy(app: &TestApp, fake: &FakeStripe, acct: &As, pack: &str, paid: bool) -> (Value, String) {
    let body = checkout(app, acct, "topup", pack).await.expect(201);
    let mut session = fake.get(body["session_id"].as_str().unwrap()).await;
    let pi = new_id("pi_");
    session["status"] = json!("complete");
    session["payment_status"] = json!(if paid { "paid" } else { "unpaid" });
    session["payment_intent"] = json!(pi);
    app.webhook(&event("checkout.session.completed", session.clone(), app.clock().await)).await.expect(200);
    (session, pi)
}

pub(crate) async fn remaining(app: &TestApp, acct: &As, kind: &str) -> i64 {
    let now = app.now().await;
    app.balance(acct).await["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["kind"] == kind)
        .filter(|b| b["expires_at"].as_str().is_none_or(|e| e.parse::<chrono::DateTime<chrono::Utc>>().unwrap() > now))
        .map(|b| b["remaining"].as_i64().unwrap())
        .sum()
}

#[actix_web::test]
async fn a_paid_pack_is_granted_once_however_often_its_event_arrives() {
    let (app, fake) = TestApp::spawn_with_stripe().await;
    let acct = app.account().await;
    let body = checkout(&app, &acct, "topup", "small").await.expect(201);
    let form = &fake.requests("POST", "/v1/checkout/sessions").await[0]["form"];
    assert_eq!(
        (form["mode"].as_str(), form["client_reference_id"].as_str()),
        (Some("payment"), Some(account_id(&acct)))
    );
    let mut session = fake.get(body["session_id"].as_str().unwrap()).await;
    session["status"] = json!("complete");
    session["payment_status"] = json!("paid");
    session["payment_intent"] = json!(new_id("pi_"));
    let paid = event("checkout.session.completed", session, app.clock().await);
    for _ in 0..5 {
        app.webhook(&paid).await.expect(200);
    }
    assert_eq!(app.available(&acct).await, 750);
    let topup =
        app.balance(&acct).await["buckets"].as_array().unwrap().iter().find(|b| b["kind"] == "topup").unwrap().clone();
    let expires: chrono::DateTime<chrono::Utc> = topup["expires_at"].as_str().unwrap().parse().unwrap();
    assert!((expires - app.now().await - chrono::Duration::days(90)).num_seconds().abs() < 60, "90 days after payment");
    app.assert_ledger_consistent();
}

#[actix_web::test]
async fn a_delayed_payment_grants_the_pack_only_when_it_succeeds() {
    let (app, fake) = TestApp::spawn_with_stripe().await;
    let acct = app.account().await;
    let (mut session, _) = buy(&app, &fake, &acct, "small", false).await;
    assert_eq!(app.available(&acct).await, 250);
    session["payment_status"] = json!("paid");
    app.webhook(&event("checkout.session.async_payment_succeeded", session, app.clock().await)).await.expect(200);
    assert_eq!(app.available(&acct).await, 750);
    let other = app.account().await;
    let (session, _) = buy(&app, &fake, &other, "small", false).await;
    app.webhook(&event("checkout.session.async_payment_failed", session, app.clock().await)).await.expect(200);
    assert_eq!(app.available(&other).await, 250);
}

#[actix_web::test]
async fn a_plan_starts_with_its_first_paid_invoice_and_renews_in_full_beside_a_topup() {
    let (app, fake) = TestApp::spawn_with_stripe().await;
    let acct = app.account().await;
    buy(&app, &fake, &acct, "medium", true).await;
    let sub = subscribe(&app, &fake, &acct, "creator").await;
    let info = app.get(&acct, "/v1/account").await.expect(200);
    assert_eq!((info["plan"].as_str(), info["status"].as_str()), (Some("creator"), Some("active")));
    assert_eq!(remaining(&app, &acct, "allowance").await, 1700);
    // Spend from the allowance (it expires before the pack).
    app.run(&acct, json!({"model": "kling-2.1", "duration_seconds": 10, "capture": true})).await.expect(201);
    assert_eq!((remaining(&app, &acct, "allowance").await, remaining(&app, &acct, "topup").await), (1500, 2000));
    // Renewal: the unused 1500 do not roll over; a fresh 1700; the pack untouched.
    app.advance(sub.end - app.clock().await + 1).await;
    let next = (sub.end, sub.end + 30 * DAY);
    let renewed = subscription(&sub.id, &sub.customer, &sub.price, next.0, next.1, "active");
    app.webhook(&event("customer.subscription.updated", renewed, app.clock().await)).await.expect(200);
    let inv = invoice(
        &new_id("in_"),
        &sub.customer,
        &sub.id,
        "subscription_cycle",
        &[(&sub.price, 1200, false)],
        next.0,
        next.1,
    );
    app.webhook(&event("invoice.paid", inv.clone(), app.clock().await)).await.expect(200);
    app.webhook(&event("invoice.paid", inv, app.clock().await)).await.expect(200);
    assert_eq!((remaining(&app, &acct, "allowance").await, remaining(&app, &acct, "topup").await), (1700, 2000));
    assert_eq!(app.available(&acct).await, 250 + 1700 + 2000);
    app.eventually("the old allowance's 1500 expired in the ledger", || async {
        app.ledger(&acct).await.iter().any(|e| e["type"] == "expire" && e["credits"] == -1500)
    })
    .await;
    app.assert_ledger_consistent();
}

#[actix_web::test]
async fn an_upgrade_grows_the_allowance_by_the_share_of_the_period_left_once() {
    let (app, fake) = TestApp::spawn_with_stripe().await;
    let acct = app.account().await;
    let sub = subscribe(&app, &fake, &acct, "creator").await;
    app.run(&acct, json!({"model": "kling-2.1", "duration_seconds": 10, "capture": true})).await.expect(201);
    // Halfway through the period the customer asks for Pro: the live subscription's price changes
    // at Stripe, no new session.
    app.advance(15 * DAY).await;
    fake.put(json!([subscription(&sub.id, &sub.customer, &sub.price, sub.start, sub.end, "active")])).await;
    let change = checkout(&app, &acct, "subscription", "pro").await.expect(201);
    assert!(change["checkout_url"].is_null());
    assert_eq!(
        (change["subscription"]["plan"].as_str(), change["subscription"]["effective"].as_str()),
        (Some("pro"), Some("now"))
    );
    let updated = fake.requests("POST", &format!("/v1/subscriptions/{}", sub.id)).await;
    assert_eq!(updated.len(), 1);
    assert_eq!(app.get(&acct, "/v1/account").await.expect(200)["plan"], "creator", "not before Stripe confirms");
    // Stripe confirms: the price change, then the proration invoice (which then changes nothing).
    let pro = price_of("pro");
    let now = app.clock().await;
    app.webhook(&event(
        "customer.subscription.updated",
        subscription(&sub.id, &sub.customer, &pro, sub.start, sub.end, "active"),
        now,
    ))
    .await
    .expect(200);
    let inv = invoice(
        &new_id("in_"),
        &sub.customer,
        &sub.id,
        "subscription_update",
        &[(&sub.price, -1100, true), (&pro, 3300, true)],
        now,
        sub.end,
    );
    app.webhook(&event("invoice.paid", inv, now + 1)).await.expect(200);
    assert_eq!(app.get(&acct, "/v1/account").await.expect(200)["plan"], "pro");
    // Creator's 1700 less the 200 used, and half of (5000 - 1700) for the half of the period left.
    assert_eq!(remaining(&app, &acct, "allowance").await, 1500 + 1650);
    app.assert_ledger_consistent();
}

#[actix_web::test]
async fn a_downgrade_waits_for_the_period_end() {
    let (app, fake) = TestApp::spawn_with_stripe().await;
    let acct = app.account().await;
    let sub = subscribe(&app, &fake, &acct, "pro").await;
    let creator = price_of("creator");
    app.webhook(&event(
        "customer.subscription.updated",
        subscription(&sub.id, &sub.customer, &creator, sub.start, sub.end, "active"),
        app.clock().await,
    ))
    .await
    .expect(200);
    let info = app.get(&acct, "/v1/account").await.expect(200);
    assert_eq!((info["plan"].as_str(), info["pending_change"].as_str()), (Some("pro"), Some("plan:creator")));
    assert_eq!(remaining(&app, &acct, "allowance").await, 5000);
    app.advance(sub.end - app.clock().await + 1).await;
    let inv = invoice(
        &new_id("in_"),
        &sub.customer,
        &sub.id,
        "subscription_cycle",
        &[(&creator, 1200, false)],
        sub.end,
        sub.end + 30 * DAY,
    );
    app.webhook(&event("invoice.paid", inv, app.clock().await)).await.expect(200);
    let info = app.get(&acct, "/v1/account").await.expect(200);
    assert_eq!((info["plan"].as_str(), info["pending_change"].as_str()), (Some("creator"), None));
    assert_eq!(remaining(&app, &acct, "allowance").await, 1700);
}

#[actix_web::test]
async fn an_older_subscription_update_never_rolls_a_newer_one_back() {
    let (app, fake) = TestApp::spawn_with_stripe().await;
    let acct = app.account().await;
    let sub = subscribe(&app, &fake, &acct, "pro").await;
    let now = app.clock().await;
    let plain = subscription(&sub.id, &sub.customer, &sub.price, sub.start, sub.end, "active");
    let mut cancelling = plain.clone();
    cancelling["cancel_at_period_end"] = json!(true);
    let older = event("customer.subscription.updated", plain, now + 10);
    let newer = event("customer.subscription.updated", cancelling, now + 20);
    app.webhook(&newer).await.expect(200);
    app.webhook(&older).await.expect(200);
    let info = app.get(&acct, "/v1/account").await.expect(200);
    assert_eq!((info["status"].as_str(), info["pending_change"].as_str()), (Some("canceling"), Some("cancel")));
}

#[actix_web::test]
async fn a_cancelled_plan_lasts_its_period_then_the_account_is_on_free_with_its_topups() {
    let (app, fake) = TestApp::spawn_with_stripe().await;
    let acct = app.account().await;
    buy(&app, &fake, &acct, "small", true).await;
    let sub = subscribe(&app, &fake, &acct, "creator").await;
    let mut cancelling = subscription(&sub.id, &sub.customer, &sub.price, sub.start, sub.end, "active");
    cancelling["cancel_at_period_end"] = json!(true);
    app.webhook(&event("customer.subscription.updated", cancelling.clone(), app.clock().await)).await.expect(200);
    // Stripe deletes it early: the plan still lasts to the period's end.
    cancelling["status"] = json!("canceled");
    app.webhook(&event("customer.subscription.deleted", cancelling, app.clock().await + 1)).await.expect(200);
    assert_eq!(app.get(&acct, "/v1/account").await.expect(200)["plan"], "creator");
    app.advance(sub.end - app.clock().await + 1).await;
    app.eventually("the account back on Free", || async {
        app.get(&acct, "/v1/account").await.expect(200)["plan"] == "free"
    })
    .await;
    assert_eq!(app.available(&acct).await, 250 + 500, "top-up and lifetime remainder kept, no new grant");
    let lifetimes =
        app.balance(&acct).await["buckets"].as_array().unwrap().iter().filter(|b| b["kind"] == "lifetime").count();
    assert_eq!(lifetimes, 1);
}

#[actix_web::test]
async fn a_failed_renewal_leaves_the_account_past_due_without_an_allowance_and_queues_a_mail() {
    let (app, fake) = TestApp::spawn_with_stripe().await;
    let acct = app.account().await;
    let sub = subscribe(&app, &fake, &acct, "creator").await;
    app.advance(sub.end - app.clock().await + 1).await;
    let inv = invoice(
        &new_id("in_"),
        &sub.customer,
        &sub.id,
        "subscription_cycle",
        &[(&sub.price, 1200, false)],
        sub.end,
        sub.end + 30 * DAY,
    );
    app.webhook(&event("invoice.payment_failed", inv.clone(), app.clock().await)).await.expect(200);
    app.webhook(&event("invoice.payment_failed", inv, app.clock().await)).await.expect(200);
    let info = app.get(&acct, "/v1/account").await.expect(200);
    assert_eq!(info["status"], "past_due");
    assert_eq!(remaining(&app, &acct, "allowance").await, 0);
    assert_eq!(app.available(&acct).await, 250);
    use diesel::prelude::*;
    let mails: Vec<(String, String)> = credits_db::schema::outbox::table
        .select((credits_db::schema::outbox::kind, credits_db::schema::outbox::recipient))
        .load(&mut app.db.conn())
        .unwrap();
    assert_eq!(mails.len(), 1, "one mail per failed invoice, however often it is delivered");
    assert_eq!(mails[0].0, "payment_failed");
}

#[actix_web::test]
async fn a_refund_claws_back_its_share_and_at_most_what_is_left() {
    let (app, fake) = TestApp::spawn_with_stripe().await;
    let acct = app.account().await;
    let (_, pi) = buy(&app, &fake, &acct, "medium", true).await;
    let ch = new_id("ch_");
    // Half refunded: half the pack (1000) comes back out.
    let half = event("charge.refunded", charge(&ch, &pi, 1800, 900), app.clock().await);
    app.webhook(&half).await.expect(200);
    app.webhook(&half).await.expect(200);
    assert_eq!(remaining(&app, &acct, "topup").await, 1000);
    // Spend most of what is left (the lifetime bucket first is not how R5 goes: the pack expires sooner).
    app.adjust(&acct, json!({"credits": -900, "reason": "spent"})).await.expect(201);
    assert_eq!(remaining(&app, &acct, "topup").await, 100);
    // The rest refunded: at most what is left of the pack.
    app.webhook(&event("charge.refunded", charge(&ch, &pi, 1800, 1800), app.clock().await)).await.expect(200);
    assert_eq!(remaining(&app, &acct, "topup").await, 0);
    let clawed: Vec<i64> = app
        .ledger(&acct)
        .await
        .iter()
        .filter(|e| e["type"] == "clawback")
        .map(|e| e["credits"].as_i64().unwrap())
        .collect();
    assert_eq!(clawed, [-100, -1000]);
    app.assert_ledger_consistent();
}

#[actix_web::test]
async fn webhook_signatures_are_checked_and_secrets_can_rotate() {
    let (app, fake) = TestApp::spawn_with_stripe().await;
    let acct = app.account().await;
    let body = checkout(&app, &acct, "topup", "small").await.expect(201);
    let mut session = fake.get(body["session_id"].as_str().unwrap()).await;
    session["payment_status"] = json!("paid");
    let paid = event("checkout.session.completed", session, app.clock().await);
    let real_now = chrono::Utc::now().timestamp();
    app.webhook_signed(&paid, real_now, &["whsec_unknown"]).await.expect_error(400, "INVALID_REQUEST");
    app.webhook_signed(&paid, real_now - 301, &WEBHOOK_SECRETS[..1]).await.expect_error(400, "INVALID_REQUEST");
    let r = app.http.post(format!("{}/webhooks/stripe", app.instance.base_url)).json(&paid).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400, "no signature");
    assert_eq!(app.available(&acct).await, 250, "refused deliveries change nothing");
    // Signed with the second of two secrets, 299 s ago: accepted.
    app.webhook_signed(&paid, real_now - 299, &WEBHOOK_SECRETS[1..]).await.expect(200);
    assert_eq!(app.available(&acct).await, 750);
    // An unknown type: 200.
    app.webhook(&event("payment_intent.created", json!({"id": "pi_1", "object": "payment_intent"}), app.clock().await))
        .await
        .expect(200);
}

#[actix_web::test]
async fn a_failure_inside_event_handling_is_500_leaves_nothing_and_the_retry_applies_once() {
    let (app, fake) = TestApp::spawn_with_stripe().await;
    let acct = app.account().await;
    let body = checkout(&app, &acct, "topup", "small").await.expect(201);
    let mut session = fake.get(body["session_id"].as_str().unwrap()).await;
    session["payment_status"] = json!("paid");
    let paid = event("checkout.session.completed", session, app.clock().await);
    use diesel::connection::SimpleConnection;
    let mut conn = app.db.conn();
    // The last write of the grant fails: everything before it in the transaction must vanish.
    conn.batch_execute(
        "CREATE FUNCTION fail_purchase() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected'; END; $$; \
         CREATE TRIGGER fail_purchase BEFORE INSERT ON topup_purchases FOR EACH ROW EXECUTE FUNCTION fail_purchase();",
    )
    .unwrap();
    let before = app.trace();
    app.webhook(&paid).await.expect_error(500, "INTERNAL");
    assert_eq!(app.trace(), before, "no bucket, entry or record half-written");
    assert_eq!(app.available(&acct).await, 250);
    conn.batch_execute("DROP TRIGGER fail_purchase ON topup_purchases").unwrap();
    app.webhook(&paid).await.expect(200);
    app.webhook(&paid).await.expect(200);
    assert_eq!(app.available(&acct).await, 750);
}

#[actix_web::test]
async fn checkout_sells_only_what_it_may_and_stripe_failures_change_nothing() {
    let (app, fake) = TestApp::spawn_with_stripe().await;
    let acct = app.account().await;
    checkout(&app, &acct, "subscription", "business").await.expect_error(403, "BUSINESS_VERIFICATION_REQUIRED");
    for plan in ["free", "enterprise", "gold"] {
        checkout(&app, &acct, "subscription", plan).await.expect_error(422, "INVALID_PARAMETERS");
    }
    checkout(&app, &acct, "topup", "huge").await.expect_error(422, "INVALID_PARAMETERS");
    app.post(
        &acct,
        "/v1/checkout/topup",
        json!({"pack": "small", "success_url": "javascript:alert(1)", "cancel_url": URLS.1}),
    )
    .await
    .expect_error(422, "INVALID_PARAMETERS");
    assert!(fake.requests("POST", "/v1/checkout/sessions").await.is_empty());
    fake.fail(500).await;
    let before = app.trace();
    checkout(&app, &acct, "topup", "small").await.expect_error(503, "PAYMENTS_UNAVAILABLE");
    assert_eq!(app.trace(), before);
    fake.clear_failure().await;
    // One customer per account, kept across checkouts; the same Idempotency-Key makes one session.
    let first = app
        .call(
            &acct,
            "POST",
            "/v1/checkout/topup",
            Some(json!({"pack": "small", "success_url": URLS.0, "cancel_url": URLS.1})),
            Some("k1"),
        )
        .await
        .expect(201);
    let again = app
        .call(
            &acct,
            "POST",
            "/v1/checkout/topup",
            Some(json!({"pack": "small", "success_url": URLS.0, "cancel_url": URLS.1})),
            Some("k1"),
        )
        .await
        .expect(201);
    assert_eq!(first["session_id"], again["session_id"]);
    checkout(&app, &acct, "subscription", "pro").await.expect(201);
    let customers: std::collections::BTreeSet<String> = fake
        .requests("POST", "/v1/checkout/sessions")
        .await
        .iter()
        .map(|r| r["form"]["customer"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(customers.len(), 1);
    assert_eq!(fake.requests("POST", "/v1/customers").await.len(), 1);
    // Subscribed to Pro: asking for Pro again is a conflict.
    let sub = subscribe(&app, &fake, &acct, "pro").await;
    fake.put(json!([subscription(&sub.id, &sub.customer, &sub.price, sub.start, sub.end, "active")])).await;
    app.webhook(&event(
        "customer.subscription.updated",
        subscription(&sub.id, &sub.customer, &sub.price, sub.start, sub.end, "active"),
        app.clock().await,
    ))
    .await
    .expect(200);
    checkout(&app, &acct, "subscription", "pro").await.expect_error(409, "CONFLICT");
}
