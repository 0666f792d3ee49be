use credits_tests::TestApp;
use serde_json::json;

#[actix_web::test]
async fn a_repeated_key_replays_the_first_response_and_charges_once() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    let body = json!({"model": "flux-schnell", "images": 2, "capture": true});
    let first = app.call(&acct, "POST", "/v1/runs", Some(body.clone()), Some("k-1")).await;
    let again = app.call(&acct, "POST", "/v1/runs", Some(body), Some("k-1")).await;
    assert_eq!((first.status, again.status), (201, 201));
    assert_eq!(first.body, again.body);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(app.available(&acct).await, 246);
    let other =
        app.call(&acct, "POST", "/v1/runs", Some(json!({"model": "flux-schnell", "images": 3})), Some("k-1")).await;
    other.expect_error(422, "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(app.available(&acct).await, 246);
}

#[actix_web::test]
async fn a_refused_request_keeps_nothing_and_its_retry_is_judged_afresh() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    app.adjust(&acct, json!({"credits": -250, "reason": "empty"})).await.expect(201);
    let body = json!({"model": "upscale-4x", "capture": true});
    app.call(&acct, "POST", "/v1/runs", Some(body.clone()), Some("retry-me"))
        .await
        .expect_error(402, "INSUFFICIENT_CREDITS");
    app.adjust(&acct, json!({"credits": 10, "reason": "top up"})).await.expect(201);
    app.call(&acct, "POST", "/v1/runs", Some(body), Some("retry-me")).await.expect(201);
    assert_eq!(app.available(&acct).await, 5);
}

#[actix_web::test]
async fn keys_of_different_accounts_never_meet() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.account().await, app.account().await);
    let body = json!({"model": "upscale-4x", "capture": true});
    let ra = app.call(&a, "POST", "/v1/runs", Some(body.clone()), Some("shared")).await.expect(201);
    let rb = app.call(&b, "POST", "/v1/runs", Some(body), Some("shared")).await.expect(201);
    assert_ne!(ra["id"], rb["id"]);
    assert_eq!((app.available(&a).await, app.available(&b).await), (245, 245));
}

#[actix_web::test]
async fn a_key_is_forgotten_after_24_hours() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    let body = json!({"model": "upscale-4x", "capture": true});
    let first = app.call(&acct, "POST", "/v1/runs", Some(body.clone()), Some("day-old")).await.expect(201);
    app.advance(24 * 3600 + 1).await;
    let later = app.call(&acct, "POST", "/v1/runs", Some(body), Some("day-old")).await.expect(201);
    assert_ne!(first["id"], later["id"]);
    assert_eq!(app.available(&acct).await, 240);
}

#[actix_web::test]
async fn the_same_key_sent_concurrently_applies_once() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    let body = json!({"model": "flux-schnell", "images": 1, "capture": true});
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (http, base, who, body) = (app.http.clone(), app.instance.base_url.clone(), acct.clone(), body.clone());
        tasks.spawn(async move {
            credits_tests::call_at(&http, &base, &who, "POST", "/v1/runs", Some(body), Some("burst")).await
        });
    }
    let mut ids = std::collections::BTreeSet::new();
    while let Some(r) = tasks.join_next().await {
        ids.insert(r.unwrap().expect(201)["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(app.available(&acct).await, 248);
}
