//! `POST /webhooks/stripe`: the signature checked over the raw body, then the event applied once
//! (SPEC section 5).

use actix_web::{HttpRequest, HttpResponse, web};
use credits_domain::payments::{Applied, ApplyError, StripeEvent, WebhookError, WebhookFailure, WebhookService};

use crate::edge::blocking;
use crate::error::ApiError;
use crate::schemas::EventOutcome;
use crate::state::AppState;

/// The largest webhook body read (Stripe's events with long invoices run past 64 KiB).
pub const MAX_WEBHOOK_BYTES: usize = 1024 * 1024;

#[utoipa::path(post, path = "/webhooks/stripe", operation_id = "receiveStripeEvent", summary = "Stripe's signed webhook deliveries", tag = "webhooks",
    params(("Stripe-Signature" = String, Header, description = "t=<unix>,v1=<HMAC-SHA256>; any v1 may match any configured secret; 300 s tolerance")),
    responses((status = 200, description = "applied, replayed (applied before) or ignored (a type this service does not act on)", body = crate::schemas::EventOutcome),
        (status = 400, description = "a missing or bad signature, or a body that is no event: nothing changed", body = crate::error::ErrorBody),
        (status = 500, description = "applying failed and nothing was written: Stripe retries", body = crate::error::ErrorBody)))]
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
    let outcome = apply(&state, event).await?;
    Ok(HttpResponse::Ok().json(EventOutcome { id: None, received: Some(true), outcome }))
}

/// Apply a verified event (`WebhookService`): its outcome, or 500 so Stripe sends it again.
pub async fn apply(state: &AppState, event: StripeEvent) -> Result<String, ApiError> {
    let (store, clock, gateway) = (state.store.clone(), state.clock.clone(), state.payments.clone());
    let (id, event_type) = (event.id.clone(), event.event_type.clone());
    let applied = blocking(move || {
        let service = WebhookService { store: &*store, gateway: &*gateway };
        Ok(service.apply(event, clock.now()?))
    })
    .await
    .map_err(|e| {
        tracing::error!(event = %id, %event_type, error = %e, "applying a Stripe event failed; Stripe will retry");
        ApiError::internal()
    })?;
    let applied = match applied {
        Ok(applied) => applied,
        Err(WebhookFailure::Apply(ApplyError::Unapplicable(why))) => {
            // Section 5: kept for an admin (/admin/v1/stripe-events), answered 500 so Stripe retries.
            tracing::error!(event = %id, %event_type, cause = %why, "a Stripe event the configuration cannot apply; kept for an admin");
            state.metrics.webhook_failed(&event_type);
            return Err(ApiError::internal());
        }
        Err(e) => {
            tracing::error!(event = %id, %event_type, error = %e, "applying a Stripe event failed; Stripe will retry");
            return Err(ApiError::internal());
        }
    };
    let outcome = applied.to_string();
    tracing::info!(event = %id, %event_type, %outcome, "Stripe event");
    state.metrics.webhook(&event_type, matches!(applied, Applied::Replay));
    Ok(outcome)
}
