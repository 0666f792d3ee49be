use credits_tests::{As, TestApp};
use serde_json::json;

#[actix_web::test]
async fn a_new_account_is_on_free_with_a_lifetime_grant_of_250() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    let b = app.balance(&acct).await;
    assert_eq!((b["available"].as_i64(), b["held"].as_i64(), b["total"].as_i64()), (Some(250), Some(0), Some(250)));
    assert_eq!(b["plan"], "free");
    let buckets = b["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 1);
    assert_eq!((buckets[0]["kind"].as_str(), buckets[0]["granted"].as_i64()), (Some("lifetime"), Some(250)));
    assert!(buckets[0]["expires_at"].is_null());
    let ledger = app.ledger(&acct).await;
    assert_eq!(ledger.len(), 1);
    assert_eq!((ledger[0]["type"].as_str(), ledger[0]["credits"].as_i64()), (Some("grant"), Some(250)));
    let info = app.get(&acct, "/v1/account").await.expect(200);
    assert_eq!(
        (info["plan"].as_str(), info["status"].as_str(), info["api_access"].as_bool()),
        (Some("free"), Some("active"), Some(false))
    );
    assert_eq!(info["capabilities"], json!(["canvas"]));
    assert_eq!(info["rate_limit"]["runs_per_minute"], 10);
}

#[actix_web::test]
async fn creating_an_account_needs_the_internal_token() {
    let app = TestApp::spawn().await;
    let body = json!({"email": "a@example.test", "name": "A"});
    app.post(&As::Nobody, "/v1/accounts", body.clone()).await.expect_error(401, "UNAUTHENTICATED");
    app.post(&As::Bearer("nope".into()), "/v1/accounts", body.clone()).await.expect_error(401, "UNAUTHENTICATED");
    app.post(&app.admin(), "/v1/accounts", body).await.expect_error(401, "UNAUTHENTICATED");
    assert_eq!(app.trace()[0], 0, "no account was made");
}

#[actix_web::test]
async fn a_malformed_body_is_400_and_a_wrong_shape_is_422_and_neither_leaves_a_trace() {
    let app = TestApp::spawn().await;
    let before = app.trace();
    let r = app
        .http
        .post(format!("{}/v1/accounts", app.instance.base_url))
        .bearer_auth(credits_tests::INTERNAL_TOKEN)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "INVALID_REQUEST");
    app.post(&As::Internal, "/v1/accounts", json!({"name": "No Email"})).await.expect_error(422, "INVALID_PARAMETERS");
    app.post(&As::Internal, "/v1/accounts", json!({"email": "not-an-email", "name": "X"}))
        .await
        .expect_error(422, "INVALID_PARAMETERS");
    app.post(&As::Internal, "/v1/accounts", json!({"email": "x@example.test", "name": "X", "plan": "pro"}))
        .await
        .expect_error(422, "INVALID_PARAMETERS");
    assert_eq!(app.trace(), before);
}

#[actix_web::test]
async fn an_account_id_that_names_no_account_reads_nothing() {
    let app = TestApp::spawn().await;
    app.account().await;
    let ghost = As::Canvas(uuid::Uuid::new_v4().to_string());
    app.get(&ghost, "/v1/balance").await.expect_error(404, "NOT_FOUND");
    app.get(&As::Canvas("garbage".into()), "/v1/balance").await.expect_error(404, "NOT_FOUND");
    app.get(&As::Internal, "/v1/balance").await.expect_error(401, "UNAUTHENTICATED");
}

#[actix_web::test]
async fn one_account_never_reaches_another_accounts_runs() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.account().await, app.account().await);
    let run = app.run(&a, json!({"model": "flux-schnell", "images": 2})).await.expect(201);
    let id = run["id"].as_str().unwrap();
    app.get(&b, &format!("/v1/runs/{id}")).await.expect_error(404, "NOT_FOUND");
    app.post(&b, &format!("/v1/runs/{id}/complete"), json!({})).await.expect_error(404, "NOT_FOUND");
    app.post(&b, &format!("/v1/runs/{id}/cancel"), json!({})).await.expect_error(404, "NOT_FOUND");
    assert_eq!(app.get(&a, &format!("/v1/runs/{id}")).await.expect(200)["status"], "held");
    assert_eq!(app.available(&b).await, 250);
}

#[actix_web::test]
async fn the_catalog_is_open_and_shows_prices_and_trials() {
    let app = TestApp::spawn().await;
    let plans = app.get(&As::Nobody, "/v1/plans").await.expect(200);
    let pro = plans["plans"].as_array().unwrap().iter().find(|p| p["id"] == "pro").unwrap().clone();
    assert_eq!((pro["monthly_credits"].as_i64(), pro["api_access"].as_bool()), (Some(5000), Some(true)));
    assert!(pro["price"]["amount"].as_i64().unwrap() > 0 && pro["stripe_price_id"].is_string());
    let models = app.get(&As::Nobody, "/v1/models").await.expect(200);
    let flux_pro = models["models"].as_array().unwrap().iter().find(|m| m["id"] == "flux-pro").unwrap().clone();
    assert_eq!(flux_pro["trial"], json!({"kind": "count", "generations": 3}));
    let packs = app.get(&As::Nobody, "/v1/topup-packs").await.expect(200);
    assert_eq!(packs["packs"].as_array().unwrap().len(), 3);
}

#[actix_web::test]
async fn health_and_readiness_answer_and_unknown_routes_are_404_in_the_error_format() {
    let app = TestApp::spawn().await;
    app.get(&As::Nobody, "/healthz").await.expect(200);
    app.get(&As::Nobody, "/readyz").await.expect(200);
    app.get(&As::Nobody, "/v1/nothing-here").await.expect_error(404, "NOT_FOUND");
}
