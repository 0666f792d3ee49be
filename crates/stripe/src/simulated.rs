//! `payments.provider = "simulated"` (SPEC section 5): Stripe's part played on this machine, so
//! every payment flow works without a Stripe account. Checkout and portal links open the
//! service's own `/simulated/…` pages (crates/api/src/simulated.rs), whose buttons produce the
//! events Stripe would send, applied by the same code that applies Stripe's. Refused at start in
//! production.

use credits_domain::ids::AccountId;
use credits_domain::notify::store::IntentAnswer;
use std::sync::mpsc::Sender;

use credits_domain::payments::{
    CreatedSession, GatewayError, InvoiceView, LiveSubscription, OffSessionPayment, PaymentGateway, SessionRequest,
    SimulatedCall,
};
use uuid::Uuid;

/// Stripe's outbound calls, answered here.
pub struct SimulatedGateway {
    /// `server.public_url`: where the simulated pages are.
    base: String,
    /// The calls Stripe answers with events, for the simulated pages' adapter to send after the
    /// call returned (as Stripe's webhooks come after its API's answer).
    calls: Sender<SimulatedCall>,
}

impl SimulatedGateway {
    pub fn new(public_url: &str, calls: Sender<SimulatedCall>) -> SimulatedGateway {
        SimulatedGateway { base: public_url.trim_end_matches('/').to_string(), calls }
    }

    fn follow(&self, call: SimulatedCall) -> Result<(), GatewayError> {
        self.calls.send(call).map_err(|_| GatewayError::Unavailable("the simulated payments have stopped".into()))
    }
}

fn sim_id(prefix: &str) -> String {
    format!("{prefix}_sim_{}", Uuid::now_v7().simple())
}

impl PaymentGateway for SimulatedGateway {
    fn create_customer(&self, account: AccountId, _: &str, _: &str, generation: u32) -> Result<String, GatewayError> {
        Ok(format!("cus_sim_{}_{generation}", account.0.simple()))
    }

    fn create_session(&self, _: &SessionRequest) -> Result<CreatedSession, GatewayError> {
        let id = sim_id("cs");
        Ok(CreatedSession { url: Some(format!("{}/simulated/checkout/{id}", self.base)), id })
    }

    fn expire_session(&self, _: &str) -> Result<(), GatewayError> {
        Ok(())
    }

    /// R14: the new price now, and an upgrade's proration invoice paid at once.
    fn change_price(
        &self,
        subscription: &LiveSubscription,
        price_id: &str,
        upgrade: bool,
        _: &str,
    ) -> Result<(), GatewayError> {
        self.follow(SimulatedCall::ChangePrice {
            subscription: subscription.clone(),
            price_id: price_id.to_string(),
            upgrade,
        })
    }

    fn resume(&self, subscription: &LiveSubscription, _: &str) -> Result<(), GatewayError> {
        self.follow(SimulatedCall::Resume { subscription: subscription.clone() })
    }

    /// R18's cancellation of a duplicate subscription: accepted with no events. A simulated
    /// checkout pays only the session the account has open, so no duplicate is ever made here
    /// (docs/decisions.md).
    fn cancel_subscription(&self, _: &str, _: &str) -> Result<(), GatewayError> {
        Ok(())
    }

    /// R18's refund of a duplicate's invoice: as `cancel_subscription`.
    fn refund_invoice(&self, _: &str, _: &str) -> Result<(), GatewayError> {
        Ok(())
    }

    fn invoice_for_payment(&self, _: &str) -> Result<Option<String>, GatewayError> {
        Ok(None)
    }

    fn invoices(&self, _: &str) -> Result<Vec<InvoiceView>, GatewayError> {
        Ok(Vec::new())
    }

    fn portal_session(&self, customer: &str, _: &str) -> Result<String, GatewayError> {
        Ok(format!("{}/simulated/portal/{customer}", self.base))
    }

    /// R22: a saved simulated card always pays.
    fn pay_off_session(&self, _: &OffSessionPayment<'_>) -> IntentAnswer {
        IntentAnswer::Succeeded { payment_intent: sim_id("pi") }
    }
}
