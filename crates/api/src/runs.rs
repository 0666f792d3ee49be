//! Quotes and runs: start, read, complete, cancel.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use credits_domain::ids::RunId;
use credits_domain::pricing::RunParams;
use credits_domain::runs::RunRequest;
use serde_json::{Value, json};

use crate::auth;
use crate::edge::{blocking, idempotency_key, json_value, param, path_id, respond};
use crate::error::ApiError;
use crate::state::AppState;

const RUN_FIELDS: [&str; 5] = [
    "model",
    "images",
    "duration_seconds",
    "workflow_id",
    "capture",
];

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
        params: RunParams {
            images: param(obj.get("images")),
            duration_seconds: param(obj.get("duration_seconds")),
        },
        workflow_id,
        capture,
    }
}

pub async fn quote(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth::account(&req, &state)?;
    let mut value = json_value(&body)?;
    // A quote takes a run's fields; `capture` changes nothing about it.
    value.as_object_mut().map(|o| o.remove("capture"));
    let request = run_request(&value);
    let (store, clock) = (state.store.clone(), state.clock.clone());
    let quote = blocking(move || {
        Ok(store.quote(caller.account, &caller.channel, &request, clock.now()?)?)
    })
    .await?;
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

pub async fn start(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth::account(&req, &state)?;
    let value = json_value(&body)?;
    let request = run_request(&value);
    let idem = idempotency_key(&req, caller.scope(), &value, StatusCode::CREATED)?;
    let (store, clock) = (state.store.clone(), state.clock.clone());
    let result = blocking(move || {
        Ok(store.start_run(
            caller.account,
            &caller.channel,
            &request,
            clock.now()?,
            idem.as_ref(),
        )?)
    })
    .await?;
    Ok(respond(StatusCode::CREATED, result))
}

pub async fn show(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth::account(&req, &state)?;
    let run: RunId = path_id(&path, "run")?;
    let (store, clock) = (state.store.clone(), state.clock.clone());
    let view = blocking(move || Ok(store.run(caller.account, run, clock.now()?)?)).await?;
    Ok(HttpResponse::Ok().json(view))
}

pub async fn complete(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth::account(&req, &state)?;
    let run: RunId = path_id(&path, "run")?;
    let value = json_value(&body)?;
    let obj = value.as_object().expect("json_value gives an object");
    if let Some(unknown) = obj
        .keys()
        .find(|k| !["images", "duration_seconds"].contains(&k.as_str()))
    {
        return Err(ApiError::invalid_parameters(format!(
            "unknown field {unknown:?}"
        )));
    }
    let actual = RunParams {
        images: param(obj.get("images")),
        duration_seconds: param(obj.get("duration_seconds")),
    };
    let idem = idempotency_key(&req, caller.scope(), &value, StatusCode::OK)?;
    let (store, clock) = (state.store.clone(), state.clock.clone());
    let result = blocking(move || {
        Ok(store.complete_run(caller.account, run, actual, clock.now()?, idem.as_ref())?)
    })
    .await?;
    Ok(respond(StatusCode::OK, result))
}

pub async fn cancel(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth::account(&req, &state)?;
    let run: RunId = path_id(&path, "run")?;
    let value = json_value(&body)?;
    if let Some(unknown) = value.as_object().and_then(|o| o.keys().next()) {
        return Err(ApiError::invalid_parameters(format!(
            "unknown field {unknown:?}: a cancel takes no fields"
        )));
    }
    let idem = idempotency_key(&req, caller.scope(), &value, StatusCode::OK)?;
    let (store, clock) = (state.store.clone(), state.clock.clone());
    let result =
        blocking(move || Ok(store.cancel_run(caller.account, run, clock.now()?, idem.as_ref())?))
            .await?;
    Ok(respond(StatusCode::OK, result))
}
