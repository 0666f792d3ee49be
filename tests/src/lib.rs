//! The test harness: a fresh PostgreSQL database per test, cloned from a migrated template, and
//! the real actix app serving it on a free port. Tests talk to it over HTTP, as its users do.

pub mod browser;
pub mod smtp;
pub mod stripe;

mod app;
mod db;
mod http;
mod instance;
mod ledger;

pub use app::TestApp;
pub use db::{TestDb, db_url, pg_base};
pub use http::{As, Response, account_id, call_at, client};
pub use instance::{ADMIN_TOKEN, INTERNAL_TOKEN, Instance, WEBHOOKS_KEY, credits_bin, test_settings};
pub use ledger::assert_ledger_consistent;
