//! R22: auto top-up. What an account may set, when a capture starts one, and what Stripe's answer
//! to the off-session payment does.

use chrono::{DateTime, Datelike, TimeZone, Utc};

use crate::Credits;
use crate::catalog::Catalog;
use crate::jobs::AutoTopupStatus;

/// R22: the most auto top-ups a calendar month when the account names no limit.
pub const DEFAULT_MONTHLY_LIMIT: u32 = 4;
/// The most an account may allow itself a month: a guard against a typo that charges a card
/// hundreds of times, not a business rule (a decision, docs/decisions.md).
pub const MAX_MONTHLY_LIMIT: u32 = 31;

/// What `PUT /v1/auto-topup` asks for, as it came.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AutoTopupRequest {
    pub enabled: bool,
    pub threshold: Option<i64>,
    pub pack: Option<String>,
    pub monthly_limit: Option<i64>,
}

/// An account's auto top-up settings, valid against the catalog. Threshold and pack are always
/// there when `enabled` is; an account that only ever turned it off may have neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoTopupSettings {
    pub enabled: bool,
    pub threshold: Option<Credits>,
    pub pack: Option<String>,
    pub monthly_limit: u32,
}

/// Checks a request against the catalog, the settings it replaces and whether a card is saved.
/// What the request leaves out is kept from `previous`. Turning auto top-up off needs nothing
/// else; turning it on needs a threshold, a pack that exists and a saved card. The message is
/// the 422's.
pub fn validate(
    request: &AutoTopupRequest,
    previous: Option<&AutoTopupSettings>,
    catalog: &Catalog,
    card_saved: bool,
) -> Result<AutoTopupSettings, String> {
    let threshold = match request.threshold {
        Some(t) if t >= 1 => Some(Credits::new(t)),
        Some(_) => return Err("threshold must be a whole number of credits, 1 or more".into()),
        None => previous.and_then(|p| p.threshold),
    };
    let pack = match request.pack.as_deref() {
        Some(id) if catalog.pack(id).is_some() => Some(id.to_owned()),
        Some(id) => return Err(format!("no top-up pack is called {id:?}")),
        None => previous.and_then(|p| p.pack.clone()),
    };
    let monthly_limit = match request.monthly_limit {
        None => previous.map_or(DEFAULT_MONTHLY_LIMIT, |p| p.monthly_limit),
        Some(n) if (1..=i64::from(MAX_MONTHLY_LIMIT)).contains(&n) => n as u32,
        Some(_) => {
            return Err(format!("monthly_limit must be between 1 and {MAX_MONTHLY_LIMIT}"));
        }
    };
    if request.enabled {
        if threshold.is_none() {
            return Err("threshold is required to turn auto top-up on".into());
        }
        if pack.is_none() {
            return Err("pack is required to turn auto top-up on".into());
        }
        if !card_saved {
            return Err("auto top-up needs a card saved at Stripe: buy a top-up pack once \
                        (its checkout saves the card), then turn auto top-up on"
                .into());
        }
    }
    Ok(AutoTopupSettings { enabled: request.enabled, threshold, pack, monthly_limit })
}

/// Why a capture did or did not start an auto top-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartDecision {
    Start,
    Disabled,
    /// `available` is at or above the threshold.
    NotBelow,
    /// One is already open for the account: never two at once.
    AlreadyOpen,
    /// This calendar month's auto top-ups have reached the account's limit.
    MonthlyLimitReached {
        limit: u32,
    },
}

/// A capture left `available`; `open` says whether an auto top-up is in flight for the account,
/// `started_this_month` how many it started since [`month_start`].
pub fn after_capture(
    settings: Option<&AutoTopupSettings>,
    available: Credits,
    open: bool,
    started_this_month: u32,
) -> StartDecision {
    let Some((settings, threshold)) = settings.filter(|s| s.enabled).and_then(|s| s.threshold.map(|t| (s, t))) else {
        return StartDecision::Disabled;
    };
    if available >= threshold {
        StartDecision::NotBelow
    } else if open {
        StartDecision::AlreadyOpen
    } else if started_this_month >= settings.monthly_limit {
        StartDecision::MonthlyLimitReached { limit: settings.monthly_limit }
    } else {
        StartDecision::Start
    }
}

/// The calendar month (UTC) `now` is in begins here.
pub fn month_start(now: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()
        .expect("the first of a month at midnight UTC exists")
}

/// What Stripe said of an auto top-up's PaymentIntent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentOutcome {
    Succeeded,
    Declined,
    /// The bank wants the customer (3-D Secure): off-session, nobody is there to answer.
    RequiresAction,
}

impl PaymentOutcome {
    /// A failed PaymentIntent, by Stripe's `last_payment_error.code`: `authentication_required`
    /// is the bank asking for the customer (3-D Secure); anything else is a decline.
    pub fn of_failure(code: Option<&str>) -> PaymentOutcome {
        match code {
            Some("authentication_required") => PaymentOutcome::RequiresAction,
            _ => PaymentOutcome::Declined,
        }
    }
}

/// What Stripe's answer does to an auto top-up, decided from its status as stored (R22).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopupOutcome {
    /// It had ended so already (a second event, or the worker's answer before it): nothing.
    Already,
    /// Grant the pack, expiring `expires_at` (once per PaymentIntent: the store keys the grant
    /// on its id).
    Grant { expires_at: DateTime<Utc> },
    /// It failed: record `reason`; turn auto top-up off when `disable` (a card that failed once
    /// off-session will fail again) and then email the account a link to its billing page.
    Fail { reason: String, disable: bool },
}

/// R22: an auto top-up in `status` answered `outcome` (Stripe's words for a failure in
/// `reason`). A succeeded one never changes; a failed one is only overturned by a success (a
/// payment Stripe retried and then collected). The pack expires `expiry_days` after `now`.
pub fn decide_topup_outcome(
    status: AutoTopupStatus,
    outcome: PaymentOutcome,
    reason: Option<&str>,
    expiry_days: i64,
    now: DateTime<Utc>,
) -> TopupOutcome {
    let succeeded = outcome == PaymentOutcome::Succeeded;
    if status == AutoTopupStatus::Succeeded || (status == AutoTopupStatus::Failed && !succeeded) {
        return TopupOutcome::Already;
    }
    match outcome {
        PaymentOutcome::Succeeded => TopupOutcome::Grant { expires_at: now + chrono::Duration::days(expiry_days) },
        PaymentOutcome::Declined | PaymentOutcome::RequiresAction => {
            let worded = match outcome {
                PaymentOutcome::RequiresAction => {
                    "your bank asked for you to confirm the payment, and nobody was there to"
                }
                _ => "the payment was declined",
            };
            TopupOutcome::Fail { reason: reason.unwrap_or(worded).to_string(), disable: true }
        }
    }
}
