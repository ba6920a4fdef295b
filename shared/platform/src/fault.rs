//! Fault injection for the fault-injection suite. `AIGUILLAGE_FAULTS=relay.after_confirm`
//! makes the process abort, as a SIGKILL would, when it first reaches that point;
//! `name@3` on the third time. Without the variable, each point costs one relaxed
//! atomic load.
//!
//! Points: `relay.before_publish`, `relay.after_confirm` (confirmed, not yet deleted),
//! `consumer.before_commit`, `consumer.after_commit` (committed, not yet acked).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

static ARMED: AtomicBool = AtomicBool::new(true);

struct Fault {
    name: String,
    remaining: AtomicU32,
}

fn faults() -> &'static [Fault] {
    static FAULTS: OnceLock<Vec<Fault>> = OnceLock::new();
    FAULTS.get_or_init(|| {
        let spec = std::env::var("AIGUILLAGE_FAULTS").unwrap_or_default();
        let faults: Vec<Fault> = spec
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                let (name, nth) = s.split_once('@').unwrap_or((s, "1"));
                Fault { name: name.to_string(), remaining: AtomicU32::new(nth.parse().unwrap_or(1).max(1)) }
            })
            .collect();
        if faults.is_empty() {
            ARMED.store(false, Ordering::Relaxed);
        }
        faults
    })
}

/// Aborts the process here if this point is armed.
pub fn point(name: &str) {
    if !ARMED.load(Ordering::Relaxed) {
        return;
    }
    for f in faults() {
        if f.name == name && f.remaining.fetch_sub(1, Ordering::SeqCst) == 1 {
            eprintln!("fault injected at {name}: aborting");
            std::process::abort();
        }
    }
}
