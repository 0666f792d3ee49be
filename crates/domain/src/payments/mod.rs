//! Payments (R3, R4, R13, R14, R17, R18, R19, SPEC section 5) in the domain's words: what
//! checkout may sell and the use case that sells it (`checkout`), what each Stripe event means
//! (`events`: facts in, effects out), a subscription's state and arithmetic (`subscription`),
//! and the ports the Stripe and store adapters implement (`ports`).

pub mod checkout;
pub mod events;
pub mod ports;
pub mod subscription;
pub mod tax;

pub use checkout::*;
pub use events::*;
pub use ports::*;
pub use subscription::*;

#[cfg(test)]
mod decider_tests;
#[cfg(test)]
pub(crate) mod tests;
