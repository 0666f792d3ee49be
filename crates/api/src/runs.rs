//! Quotes and runs: start, read, complete, cancel.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use credits_domain::idempotency::Replayable;
use credits_domain::ids::RunId;
use credits_domain::pricing::RunParams;
use credits_domain::runs::{RunOp, RunRequest};
use serde::Deserialize;
use serde_json::Value;

use crate::auth;
use crate::edge::{idempotency_key, json_value, param, path_id, respond};
use crate::error::ApiError;
use crate::state::AppState;

/// A run (or quote) request: its shape, documented, and what the parser reads. Each field is
/// read as whatever JSON it holds, so that a field of the wrong type is judged in SPEC's order
/// (after the rate limit), not refused before it.
#[derive(serde::Deserialize, utoipa::ToSchema)]
pub struct RunBody {
    #[schema(value_type = String, example = "flux-schnell")]
    model: Option<Value>,
    /// per-image models only; default 1
    #[schema(value_type = Option<i64>)]
    images: Option<Value>,
    /// per-second models only; required there
    #[schema(value_type = Option<i64>)]
    duration_seconds: Option<Value>,
    /// through the API: needs workflow:run (without it, a direct model run needs model:run)
    #[schema(value_type = Option<String>)]
    workflow_id: Option<Value>,
    /// charge at once instead of holding (runs only)
    #[schema(value_type = Option<bool>)]
    capture: Option<Value>,
    /// Any other field: judged as INVALID_PARAMETERS in its place.
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: serde_json::Map<String, Value>,
}

/// The actual parameters of a completion; absent ones are as requested.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct CompleteBody {
    images: Option<i64>,
    duration_seconds: Option<i64>,
}

/// A run request from its JSON. Field-level problems are kept in `malformed`, for the rules to
/// judge in their place (after the rate limit).
fn run_request(body: &Value) -> RunRequest {
    let body = RunBody::deserialize(body).unwrap_or_else(|_| RunBody {
        model: None,
        images: None,
        duration_seconds: None,
        workflow_id: None,
        capture: None,
        unknown: serde_json::Map::new(),
    });
    let mut problems = Vec::new();
    if let Some(unknown) = body.unknown.keys().next() {
        problems.push(format!("unknown field {unknown:?}"));
    }
    let model = match body.model {
        Some(Value::String(s)) => s,
        Some(Value::Null) | None => {
            problems.push("model is required".into());
            String::new()
        }
        Some(_) => {
            problems.push("model must be a string".into());
            String::new()
        }
    };
    let workflow_id = match body.workflow_id {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            problems.push("workflow_id must be a string".into());
            None
        }
    };
    let capture = match body.capture {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => {
            problems.push("capture must be true or false".into());
            false
        }
    };
    RunRequest {
        model,
        malformed: (!problems.is_empty()).then(|| problems.join("; ")),
        params: RunParams {
            images: param(body.images.as_ref()),
            duration_seconds: param(body.duration_seconds.as_ref()),
        },
        workflow_id,
        capture,
        member: None,
    }
}

#[utoipa::path(post, path = "/v1/quote", operation_id = "quoteRun", summary = "What a run would cost and whether it would be let through", tag = "runs", request_body = RunBody, responses((status = 200, description = "cost, allowed, denial (the error a run would get), trial", body = crate::schemas::QuoteView), (status = 422, description = "INVALID_PARAMETERS or UNKNOWN_MODEL", body = crate::error::ErrorBody)), security(("canvas" = [], "account_id" = []), ("api_key" = [])))]
pub async fn quote(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = auth::account(&req, &state).await?;
    auth::may_read(&caller)?;
    let mut value = json_value(&body)?;
    // A quote takes a run's fields; `capture` changes nothing about it.
    value.as_object_mut().map(|o| o.remove("capture"));
    let request = RunRequest { member: caller.member, ..run_request(&value) };
    let quote =
        state.runs().call(move |runs, now| Ok(runs.quote(caller.account, &caller.channel, &request, now)?)).await?;
    let denial = quote.denial.map(|d| ApiError::from(d).typed_object());
    Ok(HttpResponse::Ok().json(crate::schemas::QuoteView {
        model: quote.model,
        images: quote.priced.images,
        duration_seconds: quote.priced.duration_seconds,
        cost: quote.priced.cost,
        allowed: denial.is_none(),
        denial,
        trial: quote.trial,
    }))
}

#[utoipa::path(post, path = "/v1/runs", operation_id = "startRun", summary = "Start a run: hold its cost, or charge it at once", tag = "runs", request_body = RunBody, params(("Idempotency-Key" = Option<String>, Header, description = "R11")), responses((status = 201, description = "the run: held (or captured with capture: true)", body = credits_domain::views::RunView), (status = 402, description = "INSUFFICIENT_CREDITS", body = crate::error::ErrorBody), (status = 403, description = "API_ACCESS_REQUIRED, CAPABILITY_REQUIRED, TRIAL_EXHAUSTED, TRIAL_EXPIRED, MODEL_TIER_REQUIRED", body = crate::error::ErrorBody), (status = 422, description = "INVALID_PARAMETERS, UNKNOWN_MODEL, IDEMPOTENCY_KEY_REUSED", body = crate::error::ErrorBody), (status = 429, description = "RATE_LIMITED, with Retry-After", body = crate::error::ErrorBody)), security(("canvas" = [], "account_id" = []), ("api_key" = [])))]
pub async fn start(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = auth::account(&req, &state).await?;
    let value = json_value(&body)?;
    let request = RunRequest { member: caller.member, ..run_request(&value) };
    let idem = idempotency_key(&req, caller.scope(), &value, StatusCode::CREATED)?;
    // No gate here: a run waits in the store's queue without a connection or a thread.
    let result = state.run(caller.account, RunOp::Start { channel: caller.channel, req: request }, idem).await;
    match &result {
        Ok(Replayable::Fresh(run)) => state.metrics.run(run.status.as_str()),
        Ok(Replayable::Replay(_)) => {}
        Err(e) => state.metrics.denial(e.code),
    }
    Ok(respond(StatusCode::CREATED, result?))
}

#[utoipa::path(get, path = "/v1/runs/{id}", operation_id = "getRun", summary = "A run", tag = "runs", params(("id" = String, Path, description = "the run's id")), responses((status = 200, description = "the run", body = credits_domain::views::RunView), (status = 404, description = "NOT_FOUND", body = crate::error::ErrorBody)), security(("canvas" = [], "account_id" = []), ("api_key" = [])))]
pub async fn show(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth::reader(&req, &state).await?;
    let run: RunId = path_id(&path, "run")?;
    let view = state.runs().call(move |runs, now| Ok(runs.run(caller.account, run, now)?)).await?;
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(post, path = "/v1/runs/{id}/complete", operation_id = "completeRun", summary = "Complete a held run: capture the actual cost", tag = "runs", request_body = CompleteBody, params(("id" = String, Path, description = "the run's id"), ("Idempotency-Key" = Option<String>, Header, description = "R11")), responses((status = 200, description = "captured: the actual cost charged, the rest released", body = credits_domain::views::RunView), (status = 409, description = "CONFLICT: not held", body = crate::error::ErrorBody), (status = 422, description = "INVALID_PARAMETERS: more than requested", body = crate::error::ErrorBody)), security(("canvas" = [], "account_id" = []), ("api_key" = [])))]
pub async fn complete(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth::caller(&req, &state).await?;
    let run: RunId = path_id(&path, "run")?;
    let value = json_value(&body)?;
    let obj = value.as_object().expect("json_value gives an object");
    if let Some(unknown) = obj.keys().find(|k| !["images", "duration_seconds"].contains(&k.as_str())) {
        return Err(ApiError::invalid_parameters(format!("unknown field {unknown:?}")));
    }
    let actual = RunParams { images: param(obj.get("images")), duration_seconds: param(obj.get("duration_seconds")) };
    let idem = idempotency_key(&req, caller.scope(), &value, StatusCode::OK)?;
    let result = state.run(caller.account, RunOp::Complete { channel: caller.channel, run, actual }, idem).await?;
    if let Replayable::Fresh(_) = result {
        state.metrics.run("captured");
    }
    Ok(respond(StatusCode::OK, result))
}

#[utoipa::path(post, path = "/v1/runs/{id}/cancel", operation_id = "cancelRun", summary = "Cancel a held run: release its hold", tag = "runs", params(("id" = String, Path, description = "the run's id"), ("Idempotency-Key" = Option<String>, Header, description = "R11")), responses((status = 200, description = "released", body = credits_domain::views::RunView), (status = 409, description = "CONFLICT: not held", body = crate::error::ErrorBody)), security(("canvas" = [], "account_id" = []), ("api_key" = [])))]
pub async fn cancel(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth::caller(&req, &state).await?;
    let run: RunId = path_id(&path, "run")?;
    let value = json_value(&body)?;
    if let Some(unknown) = value.as_object().and_then(|o| o.keys().next()) {
        return Err(ApiError::invalid_parameters(format!("unknown field {unknown:?}: a cancel takes no fields")));
    }
    let idem = idempotency_key(&req, caller.scope(), &value, StatusCode::OK)?;
    let result = state.run(caller.account, RunOp::Cancel { channel: caller.channel, run }, idem).await?;
    if let Replayable::Fresh(_) = result {
        state.metrics.run("released");
    }
    Ok(respond(StatusCode::OK, result))
}

#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::run_request;
    use crate::edge::json_value;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// Whatever bytes a run's body holds: refused at the edge, or a request whose problems the
        /// rules judge in their place; never a panic.
        #[test]
        fn arbitrary_bytes_never_panic_the_run_body_parser(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(value) = json_value(&bytes) {
                let _ = run_request(&value);
            }
        }

        /// Bodies with the run's fields, of any JSON type.
        #[test]
        fn run_fields_of_any_type_never_panic_the_parser(
            model in prop_oneof![Just(serde_json::json!("flux-schnell")), any::<i64>().prop_map(serde_json::Value::from), Just(serde_json::Value::Null)],
            images in prop_oneof![any::<i64>().prop_map(serde_json::Value::from), any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(serde_json::Value::from), "[0-9a-z]{0,5}".prop_map(serde_json::Value::from)],
            capture in prop_oneof![any::<bool>().prop_map(serde_json::Value::from), Just(serde_json::json!("yes"))],
            extra in "[a-z]{0,6}",
        ) {
            let mut body = serde_json::json!({"model": model, "images": images, "capture": capture});
            if !extra.is_empty() {
                body[extra] = serde_json::json!(1);
            }
            let request = run_request(&body);
            prop_assert!(request.malformed.is_some() || body["model"].is_string());
        }
    }
}
