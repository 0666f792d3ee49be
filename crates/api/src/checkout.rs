//! `POST /v1/checkout/subscription` and `/v1/checkout/topup` (canvas channel only): parse, call
//! the checkout use case (`credits_domain::payments::CheckoutService`), answer.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use credits_domain::payments::ReturnUrls;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth;
use crate::edge::{idempotency_key, json_value, respond, typed};
use crate::error::ApiError;
use crate::state::AppState;

/// A plan to subscribe to, or change to.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionCheckout {
    #[schema(example = "pro")]
    plan: String,
    success_url: String,
    cancel_url: String,
}

/// A top-up pack to buy.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopupCheckout {
    #[schema(example = "small")]
    pack: String,
    success_url: String,
    cancel_url: String,
}

#[utoipa::path(post, path = "/v1/checkout/subscription", operation_id = "createSubscriptionCheckout", summary = "Subscribe to a plan, or change the live subscription's plan", tag = "checkout",
    request_body = SubscriptionCheckout,
    params(("Idempotency-Key" = Option<String>, Header, description = "R11")),
    responses((status = 201, description = "checkout_url and session_id of a new Checkout Session; for an account with a live subscription, checkout_url null and the subscription's new state", body = credits_domain::payments::CheckoutView),
        (status = 403, description = "BUSINESS_VERIFICATION_REQUIRED, or FORBIDDEN on the api channel", body = crate::error::ErrorBody),
        (status = 409, description = "CONFLICT: already on that plan", body = crate::error::ErrorBody),
        (status = 422, description = "INVALID_PARAMETERS: an unknown plan, a plan not sold (free, enterprise), a bad URL", body = crate::error::ErrorBody),
        (status = 503, description = "PAYMENTS_UNAVAILABLE", body = crate::error::ErrorBody)),
    security(("canvas" = [], "account_id" = [])))]
pub async fn subscription(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth::canvas(&req, &state).await?;
    let value = json_value(&body)?;
    let input: SubscriptionCheckout = typed(&value)?;
    let urls = ReturnUrls::new(&input.success_url, &input.cancel_url)?;
    let idem = idempotency_key(&req, caller.scope(), &value, StatusCode::CREATED)?;
    let _inside = state.gate.enter(caller.account).await?;
    let result = state
        .checkout(move |service, now| {
            Ok(service.subscription(caller.account, &input.plan, urls, idem.as_ref(), now)?)
        })
        .await?;
    Ok(respond(StatusCode::CREATED, result))
}

#[utoipa::path(post, path = "/v1/checkout/topup", operation_id = "createTopupCheckout", summary = "Buy a top-up pack through Stripe Checkout", tag = "checkout",
    request_body = TopupCheckout,
    params(("Idempotency-Key" = Option<String>, Header, description = "R11")),
    responses((status = 201, description = "checkout_url and session_id", body = credits_domain::payments::CheckoutView),
        (status = 403, description = "FORBIDDEN on the api channel", body = crate::error::ErrorBody),
        (status = 422, description = "INVALID_PARAMETERS: an unknown pack, a bad URL", body = crate::error::ErrorBody),
        (status = 503, description = "PAYMENTS_UNAVAILABLE", body = crate::error::ErrorBody)),
    security(("canvas" = [], "account_id" = [])))]
pub async fn topup(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = auth::canvas(&req, &state).await?;
    let value = json_value(&body)?;
    let input: TopupCheckout = typed(&value)?;
    let urls = ReturnUrls::new(&input.success_url, &input.cancel_url)?;
    let idem = idempotency_key(&req, caller.scope(), &value, StatusCode::CREATED)?;
    let _inside = state.gate.enter(caller.account).await?;
    let result = state
        .checkout(move |service, now| Ok(service.topup(caller.account, &input.pack, urls, idem.as_ref(), now)?))
        .await?;
    Ok(respond(StatusCode::CREATED, result))
}

#[utoipa::path(get, path = "/v1/invoices", operation_id = "listInvoices", summary = "The account's Stripe invoices, newest first", tag = "checkout",
    responses((status = 200, description = "the account's invoices as Stripe has them, newest first (none without a Stripe customer)", body = crate::schemas::InvoiceList),
        (status = 403, description = "FORBIDDEN on the api channel", body = crate::error::ErrorBody),
        (status = 503, description = "PAYMENTS_UNAVAILABLE", body = crate::error::ErrorBody)),
    security(("canvas" = [], "account_id" = [])))]
pub async fn invoices(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = auth::canvas(&req, &state).await?;
    let invoices = state.checkout(move |service, now| Ok(service.invoices(caller.account, now)?)).await?;
    Ok(HttpResponse::Ok().json(crate::schemas::InvoiceList { invoices }))
}

/// Where the Customer Portal returns to.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortalRequest {
    return_url: String,
}

#[utoipa::path(post, path = "/v1/stripe-portal-sessions", operation_id = "createPortalSession", summary = "Open Stripe's Customer Portal for the account", tag = "checkout",
    request_body = PortalRequest,
    responses((status = 201, description = "the url of Stripe's Customer Portal for the account's customer", body = credits_domain::payments::PortalView),
        (status = 403, description = "FORBIDDEN on the api channel", body = crate::error::ErrorBody),
        (status = 422, description = "INVALID_PARAMETERS: a bad return_url", body = crate::error::ErrorBody),
        (status = 503, description = "PAYMENTS_UNAVAILABLE", body = crate::error::ErrorBody)),
    security(("canvas" = [], "account_id" = [])))]
pub async fn portal(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = auth::canvas(&req, &state).await?;
    let input: PortalRequest = typed(&json_value(&body)?)?;
    let view = state.checkout(move |service, now| Ok(service.portal(caller.account, &input.return_url, now)?)).await?;
    Ok(HttpResponse::Created().json(view))
}
