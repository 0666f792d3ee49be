//! R8: API keys. A key's scopes are chosen at its creation within the plan's capabilities, and
//! re-checked against the account's current plan on every request (`runs::decide_run`).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::catalog::{Capability, Plan};
use crate::credits::Credits;
use crate::ids::AccountId;

/// What a key can be scoped to: the API capabilities (the canvas is not reached with keys).
pub fn api_capabilities(plan: &Plan) -> BTreeSet<Capability> {
    plan.capabilities.iter().copied().filter(|c| *c != Capability::Canvas).collect()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRefusal {
    #[error("API keys need a plan with API access")]
    ApiAccessRequired,
    /// R19.
    #[error("{}", crate::runs::RESTRICTED)]
    AccountRestricted,
    #[error("the plan does not include the {0} capability")]
    CapabilityRequired(Capability),
    #[error("{0}")]
    InvalidParameters(String),
    /// R25: a key may belong only to a current member of its account (403 FORBIDDEN).
    #[error("{0} is not a member of this account")]
    NotAMember(Uuid),
}

/// A key's name and scopes, checked against the plan. No scopes given: every API capability of
/// the plan.
pub fn choose_scopes(plan: &Plan, requested: Option<&[String]>) -> Result<BTreeSet<Capability>, KeyRefusal> {
    if !plan.api_access {
        return Err(KeyRefusal::ApiAccessRequired);
    }
    let allowed = api_capabilities(plan);
    let Some(requested) = requested else {
        return Ok(allowed);
    };
    let mut scopes = BTreeSet::new();
    for s in requested {
        let cap = Capability::parse(s).ok_or_else(|| KeyRefusal::InvalidParameters(format!("unknown scope {s:?}")))?;
        if cap == Capability::Canvas {
            return Err(KeyRefusal::InvalidParameters("canvas is not an API scope".into()));
        }
        if !allowed.contains(&cap) {
            return Err(KeyRefusal::CapabilityRequired(cap));
        }
        scopes.insert(cap);
    }
    Ok(scopes)
}

pub fn key_name(name: &str) -> Result<String, KeyRefusal> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(KeyRefusal::InvalidParameters("name must be 1-100 characters".into()));
    }
    Ok(name.to_string())
}

/// A key as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKeyView {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    pub scopes: BTreeSet<Capability>,
    /// R21: credits its runs may hold or capture a calendar month (UTC); `null`: no cap.
    pub monthly_credit_limit: Option<Credits>,
    /// R25: the member the key belongs to; `null`: the account's.
    pub member_id: Option<Uuid>,
    /// R21: what its runs started this month hold or captured.
    pub used_this_month: Credits,
    pub created_at: DateTime<Utc>,
}

/// R21: a key's monthly credit limit as asked: a positive whole number (at most a trillion), or
/// `None` for no cap.
pub fn credit_limit(raw: Option<i64>) -> Result<Option<Credits>, KeyRefusal> {
    match raw {
        None => Ok(None),
        Some(n) if (1..=1_000_000_000_000).contains(&n) => Ok(Some(Credits::new(n))),
        Some(n) => Err(KeyRefusal::InvalidParameters(format!(
            "monthly_credit_limit must be a positive whole number of credits, or null; not {n}"
        ))),
    }
}

/// What the api channel knows of a request's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyIdentity {
    pub key_id: Uuid,
    pub account: AccountId,
    pub scopes: BTreeSet<Capability>,
    /// The account's plan now (R8: re-checked at every request).
    pub plan: String,
    pub monthly_credit_limit: Option<Credits>,
    /// R25: the member the key belongs to (a removed member's keys are found no more).
    pub member: Option<Uuid>,
}

/// A key to create: the hash of its secret is all the store keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiKey {
    pub name: String,
    pub requested_scopes: Option<Vec<String>>,
    pub monthly_credit_limit: Option<Credits>,
    /// R25: the member it belongs to.
    pub member: Option<Uuid>,
    pub secret_hash: String,
    pub prefix: String,
}
