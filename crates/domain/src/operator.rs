//! Operators (SPEC section 4): roles, adjustments (R6), Enterprise contracts (R3).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::account::{Account, Period, contract_period};
use crate::burn::{Insufficient, Portion, Wallet};
use crate::catalog::ENTERPRISE_PLAN;
use crate::credits::Credits;
use crate::ids::OperatorId;

/// The largest single adjustment or monthly contract: a typo guard far above any real grant.
pub const MAX_OPERATOR_CREDITS: i64 = 1_000_000_000_000;
pub const MAX_REASON_CHARS: usize = 1000;

/// An operator's name as given: trimmed, 1 to 100 characters.
pub fn operator_name(raw: &str) -> Result<&str, String> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err("an operator's name is 1-100 characters".into());
    }
    Ok(name)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Sales,
    Support,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Sales => "sales",
            Role::Support => "support",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::Sales, Role::Support, Role::Admin].into_iter().find(|r| r.as_str() == s)
    }

    /// `admin` may do all that `sales` and `support` may.
    pub fn allows(self, needed: Role) -> bool {
        self == Role::Admin || self == needed
    }
}

/// Who did an operator action; the bootstrap token from config has no row, hence no id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Operator {
    pub id: Option<OperatorId>,
    pub name: String,
    pub role: Role,
}

fn reason(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("reason is required".into());
    }
    if text.chars().count() > MAX_REASON_CHARS {
        return Err(format!("reason is at most {MAX_REASON_CHARS} characters"));
    }
    Ok(text.to_string())
}

/// An operator's grant (positive) or removal (negative) of credits, with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjustment {
    pub credits: Credits,
    pub reason: String,
    pub expires_at: Option<DateTime<Utc>>,
}

impl Adjustment {
    pub fn new(
        credits: i64,
        why: &str,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Adjustment, String> {
        if credits == 0 {
            return Err("credits must not be zero".into());
        }
        if credits.unsigned_abs() > MAX_OPERATOR_CREDITS as u64 {
            return Err(format!("credits must be within ±{MAX_OPERATOR_CREDITS}"));
        }
        let reason = reason(why)?;
        if let Some(at) = expires_at {
            if credits < 0 {
                return Err("expires_at belongs to a grant; a removal takes credits that exist".into());
            }
            if at <= now {
                return Err("expires_at must be in the future".into());
            }
        }
        Ok(Adjustment { credits: Credits::new(credits), reason, expires_at })
    }
}

/// What an adjustment does: a new `adjustment` bucket, or credits taken in burn-down order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdjustmentEffect {
    Grant { credits: Credits, expires_at: Option<DateTime<Utc>> },
    Take(Vec<Portion>),
}

/// R6: a negative adjustment takes credits in burn-down order and never more than is available.
pub fn decide_adjustment(
    wallet: &Wallet,
    adj: &Adjustment,
    now: DateTime<Utc>,
) -> Result<AdjustmentEffect, Insufficient> {
    if adj.credits.is_positive() {
        return Ok(AdjustmentEffect::Grant { credits: adj.credits, expires_at: adj.expires_at });
    }
    wallet.split(adj.credits.negated(), now).map(AdjustmentEffect::Take)
}

/// The terms of an Enterprise contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContractTerms {
    pub monthly_credits: Credits,
    pub runs_per_minute: Option<u32>,
}

impl ContractTerms {
    pub fn new(monthly_credits: i64, runs_per_minute: Option<i64>) -> Result<ContractTerms, String> {
        if monthly_credits <= 0 || monthly_credits > MAX_OPERATOR_CREDITS {
            return Err(format!("monthly_credits must be between 1 and {MAX_OPERATOR_CREDITS}"));
        }
        let runs_per_minute = match runs_per_minute {
            None => None,
            Some(n) if (1..=1_000_000).contains(&n) => Some(n as u32),
            Some(_) => return Err("runs_per_minute must be between 1 and 1000000 (leave it out for unlimited)".into()),
        };
        Ok(ContractTerms { monthly_credits: Credits::new(monthly_credits), runs_per_minute })
    }
}

/// What putting an account on an Enterprise contract does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContractChange {
    /// Already on a contract with this allowance: only the rate limit is (re)set. A repeated PUT
    /// therefore never grants twice.
    Amend { runs_per_minute: Option<u32> },
    /// A new contract from now: the current allowance ends now, the first month's is granted.
    Start { starts_at: DateTime<Utc>, period: Period, grant: Credits },
}

/// An Enterprise contract for `account`, which has the live Stripe subscription
/// `live_subscription` if any. R18: a plan paid through Stripe and a contract never overlap, so a
/// live subscription refuses it (the message is the 409's); the same monthly credits amend the
/// contract in place, anything else starts a new one now.
pub fn decide_contract(
    account: &Account,
    live_subscription: Option<&str>,
    terms: ContractTerms,
    now: DateTime<Utc>,
) -> Result<ContractChange, String> {
    if let Some(sub) = live_subscription {
        return Err(format!(
            "the account has a live Stripe subscription ({sub}); cancel it before an Enterprise contract"
        ));
    }
    if account.plan == ENTERPRISE_PLAN
        && let Some(c) = account.contract
        && c.monthly_credits == terms.monthly_credits
    {
        return Ok(ContractChange::Amend { runs_per_minute: terms.runs_per_minute });
    }
    Ok(ContractChange::Start { starts_at: now, period: contract_period(now, now), grant: terms.monthly_credits })
}

/// R19: an account is restricted while any of its restrictions stands; lifting the last one
/// frees it.
pub fn still_restricted(standing_restrictions: usize) -> bool {
    standing_restrictions > 0
}

/// R3 for Enterprise: the period to grant when the current one has ended, if it has.
pub fn due_contract_period(account: &Account, now: DateTime<Utc>) -> Option<Period> {
    if account.plan != ENTERPRISE_PLAN {
        return None;
    }
    let contract = account.contract?;
    match account.period {
        Some(p) if now < p.end => None,
        _ => Some(contract_period(contract.starts_at, now)),
    }
}

#[cfg(test)]
mod contract_tests {
    use chrono::TimeZone;

    use super::*;
    use crate::account::Contract;

    #[test]
    fn a_contract_is_refused_beside_a_live_subscription_amends_the_same_credits_and_starts_otherwise() {
        let now = Utc.with_ymd_and_hms(2026, 12, 8, 12, 0, 0).unwrap();
        let terms = ContractTerms { monthly_credits: Credits::new(50_000), runs_per_minute: Some(600) };
        let pro = crate::payments::tests::account("pro", None);
        let refused = decide_contract(&pro, Some("sub_1"), terms, now).unwrap_err();
        assert!(refused.contains("sub_1"), "{refused}");
        assert!(
            matches!(decide_contract(&pro, None, terms, now), Ok(ContractChange::Start { grant, .. }) if grant == terms.monthly_credits)
        );
        let contract = Contract { monthly_credits: Credits::new(50_000), runs_per_minute: None, starts_at: now };
        let enterprise = Account { plan: ENTERPRISE_PLAN.into(), contract: Some(contract), ..pro.clone() };
        assert_eq!(
            decide_contract(&enterprise, None, terms, now),
            Ok(ContractChange::Amend { runs_per_minute: Some(600) })
        );
        let more = ContractTerms { monthly_credits: Credits::new(80_000), ..terms };
        assert!(matches!(decide_contract(&enterprise, None, more, now), Ok(ContractChange::Start { .. })));
    }

    #[test]
    fn an_account_stays_restricted_while_a_restriction_stands() {
        assert!(still_restricted(1) && still_restricted(2));
        assert!(!still_restricted(0));
    }
}
