//! Outbound calls to Stripe (customers, Checkout Sessions, subscription price changes).

use std::collections::HashMap;
use std::time::Duration;

use credits_domain::ids::AccountId;
use credits_domain::payments::{
    CreatedSession, GatewayError, LiveSubscription, PaymentGateway, SessionMode, SessionRequest,
};
use stripe::{IdempotencyKey, RequestStrategy, StripeRequest};
use stripe_billing::subscription::{
    RetrieveSubscription, UpdateSubscription, UpdateSubscriptionItems, UpdateSubscriptionProrationBehavior,
};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionPaymentIntentData,
    CreateCheckoutSessionSubscriptionData,
};
use stripe_core::customer::CreateCustomer;

/// Stripe reached with the configured key, at `stripe.api_base`.
pub struct StripeGateway {
    client: stripe::blocking::Client,
}

fn unavailable(e: impl std::fmt::Display) -> GatewayError {
    GatewayError::Unavailable(e.to_string())
}

// What is read back of Stripe's answers: only the fields used. Stripe objects grow new fields
// all the time; a payment that went through must never look failed because one of them did not
// parse (an update applied at Stripe and answered 503 here would be worse than either).
#[derive(miniserde::Deserialize)]
struct Created {
    id: String,
    url: Option<String>,
}

#[derive(miniserde::Deserialize)]
struct Items {
    items: ItemList,
}

#[derive(miniserde::Deserialize)]
struct ItemList {
    data: Vec<Created>,
}

/// Stripe's Idempotency-Key, made from what the domain names a request by (a client's key may be
/// any visible characters of any length; Stripe's keys are at most 255).
fn idempotent(material: &str) -> Result<RequestStrategy, GatewayError> {
    use sha2::{Digest, Sha256};
    let key = format!("credits-{}", hex::encode(Sha256::digest(material.as_bytes())));
    IdempotencyKey::new(&key).map(RequestStrategy::Idempotent).map_err(unavailable)
}

impl StripeGateway {
    pub fn new(secret_key: &str, api_base: &str) -> Result<StripeGateway, GatewayError> {
        let client = stripe::ClientBuilder::new(secret_key)
            .url(api_base.trim_end_matches('/'))
            .timeout(Duration::from_secs(20))
            .build_sync()
            .map_err(unavailable)?;
        Ok(StripeGateway { client })
    }
}

fn metadata(account: AccountId, item_key: &str, item: &str) -> HashMap<String, String> {
    HashMap::from([("account_id".to_string(), account.to_string()), (item_key.to_string(), item.to_string())])
}

impl PaymentGateway for StripeGateway {
    fn create_customer(&self, account: AccountId, email: &str, name: &str) -> Result<String, GatewayError> {
        let customer: Created = CreateCustomer::new()
            .email(email)
            .name(name)
            .metadata(HashMap::from([("account_id".to_string(), account.to_string())]))
            .build()
            .customize()
            .request_strategy(idempotent(&format!("credits-customer-{account}"))?)
            .send_blocking(&self.client)
            .map_err(unavailable)?;
        Ok(customer.id)
    }

    fn create_session(&self, r: &SessionRequest) -> Result<CreatedSession, GatewayError> {
        let line =
            CreateCheckoutSessionLineItems { price: Some(r.price_id.clone()), quantity: Some(1), ..Default::default() };
        let mut create = CreateCheckoutSession::new()
            .customer(r.customer.clone())
            .client_reference_id(r.account.to_string())
            .line_items(vec![line])
            .success_url(r.urls.success_url.clone())
            .cancel_url(r.urls.cancel_url.clone());
        create = match r.mode {
            SessionMode::Subscription => {
                let meta = metadata(r.account, "plan", &r.item_id);
                let mut data = CreateCheckoutSessionSubscriptionData::new();
                data.metadata = Some(meta.clone());
                create.mode(stripe_shared::CheckoutSessionMode::Subscription).metadata(meta).subscription_data(data)
            }
            SessionMode::Payment => {
                let meta = metadata(r.account, "pack", &r.item_id);
                let mut data = CreateCheckoutSessionPaymentIntentData::new();
                data.metadata = Some(meta.clone());
                create.mode(stripe_shared::CheckoutSessionMode::Payment).metadata(meta).payment_intent_data(data)
            }
        };
        let session: Created = create
            .build()
            .customize()
            .request_strategy(idempotent(&r.idempotency)?)
            .send_blocking(&self.client)
            .map_err(unavailable)?;
        Ok(CreatedSession { id: session.id, url: session.url })
    }

    fn change_price(
        &self,
        sub: &LiveSubscription,
        price_id: &str,
        upgrade: bool,
        idempotency_key: &str,
    ) -> Result<(), GatewayError> {
        // The item is learned from subscription events; before any arrived, ask Stripe.
        let item_id = match &sub.item_id {
            Some(id) => id.clone(),
            None => RetrieveSubscription::new(sub.id.as_str())
                .build()
                .customize::<Items>()
                .send_blocking(&self.client)
                .map_err(unavailable)?
                .items
                .data
                .first()
                .map(|item| item.id.clone())
                .ok_or_else(|| unavailable("the subscription has no item"))?,
        };
        let item =
            UpdateSubscriptionItems { id: Some(item_id), price: Some(price_id.to_string()), ..Default::default() };
        // An upgrade is prorated and invoiced now; a downgrade changes the price from the next
        // period on, with no proration (R14: it takes effect at the period's end).
        let proration = if upgrade {
            UpdateSubscriptionProrationBehavior::AlwaysInvoice
        } else {
            UpdateSubscriptionProrationBehavior::None
        };
        let _: Created = UpdateSubscription::new(sub.id.as_str())
            .items(vec![item])
            .proration_behavior(proration)
            .build()
            .customize()
            .request_strategy(idempotent(idempotency_key)?)
            .send_blocking(&self.client)
            .map_err(unavailable)?;
        Ok(())
    }
}

/// No `stripe.secret_key` configured: every payment call is PAYMENTS_UNAVAILABLE.
pub struct UnconfiguredGateway;

impl PaymentGateway for UnconfiguredGateway {
    fn create_customer(&self, _: AccountId, _: &str, _: &str) -> Result<String, GatewayError> {
        Err(unavailable("stripe.secret_key is not configured"))
    }

    fn create_session(&self, _: &SessionRequest) -> Result<CreatedSession, GatewayError> {
        Err(unavailable("stripe.secret_key is not configured"))
    }

    fn change_price(&self, _: &LiveSubscription, _: &str, _: bool, _: &str) -> Result<(), GatewayError> {
        Err(unavailable("stripe.secret_key is not configured"))
    }
}
