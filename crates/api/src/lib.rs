//! The HTTP API of `credits` (actix-web): routes, authentication, the one error-to-HTTP mapping.
//! Handlers parse at the edge into domain types and call the ports off the async threads.

mod accounts;
pub mod admin;
pub mod apikeys;
pub mod auth;
mod catalog;
mod checkout;
pub mod edge;
pub mod error;
pub mod gate;
pub mod members;
pub mod metrics;
pub mod notify;
pub mod openapi;
mod pages;
pub mod reads;
pub mod reports;
mod runs;
pub mod schemas;
pub mod state;
mod verification;
mod webhooks;

use actix_web::{HttpRequest, HttpResponse, web};

pub use error::{ApiError, contract_errors};
pub use metrics::Metrics;
pub use state::{AppState, Credentials, OPERATOR_TOKEN_PREFIX, new_token, token_hash};

use crate::edge::blocking;

/// Every route of the service.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics_text))
        .route("/openapi.json", web::get().to(openapi::openapi_json))
        .route("/docs", web::get().to(openapi::docs))
        .route("/docs/redoc.standalone.js", web::get().to(openapi::redoc_bundle))
        .service(
            web::resource("/webhooks/stripe")
                .app_data(web::PayloadConfig::new(webhooks::MAX_WEBHOOK_BYTES))
                .route(web::post().to(webhooks::stripe_webhook)),
        )
        .service(
            web::scope("/v1")
                .route("/plans", web::get().to(catalog::plans))
                .route("/models", web::get().to(catalog::models))
                .route("/topup-packs", web::get().to(catalog::topup_packs))
                .route("/accounts", web::post().to(accounts::create))
                .route("/account", web::get().to(accounts::show))
                .route("/balance", web::get().to(accounts::balance))
                .route("/ledger", web::get().to(accounts::ledger))
                .route("/ledger/export", web::get().to(reports::export))
                .route("/usage", web::get().to(reports::usage))
                .route("/trials", web::get().to(accounts::trials))
                .route("/quote", web::post().to(runs::quote))
                .route("/runs", web::post().to(runs::start))
                .route("/runs/{id}", web::get().to(runs::show))
                .route("/runs/{id}/complete", web::post().to(runs::complete))
                .route("/runs/{id}/cancel", web::post().to(runs::cancel))
                .route("/api-keys", web::post().to(apikeys::create))
                .route("/api-keys", web::get().to(apikeys::list))
                .route("/api-keys/{id}", web::delete().to(apikeys::revoke))
                .route("/api-keys/{id}", web::patch().to(apikeys::patch))
                .route("/members", web::post().to(members::add))
                .route("/members", web::get().to(members::list))
                .route("/members/{id}", web::patch().to(members::change))
                .route("/members/{id}", web::delete().to(members::remove))
                .route("/checkout/subscription", web::post().to(checkout::subscription))
                .route("/checkout/topup", web::post().to(checkout::topup))
                .route("/invoices", web::get().to(checkout::invoices))
                .route("/stripe-portal-sessions", web::post().to(checkout::portal))
                .route("/business-verification", web::post().to(verification::submit))
                .route("/business-verification", web::get().to(verification::status))
                .route("/billing-page-sessions", web::post().to(pages::create_link))
                .route("/auto-topup", web::get().to(notify::auto_topup))
                .route("/auto-topup", web::put().to(notify::set_auto_topup))
                .route("/alerts", web::get().to(notify::alerts))
                .route("/alerts", web::put().to(notify::set_alerts))
                .route("/webhook-endpoints", web::post().to(notify::create_endpoint))
                .route("/webhook-endpoints", web::get().to(notify::endpoints))
                .route("/webhook-endpoints/{id}", web::delete().to(notify::delete_endpoint))
                .route("/webhook-endpoints/{id}/deliveries", web::get().to(notify::deliveries)),
        )
        .service(
            web::scope("/admin/v1")
                .route("/accounts", web::get().to(admin::search))
                .route("/accounts/{id}", web::get().to(admin::account))
                .route("/accounts/{id}/adjustments", web::post().to(admin::adjust))
                .route("/accounts/{id}/enterprise", web::put().to(admin::enterprise))
                .route("/accounts/{id}/restriction", web::put().to(admin::restrict))
                .route("/accounts/{id}/restriction", web::delete().to(admin::lift_restriction))
                .route("/stripe-events", web::get().to(admin::stripe_events))
                .route("/reports/liability", web::get().to(reports::liability_report))
                .route("/stripe-events/{id}/reprocess", web::post().to(admin::reprocess_stripe_event))
                .route("/business-verifications", web::get().to(verification::queue))
                .route("/business-verifications/{id}/approve", web::post().to(verification::approve))
                .route("/business-verifications/{id}/reject", web::post().to(verification::reject))
                .route("/test-clock", web::get().to(admin::clock_now))
                .route("/test-clock", web::post().to(admin::clock_advance)),
        )
        .default_service(web::to(not_found));
}

/// Body limits for `web::Bytes` (larger bodies are refused by `edge::json_value`'s check too).
pub fn payload_config() -> web::PayloadConfig {
    web::PayloadConfig::new(edge::MAX_BODY_BYTES)
}

#[utoipa::path(get, path = "/healthz", operation_id = "getHealth", summary = "Liveness: the process answers", tag = "operations", responses((status = 200, description = "alive", body = crate::schemas::HealthView)))]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(schemas::HealthView { status: "ok", database: None })
}

#[utoipa::path(get, path = "/readyz", operation_id = "getReadiness", summary = "Readiness: the database answers", tag = "operations", responses((status = 200, description = "the database answers", body = crate::schemas::HealthView), (status = 503, description = "the database does not answer", body = crate::schemas::HealthView)))]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let store = state.store.clone();
    match blocking(move || Ok(store.ping()?)).await {
        Ok(()) => HttpResponse::Ok().json(schemas::HealthView { status: "ready", database: None }),
        Err(_) => HttpResponse::ServiceUnavailable()
            .json(schemas::HealthView { status: "unavailable", database: Some("unreachable") }),
    }
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!("no route {} {}", req.method(), req.path())))
}

#[utoipa::path(get, path = "/metrics", operation_id = "getMetrics", summary = "Prometheus metrics of this instance", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
async fn metrics_text(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let bearer = req
        .headers()
        .get("Authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    if !state.credentials.may_scrape(bearer) {
        return Err(ApiError::unauthenticated("/metrics needs the metrics token"));
    }
    // The counters are worth showing even when the database is away.
    if let Ok(stats) = state.upkeep().call(move |upkeep, now| Ok(upkeep.stats(now)?)).await {
        state.metrics.set_stats(&stats);
    }
    let out = state.metrics.text().ok_or_else(ApiError::internal)?;
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(out))
}
