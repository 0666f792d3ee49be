//! Parsing at the edge: bodies, ids, headers and the idempotency key, into domain types. A body
//! that is not JSON is 400 INVALID_REQUEST; JSON of the wrong shape is 422 INVALID_PARAMETERS.
//!
//! Every string that comes in — each key and string of a JSON body (`json_value`), each name and
//! value of a form (`Form`) and of a query (`Query`, `query`) — passes the domain's text rule
//! (`credits_domain::text::check`, SPEC section 7) before a handler sees it: a NUL or another
//! control character is 422 INVALID_PARAMETERS, never a 500 from PostgreSQL after the fact.

use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use credits_domain::idempotency::{IdempotencyKey, Replayable};
use credits_domain::pricing::Param;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

pub use crate::error::MAX_BODY_BYTES;

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
    checked_strings("", &value)?;
    Ok(value)
}

/// The text rule over every key and string of a JSON value; `at` names where it is.
fn checked_strings(at: &str, value: &Value) -> Result<(), ApiError> {
    match value {
        Value::String(s) => text_ok(at, s),
        Value::Array(items) => items.iter().try_for_each(|v| checked_strings(at, v)),
        Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            let here = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
            text_ok(&here, k)?;
            checked_strings(&here, v)
        }),
        _ => Ok(()),
    }
}

fn text_ok(field: &str, value: &str) -> Result<(), ApiError> {
    credits_domain::text::check(if field.is_empty() { "a field" } else { field }, value)
        .map_err(|e| ApiError::invalid_parameters(e.to_string()))
}

/// Each name and value of a form or query string, decoded, through the text rule.
pub fn checked_pairs(encoded: &[u8]) -> Result<(), ApiError> {
    for (name, value) in url::form_urlencoded::parse(encoded) {
        text_ok(&name, &name)?;
        text_ok(&name, &value)?;
    }
    Ok(())
}

/// A query string as `T`, its strings checked first: a forbidden character is 422, a query of the
/// wrong shape 422 too.
pub fn query<T: DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    checked_pairs(req.query_string().as_bytes())?;
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| ApiError::invalid_parameters(e.to_string()))
}

/// `web::Query`, with the text rule applied to every name and value first.
pub struct Query<T>(pub T);

/// `web::Form` (an `application/x-www-form-urlencoded` body, at most `MAX_BODY_BYTES`), with the
/// text rule applied to every name and value first.
pub struct Form<T>(pub T);

macro_rules! wrapper {
    ($name:ident) => {
        impl<T> $name<T> {
            pub fn into_inner(self) -> T {
                self.0
            }
        }

        impl<T> std::ops::Deref for $name<T> {
            type Target = T;
            fn deref(&self) -> &T {
                &self.0
            }
        }
    };
}
wrapper!(Query);
wrapper!(Form);

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(checked_pairs(req.query_string().as_bytes()).and_then(|()| {
            web::Query::<T>::from_query(req.query_string())
                .map(|q| Query(q.into_inner()))
                .map_err(|e| ApiError::invalid_request(e.to_string()))
        }))
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Form<T> {
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let body = body.await.map_err(|e| ApiError::invalid_request(e.to_string()))?;
            if body.len() > MAX_BODY_BYTES {
                return Err(ApiError::invalid_request(format!("the body exceeds {MAX_BODY_BYTES} bytes")));
            }
            checked_pairs(&body)?;
            serde_urlencoded::from_bytes(&body).map(Form).map_err(|e| ApiError::invalid_request(e.to_string()))
        })
    }
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
