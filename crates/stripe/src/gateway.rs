//! Outbound calls to Stripe (customers, Checkout Sessions, subscription price changes).

use std::collections::HashMap;
use std::time::Duration;

use chrono::DateTime;
use credits_domain::ids::AccountId;
use credits_domain::notify::store::IntentAnswer;
use credits_domain::payments::{
    CreatedSession, GatewayError, InvoiceView, LiveSubscription, OffSessionPayment, PaymentGateway, SessionMode,
    SessionRequest,
};
use stripe::{IdempotencyKey, RequestStrategy, StripeRequest};
use stripe_billing::billing_portal_session::CreateBillingPortalSession;
use stripe_billing::invoice::ListInvoice;
use stripe_billing::invoice_payment::{ListInvoicePayment, ListInvoicePaymentPayment, ListInvoicePaymentPaymentType};
use stripe_billing::subscription::{
    CancelSubscription, RetrieveSubscription, UpdateSubscription, UpdateSubscriptionItems,
    UpdateSubscriptionPaymentBehavior, UpdateSubscriptionProrationBehavior,
};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionAutomaticTax, CreateCheckoutSessionCustomerUpdate,
    CreateCheckoutSessionCustomerUpdateAddress, CreateCheckoutSessionCustomerUpdateName,
    CreateCheckoutSessionInvoiceCreation, CreateCheckoutSessionLineItems, CreateCheckoutSessionPaymentIntentData,
    CreateCheckoutSessionPaymentIntentDataSetupFutureUsage, CreateCheckoutSessionSubscriptionData,
    CreateCheckoutSessionTaxIdCollection, ExpireCheckoutSession,
};
use stripe_core::customer::{CreateCustomer, ListPaymentMethodsCustomer};
use stripe_core::payment_intent::{CreatePaymentIntent, CreatePaymentIntentOffSession};
use stripe_core::refund::CreateRefund;

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

/// Stripe's own words for an error: a missing customer is told apart (section 5: the account
/// then gets a new customer); anything else is PAYMENTS_UNAVAILABLE.
fn classify(e: stripe::StripeError, customer: Option<&str>) -> GatewayError {
    if let (stripe::StripeError::Stripe(errors, 400 | 404), Some(customer)) = (&e, customer)
        && errors.code == Some(stripe_shared::ApiErrorsCode::ResourceMissing)
        && errors.param.as_deref() == Some("customer")
    {
        return GatewayError::MissingCustomer(customer.to_string());
    }
    unavailable(e)
}

/// A Stripe error that says the request cannot be done as asked (4xx): it never will be.
fn refused(e: &stripe::StripeError) -> bool {
    matches!(e, stripe::StripeError::Stripe(_, 400..=499))
}

#[derive(miniserde::Deserialize)]
struct Listed<T> {
    data: Vec<T>,
}

#[derive(miniserde::Deserialize)]
struct InvoicePaymentRef {
    invoice: Option<String>,
    payment: Option<PaymentRef>,
}

#[derive(miniserde::Deserialize)]
struct PaymentRef {
    payment_intent: Option<String>,
}

#[derive(miniserde::Deserialize)]
struct InvoiceRef {
    id: String,
    number: Option<String>,
    status: Option<String>,
    amount_paid: Option<i64>,
    subtotal: Option<i64>,
    total: Option<i64>,
    total_excluding_tax: Option<i64>,
    currency: Option<String>,
    created: Option<i64>,
    hosted_invoice_url: Option<String>,
    invoice_pdf: Option<String>,
}

#[derive(miniserde::Deserialize)]
struct IntentRef {
    id: String,
    status: Option<String>,
}

#[derive(miniserde::Deserialize)]
struct MethodRef {
    id: String,
}

impl PaymentGateway for StripeGateway {
    fn create_customer(
        &self,
        account: AccountId,
        email: &str,
        name: &str,
        generation: u32,
    ) -> Result<String, GatewayError> {
        let key = match generation {
            0 => format!("credits-customer-{account}"),
            n => format!("credits-customer-{account}-{n}"),
        };
        let customer: Created = CreateCustomer::new()
            .email(email)
            .name(name)
            .metadata(HashMap::from([("account_id".to_string(), account.to_string())]))
            .build()
            .customize()
            .request_strategy(idempotent(&key)?)
            .send_blocking(&self.client)
            .map_err(unavailable)?;
        Ok(customer.id)
    }

    fn create_session(&self, r: &SessionRequest) -> Result<CreatedSession, GatewayError> {
        let sold = &r.sold;
        let line = CreateCheckoutSessionLineItems {
            price: Some(sold.price_id.clone()),
            quantity: Some(1),
            ..Default::default()
        };
        let mut create = CreateCheckoutSession::new()
            .customer(r.customer.clone())
            .client_reference_id(r.account.to_string())
            .line_items(vec![line])
            .success_url(r.urls.success_url.clone())
            .cancel_url(r.urls.cancel_url.clone());
        // R28: automatic tax, the address it needs, tax ids, and the customer keeping what was
        // collected; none of it when automatic tax is off.
        if let Some(tax) = &r.tax {
            create = create.automatic_tax(CreateCheckoutSessionAutomaticTax::new(tax.automatic));
            if tax.address_required {
                create =
                    create.billing_address_collection(stripe_shared::CheckoutSessionBillingAddressCollection::Required);
            }
            create = create.tax_id_collection(CreateCheckoutSessionTaxIdCollection::new(tax.tax_ids));
            if tax.update_customer {
                let mut update = CreateCheckoutSessionCustomerUpdate::new();
                update.address = Some(CreateCheckoutSessionCustomerUpdateAddress::Auto);
                update.name = Some(CreateCheckoutSessionCustomerUpdateName::Auto);
                create = create.customer_update(update);
            }
        }
        create = match sold.mode {
            SessionMode::Subscription => {
                let meta = metadata(r.account, "plan", &sold.item);
                let mut data = CreateCheckoutSessionSubscriptionData::new();
                data.metadata = Some(meta.clone());
                create.mode(stripe_shared::CheckoutSessionMode::Subscription).metadata(meta).subscription_data(data)
            }
            SessionMode::Payment => {
                let meta = metadata(r.account, "pack", &sold.item);
                let mut data = CreateCheckoutSessionPaymentIntentData::new();
                data.metadata = Some(meta.clone());
                // R22: the card is saved for auto top-up; section 5: the customer gets an invoice.
                data.setup_future_usage = Some(CreateCheckoutSessionPaymentIntentDataSetupFutureUsage::OffSession);
                create
                    .mode(stripe_shared::CheckoutSessionMode::Payment)
                    .metadata(meta)
                    .payment_intent_data(data)
                    .invoice_creation(CreateCheckoutSessionInvoiceCreation::new(true))
            }
        };
        let session: Created = create
            .build()
            .customize()
            .request_strategy(idempotent(&r.idempotency)?)
            .send_blocking(&self.client)
            .map_err(|e| classify(e, Some(&r.customer)))?;
        Ok(CreatedSession { id: session.id, url: session.url })
    }

    fn expire_session(&self, session: &str) -> Result<(), GatewayError> {
        match ExpireCheckoutSession::new(session).build().customize::<Created>().send_blocking(&self.client) {
            Ok(_) => Ok(()),
            // No longer open (completed or expired already): nothing to expire.
            Err(e) if refused(&e) => {
                tracing::info!(%session, cause = %e, "checkout session not expired: no longer open");
                Ok(())
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    fn change_price(
        &self,
        sub: &LiveSubscription,
        price_id: &str,
        upgrade: bool,
        idempotency_key: &str,
    ) -> Result<(), GatewayError> {
        let item = UpdateSubscriptionItems {
            id: Some(self.item_of(sub)?),
            price: Some(price_id.to_string()),
            ..Default::default()
        };
        let update = UpdateSubscription::new(sub.id.as_str()).items(vec![item]);
        // R14: an upgrade is prorated and invoiced now, and Stripe applies the new price only once
        // that invoice is paid (a failed payment leaves a pending_update and the old price); a
        // downgrade changes the price from the next period on, with no proration.
        let update = if upgrade {
            update
                .proration_behavior(UpdateSubscriptionProrationBehavior::AlwaysInvoice)
                .payment_behavior(UpdateSubscriptionPaymentBehavior::PendingIfIncomplete)
        } else {
            update.proration_behavior(UpdateSubscriptionProrationBehavior::None)
        };
        let _: Created = update
            .build()
            .customize()
            .request_strategy(idempotent(idempotency_key)?)
            .send_blocking(&self.client)
            .map_err(unavailable)?;
        Ok(())
    }

    fn resume(&self, sub: &LiveSubscription, idempotency_key: &str) -> Result<(), GatewayError> {
        let _: Created = UpdateSubscription::new(sub.id.as_str())
            .cancel_at_period_end(false)
            .build()
            .customize()
            .request_strategy(idempotent(idempotency_key)?)
            .send_blocking(&self.client)
            .map_err(unavailable)?;
        Ok(())
    }

    fn cancel_subscription(&self, subscription: &str, idempotency_key: &str) -> Result<(), GatewayError> {
        match CancelSubscription::new(subscription)
            .build()
            .customize::<Created>()
            .request_strategy(idempotent(idempotency_key)?)
            .send_blocking(&self.client)
        {
            Ok(_) => Ok(()),
            // Already cancelled: done.
            Err(e) if refused(&e) => {
                tracing::info!(%subscription, cause = %e, "subscription not cancelled: Stripe refused (already ended?)");
                Ok(())
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    fn refund_invoice(&self, invoice: &str, idempotency_key: &str) -> Result<(), GatewayError> {
        let payments: Listed<InvoicePaymentRef> = ListInvoicePayment::new()
            .invoice(invoice)
            .build()
            .customize()
            .send_blocking(&self.client)
            .map_err(unavailable)?;
        for (n, payment_intent) in
            payments.data.iter().filter_map(|p| p.payment.as_ref()?.payment_intent.clone()).enumerate()
        {
            match CreateRefund::new()
                .payment_intent(payment_intent.as_str())
                .build()
                .customize::<Created>()
                .request_strategy(idempotent(&format!("{idempotency_key}-{n}"))?)
                .send_blocking(&self.client)
            {
                Ok(_) => {}
                // Nothing (more) to refund on that payment: an unpaid attempt, or refunded already.
                Err(e) if refused(&e) => {
                    tracing::info!(%invoice, %payment_intent, cause = %e, "payment not refunded: nothing to refund")
                }
                Err(e) => return Err(unavailable(e)),
            }
        }
        Ok(())
    }

    fn invoice_for_payment(&self, payment_intent: &str) -> Result<Option<String>, GatewayError> {
        let mut payment = ListInvoicePaymentPayment::new(ListInvoicePaymentPaymentType::PaymentIntent);
        payment.payment_intent = Some(payment_intent.to_string());
        let payments: Listed<InvoicePaymentRef> = ListInvoicePayment::new()
            .payment(payment)
            .build()
            .customize()
            .send_blocking(&self.client)
            .map_err(unavailable)?;
        Ok(payments.data.into_iter().find_map(|p| p.invoice))
    }

    fn invoices(&self, customer: &str) -> Result<Vec<InvoiceView>, GatewayError> {
        let listed: Listed<InvoiceRef> = ListInvoice::new()
            .customer(customer)
            .limit(100)
            .build()
            .customize()
            .send_blocking(&self.client)
            .map_err(|e| classify(e, Some(customer)))?;
        Ok(listed
            .data
            .into_iter()
            .map(|i| {
                let amount_paid = i.amount_paid.unwrap_or(0);
                let (subtotal, tax) = credits_domain::payments::tax::invoice_split(
                    amount_paid,
                    i.subtotal,
                    i.total,
                    i.total_excluding_tax,
                );
                (i, amount_paid, subtotal, tax)
            })
            .map(|(i, amount_paid, subtotal, tax)| InvoiceView {
                id: i.id,
                number: i.number,
                status: i.status,
                amount_paid,
                subtotal,
                tax,
                currency: i.currency.unwrap_or_default(),
                created: i.created.and_then(|t| DateTime::from_timestamp(t, 0)).unwrap_or_default(),
                hosted_invoice_url: i.hosted_invoice_url,
                invoice_pdf: i.invoice_pdf,
            })
            .collect())
    }

    fn portal_session(&self, customer: &str, return_url: &str) -> Result<String, GatewayError> {
        let session: Created = CreateBillingPortalSession::new()
            .customer(customer)
            .return_url(return_url)
            .build()
            .customize()
            .send_blocking(&self.client)
            .map_err(|e| classify(e, Some(customer)))?;
        session.url.ok_or_else(|| unavailable("the portal session has no url"))
    }

    fn pay_off_session(&self, p: &OffSessionPayment<'_>) -> IntentAnswer {
        match self.try_pay_off_session(p) {
            Ok(answer) => answer,
            Err(e) => IntentAnswer::Unavailable(e.to_string()),
        }
    }
}

impl StripeGateway {
    /// R22: the newest card the customer saved (pack checkouts save it off-session), then a
    /// PaymentIntent confirmed off-session with it. The idempotency key is the auto top-up's id,
    /// so asking again after a crash or a timeout is the same payment.
    fn try_pay_off_session(&self, p: &OffSessionPayment<'_>) -> Result<IntentAnswer, GatewayError> {
        use std::str::FromStr;
        let cards: Listed<MethodRef> = ListPaymentMethodsCustomer::new(p.customer)
            .limit(1)
            .build()
            .customize()
            .send_blocking(&self.client)
            .map_err(|e| classify(e, Some(p.customer)))?;
        let Some(card) = cards.data.into_iter().next() else {
            return Ok(IntentAnswer::Failed {
                payment_intent: None,
                reason: "no card is saved at Stripe".into(),
                needs_customer: false,
            });
        };
        let currency = stripe_types::Currency::from_str(&p.currency.to_ascii_lowercase()).map_err(unavailable)?;
        let meta = HashMap::from([
            ("account_id".to_string(), p.account.to_string()),
            ("pack".to_string(), p.pack.to_string()),
            ("auto_topup_id".to_string(), p.auto_topup.to_string()),
        ]);
        let sent = CreatePaymentIntent::new(p.amount, currency)
            .customer(p.customer)
            .payment_method(card.id)
            .confirm(true)
            .off_session(CreatePaymentIntentOffSession::Bool(true))
            .description(format!("auto top-up: {}", p.pack))
            .metadata(meta)
            .build()
            .customize::<IntentRef>()
            .request_strategy(idempotent(&format!("auto-topup-{}", p.auto_topup))?)
            .send_blocking(&self.client);
        Ok(match sent {
            Ok(intent) => match intent.status.as_deref() {
                Some("succeeded") => IntentAnswer::Succeeded { payment_intent: intent.id },
                Some("processing") => IntentAnswer::Processing { payment_intent: intent.id },
                Some("requires_action") => IntentAnswer::Failed {
                    payment_intent: Some(intent.id),
                    reason: "the bank asks the cardholder to confirm this payment (3-D Secure)".into(),
                    needs_customer: true,
                },
                other => IntentAnswer::Failed {
                    payment_intent: Some(intent.id),
                    reason: format!("the payment is {}", other.unwrap_or("in an unknown state")),
                    needs_customer: false,
                },
            },
            // A card error (402) or any other refusal: asking again would be refused again.
            Err(stripe::StripeError::Stripe(errors, status @ 400..=499)) => IntentAnswer::Failed {
                payment_intent: errors.payment_intent.as_ref().map(|pi| pi.id.to_string()),
                reason: errors.message.clone().unwrap_or_else(|| format!("Stripe refused the payment ({status})")),
                needs_customer: errors.code == Some(stripe_shared::ApiErrorsCode::AuthenticationRequired),
            },
            Err(e) => IntentAnswer::Unavailable(e.to_string()),
        })
    }

    /// The subscription's item: learned from subscription events; before any arrived, ask Stripe.
    fn item_of(&self, sub: &LiveSubscription) -> Result<String, GatewayError> {
        match &sub.item_id {
            Some(id) => Ok(id.clone()),
            None => RetrieveSubscription::new(sub.id.as_str())
                .build()
                .customize::<Items>()
                .send_blocking(&self.client)
                .map_err(unavailable)?
                .items
                .data
                .first()
                .map(|item| item.id.clone())
                .ok_or_else(|| unavailable("the subscription has no item")),
        }
    }
}

/// No `stripe.secret_key` configured: every payment call is PAYMENTS_UNAVAILABLE.
pub struct UnconfiguredGateway;

fn unconfigured<T>() -> Result<T, GatewayError> {
    Err(unavailable("stripe.secret_key is not configured"))
}

impl PaymentGateway for UnconfiguredGateway {
    fn create_customer(&self, _: AccountId, _: &str, _: &str, _: u32) -> Result<String, GatewayError> {
        unconfigured()
    }
    fn create_session(&self, _: &SessionRequest) -> Result<CreatedSession, GatewayError> {
        unconfigured()
    }
    fn expire_session(&self, _: &str) -> Result<(), GatewayError> {
        unconfigured()
    }
    fn change_price(&self, _: &LiveSubscription, _: &str, _: bool, _: &str) -> Result<(), GatewayError> {
        unconfigured()
    }
    fn resume(&self, _: &LiveSubscription, _: &str) -> Result<(), GatewayError> {
        unconfigured()
    }
    fn cancel_subscription(&self, _: &str, _: &str) -> Result<(), GatewayError> {
        unconfigured()
    }
    fn refund_invoice(&self, _: &str, _: &str) -> Result<(), GatewayError> {
        unconfigured()
    }
    fn invoice_for_payment(&self, _: &str) -> Result<Option<String>, GatewayError> {
        unconfigured()
    }
    fn invoices(&self, _: &str) -> Result<Vec<InvoiceView>, GatewayError> {
        unconfigured()
    }
    fn portal_session(&self, _: &str, _: &str) -> Result<String, GatewayError> {
        unconfigured()
    }
    fn pay_off_session(&self, _: &OffSessionPayment<'_>) -> IntentAnswer {
        IntentAnswer::Unavailable("stripe.secret_key is not configured".into())
    }
}
