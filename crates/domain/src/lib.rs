//! The credit and plan rules of `credits` (SPEC R1-R23, sections 5, 9 and 10), as pure functions of
//! (state, request, now), and the ports the adapters implement. No HTTP, SQL, Stripe or SMTP here.

pub mod account;
pub mod apikey;
pub mod burn;
pub mod catalog;
pub mod credits;
pub mod csv;
pub mod error;
#[cfg(test)]
pub(crate) mod fakes;
pub mod idempotency;
pub mod ids;
pub mod jobs;
pub mod mail;
pub mod members;
pub mod notify;
pub mod operator;
pub mod pages;
pub mod payments;
pub mod ports;
pub mod pricing;
pub mod reports;
pub mod runs;
pub mod text;
pub mod trial;
pub mod verification;
pub mod views;

pub use credits::Credits;
pub use ids::{AccountId, BucketId, EntryId, OperatorId, RunId};
