//! R22 `GET, PUT /v1/auto-topup`, R23 `GET, PUT /v1/alerts`, and section 9's webhook endpoints
//! (`POST, GET /v1/webhook-endpoints`, `DELETE /v1/webhook-endpoints/{id}`,
//! `GET /v1/webhook-endpoints/{id}/deliveries`); canvas channel.

use std::net::IpAddr;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use credits_domain::notify::autotopup::AutoTopupRequest;
use credits_domain::notify::store::NewEndpoint;
use credits_domain::notify::webhooks::{EndpointRequest, check_target, validate_endpoint};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth;
use crate::edge::{json_value, path_id, typed};
use crate::error::ApiError;
use crate::state::AppState;

/// The most attempts `GET …/deliveries` lists, newest first.
const DELIVERIES_LISTED: i64 = 200;
/// How long registration waits for a host name to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// R22: auto top-up settings. Left out: kept as they were (`enabled` is always given).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutAutoTopup {
    enabled: bool,
    /// Credits: a capture that leaves `available` below this starts an auto top-up.
    threshold: Option<i64>,
    /// The pack bought (`GET /v1/topup-packs`).
    #[schema(example = "small")]
    pack: Option<String>,
    /// The most a calendar month (UTC), 1 to 31; 4 when never set.
    monthly_limit: Option<i64>,
}

/// R23: the low-balance threshold; null turns the low-balance alert off.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutAlerts {
    #[serde(deserialize_with = "present")]
    low_balance_threshold: Option<i64>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Option::<i64>::deserialize(d)
}

/// Section 9: a new endpoint.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    /// `https://…`, reaching a public address.
    #[schema(example = "https://example.com/hooks/credits")]
    url: String,
    /// The event types sent to it.
    #[schema(example = json!(["balance.low", "credits.granted"]))]
    events: Vec<String>,
    description: Option<String>,
}

#[utoipa::path(get, path = "/v1/auto-topup", operation_id = "getAutoTopup", summary = "Auto top-up settings and whether a card is saved", tag = "notify",
    responses((status = 200, description = "R22: the settings, `card_saved`, this month's count and the last attempt", body = credits_domain::notify::store::AutoTopupView)),
    security(("canvas" = [])))]
pub async fn auto_topup(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = auth::canvas(&req, &state).await?;
    let view = state.call(move |store, now| Ok(store.auto_topup(caller.account, now)?)).await?;
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(put, path = "/v1/auto-topup", operation_id = "setAutoTopup", summary = "Turn auto top-up on or off", tag = "notify",
    request_body = PutAutoTopup,
    responses((status = 200, description = "the settings as kept", body = credits_domain::notify::store::AutoTopupView),
        (status = 422, description = "INVALID_PARAMETERS: no saved card, an unknown pack, a threshold or limit out of range", body = crate::error::ErrorBody)),
    security(("canvas" = [])))]
pub async fn set_auto_topup(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth::canvas(&req, &state).await?;
    let input: PutAutoTopup = typed(&json_value(&body)?)?;
    let request = AutoTopupRequest {
        enabled: input.enabled,
        threshold: input.threshold,
        pack: input.pack,
        monthly_limit: input.monthly_limit,
    };
    let _inside = state.gate.enter(caller.account).await?;
    let view = state.call(move |store, now| Ok(store.set_auto_topup(caller.account, &request, now)?)).await?;
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(get, path = "/v1/alerts", operation_id = "getAlerts", summary = "The low-balance threshold", tag = "notify",
    responses((status = 200, description = "R23: the threshold and where the balance stands", body = credits_domain::notify::store::AlertsView)),
    security(("canvas" = [])))]
pub async fn alerts(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = auth::canvas(&req, &state).await?;
    let view = state.call(move |store, _| Ok(store.alerts(caller.account)?)).await?;
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(put, path = "/v1/alerts", operation_id = "setAlerts", summary = "Set or clear the low-balance threshold", tag = "notify",
    request_body = PutAlerts,
    responses((status = 200, description = "the threshold as kept; setting it sends nothing (it is no crossing)", body = credits_domain::notify::store::AlertsView),
        (status = 422, description = "INVALID_PARAMETERS: not a positive whole number of credits or null", body = crate::error::ErrorBody)),
    security(("canvas" = [])))]
pub async fn set_alerts(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth::canvas(&req, &state).await?;
    let input: PutAlerts = typed(&json_value(&body)?)?;
    let threshold =
        credits_domain::notify::alerts::threshold(input.low_balance_threshold).map_err(ApiError::invalid_parameters)?;
    let _inside = state.gate.enter(caller.account).await?;
    let view = state.call(move |store, now| Ok(store.set_alerts(caller.account, threshold, now)?)).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Section 9: a URL's host may not lead inside (unless `webhooks.allow_private`). An address is
/// judged as it is; a name is resolved and refused when none of its addresses may be a target.
/// Deliveries judge again, and connect only to an address they judged (DNS rebinding).
async fn check_host(url: &url::Url, allow_private: bool) -> Result<(), ApiError> {
    let refused = |why: String| ApiError::invalid_parameters(format!("url may not be a webhook target: {why}"));
    match url.host() {
        Some(url::Host::Ipv4(ip)) => check_target(IpAddr::V4(ip), allow_private).map_err(|e| refused(e.to_string())),
        Some(url::Host::Ipv6(ip)) => check_target(IpAddr::V6(ip), allow_private).map_err(|e| refused(e.to_string())),
        Some(url::Host::Domain(name)) => {
            let port = url.port_or_known_default().unwrap_or(443);
            let lookup = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name, port))).await;
            let addrs: Vec<_> = match lookup {
                Ok(Ok(addrs)) => addrs.collect(),
                Ok(Err(e)) => return Err(refused(format!("{name} does not resolve ({e})"))),
                Err(_) => return Err(refused(format!("{name} did not resolve in time"))),
            };
            let mut last = None;
            for addr in &addrs {
                match check_target(addr.ip(), allow_private) {
                    Ok(()) => return Ok(()),
                    Err(e) => last = Some(e.to_string()),
                }
            }
            Err(refused(last.unwrap_or_else(|| format!("{name} has no address"))))
        }
        None => Err(ApiError::invalid_parameters("url must name a host")),
    }
}

#[utoipa::path(post, path = "/v1/webhook-endpoints", operation_id = "createWebhookEndpoint", summary = "Register a webhook endpoint; its signing secret is shown once", tag = "notify",
    request_body = CreateEndpoint,
    responses((status = 201, description = "the endpoint with its signing `secret` (`whsec_…`), shown this once", body = crate::schemas::CreatedEndpoint),
        (status = 422, description = "INVALID_PARAMETERS: not https, a private or unresolvable target, an unknown event type, or already 10 endpoints", body = crate::error::ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE: webhooks.encryption_key is not configured", body = crate::error::ErrorBody)),
    security(("canvas" = [])))]
pub async fn create_endpoint(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth::canvas(&req, &state).await?;
    let input: CreateEndpoint = typed(&json_value(&body)?)?;
    let (endpoint, secret) = new_endpoint(&state, &input.url, &input.events, input.description).await?;
    let _inside = state.gate.enter(caller.account).await?;
    let view = state.call(move |store, now| Ok(store.create_endpoint(caller.account, &endpoint, now)?)).await?;
    Ok(HttpResponse::Created().json(crate::schemas::CreatedEndpoint::new(view, secret)))
}

/// A new endpoint checked as section 9 asks (https, a public target, known event types), with
/// its secret made and sealed: the endpoint to keep, and the `whsec_` secret to show once.
pub async fn new_endpoint(
    state: &AppState,
    url: &str,
    events: &[String],
    description: Option<String>,
) -> Result<(NewEndpoint, String), ApiError> {
    let parsed =
        url::Url::parse(url.trim()).map_err(|e| ApiError::invalid_parameters(format!("url is not a URL: {e}")))?;
    let policy = state.webhook_policy;
    let events = validate_endpoint(
        &EndpointRequest {
            url: parsed.as_str(),
            scheme: parsed.scheme(),
            host: parsed.host_str(),
            events,
            description: description.as_deref(),
        },
        policy.allow_insecure,
    )
    .map_err(ApiError::invalid_parameters)?;
    check_host(&parsed, policy.allow_private).await?;
    let Some(keeper) = state.secrets.clone() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            "webhook endpoints cannot be registered: this instance has no webhooks.encryption_key",
        ));
    };
    let id = uuid::Uuid::now_v7();
    let (secret, sealed) = keeper.issue(id);
    let endpoint = NewEndpoint {
        id,
        url: parsed.to_string(),
        events,
        description: description.filter(|d| !d.trim().is_empty()),
        secret_sealed: sealed,
    };
    Ok((endpoint, secret))
}

#[utoipa::path(get, path = "/v1/webhook-endpoints", operation_id = "listWebhookEndpoints", summary = "The account's webhook endpoints", tag = "notify",
    responses((status = 200, description = "the endpoints, without their secrets", body = crate::schemas::EndpointList)),
    security(("canvas" = [])))]
pub async fn endpoints(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = auth::canvas(&req, &state).await?;
    let endpoints = state.call(move |store, _| Ok(store.endpoints(caller.account)?)).await?;
    Ok(HttpResponse::Ok().json(crate::schemas::EndpointList { endpoints }))
}

#[utoipa::path(delete, path = "/v1/webhook-endpoints/{id}", operation_id = "deleteWebhookEndpoint", summary = "Remove a webhook endpoint", tag = "notify",
    params(("id" = String, Path, description = "the endpoint's id")),
    responses((status = 204, description = "removed: nothing more is sent to it"),
        (status = 404, description = "no such endpoint of this account", body = crate::error::ErrorBody)),
    security(("canvas" = [])))]
pub async fn delete_endpoint(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth::canvas(&req, &state).await?;
    let id: uuid::Uuid = path_id(&path, "webhook endpoint")?;
    state.call(move |store, _| Ok(store.delete_endpoint(caller.account, id)?)).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/v1/webhook-endpoints/{id}/deliveries", operation_id = "listWebhookDeliveries", summary = "The attempts to deliver events to an endpoint", tag = "notify",
    params(("id" = String, Path, description = "the endpoint's id")),
    responses((status = 200, description = "its attempts, newest first (at most 200), and deliveries not yet attempted", body = crate::schemas::DeliveryList),
        (status = 404, description = "no such endpoint of this account", body = crate::error::ErrorBody)),
    security(("canvas" = [])))]
pub async fn deliveries(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth::canvas(&req, &state).await?;
    let id: uuid::Uuid = path_id(&path, "webhook endpoint")?;
    let deliveries = state.call(move |store, _| Ok(store.deliveries(caller.account, id, DELIVERIES_LISTED)?)).await?;
    Ok(HttpResponse::Ok().json(crate::schemas::DeliveryList { deliveries }))
}
