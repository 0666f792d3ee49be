//! Talking to the service over HTTP: who sends a request, and what came back.

use serde_json::Value;

use crate::*;

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
    /// The canvas acting for a member of the account (R25): account id, member id.
    Member(String, String),
    Bearer(String),
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap()
}

pub fn account_id(who: &As) -> &str {
    match who {
        As::Canvas(id) | As::Member(id, _) => id,
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
        As::Member(id, member) => {
            req.bearer_auth(INTERNAL_TOKEN).header("X-Account-Id", id).header("X-Member-Id", member)
        }
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
