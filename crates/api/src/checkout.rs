//! `POST /v1/checkout/subscription` and `/v1/checkout/topup` (canvas channel only), and
//! `POST /webhooks/stripe`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use credits_domain::idempotency::{IdempotencyKey, Recall, Replayable};
use credits_domain::ids::AccountId;
use credits_domain::payments::{
    CheckoutContext, CheckoutRecord, CheckoutRefusal, CheckoutView, PaymentError, PlanCheckout, ReturnUrls,
    SessionMode, SessionRequest, SubscriptionChangeView, WebhookError, decide_pack_checkout, decide_plan_checkout,
};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::auth;
use crate::edge::{blocking, idempotency_key, json_value, respond, typed};
use crate::error::ApiError;
use crate::state::AppState;

impl From<PaymentError> for ApiError {
    fn from(e: PaymentError) -> ApiError {
        match e {
            PaymentError::NotFound => ApiError::not_found("no such account"),
            PaymentError::Refused(CheckoutRefusal::InvalidParameters(m)) => ApiError::invalid_parameters(m),
            PaymentError::Refused(CheckoutRefusal::BusinessVerificationRequired) => ApiError::new(
                StatusCode::FORBIDDEN,
                "BUSINESS_VERIFICATION_REQUIRED",
                "the Business plan needs an approved business verification",
            ),
            PaymentError::Refused(CheckoutRefusal::Conflict(m)) => ApiError::conflict(m),
            PaymentError::Gateway(cause) => {
                tracing::warn!(%cause, "Stripe call failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "PAYMENTS_UNAVAILABLE",
                    "payments are unavailable right now; nothing was charged; retry shortly",
                )
            }
            PaymentError::IdempotencyKeyReused => ApiError::idempotency_key_reused(),
            PaymentError::Store(s) => s.into(),
        }
    }
}

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

/// Stripe's own Idempotency-Key for the calls a request makes: derived from the client's key,
/// so a retried request makes no second session at Stripe either.
fn stripe_key(account: AccountId, what: &str, idem: Option<&IdempotencyKey>) -> String {
    match idem {
        Some(k) => format!("credits-{what}-{account}-{}", &hex::encode(Sha256::digest(k.key.as_bytes()))[..32]),
        None => format!("credits-{what}-{}", uuid::Uuid::new_v4().simple()),
    }
}

/// The account's Stripe customer: created once, kept.
fn customer(state: &AppState, ctx: &CheckoutContext) -> Result<String, ApiError> {
    if let Some(c) = &ctx.customer {
        return Ok(c.clone());
    }
    let made = state
        .payments
        .create_customer(ctx.account.id, &ctx.account.email, &ctx.account.name)
        .map_err(PaymentError::from)?;
    Ok(state.store.set_customer(ctx.account.id, &made)?)
}

/// R11 before anything reaches Stripe.
fn recalled(
    state: &AppState,
    idem: Option<&IdempotencyKey>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<Replayable<CheckoutView>>, ApiError> {
    let Some(key) = idem else { return Ok(None) };
    match state.store.recall(key, now)? {
        Recall::Replay(r) => Ok(Some(Replayable::Replay(r))),
        Recall::Reused => Err(ApiError::idempotency_key_reused()),
        Recall::Unused => Ok(None),
    }
}

#[utoipa::path(post, path = "/v1/checkout/subscription", operation_id = "post_v1_checkout_subscription", tag = "checkout",
    request_body = SubscriptionCheckout,
    params(("Idempotency-Key" = Option<String>, Header, description = "R11")),
    responses((status = 201, description = "checkout_url and session_id of a new Checkout Session; for an account with a live subscription, checkout_url null and the subscription's new state", body = Object),
        (status = 403, description = "BUSINESS_VERIFICATION_REQUIRED, or FORBIDDEN on the api channel", body = crate::openapi::ErrorBody),
        (status = 409, description = "CONFLICT: already on that plan", body = crate::openapi::ErrorBody),
        (status = 422, description = "INVALID_PARAMETERS: an unknown plan, a plan not sold (free, enterprise), a bad URL", body = crate::openapi::ErrorBody),
        (status = 503, description = "PAYMENTS_UNAVAILABLE", body = crate::openapi::ErrorBody)),
    security(("canvas" = [], "account_id" = [])))]
pub async fn subscription(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth::canvas(&req, &state).await?;
    let value = json_value(&body)?;
    let input: SubscriptionCheckout = typed(&value)?;
    let urls = ReturnUrls::new(&input.success_url, &input.cancel_url).map_err(PaymentError::from)?;
    let idem = idempotency_key(&req, caller.scope(), &value, StatusCode::CREATED)?;
    let state = state.into_inner();
    let account = caller.account;
    let result = blocking(move || {
        let now = state.clock.now()?;
        if let Some(replay) = recalled(&state, idem.as_ref(), now)? {
            return Ok(replay);
        }
        let ctx = state.store.checkout_context(account)?;
        let decision = decide_plan_checkout(&state.catalog, &ctx.account, &input.plan, ctx.verified, ctx.live.clone())
            .map_err(PaymentError::from)?;
        let record = match decision {
            PlanCheckout::New { plan, price_id } => {
                let request = SessionRequest {
                    account,
                    customer: customer(&state, &ctx)?,
                    mode: SessionMode::Subscription,
                    price_id: price_id.clone(),
                    item_id: plan.id.clone(),
                    urls,
                    idempotency_key: stripe_key(account, "session", idem.as_ref()),
                };
                let session = state.payments.create_session(&request).map_err(PaymentError::from)?;
                CheckoutRecord {
                    view: CheckoutView {
                        checkout_url: session.url.clone(),
                        session_id: Some(session.id.clone()),
                        subscription: None,
                    },
                    session: Some((session, SessionMode::Subscription, plan.id.clone(), price_id)),
                }
            }
            PlanCheckout::Change { plan, price_id, subscription, upgrade } => {
                let key = stripe_key(account, "change", idem.as_ref());
                state.payments.change_price(&subscription, &price_id, upgrade, &key).map_err(PaymentError::from)?;
                CheckoutRecord {
                    session: None,
                    view: CheckoutView {
                        checkout_url: None,
                        session_id: None,
                        subscription: Some(SubscriptionChangeView {
                            id: subscription.id,
                            plan: plan.id.clone(),
                            effective: if upgrade { "now" } else { "period_end" },
                        }),
                    },
                }
            }
        };
        Ok(state.store.record_checkout(account, &record, now, idem.as_ref())?)
    })
    .await?;
    Ok(respond(StatusCode::CREATED, result))
}

#[utoipa::path(post, path = "/v1/checkout/topup", operation_id = "post_v1_checkout_topup", tag = "checkout",
    request_body = TopupCheckout,
    params(("Idempotency-Key" = Option<String>, Header, description = "R11")),
    responses((status = 201, description = "checkout_url and session_id", body = Object),
        (status = 403, description = "FORBIDDEN on the api channel", body = crate::openapi::ErrorBody),
        (status = 422, description = "INVALID_PARAMETERS: an unknown pack, a bad URL", body = crate::openapi::ErrorBody),
        (status = 503, description = "PAYMENTS_UNAVAILABLE", body = crate::openapi::ErrorBody)),
    security(("canvas" = [], "account_id" = [])))]
pub async fn topup(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = auth::canvas(&req, &state).await?;
    let value = json_value(&body)?;
    let input: TopupCheckout = typed(&value)?;
    let urls = ReturnUrls::new(&input.success_url, &input.cancel_url).map_err(PaymentError::from)?;
    let idem = idempotency_key(&req, caller.scope(), &value, StatusCode::CREATED)?;
    let state = state.into_inner();
    let account = caller.account;
    let result = blocking(move || {
        let now = state.clock.now()?;
        if let Some(replay) = recalled(&state, idem.as_ref(), now)? {
            return Ok(replay);
        }
        let pack = decide_pack_checkout(&state.catalog, &input.pack).map_err(PaymentError::from)?;
        let ctx = state.store.checkout_context(account)?;
        let request = SessionRequest {
            account,
            customer: customer(&state, &ctx)?,
            mode: SessionMode::Payment,
            price_id: pack.stripe_price_id.clone(),
            item_id: pack.id.clone(),
            urls,
            idempotency_key: stripe_key(account, "session", idem.as_ref()),
        };
        let session = state.payments.create_session(&request).map_err(PaymentError::from)?;
        let record = CheckoutRecord {
            view: CheckoutView {
                checkout_url: session.url.clone(),
                session_id: Some(session.id.clone()),
                subscription: None,
            },
            session: Some((session, SessionMode::Payment, pack.id.clone(), pack.stripe_price_id.clone())),
        };
        Ok(state.store.record_checkout(account, &record, now, idem.as_ref())?)
    })
    .await?;
    Ok(respond(StatusCode::CREATED, result))
}

/// The largest webhook body read (Stripe's events with long invoices run past 64 KiB).
pub const MAX_WEBHOOK_BYTES: usize = 1024 * 1024;

#[utoipa::path(post, path = "/webhooks/stripe", operation_id = "post_webhooks_stripe", tag = "checkout",
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
    let outcome = match &applied {
        credits_domain::payments::Applied::Done(o) | credits_domain::payments::Applied::Ignored(o) => o.clone(),
        credits_domain::payments::Applied::Replay => "already applied".to_string(),
    };
    tracing::info!(event = %id, %event_type, %outcome, "Stripe event");
    state.metrics.webhook(&event_type, matches!(applied, credits_domain::payments::Applied::Replay));
    Ok(HttpResponse::Ok().json(json!({ "received": true, "outcome": outcome })))
}
