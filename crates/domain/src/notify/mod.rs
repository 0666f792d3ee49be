//! Telling people before and after (R22, R23, SPEC section 9), in the domain's words: when an
//! account's balance crosses its alert levels (`alerts`), when an auto top-up starts and what a
//! failed one does (`autotopup`), and which events an account's systems may hear of, where they
//! may be sent and how often a failed delivery is tried again (`webhooks`).
//!
//! Pure rules only. The store decides nothing here: it calls these in the transaction of the
//! change, with the state it read under the account's lock, and writes what they return.

pub mod addresses;
pub mod alerts;
pub mod autotopup;
pub mod mails;
pub mod payloads;
pub mod service;
pub mod store;
pub mod webhooks;

#[cfg(test)]
mod tests;
