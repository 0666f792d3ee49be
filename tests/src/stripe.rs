//! Stripe for the tests: the conformance harness's fake Stripe (a real HTTP server, standard
//! library Python) for the calls the service makes, and webhook events built in Stripe's shapes
//! and signed as Stripe signs them.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

pub const STRIPE_KEY: &str = "sk_test_credits_tests";
pub const WEBHOOK_SECRETS: [&str; 2] = ["whsec_tests_primary", "whsec_tests_rotated"];
pub const API_VERSION: &str = "2026-09-30.endive";

/// The fake Stripe: `CREDITS_FAKE_STRIPE`, or the conformance harness beside the repository.
fn fake_stripe_script() -> String {
    std::env::var("CREDITS_FAKE_STRIPE")
        .unwrap_or_else(|_| format!("{}/../../shared/conformance/harness/fake_stripe.py", env!("CARGO_MANIFEST_DIR")))
}

pub struct FakeStripe {
    pub url: String,
    child: Child,
    http: reqwest::Client,
}

impl FakeStripe {
    pub async fn start() -> FakeStripe {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let script = fake_stripe_script();
        assert!(std::path::Path::new(&script).exists(), "the fake Stripe is at {script} (set CREDITS_FAKE_STRIPE)");
        let child = Command::new("python3")
            .args([&script, "--port", &port.to_string(), "--secret-key", STRIPE_KEY])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs the fake Stripe");
        let fake = FakeStripe { url: format!("http://127.0.0.1:{port}"), child, http: reqwest::Client::new() };
        for _ in 0..100 {
            if fake.http.get(format!("{}/_fake/health", fake.url)).send().await.is_ok() {
                return fake;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the fake Stripe did not start");
    }

    /// Put objects (prices, subscriptions, …) into the fake.
    pub async fn put(&self, objects: Value) {
        let r = self.http.post(format!("{}/_fake/objects", self.url)).json(&objects).send().await.unwrap();
        assert!(r.status().is_success());
    }

    pub async fn get(&self, id: &str) -> Value {
        self.http.get(format!("{}/_fake/objects/{id}", self.url)).send().await.unwrap().json::<Value>().await.unwrap()["object"].clone()
    }

    /// Every API call answers `status` until `clear_failure`.
    pub async fn fail(&self, status: u16) {
        self.http.post(format!("{}/_fake/failure", self.url)).json(&json!({"status": status})).send().await.unwrap();
    }

    pub async fn clear_failure(&self) {
        self.http.delete(format!("{}/_fake/failure", self.url)).send().await.unwrap();
    }

    /// The successful (200) requests the service made to `path`.
    pub async fn requests(&self, method: &str, path: &str) -> Vec<Value> {
        self.recorded(&[("method", method), ("path", path)]).await.into_iter().filter(|r| r["status"] == 200).collect()
    }

    /// Every request the service made to `path`, whatever the answer.
    pub async fn all_requests(&self, path: &str) -> Vec<Value> {
        self.recorded(&[("path", path)]).await
    }

    async fn recorded(&self, query: &[(&str, &str)]) -> Vec<Value> {
        let body: Value = self
            .http
            .get(format!("{}/_fake/requests", self.url))
            .query(query)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["data"].as_array().cloned().unwrap_or_default()
    }

    /// The catalog's prices as Stripe prices (recurring for plans, one-time for packs).
    pub async fn seed_prices(&self, catalog: &credits_domain::catalog::Catalog) {
        let mut objects = Vec::new();
        let priced = catalog
            .plans()
            .iter()
            .filter_map(|p| Some((p.stripe_price_id.clone()?, p.price.clone()?, true)))
            .chain(catalog.packs().iter().map(|p| (p.stripe_price_id.clone(), p.price.clone(), false)));
        for (id, price, recurring) in priced {
            objects.push(json!({
                "id": id, "object": "price", "active": true, "currency": price.currency, "unit_amount": price.amount,
                "unit_amount_decimal": price.amount.to_string(), "type": if recurring { "recurring" } else { "one_time" },
                "recurring": if recurring { json!({"interval": "month", "interval_count": 1, "usage_type": "licensed"}) } else { Value::Null },
                "product": format!("prod_{id}"), "livemode": false, "created": 1_700_000_000, "metadata": {}
            }));
        }
        self.put(Value::Array(objects)).await;
    }
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `Stripe-Signature` as Stripe makes it, at time `t`, with each secret.
pub fn signature(payload: &[u8], t: i64, secrets: &[&str]) -> String {
    let mut header = format!("t={t}");
    for secret in secrets {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(payload);
        header.push_str(&format!(",v1={}", hex::encode(mac.finalize().into_bytes())));
    }
    header
}

pub fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// An event envelope around `object`.
pub fn event(event_type: &str, object: Value, created: i64) -> Value {
    json!({
        "id": new_id("evt_"), "object": "event", "api_version": API_VERSION, "created": created,
        "data": {"object": object}, "livemode": false, "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null}, "type": event_type
    })
}

/// Stripe's object templates (the conformance suite's trim of Stripe's OpenAPI fixtures).
fn template(name: &str) -> Value {
    static FIXTURES: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    let all = FIXTURES.get_or_init(|| {
        let path = format!("{}/../../shared/conformance/fixtures/stripe-objects.json", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))).unwrap()
    });
    all[name].clone()
}

/// A subscription in Stripe's full shape: its period lives on its item.
pub fn subscription(id: &str, customer: &str, price: &str, start: i64, end: i64, status: &str) -> Value {
    let mut item = template("subscription_item");
    let mut price_obj = template("price");
    price_obj["id"] = json!(price);
    price_obj["type"] = json!("recurring");
    item["id"] = json!(format!("si_{}", &id[4..]));
    item["subscription"] = json!(id);
    item["price"] = price_obj;
    item["plan"]["id"] = json!(price);
    item["current_period_start"] = json!(start);
    item["current_period_end"] = json!(end);
    item["created"] = json!(start);
    let mut sub = template("subscription");
    for (k, v) in [
        ("id", json!(id)),
        ("customer", json!(customer)),
        ("status", json!(status)),
        ("created", json!(start)),
        ("start_date", json!(start)),
        ("billing_cycle_anchor", json!(start)),
        ("cancel_at_period_end", json!(false)),
        ("cancel_at", Value::Null),
        ("canceled_at", Value::Null),
        ("ended_at", Value::Null),
        ("metadata", json!({})),
        ("livemode", json!(false)),
    ] {
        sub[k] = v;
    }
    sub["items"] = json!({"object": "list", "data": [item], "has_more": false, "total_count": 1,
        "url": format!("/v1/subscription_items?subscription={id}")});
    sub
}

/// A subscription invoice with one line per (price, amount, proration).
pub fn invoice(
    id: &str,
    customer: &str,
    sub: &str,
    reason: &str,
    lines: &[(&str, i64, bool)],
    start: i64,
    end: i64,
) -> Value {
    let lines: Vec<Value> = lines
        .iter()
        .map(|(price, amount, proration)| {
            json!({
                "id": new_id("il_"), "object": "line_item", "amount": amount, "currency": "usd",
                "period": {"start": start, "end": end},
                "pricing": {"type": "price_details", "price_details": {"price": price, "product": format!("prod_{price}")}},
                "parent": {"type": "subscription_item_details", "subscription_item_details": {"proration": proration, "subscription": sub}}
            })
        })
        .collect();
    json!({
        "id": id, "object": "invoice", "customer": customer, "billing_reason": reason, "status": "paid",
        "currency": "usd", "created": start,
        "parent": {"type": "subscription_details", "subscription_details": {"subscription": sub, "metadata": {}}},
        "lines": {"object": "list", "data": lines, "has_more": false}
    })
}

pub fn charge(id: &str, payment_intent: &str, amount: i64, refunded: i64) -> Value {
    json!({
        "id": id, "object": "charge", "amount": amount, "amount_refunded": refunded, "refunded": refunded >= amount,
        "currency": "usd", "payment_intent": payment_intent, "paid": true, "status": "succeeded"
    })
}

/// A succeeded PaymentIntent whose latest charge is `charge`.
pub fn payment_intent(id: &str, charge: &str, amount: i64, customer: &str) -> Value {
    json!({
        "id": id, "object": "payment_intent", "amount": amount, "amount_received": amount, "currency": "usd",
        "customer": customer, "latest_charge": charge, "status": "succeeded", "metadata": {}, "livemode": false,
        "created": 1_700_000_000
    })
}

/// Stripe's link between an invoice and the PaymentIntent that paid it (since 2025-03-31 neither
/// names the other).
pub fn invoice_payment(invoice: &str, payment_intent: &str, amount: i64) -> Value {
    json!({
        "id": new_id("inpay_"), "object": "invoice_payment", "invoice": invoice, "amount_paid": amount,
        "amount_requested": amount, "currency": "usd", "status": "paid", "is_default": true, "livemode": false,
        "created": 1_700_000_000, "payment": {"type": "payment_intent", "payment_intent": payment_intent}
    })
}

/// A dispute of a charge.
pub fn dispute(id: &str, charge: &str, payment_intent: &str, amount: i64, status: &str) -> Value {
    json!({
        "id": id, "object": "dispute", "amount": amount, "currency": "usd", "charge": charge,
        "payment_intent": payment_intent, "reason": "fraudulent", "status": status, "livemode": false,
        "created": 1_700_000_000
    })
}

impl FakeStripe {
    /// The next payments of `customer` fail with `code` (card_declined, …) until disarmed.
    pub async fn arm_payment_failure(&self, customer: &str, code: &str) {
        let r = self
            .http
            .post(format!("{}/_fake/payment_failure", self.url))
            .json(&json!({"code": code, "customer": customer, "times": null}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
}
