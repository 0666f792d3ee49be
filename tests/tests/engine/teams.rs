//! Section 11 end to end: a member's spend cap (R26) counted under the account's lock on any
//! instance, a member's key answering to both caps, and the calendar month that resets them.

use credits_tests::{As, Instance, TestApp, account_id, call_at};
use serde_json::{Value, json};

/// kling-2.1 for one second: 20 credits.
fn second_of_kling(capture: bool) -> Value {
    json!({"model": "kling-2.1", "duration_seconds": 1, "capture": capture})
}

/// A member of `acct` capped at `limit` credits a month, and the canvas acting for them.
async fn capped_member(app: &TestApp, acct: &As, limit: i64) -> (String, As) {
    let body = json!({"email": format!("m-{}@example.test", uuid::Uuid::now_v7()), "name": "M", "role": "member",
                      "monthly_credit_limit": limit});
    let member = app.post(acct, "/v1/members", body).await.expect(201).clone();
    let id = member["id"].as_str().unwrap().to_string();
    (id.clone(), As::Member(account_id(acct).to_string(), id))
}

async fn used_this_month(app: &TestApp, acct: &As, member: &str) -> i64 {
    let listed = app.get(acct, "/v1/members").await.expect(200).clone();
    let m = listed["members"].as_array().unwrap().iter().find(|m| m["id"] == member).cloned();
    m.unwrap_or_else(|| panic!("member {member} listed: {listed}"))["used_this_month"].as_i64().unwrap()
}

/// R26 under contention on two instances: however the member's runs race, what they hold and
/// captured never passes the cap, and every run either fits or is refused by it.
#[actix_web::test]
async fn fifty_concurrent_runs_of_one_capped_member_over_two_instances_never_pass_the_cap() {
    let app = TestApp::spawn().await;
    let second = Instance::start(&app.db.url, &[]);
    let acct = app.account().await;
    app.enterprise(&acct, 100_000).await;
    let (member, as_member) = capped_member(&app, &acct, 150).await;
    let bases = [app.instance.base_url.clone(), second.base_url.clone()];
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let (http, base, who) = (app.http.clone(), bases[i % 2].clone(), as_member.clone());
        tasks.spawn(async move {
            let r = call_at(&http, &base, &who, "POST", "/v1/runs", Some(second_of_kling(i % 2 == 0)), None).await;
            (r.status, r.code().to_string())
        });
    }
    let mut answers = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        answers.push(answer.unwrap());
    }
    let admitted = answers.iter().filter(|(status, _)| *status == 201).count();
    let capped = answers.iter().filter(|(status, code)| *status == 402 && code == "MEMBER_CREDIT_LIMIT").count();
    assert_eq!((admitted, capped), (7, 43), "7 runs of 20 fit in 150, the rest are refused: {answers:?}");
    assert_eq!(used_this_month(&app, &acct, &member).await, 140);
    app.assert_invariants().await;
    second.stop().await;
}

/// A member's key answers to its own cap and to its member's; a canvas run for the member counts
/// toward the member's cap as the key's runs do.
#[actix_web::test]
async fn a_members_key_is_bounded_by_both_caps() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    app.enterprise(&acct, 100_000).await;
    let (member, as_member) = capped_member(&app, &acct, 100).await;
    let made = app
        .post(&acct, "/v1/api-keys", json!({"name": "m", "member_id": member, "monthly_credit_limit": 40}))
        .await
        .expect(201)
        .clone();
    assert_eq!(made["member_id"], member.as_str());
    let (key, key_id) = (As::Bearer(made["key"].as_str().unwrap().into()), made["id"].as_str().unwrap().to_string());
    let with_workflow = || json!({"model": "kling-2.1", "duration_seconds": 1, "capture": true, "workflow_id": "wf"});
    for _ in 0..2 {
        app.run(&key, with_workflow()).await.expect(201);
    }
    // The key's cap (40) first.
    let refused = app.run(&key, with_workflow()).await;
    assert_eq!(refused.expect_error(402, "KEY_CREDIT_LIMIT")["limit"], 40);
    app.call(&acct, "PATCH", &format!("/v1/api-keys/{key_id}"), Some(json!({"monthly_credit_limit": null})), None)
        .await
        .expect(200);
    // The member's canvas runs and the key's add up against the member's cap (100).
    app.run(&as_member, second_of_kling(true)).await.expect(201);
    app.run(&key, with_workflow()).await.expect(201);
    app.run(&as_member, second_of_kling(false)).await.expect(201);
    let refused = app.run(&key, with_workflow()).await;
    let error = refused.expect_error(402, "MEMBER_CREDIT_LIMIT");
    assert_eq!(
        (error["limit"].as_i64(), error["used"].as_i64(), error["required"].as_i64()),
        (Some(100), Some(100), Some(20))
    );
    assert_eq!(used_this_month(&app, &acct, &member).await, 100);
    // The account's own runs (no member) are not the member's.
    app.run(&acct, second_of_kling(true)).await.expect(201);
    assert_eq!(used_this_month(&app, &acct, &member).await, 100);
}

/// R26: `used_this_month` is the calendar month's (UTC): the first of the next month starts it
/// again, and the member may run again.
#[actix_web::test]
async fn a_new_month_resets_a_members_use_and_lets_them_run_again() {
    use chrono::{Datelike, TimeZone};
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    app.enterprise(&acct, 100_000).await;
    let (member, as_member) = capped_member(&app, &acct, 60).await;
    for _ in 0..3 {
        app.run(&as_member, second_of_kling(true)).await.expect(201);
    }
    app.run(&as_member, second_of_kling(true)).await.expect_error(402, "MEMBER_CREDIT_LIMIT");
    assert_eq!(used_this_month(&app, &acct, &member).await, 60);
    let now = app.now().await;
    let (year, month) = if now.month() == 12 { (now.year() + 1, 1) } else { (now.year(), now.month() + 1) };
    let next = chrono::Utc.with_ymd_and_hms(year, month, 1, 0, 0, 1).unwrap();
    app.advance((next - now).num_seconds()).await;
    assert_eq!(used_this_month(&app, &acct, &member).await, 0, "a new month");
    app.run(&as_member, second_of_kling(true)).await.expect(201);
    assert_eq!(used_this_month(&app, &acct, &member).await, 20);
}

/// R26 on the batched writer: bursts of capped members' runs over several accounts are written
/// together (a batch naming members commits, not one by one), each charged once.
#[actix_web::test]
async fn capped_members_runs_are_written_together_and_each_charged_once() {
    let app = TestApp::spawn().await;
    let mut members = Vec::new();
    for _ in 0..6 {
        let acct = app.account().await;
        app.enterprise(&acct, 100_000).await;
        let (_, as_member) = capped_member(&app, &acct, 1_000_000).await;
        members.push((acct, as_member));
    }
    for burst in 0..5 {
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..96usize {
            let (http, base, who) = (app.http.clone(), app.instance.base_url.clone(), members[n % 6].1.clone());
            let body = json!({"model": "flux-schnell", "images": 1, "capture": true});
            tasks.spawn(async move { call_at(&http, &base, &who, "POST", "/v1/runs", Some(body), None).await.status });
        }
        while let Some(status) = tasks.join_next().await {
            assert_eq!(status.unwrap(), 201);
        }
        if crate::concurrency::batches_of_more_than_one(&app, "credits_run_batch_size").await > 0 {
            for (acct, as_member) in &members {
                let (account, member) = match as_member {
                    As::Member(_, m) => (acct, m.clone()),
                    _ => unreachable!(),
                };
                let runs = 16 * (burst + 1) as i64;
                assert_eq!(used_this_month(&app, account, &member).await, 2 * runs);
            }
            app.assert_invariants().await;
            return;
        }
    }
    panic!("no transaction wrote more than one member run in five bursts of 96");
}
