//! The Stripe adapter: Checkout Sessions, customers and subscription changes through
//! async-stripe (its blocking client, called off the async threads), and webhook deliveries
//! verified and read into the domain's `PaymentEvent`s.
//!
//! API version: the one async-stripe 1.0.0-rc.10 pins, `2026-09-30.endive`
//! (`stripe::ApiVersion`). Events are read field by field from that version's shapes
//! (invoice → `parent.subscription_details.subscription`, line → `pricing.price_details.price`,
//! subscription period → `items.data[].current_period_*`), tolerant of fields added later.

mod gateway;
mod simulated;
mod webhook;

pub use gateway::{StripeGateway, UnconfiguredGateway};
pub use simulated::SimulatedGateway;
pub use webhook::{StripeWebhooks, TOLERANCE_SECONDS};

/// The Stripe API version the client sends and the events are read in.
pub fn api_version() -> &'static str {
    stripe_shared_version()
}

fn stripe_shared_version() -> &'static str {
    "2026-09-30.endive"
}
