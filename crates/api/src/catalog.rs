//! `GET /v1/plans`, `/v1/models`, `/v1/topup-packs`: the catalog, open to anyone.

use actix_web::{HttpResponse, web};
use credits_domain::catalog::{Model, Pricing};
use serde_json::{Value, json};

use crate::state::AppState;

#[utoipa::path(get, path = "/v1/plans", operation_id = "get_v1_plans", tag = "catalog", responses((status = 200, description = "the plans, in rank order", body = Object)))]
pub async fn plans(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "plans": state.catalog.plans() }))
}

fn model_view(m: &Model) -> Value {
    let parameter = match m.pricing {
        Pricing::PerImage => Some("images"),
        Pricing::PerSecond => Some("duration_seconds"),
        Pricing::PerCall => None,
    };
    json!({
        "id": m.id,
        "name": m.name,
        "pricing": m.pricing,
        "credits": m.credits,
        "min_plan": m.min_plan,
        "limits": m.limits.map(|l| json!({"parameter": parameter, "min": l.min, "max": l.max})),
        "trial": m.trial,
    })
}

#[utoipa::path(get, path = "/v1/models", operation_id = "get_v1_models", tag = "catalog", responses((status = 200, description = "the models with pricing, limits and trials", body = Object)))]
pub async fn models(state: web::Data<AppState>) -> HttpResponse {
    let models: Vec<Value> = state.catalog.models().iter().map(model_view).collect();
    HttpResponse::Ok().json(json!({ "models": models }))
}

#[utoipa::path(get, path = "/v1/topup-packs", operation_id = "get_v1_topup_packs", tag = "catalog", responses((status = 200, description = "the top-up packs", body = Object)))]
pub async fn topup_packs(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "packs": state.catalog.packs() }))
}
