//! A test's service: its database, one running instance, an HTTP client, and helpers that act as
//! its users do.

use std::time::Duration;

use credits_server::app::Services;
use diesel::prelude::*;
use diesel::sql_types::Text;
use serde_json::{Value, json};

use crate::*;

/// A test's service: its own database and one running instance, plus an HTTP client.
pub struct TestApp {
    pub db: TestDb,
    pub instance: Instance,
    pub http: reqwest::Client,
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
        TestApp::spawn_with_stripe_serving(true).await
    }

    /// The same; without background workers when `with_workers` is false (a test runs them in
    /// another process).
    pub async fn spawn_with_stripe_serving(with_workers: bool) -> (TestApp, stripe::FakeStripe) {
        let fake = stripe::FakeStripe::start().await;
        let db = TestDb::new();
        let api_base = format!("{}/", fake.url);
        let instance = Instance::start_serving(
            &db.url,
            &[("CREDITS__STRIPE__SECRET_KEY", stripe::STRIPE_KEY), ("CREDITS__STRIPE__API_BASE", &api_base)],
            with_workers,
        );
        let app = TestApp { db, instance, http: client() };
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
        .map(|t| {
            diesel::sql_query(format!("SELECT count(*) AS n FROM {t}"))
                .get_result::<crate::db::Count>(&mut conn)
                .unwrap()
                .n
        })
        .collect()
    }
}
