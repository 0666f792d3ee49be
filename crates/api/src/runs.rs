//! Quotes and runs: start, read, complete, cancel.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use credits_domain::idempotency::Replayable;
use credits_domain::ids::RunId;
use credits_domain::pricing::RunParams;
use credits_domain::runs::RunRequest;
use serde_json::{Value, json};

use crate::auth;
use crate::edge::{blocking, idempotency_key, json_value, param, path_id, respond};
use crate::error::ApiError;
use crate::state::AppState;

/// A run (or quote) request. The handlers read it field by field so that a field of the wrong
/// type is judged in SPEC's order; this type documents its shape.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct RunBody {
    #[schema(example = "flux-schnell")]
    model: String,
    /// per-image models only; default 1
    images: Option<i64>,
    /// per-second models only; required there
    duration_seconds: Option<i64>,
    /// through the API: needs workflow:run (without it, a direct model run needs model:run)
    workflow_id: Option<String>,
    /// charge at once instead of holding (runs only)
    capture: Option<bool>,
}

/// The actual parameters of a completion; absent ones are as requested.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct CompleteBody {
    images: Option<i64>,
    duration_seconds: Option<i64>,
}

const RUN_FIELDS: [&str; 5] = ["model", "images", "duration_seconds", "workflow_id", "capture"];

/// A run request from its JSON. Field-level problems are kept in `malformed`, for the rules to
/// judge in their place (after the rate limit).
fn run_request(body: &Value) -> RunRequest {
    let obj = body.as_object().expect("json_value gives an object");
    let mut problems = Vec::new();
    if let Some(unknown) = obj.keys().find(|k| !RUN_FIELDS.contains(&k.as_str())) {
        problems.push(format!("unknown field {unknown:?}"));
    }
    let model = match obj.get("model") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            problems.push("model must be a string".into());
            String::new()
        }
        None => {
            problems.push("model is required".into());
            String::new()
        }
    };
    let workflow_id = match obj.get("workflow_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            problems.push("workflow_id must be a string".into());
            None
        }
    };
    let capture = match obj.get("capture") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            problems.push("capture must be true or false".into());
            false
        }
    };
    RunRequest {
        model,
        malformed: (!problems.is_empty()).then(|| problems.join("; ")),
        params: RunParams { images: param(obj.get("images")), duration_seconds: param(obj.get("duration_seconds")) },
        workflow_id,
        capture,
    }
}

#[utoipa::path(post, path = "/v1/quote", operation_id = "post_v1_quote", tag = "runs", request_body = RunBody, responses((status = 200, description = "cost, allowed, denial (the error a run would get), trial", body = Object), (status = 422, description = "INVALID_PARAMETERS or UNKNOWN_MODEL", body = crate::openapi::ErrorBody)), security(("canvas" = [], "account_id" = []), ("api_key" = [])))]
pub async fn quote(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = auth::account(&req, &state).await?;
    auth::may_read(&caller)?;
    let mut value = json_value(&body)?;
    // A quote takes a run's fields; `capture` changes nothing about it.
    value.as_object_mut().map(|o| o.remove("capture"));
    let request = run_request(&value);
    let (store, clock) = (state.store.clone(), state.clock.clone());
    let quote = blocking(move || Ok(store.quote(caller.account, &caller.channel, &request, clock.now()?)?)).await?;
    let denial = quote.denial.map(|d| ApiError::from(d).object());
    Ok(HttpResponse::Ok().json(json!({
        "model": quote.model,
        "images": quote.priced.images,
        "duration_seconds": quote.priced.duration_seconds,
        "cost": quote.priced.cost,
        "allowed": denial.is_none(),
        "denial": denial,
        "trial": quote.trial,
    })))
}

#[utoipa::path(post, path = "/v1/runs", operation_id = "post_v1_runs", tag = "runs", request_body = RunBody, params(("Idempotency-Key" = Option<String>, Header, description = "R11")), responses((status = 201, description = "the run: held (or captured with capture: true)", body = Object), (status = 402, description = "INSUFFICIENT_CREDITS", body = crate::openapi::ErrorBody), (status = 403, description = "API_ACCESS_REQUIRED, CAPABILITY_REQUIRED, TRIAL_EXHAUSTED, TRIAL_EXPIRED, MODEL_TIER_REQUIRED", body = crate::openapi::ErrorBody), (status = 422, description = "INVALID_PARAMETERS, UNKNOWN_MODEL, IDEMPOTENCY_KEY_REUSED", body = crate::openapi::ErrorBody), (status = 429, description = "RATE_LIMITED, with Retry-After", body = crate::openapi::ErrorBody)), security(("canvas" = [], "account_id" = []), ("api_key" = [])))]
pub async fn start(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = auth::account(&req, &state).await?;
    let value = json_value(&body)?;
    let request = run_request(&value);
    let idem = idempotency_key(&req, caller.scope(), &value, StatusCode::CREATED)?;
    let entered = state.gate.enter(caller.account).await;
    let (store, clock) = (state.store.clone(), state.clock.clone());
    let result = match entered {
        Ok(_inside) => {
            blocking(move || {
                Ok(store.start_run(caller.account, &caller.channel, &request, clock.now()?, idem.as_ref())?)
            })
            .await
        }
        Err(busy) => Err(busy),
    };
    match &result {
        Ok(Replayable::Fresh(run)) => state.metrics.run(run.status.as_str()),
        Ok(Replayable::Replay(_)) => {}
        Err(e) => state.metrics.denial(e.code),
    }
    Ok(respond(StatusCode::CREATED, result?))
}

#[utoipa::path(get, path = "/v1/runs/{id}", operation_id = "get_v1_runs_id", tag = "runs", params(("id" = String, Path, description = "the run's id")), responses((status = 200, description = "the run", body = Object), (status = 404, description = "NOT_FOUND", body = crate::openapi::ErrorBody)), security(("canvas" = [], "account_id" = []), ("api_key" = [])))]
pub async fn show(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth::reader(&req, &state).await?;
    let run: RunId = path_id(&path, "run")?;
    let (store, clock) = (state.store.clone(), state.clock.clone());
    let view = blocking(move || Ok(store.run(caller.account, run, clock.now()?)?)).await?;
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(post, path = "/v1/runs/{id}/complete", operation_id = "post_v1_runs_id_complete", tag = "runs", request_body = CompleteBody, params(("id" = String, Path, description = "the run's id"), ("Idempotency-Key" = Option<String>, Header, description = "R11")), responses((status = 200, description = "captured: the actual cost charged, the rest released", body = Object), (status = 409, description = "CONFLICT: not held", body = crate::openapi::ErrorBody), (status = 422, description = "INVALID_PARAMETERS: more than requested", body = crate::openapi::ErrorBody)), security(("canvas" = [], "account_id" = []), ("api_key" = [])))]
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
    let _inside = state.gate.enter(caller.account).await?;
    let (store, clock) = (state.store.clone(), state.clock.clone());
    let result = blocking(move || {
        Ok(store.complete_run(caller.account, &caller.channel, run, actual, clock.now()?, idem.as_ref())?)
    })
    .await?;
    if let Replayable::Fresh(_) = result {
        state.metrics.run("captured");
    }
    Ok(respond(StatusCode::OK, result))
}

#[utoipa::path(post, path = "/v1/runs/{id}/cancel", operation_id = "post_v1_runs_id_cancel", tag = "runs", params(("id" = String, Path, description = "the run's id"), ("Idempotency-Key" = Option<String>, Header, description = "R11")), responses((status = 200, description = "released", body = Object), (status = 409, description = "CONFLICT: not held", body = crate::openapi::ErrorBody)), security(("canvas" = [], "account_id" = []), ("api_key" = [])))]
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
    let _inside = state.gate.enter(caller.account).await?;
    let (store, clock) = (state.store.clone(), state.clock.clone());
    let result =
        blocking(move || Ok(store.cancel_run(caller.account, &caller.channel, run, clock.now()?, idem.as_ref())?))
            .await?;
    if let Replayable::Fresh(_) = result {
        state.metrics.run("released");
    }
    Ok(respond(StatusCode::OK, result))
}
