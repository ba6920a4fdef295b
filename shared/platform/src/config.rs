//! Configuration from the environment (the table in `API.md`).

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub amqp_url: String,
    pub namespace: String,
    pub listen: String,
    pub offer_ttl: Duration,
    pub max_attempts: u32,
    pub max_distance_km: f64,
    pub default_weekly_capacity: u32,
    /// Signs bearer tokens. When unset, a key kept in the database is used, so every
    /// process and every `token issue` on the same database agree without setup.
    pub token_secret: Option<String>,
    /// Maximum connections of each process's database pool.
    pub db_pool_size: u32,
    /// Messages each consumer may hold unacknowledged (and process concurrently).
    pub prefetch: u16,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid {variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var =
            |k: &str, default: &str| get(k).filter(|v| !v.trim().is_empty()).unwrap_or_else(|| default.to_string());
        let number = |k: &'static str, default: &str| -> Result<f64, ConfigError> {
            let raw = var(k, default);
            raw.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v > 0.0)
                .ok_or(ConfigError { variable: k, message: format!("expected a positive number, got {raw:?}") })
        };
        let namespace = var("AIGUILLAGE_NAMESPACE", "aiguillage");
        if !namespace.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
            return Err(ConfigError {
                variable: "AIGUILLAGE_NAMESPACE",
                message: "use letters, digits, '-', '_' and '.' only".into(),
            });
        }
        let ttl = var("AIGUILLAGE_OFFER_TTL", "72h");
        Ok(Self {
            database_url: var("DATABASE_URL", "postgres:///aiguillage"),
            amqp_url: var("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
            namespace,
            listen: var("AIGUILLAGE_LISTEN", "127.0.0.1:8080"),
            offer_ttl: parse_duration(&ttl).ok_or(ConfigError {
                variable: "AIGUILLAGE_OFFER_TTL",
                message: format!("expected a duration such as 30s, 15m, 72h or 1h30m, got {ttl:?}"),
            })?,
            max_attempts: number("AIGUILLAGE_MAX_ATTEMPTS", "3")? as u32,
            max_distance_km: number("AIGUILLAGE_MAX_DISTANCE_KM", "30")?,
            default_weekly_capacity: number("AIGUILLAGE_DEFAULT_WEEKLY_CAPACITY", "5")? as u32,
            token_secret: get("AIGUILLAGE_TOKEN_SECRET").filter(|s| !s.is_empty()),
            db_pool_size: number("AIGUILLAGE_DB_POOL_SIZE", "32")? as u32,
            prefetch: number("AIGUILLAGE_PREFETCH", "64")?.min(1000.0) as u16,
        })
    }
}

/// Parses `30s`, `15m`, `72h`, `2d`, `1h30m`, `500ms`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let value: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" | "min" => Duration::from_secs(value.checked_mul(60)?),
            "h" => Duration::from_secs(value.checked_mul(3600)?),
            "d" => Duration::from_secs(value.checked_mul(86_400)?),
            _ => return None,
        };
        total = total.checked_add(unit)?;
        rest = &rest[unit_len..];
    }
    (total > Duration::ZERO).then_some(total)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_the_forms_the_docs_show() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("72h"), Some(Duration::from_secs(72 * 3600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("45"), Some(Duration::from_secs(45)));
        for bad in ["", "h", "3x", "-5s", "0s", "1.5h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn defaults_follow_the_contract() {
        let c = Config::from_lookup(|_| None).unwrap();
        assert_eq!(c.namespace, "aiguillage");
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert_eq!(c.offer_ttl, Duration::from_secs(72 * 3600));
        assert_eq!(c.max_attempts, 3);
        assert_eq!(c.max_distance_km, 30.0);
        assert_eq!(c.default_weekly_capacity, 5);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = Config::from_lookup(|k| (k == "AIGUILLAGE_OFFER_TTL").then(|| "soon".to_string())).unwrap_err();
        assert_eq!(err.variable, "AIGUILLAGE_OFFER_TTL");
        let err = Config::from_lookup(|k| (k == "AIGUILLAGE_NAMESPACE").then(|| "a b".to_string())).unwrap_err();
        assert_eq!(err.variable, "AIGUILLAGE_NAMESPACE");
    }
}
