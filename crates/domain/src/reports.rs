//! Section 10: what customers used, and what the business owes. Pure: the store reads the ledger
//! as of a moment and hands the sums here.
//!
//! The liability report's identity, for any `at`: granted − used − expired − clawed back =
//! outstanding. Every entry up to `at` falls in one of granted (grants, positive adjustments),
//! used (debits, negative adjustments), clawed back (clawbacks) or expired; a bucket whose
//! `expires_at` has come counts as expired for what its `expire` entries took and for what it
//! still held (the sweep may not have written its entry yet), in the month of its `expires_at`.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, Utc};
use serde::Serialize;

use crate::burn::BucketKind;
use crate::credits::Credits;

/// What a paid bucket was sold for: `amount` (minor units of `currency`) for `credits` credits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitValue {
    pub amount: i64,
    pub credits: i64,
    pub currency: String,
}

impl UnitValue {
    /// The value of `credits` of these, in minor units, rounded to the nearest.
    pub fn of(&self, credits: i64) -> i64 {
        if self.credits <= 0 {
            return 0;
        }
        let exact = i128::from(credits) * i128::from(self.amount);
        let d = i128::from(self.credits);
        let rounded = if exact >= 0 { (2 * exact + d) / (2 * d) } else { -((-2 * exact + d) / (2 * d)) };
        i64::try_from(rounded).unwrap_or(i64::MAX)
    }
}

// ---- usage -------------------------------------------------------------------------------------

/// How `GET /v1/usage` groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    Day,
    Model,
    ApiKey,
    Workflow,
    /// R25: by the member each run was for.
    Member,
}

impl GroupBy {
    pub fn parse(s: &str) -> Option<GroupBy> {
        match s {
            "member" => Some(GroupBy::Member),
            "day" => Some(GroupBy::Day),
            "model" => Some(GroupBy::Model),
            "api_key" => Some(GroupBy::ApiKey),
            "workflow" => Some(GroupBy::Workflow),
            _ => None,
        }
    }
}

/// One row of the ledger export: the entry, its place in the ledger (`seq`, to go on after it),
/// and the member whose run it is (R25).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRow {
    pub seq: i64,
    pub entry: crate::views::LedgerEntryView,
    pub member_id: Option<uuid::Uuid>,
}

/// The longest span a usage or export request covers.
pub const MAX_SPAN_DAYS: i64 = 366;

/// `[from, to)`, checked: `from` before `to`, at most 366 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Span {
    /// Defaults: the last 30 days up to `now`.
    pub fn new(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Result<Span, String> {
        let to = to.unwrap_or(now);
        let from = from.unwrap_or(to - Duration::days(30));
        if from >= to {
            return Err("from must be before to".into());
        }
        if to - from > Duration::days(MAX_SPAN_DAYS) {
            return Err(format!("a span covers at most {MAX_SPAN_DAYS} days"));
        }
        Ok(Span { from, to })
    }
}

/// One group of `GET /v1/usage`: the credits captured and the runs captured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageGroup {
    /// The day (`YYYY-MM-DD`, UTC), the model, the API key's id or the workflow; `null` for runs
    /// without one (canvas runs by API key, runs without a workflow).
    pub key: Option<String>,
    pub credits: Credits,
    pub runs: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageView {
    pub group_by: GroupBy,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub groups: Vec<UsageGroup>,
}

// ---- the liability report ------------------------------------------------------------------------

/// A bucket as of `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketAsOf {
    pub kind: BucketKind,
    pub expires_at: Option<DateTime<Utc>>,
    pub value: Option<UnitValue>,
    /// The sum of its entries up to `at`.
    pub balance: i64,
    /// What its `expire` entries up to `at` took (positive).
    pub expired_by_entries: i64,
}

/// How an entry moved the liability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Flow {
    Granted,
    Used,
    ClawedBack,
}

/// The sum of one month's entries of one flow at one unit value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthFlow {
    /// `YYYY-MM`, UTC.
    pub month: String,
    pub flow: Flow,
    pub value: Option<UnitValue>,
    /// Signed, as the entries are.
    pub credits: i64,
}

/// Credits and what they are worth (minor units; promotional credits are worth nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Amount {
    pub credits: i64,
    pub value: i64,
}

impl Amount {
    fn add(&mut self, credits: i64, value: Option<&UnitValue>) {
        self.credits += credits;
        self.value += value.map_or(0, |v| v.of(credits));
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PaidSide {
    pub credits: i64,
    pub value: i64,
    pub allowance: Amount,
    pub topup: Amount,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PromotionalSide {
    pub credits: i64,
    pub value: i64,
    pub lifetime: Amount,
    pub adjustment: Amount,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Outstanding {
    pub credits: i64,
    pub value: i64,
    pub paid: PaidSide,
    pub promotional: PromotionalSide,
}

/// Outstanding credits expiring within 30, 60 and 90 days of `at` (each includes the shorter).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Expiring {
    pub next_30_days: Amount,
    pub next_60_days: Amount,
    pub next_90_days: Amount,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MonthFigures {
    /// `YYYY-MM`, UTC.
    pub month: String,
    pub granted: Amount,
    pub used: Amount,
    /// Breakage: credits that expired unused, in the month of their bucket's `expires_at`.
    pub expired: Amount,
    pub clawed_back: Amount,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LiabilityReport {
    pub at: DateTime<Utc>,
    /// The currency of the values (the catalog's).
    pub currency: Option<String>,
    pub outstanding: Outstanding,
    pub expiring: Expiring,
    /// Month by month, oldest first.
    pub months: Vec<MonthFigures>,
}

fn month_of(t: DateTime<Utc>) -> String {
    format!("{:04}-{:02}", t.year(), t.month())
}

/// The report as of `at`, from the buckets and the month flows the store read as of `at`.
pub fn liability(at: DateTime<Utc>, buckets: &[BucketAsOf], flows: &[MonthFlow]) -> LiabilityReport {
    let mut outstanding = Outstanding::default();
    let mut expiring = Expiring::default();
    let mut months: BTreeMap<String, MonthFigures> = BTreeMap::new();
    let mut currency = None;
    fn month(months: &mut BTreeMap<String, MonthFigures>, m: String) -> &mut MonthFigures {
        months.entry(m.clone()).or_insert_with(|| MonthFigures { month: m, ..MonthFigures::default() })
    }
    for b in buckets {
        if currency.is_none() {
            currency = b.value.as_ref().map(|v| v.currency.clone());
        }
        let value = b.value.as_ref();
        match b.expires_at {
            Some(end) if end <= at => {
                let gone = b.expired_by_entries + b.balance;
                month(&mut months, month_of(end)).expired.add(gone, value);
            }
            _ => {
                let credits = b.balance;
                let target = match b.kind {
                    BucketKind::Allowance => &mut outstanding.paid.allowance,
                    BucketKind::Topup => &mut outstanding.paid.topup,
                    BucketKind::Lifetime => &mut outstanding.promotional.lifetime,
                    BucketKind::Adjustment => &mut outstanding.promotional.adjustment,
                };
                target.add(credits, value);
                if let Some(end) = b.expires_at {
                    for (days, figure) in [
                        (30, &mut expiring.next_30_days),
                        (60, &mut expiring.next_60_days),
                        (90, &mut expiring.next_90_days),
                    ] {
                        if end <= at + Duration::days(days) {
                            figure.add(credits, value);
                        }
                    }
                }
            }
        }
    }
    for f in flows {
        let row = month(&mut months, f.month.clone());
        // Granted counts positive entries; used and clawed back count what the entries took.
        let (credits, figure) = match f.flow {
            Flow::Granted => (f.credits, &mut row.granted),
            Flow::Used => (-f.credits, &mut row.used),
            Flow::ClawedBack => (-f.credits, &mut row.clawed_back),
        };
        figure.add(credits, f.value.as_ref());
    }
    let paid = &mut outstanding.paid;
    paid.credits = paid.allowance.credits + paid.topup.credits;
    paid.value = paid.allowance.value + paid.topup.value;
    let promo = &mut outstanding.promotional;
    promo.credits = promo.lifetime.credits + promo.adjustment.credits;
    promo.value = promo.lifetime.value + promo.adjustment.value;
    outstanding.credits = outstanding.paid.credits + outstanding.promotional.credits;
    outstanding.value = outstanding.paid.value + outstanding.promotional.value;
    LiabilityReport { at, currency, outstanding, expiring, months: months.into_values().collect() }
}
