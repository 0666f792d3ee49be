//! Business verification (SPEC section 6, R13): what a request must say, who may submit one,
//! and the sales team's final decision.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::account::Account;
use crate::catalog::Catalog;

/// ISO 3166-1 alpha-2: the officially assigned codes.
const COUNTRIES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ \
BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET \
FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR \
IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN \
MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY \
QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR \
TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

pub fn is_country(code: &str) -> bool {
    code.len() == 2 && COUNTRIES.split(' ').any(|c| c == code)
}

fn text(field: &str, value: &str, max: usize) -> Result<String, String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(format!("{field} is required"));
    }
    if v.chars().count() > max {
        return Err(format!("{field} is at most {max} characters"));
    }
    if v.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(format!("{field} holds control characters"));
    }
    Ok(v.to_string())
}

fn email(field: &str, value: &str) -> Result<String, String> {
    crate::ports::NewAccount::new(value, "x").map(|n| n.email).map_err(|_| format!("{field} must be an email address"))
}

fn website(value: &str) -> Result<String, String> {
    let v = value.trim();
    let host = v.strip_prefix("https://").or_else(|| v.strip_prefix("http://"));
    match host {
        Some(rest)
            if v.len() <= 500
                && rest.split(['/', '?', '#']).next().is_some_and(|h| h.contains('.') && !h.starts_with('.'))
                && !v.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            Ok(v.to_string())
        }
        _ => Err("website must be an http(s) URL".into()),
    }
}

/// A request as submitted, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerificationRequest {
    pub company_name: String,
    pub website: String,
    pub country: String,
    pub tax_id: Option<String>,
    pub contact_name: String,
    pub contact_email: String,
    pub intended_use: String,
    pub expected_monthly_credits: Option<i64>,
}

/// The fields as they arrived.
#[derive(Debug, Clone, Default)]
pub struct RawRequest {
    pub company_name: String,
    pub website: String,
    pub country: String,
    pub tax_id: Option<String>,
    pub contact_name: String,
    pub contact_email: String,
    pub intended_use: String,
    pub expected_monthly_credits: Option<i64>,
}

impl VerificationRequest {
    pub fn new(raw: RawRequest) -> Result<VerificationRequest, String> {
        let country = raw.country.trim().to_string();
        if !is_country(&country) {
            return Err(format!("country {country:?} is not an ISO 3166-1 alpha-2 code (e.g. DE, US)"));
        }
        if raw.expected_monthly_credits.is_some_and(|n| !(0..=1_000_000_000_000).contains(&n)) {
            return Err("expected_monthly_credits must be between 0 and 10^12".into());
        }
        Ok(VerificationRequest {
            company_name: text("company_name", &raw.company_name, 200)?,
            website: website(&raw.website)?,
            country,
            tax_id: raw
                .tax_id
                .as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| text("tax_id", t, 64))
                .transpose()?,
            contact_name: text("contact_name", &raw.contact_name, 200)?,
            contact_email: email("contact_email", &raw.contact_email)?,
            intended_use: text("intended_use", &raw.intended_use, 4000)?,
            expected_monthly_credits: raw.expected_monthly_credits,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum VerificationStatus {
    Pending,
    Approved,
    Rejected,
}

impl VerificationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VerificationStatus::Pending => "pending",
            VerificationStatus::Approved => "approved",
            VerificationStatus::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<VerificationStatus> {
        [VerificationStatus::Pending, VerificationStatus::Approved, VerificationStatus::Rejected]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// A stored request with its decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerificationView {
    pub id: Uuid,
    pub account_id: Uuid,
    #[serde(flatten)]
    pub request: VerificationRequest,
    pub status: VerificationStatus,
    pub reason: Option<String>,
    pub note: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// SPEC section 6: one open request at a time; an approved account, or one already on Business
/// or Enterprise, has nothing to ask for (409 CONFLICT).
pub fn may_submit(catalog: &Catalog, account: &Account, latest: Option<VerificationStatus>) -> Result<(), String> {
    let plan = account.plan(catalog);
    if plan.requires_verification || plan.id == crate::catalog::ENTERPRISE_PLAN {
        return Err(format!("the account is on the {} plan already", plan.id));
    }
    match latest {
        Some(VerificationStatus::Pending) => Err("a request is already pending".into()),
        Some(VerificationStatus::Approved) => Err("the account is already approved".into()),
        _ => Ok(()),
    }
}

/// A sales decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Approve { note: Option<String> },
    Reject { reason: String },
}

impl Decision {
    pub fn reject(reason: Option<&str>) -> Result<Decision, String> {
        let reason = reason.map(str::trim).filter(|r| !r.is_empty()).ok_or("reason is required to reject")?;
        Ok(Decision::Reject { reason: text("reason", reason, 2000)? })
    }

    pub fn approve(note: Option<&str>) -> Result<Decision, String> {
        let note = note.map(str::trim).filter(|n| !n.is_empty()).map(|n| text("note", n, 2000)).transpose()?;
        Ok(Decision::Approve { note })
    }
}

/// A decision is final.
pub fn may_decide(status: VerificationStatus) -> Result<(), String> {
    match status {
        VerificationStatus::Pending => Ok(()),
        decided => Err(format!("the request was already {}", decided.as_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawRequest {
        RawRequest {
            company_name: "Acme GmbH".into(),
            website: "https://acme.example".into(),
            country: "DE".into(),
            tax_id: None,
            contact_name: "Ada".into(),
            contact_email: "ada@acme.example".into(),
            intended_use: "catalogue images".into(),
            expected_monthly_credits: Some(20_000),
        }
    }

    #[test]
    fn a_complete_request_is_accepted() {
        assert!(VerificationRequest::new(raw()).is_ok());
    }

    #[test]
    fn countries_websites_and_emails_are_checked() {
        for bad in [
            RawRequest { country: "Germany".into(), ..raw() },
            RawRequest { country: "XX".into(), ..raw() },
            RawRequest { country: "de".into(), ..raw() },
            RawRequest { website: "acme.example".into(), ..raw() },
            RawRequest { website: "ftp://acme.example".into(), ..raw() },
            RawRequest { contact_email: "ada".into(), ..raw() },
            RawRequest { company_name: "  ".into(), ..raw() },
            RawRequest { expected_monthly_credits: Some(-1), ..raw() },
        ] {
            assert!(VerificationRequest::new(bad.clone()).is_err(), "{bad:?}");
        }
        assert_eq!(COUNTRIES.split(' ').count(), 249);
    }

    #[test]
    fn a_rejection_needs_a_reason_and_a_decision_is_final() {
        assert!(Decision::reject(None).is_err() && Decision::reject(Some(" ")).is_err());
        assert!(may_decide(VerificationStatus::Approved).is_err());
        assert!(may_decide(VerificationStatus::Pending).is_ok());
    }
}
