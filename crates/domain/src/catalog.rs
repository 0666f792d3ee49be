//! The catalog (SPEC section 2): plans, models and top-up packs. Data, not code: operators change
//! prices and plans by editing `config/catalog.toml`. `RawCatalog` is the file's shape;
//! `Catalog::from_raw` validates it into the types the rules use, naming the bad entry if any.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::credits::Credits;

/// Largest credit amount a catalog entry may carry; keeps every product of price and parameter
/// far inside i64.
pub const MAX_CATALOG_CREDITS: i64 = 1_000_000_000;
/// Largest parameter limit (images, seconds) a model may allow.
pub const MAX_MODEL_LIMIT: i64 = 100_000;

/// The id of the plan every new account starts on (R2) and where a cancelled one returns (R14).
pub const FREE_PLAN: &str = "free";
/// The id of the plan operators set by contract; never sold by checkout.
pub const ENTERPRISE_PLAN: &str = "enterprise";

/// What a plan unlocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Capability {
    #[serde(rename = "canvas")]
    Canvas,
    #[serde(rename = "workflow:read")]
    WorkflowRead,
    #[serde(rename = "workflow:run")]
    WorkflowRun,
    #[serde(rename = "model:run")]
    ModelRun,
}

impl Capability {
    pub const ALL: [Capability; 4] =
        [Capability::Canvas, Capability::WorkflowRead, Capability::WorkflowRun, Capability::ModelRun];

    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Canvas => "canvas",
            Capability::WorkflowRead => "workflow:read",
            Capability::WorkflowRun => "workflow:run",
            Capability::ModelRun => "model:run",
        }
    }

    pub fn parse(s: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A price in the currency's minor unit (cents for usd).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub amount: i64,
    pub currency: String,
}

/// How a model is priced (R1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Pricing {
    PerImage,
    PerSecond,
    PerCall,
}

/// The inclusive range a model's parameter (images or seconds) may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Limits {
    pub min: i64,
    pub max: i64,
}

/// A Free-plan trial (R9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TrialSpec {
    /// N lifetime generations: images for per-image models, runs otherwise.
    Count { generations: u32 },
    /// Free access for N days from the account's first run of the model.
    Window { days: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Plan {
    pub id: String,
    pub name: String,
    pub rank: u32,
    /// The one-time lifetime grant a new account on this plan gets (R2); only the Free plan has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifetime_credits: Option<Credits>,
    /// The monthly allowance (R3); `None` for Free, and for Enterprise, whose contract sets it.
    pub monthly_credits: Option<Credits>,
    pub capabilities: BTreeSet<Capability>,
    pub api_access: bool,
    /// Runs a minute (R12); `None` is unlimited.
    pub runs_per_minute: Option<u32>,
    pub requires_verification: bool,
    /// R24: the most current members an account on this plan may have; `null`: no cap.
    pub max_members: Option<u32>,
    /// Whether Free-plan trials (R9) apply to accounts on this plan.
    pub trials: bool,
    /// Sold by Stripe Checkout; then `price` and `stripe_price_id` are set.
    pub sold: bool,
    pub price: Option<Price>,
    pub stripe_price_id: Option<String>,
}

impl Plan {
    pub fn has(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Model {
    pub id: String,
    pub name: String,
    pub pricing: Pricing,
    /// Credits per image, per second or per call.
    pub credits: Credits,
    pub min_plan: String,
    /// The range of `images` (per image) or `duration_seconds` (per second); `None` per call.
    pub limits: Option<Limits>,
    pub trial: Option<TrialSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TopupPack {
    pub id: String,
    pub name: String,
    pub credits: Credits,
    pub expiry_days: u32,
    pub price: Price,
    pub stripe_price_id: String,
}

/// The validated catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    plans: Vec<Plan>,
    models: Vec<Model>,
    packs: Vec<TopupPack>,
    plan_index: BTreeMap<String, usize>,
    model_index: BTreeMap<String, usize>,
    pack_index: BTreeMap<String, usize>,
}

/// A catalog entry that cannot be used, named so an operator finds it at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("catalog: {entry}: {problem}")]
pub struct CatalogError {
    pub entry: String,
    pub problem: String,
}

fn bad(entry: impl Into<String>, problem: impl Into<String>) -> CatalogError {
    CatalogError { entry: entry.into(), problem: problem.into() }
}

// ---- the file's shape ------------------------------------------------------------------------

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCatalog {
    #[serde(default)]
    pub plans: Vec<RawPlan>,
    #[serde(default)]
    pub models: Vec<RawModel>,
    #[serde(default)]
    pub topup_packs: Vec<RawPack>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlan {
    pub id: String,
    pub name: Option<String>,
    pub rank: u32,
    pub lifetime_credits: Option<i64>,
    pub monthly_credits: Option<i64>,
    pub capabilities: Vec<String>,
    pub api_access: bool,
    pub runs_per_minute: Option<u32>,
    #[serde(default)]
    pub requires_verification: bool,
    /// R24: absent for no cap.
    #[serde(default)]
    pub max_members: Option<u32>,
    #[serde(default)]
    pub trials: bool,
    #[serde(default)]
    pub sold: bool,
    pub price: Option<Price>,
    pub stripe_price_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub id: String,
    pub name: Option<String>,
    pub pricing: Pricing,
    pub credits: i64,
    pub min_plan: String,
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub trial: Option<TrialSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPack {
    pub id: String,
    pub name: Option<String>,
    pub credits: i64,
    pub expiry_days: u32,
    pub price: Price,
    pub stripe_price_id: String,
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.' || b == b'_')
}

fn check_credits(entry: &str, field: &str, value: i64) -> Result<Credits, CatalogError> {
    if value <= 0 || value > MAX_CATALOG_CREDITS {
        return Err(bad(entry, format!("{field} must be between 1 and {MAX_CATALOG_CREDITS}, not {value}")));
    }
    Ok(Credits::new(value))
}

fn check_price(entry: &str, price: &Price) -> Result<(), CatalogError> {
    if price.amount <= 0 {
        return Err(bad(entry, "price.amount must be positive (in the currency's minor unit)"));
    }
    if price.currency.len() != 3 || !price.currency.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(bad(entry, format!("price.currency {:?} is not a lowercase ISO 4217 code", price.currency)));
    }
    Ok(())
}

fn check_stripe_price(entry: &str, id: &str) -> Result<(), CatalogError> {
    if !id.starts_with("price_") || id.len() < 7 {
        return Err(bad(entry, format!("stripe_price_id {id:?} is not a Stripe price id (price_…)")));
    }
    Ok(())
}

impl Catalog {
    pub fn from_raw(raw: RawCatalog) -> Result<Catalog, CatalogError> {
        let mut plans = Vec::new();
        let mut plan_index = BTreeMap::new();
        let mut ranks = BTreeSet::new();
        for p in raw.plans {
            let entry = format!("plan {:?}", p.id);
            if !valid_id(&p.id) {
                return Err(bad(entry, "an id is 1-64 characters of a-z, 0-9, '-', '.', '_'"));
            }
            if plan_index.contains_key(&p.id) {
                return Err(bad(entry, "listed twice"));
            }
            if !ranks.insert(p.rank) {
                return Err(bad(entry, format!("rank {} is taken by another plan", p.rank)));
            }
            let mut capabilities = BTreeSet::new();
            for c in &p.capabilities {
                let cap = Capability::parse(c).ok_or_else(|| bad(&entry, format!("unknown capability {c:?}")))?;
                capabilities.insert(cap);
            }
            let lifetime_credits =
                p.lifetime_credits.map(|v| check_credits(&entry, "lifetime_credits", v)).transpose()?;
            let monthly_credits = p.monthly_credits.map(|v| check_credits(&entry, "monthly_credits", v)).transpose()?;
            if p.runs_per_minute == Some(0) {
                return Err(bad(entry, "runs_per_minute must be positive (leave it out for unlimited)"));
            }
            if p.sold {
                let price = p.price.as_ref().ok_or_else(|| bad(&entry, "a plan sold by checkout needs a price"))?;
                check_price(&entry, price)?;
                let pid = p
                    .stripe_price_id
                    .as_deref()
                    .ok_or_else(|| bad(&entry, "a plan sold by checkout needs a stripe_price_id"))?;
                check_stripe_price(&entry, pid)?;
                if monthly_credits.is_none() {
                    return Err(bad(entry, "a plan sold by checkout needs monthly_credits"));
                }
            }
            plan_index.insert(p.id.clone(), plans.len());
            plans.push(Plan {
                name: p.name.unwrap_or_else(|| p.id.clone()),
                id: p.id,
                rank: p.rank,
                lifetime_credits,
                monthly_credits,
                capabilities,
                api_access: p.api_access,
                runs_per_minute: p.runs_per_minute,
                requires_verification: p.requires_verification,
                max_members: p.max_members,
                trials: p.trials,
                sold: p.sold,
                price: p.price,
                stripe_price_id: p.stripe_price_id,
            });
        }
        for required in [FREE_PLAN, ENTERPRISE_PLAN] {
            if !plan_index.contains_key(required) {
                return Err(bad(format!("plan {required:?}"), "missing: the rules need it"));
            }
        }
        let free = &plans[plan_index[FREE_PLAN]];
        if free.sold {
            return Err(bad("plan \"free\"", "the Free plan is never sold by checkout"));
        }
        if free.lifetime_credits.is_none() {
            return Err(bad("plan \"free\"", "needs lifetime_credits (the one-time grant of R2)"));
        }
        let enterprise = &plans[plan_index[ENTERPRISE_PLAN]];
        if enterprise.sold || enterprise.monthly_credits.is_some() {
            return Err(bad("plan \"enterprise\"", "is set by contract: not sold, and no monthly_credits of its own"));
        }
        plans.sort_by_key(|p| p.rank);
        let plan_index = plans.iter().enumerate().map(|(i, p)| (p.id.clone(), i)).collect();

        let mut models = Vec::new();
        let mut model_index = BTreeMap::new();
        for m in raw.models {
            let entry = format!("model {:?}", m.id);
            if !valid_id(&m.id) {
                return Err(bad(entry, "an id is 1-64 characters of a-z, 0-9, '-', '.', '_'"));
            }
            if model_index.contains_key(&m.id) {
                return Err(bad(entry, "listed twice"));
            }
            let credits = check_credits(&entry, "credits", m.credits)?;
            let plan_ids: &BTreeMap<String, usize> = &plan_index;
            if !plan_ids.contains_key(&m.min_plan) {
                return Err(bad(entry, format!("min_plan {:?} names no plan", m.min_plan)));
            }
            let limits = match (m.pricing, m.min, m.max) {
                (Pricing::PerCall, None, None) => None,
                (Pricing::PerCall, _, _) => {
                    return Err(bad(entry, "a per-call model takes no parameters: no min or max"));
                }
                (_, Some(min), Some(max)) if 1 <= min && min <= max && max <= MAX_MODEL_LIMIT => {
                    Some(Limits { min, max })
                }
                (_, Some(_), Some(_)) => {
                    return Err(bad(entry, format!("limits need 1 <= min <= max <= {MAX_MODEL_LIMIT}")));
                }
                _ => {
                    return Err(bad(entry, "a per-image or per-second model needs min and max"));
                }
            };
            match m.trial {
                Some(TrialSpec::Count { generations: 0 }) => {
                    return Err(bad(entry, "a count trial needs at least one generation"));
                }
                Some(TrialSpec::Window { days: 0 }) => {
                    return Err(bad(entry, "a window trial needs at least one day"));
                }
                _ => {}
            }
            model_index.insert(m.id.clone(), models.len());
            models.push(Model {
                name: m.name.unwrap_or_else(|| m.id.clone()),
                id: m.id,
                pricing: m.pricing,
                credits,
                min_plan: m.min_plan,
                limits,
                trial: m.trial,
            });
        }

        let mut packs = Vec::new();
        let mut pack_index = BTreeMap::new();
        for p in raw.topup_packs {
            let entry = format!("topup pack {:?}", p.id);
            if !valid_id(&p.id) {
                return Err(bad(entry, "an id is 1-64 characters of a-z, 0-9, '-', '.', '_'"));
            }
            if pack_index.contains_key(&p.id) {
                return Err(bad(entry, "listed twice"));
            }
            let credits = check_credits(&entry, "credits", p.credits)?;
            if p.expiry_days == 0 || p.expiry_days > 3660 {
                return Err(bad(entry, "expiry_days must be between 1 and 3660"));
            }
            check_price(&entry, &p.price)?;
            check_stripe_price(&entry, &p.stripe_price_id)?;
            pack_index.insert(p.id.clone(), packs.len());
            packs.push(TopupPack {
                name: p.name.unwrap_or_else(|| p.id.clone()),
                id: p.id,
                credits,
                expiry_days: p.expiry_days,
                price: p.price,
                stripe_price_id: p.stripe_price_id,
            });
        }

        Ok(Catalog { plans, models, packs, plan_index, model_index, pack_index })
    }

    /// Plans in rank order.
    pub fn plans(&self) -> &[Plan] {
        &self.plans
    }

    pub fn models(&self) -> &[Model] {
        &self.models
    }

    pub fn packs(&self) -> &[TopupPack] {
        &self.packs
    }

    pub fn plan(&self, id: &str) -> Option<&Plan> {
        self.plan_index.get(id).map(|&i| &self.plans[i])
    }

    pub fn model(&self, id: &str) -> Option<&Model> {
        self.model_index.get(id).map(|&i| &self.models[i])
    }

    pub fn pack(&self, id: &str) -> Option<&TopupPack> {
        self.pack_index.get(id).map(|&i| &self.packs[i])
    }

    pub fn free(&self) -> &Plan {
        self.plan(FREE_PLAN).expect("validated: the catalog has a free plan")
    }

    pub fn enterprise(&self) -> &Plan {
        self.plan(ENTERPRISE_PLAN).expect("validated: the catalog has an enterprise plan")
    }

    /// The plan an account is on; a plan id the catalog no longer lists is treated as Free,
    /// the most restrictive choice, so a catalog edit can never unlock more than was sold.
    pub fn plan_or_free(&self, id: &str) -> &Plan {
        self.plan(id).unwrap_or_else(|| self.free())
    }
}
