//! `GET /v1/plans`, `/v1/models`, `/v1/topup-packs`: the catalog, open to anyone.

use actix_web::{HttpResponse, web};

use crate::schemas::{ModelList, ModelView, PackList, PlanList};
use crate::state::AppState;

#[utoipa::path(get, path = "/v1/plans", operation_id = "listPlans", summary = "The plans, in rank order", tag = "catalog", responses((status = 200, description = "the plans, in rank order", body = crate::schemas::PlanList)))]
pub async fn plans(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(PlanList { plans: state.catalog.plans().to_vec() })
}

#[utoipa::path(get, path = "/v1/models", operation_id = "listModels", summary = "The models with pricing, limits and trials", tag = "catalog", responses((status = 200, description = "the models with pricing, limits and trials", body = crate::schemas::ModelList)))]
pub async fn models(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(ModelList { models: state.catalog.models().iter().map(ModelView::from).collect() })
}

#[utoipa::path(get, path = "/v1/topup-packs", operation_id = "listTopupPacks", summary = "The top-up packs", tag = "catalog", responses((status = 200, description = "the top-up packs", body = crate::schemas::PackList)))]
pub async fn topup_packs(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(PackList { packs: state.catalog.packs().to_vec() })
}
