//! Parsing at the edge: bodies, ids, headers and the idempotency key, into domain types. A body
//! that is not JSON is 400 INVALID_REQUEST; JSON of the wrong shape is 422 INVALID_PARAMETERS.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use credits_domain::idempotency::{IdempotencyKey, Replayable};
use credits_domain::pricing::Param;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// The largest body the service reads.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Run blocking work (Diesel, the test clock) off the async threads.
pub async fn blocking<T, F>(work: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    web::block(work).await.map_err(|e| {
        tracing::error!(cause = %e, "blocking task failed");
        ApiError::internal()
    })?
}

/// The body as a JSON value. An empty body is `{}` (for the POSTs whose fields are all optional).
pub fn json_value(body: &[u8]) -> Result<Value, ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::invalid_request(format!("the body exceeds {MAX_BODY_BYTES} bytes")));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_request(format!("the body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::invalid_request("the body must be a JSON object"));
    }
    Ok(value)
}

/// A typed body: malformed JSON is 400, the wrong fields or types are 422.
pub fn typed<T: DeserializeOwned>(value: &Value) -> Result<T, ApiError> {
    T::deserialize(value).map_err(|e| ApiError::invalid_parameters(e.to_string()))
}

/// A numeric parameter as the rules need it: absent, a whole number, or something else.
pub fn param(value: Option<&Value>) -> Param {
    match value {
        None | Some(Value::Null) => Param::Absent,
        Some(Value::Number(n)) => n.as_i64().map(Param::Int).unwrap_or(Param::Invalid),
        Some(_) => Param::Invalid,
    }
}

/// A path id: one that does not parse names nothing (404), like one that parses and names nothing.
pub fn path_id<T: std::str::FromStr>(raw: &str, what: &str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found(format!("no such {what}")))
}

/// JSON with keys sorted at every level, so the same request always has the same fingerprint.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> =
                keys.into_iter().map(|k| format!("{}:{}", Value::from(k.as_str()), canonical(&map[k]))).collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(canonical).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

/// R11: the request's Idempotency-Key, scoped to its caller and fingerprinted with the request.
pub fn idempotency_key(
    req: &HttpRequest,
    scope: String,
    body: &Value,
    success: StatusCode,
) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(raw) = req.headers().get("Idempotency-Key") else {
        return Ok(None);
    };
    let key = raw.to_str().map_err(|_| ApiError::invalid_request("Idempotency-Key must be visible ASCII"))?;
    let mut hasher = Sha256::new();
    hasher.update(req.method().as_str().as_bytes());
    hasher.update(b" ");
    hasher.update(req.path().as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical(body).as_bytes());
    let fingerprint = hex::encode(hasher.finalize());
    IdempotencyKey::new(scope, key, fingerprint, success.as_u16()).map(Some).map_err(ApiError::invalid_request)
}

/// A fresh result with its status, or the first response to the same key, replayed as it was.
pub fn respond<T: Serialize>(status: StatusCode, result: Replayable<T>) -> HttpResponse {
    match result {
        Replayable::Fresh(value) => HttpResponse::build(status).json(value),
        Replayable::Replay(stored) => HttpResponse::build(StatusCode::from_u16(stored.status).unwrap_or(status))
            .insert_header(("Idempotent-Replayed", "true"))
            .content_type("application/json")
            .body(stored.body),
    }
}
