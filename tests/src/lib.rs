//! The test harness: a fresh PostgreSQL database per test, cloned from a migrated template, and
//! the real actix app serving it on a free port. Tests talk to it over HTTP, as its users do.

pub mod smtp;
pub mod stripe;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use credits_server::app::{self, Services};
use credits_server::settings::Settings;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Where the tests find PostgreSQL (trust auth): `CREDITS_TEST_PG`, by default the local server.
pub fn pg_base() -> String {
    std::env::var("CREDITS_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
        .trim_end_matches('/')
        .to_string()
}

/// A database's URL. Tests talk to a local server: no TLS (libpq's OpenSSL teardown at process
/// exit can crash while pooled connections still live in other threads).
pub fn db_url(name: &str) -> String {
    format!("{}/{name}?sslmode=disable", pg_base())
}

fn admin_conn() -> PgConnection {
    PgConnection::establish(&db_url("postgres")).expect("PostgreSQL is reachable at CREDITS_TEST_PG")
}

fn migrations_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations")
}

/// The template's name carries a hash of the migrations, so a changed migration makes a new one.
fn template_name() -> String {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut stack = vec![migrations_dir()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("migrations/ is readable").flatten() {
            let path = entry.path();
            if path.is_dir() { stack.push(path) } else { files.push(path) }
        }
    }
    files.sort();
    let mut hasher = Sha256::new();
    for f in files {
        hasher.update(f.strip_prefix(migrations_dir()).unwrap().to_string_lossy().as_bytes());
        hasher.update(std::fs::read(&f).unwrap());
    }
    format!("credits_test_tpl_{}", &hex::encode(hasher.finalize())[..16])
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn exists(conn: &mut PgConnection, db: &str) -> bool {
    diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
        .bind::<Text, _>(db)
        .get_result::<Count>(conn)
        .unwrap()
        .n
        > 0
}

/// Make the migrated template once per machine (several test processes race for it: an
/// advisory lock lets one build it, under a temporary name, renamed when complete).
fn ensure_template() -> String {
    let name = template_name();
    let mut conn = admin_conn();
    if exists(&mut conn, &name) {
        return name;
    }
    diesel::sql_query("SELECT pg_advisory_lock(7263001)").execute(&mut conn).unwrap();
    if !exists(&mut conn, &name) {
        let building = format!("{name}_building");
        diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)")).execute(&mut conn).unwrap();
        diesel::sql_query(format!("CREATE DATABASE \"{building}\"")).execute(&mut conn).unwrap();
        let pool = credits_db::pool(&db_url(&building), 1, Duration::from_secs(10));
        credits_db::migrate(&pool).expect("migrations apply to a fresh database");
        drop(pool);
        diesel::sql_query(format!("ALTER DATABASE \"{building}\" RENAME TO \"{name}\"")).execute(&mut conn).unwrap();
    }
    diesel::sql_query("SELECT pg_advisory_unlock(7263001)").execute(&mut conn).unwrap();
    name
}

/// A database of its own for one test, dropped when the test ends.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub fn new() -> TestDb {
        let template = ensure_template();
        let name = format!("credits_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = admin_conn();
        let mut tries = 0;
        loop {
            // Two clones of one template at the same moment can collide; try again shortly.
            match diesel::sql_query(format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\"")).execute(&mut conn) {
                Ok(_) => break,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("cannot clone the template database: {e}"),
            }
        }
        TestDb { url: db_url(&name), name }
    }

    /// An empty database (for the migration tests).
    pub fn empty() -> TestDb {
        let name = format!("credits_test_{}", uuid::Uuid::new_v4().simple());
        diesel::sql_query(format!("CREATE DATABASE \"{name}\"")).execute(&mut admin_conn()).unwrap();
        TestDb { url: db_url(&name), name }
    }

    pub fn conn(&self) -> PgConnection {
        PgConnection::establish(&self.url).unwrap()
    }
}

impl Default for TestDb {
    fn default() -> Self {
        TestDb::new()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&db_url("postgres")) {
            let _ =
                diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name)).execute(&mut conn);
        }
    }
}

pub const INTERNAL_TOKEN: &str = "test-internal-token-0123456789abcdef";
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

/// Settings for a test instance: the test clock, quick workers, a free port.
pub fn test_settings(db_url: &str, overrides: &[(&str, &str)]) -> Settings {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("CREDITS__DATABASE__URL".into(), db_url.to_string()),
        ("CREDITS__DATABASE__POOL_SIZE".into(), "8".into()),
        ("CREDITS__SERVER__PORT".into(), "0".into()),
        ("CREDITS__SERVER__HTTP_WORKERS".into(), "2".into()),
        ("CREDITS__SERVER__SHUTDOWN_TIMEOUT_SECONDS".into(), "1".into()),
        ("CREDITS__AUTH__INTERNAL_TOKEN".into(), INTERNAL_TOKEN.into()),
        ("CREDITS__AUTH__BOOTSTRAP_ADMIN_TOKEN".into(), ADMIN_TOKEN.into()),
        ("CREDITS__CLOCK__MODE".into(), "test".into()),
        ("CREDITS__WORKERS__INTERVAL_SECONDS".into(), "1".into()),
        (
            "CREDITS__CATALOG__PATH".into(),
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/catalog.toml").display().to_string(),
        ),
        ("CREDITS__LOG__LEVEL".into(), "warn".into()),
        ("CREDITS__STRIPE__WEBHOOK_SECRETS".into(), stripe::WEBHOOK_SECRETS.join(",")),
    ]);
    for (k, v) in overrides {
        vars.insert(k.to_string(), v.to_string());
    }
    let env = config::Environment::with_prefix("CREDITS").source(Some(vars));
    Settings::load_with(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../config"), None, env)
        .expect("test settings load")
}

/// One running instance of the service.
pub struct Instance {
    pub base_url: String,
    handle: ServerHandle,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<std::io::Result<()>>>>,
}

impl Instance {
    pub fn start(db_url: &str, overrides: &[(&str, &str)]) -> Instance {
        let settings = test_settings(db_url, overrides);
        // Warnings and errors on stderr: nextest shows them for a failing test.
        credits_server::telemetry::init(credits_server::settings::LogFormat::Pretty, "warn", true);
        let services = Services::build(&settings).expect("services build");
        let running = app::start(&settings, services, true).expect("server starts");
        let (port, handle, task) = running.spawn();
        Instance { base_url: format!("http://127.0.0.1:{port}"), handle, task: std::sync::Mutex::new(Some(task)) }
    }

    /// Stop gracefully: no new connections, in-flight requests finish, then the workers stop.
    pub async fn stop(&self) {
        self.handle.stop(true).await;
        let task = self.task.lock().unwrap().take();
        if let Some(task) = task {
            task.await.expect("the server task ends").expect("the server ends cleanly");
        }
    }
}

/// A test's service: its own database and one running instance, plus an HTTP client.
pub struct TestApp {
    pub db: TestDb,
    pub instance: Instance,
    pub http: reqwest::Client,
}

pub struct Response {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Response {
    /// The error code of an error response (SPEC section 4's format).
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected answer: {}", self.body);
        self.body
    }

    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) -> &Value {
        assert_eq!((self.status, self.code()), (status, code), "unexpected answer: {}", self.body);
        assert!(self.body["error"]["message"].is_string(), "an error carries a message: {}", self.body);
        &self.body["error"]
    }
}

/// Who sends a request.
#[derive(Clone, Debug)]
pub enum As {
    Nobody,
    Internal,
    Canvas(String),
    Bearer(String),
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(&[]).await
    }

    pub const SALES_TEAM: &'static str = "sales@example.test";
    pub const MAIL_FROM: &'static str = "credits@example.test";

    /// With an SMTP server of its own (and the fake Stripe when `stripe`).
    pub async fn spawn_with_mail(stripe: bool) -> (TestApp, smtp::SmtpSink, Option<stripe::FakeStripe>) {
        let sink = smtp::SmtpSink::start();
        let port = sink.port.to_string();
        let fake = if stripe { Some(stripe::FakeStripe::start().await) } else { None };
        let api_base = fake.as_ref().map(|f| format!("{}/", f.url)).unwrap_or_default();
        let mut overrides = vec![
            ("CREDITS__SMTP__HOST", "127.0.0.1"),
            ("CREDITS__SMTP__PORT", port.as_str()),
            ("CREDITS__SMTP__TLS", "none"),
            ("CREDITS__MAIL__FROM", Self::MAIL_FROM),
            ("CREDITS__MAIL__SALES_TEAM", Self::SALES_TEAM),
        ];
        if stripe {
            overrides.push(("CREDITS__STRIPE__SECRET_KEY", stripe::STRIPE_KEY));
            overrides.push(("CREDITS__STRIPE__API_BASE", api_base.as_str()));
        }
        let app = TestApp::spawn_with(&overrides).await;
        if let Some(f) = &fake {
            let settings = test_settings(&app.db.url, &[]);
            f.seed_prices(&credits_server::app::load_catalog(&settings).unwrap()).await;
        }
        (app, sink, fake)
    }

    /// The SMTP settings of this app, for a second instance on the same database.
    pub fn mail_overrides(sink: &smtp::SmtpSink) -> Vec<(&'static str, String)> {
        vec![
            ("CREDITS__SMTP__HOST", "127.0.0.1".into()),
            ("CREDITS__SMTP__PORT", sink.port.to_string()),
            ("CREDITS__SMTP__TLS", "none".into()),
            ("CREDITS__MAIL__FROM", Self::MAIL_FROM.into()),
            ("CREDITS__MAIL__SALES_TEAM", Self::SALES_TEAM.into()),
        ]
    }

    /// With the fake Stripe started, its prices seeded, and the service pointed at it.
    pub async fn spawn_with_stripe() -> (TestApp, stripe::FakeStripe) {
        let fake = stripe::FakeStripe::start().await;
        let app = TestApp::spawn_with(&[
            ("CREDITS__STRIPE__SECRET_KEY", stripe::STRIPE_KEY),
            ("CREDITS__STRIPE__API_BASE", &format!("{}/", fake.url)),
        ])
        .await;
        let settings = test_settings(&app.db.url, &[]);
        fake.seed_prices(&credits_server::app::load_catalog(&settings).unwrap()).await;
        (app, fake)
    }

    /// POST an event to /webhooks/stripe, signed now (real time) with `secrets`.
    pub async fn webhook_signed(&self, event: &Value, t: i64, secrets: &[&str]) -> Response {
        let body = serde_json::to_vec_pretty(event).unwrap();
        let r = self
            .http
            .post(format!("{}/webhooks/stripe", self.instance.base_url))
            .header("Content-Type", "application/json")
            .header("Stripe-Signature", stripe::signature(&body, t, secrets))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.json::<Value>().await.unwrap_or(Value::Null);
        Response { status, body, headers }
    }

    pub async fn webhook(&self, event: &Value) -> Response {
        self.webhook_signed(event, chrono::Utc::now().timestamp(), &stripe::WEBHOOK_SECRETS[..1]).await
    }

    /// The service clock, in unix seconds (what event and object times follow).
    pub async fn clock(&self) -> i64 {
        self.now().await.timestamp()
    }

    pub async fn spawn_with(overrides: &[(&str, &str)]) -> TestApp {
        let db = TestDb::new();
        let instance = Instance::start(&db.url, overrides);
        TestApp { db, instance, http: client() }
    }

    pub async fn call(&self, who: &As, method: &str, path: &str, body: Option<Value>, idem: Option<&str>) -> Response {
        call_at(&self.http, &self.instance.base_url, who, method, path, body, idem).await
    }

    pub async fn get(&self, who: &As, path: &str) -> Response {
        self.call(who, "GET", path, None, None).await
    }

    pub async fn post(&self, who: &As, path: &str, body: Value) -> Response {
        self.call(who, "POST", path, Some(body), None).await
    }

    /// A new account (Free, 250 credits); its canvas identity.
    pub async fn account(&self) -> As {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let body = self
            .post(
                &As::Internal,
                "/v1/accounts",
                json!({"email": format!("t-{tag}@example.test"), "name": format!("Test {tag}")}),
            )
            .await
            .expect(201);
        As::Canvas(body["id"].as_str().unwrap().to_string())
    }

    /// A new operator with `role`, made as `credits operator create` makes one; its identity.
    pub fn operator(&self, role: credits_domain::operator::Role) -> As {
        use credits_domain::ports::OperatorStore;
        let settings = test_settings(&self.db.url, &[]);
        let services = Services::build(&settings).unwrap();
        let token = format!("cop_test_{}", uuid::Uuid::new_v4().simple());
        services
            .store
            .create_operator(
                &format!("{} operator", role.as_str()),
                role,
                &credits_api::token_hash(&token),
                chrono::Utc::now(),
            )
            .unwrap();
        As::Bearer(token)
    }

    /// Put an account on a plan directly in its database: the test's precondition for plans that
    /// are sold through Stripe (the Stripe flow has tests of its own).
    pub fn set_plan(&self, who: &As, plan: &str) {
        let id: uuid::Uuid = account_id(who).parse().unwrap();
        diesel::sql_query("UPDATE accounts SET plan_id = $1 WHERE id = $2")
            .bind::<Text, _>(plan)
            .bind::<diesel::sql_types::Uuid, _>(id)
            .execute(&mut self.db.conn())
            .unwrap();
    }

    /// Put an account on an Enterprise contract of `monthly_credits` (the operator route; its
    /// first period's allowance is granted at once).
    pub async fn enterprise(&self, who: &As, monthly_credits: i64) {
        let path = format!("/admin/v1/accounts/{}/enterprise", account_id(who));
        self.call(&self.admin(), "PUT", &path, Some(json!({"monthly_credits": monthly_credits})), None)
            .await
            .expect(200);
    }

    /// A new API key of the account, with `scopes` (all its API capabilities if `None`).
    pub async fn api_key(&self, who: &As, scopes: Option<&[&str]>) -> (As, String) {
        let mut body = json!({"name": "test key"});
        if let Some(s) = scopes {
            body["scopes"] = json!(s);
        }
        let created = self.post(who, "/v1/api-keys", body).await.expect(201);
        let key = created["key"].as_str().unwrap().to_string();
        (As::Bearer(key), created["id"].as_str().unwrap().to_string())
    }

    pub fn admin(&self) -> As {
        As::Bearer(ADMIN_TOKEN.into())
    }

    pub async fn balance(&self, who: &As) -> Value {
        self.get(who, "/v1/balance").await.expect(200)
    }

    pub async fn available(&self, who: &As) -> i64 {
        self.balance(who).await["available"].as_i64().unwrap()
    }

    pub async fn ledger(&self, who: &As) -> Vec<Value> {
        let mut entries = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/ledger?limit=100&cursor={c}"),
                None => "/v1/ledger?limit=100".to_string(),
            };
            let page = self.get(who, &path).await.expect(200);
            entries.extend(page["entries"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return entries,
            }
        }
    }

    pub async fn run(&self, who: &As, body: Value) -> Response {
        self.post(who, "/v1/runs", body).await
    }

    pub async fn adjust(&self, who: &As, body: Value) -> Response {
        let id = account_id(who);
        self.call(&self.admin(), "POST", &format!("/admin/v1/accounts/{id}/adjustments"), Some(body), None).await
    }

    pub async fn advance(&self, seconds: i64) {
        self.post(&self.admin(), "/admin/v1/test-clock", json!({"advance_seconds": seconds})).await.expect(200);
    }

    pub async fn now(&self) -> chrono::DateTime<chrono::Utc> {
        let body = self.get(&self.admin(), "/admin/v1/test-clock").await.expect(200);
        body["now"].as_str().unwrap().parse().unwrap()
    }

    /// Wait for background work (a sweep) by polling, at most 10 s.
    pub async fn eventually<F, Fut>(&self, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !check().await {
            assert!(std::time::Instant::now() < deadline, "after 10 s: {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The ledger invariant (R15) straight from the database: every bucket's remaining is the
    /// sum of its entries and never negative.
    pub fn assert_ledger_consistent(&self) {
        assert_ledger_consistent(&mut self.db.conn());
    }

    /// Every invariant of `credits check` holds, at the service's time.
    pub async fn assert_invariants(&self) {
        let pool = credits_db::pool(&self.db.url, 1, Duration::from_secs(5));
        let violations = credits_db::invariants::check(&pool, self.now().await).unwrap();
        assert!(violations.is_empty(), "credits check: {violations:?}");
    }

    /// Row counts of every table a request could write to.
    pub fn trace(&self) -> Vec<i64> {
        let mut conn = self.db.conn();
        [
            "accounts",
            "buckets",
            "runs",
            "run_reservations",
            "ledger_entries",
            "trial_usage",
            "idempotency_records",
            "checkout_sessions",
            "subscriptions",
            "stripe_events",
            "invoice_grants",
            "topup_purchases",
            "outbox",
            "payment_jobs",
            "disputes",
            "account_restrictions",
        ]
        .iter()
        .map(|t| diesel::sql_query(format!("SELECT count(*) AS n FROM {t}")).get_result::<Count>(&mut conn).unwrap().n)
        .collect()
    }
}

/// The built `credits` binary (`make unit` builds it first): `CREDITS_BIN`, or target/debug/credits.
pub fn credits_bin() -> PathBuf {
    let path = std::env::var("CREDITS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/credits"));
    assert!(path.exists(), "{} is not built: run `cargo build -p credits-server` (make unit does)", path.display());
    path
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap()
}

pub fn account_id(who: &As) -> &str {
    match who {
        As::Canvas(id) => id,
        other => panic!("not an account: {other:?}"),
    }
}

pub async fn call_at(
    http: &reqwest::Client,
    base_url: &str,
    who: &As,
    method: &str,
    path: &str,
    body: Option<Value>,
    idem: Option<&str>,
) -> Response {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = http.request(method, format!("{base_url}{path}"));
    req = match who {
        As::Nobody => req,
        As::Internal => req.bearer_auth(INTERNAL_TOKEN),
        As::Canvas(id) => req.bearer_auth(INTERNAL_TOKEN).header("X-Account-Id", id),
        As::Bearer(token) => req.bearer_auth(token),
    };
    if let Some(key) = idem {
        req = req.header("Idempotency-Key", key);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("the service answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    Response { status, body, headers }
}

#[derive(QueryableByName)]
struct Broken {
    #[diesel(sql_type = Text)]
    problem: String,
}

pub fn assert_ledger_consistent(conn: &mut PgConnection) {
    let broken: Vec<Broken> = diesel::sql_query(
        "SELECT 'bucket ' || b.id || ': remaining ' || b.remaining || ' but entries sum to ' || COALESCE(s.total, 0) AS problem \
         FROM buckets b LEFT JOIN (SELECT bucket_id, sum(credits) AS total FROM ledger_entries GROUP BY bucket_id) s \
           ON s.bucket_id = b.id \
         WHERE b.remaining <> COALESCE(s.total, 0) OR b.remaining < 0",
    )
    .load(conn)
    .unwrap();
    let problems: Vec<String> = broken.into_iter().map(|b| b.problem).collect();
    assert!(problems.is_empty(), "the ledger and the buckets disagree: {problems:?}");
}
