//! Every mail a change sends, built here from the facts the store read (R14, R22, R23, section 9,
//! business verification): the kind, the recipient, what it is about (its dedupe key) and the
//! facts its templates show. The store only enqueues what these return, in the change's
//! transaction.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::alerts::BalanceAlert;
use crate::credits::Credits;
use crate::ids::AccountId;
use crate::mail::{Mail, MailKind};
use crate::verification::VerificationRequest;

/// An account as a mail addresses it.
#[derive(Debug, Clone, Copy)]
pub struct Recipient<'a> {
    pub account: AccountId,
    pub email: &'a str,
    pub name: &'a str,
}

fn to(kind: MailKind, who: Recipient<'_>, about: &str) -> Mail {
    Mail::new(kind, who.email, Some(who.account), about).fact("name", who.name)
}

/// How a time reads in a mail.
fn written(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// R23: a balance alert, about the event that told the account's systems (`event`); it shows the
/// account's threshold when one is set.
pub fn balance_alert(
    who: Recipient<'_>,
    alert: BalanceAlert,
    available: Credits,
    threshold: Option<Credits>,
    event: &str,
) -> Mail {
    let kind = match alert {
        BalanceAlert::Low { .. } => MailKind::BalanceLow,
        BalanceAlert::Depleted => MailKind::BalanceDepleted,
        BalanceAlert::Recovered { .. } => MailKind::BalanceRecovered,
    };
    let mail = to(kind, who, event).fact("available", available.get().to_string());
    match threshold {
        Some(t) => mail.fact("threshold", t.get().to_string()),
        None => mail,
    }
}

/// R22: an auto top-up failed and auto top-up is off; the mail links to the billing page.
pub fn auto_topup_failed(who: Recipient<'_>, pack: &str, reason: &str, event: &str) -> Mail {
    to(MailKind::AutoTopupFailed, who, event).fact("pack", pack).fact("reason", reason)
}

/// Section 9: an endpoint failing for 5 days is disabled.
pub fn endpoint_disabled(who: Recipient<'_>, endpoint: Uuid, url: &str, failing_since: DateTime<Utc>) -> Mail {
    to(MailKind::WebhookEndpointDisabled, who, &endpoint.to_string())
        .fact("url", url)
        .fact("failing_since", written(failing_since))
}

/// R24: a person added to an account's team is told so, by the account's name.
pub fn member_added(account: AccountId, member: Uuid, email: &str, name: &str, account_name: &str, role: &str) -> Mail {
    Mail::new(MailKind::MemberAdded, email, Some(account), &member.to_string())
        .fact("name", name)
        .fact("account_name", account_name)
        .fact("role", role)
}

/// R26: a member's use reached 80% (`reached` false) or all (`reached` true) of their monthly
/// limit; once each a month (`month` is its first day).
pub fn member_limit(
    member: Uuid,
    who: Recipient<'_>,
    reached: bool,
    (limit, used): (i64, i64),
    month: DateTime<Utc>,
) -> Mail {
    let kind = if reached { MailKind::MemberLimitReached } else { MailKind::MemberLimitNearly };
    to(kind, who, &format!("{member}:{}", month.format("%Y-%m")))
        .fact("limit", limit.to_string())
        .fact("used", used.to_string())
}

/// A bucket about to expire with credits left (R23's `credits.expiring`), once per bucket.
pub fn credits_expiring(
    who: Recipient<'_>,
    bucket: Uuid,
    credits: i64,
    kind: &str,
    expires_at: DateTime<Utc>,
    expires_at_written: &str,
) -> Mail {
    to(MailKind::CreditsExpiring, who, &bucket.to_string())
        .fact("credits", credits.to_string())
        .fact("kind", kind)
        .fact("expires_at", expires_at_written)
        .fact("expires_on", expires_at.format("%Y-%m-%d").to_string())
}

/// A business-verification request as its two mails show it.
pub struct Submitted<'a> {
    pub id: Uuid,
    pub request: &'a VerificationRequest,
    pub account: Recipient<'a>,
    /// The sales team's address, and the link its mail opens the request with.
    pub sales_team: &'a str,
    pub admin_link: &'a str,
}

/// A request submitted: one mail to the sales team, a receipt to the account.
pub fn verification_submitted(s: &Submitted<'_>) -> [Mail; 2] {
    let r = s.request;
    let about = s.id.to_string();
    let facts = |mail: Mail| {
        mail.fact("company_name", &r.company_name)
            .fact("website", &r.website)
            .fact("country", &r.country)
            .fact("tax_id", r.tax_id.clone().unwrap_or_else(|| "—".into()))
            .fact("contact_name", &r.contact_name)
            .fact("contact_email", &r.contact_email)
            .fact("intended_use", &r.intended_use)
            .fact(
                "expected_monthly_credits",
                r.expected_monthly_credits.map(|n| n.to_string()).unwrap_or_else(|| "—".into()),
            )
            .fact("request_id", about.clone())
            .fact("account_id", s.account.account.to_string())
            .fact("account_email", s.account.email)
            .fact("account_name", s.account.name)
            .fact("admin_link", s.admin_link)
    };
    [
        facts(Mail::new(MailKind::VerificationSales, s.sales_team, Some(s.account.account), &about)),
        facts(Mail::new(MailKind::VerificationReceipt, s.account.email, Some(s.account.account), &about)),
    ]
}

/// A request decided: approved, or rejected with its reason.
pub fn verification_decided(
    kind: MailKind,
    who: Recipient<'_>,
    request: Uuid,
    company_name: &str,
    reason: Option<&str>,
) -> Mail {
    Mail::new(kind, who.email, Some(who.account), &request.to_string())
        .fact("company_name", company_name)
        .fact("account_name", who.name)
        .fact("reason", reason.unwrap_or_default())
        .fact("request_id", request.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who() -> Recipient<'static> {
        Recipient { account: AccountId(Uuid::nil()), email: "ada@example.test", name: "Ada" }
    }

    fn fact<'m>(mail: &'m Mail, name: &str) -> Option<&'m str> {
        mail.facts.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_balance_alert_mail_is_of_its_alerts_kind_about_its_event_and_shows_the_threshold_when_set() {
        let (c, t) = (Credits::new, Some(Credits::new(100)));
        let low = balance_alert(who(), BalanceAlert::Low { available: c(40), threshold: c(100) }, c(40), t, "evt_1");
        assert_eq!((low.kind, low.dedupe_key.as_str()), (MailKind::BalanceLow, "balance_low:evt_1"));
        assert_eq!((fact(&low, "available"), fact(&low, "threshold")), (Some("40"), Some("100")));
        let depleted = balance_alert(who(), BalanceAlert::Depleted, c(0), None, "evt_2");
        assert_eq!((depleted.kind, fact(&depleted, "threshold")), (MailKind::BalanceDepleted, None));
        let back = balance_alert(who(), BalanceAlert::Recovered { available: c(120), threshold: t }, c(120), t, "e");
        assert_eq!((back.kind, fact(&back, "name")), (MailKind::BalanceRecovered, Some("Ada")));
    }

    #[test]
    fn a_submitted_request_mails_the_sales_team_and_the_account_once_each() {
        let request = VerificationRequest {
            company_name: "Acme".into(),
            website: "https://acme.example".into(),
            country: "DE".into(),
            tax_id: None,
            contact_name: "Ada".into(),
            contact_email: "ada@acme.example".into(),
            intended_use: "ads".into(),
            expected_monthly_credits: Some(5000),
        };
        let id = Uuid::from_u128(7);
        let submitted =
            Submitted { id, request: &request, account: who(), sales_team: "sales@x.test", admin_link: "https://a/1" };
        let [sales, receipt] = verification_submitted(&submitted);
        assert_eq!((sales.kind, sales.to.as_str()), (MailKind::VerificationSales, "sales@x.test"));
        assert_eq!((receipt.kind, receipt.to.as_str()), (MailKind::VerificationReceipt, "ada@example.test"));
        assert_ne!(sales.dedupe_key, receipt.dedupe_key);
        assert_eq!((fact(&sales, "tax_id"), fact(&sales, "expected_monthly_credits")), (Some("—"), Some("5000")));
        let rejected = verification_decided(MailKind::VerificationRejected, who(), id, "Acme", Some("no website"));
        assert_eq!(fact(&rejected, "reason"), Some("no website"));
    }
}
