//! The HTTP API of `credits` (actix-web): routes, authentication, the one error-to-HTTP mapping.
//! Handlers parse at the edge into domain types and call the ports off the async threads.

mod accounts;
mod admin;
mod apikeys;
pub mod auth;
mod billing;
mod catalog;
mod checkout;
mod console;
pub mod edge;
pub mod error;
pub mod gate;
pub mod metrics;
mod notify;
pub mod openapi;
pub mod reads;
pub mod reports;
mod runs;
pub mod schemas;
mod simulated;
pub mod state;
mod verification;
mod webhooks;

use actix_web::{HttpRequest, HttpResponse, web};

pub use error::{ApiError, contract_errors};
pub use metrics::Metrics;
pub use simulated::follow as follow_simulated_calls;
pub use state::{AppState, Credentials, OPERATOR_TOKEN_PREFIX, new_token, token_hash};

use crate::edge::blocking;

/// Every route of the service.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics::metrics))
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
                .route("/checkout/subscription", web::post().to(checkout::subscription))
                .route("/checkout/topup", web::post().to(checkout::topup))
                .route("/invoices", web::get().to(checkout::invoices))
                .route("/stripe-portal-sessions", web::post().to(checkout::portal))
                .route("/business-verification", web::post().to(verification::submit))
                .route("/business-verification", web::get().to(verification::status))
                .route("/billing-page-sessions", web::post().to(billing::create_link))
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
        .route("/billing", web::get().to(billing::show))
        .route("/billing/open", web::get().to(billing::open))
        .route("/billing/alerts", web::post().to(billing::set_alerts))
        .route("/billing/auto-topup", web::post().to(billing::set_auto_topup))
        .route("/billing/sign-out", web::post().to(billing::sign_out))
        .route("/billing/plan", web::post().to(billing::change_plan))
        .route("/billing/pack", web::post().to(billing::buy_pack))
        .route("/billing/portal", web::post().to(billing::portal))
        .route("/billing/api-keys", web::post().to(billing::api_key))
        .route("/billing/api-keys/{id}/revoke", web::post().to(billing::revoke_key))
        .route("/billing/verification", web::post().to(billing::submit_verification))
        .route("/billing/ledger.csv", web::get().to(billing::ledger_csv))
        .route("/billing/webhook-endpoints", web::post().to(billing::create_endpoint))
        .route("/billing/webhook-endpoints/{id}/delete", web::post().to(billing::delete_endpoint))
        .route("/assets/app.css", web::get().to(billing::stylesheet))
        .route("/simulated/checkout/{id}", web::get().to(simulated::checkout))
        .route("/simulated/checkout/{id}/pay", web::post().to(simulated::pay))
        .route("/simulated/checkout/{id}/decline", web::post().to(simulated::decline))
        .route("/simulated/portal/{customer}", web::get().to(simulated::portal))
        .route("/simulated/portal/{customer}/{action}", web::post().to(simulated::portal_action))
        .route("/console", web::get().to(console::home))
        .route("/console/sign-in", web::post().to(console::sign_in))
        .route("/console/sign-out", web::post().to(console::sign_out))
        .route("/console/verifications", web::get().to(console::verifications))
        .route("/console/verifications/{id}/approve", web::post().to(console::approve))
        .route("/console/verifications/{id}/reject", web::post().to(console::reject))
        .route("/console/accounts", web::get().to(console::accounts))
        .route("/console/accounts/{id}", web::get().to(console::account))
        .route("/console/accounts/{id}/adjust", web::post().to(console::adjust))
        .route("/console/accounts/{id}/enterprise", web::post().to(console::enterprise))
        .route("/console/operators", web::get().to(console::operators))
        .route("/console/operators", web::post().to(console::create_operator))
        .route("/console/operators/{id}/revoke", web::post().to(console::revoke_operator))
        .route("/console/stripe-events", web::get().to(console::stripe_events))
        .route("/console/stripe-events/{id}/reprocess", web::post().to(console::reprocess))
        .route("/console/mail", web::get().to(console::dead_mail))
        .route("/console/mail/{id}/resend", web::post().to(console::resend_mail))
        .route("/console/accounts/{id}/webhooks", web::get().to(console::webhook_deliveries))
        .route("/console/reports/liability", web::get().to(console::liability))
        .route("/console/clock", web::get().to(console::clock))
        .route("/console/clock", web::post().to(console::advance))
        .route("/console/accounts/{id}/{action}", web::post().to(console::restriction))
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
