use credits_tests::TestApp;
use diesel::RunQueryDsl;
use serde_json::json;

#[actix_web::test]
async fn the_ledger_lists_newest_first_and_pages_without_gaps_or_repeats() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    for images in 1..=4 {
        app.run(&acct, json!({"model": "flux-schnell", "images": images, "capture": true})).await.expect(201);
    }
    let all = app.ledger(&acct).await;
    let credits: Vec<i64> = all.iter().map(|e| e["credits"].as_i64().unwrap()).collect();
    assert_eq!(credits, [-8, -6, -4, -2, 250]);
    let mut seen = Vec::new();
    let mut page = app.get(&acct, "/v1/ledger?limit=2").await.expect(200);
    loop {
        seen.extend(page["entries"].as_array().unwrap().iter().cloned());
        let Some(cursor) = page["next_cursor"].as_str().map(str::to_string) else {
            break;
        };
        page = app.get(&acct, &format!("/v1/ledger?limit=2&cursor={cursor}")).await.expect(200);
    }
    assert_eq!(seen, all);
    app.get(&acct, "/v1/ledger?limit=0").await.expect_error(422, "INVALID_PARAMETERS");
    app.get(&acct, "/v1/ledger?cursor=abc").await.expect_error(422, "INVALID_PARAMETERS");
}

#[actix_web::test]
async fn every_buckets_remaining_is_the_sum_of_its_entries() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    app.adjust(&acct, json!({"credits": 40, "reason": "grant", "expires_at": (app.now().await + chrono::Duration::days(1)).to_rfc3339()}))
        .await
        .expect(201);
    app.run(&acct, json!({"model": "flux-schnell", "images": 8, "capture": true})).await.expect(201);
    let held = app.run(&acct, json!({"model": "flux-schnell", "images": 8})).await.expect(201);
    app.post(&acct, &format!("/v1/runs/{}/cancel", held["id"].as_str().unwrap()), json!({})).await.expect(200);
    let part = app.run(&acct, json!({"model": "flux-schnell", "images": 8})).await.expect(201);
    app.post(&acct, &format!("/v1/runs/{}/complete", part["id"].as_str().unwrap()), json!({"images": 3}))
        .await
        .expect(200);
    app.adjust(&acct, json!({"credits": -5, "reason": "fix"})).await.expect(201);
    let mut sums = std::collections::HashMap::<String, i64>::new();
    for e in app.ledger(&acct).await {
        *sums.entry(e["bucket_id"].as_str().unwrap().to_string()).or_default() += e["credits"].as_i64().unwrap();
    }
    for b in app.balance(&acct).await["buckets"].as_array().unwrap() {
        assert_eq!(sums[b["id"].as_str().unwrap()], b["remaining"].as_i64().unwrap(), "{b}");
    }
    assert_eq!(app.available(&acct).await, 290 - 16 - 6 - 5);
    app.assert_ledger_consistent();
}

#[actix_web::test]
async fn ledger_entries_cannot_be_changed_or_removed() {
    let app = TestApp::spawn().await;
    app.account().await;
    let mut conn = app.db.conn();
    assert!(diesel::sql_query("UPDATE ledger_entries SET credits = 1000").execute(&mut conn).is_err());
    assert!(diesel::sql_query("DELETE FROM ledger_entries").execute(&mut conn).is_err());
}
