//! R9: Free-plan trials. A model with a trial runs on a plan with trials only through the trial,
//! free of charge, never from the balance.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::catalog::{Model, Plan, TrialSpec};
use crate::pricing::Priced;

/// What an account has used of one model's trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TrialUsage {
    /// Generations held or captured (count trials); released runs give theirs back.
    pub used: i64,
    /// When the account first ran the model (window trials).
    pub window_opens_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TrialKind {
    Count,
    Window,
}

impl TrialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TrialKind::Count => "count",
            TrialKind::Window => "window",
        }
    }

    pub fn parse(s: &str) -> Option<TrialKind> {
        match s {
            "count" => Some(TrialKind::Count),
            "window" => Some(TrialKind::Window),
            _ => None,
        }
    }
}

/// A run let through by its trial: free of charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrialGrant {
    pub kind: TrialKind,
    /// Generations this run takes from a count trial (0 for a window trial).
    pub generations: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_opens_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_closes_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrialRefusal {
    Exhausted,
    Expired,
}

/// Whether trials decide this run: the plan has trials and the model carries one.
pub fn applies(plan: &Plan, model: &Model) -> Option<TrialSpec> {
    if plan.trials { model.trial } else { None }
}

/// R9: let the run through its trial, or say why not.
pub fn admit(
    spec: TrialSpec,
    usage: TrialUsage,
    priced: &Priced,
    now: DateTime<Utc>,
) -> Result<TrialGrant, TrialRefusal> {
    match spec {
        TrialSpec::Count { generations } => {
            let wanted = priced.generations();
            if usage.used.saturating_add(wanted) > i64::from(generations) {
                return Err(TrialRefusal::Exhausted);
            }
            Ok(TrialGrant {
                kind: TrialKind::Count,
                generations: wanted,
                window_opens_at: None,
                window_closes_at: None,
            })
        }
        TrialSpec::Window { days } => {
            let opens = usage.window_opens_at.unwrap_or(now);
            let closes = opens + Duration::days(i64::from(days));
            if now >= closes {
                return Err(TrialRefusal::Expired);
            }
            Ok(TrialGrant {
                kind: TrialKind::Window,
                generations: 0,
                window_opens_at: Some(opens),
                window_closes_at: Some(closes),
            })
        }
    }
}

/// How a trial stands for an account, for `GET /v1/trials`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrialView {
    pub model: String,
    pub kind: TrialKind,
    /// Generations used (count trials), or 0.
    pub used: i64,
    /// Generations in all (count trials), or the window's length in days.
    pub total: i64,
    pub remaining: Option<i64>,
    pub days: Option<u32>,
    pub window_opens_at: Option<DateTime<Utc>>,
    pub window_closes_at: Option<DateTime<Utc>>,
    /// `available` (nothing used yet), `active`, `exhausted`, `expired`, or `not_applicable`
    /// (the account's plan has no trials: it runs the model from its balance, if its tier allows).
    pub status: &'static str,
}

pub fn view(plan: &Plan, model: &Model, spec: TrialSpec, usage: TrialUsage, now: DateTime<Utc>) -> TrialView {
    let applicable = plan.trials;
    match spec {
        TrialSpec::Count { generations } => {
            let total = i64::from(generations);
            let status = if !applicable {
                "not_applicable"
            } else if usage.used >= total {
                "exhausted"
            } else if usage.used == 0 {
                "available"
            } else {
                "active"
            };
            TrialView {
                model: model.id.clone(),
                kind: TrialKind::Count,
                used: usage.used,
                total,
                remaining: Some((total - usage.used).max(0)),
                days: None,
                window_opens_at: None,
                window_closes_at: None,
                status,
            }
        }
        TrialSpec::Window { days } => {
            let closes = usage.window_opens_at.map(|o| o + Duration::days(i64::from(days)));
            let status = match (applicable, closes) {
                (false, _) => "not_applicable",
                (true, None) => "available",
                (true, Some(c)) if now >= c => "expired",
                (true, Some(_)) => "active",
            };
            TrialView {
                model: model.id.clone(),
                kind: TrialKind::Window,
                used: 0,
                total: i64::from(days),
                remaining: None,
                days: Some(days),
                window_opens_at: usage.window_opens_at,
                window_closes_at: closes,
                status,
            }
        }
    }
}
