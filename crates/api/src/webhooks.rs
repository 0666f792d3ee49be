//! `POST /webhooks/stripe`: the signature checked over the raw body, then the event applied once
//! (SPEC section 5).

use actix_web::{HttpRequest, HttpResponse, web};
use credits_domain::payments::{Applied, WebhookError};
use serde_json::json;

use crate::edge::blocking;
use crate::error::ApiError;
use crate::state::AppState;

/// The largest webhook body read (Stripe's events with long invoices run past 64 KiB).
pub const MAX_WEBHOOK_BYTES: usize = 1024 * 1024;

#[utoipa::path(post, path = "/webhooks/stripe", operation_id = "post_webhooks_stripe", tag = "webhooks",
    params(("Stripe-Signature" = String, Header, description = "t=<unix>,v1=<HMAC-SHA256>; any v1 may match any configured secret; 300 s tolerance")),
    responses((status = 200, description = "applied, replayed (applied before) or ignored (a type this service does not act on)", body = Object),
        (status = 400, description = "a missing or bad signature, or a body that is no event: nothing changed", body = crate::openapi::ErrorBody),
        (status = 500, description = "applying failed and nothing was written: Stripe retries", body = crate::openapi::ErrorBody)))]
pub async fn stripe_webhook(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let signature = req
        .headers()
        .get("Stripe-Signature")
        .and_then(|h| h.to_str().ok())
        .ok_or_else(|| ApiError::invalid_request("a Stripe-Signature header is required"))?;
    let event = state.webhooks.decode(&body, signature).map_err(|e| {
        tracing::warn!(cause = %e, "webhook refused");
        match e {
            WebhookError::BadSignature | WebhookError::Expired => {
                ApiError::invalid_request("the Stripe-Signature does not verify")
            }
            WebhookError::Malformed(m) => ApiError::invalid_request(format!("the body is not a Stripe event: {m}")),
        }
    })?;
    let (store, clock) = (state.store.clone(), state.clock.clone());
    let (id, event_type) = (event.id.clone(), event.event_type.clone());
    let applied = blocking(move || Ok(store.apply_stripe_event(&event, clock.now()?)?)).await.map_err(|e| {
        tracing::error!(event = %id, %event_type, error = %e, "applying a Stripe event failed; Stripe will retry");
        ApiError::internal()
    })?;
    let outcome = applied.to_string();
    tracing::info!(event = %id, %event_type, %outcome, "Stripe event");
    state.metrics.webhook(&event_type, matches!(applied, Applied::Replay));
    Ok(HttpResponse::Ok().json(json!({ "received": true, "outcome": outcome })))
}
