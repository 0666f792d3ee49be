//! R6: no interleaving of concurrent requests, on any number of instances, overdraws.

use credits_tests::{As, Instance, TestApp, account_id, call_at};
use serde_json::json;

/// An account with no rate limit (Enterprise) whose balance covers exactly 50 upscale runs (5 each).
async fn account_covering_fifty_runs(app: &TestApp) -> As {
    let acct = app.account().await;
    app.enterprise(&acct, 250).await;
    app.adjust(&acct, json!({"credits": -250, "reason": "leave exactly 250"})).await.expect(201);
    assert_eq!(app.available(&acct).await, 250);
    acct
}

async fn burst(app: &TestApp, acct: &As, bases: &[String], n: usize) -> (usize, usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (http, base, who) = (app.http.clone(), bases[i % bases.len()].clone(), acct.clone());
        tasks.spawn(async move {
            call_at(&http, &base, &who, "POST", "/v1/runs", Some(json!({"model": "upscale-4x", "capture": true})), None)
                .await
                .status
        });
    }
    let (mut ok, mut refused) = (0, 0);
    while let Some(status) = tasks.join_next().await {
        match status.unwrap() {
            201 => ok += 1,
            402 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    (ok, refused)
}

async fn assert_ledger_matches_balance(app: &TestApp, acct: &As) {
    let sum: i64 = app.ledger(acct).await.iter().map(|e| e["credits"].as_i64().unwrap()).sum();
    let b = app.balance(acct).await;
    assert_eq!((b["available"].as_i64(), b["held"].as_i64()), (Some(0), Some(0)));
    assert_eq!(sum, b["total"].as_i64().unwrap(), "sum(ledger) == balance");
    app.assert_invariants().await;
}

#[actix_web::test]
async fn two_hundred_concurrent_runs_on_a_balance_for_fifty_charge_exactly_fifty() {
    let app = TestApp::spawn().await;
    let acct = account_covering_fifty_runs(&app).await;
    let (ok, refused) = burst(&app, &acct, std::slice::from_ref(&app.instance.base_url), 200).await;
    assert_eq!((ok, refused), (50, 150));
    assert_ledger_matches_balance(&app, &acct).await;
}

#[actix_web::test]
async fn two_instances_on_one_database_never_overdraw_either() {
    let app = TestApp::spawn().await;
    let second = Instance::start(&app.db.url, &[]);
    let acct = account_covering_fifty_runs(&app).await;
    let (ok, refused) = burst(&app, &acct, &[app.instance.base_url.clone(), second.base_url.clone()], 200).await;
    assert_eq!((ok, refused), (50, 150));
    assert_ledger_matches_balance(&app, &acct).await;
    second.stop().await;
}

#[actix_web::test]
async fn four_instances_on_one_database_never_overdraw_a_hot_account() {
    let app = TestApp::spawn().await;
    let others: Vec<Instance> = (0..3).map(|_| Instance::start(&app.db.url, &[])).collect();
    let acct = account_covering_fifty_runs(&app).await;
    let mut bases = vec![app.instance.base_url.clone()];
    bases.extend(others.iter().map(|i| i.base_url.clone()));
    let (ok, refused) = burst(&app, &acct, &bases, 200).await;
    assert_eq!((ok, refused), (50, 150));
    assert_ledger_matches_balance(&app, &acct).await;
    for other in &others {
        other.stop().await;
    }
}

#[actix_web::test]
async fn the_rate_limit_holds_across_two_instances() {
    let app = TestApp::spawn().await;
    let second = Instance::start(&app.db.url, &[]);
    let acct = app.account().await;
    let bases = [app.instance.base_url.clone(), second.base_url.clone()];
    let mut statuses = Vec::new();
    for i in 0..12 {
        let r = call_at(
            &app.http,
            &bases[i % 2],
            &acct,
            "POST",
            "/v1/runs",
            Some(json!({"model": "upscale-4x", "capture": true})),
            None,
        )
        .await;
        statuses.push(r.status);
    }
    assert_eq!(statuses, [vec![201; 10], vec![429; 2]].concat());
    second.stop().await;
}

#[actix_web::test]
async fn a_graceful_stop_lets_in_flight_runs_finish_and_charges_nothing_unanswered() {
    let app = TestApp::spawn().await;
    let server = Instance::start(&app.db.url, &[]);
    let acct = account_covering_fifty_runs(&app).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..120 {
        let (http, base, who) = (app.http.clone(), server.base_url.clone(), acct.clone());
        tasks.spawn(async move {
            let body = json!({"model": "upscale-4x", "capture": true});
            let mut req = http.post(format!("{base}/v1/runs")).json(&body).bearer_auth(credits_tests::INTERNAL_TOKEN);
            req = req.header("X-Account-Id", account_id(&who));
            req.send().await.map(|r| r.status().as_u16()).ok()
        });
    }
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    server.stop().await;
    let mut answered_201 = 0;
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Some(201) => answered_201 += 1,
            Some(402) | None => {}
            Some(other) => panic!("a request got {other} during shutdown"),
        }
    }
    // Every run charged was answered 201, and every 201 was charged.
    let debits = app.ledger(&acct).await.iter().filter(|e| e["type"] == "debit").count();
    assert_eq!(debits, answered_201);
    app.assert_invariants().await;
}

/// How many balance statements read more than one balance (`credits_balance_batch_size`).
async fn batched_balance_reads(app: &TestApp) -> u64 {
    batches_of_more_than_one(app, "credits_balance_batch_size").await
}

/// How many of a batch histogram's batches held more than one request.
pub(crate) async fn batches_of_more_than_one(app: &TestApp, histogram: &str) -> u64 {
    let text = app.http.get(format!("{}/metrics", app.instance.base_url)).send().await.unwrap().text().await.unwrap();
    let figure = |prefix: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
            .unwrap_or_else(|| panic!("{prefix} in /metrics:\n{text}"))
    };
    figure(&format!("{histogram}_count ")) - figure(&format!("{histogram}_bucket{{le=\"1\"}} "))
}

/// Group commit through HTTP: bursts of captures over several accounts (one of them hot) are
/// written together, and each run is charged to its own account, once.
#[actix_web::test]
async fn runs_written_together_each_charge_their_own_account_once() {
    let app = TestApp::spawn().await;
    let mut accounts = Vec::new();
    for _ in 0..6 {
        let acct = app.account().await;
        app.enterprise(&acct, 100_000).await;
        accounts.push(acct);
    }
    let mut charged = vec![0i64; accounts.len()];
    for burst in 0..5 {
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..96usize {
            // Half the burst on the first account, the rest spread.
            let i = if n % 2 == 0 { 0 } else { n % accounts.len() };
            let (http, base, who) = (app.http.clone(), app.instance.base_url.clone(), accounts[i].clone());
            let body = json!({"model": "flux-schnell", "images": 1 + n % 3, "capture": true});
            let key = format!("burst{burst}-{n}");
            tasks.spawn(async move {
                (
                    i,
                    2 * (1 + n % 3) as i64,
                    call_at(&http, &base, &who, "POST", "/v1/runs", Some(body), Some(&key)).await,
                )
            });
        }
        while let Some(done) = tasks.join_next().await {
            let (i, cost, r) = done.unwrap();
            let run = r.expect(201);
            assert_eq!(run["account_id"].as_str(), Some(account_id(&accounts[i])), "{run}");
            assert_eq!(run["captured_credits"].as_i64(), Some(cost), "{run}");
            charged[i] += cost;
        }
        if batches_of_more_than_one(&app, "credits_run_batch_size").await > 0 {
            break;
        }
        assert!(burst < 4, "no transaction wrote more than one run in five bursts of 96");
    }
    for (acct, spent) in accounts.iter().zip(&charged) {
        assert_eq!(app.available(acct).await, 250 + 100_000 - spent);
    }
    app.assert_invariants().await;
}

#[actix_web::test]
async fn balances_read_together_each_answer_their_own_account() {
    let app = TestApp::spawn().await;
    let mut accounts = Vec::new();
    for i in 1..=12i64 {
        let acct = app.account().await;
        app.adjust(&acct, json!({"credits": i, "reason": "tell the accounts apart"})).await.expect(201);
        accounts.push((acct, 250 + i));
    }
    let unknown = As::Canvas(uuid::Uuid::new_v4().to_string());
    // Bursts until reads were coalesced (a reader takes what waits; a burst of 480 makes some wait).
    for _ in 0..5 {
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..480 {
            let (http, base) = (app.http.clone(), app.instance.base_url.clone());
            let who = if n % 40 == 39 { None } else { Some(accounts[n % accounts.len()].clone()) };
            let asked = who.as_ref().map(|(a, _)| a.clone()).unwrap_or_else(|| unknown.clone());
            tasks.spawn(async move { (who, call_at(&http, &base, &asked, "GET", "/v1/balance", None, None).await) });
        }
        while let Some(done) = tasks.join_next().await {
            match done.unwrap() {
                (Some((acct, available)), r) => {
                    let b = r.expect(200);
                    assert_eq!(b["account_id"].as_str(), Some(account_id(&acct)));
                    assert_eq!(b["available"].as_i64(), Some(available), "{b}");
                }
                (None, r) => {
                    r.expect_error(404, "NOT_FOUND");
                }
            }
        }
        if batched_balance_reads(&app).await > 0 {
            return;
        }
    }
    panic!("no balance statement read more than one balance in five bursts of 480");
}
