//! R23: balance alerts. An account's balance level is kept as state on the account and moved
//! only by a change of the balance, in that change's transaction, so each crossing is told once.

use serde::{Deserialize, Serialize};

use crate::Credits;

/// Where an account's `available` stood after the last change of its balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum BalanceLevel {
    /// At or above the low-balance threshold (or above 0 with no threshold).
    #[default]
    Normal,
    /// Above 0 and strictly below the threshold.
    Low,
    /// At 0 (or below: a clawback can take it there).
    Depleted,
}

impl BalanceLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            BalanceLevel::Normal => "normal",
            BalanceLevel::Low => "low",
            BalanceLevel::Depleted => "depleted",
        }
    }

    /// `None` for a level this build does not know: an error where it is read.
    pub fn parse(s: &str) -> Option<BalanceLevel> {
        [BalanceLevel::Normal, BalanceLevel::Low, BalanceLevel::Depleted].into_iter().find(|l| l.as_str() == s)
    }
}

/// What a change of the balance tells the account (an email and a webhook event each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BalanceAlert {
    /// `balance.low`: `available` fell strictly below `threshold`.
    Low { available: Credits, threshold: Credits },
    /// `balance.depleted`: a change took `available` to 0.
    Depleted,
    /// `balance.recovered`: `available` rose back to the threshold or above (to above 0 when the
    /// account set no threshold and had been depleted).
    Recovered { available: Credits, threshold: Option<Credits> },
}

impl BalanceAlert {
    pub fn event_type(self) -> super::webhooks::EventType {
        use super::webhooks::EventType;
        match self {
            BalanceAlert::Low { .. } => EventType::BalanceLow,
            BalanceAlert::Depleted => EventType::BalanceDepleted,
            BalanceAlert::Recovered { .. } => EventType::BalanceRecovered,
        }
    }
}

/// R23: a low-balance threshold as asked: a positive whole number of credits (at most a
/// trillion), or none. The message is the 422's.
pub fn threshold(raw: Option<i64>) -> Result<Option<Credits>, String> {
    match raw {
        None => Ok(None),
        Some(n) if (1..=1_000_000_000_000).contains(&n) => Ok(Some(Credits::new(n))),
        Some(n) => Err(format!("low_balance_threshold must be a positive whole number of credits, or null; not {n}")),
    }
}

/// The level `available` is at, judged against `threshold`.
pub fn level_of(threshold: Option<Credits>, available: Credits) -> BalanceLevel {
    if available <= Credits::ZERO {
        BalanceLevel::Depleted
    } else if threshold.is_some_and(|t| available < t) {
        BalanceLevel::Low
    } else {
        BalanceLevel::Normal
    }
}

/// Setting (or clearing) the threshold re-bases the level and tells nothing: R23 says setting it
/// is not a fall. An account that sets a threshold above its balance is Low from then on, and
/// hears of it only when it recovers and falls again.
pub fn rebase(threshold: Option<Credits>, available: Credits) -> BalanceLevel {
    level_of(threshold, available)
}

/// A change of the balance took `available` to `after`; `level` is the state kept on the account.
/// Returns the new state and what to tell, in order (a fall straight from Normal to 0 is both a
/// crossing of the threshold and a depletion, and says both).
pub fn after_change(
    threshold: Option<Credits>,
    level: BalanceLevel,
    after: Credits,
) -> (BalanceLevel, Vec<BalanceAlert>) {
    let next = level_of(threshold, after);
    let mut alerts = Vec::new();
    match (level, next) {
        (BalanceLevel::Normal, BalanceLevel::Low) => {
            if let Some(threshold) = threshold {
                alerts.push(BalanceAlert::Low { available: after, threshold });
            }
        }
        (BalanceLevel::Normal, BalanceLevel::Depleted) => {
            if let Some(threshold) = threshold {
                alerts.push(BalanceAlert::Low { available: after, threshold });
            }
            alerts.push(BalanceAlert::Depleted);
        }
        (BalanceLevel::Low, BalanceLevel::Depleted) => alerts.push(BalanceAlert::Depleted),
        (BalanceLevel::Low | BalanceLevel::Depleted, BalanceLevel::Normal) => {
            alerts.push(BalanceAlert::Recovered { available: after, threshold });
        }
        // Rising from 0 to still below the threshold is no recovery; staying put says nothing.
        (BalanceLevel::Depleted, BalanceLevel::Low) | (BalanceLevel::Normal, BalanceLevel::Normal) => {}
        (BalanceLevel::Low, BalanceLevel::Low) | (BalanceLevel::Depleted, BalanceLevel::Depleted) => {}
    }
    (next, alerts)
}
