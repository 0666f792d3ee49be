//! What each outbound webhook event says (section 9's `data`), typed: built here from the facts
//! of the change, serialized by the store into the event's body. The field names are the
//! contract's; a time is RFC 3339 in UTC to the second.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::alerts::BalanceAlert;
use super::webhooks::EventType;
use crate::credits::Credits;
use crate::mail::{Mail, MailKind};

/// A time as a payload writes it.
pub fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// One event's `data`, with its type.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Payload {
    /// `credits.granted`: a new bucket.
    CreditsGranted {
        account_id: Uuid,
        bucket_id: Uuid,
        kind: &'static str,
        credits: i64,
        expires_at: Option<String>,
        entry_type: &'static str,
        reason: Option<String>,
    },
    /// `credits.expiring` (R23): a bucket with credits left expires soon.
    CreditsExpiring { account_id: Uuid, bucket_id: Uuid, kind: String, credits: i64, expires_at: String },
    /// `plan.changed`.
    PlanChanged { account_id: Uuid, from: String, to: String },
    /// `account.restricted` or `account.unrestricted` (R19).
    Restriction {
        #[serde(skip)]
        restricted: bool,
        account_id: Uuid,
    },
    /// `balance.low`, `balance.depleted`, `balance.recovered` (R23).
    Balance {
        #[serde(skip)]
        alert: BalanceAlert,
        account_id: Uuid,
        available: i64,
        /// Absent for `balance.depleted`; null for `balance.recovered` of an account with none set.
        #[serde(skip_serializing_if = "Option::is_none")]
        threshold: Option<Option<i64>>,
    },
    /// `auto_topup.succeeded` (R22).
    AutoTopupSucceeded {
        account_id: Uuid,
        auto_topup_id: Uuid,
        pack: String,
        credits: i64,
        bucket_id: Uuid,
        payment_intent: Option<String>,
    },
    /// `auto_topup.failed` (R22).
    AutoTopupFailed {
        account_id: Uuid,
        auto_topup_id: Uuid,
        pack: String,
        payment_intent: Option<String>,
        reason: String,
        auto_topup_enabled: bool,
    },
    /// `payment.failed` (R14): a renewal's or an upgrade's payment.
    PaymentFailed { account_id: Uuid, payment: &'static str, invoice: Option<String>, subscription: Option<String> },
    /// `business_verification.decided`.
    VerificationDecided { account_id: Uuid, request_id: Uuid, status: &'static str, reason: Option<String> },
    /// `member.added` and `member.removed` (R24).
    Member {
        #[serde(skip)]
        added: bool,
        account_id: Uuid,
        member_id: Uuid,
        email: String,
        role: &'static str,
    },
    /// `member.limit_reached` (R26): once a month per member.
    MemberLimitReached { account_id: Uuid, member_id: Uuid, monthly_credit_limit: i64, used_this_month: i64 },
}

impl Payload {
    pub fn event_type(&self) -> EventType {
        match self {
            Payload::CreditsGranted { .. } => EventType::CreditsGranted,
            Payload::CreditsExpiring { .. } => EventType::CreditsExpiring,
            Payload::PlanChanged { .. } => EventType::PlanChanged,
            Payload::Restriction { restricted: true, .. } => EventType::AccountRestricted,
            Payload::Restriction { restricted: false, .. } => EventType::AccountUnrestricted,
            Payload::Balance { alert, .. } => alert.event_type(),
            Payload::AutoTopupSucceeded { .. } => EventType::AutoTopupSucceeded,
            Payload::AutoTopupFailed { .. } => EventType::AutoTopupFailed,
            Payload::PaymentFailed { .. } => EventType::PaymentFailed,
            Payload::VerificationDecided { .. } => EventType::BusinessVerificationDecided,
            Payload::Member { added: true, .. } => EventType::MemberAdded,
            Payload::Member { added: false, .. } => EventType::MemberRemoved,
            Payload::MemberLimitReached { .. } => EventType::MemberLimitReached,
        }
    }

    /// Section 9: a mail that tells of a failed payment (a renewal's, an upgrade's) is told to
    /// the account's systems too, as `payment.failed`.
    pub fn payment_failed(
        account_id: Uuid,
        mail: &Mail,
        invoice: Option<String>,
        subscription: Option<String>,
    ) -> Option<Payload> {
        let payment = match mail.kind {
            MailKind::PaymentFailed => "renewal",
            MailKind::UpgradePaymentFailed => "upgrade",
            _ => return None,
        };
        Some(Payload::PaymentFailed { account_id, payment, invoice, subscription })
    }

    /// R23: what a balance alert says.
    pub fn balance(account_id: Uuid, alert: BalanceAlert, available: Credits) -> Payload {
        let (available, threshold) = match alert {
            BalanceAlert::Low { available, threshold } => (available, Some(Some(threshold.get()))),
            BalanceAlert::Depleted => (available, None),
            BalanceAlert::Recovered { available, threshold } => (available, Some(threshold.map(Credits::get))),
        };
        Payload::Balance { alert, account_id, available: available.get(), threshold }
    }
}

/// An account as a transaction locked it and as it leaves it: what `settle` compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountState<'a> {
    pub plan: &'a str,
    pub restricted: bool,
}

/// The events a change to an account tells, before its commit: `plan.changed` when its plan
/// moved, `account.restricted` / `.unrestricted` when its restriction did.
pub fn account_changes(account_id: Uuid, before: &AccountState<'_>, after: &AccountState<'_>) -> Vec<Payload> {
    let mut told = Vec::new();
    if after.plan != before.plan {
        told.push(Payload::PlanChanged { account_id, from: before.plan.to_string(), to: after.plan.to_string() });
    }
    if after.restricted != before.restricted {
        told.push(Payload::Restriction { restricted: after.restricted, account_id });
    }
    told
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn data(p: &Payload) -> serde_json::Value {
        serde_json::to_value(p).unwrap()
    }

    #[test]
    fn a_balance_events_threshold_is_there_or_null_or_absent_as_each_alert_says() {
        let id = Uuid::nil();
        let c = Credits::new;
        let low = Payload::balance(id, BalanceAlert::Low { available: c(40), threshold: c(100) }, c(40));
        assert_eq!(data(&low), json!({"account_id": id, "available": 40, "threshold": 100}));
        assert_eq!(low.event_type(), EventType::BalanceLow);
        let depleted = Payload::balance(id, BalanceAlert::Depleted, c(0));
        assert_eq!(data(&depleted), json!({"account_id": id, "available": 0}));
        let back = Payload::balance(id, BalanceAlert::Recovered { available: c(5), threshold: None }, c(5));
        assert_eq!(data(&back), json!({"account_id": id, "available": 5, "threshold": null}));
        assert_eq!(back.event_type(), EventType::BalanceRecovered);
    }

    #[test]
    fn a_change_tells_its_plan_and_its_restriction_and_nothing_else() {
        let id = Uuid::nil();
        let free = AccountState { plan: "free", restricted: false };
        assert_eq!(account_changes(id, &free, &free), vec![]);
        let pro_restricted = AccountState { plan: "pro", restricted: true };
        let told = account_changes(id, &free, &pro_restricted);
        assert_eq!(
            told.iter().map(Payload::event_type).collect::<Vec<_>>(),
            vec![EventType::PlanChanged, EventType::AccountRestricted]
        );
        assert_eq!(data(&told[0]), json!({"account_id": id, "from": "free", "to": "pro"}));
        assert_eq!(data(&told[1]), json!({"account_id": id}));
        let lifted = account_changes(id, &pro_restricted, &AccountState { plan: "pro", restricted: false });
        assert_eq!(lifted.iter().map(Payload::event_type).collect::<Vec<_>>(), vec![EventType::AccountUnrestricted]);
    }
}
