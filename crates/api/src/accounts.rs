//! Accounts, balances, the ledger and trials.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use credits_domain::ports::NewAccount;
use credits_domain::views::{LEDGER_DEFAULT_LIMIT, LEDGER_MAX_LIMIT, LedgerQuery};
use serde::Deserialize;

use crate::auth;
use crate::edge::{blocking, idempotency_key, json_value, respond, typed};
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccount {
    email: String,
    name: String,
}

#[utoipa::path(post, path = "/v1/accounts", operation_id = "createAccount", summary = "Create an account on Free with its lifetime grant", tag = "accounts", request_body = CreateAccount, params(("Idempotency-Key" = Option<String>, Header, description = "R11")), responses((status = 201, description = "the account: Free, with its 250-credit lifetime grant", body = credits_domain::views::AccountView), (status = 401, description = "not the internal token", body = crate::error::ErrorBody), (status = 422, description = "INVALID_PARAMETERS", body = crate::error::ErrorBody)), security(("canvas" = [])))]
pub async fn create(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    auth::internal(&req, &state)?;
    let value = json_value(&body)?;
    let input: CreateAccount = typed(&value)?;
    let new = NewAccount::new(&input.email, &input.name).map_err(ApiError::invalid_parameters)?;
    let idem = idempotency_key(&req, "canvas".into(), &value, StatusCode::CREATED)?;
    let result =
        state.accounts().call(move |accounts, now| Ok(accounts.create_account(&new, now, idem.as_ref())?)).await?;
    Ok(respond(StatusCode::CREATED, result))
}

#[utoipa::path(get, path = "/v1/account", operation_id = "getAccount", summary = "The account: plan, status, period, capabilities, rate limit", tag = "accounts", responses((status = 200, description = "plan, status, period, capabilities, api_access, business_verification, rate limit", body = credits_domain::views::AccountView), (status = 401, description = "UNAUTHENTICATED", body = crate::error::ErrorBody)), security(("canvas" = [], "account_id" = []), ("api_key" = [])))]
pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = auth::reader(&req, &state).await?;
    let view = state.accounts().call(move |accounts, now| Ok(accounts.account_view(caller.account, now)?)).await?;
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(get, path = "/v1/balance", operation_id = "getBalance", summary = "The balance: available, held, total and every bucket", tag = "accounts", responses((status = 200, description = "available, held, total, plan, period_end, buckets", body = credits_domain::views::BalanceView), (status = 401, description = "UNAUTHENTICATED", body = crate::error::ErrorBody)), security(("canvas" = [], "account_id" = []), ("api_key" = [])))]
pub async fn balance(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = auth::reader(&req, &state).await?;
    let view = state.balances.balance(caller.account).await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Deserialize)]
struct LedgerParams {
    limit: Option<String>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/ledger", operation_id = "listLedgerEntries", summary = "Ledger entries, newest first, a page at a time", tag = "accounts", params(("limit" = Option<i64>, Query, description = "1-500, default 50"), ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")), responses((status = 200, description = "entries newest first, and next_cursor", body = credits_domain::views::LedgerPage), (status = 422, description = "INVALID_PARAMETERS", body = crate::error::ErrorBody)), security(("canvas" = [], "account_id" = []), ("api_key" = [])))]
pub async fn ledger(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = auth::reader(&req, &state).await?;
    let params = crate::edge::query::<LedgerParams>(&req)?;
    let limit =
        match &params.limit {
            None => LEDGER_DEFAULT_LIMIT,
            Some(raw) => raw.parse::<i64>().ok().filter(|n| (1..=LEDGER_MAX_LIMIT).contains(n)).ok_or_else(|| {
                ApiError::invalid_parameters(format!("limit must be between 1 and {LEDGER_MAX_LIMIT}"))
            })?,
        };
    let cursor = match &params.cursor {
        None => None,
        Some(raw) if raw.is_empty() => None,
        Some(raw) => Some(
            raw.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ApiError::invalid_parameters("cursor is not one this service gave out"))?,
        ),
    };
    let query = LedgerQuery { limit, cursor };
    let store = state.store.clone();
    let page = blocking(move || Ok(store.ledger(caller.account, &query)?)).await?;
    Ok(HttpResponse::Ok().json(page))
}

#[utoipa::path(get, path = "/v1/trials", operation_id = "listTrials", summary = "The Free-plan trials and their use", tag = "accounts", responses((status = 200, description = "each trial: model, kind, used, total, window, status", body = crate::schemas::TrialList)), security(("canvas" = [], "account_id" = []), ("api_key" = [])))]
pub async fn trials(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = auth::reader(&req, &state).await?;
    let trials = state.accounts().call(move |accounts, now| Ok(accounts.trials(caller.account, now)?)).await?;
    Ok(HttpResponse::Ok().json(crate::schemas::TrialList { trials }))
}
