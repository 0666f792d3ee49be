//! R22 `GET, PUT /v1/auto-topup`, R23 `GET, PUT /v1/alerts`, and section 9's webhook endpoints
//! (`POST, GET /v1/webhook-endpoints`, `DELETE /v1/webhook-endpoints/{id}`,
//! `GET /v1/webhook-endpoints/{id}/deliveries`); canvas channel.

use std::net::IpAddr;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use credits_domain::notify::autotopup::AutoTopupRequest;
use credits_domain::notify::service::{EndpointInput, NotifyService, Resolved};
use credits_domain::notify::store::EndpointView;
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
    let view = state.notify(caller.account, false, move |notify, now| notify.auto_topup(caller.account, now)).await?;
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
    let view = state
        .notify(caller.account, true, move |notify, now| notify.set_auto_topup(caller.account, &request, now))
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(get, path = "/v1/alerts", operation_id = "getAlerts", summary = "The low-balance threshold", tag = "notify",
    responses((status = 200, description = "R23: the threshold and where the balance stands", body = credits_domain::notify::store::AlertsView)),
    security(("canvas" = [])))]
pub async fn alerts(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = auth::canvas(&req, &state).await?;
    let view = state.notify(caller.account, false, move |notify, _| notify.alerts(caller.account)).await?;
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
    let raw = input.low_balance_threshold;
    let view =
        state.notify(caller.account, true, move |notify, now| notify.set_alerts(caller.account, raw, now)).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Resolves a webhook URL's host name (none when it is an address): the I/O the notify use case
/// leaves to its adapter, bounded by `RESOLVE_TIMEOUT`. Deliveries resolve again, and connect
/// only to an address they judged (DNS rebinding).
async fn resolve(url: &url::Url) -> Option<Resolved> {
    let Some(url::Host::Domain(name)) = url.host() else { return None };
    let port = url.port_or_known_default().unwrap_or(443);
    let lookup = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name, port))).await;
    Some(match lookup {
        Ok(Ok(addrs)) => Ok(addrs.map(|a| a.ip()).collect()),
        Ok(Err(e)) => Err(format!("{name} does not resolve ({e})")),
        Err(_) => Err(format!("{name} did not resolve in time")),
    })
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
    let (view, secret) = create(&state, caller.account, &input.url, input.events, input.description).await?;
    Ok(HttpResponse::Created().json(crate::schemas::CreatedEndpoint::new(view, secret)))
}

/// Section 9's endpoint registration, for the API and the billing page: the URL parsed, checked
/// by the notify use case, its host resolved here, then judged, sealed and kept there. Returns
/// the endpoint and its `whsec_` secret, shown once.
pub async fn create(
    state: &AppState,
    account: credits_domain::ids::AccountId,
    url: &str,
    events: Vec<String>,
    description: Option<String>,
) -> Result<(EndpointView, String), ApiError> {
    let parsed =
        url::Url::parse(url.trim()).map_err(|e| ApiError::invalid_parameters(format!("url is not a URL: {e}")))?;
    let address = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        _ => None,
    };
    let input = EndpointInput {
        url: parsed.as_str(),
        scheme: parsed.scheme(),
        host: parsed.host_str(),
        address,
        events: &events,
        description,
    };
    // Checks that read nothing: made here, before the lookup.
    let notify = NotifyService { store: state.store.as_ref(), secrets: None, policy: state.webhook_policy };
    let checked = notify.check_endpoint(&input)?;
    let resolved = resolve(&parsed).await;
    state.notify(account, true, move |notify, now| notify.create_endpoint(account, checked, resolved, now)).await
}

#[utoipa::path(get, path = "/v1/webhook-endpoints", operation_id = "listWebhookEndpoints", summary = "The account's webhook endpoints", tag = "notify",
    responses((status = 200, description = "the endpoints, without their secrets", body = crate::schemas::EndpointList)),
    security(("canvas" = [])))]
pub async fn endpoints(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = auth::canvas(&req, &state).await?;
    let endpoints = state.notify(caller.account, false, move |notify, _| notify.endpoints(caller.account)).await?;
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
    state.notify(caller.account, true, move |notify, _| notify.delete_endpoint(caller.account, id)).await?;
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
    let deliveries = state
        .notify(caller.account, false, move |notify, _| notify.deliveries(caller.account, id, DELIVERIES_LISTED))
        .await?;
    Ok(HttpResponse::Ok().json(crate::schemas::DeliveryList { deliveries }))
}
