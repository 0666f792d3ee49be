use credits_domain::operator::Role;
use credits_tests::{As, TestApp, account_id};
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text};
use serde_json::json;

#[actix_web::test]
async fn support_grants_and_removes_credits_and_each_action_is_recorded() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    let support = app.operator(Role::Support);
    let id = account_id(&acct).to_string();
    let path = format!("/admin/v1/accounts/{id}/adjustments");
    let grant = app
        .call(&support, "POST", &path, Some(json!({"credits": 100, "reason": "outage apology"})), None)
        .await
        .expect(201);
    assert_eq!((grant["credits"].as_i64(), grant["entries"][0]["type"].as_str()), (Some(100), Some("adjustment")));
    app.call(&support, "POST", &path, Some(json!({"credits": -30, "reason": "duplicate"})), None).await.expect(201);
    assert_eq!(app.available(&acct).await, 320);
    let read = app.get(&support, &format!("/admin/v1/accounts/{id}")).await.expect(200);
    assert_eq!(read["balance"]["available"], 320);

    #[derive(QueryableByName)]
    struct Action {
        #[diesel(sql_type = Text)]
        operator_name: String,
        #[diesel(sql_type = Text)]
        action: String,
        #[diesel(sql_type = Nullable<Text>)]
        account: Option<String>,
    }
    let actions: Vec<Action> = diesel::sql_query(
        "SELECT operator_name, action, account_id::text AS account FROM operator_actions ORDER BY id",
    )
    .load(&mut app.db.conn())
    .unwrap();
    let seen: Vec<(&str, &str, Option<&str>)> =
        actions.iter().map(|a| (a.operator_name.as_str(), a.action.as_str(), a.account.as_deref())).collect();
    assert_eq!(
        seen,
        [
            ("support operator", "account.adjust", Some(id.as_str())),
            ("support operator", "account.adjust", Some(id.as_str())),
            ("support operator", "account.read", Some(id.as_str())),
        ]
    );
}

#[actix_web::test]
async fn roles_gate_the_operator_routes() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    let id = account_id(&acct).to_string();
    let (sales, support) = (app.operator(Role::Sales), app.operator(Role::Support));
    let adjust = format!("/admin/v1/accounts/{id}/adjustments");
    let body = json!({"credits": 10, "reason": "x"});
    app.call(&sales, "POST", &adjust, Some(body.clone()), None).await.expect_error(403, "FORBIDDEN");
    app.call(&acct, "POST", &adjust, Some(body.clone()), None).await.expect_error(401, "UNAUTHENTICATED");
    app.call(&As::Nobody, "POST", &adjust, Some(body.clone()), None).await.expect_error(401, "UNAUTHENTICATED");
    app.call(&support, "POST", &adjust, Some(json!({"credits": 10})), None)
        .await
        .expect_error(422, "INVALID_PARAMETERS");
    let enterprise = format!("/admin/v1/accounts/{id}/enterprise");
    app.call(&support, "PUT", &enterprise, Some(json!({"monthly_credits": 1000})), None)
        .await
        .expect_error(403, "FORBIDDEN");
    app.post(&sales, "/admin/v1/test-clock", json!({"advance_seconds": 60})).await.expect_error(403, "FORBIDDEN");
    app.get(&As::Nobody, "/admin/v1/test-clock").await.expect_error(401, "UNAUTHENTICATED");
    assert_eq!(app.available(&acct).await, 250);
    // admin may do all that support may
    app.call(&app.admin(), "POST", &adjust, Some(body), None).await.expect(201);
    let ghost = uuid::Uuid::new_v4();
    app.get(&support, &format!("/admin/v1/accounts/{ghost}")).await.expect_error(404, "NOT_FOUND");
}

#[actix_web::test]
async fn an_enterprise_allowance_is_refreshed_each_month_by_the_service() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    let id = account_id(&acct).to_string();
    let path = format!("/admin/v1/accounts/{id}/enterprise");
    let view = app
        .call(&app.admin(), "PUT", &path, Some(json!({"monthly_credits": 1000, "runs_per_minute": 3})), None)
        .await
        .expect(200);
    assert_eq!((view["plan"].as_str(), view["rate_limit"]["runs_per_minute"].as_i64()), (Some("enterprise"), Some(3)));
    // The same PUT again grants nothing more.
    app.call(&app.admin(), "PUT", &path, Some(json!({"monthly_credits": 1000, "runs_per_minute": 3})), None)
        .await
        .expect(200);
    assert_eq!(app.available(&acct).await, 1250);
    app.run(&acct, json!({"model": "seedance-2.0", "duration_seconds": 10, "capture": true})).await.expect(201);
    assert_eq!(app.available(&acct).await, 650);
    let period_end: chrono::DateTime<chrono::Utc> = view["period_end"].as_str().unwrap().parse().unwrap();
    let wait = (period_end - app.now().await).num_seconds() + 1;
    app.advance(wait).await;
    app.eventually("a fresh allowance of 1000 for the new month, the old one expired", || async {
        app.available(&acct).await == 1250
    })
    .await;
    let info = app.get(&acct, "/v1/account").await.expect(200);
    let new_start: chrono::DateTime<chrono::Utc> = info["period_start"].as_str().unwrap().parse().unwrap();
    assert_eq!(new_start, period_end);
    app.eventually("the old allowance's remainder expired in the ledger", || async {
        app.ledger(&acct).await.iter().any(|e| e["type"] == "expire" && e["credits"] == -400)
    })
    .await;
    app.assert_ledger_consistent();
}

#[actix_web::test]
async fn the_test_clock_is_off_in_system_mode() {
    let app = TestApp::spawn_with(&[("CREDITS__CLOCK__MODE", "system")]).await;
    app.get(&app.admin(), "/admin/v1/test-clock").await.expect_error(404, "NOT_FOUND");
    app.post(&app.admin(), "/admin/v1/test-clock", json!({"advance_seconds": 60})).await.expect_error(404, "NOT_FOUND");
}

#[actix_web::test]
async fn moving_the_test_clock_moves_the_ledgers_timestamps() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    let before = app.now().await;
    app.advance(30 * 86400).await;
    app.run(&acct, json!({"model": "upscale-4x", "capture": true})).await.expect(201);
    let newest = &app.ledger(&acct).await[0];
    let at: chrono::DateTime<chrono::Utc> = newest["created_at"].as_str().unwrap().parse().unwrap();
    assert!(at >= before + chrono::Duration::days(30));
}
