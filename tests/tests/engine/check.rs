//! `credits check`: the invariant checker finds a broken ledger and names the account.

use credits_tests::{TestApp, account_id, credits_bin};
use diesel::connection::SimpleConnection;
use serde_json::json;

#[actix_web::test]
async fn credits_check_passes_a_busy_ledger_and_names_an_account_whose_ledger_was_tampered_with() {
    let app = TestApp::spawn().await;
    let (good, bad) = (app.account().await, app.account().await);
    for who in [&good, &bad] {
        app.run(who, json!({"model": "flux-schnell", "images": 3, "capture": true})).await.expect(201);
        let held = app.run(who, json!({"model": "flux-schnell", "images": 2})).await.expect(201);
        app.post(who, &format!("/v1/runs/{}/complete", held["id"].as_str().unwrap()), json!({"images": 1}))
            .await
            .expect(200);
        app.run(who, json!({"model": "upscale-4x"})).await.expect(201);
    }
    let run = |db: &str| {
        std::process::Command::new(credits_bin())
            .arg("check")
            .env("CREDITS__DATABASE__URL", db)
            .env("CREDITS__CLOCK__MODE", "test")
            .output()
            .unwrap()
    };
    let ok = run(&app.db.url);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stdout));
    app.assert_invariants().await;
    // A bucket changed behind the ledger's back.
    let id = account_id(&bad).to_string();
    app.db
        .conn()
        .batch_execute(&format!(
            "UPDATE buckets SET remaining = remaining - 7 WHERE account_id = '{id}' AND kind = 'lifetime'"
        ))
        .unwrap();
    let broken = run(&app.db.url);
    let out = String::from_utf8_lossy(&broken.stdout);
    assert_eq!(broken.status.code(), Some(1));
    assert!(out.contains(&id) && out.contains("entries sum to"), "{out}");
    assert!(!out.contains(account_id(&good)), "only the broken account is listed: {out}");
}
