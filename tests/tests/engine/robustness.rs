//! Section 7's robustness: every wait bounded, one account never starves the others, metric
//! labels bounded.

use std::time::{Duration, Instant};

use credits_tests::{As, TestApp, account_id, call_at};
use serde_json::json;

/// Hold `account`'s row locked in a transaction of its own until the returned sender is dropped.
fn lock_row(db_url: &str, account: &As) -> std::sync::mpsc::Sender<()> {
    use diesel::Connection;
    use diesel::connection::SimpleConnection;
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (locked, is_locked) = std::sync::mpsc::channel();
    let (url, id) = (db_url.to_string(), account_id(account).to_string());
    std::thread::spawn(move || {
        let mut conn = diesel::PgConnection::establish(&url).unwrap();
        conn.batch_execute(&format!("BEGIN; SELECT 1 FROM accounts WHERE id = '{id}' FOR UPDATE;")).unwrap();
        locked.send(()).unwrap();
        let _ = released.recv();
        conn.batch_execute("ROLLBACK").unwrap();
    });
    is_locked.recv().unwrap();
    release
}

async fn within_a_second(app: &TestApp, who: &As, method: &str, path: &str, body: Option<serde_json::Value>) -> u16 {
    let started = Instant::now();
    let r = call_at(&app.http, &app.instance.base_url, who, method, path, body, None).await;
    assert!(started.elapsed() < Duration::from_secs(1), "{method} {path} took {:?}", started.elapsed());
    r.status
}

#[actix_web::test]
async fn fifty_requests_on_a_locked_account_leave_other_accounts_and_readyz_answering_within_a_second() {
    let app = TestApp::spawn().await;
    let (hot, other) = (app.account().await, app.account().await);
    // Unlimited runs a minute: the other account's rounds are never rate limited.
    app.enterprise(&other, 100_000).await;
    let release = lock_row(&app.db.url, &hot);
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (http, base, who) = (app.http.clone(), app.instance.base_url.clone(), hot.clone());
        burst.spawn(async move {
            let body = json!({"model": "flux-schnell", "images": 1, "capture": true});
            let r = call_at(&http, &base, &who, "POST", "/v1/runs", Some(body), None).await;
            (r.status, r.code().to_string())
        });
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // While the burst waits: another account runs and reads, and the service is ready.
    let mut rounds = 0;
    while !burst.is_empty() && rounds < 20 {
        let run = json!({"model": "flux-schnell", "images": 1, "capture": true});
        assert_eq!(within_a_second(&app, &other, "POST", "/v1/runs", Some(run)).await, 201);
        assert_eq!(within_a_second(&app, &other, "GET", "/v1/balance", None).await, 200);
        let started = Instant::now();
        let ready = app.http.get(format!("{}/readyz", app.instance.base_url)).send().await.unwrap();
        assert!(ready.status().is_success() && started.elapsed() < Duration::from_secs(1));
        rounds += 1;
        while let Some(done) = burst.try_join_next() {
            let (status, code) = done.unwrap();
            assert_eq!((status, code.as_str()), (429, "ACCOUNT_BUSY"), "the locked account's request");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while let Some(done) = burst.join_next().await {
        let (status, code) = done.unwrap();
        assert_eq!((status, code.as_str()), (429, "ACCOUNT_BUSY"));
    }
    drop(release);
    // Nothing of the burst was written; the account works again.
    assert_eq!(app.available(&hot).await, 250);
    app.run(&hot, json!({"model": "flux-schnell", "images": 1, "capture": true})).await.expect(201);
    app.assert_invariants().await;
}

#[actix_web::test]
async fn ten_thousand_requests_with_made_up_methods_and_paths_leave_metrics_small() {
    let app = TestApp::spawn().await;
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..16u32 {
        let (http, base) = (app.http.clone(), app.instance.base_url.clone());
        tasks.spawn(async move {
            for i in 0..625u32 {
                let n = worker * 1000 + i;
                let method = reqwest::Method::from_bytes(format!("X{n:08X}").as_bytes()).unwrap();
                let path = if n % 2 == 0 { format!("/v{n}/x/{n}") } else { "/v1/balance".to_string() };
                let _ = http.request(method, format!("{base}{path}")).send().await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let metrics =
        app.http.get(format!("{}/metrics", app.instance.base_url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.len() < 64 * 1024, "/metrics is {} bytes", metrics.len());
    assert!(!metrics.contains("X0000"), "a made-up method became a label");
    assert!(metrics.contains("method=\"OTHER\""));
}

/// Section 7: every instance reads the time from PostgreSQL, so two instances whose own clocks
/// are two hours apart (the test-only clock.skew_seconds) judge a hold's end at the same moment.
#[actix_web::test]
async fn two_instances_whose_clocks_are_skewed_by_an_hour_release_a_hold_at_the_same_moment() {
    let app = TestApp::spawn().await;
    let ahead = credits_tests::Instance::start(&app.db.url, &[("CREDITS__CLOCK__SKEW_SECONDS", "3600")]);
    let behind = credits_tests::Instance::start(&app.db.url, &[("CREDITS__CLOCK__SKEW_SECONDS", "-3600")]);
    let acct = app.account().await;
    let held = call_at(
        &app.http,
        &behind.base_url,
        &acct,
        "POST",
        "/v1/runs",
        Some(json!({"model": "flux-schnell", "images": 4})),
        None,
    )
    .await
    .expect(201);
    let id = held["id"].as_str().unwrap().to_string();
    let status_at = |base: String| {
        let (http, acct, id) = (app.http.clone(), acct.clone(), id.clone());
        async move {
            call_at(&http, &base, &acct, "GET", &format!("/v1/runs/{id}"), None, None).await.expect(200)["status"]
                .clone()
        }
    };
    app.advance(890).await;
    for base in [&ahead.base_url, &behind.base_url, &app.instance.base_url] {
        assert_eq!(status_at(base.clone()).await, "held", "10 s before its end, on {base}");
    }
    let balance = call_at(&app.http, &ahead.base_url, &acct, "GET", "/v1/balance", None, None).await.expect(200);
    assert_eq!((balance["available"].as_i64(), balance["held"].as_i64()), (Some(242), Some(8)));
    app.advance(20).await;
    for base in [&ahead.base_url, &behind.base_url, &app.instance.base_url] {
        assert_eq!(status_at(base.clone()).await, "released", "10 s after its end, on {base}");
    }
    app.eventually("a sweep released the hold", || async { app.available(&acct).await == 250 }).await;
    ahead.stop().await;
    behind.stop().await;
}

/// An SMTP server on 127.0.0.1 that accepts and holds every connection, saying nothing: its
/// port, and a channel told of each connection.
fn silent_smtp() -> (String, std::sync::mpsc::Receiver<()>) {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming().flatten() {
            let _ = seen_tx.send(());
            held.push(stream);
        }
    });
    (port, seen_rx)
}

/// Section 7: mail, payment jobs and sweeps run in loops of their own. An SMTP server that accepts
/// a connection and never answers holds the mail loop for its timeout; holds are still released
/// on time.
#[actix_web::test]
async fn an_smtp_server_that_never_answers_delays_no_hold_release() {
    let (port, _connected) = silent_smtp();
    let app = TestApp::spawn_with(&[("CREDITS__SMTP__HOST", "127.0.0.1"), ("CREDITS__SMTP__PORT", &port)]).await;
    let acct = app.account().await;
    let request = json!({"company_name": "Acme", "website": "https://acme.example", "country": "DE",
        "contact_name": "Ada", "contact_email": "ada@acme.example", "intended_use": "images"});
    app.post(&acct, "/v1/business-verification", request).await.expect(201);
    // The mail loop is now stuck on the silent server.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    app.run(&acct, json!({"model": "flux-schnell", "images": 4})).await.expect(201);
    app.advance(901).await;
    let started = Instant::now();
    app.eventually("the hold released by the sweep", || async { app.available(&acct).await == 250 }).await;
    assert!(started.elapsed() < Duration::from_secs(5), "released after {:?}", started.elapsed());
}

/// STYLE and issue 25: no external call inside a database transaction. While the SMTP server
/// says nothing, the mail being sent holds no lock on its outbox row and no transaction is open
/// on the service's connections.
#[actix_web::test]
async fn a_mail_being_sent_to_a_silent_smtp_server_holds_no_row_and_no_open_transaction() {
    use diesel::RunQueryDsl;
    use diesel::connection::SimpleConnection;
    #[derive(diesel::QueryableByName, Debug)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let (port, seen_rx) = silent_smtp();
    let app = TestApp::spawn_with(&[("CREDITS__SMTP__HOST", "127.0.0.1"), ("CREDITS__SMTP__PORT", &port)]).await;
    let acct = app.account().await;
    let request = json!({"company_name": "Acme", "website": "https://acme.example", "country": "DE",
        "contact_name": "Ada", "contact_email": "ada@acme.example", "intended_use": "images"});
    app.post(&acct, "/v1/business-verification", request).await.expect(201);
    // The mail worker has connected to the silent server and waits for its greeting.
    tokio::task::spawn_blocking(move || seen_rx.recv_timeout(Duration::from_secs(20)))
        .await
        .unwrap()
        .expect("the mail worker connected to the SMTP server");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut conn = app.db.conn();
    conn.batch_execute("SET lock_timeout = '1s'").unwrap();
    let locked: Result<Vec<Count>, _> = diesel::sql_query(
        "SELECT count(*) AS n FROM (SELECT id FROM outbox WHERE status = 'pending' FOR UPDATE NOWAIT) o",
    )
    .load(&mut conn);
    assert!(locked.is_ok(), "an outbox row is locked while SMTP is silent: {locked:?}");
    let open: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM pg_stat_activity \
         WHERE datname = current_database() AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()",
    )
    .get_result(&mut conn)
    .unwrap();
    assert_eq!(open.n, 0, "a transaction stays open while SMTP is silent");
}
