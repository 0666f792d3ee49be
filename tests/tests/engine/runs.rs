use credits_tests::TestApp;
use serde_json::json;

async fn pair(app: &TestApp, who: &credits_tests::As) -> (i64, i64) {
    let b = app.balance(who).await;
    (b["available"].as_i64().unwrap(), b["held"].as_i64().unwrap())
}

#[actix_web::test]
async fn a_hold_reserves_its_cost_and_completion_captures_the_actual_cost() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    let run = app.run(&acct, json!({"model": "flux-schnell", "images": 4})).await.expect(201);
    assert_eq!((run["status"].as_str(), run["cost"].as_i64()), (Some("held"), Some(8)));
    assert!(run["hold_expires_at"].is_string());
    assert_eq!(pair(&app, &acct).await, (242, 8));
    let id = run["id"].as_str().unwrap();
    let done = app.post(&acct, &format!("/v1/runs/{id}/complete"), json!({"images": 2})).await.expect(200);
    assert_eq!((done["status"].as_str(), done["captured_credits"].as_i64()), (Some("captured"), Some(4)));
    assert_eq!(done["charged"][0]["credits"], 4);
    assert_eq!(pair(&app, &acct).await, (246, 0));
    app.post(&acct, &format!("/v1/runs/{id}/complete"), json!({})).await.expect_error(409, "CONFLICT");
    app.post(&acct, &format!("/v1/runs/{id}/cancel"), json!({})).await.expect_error(409, "CONFLICT");
    app.assert_ledger_consistent();
}

#[actix_web::test]
async fn completing_with_more_than_requested_is_refused_and_keeps_the_hold() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    let run = app.run(&acct, json!({"model": "flux-schnell", "images": 2})).await.expect(201);
    let id = run["id"].as_str().unwrap();
    app.post(&acct, &format!("/v1/runs/{id}/complete"), json!({"images": 3}))
        .await
        .expect_error(422, "INVALID_PARAMETERS");
    assert_eq!(app.get(&acct, &format!("/v1/runs/{id}")).await.expect(200)["status"], "held");
    assert_eq!(pair(&app, &acct).await, (246, 4));
}

#[actix_web::test]
async fn cancelling_releases_everything_and_a_capture_true_run_is_charged_at_once() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    let run = app.run(&acct, json!({"model": "flux-schnell", "images": 4})).await.expect(201);
    let id = run["id"].as_str().unwrap();
    assert_eq!(app.post(&acct, &format!("/v1/runs/{id}/cancel"), json!({})).await.expect(200)["status"], "released");
    assert_eq!(pair(&app, &acct).await, (250, 0));
    let captured = app.run(&acct, json!({"model": "upscale-4x", "capture": true})).await.expect(201);
    assert_eq!((captured["status"].as_str(), captured["cost"].as_i64()), (Some("captured"), Some(5)));
    assert_eq!(pair(&app, &acct).await, (245, 0));
    let newest = &app.ledger(&acct).await[0];
    assert_eq!((newest["type"].as_str(), newest["credits"].as_i64()), (Some("debit"), Some(-5)));
    assert_eq!(newest["run_id"], captured["id"]);
}

#[actix_web::test]
async fn a_hold_not_finished_within_its_ttl_is_released_by_the_service() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    let run = app.run(&acct, json!({"model": "flux-schnell", "images": 4})).await.expect(201);
    let id = run["id"].as_str().unwrap().to_string();
    app.advance(900 - 60).await;
    assert_eq!(pair(&app, &acct).await, (242, 8), "still held a minute before its TTL");
    app.advance(61).await;
    assert_eq!(pair(&app, &acct).await, (250, 0), "past its TTL a hold reserves nothing, sweep or not");
    app.eventually("the sweep marks the run released", || async {
        let r = app.get(&acct, &format!("/v1/runs/{id}")).await.expect(200);
        r["status"] == "released" && r["finished_at"].is_string()
    })
    .await;
    app.post(&acct, &format!("/v1/runs/{id}/complete"), json!({})).await.expect_error(409, "CONFLICT");
    assert_eq!(app.ledger(&acct).await.len(), 1, "a released hold writes no debit");
}

#[actix_web::test]
async fn cost_follows_r1_and_parameters_of_the_wrong_kind_are_refused() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    for (body, cost) in [
        (json!({"model": "flux-schnell"}), 2),
        (json!({"model": "flux-schnell", "images": 8}), 16),
        (json!({"model": "upscale-4x"}), 5),
    ] {
        assert_eq!(app.post(&acct, "/v1/quote", body).await.expect(200)["cost"].as_i64(), Some(cost));
    }
    for bad in [
        json!({"model": "flux-schnell", "images": 9}),
        json!({"model": "flux-schnell", "images": 2.5}),
        json!({"model": "flux-schnell", "images": "3"}),
        json!({"model": "flux-schnell", "duration_seconds": 3}),
        json!({"model": "upscale-4x", "images": 1}),
        json!({"model": "flux-schnell", "images": 99999999999999999999u128 as f64}),
        json!({"model": "flux-schnell", "colour": "blue"}),
        json!({"images": 1}),
    ] {
        app.run(&acct, bad).await.expect_error(422, "INVALID_PARAMETERS");
    }
    app.run(&acct, json!({"model": "nope"})).await.expect_error(422, "UNKNOWN_MODEL");
    assert_eq!(pair(&app, &acct).await, (250, 0));
}

#[actix_web::test]
async fn the_tier_gate_holds_whatever_the_balance_and_enterprise_passes_it() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    app.adjust(&acct, json!({"credits": 100000, "reason": "lots"})).await.expect(201);
    let err = app.run(&acct, json!({"model": "seedance-2.0", "duration_seconds": 5})).await;
    assert_eq!(err.expect_error(403, "MODEL_TIER_REQUIRED")["required_plan"], "business");
    app.enterprise(&acct, 1000).await;
    app.run(&acct, json!({"model": "seedance-2.0", "duration_seconds": 10, "capture": true})).await.expect(201);
    assert_eq!(app.available(&acct).await, 100250 + 1000 - 600);
}

#[actix_web::test]
async fn the_eleventh_free_run_in_a_minute_is_rate_limited_and_leaves_no_trace() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    for _ in 0..10 {
        app.run(&acct, json!({"model": "upscale-4x", "capture": true})).await.expect(201);
    }
    let before = app.trace();
    let r = app.run(&acct, json!({"model": "upscale-4x", "capture": true})).await;
    r.expect_error(429, "RATE_LIMITED");
    let retry: u32 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    // 429 is judged before 422 (SPEC section 4's order).
    app.run(&acct, json!({"model": "flux-schnell", "images": 99})).await.expect_error(429, "RATE_LIMITED");
    assert_eq!(app.trace(), before);
    app.advance(61).await;
    app.run(&acct, json!({"model": "upscale-4x", "capture": true})).await.expect(201);
}
