//! The answers the handlers build themselves (lists and small envelopes), typed so that the
//! OpenAPI document names every success response; the domain's views describe themselves
//! (`credits-domain`'s `openapi` feature).

use chrono::{DateTime, Utc};
use credits_domain::apikey::ApiKeyView;
use credits_domain::catalog::{Capability, Model, Plan, Pricing, TopupPack, TrialSpec};
use credits_domain::credits::Credits;
use credits_domain::payments::{FailedEventView, InvoiceView};
use credits_domain::trial::{TrialGrant, TrialView};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ErrorObject;

/// `GET /v1/plans`.
#[derive(Serialize, ToSchema)]
pub struct PlanList {
    pub plans: Vec<Plan>,
}

/// The parameter a model's limits bound, and the range.
#[derive(Serialize, ToSchema)]
pub struct ModelLimits {
    /// `images` (per image) or `duration_seconds` (per second).
    #[schema(example = "images")]
    pub parameter: Option<&'static str>,
    pub min: i64,
    pub max: i64,
}

/// A model of the catalog as `GET /v1/models` shows it.
#[derive(Serialize, ToSchema)]
pub struct ModelView {
    #[schema(example = "flux-schnell")]
    pub id: String,
    pub name: String,
    pub pricing: Pricing,
    /// Credits per image, per second or per call.
    pub credits: Credits,
    #[schema(example = "free")]
    pub min_plan: String,
    /// `null` for a per-call model.
    pub limits: Option<ModelLimits>,
    pub trial: Option<TrialSpec>,
}

impl From<&Model> for ModelView {
    fn from(m: &Model) -> ModelView {
        let parameter = match m.pricing {
            Pricing::PerImage => Some("images"),
            Pricing::PerSecond => Some("duration_seconds"),
            Pricing::PerCall => None,
        };
        ModelView {
            id: m.id.clone(),
            name: m.name.clone(),
            pricing: m.pricing,
            credits: m.credits,
            min_plan: m.min_plan.clone(),
            limits: m.limits.map(|l| ModelLimits { parameter, min: l.min, max: l.max }),
            trial: m.trial,
        }
    }
}

/// `GET /v1/models`.
#[derive(Serialize, ToSchema)]
pub struct ModelList {
    pub models: Vec<ModelView>,
}

/// `GET /v1/topup-packs`.
#[derive(Serialize, ToSchema)]
pub struct PackList {
    pub packs: Vec<TopupPack>,
}

/// `GET /v1/trials`.
#[derive(Serialize, ToSchema)]
pub struct TrialList {
    pub trials: Vec<TrialView>,
}

/// `GET /v1/api-keys`: the account's live keys, never their secrets.
#[derive(Serialize, ToSchema)]
pub struct ApiKeyList {
    pub api_keys: Vec<ApiKeyView>,
}

/// `POST /v1/api-keys`: the new key with its secret, shown this once.
#[derive(Serialize, ToSchema)]
pub struct CreatedApiKey {
    pub id: Uuid,
    /// The secret (`ck_…`): shown once; a replay of the creation shows it no more.
    pub key: String,
    pub name: String,
    pub prefix: String,
    pub scopes: std::collections::BTreeSet<Capability>,
    pub monthly_credit_limit: Option<Credits>,
    /// R25: the member the key belongs to; `null`: the account's.
    pub member_id: Option<Uuid>,
    pub used_this_month: Credits,
    pub created_at: DateTime<Utc>,
}

impl CreatedApiKey {
    pub fn new(view: ApiKeyView, key: String) -> CreatedApiKey {
        CreatedApiKey {
            id: view.id,
            key,
            name: view.name,
            prefix: view.prefix,
            scopes: view.scopes,
            monthly_credit_limit: view.monthly_credit_limit,
            member_id: view.member_id,
            used_this_month: view.used_this_month,
            created_at: view.created_at,
        }
    }
}

/// `POST /v1/quote`: a run judged without effect.
#[derive(Serialize, ToSchema)]
pub struct QuoteView {
    pub model: String,
    pub images: Option<i64>,
    pub duration_seconds: Option<i64>,
    pub cost: Credits,
    /// Whether a run would be let through now.
    pub allowed: bool,
    /// The error a run would get now (402, 403 or 429 codes), or `null`.
    pub denial: Option<ErrorObject>,
    /// The trial that would pay for it, if any.
    pub trial: Option<TrialGrant>,
}

/// The test clock's time.
#[derive(Serialize, ToSchema)]
pub struct ClockView {
    pub now: DateTime<Utc>,
}

/// `GET /healthz`, `GET /readyz`.
#[derive(Serialize, ToSchema)]
pub struct HealthView {
    #[schema(example = "ready")]
    pub status: &'static str,
    /// Set when the database does not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<&'static str>,
}

/// `GET /v1/invoices`.
#[derive(Serialize, ToSchema)]
pub struct InvoiceList {
    pub invoices: Vec<InvoiceView>,
}

/// `GET /admin/v1/stripe-events`.
#[derive(Serialize, ToSchema)]
pub struct FailedEventList {
    pub events: Vec<FailedEventView>,
}

/// What applying a Stripe event did.
#[derive(Serialize, ToSchema)]
pub struct EventOutcome {
    /// The Stripe event's id (for an event applied again by an admin).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received: Option<bool>,
    #[schema(example = "plan pro started")]
    pub outcome: String,
}

/// `GET /openapi.json`: an OpenAPI 3.1 document.
#[derive(Serialize, ToSchema)]
pub struct OpenApiDocument {
    #[schema(example = "3.1.0")]
    pub openapi: String,
    #[schema(value_type = Object)]
    pub info: serde_json::Value,
    #[schema(value_type = Object)]
    pub paths: serde_json::Value,
    #[schema(value_type = Object)]
    pub components: serde_json::Value,
}

/// `POST /v1/webhook-endpoints`: the endpoint, with its secret shown this once.
#[derive(Serialize, ToSchema)]
pub struct CreatedEndpoint {
    pub id: Uuid,
    pub url: String,
    pub events: Vec<credits_domain::notify::webhooks::EventType>,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    /// `whsec_` + base64 of 32 random bytes: the Standard Webhooks signing secret. Shown once.
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub secret: String,
}

impl CreatedEndpoint {
    pub fn new(view: credits_domain::notify::store::EndpointView, secret: String) -> CreatedEndpoint {
        CreatedEndpoint {
            id: view.id,
            url: view.url,
            events: view.events,
            description: view.description,
            created_at: view.created_at,
            secret,
        }
    }
}

/// `GET /v1/webhook-endpoints`.
#[derive(Serialize, ToSchema)]
pub struct EndpointList {
    pub endpoints: Vec<credits_domain::notify::store::EndpointView>,
}

/// `GET /v1/webhook-endpoints/{id}/deliveries`.
#[derive(Serialize, ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<credits_domain::notify::store::DeliveryAttemptView>,
}

/// An account as `GET /admin/v1/accounts?q=` finds it.
#[derive(Serialize, ToSchema)]
pub struct AccountFound {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    /// The plan's id.
    #[schema(example = "free")]
    pub plan: String,
}

/// `GET /admin/v1/accounts?q=`: at most 20, newest first.
#[derive(Serialize, ToSchema)]
pub struct AccountSearch {
    pub accounts: Vec<AccountFound>,
}
