//! The pages of `credits` (SPEC section 8), server-rendered with maud: the billing page an
//! account opens from the canvas, the operators' console, and the simulated payment pages that
//! play Stripe where payments are simulated. They call the same use cases as the JSON API
//! (`credits-api`'s state, edge parsing and error mapping), never SQL; no script, nothing from
//! another origin.
//!
//! - `session`: the billing page's cookie session and CSRF tokens (one module for both pages);
//! - `layout`: the frame every page shares, its headers and the stylesheet;
//! - `billing`: the billing page (its reads, the usage chart, the template, the forms);
//! - `console`: the operators' console; `simulated`: Stripe's part, played here.

mod billing;
mod console;
mod layout;
mod session;
mod simulated;

use actix_web::web;

pub use simulated::follow as follow_simulated_calls;

/// Every page route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/billing", web::get().to(billing::show))
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
        .route("/billing/members", web::post().to(billing::add_member))
        .route("/billing/members/{id}", web::post().to(billing::change_member))
        .route("/billing/members/{id}/remove", web::post().to(billing::remove_member))
        .route("/assets/app.css", web::get().to(layout::stylesheet))
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
        .route("/console/accounts/{id}/{action}", web::post().to(console::restriction));
}
