//! The templates: `{{field}}` is replaced by the payload's field, HTML-escaped in the HTML part.

use credits_domain::mail::MailKind;
use serde_json::Value;

pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

struct Template {
    subject: &'static str,
    text: &'static str,
    html: &'static str,
}

fn template(kind: MailKind) -> Template {
    macro_rules! t {
        ($name:literal) => {
            Template {
                subject: include_str!(concat!("../templates/", $name, ".subject.txt")),
                text: include_str!(concat!("../templates/", $name, ".txt")),
                html: include_str!(concat!("../templates/", $name, ".html")),
            }
        };
    }
    match kind {
        MailKind::PaymentFailed => t!("payment_failed"),
        MailKind::UpgradePaymentFailed => t!("upgrade_payment_failed"),
        MailKind::VerificationSales => t!("verification_sales"),
        MailKind::VerificationReceipt => t!("verification_receipt"),
        MailKind::VerificationApproved => t!("verification_approved"),
        MailKind::VerificationRejected => t!("verification_rejected"),
        MailKind::BalanceLow => t!("balance_low"),
        MailKind::BalanceDepleted => t!("balance_depleted"),
        MailKind::BalanceRecovered => t!("balance_recovered"),
        MailKind::CreditsExpiring => t!("credits_expiring"),
        MailKind::AutoTopupFailed => t!("auto_topup_failed"),
        MailKind::WebhookEndpointDisabled => t!("webhook_endpoint_disabled"),
        MailKind::MemberAdded => t!("member_added"),
        MailKind::MemberLimitNearly => t!("member_limit_nearly"),
        MailKind::MemberLimitReached => t!("member_limit_reached"),
    }
}

pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

fn fill(template: &str, payload: &Value, escape: bool) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let key = after[..end].trim();
        let value = match payload.get(key) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        out.push_str(&if escape { escape_html(&value) } else { value });
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// A mail of `kind` from its JSON payload.
pub fn render(kind: MailKind, payload: &str) -> Result<Rendered, String> {
    let t = template(kind);
    let payload: Value = serde_json::from_str(payload).map_err(|e| format!("mail payload: {e}"))?;
    Ok(Rendered {
        // A subject is one line: line breaks in a value must not start new headers.
        subject: fill(t.subject.trim(), &payload, false).replace(['\r', '\n'], " "),
        text: fill(t.text, &payload, false),
        html: fill(t.html, &payload, true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_in_html_and_kept_in_text() {
        let r = render(
            MailKind::PaymentFailed,
            r#"{"name": "<script>alert(1)</script>", "plan": "pro", "invoice": "in_1", "pay_url": "https://x"}"#,
        )
        .unwrap();
        assert!(r.html.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !r.html.contains("<script>"));
        assert!(r.text.contains("<script>alert(1)</script>"));
        assert_eq!(r.subject, "Your pro renewal payment failed");
    }

    #[test]
    fn every_kind_has_its_templates_and_a_bad_payload_is_an_error() {
        for kind in MailKind::ALL {
            assert!(!render(kind, "{}").unwrap().subject.is_empty(), "{kind:?}");
        }
        assert!(render(MailKind::PaymentFailed, "not json").is_err());
    }
}
