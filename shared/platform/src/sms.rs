//! The SMS provider: a client of the Brevo-compatible transactional SMS API of the
//! contract (`docs/API.md`, "Appointments, and telling the person").
//!
//! `POST {AIGUILLAGE_SMS_URL}/v3/transactionalSMS/sms`, header `api-key`, body
//! `{"sender", "recipient": "33612345678", "content", "type": "transactional", "tag"}`.
//! A 2xx is sent ([`SentSms`]). What is worth trying again is [`SmsError::Retry`]: a 5xx,
//! a 429 (the provider's rate limit), no answer within 10 s, or no connection. Any other
//! 4xx, a redirect, or a recipient that is not an E.164 number, is
//! [`SmsError::Permanent`]: sending it again would be refused again.
//!
//! A timeout after the request went out may still have been sent by the provider; the API
//! has no idempotency key, so a retry may then send it twice. That is the provider's
//! contract; the caller keeps the window small by retrying only `Retry`.
//!
//! Nothing here logs, or puts in an error, the phone number or the text: only the
//! provider's `messageId`, its status code and its error code.
//!
//! HTTPS needs a TLS backend in reqwest: the `aiguillage` binary has rustls (enabled by
//! the web app and notify), this crate alone speaks plain HTTP (the capture server).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::Config;

/// The API's path under `AIGUILLAGE_SMS_URL`.
pub const SMS_PATH: &str = "/v3/transactionalSMS/sms";
/// How long the provider has to answer; after that the message is retried.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The sender when `AIGUILLAGE_SMS_SENDER` is unset.
pub const DEFAULT_SENDER: &str = "Aiguillage";

/// `AIGUILLAGE_SMS_API_KEY`: `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// Why a sender name is refused: the message names the rule, the caller the variable.
pub fn check_sender(sender: &str) -> Result<(), String> {
    if sender.is_empty() || sender.len() > 11 || !sender.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!("expected 1 to 11 letters or digits (A-Z, a-z, 0-9), got {sender:?}"));
    }
    Ok(())
}

/// What the provider said of a message it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentSms {
    /// Its `messageId`; `None` when a 2xx came without a readable one (the message was
    /// taken all the same: it must not be sent again).
    pub message_id: Option<u64>,
    /// Its `smsCount`: the SMS it was split into, when the provider said.
    pub sms_count: Option<u32>,
}

/// Why a message was not sent. Neither variant holds the number or the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmsError {
    /// Refused: sending it again will not help (invalid number, refused content or
    /// sender, wrong key, a redirect). `status` is absent when it was refused before any
    /// request (a recipient that is not E.164, an empty text).
    #[error("the SMS was refused{}{}", status_text(*.status), code_text(.code))]
    Permanent { status: Option<u16>, code: Option<String> },
    /// Not sent this time: the provider is down, overloaded or slow. `status` is absent
    /// for a timeout or a connection failure, described by `reason`.
    #[error("the SMS could not be sent now{}{}: {reason}", status_text(*.status), code_text(.code))]
    Retry { status: Option<u16>, code: Option<String>, reason: String },
}

fn status_text(status: Option<u16>) -> String {
    status.map(|s| format!(" ({s})")).unwrap_or_default()
}

fn code_text(code: &Option<String>) -> String {
    code.as_ref().map(|c| format!(" [{c}]")).unwrap_or_default()
}

impl SmsError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, SmsError::Permanent { .. })
    }

    /// The provider's status code, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            SmsError::Permanent { status, .. } | SmsError::Retry { status, .. } => *status,
        }
    }

    fn local(code: &str) -> Self {
        SmsError::Permanent { status: None, code: Some(code.to_string()) }
    }
}

#[derive(Serialize)]
struct Request<'a> {
    sender: &'a str,
    recipient: &'a str,
    content: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    tag: &'a str,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Accepted {
    message_id: Option<u64>,
    sms_count: Option<u32>,
}

#[derive(Deserialize)]
struct Refused {
    code: Option<String>,
}

/// A client of the provider. Cheap to clone.
#[derive(Clone)]
pub struct SmsClient {
    http: reqwest::Client,
    endpoint: Url,
    api_key: ApiKey,
    sender: String,
    timeout: Duration,
}

impl fmt::Debug for SmsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmsClient")
            .field("endpoint", &self.endpoint.as_str())
            .field("sender", &self.sender)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl SmsClient {
    /// The client `AIGUILLAGE_SMS_URL`, `AIGUILLAGE_SMS_API_KEY` and
    /// `AIGUILLAGE_SMS_SENDER` describe, or `None` when no URL is set: SMS are off.
    /// ([`Config`] has checked the three already.)
    pub fn from_config(config: &Config) -> Option<Self> {
        let url = Url::parse(config.sms_url.as_deref()?).ok()?;
        let key = config.sms_api_key.clone()?;
        Some(Self::new(url, key, config.sms_sender.clone()))
    }

    /// A client of the API at `base` (`https://api.brevo.com`, a capture server's
    /// `http://127.0.0.1:8095`; a path in it is kept). The sender is not checked here.
    pub fn new(base: Url, api_key: ApiKey, sender: String) -> Self {
        let mut endpoint = base;
        let path = format!("{}{SMS_PATH}", endpoint.path().trim_end_matches('/'));
        endpoint.set_path(&path);
        endpoint.set_query(None);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .build()
            .unwrap_or_default();
        Self { http, endpoint, api_key, sender, timeout: TIMEOUT }
    }

    /// The same client waiting `timeout` for an answer instead of 10 s (tests).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn sender(&self) -> &str {
        &self.sender
    }

    /// Sends `content` to `recipient_e164` (`+33612345678`; sent as `33612345678`), with
    /// the provider's `tag` (`appointment`). The text is sent as given: compose it to fit
    /// one SMS ([`contracts::gsm`]).
    pub async fn send(&self, recipient_e164: &str, content: &str, tag: &str) -> Result<SentSms, SmsError> {
        let recipient = recipient_e164.strip_prefix('+').filter(|digits| {
            (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
        });
        let Some(recipient) = recipient else {
            tracing::warn!("SMS not sent: the recipient is not an E.164 number");
            return Err(SmsError::local("invalid_recipient"));
        };
        if content.is_empty() {
            tracing::warn!("SMS not sent: the text is empty");
            return Err(SmsError::local("empty_content"));
        }
        let body = Request { sender: &self.sender, recipient, content, kind: "transactional", tag };
        let sent = self
            .http
            .post(self.endpoint.clone())
            .timeout(self.timeout)
            .header("api-key", self.api_key.expose())
            .header(http::header::ACCEPT, "application/json")
            .json(&body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                // Without the URL (it is the deployment's, but keep errors plain).
                let reason = if e.is_timeout() {
                    format!("no answer within {} s", self.timeout.as_secs_f32())
                } else {
                    e.without_url().to_string()
                };
                tracing::warn!(%reason, "SMS not sent, to be retried");
                return Err(SmsError::Retry { status: None, code: None, reason });
            }
        };
        let status = response.status();
        if status.is_success() {
            // Once a 2xx is in, the message is taken, whatever the body says.
            let accepted = response.bytes().await.ok().and_then(|b| serde_json::from_slice::<Accepted>(&b).ok());
            let sent = SentSms {
                message_id: accepted.as_ref().and_then(|a| a.message_id),
                sms_count: accepted.as_ref().and_then(|a| a.sms_count),
            };
            match (sent.message_id, sent.sms_count) {
                (Some(id), Some(count)) if count > 1 => {
                    tracing::warn!(message_id = id, sms_count = count, "SMS sent in more than one part")
                }
                (Some(id), _) => tracing::info!(message_id = id, status = status.as_u16(), "SMS sent"),
                (None, _) => tracing::warn!(status = status.as_u16(), "SMS sent, with no messageId in the answer"),
            }
            return Ok(sent);
        }
        let code = response.bytes().await.ok().and_then(|b| serde_json::from_slice::<Refused>(&b).ok()).and_then(
            // A code is a word (`invalid_parameter`): anything else could echo the request.
            |r| {
                r.code.filter(|c| (1..=64).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
            },
        );
        let number = status.as_u16();
        if status.is_server_error() || number == 429 {
            tracing::warn!(status = number, code = code.as_deref(), "SMS not sent, to be retried");
            Err(SmsError::Retry { status: Some(number), code, reason: format!("the provider answered {number}") })
        } else {
            tracing::warn!(status = number, code = code.as_deref(), "SMS refused by the provider");
            Err(SmsError::Permanent { status: Some(number), code })
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::Json;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;
    use serde_json::{Value, json};

    use super::*;

    const NUMBER: &str = "+33612345678";
    const TEXT: &str = "RDV aide numérique mardi 10 décembre à 9 h 30, Médiathèque Alpha. Tél 05 45 00 00 00";

    /// What the test provider received: the `api-key` header and the body.
    type Seen = Arc<Mutex<Vec<(Option<String>, Value)>>>;
    /// How the test provider answers a body.
    type Answer = fn(&Value) -> Response;

    /// A provider on a free loopback port: `answer` decides each reply from the body.
    async fn provider(answer: Answer) -> (Url, Seen) {
        let seen: Seen = Arc::default();
        let app = axum::Router::new()
            .route(
                SMS_PATH,
                post(
                    |State((seen, answer)): State<(Seen, Answer)>, headers: HeaderMap, body: Json<Value>| async move {
                        let key = headers.get("api-key").map(|v| v.to_str().unwrap().to_string());
                        seen.lock().unwrap().push((key, body.0.clone()));
                        answer(&body.0)
                    },
                ),
            )
            .with_state((seen.clone(), answer));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, seen)
    }

    fn client(url: Url) -> SmsClient {
        SmsClient::new(url, ApiKey::new("k3y"), "Aiguillage".into())
    }

    fn status(code: u16, body: Value) -> Response {
        (StatusCode::from_u16(code).unwrap(), Json(body)).into_response()
    }

    #[tokio::test]
    async fn a_201_is_sent_and_the_request_is_the_contracts() {
        let (url, seen) = provider(|_| {
            status(201, json!({"reference": "r", "messageId": 1511882900176220u64, "smsCount": 1, "usedCredits": 0.7, "remainingCredits": 82.85}))
        })
        .await;
        let sent = client(url).send(NUMBER, TEXT, "appointment").await.unwrap();
        assert_eq!(sent, SentSms { message_id: Some(1511882900176220), sms_count: Some(1) });
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].0.as_deref(), Some("k3y"));
        assert_eq!(
            seen[0].1,
            json!({"sender": "Aiguillage", "recipient": "33612345678", "content": TEXT, "type": "transactional", "tag": "appointment"})
        );
    }

    #[tokio::test]
    async fn a_base_url_with_a_path_keeps_it() {
        let c = client(Url::parse("https://api.example.org/sms-proxy/").unwrap());
        assert_eq!(c.endpoint.as_str(), "https://api.example.org/sms-proxy/v3/transactionalSMS/sms");
        let c = client(Url::parse("https://api.brevo.com").unwrap());
        assert_eq!(c.endpoint.as_str(), "https://api.brevo.com/v3/transactionalSMS/sms");
    }

    #[tokio::test]
    async fn a_2xx_without_a_readable_answer_is_still_sent() {
        let (url, _) = provider(|_| (StatusCode::CREATED, "not json").into_response()).await;
        let sent = client(url).send(NUMBER, TEXT, "appointment").await.unwrap();
        assert_eq!(sent, SentSms { message_id: None, sms_count: None });
    }

    #[tokio::test]
    async fn a_4xx_is_permanent_with_the_providers_code() {
        for code in [400u16, 401, 402, 403, 404, 422] {
            let (url, _) = match code {
                400 => {
                    provider(|_| status(400, json!({"code": "invalid_parameter", "message": "Invalid phone number"})))
                        .await
                }
                401 => provider(|_| status(401, json!({"code": "unauthorized", "message": "Key not found"}))).await,
                402 => provider(|_| status(402, json!({"code": "not_enough_credits", "message": "…"}))).await,
                403 => provider(|_| status(403, json!({"code": "permission_denied", "message": "…"}))).await,
                404 => provider(|_| status(404, json!({}))).await,
                _ => provider(|_| (StatusCode::UNPROCESSABLE_ENTITY, "plain text").into_response()).await,
            };
            let err = client(url).send(NUMBER, TEXT, "appointment").await.unwrap_err();
            assert!(err.is_permanent(), "{code}: {err}");
            assert_eq!(err.status(), Some(code));
            if code == 400 {
                assert_eq!(err, SmsError::Permanent { status: Some(400), code: Some("invalid_parameter".into()) });
                assert_eq!(err.to_string(), "the SMS was refused (400) [invalid_parameter]");
            }
        }
    }

    #[tokio::test]
    async fn a_5xx_or_a_429_is_retried() {
        for code in [500u16, 502, 503, 504, 429] {
            let (url, _) = match code {
                500 => provider(|_| status(500, json!({"code": "internal_error"}))).await,
                502 => provider(|_| (StatusCode::BAD_GATEWAY, "<html>").into_response()).await,
                503 => provider(|_| status(503, json!({"code": "service_unavailable"}))).await,
                504 => provider(|_| StatusCode::GATEWAY_TIMEOUT.into_response()).await,
                _ => provider(|_| status(429, json!({"code": "too_many_requests"}))).await,
            };
            let err = client(url).send(NUMBER, TEXT, "appointment").await.unwrap_err();
            assert!(!err.is_permanent(), "{code}: {err}");
            assert_eq!(err.status(), Some(code));
        }
    }

    #[tokio::test]
    async fn a_redirect_is_not_followed_and_is_permanent() {
        let (url, _) = provider(|_| {
            (StatusCode::FOUND, [(axum::http::header::LOCATION, "http://127.0.0.1:1/elsewhere")]).into_response()
        })
        .await;
        let err = client(url).send(NUMBER, TEXT, "appointment").await.unwrap_err();
        assert_eq!(err, SmsError::Permanent { status: Some(302), code: None });
    }

    #[tokio::test]
    async fn no_answer_in_time_is_retried() {
        let (url, seen) = provider(|_| unreachable!()).await;
        // A listener that accepts and never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent_url = Url::parse(&format!("http://{}", silent.local_addr().unwrap())).unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = silent.accept().await {
                held.push(socket);
            }
        });
        let c = client(silent_url).with_timeout(Duration::from_millis(300));
        let started = std::time::Instant::now();
        let err = c.send(NUMBER, TEXT, "appointment").await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            matches!(&err, SmsError::Retry { status: None, reason, .. } if reason.contains("no answer within")),
            "{err}"
        );
        assert_eq!(client(url).timeout, Duration::from_secs(10), "the contract's 10 s by default");
        assert!(seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn no_connection_is_retried() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let err = client(Url::parse(&format!("http://127.0.0.1:{port}")).unwrap())
            .send(NUMBER, TEXT, "appointment")
            .await
            .unwrap_err();
        assert!(matches!(err, SmsError::Retry { status: None, .. }), "{err}");
    }

    #[tokio::test]
    async fn a_recipient_that_is_not_e164_or_an_empty_text_is_refused_without_a_request() {
        let (url, seen) = provider(|_| status(201, json!({"messageId": 1}))).await;
        let c = client(url);
        for bad in [
            "",
            "+",
            "33612345678",
            "0612345678",
            "+33 6 12 34 56 78",
            "+3361234",
            "+0612345678",
            "+3361234567890123",
            "+33a12345678",
        ] {
            let err = c.send(bad, TEXT, "appointment").await.unwrap_err();
            assert_eq!(err, SmsError::Permanent { status: None, code: Some("invalid_recipient".into()) }, "{bad:?}");
        }
        let err = c.send(NUMBER, "", "appointment").await.unwrap_err();
        assert_eq!(err, SmsError::Permanent { status: None, code: Some("empty_content".into()) });
        assert!(seen.lock().unwrap().is_empty());
        // Overseas numbers are E.164 too.
        c.send("+262692123456", TEXT, "appointment").await.unwrap();
        assert_eq!(seen.lock().unwrap()[0].1["recipient"], "262692123456");
    }

    #[tokio::test]
    async fn neither_errors_nor_debug_show_the_number_the_text_or_the_key() {
        let (url, _) = provider(|body| {
            // A provider that echoes the request in its error code and message.
            let echoed = format!("{}{}", body["recipient"], body["content"]);
            if body["tag"] == "digits" {
                status(400, json!({"code": body["recipient"], "message": echoed}))
            } else {
                status(503, json!({"code": echoed, "message": echoed}))
            }
        })
        .await;
        let c = client(url);
        let refused = c.send(NUMBER, TEXT, "digits").await.unwrap_err();
        assert_eq!(refused, SmsError::Permanent { status: Some(400), code: None });
        let failed = c.send(NUMBER, TEXT, "appointment").await.unwrap_err();
        for shown in [refused.to_string(), format!("{failed:?}"), failed.to_string(), format!("{c:?}")] {
            assert!(!shown.contains("612345678"), "{shown}");
            assert!(!shown.contains("Médiathèque"), "{shown}");
            assert!(!shown.contains("k3y"), "{shown}");
        }
    }

    #[test]
    fn senders() {
        for ok in ["Aiguillage", "A", "Mairie16", "12345678901"] {
            assert_eq!(check_sender(ok), Ok(()), "{ok}");
        }
        for bad in ["", "Aiguillage16", "Aiguil lage", "Aiguillagé", "Mairie-16"] {
            assert!(check_sender(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn from_config_is_none_without_a_url() {
        let config = Config::from_lookup(|_| None).unwrap();
        assert!(SmsClient::from_config(&config).is_none());
        let config = Config::from_lookup(|k| match k {
            "AIGUILLAGE_SMS_URL" => Some("http://127.0.0.1:8095".into()),
            "AIGUILLAGE_SMS_API_KEY" => Some("k".into()),
            "AIGUILLAGE_SMS_SENDER" => Some("Mairie16".into()),
            _ => None,
        })
        .unwrap();
        let c = SmsClient::from_config(&config).unwrap();
        assert_eq!(c.sender(), "Mairie16");
        assert_eq!(c.endpoint.as_str(), "http://127.0.0.1:8095/v3/transactionalSMS/sms");
        assert_eq!(c.api_key.expose(), "k");
    }

    /// The capture server of deploy/dev/sms, the peer of the demo and the e2e tests:
    /// started on a free port with its own folder, stopped when dropped.
    struct CaptureServer {
        port: u16,
        state: std::path::PathBuf,
    }

    impl CaptureServer {
        const KEY: &str = "unit-test-key";

        fn script(name: &str) -> std::path::PathBuf {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/dev/sms").join(name)
        }

        fn start(settings: &[(&str, &str)]) -> Self {
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let state = std::env::temp_dir().join(format!("platform_sms_{port}_{}", uuid::Uuid::now_v7().simple()));
            let server = Self { port, state };
            let out = std::process::Command::new(Self::script("start.sh"))
                .env("SMS_PORT", port.to_string())
                .env("SMS_STATE_DIR", &server.state)
                .env("SMS_API_KEY", Self::KEY)
                .envs(settings.iter().copied())
                .output()
                .unwrap();
            assert!(out.status.success(), "start.sh: {}", String::from_utf8_lossy(&out.stderr));
            server
        }

        fn client(&self) -> SmsClient {
            SmsClient::new(
                Url::parse(&format!("http://127.0.0.1:{}", self.port)).unwrap(),
                ApiKey::new(Self::KEY),
                DEFAULT_SENDER.into(),
            )
        }

        fn messages(&self) -> Vec<Value> {
            let mut files: Vec<_> = std::fs::read_dir(self.state.join("sms"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect();
            files.sort();
            files.iter().map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()).collect()
        }
    }

    impl Drop for CaptureServer {
        fn drop(&mut self) {
            let _ = std::process::Command::new(Self::script("stop.sh"))
                .env("SMS_PORT", self.port.to_string())
                .env("SMS_STATE_DIR", &self.state)
                .output();
            let _ = std::fs::remove_dir_all(&self.state);
        }
    }

    #[tokio::test]
    async fn the_capture_server_is_a_real_peer() {
        if std::process::Command::new("python3").arg("--version").output().is_err() {
            eprintln!("python3 is missing: the capture SMS server cannot run here");
            return;
        }
        let server = CaptureServer::start(&[("SMS_REJECT", "3361111*"), ("SMS_FAIL", "3369999*")]);
        let c = server.client();
        let text = contracts::gsm::transliterate(TEXT);
        let sent = c.send(NUMBER, &text, "appointment").await.unwrap();
        assert_eq!(sent.sms_count, Some(1));
        let [m] = server.messages().try_into().unwrap();
        assert_eq!(Some(m["messageId"].as_u64().unwrap()), sent.message_id);
        assert_eq!(m["recipient"], "33612345678");
        assert_eq!(m["sender"], "Aiguillage");
        assert_eq!(m["content"], text.as_str());
        assert_eq!(m["tag"], "appointment");
        assert_eq!(m["gsm7"], true);
        assert_eq!(m["segments"], 1);

        let refused = c.send("+33611112222", &text, "appointment").await.unwrap_err();
        assert_eq!(refused, SmsError::Permanent { status: Some(400), code: Some("invalid_parameter".into()) });
        let failed = c.send("+33699990000", &text, "appointment").await.unwrap_err();
        assert!(matches!(failed, SmsError::Retry { status: Some(503), .. }), "{failed}");
        let wrong_key = SmsClient::new(c.endpoint.join("/").unwrap(), ApiKey::new("wrong"), DEFAULT_SENDER.into());
        let err = wrong_key.send(NUMBER, &text, "appointment").await.unwrap_err();
        assert_eq!(err, SmsError::Permanent { status: Some(401), code: Some("unauthorized".into()) });
        assert_eq!(server.messages().len(), 1);
    }
}
