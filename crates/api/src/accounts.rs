//! Accounts, balances, the ledger and trials.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use credits_domain::ports::NewAccount;
use credits_domain::views::{LEDGER_DEFAULT_LIMIT, LEDGER_MAX_LIMIT, LedgerQuery};
use serde::Deserialize;
use serde_json::json;

use crate::auth;
use crate::edge::{blocking, idempotency_key, json_value, respond, typed};
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateAccount {
    email: String,
    name: String,
}

pub async fn create(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    auth::internal(&req, &state)?;
    let value = json_value(&body)?;
    let input: CreateAccount = typed(&value)?;
    let new = NewAccount::new(&input.email, &input.name).map_err(ApiError::invalid_parameters)?;
    let idem = idempotency_key(&req, "canvas".into(), &value, StatusCode::CREATED)?;
    let (store, clock) = (state.store.clone(), state.clock.clone());
    let result =
        blocking(move || Ok(store.create_account(&new, clock.now()?, idem.as_ref())?)).await?;
    Ok(respond(StatusCode::CREATED, result))
}

pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = auth::account(&req, &state)?;
    let (store, clock) = (state.store.clone(), state.clock.clone());
    let view = blocking(move || Ok(store.account_view(caller.account, clock.now()?)?)).await?;
    Ok(HttpResponse::Ok().json(view))
}

pub async fn balance(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth::account(&req, &state)?;
    let (store, clock) = (state.store.clone(), state.clock.clone());
    let view = blocking(move || Ok(store.balance(caller.account, clock.now()?)?)).await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Deserialize)]
struct LedgerParams {
    limit: Option<String>,
    cursor: Option<String>,
}

pub async fn ledger(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth::account(&req, &state)?;
    let params = web::Query::<LedgerParams>::from_query(req.query_string())
        .map_err(|e| ApiError::invalid_parameters(e.to_string()))?;
    let limit = match &params.limit {
        None => LEDGER_DEFAULT_LIMIT,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=LEDGER_MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::invalid_parameters(format!(
                    "limit must be between 1 and {LEDGER_MAX_LIMIT}"
                ))
            })?,
    };
    let cursor = match &params.cursor {
        None => None,
        Some(raw) if raw.is_empty() => None,
        Some(raw) => Some(raw.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
            ApiError::invalid_parameters("cursor is not one this service gave out")
        })?),
    };
    let query = LedgerQuery { limit, cursor };
    let store = state.store.clone();
    let page = blocking(move || Ok(store.ledger(caller.account, &query)?)).await?;
    Ok(HttpResponse::Ok().json(page))
}

pub async fn trials(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth::account(&req, &state)?;
    let (store, clock) = (state.store.clone(), state.clock.clone());
    let trials = blocking(move || Ok(store.trials(caller.account, clock.now()?)?)).await?;
    Ok(HttpResponse::Ok().json(json!({ "trials": trials })))
}
