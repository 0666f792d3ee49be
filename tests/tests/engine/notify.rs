//! R22, R23 and section 9 end to end: auto top-up under concurrency and a crash, webhook
//! deliveries through an endpoint's outage, and outages that must delay nothing else.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use credits_tests::stripe::{FakeStripe, STRIPE_KEY, WEBHOOK_SECRETS, new_id};
use credits_tests::{ADMIN_TOKEN, As, INTERNAL_TOKEN, TestApp, WEBHOOKS_KEY, account_id, call_at, credits_bin};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use serde_json::{Value, json};

use crate::stripe::buy;

/// What a receiver was sent.
#[derive(Debug, Clone)]
struct Hit {
    id: String,
    body: String,
    answered: u16,
}

/// A webhook receiver on 127.0.0.1: records every request, answers `answer` after `delay_ms`.
#[derive(Clone)]
struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
    answer: Arc<AtomicU16>,
    delay_ms: Arc<AtomicU64>,
    url: String,
}

impl Receiver {
    fn start() -> Receiver {
        let hits = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(AtomicU16::new(200));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let (h, a, d) = (hits.clone(), answer.clone(), delay_ms.clone());
        let server = HttpServer::new(move || {
            let (h, a, d) = (h.clone(), a.clone(), d.clone());
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let (h, a, d) = (h.clone(), a.clone(), d.clone());
                async move {
                    let status = a.load(Ordering::SeqCst);
                    let id = req.headers().get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                    h.lock().unwrap().push(Hit {
                        id,
                        body: String::from_utf8_lossy(&body).into_owned(),
                        answered: status,
                    });
                    let delay = d.load(Ordering::SeqCst);
                    if delay > 0 {
                        actix_web::rt::time::sleep(Duration::from_millis(delay)).await;
                    }
                    HttpResponse::build(StatusCode::from_u16(status).unwrap()).finish()
                }
            }))
        })
        .workers(2)
        .bind(("127.0.0.1", 0))
        .unwrap();
        let port = server.addrs()[0].port();
        actix_web::rt::spawn(server.run());
        Receiver { hits, answer, delay_ms, url: format!("http://127.0.0.1:{port}/hooks") }
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

async fn endpoint(app: &TestApp, acct: &As, url: &str, events: &[&str]) -> String {
    let body = app.post(acct, "/v1/webhook-endpoints", json!({"url": url, "events": events})).await.expect(201);
    assert!(body["secret"].as_str().unwrap().starts_with("whsec_"));
    body["id"].as_str().unwrap().to_string()
}

#[derive(QueryableByName)]
struct One {
    #[diesel(sql_type = Text)]
    value: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn count(app: &TestApp, sql: &str) -> i64 {
    diesel::sql_query(sql).get_result::<Count>(&mut app.db.conn()).unwrap().n
}

/// A pack bought through Checkout (which saves the card), and the card at the fake Stripe.
async fn save_card(app: &TestApp, fake: &FakeStripe, acct: &As) -> String {
    buy(app, fake, acct, "small", true).await;
    let customer = diesel::sql_query(format!(
        "SELECT stripe_customer_id AS value FROM accounts WHERE id = '{}'",
        account_id(acct)
    ))
    .get_result::<One>(&mut app.db.conn())
    .unwrap()
    .value;
    fake.put(json!({"id": new_id("pm_"), "object": "payment_method", "type": "card", "customer": customer,
                    "created": app.clock().await, "livemode": false}))
        .await;
    let settings = app.get(acct, "/v1/auto-topup").await.expect(200);
    assert_eq!(settings["card_saved"], true, "the pack's checkout saved the card: {settings}");
    customer
}

async fn auto_topup_on(app: &TestApp, acct: &As, threshold: i64) {
    let body = json!({"enabled": true, "threshold": threshold, "pack": "small"});
    app.call(acct, "PUT", "/v1/auto-topup", Some(body), None).await.expect(200);
}

#[actix_web::test]
async fn fifty_concurrent_captures_across_the_threshold_start_exactly_one_auto_topup() {
    let (app, fake) = TestApp::spawn_with_stripe().await;
    let acct = app.account().await;
    app.enterprise(&acct, 1000).await; // no rate limit: all fifty run
    save_card(&app, &fake, &acct).await;
    let before = app.available(&acct).await;
    auto_topup_on(&app, &acct, before - 10).await;

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (http, base, who) = (app.http.clone(), app.instance.base_url.clone(), acct.clone());
        tasks.spawn(async move {
            call_at(&http, &base, &who, "POST", "/v1/runs", Some(json!({"model": "upscale-4x", "capture": true})), None)
                .await
                .status
        });
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap(), 201);
    }
    let after_runs = before - 50 * 5;
    app.eventually("the auto top-up's pack is granted", || async { app.available(&acct).await == after_runs + 500 })
        .await;
    // Later rounds of the worker start nothing more.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(fake.requests("POST", "/v1/payment_intents").await.len(), 1, "one PaymentIntent");
    assert_eq!(count(&app, "SELECT count(*) AS n FROM auto_topups"), 1, "one auto top-up");
    assert_eq!(app.available(&acct).await, after_runs + 500);
    let settings = app.get(&acct, "/v1/auto-topup").await.expect(200);
    assert_eq!(
        (settings["used_this_month"].as_i64(), settings["last_attempt"]["status"].as_str()),
        (Some(1), Some("succeeded"))
    );
    app.assert_ledger_consistent();
    app.assert_invariants().await;
}

/// `credits worker` (the real binary) on the test's database, calling the fake Stripe.
fn worker(db_url: &str, fake: &FakeStripe) -> Child {
    Command::new(credits_bin())
        .arg("worker")
        .env("CREDITS_CONFIG_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/../config"))
        .env("CREDITS__DATABASE__URL", db_url)
        .env("CREDITS__AUTH__INTERNAL_TOKEN", INTERNAL_TOKEN)
        .env("CREDITS__AUTH__BOOTSTRAP_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("CREDITS__CLOCK__MODE", "test")
        .env("CREDITS__WORKERS__INTERVAL_SECONDS", "1")
        .env("CREDITS__STRIPE__SECRET_KEY", STRIPE_KEY)
        .env("CREDITS__STRIPE__API_BASE", format!("{}/", fake.url))
        .env("CREDITS__STRIPE__WEBHOOK_SECRETS", WEBHOOK_SECRETS.join(","))
        .env("CREDITS__WEBHOOKS__ENCRYPTION_KEY", WEBHOOKS_KEY)
        .env("CREDITS__LOG__LEVEL", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("credits worker starts")
}

#[actix_web::test]
async fn a_kill_9_between_the_capture_and_its_payment_still_tops_up_once_after_restart() {
    // The API here has no workers: the auto top-up is made by a `credits worker` process.
    let (app, fake) = TestApp::spawn_with_stripe_serving(false).await;
    let acct = app.account().await;
    let customer = save_card(&app, &fake, &acct).await;
    let before = app.available(&acct).await;
    auto_topup_on(&app, &acct, before - 1).await;
    app.run(&acct, json!({"model": "flux-schnell", "images": 8, "capture": true})).await.expect(201);
    // The capture wrote the auto top-up in its own transaction; nothing has asked Stripe yet.
    assert_eq!(count(&app, "SELECT count(*) AS n FROM auto_topups WHERE status = 'pending'"), 1);

    // Stripe is failing when the worker first tries; it is killed while the payment is unmade.
    fake.fail(503).await;
    let mut first = worker(&app.db.url, &fake);
    let path = format!("/v1/customers/{customer}/payment_methods");
    app.eventually("the worker has tried Stripe", || async { !fake.all_requests(&path).await.is_empty() }).await;
    first.kill().expect("SIGKILL");
    first.wait().unwrap();
    fake.clear_failure().await;
    assert_eq!(app.available(&acct).await, before - 16, "nothing granted yet");

    // After the restart (its claim's lease and backoff run out on the moved clock) it tops up once.
    app.advance(300).await;
    let mut second = worker(&app.db.url, &fake);
    app.eventually("the pack is granted after the restart", || async {
        app.available(&acct).await == before - 16 + 500
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    second.kill().expect("SIGKILL");
    second.wait().unwrap();
    let paid = fake.requests("POST", "/v1/payment_intents").await;
    assert_eq!(paid.len(), 1, "one PaymentIntent: {paid:?}");
    assert!(paid[0]["headers"]["Idempotency-Key"].as_str().is_some_and(|k| !k.is_empty()));
    assert_eq!(app.available(&acct).await, before - 16 + 500);
    assert_eq!(count(&app, "SELECT count(*) AS n FROM auto_topups WHERE status = 'succeeded'"), 1);
    app.assert_ledger_consistent();
    app.assert_invariants().await;
}

#[actix_web::test]
async fn an_endpoint_down_for_an_hour_gets_every_event_with_its_first_webhook_id_once_it_is_back() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start();
    receiver.answer.store(503, Ordering::SeqCst);
    let acct = app.account().await;
    let id = endpoint(&app, &acct, &receiver.url, &["credits.granted"]).await;
    for n in 1..=3 {
        app.adjust(&acct, json!({"credits": n * 10, "reason": format!("grant {n}")})).await.expect(201);
    }
    app.eventually("three first attempts, answered 503", || async { receiver.hits().len() >= 3 }).await;
    let first_ids: std::collections::BTreeSet<String> = receiver.hits().iter().map(|h| h.id.clone()).collect();
    assert_eq!(first_ids.len(), 3, "one webhook-id per event");

    // An hour down: the clock moves ten minutes at a time and the worker tries again as retries
    // fall due (30 s, then doubling: ten-minute steps see a try of each event in most of them).
    for _ in 0..6 {
        let seen = receiver.hits().len();
        app.advance(600).await;
        let deadline = std::time::Instant::now() + Duration::from_millis(2500);
        while receiver.hits().len() < seen + 3 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let down = receiver.hits();
    assert!(down.iter().all(|h| h.answered == 503));
    assert!(down.len() >= 3 * 5, "each event tried again through the hour: {} attempts", down.len());
    // Back up: the next retries deliver.
    receiver.answer.store(200, Ordering::SeqCst);
    app.advance(3600).await;
    app.eventually("every event delivered", || async {
        receiver.hits().iter().filter(|h| h.answered == 200).count() == 3
    })
    .await;

    let hits = receiver.hits();
    let delivered: std::collections::BTreeSet<String> =
        hits.iter().filter(|h| h.answered == 200).map(|h| h.id.clone()).collect();
    assert_eq!(delivered, first_ids, "each event delivered under its first attempt's webhook-id");
    for event in &first_ids {
        let bodies: std::collections::BTreeSet<&str> =
            hits.iter().filter(|h| &h.id == event).map(|h| h.body.as_str()).collect();
        assert_eq!(bodies.len(), 1, "every attempt of {event} sent the same body");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.hits().iter().filter(|h| h.answered == 200).count(), 3, "nothing delivered twice");
    let attempts = app.get(&acct, &format!("/v1/webhook-endpoints/{id}/deliveries")).await.expect(200);
    let attempts = attempts["deliveries"].as_array().unwrap();
    for event in &first_ids {
        let of: Vec<&Value> = attempts.iter().filter(|a| a["event_id"] == event.as_str()).collect();
        assert!(of.iter().any(|a| a["response_code"] == 503 && a["status"] == "failed"));
        assert_eq!(of.iter().filter(|a| a["status"] == "delivered").count(), 1);
    }
}

#[actix_web::test]
async fn an_smtp_outage_and_a_hanging_endpoint_delay_no_other_delivery_and_no_run() {
    let (app, sink, _) = TestApp::spawn_with_mail(false).await;
    sink.outage(true);
    let hanging = Receiver::start();
    hanging.delay_ms.store(30_000, Ordering::SeqCst);
    let healthy = Receiver::start();
    let (a, b) = (app.account().await, app.account().await);
    let a_endpoint = endpoint(&app, &a, &hanging.url, &["balance.low", "credits.granted"]).await;
    endpoint(&app, &b, &healthy.url, &["credits.granted"]).await;

    // A falls below its threshold: a mail (SMTP is down) and an event to an endpoint that hangs.
    app.call(&a, "PUT", "/v1/alerts", Some(json!({"low_balance_threshold": 100})), None).await.expect(200);
    app.adjust(&a, json!({"credits": -200, "reason": "spent elsewhere"})).await.expect(201);
    app.eventually("A's endpoint holds the attempt", || async { !hanging.hits().is_empty() }).await;

    // Meanwhile B's grant is delivered, and B's runs are answered.
    app.adjust(&b, json!({"credits": 10, "reason": "a grant"})).await.expect(201);
    app.run(&b, json!({"model": "flux-schnell", "images": 1, "capture": true})).await.expect(201);
    app.eventually("B's event delivered", || async { healthy.hits().iter().any(|h| h.answered == 200) }).await;
    let a_attempts = app.get(&a, &format!("/v1/webhook-endpoints/{a_endpoint}/deliveries")).await.expect(200);
    assert!(
        a_attempts["deliveries"].as_array().unwrap().iter().all(|d| d["status"] == "pending"),
        "B's delivery did not wait for A's hanging attempt to end: {a_attempts}"
    );

    // SMTP back: A's low-balance mail goes out.
    sink.outage(false);
    let email = app.get(&a, "/v1/account").await.expect(200)["email"].as_str().unwrap().to_string();
    app.eventually("A's low-balance mail sent once SMTP is back", || async { !sink.to(&email).is_empty() }).await;
}

#[actix_web::test]
async fn ten_hanging_endpoints_of_one_account_delay_another_accounts_delivery_by_at_most_two_seconds() {
    let app = TestApp::spawn().await;
    let hanging = Receiver::start();
    hanging.delay_ms.store(30_000, Ordering::SeqCst);
    let healthy = Receiver::start();
    let (slow, other) = (app.account().await, app.account().await);
    for _ in 0..10 {
        endpoint(&app, &slow, &hanging.url, &["credits.granted"]).await;
    }
    // 140 deliveries that each hold their attempt for the whole 10 s timeout.
    for i in 0..14 {
        app.adjust(&slow, json!({"credits": 1, "reason": format!("slow event {i}")})).await.expect(201);
    }
    app.eventually("the slow account's endpoints hold attempts", || async { hanging.hits().len() >= 4 }).await;
    endpoint(&app, &other, &healthy.url, &["credits.granted"]).await;
    let asked = std::time::Instant::now();
    app.adjust(&other, json!({"credits": 5, "reason": "the other account's event"})).await.expect(201);
    while healthy.hits().is_empty() {
        assert!(asked.elapsed() < Duration::from_secs(30), "the other account's event never came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let waited = asked.elapsed();
    assert!(waited <= Duration::from_secs(2), "the other account's event came {waited:?} after it was caused");
}

/// An HTTP endpoint on 127.0.0.1 that answers every request 200 with a body of `size` bytes,
/// written as fast as the reader takes it; counts the requests it answered.
fn big_answers(size: u64) -> (String, Arc<AtomicU64>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}/big", listener.local_addr().unwrap().port());
    let served = Arc::new(AtomicU64::new(0));
    let counter = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0u8; length];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let mut stream = stream;
                let head = format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {size}\r\n\r\n");
                let chunk = vec![b'x'; 64 * 1024];
                let mut left = size;
                let _ = stream.write_all(head.as_bytes());
                while left > 0 {
                    let n = left.min(chunk.len() as u64) as usize;
                    if stream.write_all(&chunk[..n]).is_err() {
                        return; // the service stopped reading: what section 7 allows past 64 KiB
                    }
                    left -= n as u64;
                }
            });
        }
    });
    (url, served)
}

/// The peak resident memory of a process, in bytes (`VmHWM` of /proc/PID/status).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/PID/status");
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[actix_web::test]
async fn an_endpoint_answering_400_megabytes_leaves_the_delivering_process_under_100_megabytes() {
    // The API here has no workers: the delivery is made by a `credits worker` process, whose
    // memory is measured.
    let (app, fake) = TestApp::spawn_with_stripe_serving(false).await;
    let (url, served) = big_answers(400 * 1024 * 1024);
    let acct = app.account().await;
    let id = endpoint(&app, &acct, &url, &["credits.granted"]).await;
    let mut process = Command::new(credits_bin())
        .arg("worker")
        .env("CREDITS_CONFIG_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/../config"))
        .env("CREDITS__DATABASE__URL", &app.db.url)
        .env("CREDITS__AUTH__INTERNAL_TOKEN", INTERNAL_TOKEN)
        .env("CREDITS__CLOCK__MODE", "test")
        .env("CREDITS__WORKERS__INTERVAL_SECONDS", "1")
        .env("CREDITS__STRIPE__SECRET_KEY", STRIPE_KEY)
        .env("CREDITS__STRIPE__API_BASE", format!("{}/", fake.url))
        .env("CREDITS__WEBHOOKS__ENCRYPTION_KEY", WEBHOOKS_KEY)
        .env("CREDITS__WEBHOOKS__ALLOW_INSECURE", "true")
        .env("CREDITS__WEBHOOKS__ALLOW_PRIVATE", "true")
        .env("CREDITS__LOG__LEVEL", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("credits worker starts");
    let pid = process.id();
    for i in 0..2 {
        app.adjust(&acct, json!({"credits": 10 + i, "reason": "an event"})).await.expect(201);
        app.eventually("the endpoint answered the event", || async { served.load(Ordering::SeqCst) > i }).await;
    }
    let path = format!("/v1/webhook-endpoints/{id}/deliveries");
    app.eventually("both deliveries recorded as answered 200", || async {
        let list = app.get(&acct, &path).await.expect(200);
        list["deliveries"].as_array().unwrap().iter().filter(|d| d["response_code"] == 200).count() == 2
    })
    .await;
    let peak = peak_rss(pid);
    process.kill().expect("SIGKILL");
    process.wait().unwrap();
    assert!(peak < 100 * 1024 * 1024, "the worker's peak RSS was {} MB", peak / (1024 * 1024));
}
