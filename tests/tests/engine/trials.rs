use credits_tests::TestApp;
use serde_json::json;

#[actix_web::test]
async fn a_count_trial_gives_three_free_generations_then_trial_exhausted() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    let run = app.run(&acct, json!({"model": "flux-pro", "images": 2, "capture": true})).await.expect(201);
    assert_eq!(run["trial"]["kind"], "count");
    app.run(&acct, json!({"model": "flux-pro", "images": 2})).await.expect_error(403, "TRIAL_EXHAUSTED");
    app.run(&acct, json!({"model": "flux-pro", "images": 1, "capture": true})).await.expect(201);
    let err = app.run(&acct, json!({"model": "flux-pro", "images": 1})).await;
    assert_eq!(err.expect_error(403, "TRIAL_EXHAUSTED")["required_plan"], "creator");
    assert_eq!(app.available(&acct).await, 250, "trial runs never touch the balance");
    let trials = app.get(&acct, "/v1/trials").await.expect(200);
    let t = trials["trials"].as_array().unwrap().iter().find(|t| t["model"] == "flux-pro").unwrap().clone();
    assert_eq!((t["used"].as_i64(), t["total"].as_i64(), t["status"].as_str()), (Some(3), Some(3), Some("exhausted")));
}

#[actix_web::test]
async fn a_released_trial_run_gives_its_generations_back() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    let run = app.run(&acct, json!({"model": "flux-pro", "images": 3})).await.expect(201);
    let id = run["id"].as_str().unwrap();
    app.post(&acct, &format!("/v1/runs/{id}/cancel"), json!({})).await.expect(200);
    let partial = app.run(&acct, json!({"model": "flux-pro", "images": 3})).await.expect(201);
    let id = partial["id"].as_str().unwrap();
    app.post(&acct, &format!("/v1/runs/{id}/complete"), json!({"images": 1})).await.expect(200);
    app.run(&acct, json!({"model": "flux-pro", "images": 2, "capture": true})).await.expect(201);
    app.run(&acct, json!({"model": "flux-pro", "images": 1})).await.expect_error(403, "TRIAL_EXHAUSTED");
}

#[actix_web::test]
async fn a_window_trial_is_open_seven_days_from_the_first_run() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    app.run(&acct, json!({"model": "kling-2.1", "duration_seconds": 10, "capture": true})).await.expect(201);
    app.advance(7 * 86400 - 3600).await;
    app.run(&acct, json!({"model": "kling-2.1", "duration_seconds": 10, "capture": true})).await.expect(201);
    assert_eq!(app.available(&acct).await, 250);
    app.advance(7200).await;
    let err = app.run(&acct, json!({"model": "kling-2.1", "duration_seconds": 1})).await;
    assert_eq!(err.expect_error(403, "TRIAL_EXPIRED")["required_plan"], "creator");
    let q = app.post(&acct, "/v1/quote", json!({"model": "kling-2.1", "duration_seconds": 1})).await.expect(200);
    assert_eq!(q["denial"]["code"], "TRIAL_EXPIRED");
}

#[actix_web::test]
async fn on_a_paid_plan_trials_play_no_part() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    app.enterprise(&acct, 1000).await;
    let run = app.run(&acct, json!({"model": "flux-pro", "images": 4, "capture": true})).await.expect(201);
    assert!(run["trial"].is_null());
    assert_eq!(app.available(&acct).await, 1250 - 40);
}

/// R9 with R10: a trial run whose hold ran out gives its generations back, as a cancelled one
/// does: at once (a request judges the hold released when its TTL is over), and when the sweep
/// writes the release.
#[actix_web::test]
async fn a_trial_run_whose_hold_ran_out_gives_its_generations_back_before_and_after_the_sweep() {
    // No sweep round after the first: the request alone must see the hold released.
    let app = TestApp::spawn_with(&[("CREDITS__WORKERS__INTERVAL_SECONDS", "3600")]).await;
    let acct = app.account().await;
    app.run(&acct, json!({"model": "flux-pro", "images": 3})).await.expect(201);
    app.run(&acct, json!({"model": "flux-pro", "images": 1})).await.expect_error(403, "TRIAL_EXHAUSTED");
    app.advance(901).await;
    let trials = app.get(&acct, "/v1/trials").await.expect(200);
    let flux = trials
        .as_array()
        .or_else(|| trials["trials"].as_array())
        .unwrap()
        .iter()
        .find(|t| t["model"] == "flux-pro")
        .unwrap()
        .clone();
    assert_eq!(flux["used"], 0, "{flux}");
    app.run(&acct, json!({"model": "flux-pro", "images": 3})).await.expect(201);
    // Released by the sweep, on a service that runs it.
    let swept = TestApp::spawn().await;
    let acct = swept.account().await;
    let run = swept.run(&acct, json!({"model": "flux-pro", "images": 3})).await.expect(201);
    let id = run["id"].as_str().unwrap().to_string();
    swept.advance(901).await;
    swept
        .eventually("the sweep released the hold", || async {
            use diesel::prelude::*;
            let status: String = credits_db::schema::runs::table
                .find(uuid::Uuid::parse_str(&id).unwrap())
                .select(credits_db::schema::runs::status)
                .first(&mut swept.db.conn())
                .unwrap();
            status == "released"
        })
        .await;
    swept.run(&acct, json!({"model": "flux-pro", "images": 3, "capture": true})).await.expect(201);
}
