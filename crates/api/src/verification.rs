//! Business verification (SPEC section 6): the account's request (canvas channel), and the sales
//! team's queue and decisions.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use credits_domain::operator::Role;
use credits_domain::verification::{Decision, RawRequest, VerificationRequest, VerificationStatus};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth;
use crate::edge::{blocking, idempotency_key, json_value, path_id, respond, typed};
use crate::error::ApiError;
use crate::state::AppState;

/// A business-verification request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitVerification {
    company_name: String,
    #[schema(example = "https://acme.example")]
    website: String,
    /// ISO 3166-1 alpha-2
    #[schema(example = "DE")]
    country: String,
    tax_id: Option<String>,
    contact_name: String,
    contact_email: String,
    intended_use: String,
    expected_monthly_credits: Option<i64>,
}

#[utoipa::path(post, path = "/v1/business-verification", operation_id = "submitBusinessVerification", summary = "Submit a business-verification request", tag = "business verification",
    request_body = SubmitVerification,
    params(("Idempotency-Key" = Option<String>, Header, description = "R11")),
    responses((status = 201, description = "the request, pending; the sales team and the account are mailed", body = credits_domain::verification::VerificationView),
        (status = 409, description = "CONFLICT: a request is pending, the account is approved, or on Business or Enterprise", body = crate::error::ErrorBody),
        (status = 422, description = "INVALID_PARAMETERS", body = crate::error::ErrorBody)),
    security(("canvas" = [], "account_id" = [])))]
pub async fn submit(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = auth::canvas(&req, &state).await?;
    let value = json_value(&body)?;
    let input: SubmitVerification = typed(&value)?;
    let request = VerificationRequest::new(RawRequest {
        company_name: input.company_name,
        website: input.website,
        country: input.country,
        tax_id: input.tax_id,
        contact_name: input.contact_name,
        contact_email: input.contact_email,
        intended_use: input.intended_use,
        expected_monthly_credits: input.expected_monthly_credits,
    })
    .map_err(ApiError::invalid_parameters)?;
    let idem = idempotency_key(&req, caller.scope(), &value, StatusCode::CREATED)?;
    let _inside = state.gate.enter(caller.account).await?;
    let (store, clock, mail) = (state.store.clone(), state.clock.clone(), state.mail.clone());
    let result = blocking(move || {
        Ok(store.submit_verification(caller.account, &request, &mail, clock.now()?, idem.as_ref())?)
    })
    .await?;
    Ok(respond(StatusCode::CREATED, result))
}

#[utoipa::path(get, path = "/v1/business-verification", operation_id = "getBusinessVerification", summary = "The account's latest business-verification request", tag = "business verification",
    responses((status = 200, description = "the latest request: pending, approved, or rejected with its reason", body = credits_domain::verification::VerificationView),
        (status = 404, description = "no request was ever submitted", body = crate::error::ErrorBody)),
    security(("canvas" = [], "account_id" = [])))]
pub async fn status(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = auth::canvas(&req, &state).await?;
    let store = state.store.clone();
    let latest = blocking(move || Ok(store.latest_verification(caller.account)?)).await?;
    let view = latest.ok_or_else(|| ApiError::not_found("no business-verification request was submitted"))?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Deserialize)]
struct QueueParams {
    status: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/admin/v1/business-verifications", operation_id = "listBusinessVerifications", summary = "The sales team's queue of requests", tag = "business verification",
    params(("status" = Option<String>, Query, description = "pending, approved or rejected"),
        ("limit" = Option<i64>, Query, description = "1-200, default 50"), ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "requests, oldest first, and next_cursor", body = credits_domain::ports::VerificationPage),
        (status = 403, description = "FORBIDDEN: needs sales", body = crate::error::ErrorBody)),
    security(("operator" = [])))]
pub async fn queue(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    auth::operator(&req, &state, Role::Sales).await?;
    let params = crate::edge::query::<QueueParams>(&req)?;
    let status = match params.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            VerificationStatus::parse(s)
                .ok_or_else(|| ApiError::invalid_parameters("status must be pending, approved or rejected"))?,
        ),
    };
    let limit = match &params.limit {
        None => 50,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=200).contains(n))
            .ok_or_else(|| ApiError::invalid_parameters("limit must be between 1 and 200"))?,
    };
    let cursor = params.cursor.clone().filter(|c| !c.is_empty());
    let store = state.store.clone();
    let page = blocking(move || Ok(store.verification_queue(status, limit, cursor.as_deref())?)).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// A sales decision's body: an optional note to approve, a reason to reject.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    note: Option<String>,
    reason: Option<String>,
}

async fn decide(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
    approve: bool,
) -> Result<HttpResponse, ApiError> {
    let by = auth::operator(&req, &state, Role::Sales).await?;
    let id: uuid::Uuid = path_id(&path, "business-verification request")?;
    let input: DecisionBody = typed(&json_value(&body)?)?;
    let decision =
        if approve { Decision::approve(input.note.as_deref()) } else { Decision::reject(input.reason.as_deref()) }
            .map_err(ApiError::invalid_parameters)?;
    let view = state
        .verifications()
        .call(move |verifications, now| Ok(verifications.decide_verification(&by, id, &decision, now)?))
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(post, path = "/admin/v1/business-verifications/{id}/approve", operation_id = "approveBusinessVerification", summary = "Approve a request", tag = "business verification",
    request_body = DecisionBody, params(("id" = String, Path, description = "the request's id")),
    responses((status = 200, description = "approved: the account may check out Business; it is mailed", body = credits_domain::verification::VerificationView),
        (status = 409, description = "CONFLICT: already decided", body = crate::error::ErrorBody)),
    security(("operator" = [])))]
pub async fn approve(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    decide(req, path, body, state, true).await
}

#[utoipa::path(post, path = "/admin/v1/business-verifications/{id}/reject", operation_id = "rejectBusinessVerification", summary = "Reject a request, with a reason", tag = "business verification",
    request_body = DecisionBody, params(("id" = String, Path, description = "the request's id")),
    responses((status = 200, description = "rejected, with its reason; the account is mailed and may submit again", body = credits_domain::verification::VerificationView),
        (status = 409, description = "CONFLICT: already decided", body = crate::error::ErrorBody),
        (status = 422, description = "INVALID_PARAMETERS: no reason", body = crate::error::ErrorBody)),
    security(("operator" = [])))]
pub async fn reject(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    decide(req, path, body, state, false).await
}
