//! Operator routes: account reads and adjustments (support), Enterprise contracts and the test
//! clock (admin).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use credits_domain::ids::AccountId;
use credits_domain::operator::{Adjustment, ContractTerms, Role};
use serde::Deserialize;

use crate::auth;
use crate::edge::{blocking, idempotency_key, json_value, path_id, respond, typed};
use crate::error::ApiError;
use crate::schemas::ClockView;
use crate::state::AppState;

#[utoipa::path(get, path = "/admin/v1/accounts/{id}", operation_id = "getAdminAccount", summary = "An account with its balance, for support", tag = "operators", params(("id" = String, Path, description = "the account's id")), responses((status = 200, description = "the account with its balance", body = credits_domain::views::AdminAccountView), (status = 403, description = "FORBIDDEN: needs support", body = crate::error::ErrorBody), (status = 404, description = "NOT_FOUND", body = crate::error::ErrorBody)), security(("operator" = [])))]
pub async fn account(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = auth::operator(&req, &state, Role::Support).await?;
    let id: AccountId = path_id(&path, "account")?;
    let view = state.operators().call(move |operators, now| Ok(operators.admin_account(&by, id, now)?)).await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Deserialize)]
pub struct SearchQuery {
    q: Option<String>,
}

#[utoipa::path(get, path = "/admin/v1/accounts", operation_id = "searchAccounts", summary = "Find accounts, for support", tag = "operators", params(("q" = String, Query, description = "an exact account id, an email in any case, or a Stripe customer id")), responses((status = 200, description = "the accounts found, at most 20, newest first", body = crate::schemas::AccountSearch), (status = 403, description = "FORBIDDEN: needs support", body = crate::error::ErrorBody), (status = 422, description = "INVALID_PARAMETERS: q missing or empty", body = crate::error::ErrorBody)), security(("operator" = [])))]
pub async fn search(
    req: HttpRequest,
    query: crate::edge::Query<SearchQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = auth::operator(&req, &state, Role::Support).await?;
    let q = query.q.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    let q = q.ok_or_else(|| ApiError::invalid_parameters("q names an account id, an email or a Stripe customer id"))?;
    // The same use case as the console's search (recorded in the audit trail).
    let found = state.operators().call(move |operators, now| Ok(operators.find_accounts(&by, &q, now)?)).await?;
    let accounts = found
        .into_iter()
        .map(|a| crate::schemas::AccountFound { id: a.id.0, email: a.email, name: a.name, plan: a.plan })
        .collect();
    Ok(HttpResponse::Ok().json(crate::schemas::AccountSearch { accounts }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentBody {
    credits: i64,
    reason: String,
    expires_at: Option<DateTime<Utc>>,
}

#[utoipa::path(post, path = "/admin/v1/accounts/{id}/adjustments", operation_id = "adjustCredits", summary = "Grant or remove credits by hand", tag = "operators", request_body = AdjustmentBody, params(("id" = String, Path, description = "the account's id"), ("Idempotency-Key" = Option<String>, Header, description = "R11")), responses((status = 201, description = "the adjustment and its ledger entries", body = credits_domain::views::AdjustmentView), (status = 403, description = "FORBIDDEN: needs support", body = crate::error::ErrorBody), (status = 422, description = "INVALID_PARAMETERS (e.g. more than available)", body = crate::error::ErrorBody)), security(("operator" = [])))]
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
    let scope = format!("operator:{}", by.id.map(|i| i.to_string()).unwrap_or_else(|| by.name.clone()));
    let idem = idempotency_key(&req, scope, &value, StatusCode::CREATED)?;
    let _inside = state.gate.enter(id).await?;
    let result = state
        .operators()
        .call(move |operators, now| {
            let adjustment = Adjustment::new(input.credits, &input.reason, input.expires_at, now)
                .map_err(ApiError::invalid_parameters)?;
            Ok(operators.adjust(&by, id, &adjustment, now, idem.as_ref())?)
        })
        .await?;
    Ok(respond(StatusCode::CREATED, result))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnterpriseBody {
    monthly_credits: i64,
    runs_per_minute: Option<i64>,
}

#[utoipa::path(put, path = "/admin/v1/accounts/{id}/enterprise", operation_id = "setEnterpriseContract", summary = "Put an account on an Enterprise contract", tag = "operators", request_body = EnterpriseBody, params(("id" = String, Path, description = "the account's id")), responses((status = 200, description = "the account on its Enterprise contract", body = credits_domain::views::AccountView), (status = 403, description = "FORBIDDEN: needs admin", body = crate::error::ErrorBody)), security(("operator" = [])))]
pub async fn enterprise(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = auth::operator(&req, &state, Role::Admin).await?;
    let id: AccountId = path_id(&path, "account")?;
    let input: EnterpriseBody = typed(&json_value(&body)?)?;
    let terms =
        ContractTerms::new(input.monthly_credits, input.runs_per_minute).map_err(ApiError::invalid_parameters)?;
    let _inside = state.gate.enter(id).await?;
    let view = state.operators().call(move |operators, now| Ok(operators.set_enterprise(&by, id, terms, now)?)).await?;
    Ok(HttpResponse::Ok().json(view))
}

fn test_clock_enabled(state: &AppState) -> Result<std::sync::Arc<dyn credits_domain::ports::TestClock>, ApiError> {
    state.test_clock.clone().ok_or_else(|| ApiError::not_found("the test clock is off (clock.mode = \"system\")"))
}

#[utoipa::path(get, path = "/admin/v1/test-clock", operation_id = "getTestClock", summary = "The test clock's time", tag = "operators", responses((status = 200, description = "now, by the test clock", body = crate::schemas::ClockView), (status = 404, description = "clock.mode is not test", body = crate::error::ErrorBody)), security(("operator" = [])))]
pub async fn clock_now(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let clock = test_clock_enabled(&state)?;
    auth::operator(&req, &state, Role::Admin).await?;
    let now = blocking(move || Ok(clock.now()?)).await?;
    Ok(HttpResponse::Ok().json(ClockView { now }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdvanceBody {
    advance_seconds: i64,
}

/// Moving the test clock sweeps at the new time, at most this many rounds of this many accounts
/// (the background sweeps take any rest).
const CATCH_UP_ROUNDS: usize = 20;
const CATCH_UP_BATCH: i64 = 1000;

/// How far one call may move the clock: ten years, far beyond any rule's horizon.
const MAX_ADVANCE_SECONDS: i64 = 10 * 366 * 24 * 3600;

#[utoipa::path(post, path = "/admin/v1/test-clock", operation_id = "advanceTestClock", summary = "Move the test clock forward", tag = "operators", request_body = AdvanceBody, responses((status = 200, description = "now, after the move", body = crate::schemas::ClockView), (status = 404, description = "clock.mode is not test", body = crate::error::ErrorBody)), security(("operator" = [])))]
pub async fn clock_advance(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    test_clock_enabled(&state)?;
    auth::operator(&req, &state, Role::Admin).await?;
    let input: AdvanceBody = typed(&json_value(&body)?)?;
    let now = advance_clock(&state, input.advance_seconds).await?;
    Ok(HttpResponse::Ok().json(ClockView { now }))
}

/// Moves the test clock (validated) and does the time-driven work due by the new time.
pub async fn advance_clock(state: &AppState, seconds: i64) -> Result<DateTime<Utc>, ApiError> {
    let clock = test_clock_enabled(state)?;
    if !(0..=MAX_ADVANCE_SECONDS).contains(&seconds) {
        return Err(ApiError::invalid_parameters(format!(
            "advance_seconds must be between 0 and {MAX_ADVANCE_SECONDS}: the clock only moves forward"
        )));
    }
    let store = state.store.clone();
    let now = blocking(move || {
        let now = clock.advance(seconds)?;
        // Like Stripe's test clocks: the time-driven work due by the new time is done before the
        // answer, so what a test reads next (a global report included) does not race the sweeps.
        for _ in 0..CATCH_UP_ROUNDS {
            if store.sweep(now, CATCH_UP_BATCH)?.is_empty() {
                break;
            }
        }
        Ok(now)
    })
    .await?;
    tracing::info!(advance_seconds = seconds, %now, "test clock moved");
    Ok(now)
}

/// Why an account is restricted, or why the restriction is lifted (R19).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestrictionBody {
    reason: String,
}

fn reason(body: &[u8]) -> Result<String, ApiError> {
    let input: RestrictionBody = typed(&json_value(body)?)?;
    let reason = input.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::invalid_parameters("reason must be 1-500 characters"));
    }
    Ok(reason.to_string())
}

#[utoipa::path(put, path = "/admin/v1/accounts/{id}/restriction", operation_id = "restrictAccount", summary = "Restrict an account by hand", tag = "operators", request_body = RestrictionBody, params(("id" = String, Path, description = "the account's id")), responses((status = 200, description = "the account, restricted (R19)", body = credits_domain::views::AccountView), (status = 403, description = "FORBIDDEN: needs support", body = crate::error::ErrorBody), (status = 404, description = "NOT_FOUND", body = crate::error::ErrorBody), (status = 422, description = "INVALID_PARAMETERS: a reason is required", body = crate::error::ErrorBody)), security(("operator" = [])))]
pub async fn restrict(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = auth::operator(&req, &state, Role::Support).await?;
    let id: AccountId = path_id(&path, "account")?;
    let reason = reason(&body)?;
    let _inside = state.gate.enter(id).await?;
    let view = state.operators().call(move |operators, now| Ok(operators.restrict(&by, id, &reason, now)?)).await?;
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(delete, path = "/admin/v1/accounts/{id}/restriction", operation_id = "liftRestriction", summary = "Lift an account's restrictions", tag = "operators", request_body = RestrictionBody, params(("id" = String, Path, description = "the account's id")), responses((status = 200, description = "the account, no longer restricted (R19)", body = credits_domain::views::AccountView), (status = 403, description = "FORBIDDEN: needs support", body = crate::error::ErrorBody), (status = 404, description = "NOT_FOUND", body = crate::error::ErrorBody), (status = 422, description = "INVALID_PARAMETERS: a reason is required", body = crate::error::ErrorBody)), security(("operator" = [])))]
pub async fn lift_restriction(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = auth::operator(&req, &state, Role::Support).await?;
    let id: AccountId = path_id(&path, "account")?;
    let reason = reason(&body)?;
    let _inside = state.gate.enter(id).await?;
    let view =
        state.operators().call(move |operators, now| Ok(operators.lift_restriction(&by, id, &reason, now)?)).await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Deserialize)]
pub struct StripeEventsQuery {
    status: Option<String>,
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/admin/v1/stripe-events", operation_id = "listFailedStripeEvents", summary = "Stripe events the configuration could not apply", tag = "operators", params(("status" = Option<String>, Query, description = "failed (the only list kept)"), ("limit" = Option<i64>, Query, description = "1-500, default 100")), responses((status = 200, description = "Stripe events the configuration could not apply, oldest first", body = crate::schemas::FailedEventList), (status = 403, description = "FORBIDDEN: needs admin", body = crate::error::ErrorBody), (status = 422, description = "INVALID_PARAMETERS", body = crate::error::ErrorBody)), security(("operator" = [])))]
pub async fn stripe_events(
    req: HttpRequest,
    query: crate::edge::Query<StripeEventsQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    auth::operator(&req, &state, Role::Admin).await?;
    if query.status.as_deref().is_some_and(|s| s != "failed") {
        return Err(ApiError::invalid_parameters("status must be failed"));
    }
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid_parameters("limit must be between 1 and 500"));
    }
    let store = state.store.clone();
    let events = blocking(move || Ok(store.failed_stripe_events(limit)?)).await?;
    Ok(HttpResponse::Ok().json(crate::schemas::FailedEventList { events }))
}

#[utoipa::path(post, path = "/admin/v1/stripe-events/{id}/reprocess", operation_id = "reprocessStripeEvent", summary = "Apply a kept Stripe event again", tag = "operators", params(("id" = String, Path, description = "the Stripe event's id")), responses((status = 200, description = "applied now", body = crate::schemas::EventOutcome), (status = 403, description = "FORBIDDEN: needs admin", body = crate::error::ErrorBody), (status = 404, description = "NOT_FOUND: no failed event with that id", body = crate::error::ErrorBody), (status = 500, description = "still cannot be applied (kept)", body = crate::error::ErrorBody)), security(("operator" = [])))]
pub async fn reprocess_stripe_event(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = auth::operator(&req, &state, Role::Admin).await?;
    let id = path.into_inner();
    let outcome = apply_again(&state, &by, id.clone()).await?;
    Ok(HttpResponse::Ok().json(crate::schemas::EventOutcome { id: Some(id), received: None, outcome }))
}

/// A Stripe event kept as failed, applied again (by an admin, once the configuration is fixed).
pub async fn apply_again(
    state: &AppState,
    by: &credits_domain::operator::Operator,
    id: String,
) -> Result<String, ApiError> {
    let store = state.store.clone();
    let lookup = id.clone();
    let payload = blocking(move || Ok(store.stripe_event_payload(&lookup)?))
        .await?
        .ok_or_else(|| ApiError::not_found("no Stripe event kept as failed with that id"))?;
    let event = state.webhooks.decode_verified(payload.as_bytes()).map_err(|e| {
        tracing::error!(event = %id, cause = %e, "a kept Stripe event no longer reads");
        ApiError::internal()
    })?;
    tracing::info!(event = %id, operator = %by.name, "Stripe event applied again by an admin");
    crate::webhooks::apply(state, event).await
}
