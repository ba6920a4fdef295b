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
    /// How often signing keys and revoked tokens are reloaded (`AIGUILLAGE_AUTH_REFRESH`).
    pub auth_refresh: Duration,
    /// The site's external base URL (`AIGUILLAGE_PUBLIC_URL`); default `http://{listen}`.
    pub public_url: Option<String>,
    /// Where the web app finds the API when this process does not serve it
    /// (`AIGUILLAGE_API_URL`, a split deployment's proxy).
    pub api_url: Option<String>,
    /// `AIGUILLAGE_OIDC_*`, as given: the web app reads them.
    pub oidc: Vec<(String, String)>,
    pub session_idle: Duration,
    pub session_max: Duration,
    /// `AIGUILLAGE_SMTP_URL`: `smtp://host:port`, `smtps://…`, `smtp://…?tls=starttls`,
    /// with `user:password@`. Unset: no e-mail is sent (messages still queue).
    pub smtp_url: Option<String>,
    /// `AIGUILLAGE_MAIL_FROM`, the sender of every message.
    pub mail_from: String,
    /// `AIGUILLAGE_SMTP_CA_FILE`: a PEM certificate authority to trust for the SMTP
    /// server's TLS certificate, besides the usual roots (a private relay, the tests).
    pub smtp_ca_file: Option<String>,
    /// `AIGUILLAGE_SMS_URL`: the SMS provider's base URL (`https://api.brevo.com`, the
    /// capture server's `http://127.0.0.1:8095`). Unset: no SMS is sent
    /// ([`crate::sms::SmsClient::from_config`] is `None`).
    pub sms_url: Option<String>,
    /// `AIGUILLAGE_SMS_API_KEY`, sent as the `api-key` header; required with a URL.
    pub sms_api_key: Option<crate::sms::ApiKey>,
    /// `AIGUILLAGE_SMS_SENDER` (default `Aiguillage`): 1 to 11 letters or digits.
    pub sms_sender: String,
    /// `AIGUILLAGE_OFFER_REMINDER_AFTER`: a pending offer is recalled to its structure.
    pub offer_reminder_after: Duration,
    /// `AIGUILLAGE_CONTACT_REMINDER_AFTER`: an accepted referral with no first contact.
    pub contact_reminder_after: Duration,
    /// `AIGUILLAGE_APPOINTMENT_REMINDER_BEFORE`: the person is reminded of their
    /// appointment this long before it (by SMS or e-mail, on the channel they chose).
    pub appointment_reminder_before: Duration,
    /// `AIGUILLAGE_MEDIATOR_ACTIVE_WITHIN`: a mediator counts as active (someone who will
    /// answer an offer on their pages) if their agent signed in within this time.
    pub mediator_active_within: Duration,
    /// `AIGUILLAGE_ANSWER_LINK_TTL`: after acceptance, how long an answer link still opens
    /// the follow-up after the latest of the acceptance, its last use and its making.
    pub answer_link_ttl: Duration,
    /// `AIGUILLAGE_WEBHOOK_ALLOW_PRIVATE`: webhook targets may be loopback or private.
    pub webhook_allow_private: bool,
    /// The master key that wraps the data keys (`AIGUILLAGE_MASTER_KEY` or
    /// `AIGUILLAGE_MASTER_KEY_FILE`), and a previous one during a master-key change
    /// (`AIGUILLAGE_MASTER_KEY_PREVIOUS`). `None` when unset: the server refuses to start
    /// ([`Config::master_keys`]); commands that touch no personal data still run.
    pub master_keys: Option<(crate::vault::MasterKey, Option<crate::vault::MasterKey>)>,
    /// Time after a referral's end or last activity before its personal data is purged
    /// (`AIGUILLAGE_RETENTION`, default 730 days).
    pub retention: Duration,
    /// Time without a sign-in before an agent's account is purged: its names, e-mail
    /// address and memberships (`AIGUILLAGE_ACCOUNT_RETENTION`, default 730 days).
    pub account_retention: Duration,
    /// The program that runs a what-if simulation in a process of its own, in the
    /// background (`{program} simulation-worker`): the served binary sets itself. `None`
    /// (a program that embeds the services, the tests) runs it on a thread instead.
    pub simulation_worker: Option<std::path::PathBuf>,
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
        let duration = |k: &'static str, default: &str| -> Result<Duration, ConfigError> {
            parse_duration(&var(k, default)).map_err(|message| ConfigError { variable: k, message })
        };
        let sms_url = get("AIGUILLAGE_SMS_URL").map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        if let Some(url) = &sms_url
            && !url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        {
            return Err(ConfigError {
                variable: "AIGUILLAGE_SMS_URL",
                message: format!("expected an http(s) URL such as https://api.brevo.com, got {url:?}"),
            });
        }
        let sms_api_key = get("AIGUILLAGE_SMS_API_KEY").filter(|s| !s.trim().is_empty()).map(crate::sms::ApiKey::new);
        if sms_url.is_some() && sms_api_key.is_none() {
            return Err(ConfigError {
                variable: "AIGUILLAGE_SMS_API_KEY",
                message: "required when AIGUILLAGE_SMS_URL is set".into(),
            });
        }
        let sms_sender = var("AIGUILLAGE_SMS_SENDER", crate::sms::DEFAULT_SENDER).trim().to_string();
        crate::sms::check_sender(&sms_sender)
            .map_err(|message| ConfigError { variable: "AIGUILLAGE_SMS_SENDER", message })?;
        Ok(Self {
            database_url: var("DATABASE_URL", "postgres:///aiguillage"),
            amqp_url: var("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
            namespace,
            listen: var("AIGUILLAGE_LISTEN", "127.0.0.1:8080"),
            offer_ttl: duration("AIGUILLAGE_OFFER_TTL", "72h")?,
            max_attempts: number("AIGUILLAGE_MAX_ATTEMPTS", "3")? as u32,
            max_distance_km: number("AIGUILLAGE_MAX_DISTANCE_KM", "30")?,
            default_weekly_capacity: number("AIGUILLAGE_DEFAULT_WEEKLY_CAPACITY", "5")? as u32,
            token_secret: get("AIGUILLAGE_TOKEN_SECRET").filter(|s| !s.is_empty()),
            db_pool_size: number("AIGUILLAGE_DB_POOL_SIZE", "32")? as u32,
            prefetch: number("AIGUILLAGE_PREFETCH", "64")?.min(1000.0) as u16,
            auth_refresh: duration("AIGUILLAGE_AUTH_REFRESH", "20s")?,
            public_url: get("AIGUILLAGE_PUBLIC_URL").filter(|s| !s.trim().is_empty()),
            api_url: get("AIGUILLAGE_API_URL").filter(|s| !s.trim().is_empty()),
            oidc: OIDC_VARIABLES.iter().filter_map(|k| Some((k.to_string(), get(k)?))).collect(),
            session_idle: duration("AIGUILLAGE_SESSION_IDLE", "12h")?,
            session_max: duration("AIGUILLAGE_SESSION_MAX", "7d")?,
            smtp_url: get("AIGUILLAGE_SMTP_URL").filter(|s| !s.trim().is_empty()),
            mail_from: var("AIGUILLAGE_MAIL_FROM", "Aiguillage <ne-pas-repondre@localhost>"),
            smtp_ca_file: get("AIGUILLAGE_SMTP_CA_FILE").filter(|s| !s.trim().is_empty()),
            sms_url,
            sms_api_key,
            sms_sender,
            offer_reminder_after: duration("AIGUILLAGE_OFFER_REMINDER_AFTER", "24h")?,
            contact_reminder_after: duration("AIGUILLAGE_CONTACT_REMINDER_AFTER", "7d")?,
            appointment_reminder_before: duration("AIGUILLAGE_APPOINTMENT_REMINDER_BEFORE", "48h")?,
            mediator_active_within: duration("AIGUILLAGE_MEDIATOR_ACTIVE_WITHIN", "90d")?,
            answer_link_ttl: duration("AIGUILLAGE_ANSWER_LINK_TTL", "8d")?,
            webhook_allow_private: match var("AIGUILLAGE_WEBHOOK_ALLOW_PRIVATE", "false").trim() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                other => {
                    return Err(ConfigError {
                        variable: "AIGUILLAGE_WEBHOOK_ALLOW_PRIVATE",
                        message: format!("expected true or false, got {other:?}"),
                    });
                }
            },
            master_keys: match crate::vault::MasterKey::from_env(&get) {
                Ok(keys) => Some(keys),
                Err(crate::vault::VaultError::Missing) => None,
                Err(crate::vault::VaultError::Invalid(variable)) => {
                    return Err(ConfigError { variable, message: "expected 32 bytes, base64-encoded".into() });
                }
                Err(err) => {
                    return Err(ConfigError { variable: "AIGUILLAGE_MASTER_KEY_FILE", message: err.to_string() });
                }
            },
            retention: duration("AIGUILLAGE_RETENTION", "730d")?,
            account_retention: duration("AIGUILLAGE_ACCOUNT_RETENTION", "730d")?,
            simulation_worker: None,
        })
    }

    /// The master keys, or the error that says how to provide one.
    pub fn master_keys(
        &self,
    ) -> Result<(crate::vault::MasterKey, Option<crate::vault::MasterKey>), crate::vault::VaultError> {
        self.master_keys.clone().ok_or(crate::vault::VaultError::Missing)
    }
}

/// The OpenID Connect client's settings (see the web app).
pub const OIDC_VARIABLES: [&str; 5] = [
    "AIGUILLAGE_OIDC_ISSUER",
    "AIGUILLAGE_OIDC_CLIENT_ID",
    "AIGUILLAGE_OIDC_CLIENT_SECRET",
    "AIGUILLAGE_OIDC_SCOPES",
    "AIGUILLAGE_OIDC_ACR_VALUES",
];

impl Config {
    /// One `AIGUILLAGE_OIDC_*` value.
    pub fn oidc_value(&self, key: &str) -> Option<String> {
        self.oidc.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }
}

/// Longer durations are refused: no setting needs them, and a timestamp that far ahead
/// would overflow date arithmetic.
const MAX_DURATION: Duration = Duration::from_secs(100 * 366 * 86_400);

/// A positive duration in humantime's syntax (`30s`, `15m`, `72h`, `1h30m`, `2d`, `500ms`,
/// `1h 30m`, `90days`…), or a bare number of seconds as this function always accepted.
/// The error says what was wrong, for the caller to prefix with the variable or option.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.starts_with('-') {
        return Err(format!("expected a positive duration, got {s:?}"));
    }
    let duration = match s.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(s)
            .map_err(|e| format!("expected a duration such as 30s, 15m, 72h or 1h30m, got {s:?} ({e})"))?,
    };
    if duration.is_zero() {
        return Err(format!("expected a duration longer than zero, got {s:?}"));
    }
    if duration > MAX_DURATION {
        return Err(format!("expected a duration of at most 100 years, got {s:?}"));
    }
    Ok(duration)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_the_forms_the_docs_show() {
        let hours = |h: u64| Duration::from_secs(h * 3600);
        for (given, expected) in [
            ("30s", Duration::from_secs(30)),
            ("15m", Duration::from_secs(900)),
            ("72h", hours(72)),
            ("1h30m", Duration::from_secs(5400)),
            ("2d", hours(48)),
            ("500ms", Duration::from_millis(500)),
            ("7d", hours(7 * 24)),
            ("12h", hours(12)),
            ("24h", hours(24)),
            ("90d", hours(90 * 24)),
            ("730d", hours(730 * 24)),
            (" 1h 30m ", Duration::from_secs(5400)),
            ("1.5h", Duration::from_secs(5400)),
        ] {
            assert_eq!(parse_duration(given), Ok(expected), "{given}");
        }
    }

    #[test]
    fn a_bare_number_is_still_seconds() {
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
    }

    #[test]
    fn zero_negative_and_unreadable_durations_are_refused() {
        for bad in ["", "h", "3x", "-5s", "-5", "0", "0s", "0h0m", "soon", "1000y", "99999999999999999999s"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains(&format!("{:?}", bad.trim())), "{bad}: {err}");
        }
        assert!(parse_duration("0s").unwrap_err().contains("longer than zero"));
        assert!(parse_duration("-5s").unwrap_err().contains("positive"));
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
        assert_eq!(c.answer_link_ttl, Duration::from_secs(8 * 86_400));
        assert_eq!(c.mediator_active_within, Duration::from_secs(90 * 86_400));
        let c = Config::from_lookup(|k| (k == "AIGUILLAGE_MEDIATOR_ACTIVE_WITHIN").then(|| "30d".into())).unwrap();
        assert_eq!(c.mediator_active_within, Duration::from_secs(30 * 86_400));
    }

    #[test]
    fn sms_settings() {
        let c = Config::from_lookup(|_| None).unwrap();
        assert_eq!((c.sms_url, c.sms_api_key, c.sms_sender.as_str()), (None, None, "Aiguillage"));
        let with = |pairs: &[(&str, &str)]| {
            Config::from_lookup(|k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()))
        };
        let c = with(&[
            ("AIGUILLAGE_SMS_URL", "https://api.brevo.com"),
            ("AIGUILLAGE_SMS_API_KEY", "xkeysib-secret"),
            ("AIGUILLAGE_SMS_SENDER", "Mairie16"),
        ])
        .unwrap();
        assert_eq!(c.sms_url.as_deref(), Some("https://api.brevo.com"));
        assert_eq!(c.sms_sender, "Mairie16");
        assert!(!format!("{c:?}").contains("xkeysib-secret"), "Debug hides the key");
        let err = with(&[("AIGUILLAGE_SMS_URL", "http://127.0.0.1:8095")]).unwrap_err();
        assert_eq!(err.variable, "AIGUILLAGE_SMS_API_KEY");
        for url in ["127.0.0.1:8095", "ftp://example.org", "https://"] {
            let err = with(&[("AIGUILLAGE_SMS_URL", url), ("AIGUILLAGE_SMS_API_KEY", "k")]).unwrap_err();
            assert_eq!(err.variable, "AIGUILLAGE_SMS_URL", "{url}");
        }
        for sender in ["Aiguillage16", "Aiguil lage", "Médiation", "Mairie-16"] {
            assert_eq!(with(&[("AIGUILLAGE_SMS_SENDER", sender)]).unwrap_err().variable, "AIGUILLAGE_SMS_SENDER");
        }
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = Config::from_lookup(|k| (k == "AIGUILLAGE_OFFER_TTL").then(|| "soon".to_string())).unwrap_err();
        assert_eq!(err.variable, "AIGUILLAGE_OFFER_TTL");
        let err = Config::from_lookup(|k| (k == "AIGUILLAGE_OFFER_TTL").then(|| "0s".to_string())).unwrap_err();
        assert_eq!(err.to_string(), "invalid AIGUILLAGE_OFFER_TTL: expected a duration longer than zero, got \"0s\"");
        let err = Config::from_lookup(|k| (k == "AIGUILLAGE_NAMESPACE").then(|| "a b".to_string())).unwrap_err();
        assert_eq!(err.variable, "AIGUILLAGE_NAMESPACE");
    }
}
