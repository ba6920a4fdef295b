//! Latency summaries.

use serde_json::{Value, json};

/// Rounded to 0.1 (milliseconds, MiB, per second): enough for a report.
pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The nearest-rank percentile `q` (0–1) of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `{"p50","p99","max","count"}` of some milliseconds; nulls when there are none.
pub fn summary(mut values: Vec<f64>) -> Value {
    if values.is_empty() {
        return json!({"p50": null, "p99": null, "max": null, "count": 0});
    }
    values.sort_by(f64::total_cmp);
    json!({
        "p50": round1(percentile(&values, 0.50)),
        "p99": round1(percentile(&values, 0.99)),
        "max": round1(values[values.len() - 1]),
        "count": values.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = summary(v);
        assert_eq!(s["p50"], 50.0);
        assert_eq!(s["p99"], 99.0);
        assert_eq!(s["max"], 100.0);
        assert_eq!(summary(vec![7.0])["p99"], 7.0);
        assert_eq!(summary(vec![])["p50"], Value::Null);
    }
}
