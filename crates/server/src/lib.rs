//! The `credits` service: settings, telemetry, wiring, the HTTP server, the background workers.

pub mod app;
pub mod settings;
pub mod telemetry;
pub mod workers;
