//! Logs and traces through `tracing`. Personal data never goes into a log line or a span
//! field: handlers record ids, statuses and counts only.

use tracing_subscriber::EnvFilter;

const DEFAULT_FILTER: &str = "info,sqlx=warn,lapin=warn,amq_protocol=warn,tower_http=warn";

/// Installs the global subscriber: human-readable logs on stderr, or JSON lines when
/// `AIGUILLAGE_LOG_FORMAT=json`. `RUST_LOG` overrides the levels.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let json = std::env::var("AIGUILLAGE_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = if json { builder.json().try_init() } else { builder.try_init() };
    // A second initialisation (tests) keeps the first subscriber.
    let _ = result;
}
