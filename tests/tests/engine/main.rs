//! The credit engine end to end: real HTTP through the actix app, a real PostgreSQL database
//! per test (cloned from a migrated template), time moved with the test clock.

mod access;
mod accounts;
mod bad_input;
mod burn_down;
mod check;
mod concurrency;
mod expiry;
mod faults;
mod group_commit;
mod house;
mod idempotency;
mod ledger;
mod migrations;
mod notify;
mod operators;
mod ownership;
mod pages;
mod payments;
mod reports;
mod robustness;
mod runs;
mod scale_out;
mod stripe;
mod teams;
mod text_input;
mod trials;
mod verification;
