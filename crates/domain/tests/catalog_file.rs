//! The shipped catalog (config/catalog.toml) validates and carries SPEC section 2's content, and
//! a bad catalog is refused with a message naming the bad entry.

use credits_domain::catalog::{Capability, Catalog, Pricing, RawCatalog, TrialSpec};

const SHIPPED: &str = include_str!("../../../config/catalog.toml");

fn load(text: &str) -> Result<Catalog, String> {
    let raw: RawCatalog = toml::from_str(text).map_err(|e| e.to_string())?;
    Catalog::from_raw(raw).map_err(|e| e.to_string())
}

#[test]
fn the_shipped_catalog_has_specs_plans_models_and_packs() {
    let c = load(SHIPPED).unwrap();
    let ids: Vec<_> = c.plans().iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["free", "creator", "pro", "business", "enterprise"]);
    let monthly: Vec<_> = c.plans().iter().map(|p| p.monthly_credits.map(|m| m.get())).collect();
    assert_eq!(monthly, [None, Some(1700), Some(5000), Some(11329), None]);
    assert_eq!(c.free().lifetime_credits.unwrap().get(), 250);
    assert!(c.plan("business").unwrap().requires_verification);
    assert!(c.plan("business").unwrap().has(Capability::ModelRun));
    assert!(!c.plan("pro").unwrap().has(Capability::ModelRun));
    assert_eq!(c.enterprise().runs_per_minute, None);

    let flux_pro = c.model("flux-pro").unwrap();
    assert_eq!(
        (flux_pro.pricing, flux_pro.credits.get(), flux_pro.min_plan.as_str()),
        (Pricing::PerImage, 10, "creator")
    );
    assert_eq!(flux_pro.trial, Some(TrialSpec::Count { generations: 3 }));
    assert_eq!(c.model("kling-2.1").unwrap().trial, Some(TrialSpec::Window { days: 7 }));
    assert_eq!(c.model("seedance-2.0").unwrap().min_plan, "business");
    assert_eq!(c.model("upscale-4x").unwrap().limits, None);

    let packs: Vec<_> = c.packs().iter().map(|p| (p.id.as_str(), p.credits.get(), p.expiry_days)).collect();
    assert_eq!(packs, [("small", 500, 90), ("medium", 2000, 180), ("large", 10000, 365)]);
}

#[test]
fn a_model_whose_min_plan_names_no_plan_is_refused_by_name() {
    let bad = SHIPPED.replace("min_plan = \"business\"", "min_plan = \"gold\"");
    let err = load(&bad).unwrap_err();
    assert!(err.contains("model \"seedance-2.0\"") && err.contains("gold"), "{err}");
}

#[test]
fn a_sold_plan_without_a_stripe_price_is_refused_by_name() {
    let bad = SHIPPED.replace("stripe_price_id = \"price_credits_pro_monthly\"\n", "");
    let err = load(&bad).unwrap_err();
    assert!(err.contains("plan \"pro\"") && err.contains("stripe_price_id"), "{err}");
}

#[test]
fn a_per_call_model_with_limits_is_refused() {
    let bad = SHIPPED.replace(
        "pricing = \"per_call\"\ncredits = 5\nmin_plan = \"free\"",
        "pricing = \"per_call\"\ncredits = 5\nmin_plan = \"free\"\nmin = 1\nmax = 2",
    );
    assert!(load(&bad).unwrap_err().contains("model \"upscale-4x\""));
}

#[test]
fn an_unknown_field_is_refused() {
    let bad = SHIPPED.replace("expiry_days = 90", "expiry_days = 90\nexpiry_dayz = 3");
    assert!(load(&bad).unwrap_err().contains("expiry_dayz"));
}

#[test]
fn a_catalog_without_the_free_plan_is_refused() {
    let bad = SHIPPED.replace("id = \"free\"", "id = \"starter\"");
    assert!(load(&bad).unwrap_err().contains("plan \"free\""));
}
