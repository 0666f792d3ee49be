//! Faults: a `credits serve` process killed with SIGKILL in the middle of a load of runs, several
//! times. Every request that was answered 2xx is in the ledger exactly once, nothing is
//! half-written, and retried requests (same Idempotency-Key) are applied once.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use credits_tests::{ADMIN_TOKEN, INTERNAL_TOKEN, TestApp, account_id, call_at, credits_bin};
use serde_json::json;

/// The bounded size in `make test`, or the full one with `CREDITS_FAULTS=full` (`make faults`).
fn size(bounded: u64, full: u64) -> u64 {
    if std::env::var("CREDITS_FAULTS").is_ok_and(|v| v == "full") { full } else { bounded }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The real binary, on the test's database.
fn serve(db_url: &str, port: u16) -> Child {
    Command::new(credits_bin())
        .arg("serve")
        .env("CREDITS_CONFIG_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/../config"))
        .env("CREDITS__DATABASE__URL", db_url)
        .env("CREDITS__SERVER__PORT", port.to_string())
        .env("CREDITS__SERVER__HTTP_WORKERS", "2")
        .env("CREDITS__AUTH__INTERNAL_TOKEN", INTERNAL_TOKEN)
        .env("CREDITS__AUTH__BOOTSTRAP_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("CREDITS__CLOCK__MODE", "test")
        .env("CREDITS__LOG__LEVEL", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("credits serve starts")
}

async fn ready(http: &reqwest::Client, base: &str) {
    for _ in 0..200 {
        if http.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("credits serve was not ready");
}

#[actix_web::test]
async fn kill_9_during_load_loses_no_acknowledged_run_and_retries_apply_once() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    app.enterprise(&acct, 1_000_000).await;
    let body = json!({"model": "upscale-4x", "capture": true});
    let mut acked: BTreeMap<String, String> = BTreeMap::new(); // key -> run id
    let mut unknown: BTreeSet<String> = BTreeSet::new();
    let (rounds, load) = (size(3, 12), size(150, 600));
    for round in 0..rounds {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut child = serve(&app.db.url, port);
        ready(&app.http, &base).await;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..load {
            // One client for the load (building one loads the CA bundle: slow, and 600 of them
            // would still be built when the kill lands).
            let (http, base, who, body) = (app.http.clone(), base.clone(), acct.clone(), body.clone());
            let key = format!("round{round}-req{i}");
            tasks.spawn(async move {
                tokio::time::sleep(Duration::from_millis((i % 30) * 5)).await;
                let r = tokio::time::timeout(Duration::from_secs(5), async {
                    let mut req = http.post(format!("{base}/v1/runs")).json(&body).bearer_auth(INTERNAL_TOKEN);
                    req = req.header("X-Account-Id", credits_tests::account_id(&who)).header("Idempotency-Key", &key);
                    let resp = req.send().await.ok()?;
                    let status = resp.status().as_u16();
                    let json: serde_json::Value = resp.json().await.ok()?;
                    Some((status, json))
                })
                .await
                .ok()
                .flatten();
                (key, r)
            });
        }
        // Kill it while the load is in flight.
        tokio::time::sleep(Duration::from_millis(60)).await;
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        while let Some(done) = tasks.join_next().await {
            let (key, result) = done.unwrap();
            match result {
                Some((201, run)) => {
                    acked.insert(key, run["id"].as_str().unwrap().to_string());
                }
                Some((status, body)) => panic!("a run answered {status}: {body}"),
                None => {
                    unknown.insert(key);
                }
            }
        }
    }
    assert!(
        !acked.is_empty() && !unknown.is_empty(),
        "the kills landed mid-load ({} acked, {} unknown)",
        acked.len(),
        unknown.len()
    );
    // Every retry after the crashes: an acknowledged key replays its run; an unknown one is applied once.
    for key in acked.keys().chain(unknown.iter()) {
        let r =
            call_at(&app.http, &app.instance.base_url, &acct, "POST", "/v1/runs", Some(body.clone()), Some(key)).await;
        let run = r.expect(201);
        if let Some(first) = acked.get(key) {
            assert_eq!(run["id"].as_str(), Some(first.as_str()), "key {key} replays its first run");
        }
    }
    let keys = acked.len() + unknown.len();
    let ledger = app.ledger(&acct).await;
    let debits: Vec<&serde_json::Value> = ledger.iter().filter(|e| e["type"] == "debit").collect();
    let runs: BTreeSet<&str> = debits.iter().map(|e| e["run_id"].as_str().unwrap()).collect();
    assert_eq!(runs.len(), keys, "one run per key, each charged once");
    assert_eq!(debits.len(), keys, "no run charged twice");
    for run in acked.values() {
        assert!(runs.contains(run.as_str()), "acknowledged run {run} is in the ledger");
    }
    assert_eq!(app.available(&acct).await, 250 + 1_000_000 - 5 * keys as i64);
    app.assert_invariants().await;
}

/// A PostgreSQL of this test's own (initdb in a temporary folder, run as the postgres user), so
/// stopping it disturbs no other test.
struct PrivatePostgres {
    dir: std::path::PathBuf,
    port: u16,
}

fn pg_bin(tool: &str) -> String {
    let versions = std::fs::read_dir("/usr/lib/postgresql").expect("PostgreSQL's server binaries are installed");
    let mut dirs: Vec<_> = versions.flatten().map(|e| e.path()).collect();
    dirs.sort();
    dirs.last().unwrap().join("bin").join(tool).display().to_string()
}

fn as_postgres(args: &[&str]) -> bool {
    Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl PrivatePostgres {
    fn start() -> PrivatePostgres {
        let dir = std::env::temp_dir().join(format!("credits-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(
            Command::new("chown").args(["postgres:postgres"]).arg(&dir).status().unwrap().success(),
            "chown to postgres"
        );
        let data = dir.join("data").display().to_string();
        assert!(
            as_postgres(&[&pg_bin("initdb"), "-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"]),
            "initdb as postgres"
        );
        let pg = PrivatePostgres { dir, port: free_port() };
        pg.up();
        pg
    }

    fn up(&self) {
        let data = self.dir.join("data").display().to_string();
        let opts = format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, self.dir.display());
        assert!(
            as_postgres(&[
                &pg_bin("pg_ctl"),
                "-D",
                &data,
                "-o",
                &opts,
                "-w",
                "-l",
                &format!("{}/log", self.dir.display()),
                "start"
            ]),
            "pg_ctl start"
        );
    }

    /// Stop as a crash does (`immediate`): no session is let finish, recovery runs at the start.
    fn crash(&self) {
        let data = self.dir.join("data").display().to_string();
        assert!(as_postgres(&[&pg_bin("pg_ctl"), "-D", &data, "-m", "immediate", "-w", "stop"]), "pg_ctl stop");
    }

    fn down(&self) {
        let data = self.dir.join("data").display().to_string();
        assert!(as_postgres(&[&pg_bin("pg_ctl"), "-D", &data, "-m", "fast", "-w", "stop"]), "pg_ctl stop");
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}?sslmode=disable", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data").display().to_string();
        as_postgres(&[&pg_bin("pg_ctl"), "-D", &data, "-m", "immediate", "stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A service on `pg`'s database `credits`, and an Enterprise account of `monthly_credits` on it.
async fn service_on(
    pg: &PrivatePostgres,
    monthly_credits: i64,
) -> (credits_tests::Instance, String, credits_tests::As) {
    {
        use diesel::Connection;
        use diesel::connection::SimpleConnection;
        let mut admin = diesel::PgConnection::establish(&pg.url("postgres")).unwrap();
        admin.batch_execute("CREATE DATABASE credits").unwrap();
    }
    let url = pg.url("credits");
    credits_db::migrate(&credits_db::pool(&url, 1, Duration::from_secs(5))).unwrap();
    let server = credits_tests::Instance::start(&url, &[("CREDITS__DATABASE__CONNECT_TIMEOUT_SECONDS", "1")]);
    let http = credits_tests::client();
    let base = server.base_url.clone();
    let made = credits_tests::call_at(
        &http,
        &base,
        &credits_tests::As::Internal,
        "POST",
        "/v1/accounts",
        Some(json!({"email": "pg@example.test", "name": "PG"})),
        None,
    )
    .await;
    let acct = credits_tests::As::Canvas(made.expect(201)["id"].as_str().unwrap().to_string());
    let id = account_id(&acct).to_string();
    let admin = credits_tests::As::Bearer(ADMIN_TOKEN.into());
    let contract = json!({"monthly_credits": monthly_credits});
    credits_tests::call_at(
        &http,
        &base,
        &admin,
        "PUT",
        &format!("/admin/v1/accounts/{id}/enterprise"),
        Some(contract),
        None,
    )
    .await
    .expect(200);
    (server, url, acct)
}

#[actix_web::test]
async fn a_postgresql_restart_answers_503_meanwhile_and_the_service_recovers_by_itself() {
    let pg = PrivatePostgres::start();
    let (server, url, acct) = service_on(&pg, 1000).await;
    let http = credits_tests::client();
    let base = server.base_url.clone();
    let run = |key: String| {
        let (http, base, acct) = (http.clone(), base.clone(), acct.clone());
        async move {
            credits_tests::call_at(
                &http,
                &base,
                &acct,
                "POST",
                "/v1/runs",
                Some(json!({"model": "upscale-4x", "capture": true})),
                Some(&key),
            )
            .await
        }
    };
    let mut acked = BTreeSet::new();
    for i in 0..5 {
        let r = run(format!("before-{i}")).await;
        acked.insert(r.expect(201)["id"].as_str().unwrap().to_string());
    }
    pg.down();
    // While it is down: 503 in the contract's format, readiness fails, nothing is acknowledged.
    let down = run("during".into()).await;
    down.expect_error(503, "SERVICE_UNAVAILABLE");
    let balance = credits_tests::call_at(&http, &base, &acct, "GET", "/v1/balance", None, None).await;
    balance.expect_error(503, "SERVICE_UNAVAILABLE");
    assert_eq!(http.get(format!("{base}/readyz")).send().await.unwrap().status().as_u16(), 503);
    assert_eq!(
        http.get(format!("{base}/healthz")).send().await.unwrap().status().as_u16(),
        200,
        "alive, just not ready"
    );
    pg.up();
    // It recovers by itself: no restart of the service.
    let mut ready = false;
    for _ in 0..100 {
        if http.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().as_u16() == 200) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "ready again once PostgreSQL is back");
    for i in 0..5 {
        let r = run(format!("after-{i}")).await;
        acked.insert(r.expect(201)["id"].as_str().unwrap().to_string());
    }
    // The request refused during the outage, retried with its key, is applied once.
    let retried = run("during".into()).await.expect(201);
    acked.insert(retried["id"].as_str().unwrap().to_string());
    let page = credits_tests::call_at(&http, &base, &acct, "GET", "/v1/ledger?limit=100", None, None).await.expect(200);
    let charged: BTreeSet<String> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "debit")
        .map(|e| e["run_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(charged, acked, "everything acknowledged is in the ledger, once");
    let violations =
        credits_db::invariants::check(&credits_db::pool(&url, 1, Duration::from_secs(5)), chrono::Utc::now()).unwrap();
    assert!(violations.is_empty(), "{violations:?}");
    server.stop().await;
}

/// PostgreSQL crashes and comes back while runs are being written (in batches, by the run writer):
/// every run answered 201 is in the ledger once; a run answered 503 (its batch's commit may or may
/// not have happened) retried with its key until answered is applied once, never twice.
#[actix_web::test]
async fn a_postgresql_crash_under_concurrent_load_loses_no_acknowledged_run_and_retries_apply_once() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let pg = PrivatePostgres::start();
    let (server, url, acct) = service_on(&pg, 1_000_000).await;
    let (clients, each) = (size(8, 16) as usize, size(20, 100) as usize);
    let (answered, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = tokio::task::JoinSet::new();
    let http = credits_tests::client();
    for c in 0..clients {
        let (http, base, acct) = (http.clone(), server.base_url.clone(), acct.clone());
        let (answered, refused) = (answered.clone(), refused.clone());
        load.spawn(async move {
            let mut acked = Vec::new();
            for i in 0..each {
                let key = format!("c{c}-{i}");
                let body = json!({"model": "upscale-4x", "capture": true});
                let mut tries = 0;
                loop {
                    let r = call_at(&http, &base, &acct, "POST", "/v1/runs", Some(body.clone()), Some(&key)).await;
                    if r.status == 201 {
                        acked.push((key, r.body["id"].as_str().unwrap().to_string()));
                        answered.fetch_add(1, Ordering::SeqCst);
                        break;
                    }
                    assert!(
                        [503, 429].contains(&r.status),
                        "while PostgreSQL is away: 503 (or 429), never {}: {:?}",
                        r.status,
                        r.body
                    );
                    refused.fetch_add(1, Ordering::SeqCst);
                    tries += 1;
                    assert!(tries < 600, "{key} was never answered 201");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            acked
        });
    }
    let until = |what: &'static str, done: Box<dyn Fn() -> bool>| async move {
        for _ in 0..1000 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{what}");
    };
    let a = answered.clone();
    until("runs are written before the crash", Box::new(move || a.load(Ordering::SeqCst) >= clients * 2)).await;
    pg.crash();
    let r = refused.clone();
    until("runs are refused while PostgreSQL is away", Box::new(move || r.load(Ordering::SeqCst) >= 1)).await;
    pg.up();
    let mut acked: BTreeMap<String, String> = BTreeMap::new();
    while let Some(done) = load.join_next().await {
        acked.extend(done.expect("a client's load"));
    }
    assert_eq!(acked.len(), clients * each, "every key answered 201 in the end");
    let mut conn = {
        use diesel::Connection;
        diesel::PgConnection::establish(&url).unwrap()
    };
    let debits: Vec<String> = {
        use diesel::prelude::*;
        use diesel::sql_types::Text;
        #[derive(QueryableByName)]
        struct Debit {
            #[diesel(sql_type = Text)]
            run: String,
        }
        diesel::sql_query("SELECT run_id::text AS run FROM ledger_entries WHERE entry_type = 'debit'")
            .load::<Debit>(&mut conn)
            .unwrap()
            .into_iter()
            .map(|d| d.run)
            .collect()
    };
    assert_eq!(debits.len(), clients * each, "no run charged twice, none lost");
    let charged: BTreeSet<&String> = debits.iter().collect();
    assert_eq!(charged, acked.values().collect::<BTreeSet<_>>(), "the acknowledged runs are the charged ones");
    let violations =
        credits_db::invariants::check(&credits_db::pool(&url, 1, Duration::from_secs(5)), chrono::Utc::now()).unwrap();
    assert!(violations.is_empty(), "{violations:?}");
    server.stop().await;
}

/// SIGTERM, as an orchestrator stops a container: `serve` (with Stripe configured: its client owns
/// a runtime of its own) and `worker` both stop by themselves, exit 0, and log no panic.
#[actix_web::test]
async fn sigterm_stops_serve_and_worker_cleanly_without_a_panic() {
    let app = TestApp::spawn().await;
    for command in ["serve", "worker"] {
        let port = free_port();
        let mut child = Command::new(credits_bin())
            .arg(command)
            .env("CREDITS_CONFIG_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/../config"))
            .env("CREDITS__DATABASE__URL", &app.db.url)
            .env("CREDITS__SERVER__PORT", port.to_string())
            .env("CREDITS__SERVER__HTTP_WORKERS", "2")
            .env("CREDITS__AUTH__INTERNAL_TOKEN", INTERNAL_TOKEN)
            .env("CREDITS__STRIPE__SECRET_KEY", "sk_test_sigterm")
            .env("CREDITS__STRIPE__API_BASE", "http://127.0.0.1:9/")
            .env("CREDITS__CLOCK__MODE", "test")
            .env("CREDITS__WORKERS__INTERVAL_SECONDS", "1")
            .env("CREDITS__LOG__LEVEL", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("credits starts");
        if command == "serve" {
            let base = format!("http://127.0.0.1:{port}");
            ready(&app.http, &base).await;
            // Stripe is reached (and fails: nothing listens there), so its client has started.
            let acct = app.account().await;
            let body =
                json!({"pack": "small", "success_url": "https://a.example/ok", "cancel_url": "https://a.example/no"});
            let r = call_at(&app.http, &base, &acct, "POST", "/v1/checkout/topup", Some(body), None).await;
            assert_eq!(r.status, 503);
        }
        // A round or two of the background work.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(term.success());
        let mut stopped = None;
        for _ in 0..200 {
            if let Some(status) = child.try_wait().unwrap() {
                stopped = Some(status);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let Some(status) = stopped else {
            let _ = child.kill();
            panic!("credits {command} did not stop within 10 s of SIGTERM");
        };
        // The service logs to stdout; a panic's own message goes to stderr.
        let mut log = String::new();
        std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut log).unwrap();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut log).unwrap();
        assert!(status.success(), "credits {command} exited {status}: {log}");
        assert!(!log.contains("panicked"), "credits {command} panicked on its way out: {log}");
    }
}
