//! `POST /v1/checkout/subscription` and `/v1/checkout/topup` (canvas channel only). The Stripe
//! adapter comes with the Stripe issue; until then both answer 503 PAYMENTS_UNAVAILABLE after
//! authentication, so API keys are already refused (R8) and nothing is written.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::auth;
use crate::edge::json_value;
use crate::error::ApiError;
use crate::state::AppState;

fn unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "PAYMENTS_UNAVAILABLE",
        "checkout is not available on this service yet",
    )
}

#[utoipa::path(post, path = "/v1/checkout/subscription", operation_id = "post_v1_checkout_subscription", tag = "checkout",
    responses((status = 503, description = "PAYMENTS_UNAVAILABLE: Stripe is not connected yet", body = crate::openapi::ErrorBody),
        (status = 403, description = "FORBIDDEN on the api channel", body = crate::openapi::ErrorBody)),
    security(("canvas" = [], "account_id" = [])))]
pub async fn subscription(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    auth::canvas(&req, &state).await?;
    json_value(&body)?;
    Err(unavailable())
}

#[utoipa::path(post, path = "/v1/checkout/topup", operation_id = "post_v1_checkout_topup", tag = "checkout",
    responses((status = 503, description = "PAYMENTS_UNAVAILABLE: Stripe is not connected yet", body = crate::openapi::ErrorBody),
        (status = 403, description = "FORBIDDEN on the api channel", body = crate::openapi::ErrorBody)),
    security(("canvas" = [], "account_id" = [])))]
pub async fn topup(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    auth::canvas(&req, &state).await?;
    json_value(&body)?;
    Err(unavailable())
}
