//! SPEC section 8: the billing page in a real headless Chromium.

use credits_tests::browser::Browser;
use credits_tests::{TestApp, account_id};
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
    for attr in ["src=\"http", "href=\"http", "src=\"//", "href=\"//"] {
        assert!(!source.contains(attr), "no resource from another origin ({attr})");
    }
    browser
        .screenshot(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots/billing.png"))
        .await;

    // The alert form, as a person uses it.
    browser.fill("#low_balance_threshold", "120").await;
    browser.click("form[action='/billing/alerts'] button").await;
    assert!(browser.source().await.contains("Your alert is saved."));
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
