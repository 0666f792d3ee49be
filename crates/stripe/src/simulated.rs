//! `payments.provider = "simulated"` (SPEC section 5): Stripe's part played on this machine, so
//! every payment flow works without a Stripe account. Checkout and portal links open the
//! service's own `/simulated/…` pages (crates/api/src/simulated.rs), whose buttons produce the
//! events Stripe would send, applied by the same code that applies Stripe's. Refused at start in
//! production.

use credits_domain::ids::AccountId;
use credits_domain::notify::store::IntentAnswer;
use credits_domain::payments::{
    CreatedSession, GatewayError, InvoiceView, LiveSubscription, OffSessionPayment, PaymentGateway, SessionRequest,
};
use uuid::Uuid;

/// Stripe's outbound calls, answered here.
pub struct SimulatedGateway {
    /// `server.public_url`: where the simulated pages are.
    base: String,
}

impl SimulatedGateway {
    pub fn new(public_url: &str) -> SimulatedGateway {
        SimulatedGateway { base: public_url.trim_end_matches('/').to_string() }
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

    /// A plan change of a live subscription: accepted; the simulated portal has no proration
    /// invoice to pay yet (the pages issue's note).
    fn change_price(&self, _: &LiveSubscription, _: &str, _: bool, _: &str) -> Result<(), GatewayError> {
        Ok(())
    }

    fn resume(&self, _: &LiveSubscription, _: &str) -> Result<(), GatewayError> {
        Ok(())
    }

    fn cancel_subscription(&self, _: &str, _: &str) -> Result<(), GatewayError> {
        Ok(())
    }

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
