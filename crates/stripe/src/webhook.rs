//! Webhook deliveries: the `Stripe-Signature` header checked over the raw body (any `v1` may
//! match any configured secret, so secrets can be rotated; 300 s tolerance against the real
//! clock), then the event read into the domain's terms.

use chrono::{DateTime, Utc};
use credits_domain::payments::{
    BillingReason, ChargeInfo, DisputeInfo, DisputeStatus, IntentInfo, InvoiceInfo, InvoiceLine, PaymentEvent,
    PaymentLink, SessionInfo, SessionMode, StripeEvent, SubscriptionInfo, SubscriptionStatus, WebhookDecoder,
    WebhookError,
};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// How far a signature's timestamp may be from now (SPEC section 5).
pub const TOLERANCE_SECONDS: i64 = 300;

pub struct StripeWebhooks {
    secrets: Vec<String>,
}

impl StripeWebhooks {
    /// Empty secrets are dropped: with none configured, every delivery is refused.
    pub fn new(secrets: &[String]) -> StripeWebhooks {
        StripeWebhooks { secrets: secrets.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect() }
    }
}

impl WebhookDecoder for StripeWebhooks {
    fn decode(&self, payload: &[u8], signature: &str) -> Result<StripeEvent, WebhookError> {
        verify(payload, signature, &self.secrets, Utc::now().timestamp())?;
        parse(payload)
    }

    fn decode_verified(&self, payload: &[u8]) -> Result<StripeEvent, WebhookError> {
        parse(payload)
    }
}

/// Stripe's scheme: `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<payload>")>[,v1=…]`.
pub fn verify(payload: &[u8], header: &str, secrets: &[String], now: i64) -> Result<(), WebhookError> {
    let mut timestamp: Option<i64> = None;
    let mut candidates: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let (key, value) = part.trim().split_once('=').ok_or(WebhookError::BadSignature)?;
        match key {
            "t" => timestamp = Some(value.parse().map_err(|_| WebhookError::BadSignature)?),
            "v1" => {
                if let Ok(bytes) = hex::decode(value) {
                    candidates.push(bytes);
                }
            }
            _ => {}
        }
    }
    let t = timestamp.ok_or(WebhookError::BadSignature)?;
    let signed_matches = secrets.iter().any(|secret| {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return false };
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(payload);
        // verify_slice compares in constant time.
        candidates.iter().any(|c| mac.clone().verify_slice(c).is_ok())
    });
    if !signed_matches {
        return Err(WebhookError::BadSignature);
    }
    if (now - t).abs() > TOLERANCE_SECONDS {
        return Err(WebhookError::Expired);
    }
    Ok(())
}

fn at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(v, |node, key| node.get(key)).filter(|n| !n.is_null())
}

fn string(v: &Value, path: &[&str]) -> Option<String> {
    at(v, path).and_then(Value::as_str).map(str::to_string)
}

/// An expandable field: an id, or the object with its id.
fn id_of(v: &Value, path: &[&str]) -> Option<String> {
    match at(v, path)? {
        Value::String(s) => Some(s.clone()),
        obj => obj.get("id").and_then(Value::as_str).map(str::to_string),
    }
}

fn int(v: &Value, path: &[&str]) -> Option<i64> {
    at(v, path).and_then(Value::as_i64)
}

fn time(v: &Value, path: &[&str]) -> Option<DateTime<Utc>> {
    int(v, path).and_then(|s| DateTime::from_timestamp(s, 0))
}

fn required<T>(value: Option<T>, what: &str) -> Result<T, WebhookError> {
    value.ok_or_else(|| WebhookError::Malformed(format!("no {what}")))
}

fn session(o: &Value) -> Result<SessionInfo, WebhookError> {
    Ok(SessionInfo {
        id: required(string(o, &["id"]), "session id")?,
        mode: string(o, &["mode"]).as_deref().and_then(SessionMode::parse),
        paid: matches!(string(o, &["payment_status"]).as_deref(), Some("paid" | "no_payment_required")),
        customer: id_of(o, &["customer"]),
        subscription: id_of(o, &["subscription"]),
        payment_intent: id_of(o, &["payment_intent"]),
        amount_total: int(o, &["amount_total"]),
        amount_subtotal: int(o, &["amount_subtotal"]),
        currency: string(o, &["currency"]),
    })
}

fn invoice(o: &Value) -> Result<InvoiceInfo, WebhookError> {
    let lines = at(o, &["lines", "data"]).and_then(Value::as_array).cloned().unwrap_or_default();
    Ok(InvoiceInfo {
        id: required(string(o, &["id"]), "invoice id")?,
        customer: id_of(o, &["customer"]),
        // Current shape first; the pre-2025 top-level field as a fallback.
        subscription: id_of(o, &["parent", "subscription_details", "subscription"])
            .or_else(|| id_of(o, &["subscription"])),
        billing_reason: BillingReason::parse(string(o, &["billing_reason"]).as_deref()),
        hosted_invoice_url: string(o, &["hosted_invoice_url"]),
        amount_paid: int(o, &["amount_paid"]).unwrap_or(0),
        lines: lines
            .iter()
            .filter_map(|l| {
                Some(InvoiceLine {
                    price_id: id_of(l, &["pricing", "price_details", "price"]).or_else(|| id_of(l, &["price"])),
                    amount: int(l, &["amount"]).unwrap_or(0),
                    period_start: time(l, &["period", "start"])?,
                    period_end: time(l, &["period", "end"])?,
                    proration: at(l, &["parent", "subscription_item_details", "proration"])
                        .and_then(Value::as_bool)
                        .or_else(|| at(l, &["proration"]).and_then(Value::as_bool))
                        .unwrap_or(false),
                })
            })
            .collect(),
    })
}

fn subscription(o: &Value) -> Result<SubscriptionInfo, WebhookError> {
    let item = at(o, &["items", "data"]).and_then(Value::as_array).and_then(|items| items.first()).cloned();
    let item = item.as_ref();
    Ok(SubscriptionInfo {
        id: required(string(o, &["id"]), "subscription id")?,
        customer: id_of(o, &["customer"]),
        status: {
            let status = required(string(o, &["status"]), "subscription status")?;
            SubscriptionStatus::parse(&status)
                .ok_or_else(|| WebhookError::Malformed(format!("unknown subscription status {status:?}")))?
        },
        price_id: item.and_then(|i| id_of(i, &["price"])),
        item_id: item.and_then(|i| string(i, &["id"])),
        cancel_at_period_end: at(o, &["cancel_at_period_end"]).and_then(Value::as_bool).unwrap_or(false),
        period_start: item
            .and_then(|i| time(i, &["current_period_start"]))
            .or_else(|| time(o, &["current_period_start"])),
        period_end: item.and_then(|i| time(i, &["current_period_end"])).or_else(|| time(o, &["current_period_end"])),
        pending_update: at(o, &["pending_update"]).is_some(),
    })
}

fn dispute(o: &Value) -> Result<DisputeInfo, WebhookError> {
    Ok(DisputeInfo {
        id: required(string(o, &["id"]), "dispute id")?,
        charge: id_of(o, &["charge"]),
        payment_intent: id_of(o, &["payment_intent"]),
        status: match string(o, &["status"]).as_deref() {
            Some("won") => DisputeStatus::Won,
            Some("lost") => DisputeStatus::Lost,
            _ => DisputeStatus::Open,
        },
    })
}

fn charge(o: &Value) -> Result<ChargeInfo, WebhookError> {
    Ok(ChargeInfo {
        id: required(string(o, &["id"]), "charge id")?,
        payment_intent: id_of(o, &["payment_intent"]),
        amount: required(int(o, &["amount"]), "charge amount")?,
        amount_refunded: int(o, &["amount_refunded"]).unwrap_or(0),
    })
}

fn intent(o: &Value) -> Result<IntentInfo, WebhookError> {
    Ok(IntentInfo {
        id: required(string(o, &["id"]), "payment intent id")?,
        auto_topup: string(o, &["metadata", "auto_topup_id"]),
        failure: string(o, &["last_payment_error", "message"]),
        failure_code: string(o, &["last_payment_error", "code"]),
    })
}

/// An event envelope and its object, in the pinned API version's shapes.
pub fn parse(body: &[u8]) -> Result<StripeEvent, WebhookError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    let id = required(string(&v, &["id"]), "event id")?;
    let event_type = required(string(&v, &["type"]), "event type")?;
    let created = required(time(&v, &["created"]), "event time")?;
    let object = at(&v, &["data", "object"]).ok_or_else(|| WebhookError::Malformed("no data.object".into()))?;
    let payload = match event_type.as_str() {
        "checkout.session.completed" => PaymentEvent::CheckoutCompleted(session(object)?),
        "checkout.session.async_payment_succeeded" => PaymentEvent::AsyncPaymentSucceeded(session(object)?),
        "checkout.session.async_payment_failed" => PaymentEvent::AsyncPaymentFailed(session(object)?),
        "invoice.paid" => PaymentEvent::InvoicePaid(invoice(object)?),
        "invoice.payment_failed" => PaymentEvent::InvoicePaymentFailed(invoice(object)?),
        "customer.subscription.created" | "customer.subscription.updated" => {
            PaymentEvent::SubscriptionUpdated(subscription(object)?)
        }
        "customer.subscription.deleted" => PaymentEvent::SubscriptionDeleted(subscription(object)?),
        "charge.refunded" => {
            let c = charge(object)?;
            let link = PaymentLink { payment_intent: c.payment_intent.clone(), invoice: None };
            PaymentEvent::ChargeRefunded(c, link)
        }
        "checkout.session.expired" => PaymentEvent::SessionExpired(session(object)?),
        "charge.dispute.created" => {
            let d = dispute(object)?;
            let link = PaymentLink { payment_intent: d.payment_intent.clone(), invoice: None };
            PaymentEvent::DisputeCreated(d, link)
        }
        "charge.dispute.closed" => PaymentEvent::DisputeClosed(dispute(object)?),
        "customer.deleted" => {
            PaymentEvent::CustomerDeleted { customer: required(string(object, &["id"]), "customer id")? }
        }
        "payment_intent.succeeded" => PaymentEvent::IntentSucceeded(intent(object)?),
        "payment_intent.payment_failed" => PaymentEvent::IntentFailed(intent(object)?),
        _ => PaymentEvent::Other,
    };
    let raw = String::from_utf8_lossy(body).into_owned();
    Ok(StripeEvent { id, event_type, created, payload, raw })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(payload: &[u8], t: i64, secret: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(payload);
        hex::encode(mac.finalize().into_bytes())
    }

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_signature_with_any_configured_secret_and_any_v1_verifies() {
        let body = br#"{"id":"evt_1"}"#;
        let secrets = vec!["whsec_old".to_string(), "whsec_new".to_string()];
        let header = format!("t={NOW},v1={},v1={}", sign(body, NOW, "whsec_retired"), sign(body, NOW, "whsec_new"));
        assert_eq!(verify(body, &header, &secrets, NOW), Ok(()));
    }

    #[test]
    fn a_wrong_secret_another_body_or_no_v1_is_a_bad_signature() {
        let body = br#"{"id":"evt_1"}"#;
        let secrets = vec!["whsec_a".to_string()];
        let bad = format!("t={NOW},v1={}", sign(body, NOW, "whsec_b"));
        assert_eq!(verify(body, &bad, &secrets, NOW), Err(WebhookError::BadSignature));
        let other = format!("t={NOW},v1={}", sign(b"{}", NOW, "whsec_a"));
        assert_eq!(verify(body, &other, &secrets, NOW), Err(WebhookError::BadSignature));
        assert_eq!(verify(body, &format!("t={NOW}"), &secrets, NOW), Err(WebhookError::BadSignature));
        assert_eq!(verify(body, "garbage", &secrets, NOW), Err(WebhookError::BadSignature));
        assert_eq!(
            verify(body, &format!("t={NOW},v1={}", sign(body, NOW, "whsec_a")), &[], NOW),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn the_tolerance_is_300_seconds_either_way() {
        let body = br#"{"id":"evt_1"}"#;
        let secrets = vec!["whsec_a".to_string()];
        for (offset, ok) in [(300, true), (-300, true), (301, false), (-301, false)] {
            let t = NOW - offset;
            let header = format!("t={t},v1={}", sign(body, t, "whsec_a"));
            assert_eq!(verify(body, &header, &secrets, NOW).is_ok(), ok, "offset {offset}");
        }
    }

    #[test]
    fn an_invoice_names_its_subscription_and_lines_in_the_current_shape() {
        let body = serde_json::json!({
            "id": "evt_1", "type": "invoice.paid", "created": NOW, "object": "event",
            "data": {"object": {"id": "in_1", "customer": "cus_1", "billing_reason": "subscription_update",
                "parent": {"subscription_details": {"subscription": "sub_1"}},
                "lines": {"data": [
                    {"amount": -500, "period": {"start": NOW, "end": NOW + 10}, "pricing": {"price_details": {"price": "price_old"}}},
                    {"amount": 1500, "period": {"start": NOW, "end": NOW + 10}, "pricing": {"price_details": {"price": "price_new"}},
                     "parent": {"subscription_item_details": {"proration": true}}}
                ]}}}
        });
        let event = parse(body.to_string().as_bytes()).unwrap();
        let PaymentEvent::InvoicePaid(inv) = event.payload else { panic!() };
        assert_eq!(inv.subscription.as_deref(), Some("sub_1"));
        assert_eq!(inv.plan_line().unwrap().price_id.as_deref(), Some("price_new"));
        assert!(inv.plan_line().unwrap().proration);
    }

    #[test]
    fn an_unknown_type_is_other_and_a_broken_body_is_malformed() {
        let body =
            br#"{"id":"evt_2","type":"payment_intent.created","created":1800000000,"data":{"object":{"id":"pi_1"}}}"#;
        assert_eq!(parse(body).unwrap().payload, PaymentEvent::Other);
        assert!(matches!(parse(br#"{"id": "evt_broken", "type": "#), Err(WebhookError::Malformed(_))));
    }

    mod fuzz {
        use super::super::*;
        use proptest::prelude::*;

        const TYPES: [&str; 14] = [
            "checkout.session.completed",
            "checkout.session.async_payment_succeeded",
            "checkout.session.async_payment_failed",
            "checkout.session.expired",
            "invoice.paid",
            "invoice.payment_failed",
            "customer.subscription.created",
            "customer.subscription.updated",
            "customer.subscription.deleted",
            "customer.deleted",
            "charge.refunded",
            "charge.dispute.created",
            "charge.dispute.closed",
            "payment_intent.succeeded",
        ];

        fn json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
                "[a-z_]{0,12}".prop_map(Value::from),
            ];
            leaf.prop_recursive(4, 48, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    prop::collection::btree_map(
                        prop_oneof![
                            Just("id".to_string()),
                            Just("status".to_string()),
                            Just("lines".to_string()),
                            Just("data".to_string()),
                            Just("items".to_string()),
                            Just("period".to_string()),
                            Just("amount".to_string()),
                            Just("customer".to_string()),
                            "[a-z_]{1,10}",
                        ],
                        inner,
                        0..6
                    )
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// The decoder reads whatever bytes arrive without panicking.
            #[test]
            fn arbitrary_bytes_never_panic_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
                let _ = parse(&bytes);
            }

            /// Events of every type we act on, with objects of any shape: read or refused, never a panic.
            #[test]
            fn events_of_any_shape_never_panic_the_decoder(t in 0..TYPES.len(), object in json(), created in any::<i64>()) {
                let body = serde_json::json!({"id": "evt_1", "type": TYPES[t], "created": created, "data": {"object": object}});
                let _ = parse(body.to_string().as_bytes());
            }
        }
    }
}
