//! What every service needs and none of them owns: configuration, telemetry, the
//! database pool and migrations, authentication, `problem+json` errors, JSON bodies,
//! health and metrics.

pub mod auth;
pub mod client;
pub mod config;
pub mod db;
pub mod fault;
pub mod health;
pub mod http;
pub mod idempotency;
pub mod jobs;
pub mod json;
pub mod mail;
pub mod metrics;
pub mod path;
pub mod problem;
pub mod row;
pub mod sms;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod vault;

pub use config::Config;
pub use problem::ApiError;
