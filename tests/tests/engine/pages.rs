//! SPEC section 8: the billing page in a real headless Chromium.

use credits_tests::browser::Browser;
use credits_tests::{TestApp, account_id};
use diesel::RunQueryDsl;
use serde_json::json;

/// A one-time link to `acct`'s billing page, as the canvas backend gets it (on `server.public_url`;
/// the test instance listens on its own port, so the link's path is opened there).
async fn link(app: &TestApp, acct: &credits_tests::As) -> String {
    let body = app.post(acct, "/v1/billing-page-sessions", json!({})).await.expect(201);
    assert!(body["expires_at"].as_str().is_some());
    let url = body["url"].as_str().unwrap();
    let path = &url[url.find("/billing/open?token=").expect("a billing link")..];
    format!("{}{path}", app.instance.base_url)
}

#[actix_web::test]
async fn the_billing_page_opens_once_shows_the_balance_and_saves_an_alert_only_with_its_csrf_token() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    app.adjust(&acct, json!({"credits": 30, "reason": "welcome"})).await.expect(201);
    let url = link(&app, &acct).await;
    let browser = Browser::start().await;

    browser.goto(&url).await;
    assert!(browser.url().await.ends_with("/billing"), "the link signs in and lands on the page");
    assert_eq!(browser.text("#available").await, "280");
    let source = browser.source().await;
    assert!(source.contains("adjustment") && source.contains("lifetime"), "every bucket is listed");
    let trials = browser.text("#trials").await;
    assert!(
        trials.contains("flux-pro") && trials.contains("3 of 3 generations left"),
        "the Free plan's trials: {trials}"
    );
    for attr in ["src=\"http", "href=\"http", "src=\"//", "href=\"//"] {
        assert!(!source.contains(attr), "no resource from another origin ({attr})");
    }
    browser.assert_same_origin(&app.instance.base_url).await;
    browser.assert_accessible("the billing page").await;

    // The alert form, as a person uses it.
    browser.fill("#low_balance_threshold", "120").await;
    browser.submit("form[action='/billing/alerts'] button").await;
    assert!(browser.wait_for("Your alert is saved.").await.contains("Your alert is saved."));
    assert_eq!(app.get(&acct, "/v1/alerts").await.expect(200)["low_balance_threshold"], 120);

    // The same form without its CSRF token, or with another, changes nothing.
    let cookie = browser.cookie("credits_billing").await.expect("the session cookie");
    let base = &app.instance.base_url;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for body in ["low_balance_threshold=5", "csrf=0000&low_balance_threshold=5"] {
        let r = http
            .post(format!("{base}/billing/alerts"))
            .header("Cookie", format!("credits_billing={cookie}"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{body}");
    }
    assert_eq!(app.get(&acct, "/v1/alerts").await.expect(200)["low_balance_threshold"], 120);

    // The link worked once.
    browser.goto(&url).await;
    let again = browser.source().await;
    assert!(again.contains("This link has expired"), "a used link: {again}");

    // Another account's link shows that account alone.
    let other = app.account().await;
    browser.goto(&link(&app, &other).await).await;
    assert_eq!(browser.text("#available").await, "250");
    assert!(!browser.source().await.contains(account_id(&acct)));
}

#[actix_web::test]
async fn without_a_session_the_page_and_its_forms_answer_401_and_change_nothing() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    let base = &app.instance.base_url;
    let http = reqwest::Client::new();
    assert_eq!(http.get(format!("{base}/billing")).send().await.unwrap().status(), 401);
    let r = http
        .post(format!("{base}/billing/alerts"))
        .header("Cookie", "credits_billing=made-up")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("csrf=x&low_balance_threshold=5")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(app.get(&acct, "/v1/alerts").await.expect(200)["low_balance_threshold"], serde_json::Value::Null);
    let r = http.get(format!("{base}/billing/open?token=not-a-link")).send().await.unwrap();
    assert_eq!(r.status(), 410);
}

#[actix_web::test]
async fn an_api_key_made_on_the_page_shows_its_secret_once_works_and_is_revoked_there() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    app.set_plan(&acct, "pro");
    let browser = Browser::start().await;
    browser.goto(&link(&app, &acct).await).await;

    browser.fill("#key-name", "render farm").await;
    browser.fill("#key-limit", "500").await;
    browser.submit("form[action='/billing/api-keys'] button").await;
    let secret = browser.text("#new-key").await;
    assert!(secret.starts_with("ck_"), "the new key on the page: {secret}");
    let key = credits_tests::As::Bearer(secret.clone());
    assert_eq!(app.get(&key, "/v1/balance").await.expect(200)["available"], 250, "the key works");
    let listed = app.get(&acct, "/v1/api-keys").await.expect(200);
    assert_eq!(listed["api_keys"][0]["monthly_credit_limit"], 500);

    // Shown once: the page read again does not carry it.
    browser.goto(&format!("{}/billing", app.instance.base_url)).await;
    assert!(!browser.source().await.contains(&secret));
    browser.submit("tr.key form button").await;
    let after = browser.wait_for("The key is revoked").await;
    assert!(after.contains("The key is revoked"), "after revoking: {after}");
    app.get(&key, "/v1/balance").await.expect_error(401, "UNAUTHENTICATED");
}

#[actix_web::test]
async fn a_pack_bought_from_the_page_goes_through_checkout_and_its_bucket_shows_on_the_page() {
    let (app, fake) = TestApp::spawn_with_stripe().await;
    let acct = app.account().await;
    let browser = Browser::start().await;
    browser.goto(&link(&app, &acct).await).await;
    let csrf = browser.attribute("form[action='/billing/pack'] input[name=csrf]", "value").await.unwrap();
    let cookie = browser.cookie("credits_billing").await.unwrap();

    // The form (posted as the browser would; the browser cannot reach Stripe from here).
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = http
        .post(format!("{}/billing/pack", app.instance.base_url))
        .header("Cookie", format!("credits_billing={cookie}"))
        .form(&[("csrf", csrf.as_str()), ("pack", "small")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let checkout = r.headers()["location"].to_str().unwrap().to_string();
    let sessions = fake.requests("POST", "/v1/checkout/sessions").await;
    assert_eq!(sessions.len(), 1, "one Checkout Session, made by the checkout use case");
    let id = sessions[0]["response"]["id"].as_str().unwrap();
    assert_eq!(sessions[0]["response"]["url"].as_str(), Some(checkout.as_str()), "the page sends the browser to it");

    // Stripe says it is paid: the page shows the pack's bucket.
    let mut session = fake.get(id).await;
    session["status"] = json!("complete");
    session["payment_status"] = json!("paid");
    session["payment_intent"] = json!(credits_tests::stripe::new_id("pi_"));
    app.webhook(&credits_tests::stripe::event("checkout.session.completed", session, app.clock().await))
        .await
        .expect(200);
    browser.goto(&format!("{}/billing", app.instance.base_url)).await;
    assert_eq!(browser.text("#available").await, "750");
    assert!(browser.source().await.contains("topup"));
}

async fn console_sign_in(browser: &Browser, base: &str, token: &str) {
    browser.goto(&format!("{base}/console")).await;
    browser.assert_accessible("the console's sign-in page").await;
    browser.fill("#token", token).await;
    browser.submit("form[action='/console/sign-in'] button").await;
    browser.wait_for("Sign out").await;
}

#[actix_web::test]
async fn sales_approves_in_the_console_and_support_adjusts_credits_there_each_within_its_role() {
    let (app, _fake) = TestApp::spawn_with_stripe().await;
    let base = app.instance.base_url.clone();
    let acct = app.account().await;
    let request = json!({"company_name": "Acme Console GmbH", "website": "https://acme.example", "country": "DE",
        "contact_name": "Ada Tester", "contact_email": "ada@acme.example", "intended_use": "Product imagery."});
    app.post(&acct, "/v1/business-verification", request).await.expect(201);
    app.run(&acct, json!({"model": "flux-schnell", "images": 1, "capture": true})).await.expect(201);
    crate::stripe::checkout(&app, &acct, "subscription", "business")
        .await
        .expect_error(403, "BUSINESS_VERIFICATION_REQUIRED");
    let browser = Browser::start().await;

    // Sales: the queue, and an approval.
    let credits_tests::As::Bearer(sales) = app.operator(credits_domain::operator::Role::Sales) else { unreachable!() };
    console_sign_in(&browser, &base, &sales).await;
    browser.goto(&format!("{base}/console/verifications")).await;
    assert!(browser.source().await.contains("Acme Console GmbH"));
    browser.assert_accessible("the verification queue").await;
    browser.assert_same_origin(&base).await;
    browser.submit("form[action$='/approve'] button").await;
    assert!(browser.wait_for("Approved").await.contains("Approved"));
    crate::stripe::checkout(&app, &acct, "subscription", "business").await.expect(201);
    // A sales operator opens no account page.
    browser.goto(&format!("{base}/console/accounts/{}", account_id(&acct))).await;
    assert!(browser.source().await.contains("Not for your role"));
    browser.goto(&format!("{base}/console")).await;
    browser.submit("form[action='/console/sign-out'] button").await;
    browser.wait_for("Operator token").await;

    // Support: the account page, and an adjustment that lands in the ledger and the audit trail.
    let credits_tests::As::Bearer(support) = app.operator(credits_domain::operator::Role::Support) else {
        unreachable!()
    };
    console_sign_in(&browser, &base, &support).await;
    // Found by its email, in any case.
    let email = app.get(&acct, "/v1/account").await.expect(200)["email"].as_str().unwrap().to_uppercase();
    browser.goto(&format!("{base}/console/accounts")).await;
    browser.fill("#q", &email).await;
    browser.submit("form[action='/console/accounts'] button").await;
    assert!(browser.url().await.ends_with(account_id(&acct)), "the one match opens: {}", browser.url().await);
    assert_eq!(browser.text("#available").await, "248");
    assert!(browser.text("#runs").await.contains("flux-schnell"), "the page lists the account's runs");
    browser.assert_accessible("an account's console page").await;
    browser.fill("#credits", "40").await;
    browser.fill("#reason", "goodwill for the outage").await;
    browser.submit("form[action$='/adjust'] button").await;
    let after = browser.wait_for("The adjustment is in the ledger.").await;
    assert!(after.contains("goodwill for the outage"));
    assert!(browser.text("#audit").await.contains("support operator (support)"), "the page shows the audit trail");
    // The README's picture of the console (docs/img/console.png is copied from here).
    browser
        .screenshot(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots/console.png"))
        .await;
    assert_eq!(app.available(&acct).await, 288);
    #[derive(diesel::QueryableByName)]
    struct Audit {
        #[diesel(sql_type = diesel::sql_types::Text)]
        operator_role: String,
    }

    let audit: Vec<Audit> = diesel::sql_query(format!(
        "SELECT operator_role FROM operator_actions WHERE account_id = '{}' AND details::text LIKE '%goodwill for the outage%'",
        account_id(&acct)
    ))
    .load(&mut app.db.conn())
    .unwrap();
    assert_eq!(audit.iter().map(|a| a.operator_role.as_str()).collect::<Vec<_>>(), ["support"], "in the audit trail");

    // A form posted without its token changes nothing.
    let cookie = browser.cookie("credits_console").await.expect("the console session cookie");
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{base}/console/accounts/{}/adjust", account_id(&acct)))
        .header("Cookie", format!("credits_console={cookie}"))
        .form(&[("credits", "1000"), ("reason", "no token")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(app.available(&acct).await, 288);
}

#[actix_web::test]
async fn with_simulated_payments_a_pack_and_a_plan_are_bought_changed_renewed_refunded_and_disputed_in_the_browser() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let public = format!("http://127.0.0.1:{port}");
    let app = TestApp::spawn_with(&[
        ("CREDITS__PAYMENTS__PROVIDER", "simulated"),
        ("CREDITS__SERVER__PORT", &port),
        ("CREDITS__SERVER__PUBLIC_URL", &public),
    ])
    .await;
    let acct = app.account().await;
    let browser = Browser::start().await;
    browser.goto(&link(&app, &acct).await).await;

    // A pack: the page sends the browser to the simulated checkout; Pay grants it.
    browser.submit("form[action='/billing/pack'] button").await;
    assert!(browser.url().await.contains("/simulated/checkout/cs_sim_"), "at {}", browser.url().await);
    assert!(browser.text("#item").await.contains("500 credits"));
    browser.assert_accessible("the simulated checkout").await;
    browser.submit("form[action$='/pay'] button").await;
    browser.wait_for("Thank you").await;
    assert_eq!(browser.text("#available").await, "750");

    // A plan: Creator through the simulated checkout; then cancelled and resumed in the portal.
    browser.submit("form[action='/billing/plan']:has(input[value='creator']) button").await;
    browser.submit("form[action$='/pay'] button").await;
    browser.wait_for("Your plan change is on its way").await;
    assert_eq!(browser.text("#plan").await, "creator");
    assert_eq!(app.get(&acct, "/v1/account").await.expect(200)["plan"], "creator");
    browser.submit("form[action='/billing/portal'] button").await;
    let portal = browser.wait_for("Cancel at the period").await;
    assert!(portal.contains("Cancel at the period"), "the simulated portal: {portal}");
    browser.submit("form[action$='/cancel'] button").await;
    assert!(browser.wait_for("ends at the period").await.contains("ends at the period"));
    assert_eq!(app.get(&acct, "/v1/account").await.expect(200)["pending_change"], "cancel");
    browser.submit("form[action='/billing/portal'] button").await;
    let portal = browser.wait_for("Resume the subscription").await;
    assert!(portal.contains("Resume the subscription"), "the simulated portal: {portal}");
    browser.submit("form[action$='/resume'] button").await;
    browser.wait_for("Your plan change is on its way").await;
    assert_eq!(app.get(&acct, "/v1/account").await.expect(200)["pending_change"], serde_json::Value::Null);

    // An upgrade from the page of a plan set to end: the use case resumes it, then changes the
    // price; the simulated Stripe answers both, in order, and pays the proration invoice at once,
    // as Stripe's webhooks say after its answer (R14): Pro, no longer ending, the allowance grown.
    browser.submit("form[action='/billing/portal'] button").await;
    browser.submit("form[action$='/cancel'] button").await;
    assert_eq!(app.get(&acct, "/v1/account").await.expect(200)["pending_change"], "cancel");
    let on_creator = app.available(&acct).await;
    browser.submit("form[action='/billing/plan']:has(input[value='pro']) button").await;
    browser.wait_for("Your plan change is on its way").await;
    app.eventually("the upgrade to Pro is applied", || async {
        let account = app.get(&acct, "/v1/account").await.expect(200);
        account["plan"] == "pro" && account["pending_change"].is_null()
    })
    .await;
    assert!(app.available(&acct).await > on_creator, "the allowance grew with the upgrade");

    // Renew now: the renewal's paid invoice starts a new period with Pro's full allowance (R3).
    let period = app.get(&acct, "/v1/account").await.expect(200)["period_start"].clone();
    browser.submit("form[action='/billing/portal'] button").await;
    browser.submit("form[action$='/renew'] button").await;
    browser.wait_for("Your plan change is on its way").await;
    let renewed = app.get(&acct, "/v1/account").await.expect(200);
    assert_ne!(renewed["period_start"], period, "a new period: {renewed}");
    assert_eq!(renewed["plan"], "pro");
    let renewed_available = app.available(&acct).await;

    // The pack refunded in the portal: what is left of its 500 credits is clawed back.
    browser.submit("form[action='/billing/portal'] button").await;
    browser.submit("form[action$='/refund']:has(input[value^='pi_sim_']) button").await;
    browser.wait_for("billing portal shows here").await;
    assert_eq!(app.available(&acct).await, renewed_available - 500, "the refunded pack's credits are gone");

    // The renewal disputed: its allowance is clawed back and the account restricted (R19); the
    // dispute won gives both back.
    browser.submit("form[action='/billing/portal'] button").await;
    browser.submit("form[action$='/dispute']:has(input[value^='in_sim_']) button").await;
    browser.wait_for("billing portal shows here").await;
    let disputed = app.get(&acct, "/v1/account").await.expect(200);
    assert_eq!(disputed["restricted"], true, "a dispute restricts: {disputed}");
    assert!(app.available(&acct).await < renewed_available - 500, "the disputed allowance is clawed back");
    browser.submit("form[action='/billing/portal'] button").await;
    browser.assert_accessible("the simulated portal").await;
    browser.submit("form[action$='/won'] button").await;
    browser.wait_for("billing portal shows here").await;
    assert_eq!(app.get(&acct, "/v1/account").await.expect(200)["restricted"], false);
    assert_eq!(app.available(&acct).await, renewed_available - 500, "the won dispute gives the credits back");
    app.assert_ledger_consistent();

    // A few runs, and the page as an owner sees it: the README's picture of the billing page
    // (docs/img/billing.png is copied from here).
    for (model, images) in [("flux-schnell", 4), ("flux-pro", 2), ("flux-schnell", 6)] {
        app.run(&acct, json!({"model": model, "images": images, "capture": true})).await.expect(201);
    }
    browser.goto(&format!("{public}/billing")).await;
    assert!(browser.source().await.contains("<svg"), "the usage chart is drawn");
    browser
        .screenshot(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots/billing.png"))
        .await;
}

/// The PaymentIntents of the account's succeeded auto top-ups, oldest first.
fn auto_topup_intents(app: &TestApp) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Intent {
        #[diesel(sql_type = diesel::sql_types::Text)]
        payment_intent_id: String,
    }
    let found: Vec<Intent> =
        diesel::sql_query("SELECT payment_intent_id FROM auto_topups WHERE status = 'succeeded' ORDER BY created_at")
            .load(&mut app.db.conn())
            .unwrap();
    found.into_iter().map(|i| i.payment_intent_id).collect()
}

#[actix_web::test]
async fn with_simulated_payments_an_auto_topup_is_refunded_and_another_disputed_in_the_portal() {
    let app = TestApp::spawn_with(&[("CREDITS__PAYMENTS__PROVIDER", "simulated")]).await;
    let acct = app.account().await;
    let browser = Browser::start().await;
    browser.goto(&link(&app, &acct).await).await;

    // A pack bought through the simulated checkout saves the card (R22); auto top-up on.
    browser.submit("form[action='/billing/pack'] button").await;
    browser.submit("form[action$='/pay'] button").await;
    browser.wait_for("Thank you").await;
    assert_eq!(app.available(&acct).await, 750);
    app.call(&acct, "PUT", "/v1/auto-topup", Some(json!({"enabled": true, "threshold": 800, "pack": "small"})), None)
        .await
        .expect(200);

    // A capture below the threshold: the auto top-up pays off-session and grants its pack.
    app.run(&acct, json!({"model": "flux-schnell", "images": 1, "capture": true})).await.expect(201);
    app.eventually("the auto top-up's pack is granted", || async { app.available(&acct).await == 1248 }).await;
    let first = auto_topup_intents(&app).pop().expect("a succeeded auto top-up");

    // The portal lists it among the payments; refunded there, its 500 credits are clawed back.
    browser.submit("form[action='/billing/portal'] button").await;
    let portal = browser.wait_for("(auto top-up)").await;
    assert!(portal.contains(&first), "the portal lists the auto top-up's payment: {portal}");
    browser.submit(&format!("form[action$='/refund']:has(input[value='{first}']) button")).await;
    browser.wait_for("billing portal shows here").await;
    assert_eq!(app.available(&acct).await, 748, "the refunded auto top-up's credits are gone");

    // Another capture, another auto top-up; disputed in the portal, it is clawed back and the
    // account restricted (R19); the dispute won gives both back.
    app.run(&acct, json!({"model": "flux-schnell", "images": 1, "capture": true})).await.expect(201);
    app.eventually("the second auto top-up is granted", || async { app.available(&acct).await == 1246 }).await;
    let second = auto_topup_intents(&app).pop().expect("a second auto top-up");
    assert_ne!(second, first);
    browser.submit("form[action='/billing/portal'] button").await;
    browser.submit(&format!("form[action$='/dispute']:has(input[value='{second}']) button")).await;
    browser.wait_for("billing portal shows here").await;
    assert_eq!(app.get(&acct, "/v1/account").await.expect(200)["restricted"], true, "a dispute restricts");
    assert_eq!(app.available(&acct).await, 746, "the disputed auto top-up's credits are clawed back");
    browser.submit("form[action='/billing/portal'] button").await;
    browser.submit("form[action$='/won'] button").await;
    browser.wait_for("billing portal shows here").await;
    assert_eq!(app.get(&acct, "/v1/account").await.expect(200)["restricted"], false);
    assert_eq!(app.available(&acct).await, 1246, "the won dispute gives the credits back");
    app.assert_ledger_consistent();
    app.assert_invariants().await;
}

#[actix_web::test]
async fn an_admin_manages_operators_moves_the_test_clock_and_sets_a_contract_in_the_console() {
    let app = TestApp::spawn().await;
    let base = app.instance.base_url.clone();
    let acct = app.account().await;
    let id = account_id(&acct).to_string();
    let browser = Browser::start().await;
    console_sign_in(&browser, &base, credits_tests::ADMIN_TOKEN).await;

    // A new support operator: its token shown once, working, then revoked.
    browser.goto(&format!("{base}/console/operators")).await;
    browser.assert_accessible("the operators page").await;
    browser.fill("#op-name", "Night support").await;
    browser.click("#op-role option[value='support']").await;
    browser.submit("form[action='/console/operators'] button").await;
    let token = browser.text("#new-token").await;
    assert!(token.starts_with("cop_"), "{token}");
    let night = credits_tests::As::Bearer(token.clone());
    app.get(&night, &format!("/admin/v1/accounts/{id}")).await.expect(200);
    browser.goto(&format!("{base}/console/operators")).await;
    browser.submit("button[aria-label='Revoke Night support']").await;
    browser.wait_for("Revoked").await;
    app.get(&night, &format!("/admin/v1/accounts/{id}")).await.expect_error(401, "UNAUTHENTICATED");

    // The test clock, two days on.
    let before = app.now().await;
    browser.goto(&format!("{base}/console/clock")).await;
    browser.fill("#days", "2").await;
    browser.submit("form[action='/console/clock'] button").await;
    browser.wait_for("Now, by the test clock").await;
    assert!(app.now().await - before >= chrono::Duration::days(2));

    // Two days idle by the moved clock ended the session: sign in again for a contract.
    browser.goto(&format!("{base}/console/accounts/{id}")).await;
    assert!(browser.url().await.ends_with("/console"), "an idle session is over");
    console_sign_in(&browser, &base, credits_tests::ADMIN_TOKEN).await;
    browser.goto(&format!("{base}/console/accounts/{id}")).await;
    browser.fill("#monthly_credits", "5000").await;
    browser.submit("form[action$='/enterprise'] button").await;
    assert!(browser.wait_for("The Enterprise contract is set.").await.contains("The Enterprise contract is set."));
    assert_eq!(app.get(&acct, "/v1/account").await.expect(200)["plan"], "enterprise");
}

#[actix_web::test]
async fn an_admin_reads_the_liability_report_and_an_accounts_webhook_deliveries_in_the_console() {
    let app = TestApp::spawn().await;
    let base = app.instance.base_url.clone();
    let acct = app.account().await;
    let id = account_id(&acct).to_string();
    app.adjust(&acct, json!({"credits": 120, "reason": "goodwill"})).await.expect(201);
    // An endpoint nothing listens at, and an event for it: its attempts fail and are listed.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let url = format!("http://{dead}/hooks");
    app.post(&acct, "/v1/webhook-endpoints", json!({"url": url, "events": ["account.restricted"]})).await.expect(201);
    let support = app.operator(credits_domain::operator::Role::Support);
    app.call(
        &support,
        "PUT",
        &format!("/admin/v1/accounts/{id}/restriction"),
        Some(json!({"reason": "chargeback"})),
        None,
    )
    .await
    .expect(200);
    let endpoint =
        app.get(&acct, "/v1/webhook-endpoints").await.expect(200)["endpoints"][0]["id"].as_str().unwrap().to_string();
    app.eventually("an attempt at the endpoint", || async {
        let listed = app.get(&acct, &format!("/v1/webhook-endpoints/{endpoint}/deliveries")).await.expect(200);
        listed["deliveries"].as_array().is_some_and(|d| d.iter().any(|a| a["status"] == "failed"))
    })
    .await;
    let attempts = app.get(&acct, &format!("/v1/webhook-endpoints/{endpoint}/deliveries")).await.expect(200);
    let event = attempts["deliveries"][0]["event_id"].as_str().unwrap().to_string();

    let browser = Browser::start().await;
    console_sign_in(&browser, &base, credits_tests::ADMIN_TOKEN).await;
    browser.goto(&format!("{base}/console/accounts/{id}")).await;
    browser.submit("a[href$='/webhooks']").await;
    let page = browser.source().await;
    assert!(page.contains(&url) && page.contains(&event), "the endpoint and its event are listed: {page}");
    assert!(browser.text("table.deliveries").await.contains("failed"), "its failed attempt is listed");
    browser.assert_accessible("an account's webhook deliveries").await;

    // The liability report: the same figures as the admin API's.
    let report = app.get(&app.admin(), "/admin/v1/reports/liability").await.expect(200);
    browser.goto(&format!("{base}/console/reports/liability")).await;
    let outstanding = browser.text("#outstanding").await;
    let total = report["outstanding"]["credits"].as_i64().unwrap();
    assert!(total >= 370, "the account's 250 and 120 at least: {report}");
    assert!(outstanding.contains(&total.to_string()), "the page shows {total} outstanding: {outstanding}");
    assert!(outstanding.contains(&report["outstanding"]["promotional"]["credits"].to_string()));
    browser.assert_accessible("the liability report").await;
    browser.assert_same_origin(&base).await;
}

#[actix_web::test]
async fn the_billing_pages_ledger_pages_back_to_the_first_entry() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    for n in 1..=20 {
        app.adjust(&acct, json!({"credits": 1, "reason": format!("grant number {n}")})).await.expect(201);
    }
    let browser = Browser::start().await;
    browser.goto(&link(&app, &acct).await).await;
    let first = browser.source().await;
    assert!(first.contains("grant number 20") && !first.contains("Free plan lifetime grant"), "the newest 20 first");
    browser.submit("#older").await;
    let older = browser.source().await;
    assert!(older.contains("Free plan lifetime grant") && !older.contains("grant number 20"), "then the older ones");
}

#[actix_web::test]
async fn a_webhook_endpoint_is_added_with_its_secret_shown_once_and_deleted_on_the_billing_page() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    let browser = Browser::start().await;
    browser.goto(&link(&app, &acct).await).await;
    browser.fill("#hook-url", "http://127.0.0.1:9/hooks/credits").await;
    browser.click("input[value='credits.granted']").await;
    browser.click("input[value='balance.low']").await;
    browser.submit("form[action='/billing/webhook-endpoints'] button").await;
    let secret = browser.text("#new-hook-secret").await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    let listed = app.get(&acct, "/v1/webhook-endpoints").await.expect(200);
    let events: Vec<&str> =
        listed["endpoints"][0]["events"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    assert_eq!(events, ["balance.low", "credits.granted"]);
    assert!(!listed.to_string().contains(&secret[6..]), "the list never shows the secret");

    browser.goto(&format!("{}/billing", app.instance.base_url)).await;
    assert!(!browser.source().await.contains(&secret[6..]), "shown once");
    browser.submit("li.endpoint form button").await;
    assert!(browser.wait_for("The endpoint is deleted").await.contains("The endpoint is deleted"));
    assert_eq!(app.get(&acct, "/v1/webhook-endpoints").await.expect(200)["endpoints"], json!([]));
}

#[actix_web::test]
async fn an_admin_sends_a_dead_mail_again_from_the_console_and_it_goes_out() {
    let (app, sink, _) = TestApp::spawn_with_mail(false).await;
    // The test's precondition: a mail the worker gave up on (12 failed attempts).
    let id = uuid::Uuid::now_v7();
    diesel::sql_query(format!(
        "INSERT INTO outbox (id, dedupe_key, kind, recipient, payload, status, attempts, next_attempt_at, last_error, created_at) \
         VALUES ('{id}', 'test:{id}', 'balance_low', 'lost@example.test', \
                 '{{\"name\": \"Lost\", \"available\": \"5\", \"threshold\": \"10\", \"billing_url\": \"http://x/billing\"}}', \
                 'dead', 12, now(), 'connection refused', now())"
    ))
    .execute(&mut app.db.conn())
    .unwrap();
    let base = app.instance.base_url.clone();
    let browser = Browser::start().await;
    console_sign_in(&browser, &base, credits_tests::ADMIN_TOKEN).await;
    browser.goto(&format!("{base}/console/mail")).await;
    assert!(browser.text("#dead-mail").await.contains("lost@example.test"));
    browser.assert_accessible("the dead mail page").await;
    browser.submit("button[aria-label='Send again to lost@example.test']").await;
    assert!(browser.wait_for("Back in the outbox").await.contains("No dead mail."));
    app.eventually("the mail is sent", || async { !sink.to("lost@example.test").is_empty() }).await;
}

/// A one-time link to `acct`'s billing page acting as `member` (R27).
async fn member_link(app: &TestApp, acct: &credits_tests::As, member: &str) -> String {
    let body = app.post(acct, "/v1/billing-page-sessions", json!({"member_id": member})).await.expect(201);
    let url = body["url"].as_str().unwrap();
    format!("{}{}", app.instance.base_url, &url[url.find("/billing/open?token=").unwrap()..])
}

async fn add_member(app: &TestApp, acct: &credits_tests::As, role: &str, cap: Option<i64>) -> String {
    let body = json!({"email": format!("{role}-{}@example.test", uuid::Uuid::now_v7()), "name": format!("A {role}"),
                      "role": role, "monthly_credit_limit": cap});
    app.post(acct, "/v1/members", body).await.expect(201)["id"].as_str().unwrap().to_string()
}

/// The sections of the billing page now shown, by their headings' ids.
async fn sections(browser: &Browser) -> Vec<String> {
    let source = browser.source().await;
    let ids = [
        "plan-h",
        "plans-h",
        "packs-h",
        "balance-h",
        "mine-h",
        "usage-h",
        "trials-h",
        "ledger-h",
        "alerts-h",
        "topup-h",
        "hooks-h",
        "keys-h",
        "members-h",
        "invoices-h",
        "verify-h",
    ];
    ids.iter().filter(|id| source.contains(&format!("id=\"{id}\""))).map(|id| id.to_string()).collect()
}

/// R27 in a browser: each role's page shows what SPEC says and passes axe-core; a form the role
/// may not use, crafted in its session, is refused and changes nothing; an admin manages members.
#[actix_web::test]
async fn each_role_sees_its_part_of_the_billing_page_and_a_refused_form_changes_nothing() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    app.enterprise(&acct, 10_000).await;
    let (admin, billing) =
        (add_member(&app, &acct, "admin", None).await, add_member(&app, &acct, "billing", None).await);
    let member = add_member(&app, &acct, "member", Some(500)).await;
    let mine = app.post(&acct, "/v1/api-keys", json!({"name": "mine", "member_id": member})).await.expect(201).clone();
    app.post(&acct, "/v1/api-keys", json!({"name": "the account's"})).await.expect(201);
    let everything = [
        "plan-h",
        "plans-h",
        "packs-h",
        "balance-h",
        "usage-h",
        "trials-h",
        "ledger-h",
        "alerts-h",
        "topup-h",
        "hooks-h",
        "keys-h",
        "members-h",
        "invoices-h",
        "verify-h",
    ];
    let browser = Browser::start().await;

    // No member named: the first owner, everything.
    browser.goto(&link(&app, &acct).await).await;
    assert_eq!(sections(&browser).await, everything);
    browser.assert_accessible("the owner's billing page").await;

    // An admin sees everything too, and adds a member on the page.
    browser.goto(&member_link(&app, &acct, &admin).await).await;
    assert_eq!(sections(&browser).await, everything);
    browser.assert_accessible("an admin's billing page").await;
    browser.fill("#member-email", "added-on-the-page@example.test").await;
    browser.fill("#member-name", "Added").await;
    browser.submit("form[action='/billing/members'] button").await;
    assert!(browser.wait_for("The member is added").await.contains("added-on-the-page@example.test"));
    let count = || async { app.get(&acct, "/v1/members").await.expect(200)["members"].as_array().unwrap().len() };
    assert_eq!(count().await, 5);

    // Billing: what pays, not keys, endpoints or members; adding a member is refused.
    browser.goto(&member_link(&app, &acct, &billing).await).await;
    assert_eq!(
        sections(&browser).await,
        [
            "plan-h",
            "plans-h",
            "packs-h",
            "balance-h",
            "usage-h",
            "trials-h",
            "ledger-h",
            "alerts-h",
            "topup-h",
            "invoices-h",
            "verify-h"
        ]
    );
    browser.assert_accessible("a billing member's billing page").await;
    browser.post_form("/billing/members", &[("email", "x@example.test"), ("name", "X"), ("role", "owner")]).await;
    assert!(browser.wait_for("Not for your role").await.contains("Nothing was changed"));
    assert_eq!(count().await, 5, "nobody added");

    // A member: the balance, their own use and cap, their own keys; the alert form is refused.
    app.call(&acct, "PUT", "/v1/alerts", Some(json!({"low_balance_threshold": 100})), None).await.expect(200);
    browser.goto(&member_link(&app, &acct, &member).await).await;
    assert_eq!(sections(&browser).await, ["balance-h", "mine-h", "keys-h"]);
    browser.assert_accessible("a member's billing page").await;
    assert_eq!(browser.text("#my-cap").await, "500 credits");
    let source = browser.source().await;
    assert!(source.contains(mine["prefix"].as_str().unwrap()), "their own key is listed");
    assert_eq!(source.matches("class=\"key\"").count(), 1, "and only theirs");
    browser.post_form("/billing/alerts", &[("low_balance_threshold", "7")]).await;
    assert!(browser.wait_for("Not for your role").await.contains("Nothing was changed"));
    assert_eq!(app.get(&acct, "/v1/alerts").await.expect(200)["low_balance_threshold"], 100);

    // A member removed meanwhile: their session ends.
    app.call(&acct, "DELETE", &format!("/v1/members/{member}"), None, None).await;
    browser.goto(&format!("{}/billing", app.instance.base_url)).await;
    assert!(browser.wait_for("session has ended").await.contains("Open your billing page"));
}
