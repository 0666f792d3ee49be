use chrono::{Duration, SecondsFormat};
use credits_tests::TestApp;
use serde_json::{Value, json};

fn bucket_expiring(balance: &Value, at: chrono::DateTime<chrono::Utc>) -> Value {
    balance["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["expires_at"].as_str().and_then(|s| s.parse::<chrono::DateTime<chrono::Utc>>().ok()) == Some(at))
        .cloned()
        .unwrap_or_else(|| panic!("a bucket expires at {at}: {balance}"))
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[actix_web::test]
async fn a_run_draws_from_the_soonest_expiring_bucket_first_and_never_expiring_ones_last() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    let now = app.now().await.with_nanosecond_zero();
    let (day1, day2) = (now + Duration::days(1), now + Duration::days(2));
    app.adjust(&acct, json!({"credits": 10, "reason": "later", "expires_at": rfc3339(day2)})).await.expect(201);
    app.adjust(&acct, json!({"credits": 10, "reason": "sooner", "expires_at": rfc3339(day1)})).await.expect(201);
    let run = app.run(&acct, json!({"model": "flux-schnell", "images": 8, "capture": true})).await.expect(201);
    let charged: Vec<i64> = run["charged"].as_array().unwrap().iter().map(|c| c["credits"].as_i64().unwrap()).collect();
    assert_eq!(charged, [10, 6], "one run may draw from several buckets");
    let b = app.balance(&acct).await;
    assert_eq!(bucket_expiring(&b, day1)["remaining"], 0);
    assert_eq!(bucket_expiring(&b, day2)["remaining"], 4);
    let lifetime = b["buckets"].as_array().unwrap().iter().find(|b| b["kind"] == "lifetime").unwrap().clone();
    assert_eq!(lifetime["remaining"], 250);
    app.assert_ledger_consistent();
}

trait ZeroNanos {
    fn with_nanosecond_zero(self) -> Self;
}

impl ZeroNanos for chrono::DateTime<chrono::Utc> {
    fn with_nanosecond_zero(self) -> Self {
        use chrono::Timelike;
        self.with_nanosecond(0).unwrap()
    }
}

#[actix_web::test]
async fn a_run_costing_more_than_available_is_402_with_both_figures_and_no_trace() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    app.adjust(&acct, json!({"credits": -230, "reason": "test"})).await.expect(201);
    app.run(&acct, json!({"model": "flux-schnell", "images": 8})).await.expect(201);
    let before = app.trace();
    let err = app.run(&acct, json!({"model": "flux-schnell", "images": 3, "capture": true})).await;
    let e = err.expect_error(402, "INSUFFICIENT_CREDITS");
    assert_eq!(
        (e["required"].as_i64(), e["available"].as_i64()),
        (Some(6), Some(4)),
        "open holds count against available"
    );
    assert_eq!(app.trace(), before);
    let q = app.post(&acct, "/v1/quote", json!({"model": "flux-schnell", "images": 3})).await.expect(200);
    assert_eq!((q["allowed"].as_bool(), q["denial"]["code"].as_str()), (Some(false), Some("INSUFFICIENT_CREDITS")));
    app.run(&acct, json!({"model": "flux-schnell", "images": 2, "capture": true})).await.expect(201);
    assert_eq!(app.available(&acct).await, 0, "a run costing exactly what is available succeeds");
}

#[actix_web::test]
async fn a_negative_adjustment_takes_in_burn_down_order_and_never_more_than_available() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    let before = app.trace();
    let r = app.adjust(&acct, json!({"credits": -1000, "reason": "too much"})).await;
    assert_eq!(r.expect_error(422, "INVALID_PARAMETERS")["available"], 250);
    assert_eq!(app.trace(), before);
    app.adjust(&acct, json!({"credits": -50, "reason": "duplicate grant"})).await.expect(201);
    assert_eq!(app.available(&acct).await, 200);
    let newest = &app.ledger(&acct).await[0];
    assert_eq!((newest["type"].as_str(), newest["credits"].as_i64()), (Some("adjustment"), Some(-50)));
}
