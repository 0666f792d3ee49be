use chrono::{Duration, SecondsFormat};
use credits_tests::TestApp;
use serde_json::json;

#[actix_web::test]
async fn an_expired_bucket_stops_counting_at_once_and_the_sweep_writes_its_expire_entry() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    let at = app.now().await + Duration::hours(1);
    let grant = app
        .adjust(
            &acct,
            json!({"credits": 100, "reason": "short", "expires_at": at.to_rfc3339_opts(SecondsFormat::Secs, true)}),
        )
        .await
        .expect(201);
    let bucket = grant["bucket_id"].as_str().unwrap().to_string();
    app.run(&acct, json!({"model": "flux-schnell", "images": 8, "capture": true})).await.expect(201);
    app.advance(3500).await;
    assert_eq!(app.available(&acct).await, 334);
    app.advance(101).await;
    assert_eq!(app.available(&acct).await, 250, "gone the moment it expires");
    app.eventually("an expire entry of what was left", || async {
        app.ledger(&acct)
            .await
            .iter()
            .any(|e| e["type"] == "expire" && e["bucket_id"] == bucket.as_str() && e["credits"] == -84)
    })
    .await;
    // And only one, however many rounds the sweep makes.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let expires = app.ledger(&acct).await.into_iter().filter(|e| e["type"] == "expire").count();
    assert_eq!(expires, 1);
    app.assert_ledger_consistent();
}

async fn expired_total(app: &TestApp, acct: &credits_tests::As) -> i64 {
    app.ledger(acct).await.iter().filter(|e| e["type"] == "expire").map(|e| e["credits"].as_i64().unwrap()).sum()
}

/// An account whose only credits are a pack of 20 expiring in ten minutes.
async fn only_a_short_pack(app: &TestApp) -> credits_tests::As {
    let acct = app.account().await;
    app.adjust(&acct, json!({"credits": -250, "reason": "empty the lifetime bucket"})).await.expect(201);
    let at = app.now().await + Duration::minutes(10);
    app.adjust(
        &acct,
        json!({"credits": 20, "reason": "short", "expires_at": at.to_rfc3339_opts(SecondsFormat::Secs, true)}),
    )
    .await
    .expect(201);
    acct
}

#[actix_web::test]
async fn a_hold_keeps_its_credits_in_a_bucket_that_expires_and_what_it_releases_expires_at_once() {
    let app = TestApp::spawn().await;
    let acct = only_a_short_pack(&app).await;
    let run = app.run(&acct, json!({"model": "flux-schnell", "images": 8})).await.expect(201);
    app.advance(11 * 60).await;
    let b = app.balance(&acct).await;
    assert_eq!((b["available"].as_i64(), b["held"].as_i64()), (Some(0), Some(16)), "the hold keeps its 16");
    app.eventually("the sweep expires the 4 no hold reserves", || async { expired_total(&app, &acct).await == -4 })
        .await;
    let id = run["id"].as_str().unwrap();
    app.post(&acct, &format!("/v1/runs/{id}/complete"), json!({"images": 5})).await.expect(200);
    assert_eq!(expired_total(&app, &acct).await, -10, "the 6 released back to the expired bucket expire at once");
    let b = app.balance(&acct).await;
    assert_eq!((b["available"].as_i64(), b["held"].as_i64()), (Some(0), Some(0)));
    app.assert_ledger_consistent();
}

#[actix_web::test]
async fn the_lifetime_grant_never_expires() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    app.advance(3 * 366 * 24 * 3600).await;
    assert_eq!(app.available(&acct).await, 250);
}

#[actix_web::test]
async fn two_holds_on_an_expired_pack_released_by_one_sweep_expire_their_credits_once() {
    let app = TestApp::spawn().await;
    let acct = only_a_short_pack(&app).await;
    // Two holds of 8 on the pack, both left to lapse (holds last 15 minutes).
    for _ in 0..2 {
        app.run(&acct, json!({"model": "flux-schnell", "images": 4})).await.expect(201);
    }
    app.advance(11 * 60).await;
    app.eventually("the sweep expires the 4 no hold reserves", || async { expired_total(&app, &acct).await == -4 })
        .await;
    // Both holds lapse before the next round of the sweep, which releases them together.
    app.advance(5 * 60).await;
    app.eventually("both holds released", || async { app.balance(&acct).await["held"].as_i64() == Some(0) }).await;
    assert_eq!(expired_total(&app, &acct).await, -20, "the pack's 16 released credits expire once, not once per hold");
    let b = app.balance(&acct).await;
    assert_eq!((b["available"].as_i64(), b["held"].as_i64()), (Some(0), Some(0)));
    app.assert_ledger_consistent();
}
