//! Issue 3: API keys (R8), isolation, metrics and the OpenAPI document.

use credits_tests::{As, TestApp, account_id};
use serde_json::json;

#[actix_web::test]
async fn free_and_creator_accounts_cannot_create_keys() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    app.post(&acct, "/v1/api-keys", json!({"name": "k"})).await.expect_error(403, "API_ACCESS_REQUIRED");
    app.set_plan(&acct, "creator");
    app.post(&acct, "/v1/api-keys", json!({"name": "k"})).await.expect_error(403, "API_ACCESS_REQUIRED");
    assert_eq!(app.get(&acct, "/v1/api-keys").await.expect(200)["api_keys"], json!([]));
}

#[actix_web::test]
async fn a_key_is_shown_once_stored_as_a_hash_and_revoked_at_once() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    app.set_plan(&acct, "pro");
    let (key, id) = app.api_key(&acct, None).await;
    let As::Bearer(secret) = &key else { unreachable!() };
    assert!(secret.starts_with("ck_") && secret.len() == 3 + 64, "256 bits of randomness: {secret}");
    let listed = app.get(&acct, "/v1/api-keys").await;
    assert!(!listed.body.to_string().contains(secret.as_str()), "the list never shows the secret");
    assert_eq!(listed.body["api_keys"][0]["scopes"], json!(["workflow:read", "workflow:run"]));
    let stored: Vec<String> = {
        use diesel::prelude::*;
        credits_db::schema::api_keys::table
            .select(credits_db::schema::api_keys::secret_hash)
            .load(&mut app.db.conn())
            .unwrap()
    };
    assert_eq!(stored, vec![credits_api::token_hash(secret)], "only the hash is kept");
    assert_eq!(app.available(&key).await, 250);
    assert_eq!(app.call(&acct, "DELETE", &format!("/v1/api-keys/{id}"), None, None).await.status, 204);
    app.get(&key, "/v1/balance").await.expect_error(401, "UNAUTHENTICATED");
    app.call(&acct, "DELETE", &format!("/v1/api-keys/{id}"), None, None).await.expect_error(404, "NOT_FOUND");
}

#[actix_web::test]
async fn scopes_stay_within_the_plan() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    app.set_plan(&acct, "pro");
    let r = app.post(&acct, "/v1/api-keys", json!({"name": "k", "scopes": ["model:run"]})).await;
    assert_eq!(r.expect_error(403, "CAPABILITY_REQUIRED")["capability"], "model:run");
    app.post(&acct, "/v1/api-keys", json!({"name": "k", "scopes": ["canvas"]}))
        .await
        .expect_error(422, "INVALID_PARAMETERS");
    app.post(&acct, "/v1/api-keys", json!({"name": "k", "scopes": ["root"]}))
        .await
        .expect_error(422, "INVALID_PARAMETERS");
    app.post(&acct, "/v1/api-keys", json!({"name": ""})).await.expect_error(422, "INVALID_PARAMETERS");
}

#[actix_web::test]
async fn a_pro_key_runs_workflows_but_not_models_directly_and_a_business_key_does_both() {
    let app = TestApp::spawn().await;
    let pro = app.account().await;
    app.set_plan(&pro, "pro");
    let (key, _) = app.api_key(&pro, None).await;
    app.run(&key, json!({"model": "flux-schnell", "workflow_id": "wf_1", "capture": true})).await.expect(201);
    let err = app.run(&key, json!({"model": "flux-schnell", "capture": true})).await;
    assert_eq!(err.expect_error(403, "CAPABILITY_REQUIRED")["capability"], "model:run");

    let business = app.account().await;
    app.set_plan(&business, "business");
    let (key, _) = app.api_key(&business, None).await;
    app.run(&key, json!({"model": "flux-schnell", "workflow_id": "wf_1", "capture": true})).await.expect(201);
    app.run(&key, json!({"model": "seedance-2.0", "duration_seconds": 2, "capture": true})).await.expect(201);
    assert_eq!(app.available(&business).await, 250 - 2 - 120);

    // A key scoped to less than the plan stays within its scopes.
    let (narrow, _) = app.api_key(&business, Some(&["workflow:read"])).await;
    app.run(&narrow, json!({"model": "flux-schnell", "workflow_id": "wf_1"}))
        .await
        .expect_error(403, "CAPABILITY_REQUIRED");
}

#[actix_web::test]
async fn a_downgrade_refuses_the_key_on_the_next_call() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    app.set_plan(&acct, "pro");
    let (key, _) = app.api_key(&acct, None).await;
    app.get(&key, "/v1/balance").await.expect(200);
    app.set_plan(&acct, "creator");
    app.get(&key, "/v1/balance").await.expect_error(403, "API_ACCESS_REQUIRED");
    app.run(&key, json!({"model": "flux-schnell", "workflow_id": "wf_1"}))
        .await
        .expect_error(403, "API_ACCESS_REQUIRED");
    // The channel is judged after the rate limit and the parameters (SPEC section 4's order).
    app.run(&key, json!({"model": "flux-schnell", "images": 99})).await.expect_error(422, "INVALID_PARAMETERS");
    // The canvas can still see and revoke the keys it no longer may use.
    assert_eq!(app.get(&acct, "/v1/api-keys").await.expect(200)["api_keys"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn an_api_key_reaches_neither_key_management_nor_checkout_nor_operator_routes() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    app.set_plan(&acct, "business");
    let (key, id) = app.api_key(&acct, None).await;
    app.post(&key, "/v1/api-keys", json!({"name": "from the api"})).await.expect_error(403, "FORBIDDEN");
    app.get(&key, "/v1/api-keys").await.expect_error(403, "FORBIDDEN");
    app.call(&key, "DELETE", &format!("/v1/api-keys/{id}"), None, None).await.expect_error(403, "FORBIDDEN");
    let checkout = json!({"pack": "small", "success_url": "https://a.example/s", "cancel_url": "https://a.example/c"});
    app.post(&key, "/v1/checkout/topup", checkout).await.expect_error(403, "FORBIDDEN");
    app.get(&key, &format!("/admin/v1/accounts/{}", account_id(&acct))).await.expect_error(401, "UNAUTHENTICATED");
}

#[actix_web::test]
async fn no_route_lets_one_account_read_or_change_anothers_data() {
    let app = TestApp::spawn().await;
    let (owner, other) = (app.account().await, app.account().await);
    app.set_plan(&owner, "business");
    app.set_plan(&other, "business");
    let run = app.run(&owner, json!({"model": "flux-schnell", "images": 2})).await.expect(201);
    let run_id = run["id"].as_str().unwrap();
    let (_, key_id) = app.api_key(&owner, None).await;
    let (other_key, _) = app.api_key(&other, None).await;
    for who in [&other, &other_key] {
        app.get(who, &format!("/v1/runs/{run_id}")).await.expect_error(404, "NOT_FOUND");
        app.post(who, &format!("/v1/runs/{run_id}/complete"), json!({})).await.expect_error(404, "NOT_FOUND");
        app.post(who, &format!("/v1/runs/{run_id}/cancel"), json!({})).await.expect_error(404, "NOT_FOUND");
    }
    app.call(&other, "DELETE", &format!("/v1/api-keys/{key_id}"), None, None).await.expect_error(404, "NOT_FOUND");
    // An API key acts for its own account, whatever X-Account-Id says.
    let As::Bearer(secret) = &other_key else { unreachable!() };
    let r = app
        .http
        .get(format!("{}/v1/balance", app.instance.base_url))
        .bearer_auth(secret)
        .header("X-Account-Id", account_id(&owner))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["account_id"].as_str(), Some(account_id(&other)));
    assert_eq!(app.get(&owner, &format!("/v1/runs/{run_id}")).await.expect(200)["status"], "held");
    assert_eq!(app.get(&owner, "/v1/api-keys").await.expect(200)["api_keys"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn metrics_count_requests_runs_denials_and_credits_in_prometheus_text() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    app.run(&acct, json!({"model": "flux-schnell", "images": 3, "capture": true})).await.expect(201);
    app.run(&acct, json!({"model": "flux-schnell", "images": 2})).await.expect(201);
    app.run(&acct, json!({"model": "seedance-2.0", "duration_seconds": 1}))
        .await
        .expect_error(403, "MODEL_TIER_REQUIRED");
    let r = app.http.get(format!("{}/metrics", app.instance.base_url)).send().await.unwrap();
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = r.text().await.unwrap();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (name, value) = line.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok() && !name.is_empty(), "not a sample line: {line}");
    }
    let sample = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit_once(' '))
            .map(|(_, v)| v.parse().unwrap())
            .unwrap_or(0.0)
    };
    assert_eq!(sample("credits_runs_total{outcome=\"captured\"}"), 1.0);
    assert_eq!(sample("credits_runs_total{outcome=\"held\"}"), 1.0);
    assert_eq!(sample("credits_run_denials_total{code=\"MODEL_TIER_REQUIRED\"}"), 1.0);
    assert_eq!(sample("credits_debited_total{type=\"debit\"}"), 6.0);
    assert_eq!(sample("credits_granted_total{type=\"grant\"}"), 250.0);
    assert_eq!(sample("credits_open_holds"), 1.0);
    assert!(sample("credits_db_pool_max") >= 1.0);
    assert!(
        text.contains("credits_http_requests_total{method=\"POST\",route=\"/v1/runs\",status=\"201\"} 2"),
        "{text}"
    );
    assert!(text.contains("credits_http_request_duration_seconds_bucket{method=\"POST\",route=\"/v1/runs\""));
}

#[actix_web::test]
async fn the_openapi_document_names_every_route_of_the_service() {
    let app = TestApp::spawn().await;
    let doc = app.get(&As::Nobody, "/openapi.json").await.expect(200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let expected = [
        ("get", "/v1/plans"),
        ("get", "/v1/models"),
        ("get", "/v1/topup-packs"),
        ("post", "/v1/accounts"),
        ("get", "/v1/account"),
        ("get", "/v1/balance"),
        ("get", "/v1/ledger"),
        ("post", "/v1/quote"),
        ("post", "/v1/runs"),
        ("get", "/v1/runs/{id}"),
        ("post", "/v1/runs/{id}/complete"),
        ("post", "/v1/runs/{id}/cancel"),
        ("get", "/v1/trials"),
        ("post", "/v1/api-keys"),
        ("get", "/v1/api-keys"),
        ("delete", "/v1/api-keys/{id}"),
        ("post", "/v1/checkout/subscription"),
        ("post", "/v1/checkout/topup"),
        ("get", "/admin/v1/accounts/{id}"),
        ("post", "/admin/v1/accounts/{id}/adjustments"),
        ("put", "/admin/v1/accounts/{id}/enterprise"),
        ("get", "/admin/v1/test-clock"),
        ("post", "/admin/v1/test-clock"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("get", "/openapi.json"),
        ("get", "/docs"),
        ("post", "/webhooks/stripe"),
        ("post", "/v1/business-verification"),
        ("get", "/v1/business-verification"),
        ("get", "/admin/v1/business-verifications"),
        ("post", "/admin/v1/business-verifications/{id}/approve"),
        ("post", "/admin/v1/business-verifications/{id}/reject"),
    ];
    for (method, path) in expected {
        assert!(doc["paths"][path][method].is_object(), "{method} {path} is documented");
    }
    let docs = app.http.get(format!("{}/docs", app.instance.base_url)).send().await.unwrap();
    assert_eq!(docs.status().as_u16(), 200);
    let policy = docs.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    let page = docs.text().await.unwrap();
    assert!(page.contains("/openapi.json"));
    // Every script the page loads is the service's own: nothing from another origin.
    for src in page.split("src=\"").skip(1).map(|rest| rest.split('"').next().unwrap()) {
        assert!(src.starts_with('/'), "the page loads {src} from another origin");
        let script = app.http.get(format!("{}{src}", app.instance.base_url)).send().await.unwrap();
        assert_eq!(script.status().as_u16(), 200, "{src}");
        assert!(script.bytes().await.unwrap().len() > 100_000, "{src} is the Redoc bundle");
    }
}
