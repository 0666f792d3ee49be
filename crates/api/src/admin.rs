//! Operator routes: account reads and adjustments (support), Enterprise contracts and the test
//! clock (admin).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use credits_domain::ids::AccountId;
use credits_domain::operator::{Adjustment, ContractTerms, Role};
use serde::Deserialize;
use serde_json::json;

use crate::auth;
use crate::edge::{blocking, idempotency_key, json_value, path_id, respond, typed};
use crate::error::ApiError;
use crate::state::AppState;

pub async fn account(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = auth::operator(&req, &state, Role::Support).await?;
    let id: AccountId = path_id(&path, "account")?;
    let (store, clock) = (state.store.clone(), state.clock.clone());
    let view = blocking(move || Ok(store.admin_account(&by, id, clock.now()?)?)).await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdjustmentBody {
    credits: i64,
    reason: String,
    expires_at: Option<DateTime<Utc>>,
}

pub async fn adjust(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = auth::operator(&req, &state, Role::Support).await?;
    let id: AccountId = path_id(&path, "account")?;
    let value = json_value(&body)?;
    let input: AdjustmentBody = typed(&value)?;
    let scope = format!(
        "operator:{}",
        by.id
            .map(|i| i.to_string())
            .unwrap_or_else(|| by.name.clone())
    );
    let idem = idempotency_key(&req, scope, &value, StatusCode::CREATED)?;
    let (store, clock) = (state.store.clone(), state.clock.clone());
    let result = blocking(move || {
        let now = clock.now()?;
        let adjustment = Adjustment::new(input.credits, &input.reason, input.expires_at, now)
            .map_err(ApiError::invalid_parameters)?;
        Ok(store.adjust(&by, id, &adjustment, now, idem.as_ref())?)
    })
    .await?;
    Ok(respond(StatusCode::CREATED, result))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnterpriseBody {
    monthly_credits: i64,
    runs_per_minute: Option<i64>,
}

pub async fn enterprise(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = auth::operator(&req, &state, Role::Admin).await?;
    let id: AccountId = path_id(&path, "account")?;
    let input: EnterpriseBody = typed(&json_value(&body)?)?;
    let terms = ContractTerms::new(input.monthly_credits, input.runs_per_minute)
        .map_err(ApiError::invalid_parameters)?;
    let (store, clock) = (state.store.clone(), state.clock.clone());
    let view = blocking(move || Ok(store.set_enterprise(&by, id, terms, clock.now()?)?)).await?;
    Ok(HttpResponse::Ok().json(view))
}

fn test_clock_enabled(
    state: &AppState,
) -> Result<std::sync::Arc<dyn credits_domain::ports::TestClock>, ApiError> {
    state
        .test_clock
        .clone()
        .ok_or_else(|| ApiError::not_found("the test clock is off (clock.mode = \"system\")"))
}

pub async fn clock_now(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let clock = test_clock_enabled(&state)?;
    auth::operator(&req, &state, Role::Admin).await?;
    let now = blocking(move || Ok(clock.now()?)).await?;
    Ok(HttpResponse::Ok().json(json!({ "now": now })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdvanceBody {
    advance_seconds: i64,
}

/// How far one call may move the clock: ten years, far beyond any rule's horizon.
const MAX_ADVANCE_SECONDS: i64 = 10 * 366 * 24 * 3600;

pub async fn clock_advance(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let clock = test_clock_enabled(&state)?;
    auth::operator(&req, &state, Role::Admin).await?;
    let input: AdvanceBody = typed(&json_value(&body)?)?;
    if !(0..=MAX_ADVANCE_SECONDS).contains(&input.advance_seconds) {
        return Err(ApiError::invalid_parameters(format!(
            "advance_seconds must be between 0 and {MAX_ADVANCE_SECONDS}: the clock only moves forward"
        )));
    }
    let now = blocking(move || Ok(clock.advance(input.advance_seconds)?)).await?;
    tracing::info!(advance_seconds = input.advance_seconds, %now, "test clock moved");
    Ok(HttpResponse::Ok().json(json!({ "now": now })))
}
