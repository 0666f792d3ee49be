//! R20 (who may finish a run, read scopes) and R21 (spend caps per API key), end to end.

use credits_tests::{TestApp, call_at};
use serde_json::json;

#[actix_web::test]
async fn a_read_only_key_can_neither_complete_nor_cancel_a_canvas_run_and_nothing_changes() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    app.enterprise(&acct, 1000).await;
    let (reader, _) = app.api_key(&acct, Some(&["workflow:read"])).await;
    let run = app.run(&acct, json!({"model": "flux-schnell", "images": 8})).await.expect(201);
    let id = run["id"].as_str().unwrap();
    let before = app.balance(&acct).await;
    app.post(&reader, &format!("/v1/runs/{id}/complete"), json!({"images": 1})).await.expect_error(403, "FORBIDDEN");
    app.post(&reader, &format!("/v1/runs/{id}/cancel"), json!({})).await.expect_error(403, "FORBIDDEN");
    assert_eq!(app.balance(&acct).await, before);
    // The key may still read the run; the canvas finishes it.
    assert_eq!(app.get(&reader, &format!("/v1/runs/{id}")).await.expect(200)["status"], "held");
    app.post(&acct, &format!("/v1/runs/{id}/complete"), json!({"images": 8})).await.expect(200);
    // A key without workflow:read reads nothing.
    let (runner, _) = app.api_key(&acct, Some(&["workflow:run"])).await;
    let refused = app.get(&runner, "/v1/balance").await;
    assert_eq!(refused.expect_error(403, "CAPABILITY_REQUIRED")["capability"], "workflow:read");
}

/// R21 under contention: the cap is counted under the account's lock, so however many runs race
/// through one key, what it holds and captured never passes the cap.
#[actix_web::test]
async fn thirty_two_concurrent_runs_through_one_capped_key_never_exceed_the_cap() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    app.enterprise(&acct, 100_000).await;
    let (key, key_id) = app.api_key(&acct, None).await;
    app.call(&acct, "PATCH", &format!("/v1/api-keys/{key_id}"), Some(json!({"monthly_credit_limit": 150})), None)
        .await
        .expect(200);
    // kling-2.1, 1 s = 20 credits: at most 7 of the 32 fit in 150.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..32 {
        let (http, base, who) = (app.http.clone(), app.instance.base_url.clone(), key.clone());
        let body = json!({"model": "kling-2.1", "duration_seconds": 1, "workflow_id": format!("wf_{i}"), "capture": i % 2 == 0});
        tasks.spawn(async move {
            let r = call_at(&http, &base, &who, "POST", "/v1/runs", Some(body), None).await;
            (r.status, r.code().to_string())
        });
    }
    let mut answers = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        answers.push(answer.unwrap());
    }
    let admitted = answers.iter().filter(|(status, _)| *status == 201).count();
    let capped = answers.iter().filter(|(status, code)| *status == 402 && code == "KEY_CREDIT_LIMIT").count();
    assert_eq!((admitted, capped), (7, 25), "every run either fits the cap or is refused by it");
    let listed = app.get(&acct, "/v1/api-keys").await.expect(200);
    let k = listed["api_keys"].as_array().unwrap().iter().find(|k| k["id"] == key_id.as_str()).unwrap().clone();
    assert_eq!((k["monthly_credit_limit"].as_i64(), k["used_this_month"].as_i64()), (Some(150), Some(140)));
    app.assert_invariants().await;
}
