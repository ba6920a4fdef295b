//! E-mail over SMTP (lettre): the transport of `AIGUILLAGE_SMTP_URL` (plain, STARTTLS or
//! implicit TLS, with credentials and an extra certificate authority), and one send that
//! says whether to try again. Notify sends agents' messages with it, and referrals the
//! person's own (their address lives only in referrals).

use std::time::Duration;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use uuid::Uuid;

use crate::Config;

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

/// One message, as text and HTML.
pub struct Mail<'a> {
    /// Its `Message-ID` is `<{message_id}@aiguillage>`.
    pub message_id: Uuid,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: &'a str,
    /// The `List-Unsubscribe` header's value (`<https://…>`), for agents' messages.
    pub list_unsubscribe: Option<&'a str>,
}

/// Why a message did not go. Only the reply code is kept: the server's text may repeat
/// the address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// A temporary refusal (4xx), a timeout, a connection lost: try again later.
    Retry(String),
    /// A permanent refusal (5xx), or an address that is not one.
    Permanent(String),
}

#[derive(Debug, thiserror::Error)]
pub enum MailerConfigError {
    #[error("invalid AIGUILLAGE_SMTP_URL: {0}")]
    Url(String),
    #[error("invalid AIGUILLAGE_MAIL_FROM: {0}")]
    From(String),
    #[error("invalid AIGUILLAGE_SMTP_CA_FILE: {0}")]
    Ca(String),
}

/// How the SMTP URL asks for TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `smtp://host:port`: plain (loopback relays, the capture server).
    None,
    /// `smtp://…?tls=starttls` (or `required`): STARTTLS, refusing to go on without it.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Implicit,
}

/// The parts of `AIGUILLAGE_SMTP_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub credentials: Option<(String, String)>,
}

impl SmtpUrl {
    pub fn parse(raw: &str) -> Result<Self, MailerConfigError> {
        let bad = |m: &str| MailerConfigError::Url(m.to_string());
        let url = url::Url::parse(raw.trim()).map_err(|e| MailerConfigError::Url(e.to_string()))?;
        let mut security = match url.scheme() {
            "smtp" => Security::None,
            "smtps" => Security::Implicit,
            _ => return Err(bad("the scheme must be smtp or smtps")),
        };
        for (k, v) in url.query_pairs() {
            match (k.as_ref(), v.as_ref()) {
                ("tls", "starttls" | "required") if security == Security::None => security = Security::StartTls,
                ("tls", "starttls" | "required") => return Err(bad("smtps:// is already TLS; drop ?tls=")),
                ("tls", "none" | "off") if security == Security::None => {}
                ("tls", other) => return Err(MailerConfigError::Url(format!("unknown tls={other}: use starttls"))),
                (other, _) => return Err(MailerConfigError::Url(format!("unknown parameter {other}"))),
            }
        }
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| bad("no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let port = url.port().unwrap_or(match security {
            Security::Implicit => 465,
            Security::StartTls => 587,
            Security::None => 25,
        });
        let decode =
            |s: &str| percent_decode(s).ok_or_else(|| bad("the user or password is not valid percent-encoding"));
        let credentials = if url.username().is_empty() {
            None
        } else {
            Some((decode(url.username())?, decode(url.password().unwrap_or(""))?))
        };
        Ok(Self { host, port, security, credentials })
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl Mailer {
    /// `None` when `AIGUILLAGE_SMTP_URL` is unset (e-mail off).
    pub fn from_config(config: &Config) -> Result<Option<Self>, MailerConfigError> {
        let Some(raw) = config.smtp_url.as_deref() else { return Ok(None) };
        let url = SmtpUrl::parse(raw)?;
        let from: Mailbox = config.mail_from.parse().map_err(|e| MailerConfigError::From(format!("{e}")))?;
        let tls = |host: &str| -> Result<TlsParameters, MailerConfigError> {
            let mut builder = TlsParameters::builder(host.to_string());
            if let Some(path) = &config.smtp_ca_file {
                let pem = std::fs::read(path).map_err(|e| MailerConfigError::Ca(format!("{path}: {e}")))?;
                let cert = Certificate::from_pem(&pem).map_err(|e| MailerConfigError::Ca(e.to_string()))?;
                builder = builder.add_root_certificate(cert);
            }
            builder.build().map_err(|e| MailerConfigError::Ca(e.to_string()))
        };
        let tls = match url.security {
            Security::None => Tls::None,
            Security::StartTls => Tls::Required(tls(&url.host)?),
            Security::Implicit => Tls::Wrapper(tls(&url.host)?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(url.host.as_str())
            .port(url.port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(20)));
        if let Some((user, password)) = url.credentials {
            builder = builder.credentials(Credentials::new(user, password));
        }
        Ok(Some(Self { transport: builder.build(), from }))
    }

    pub async fn send(&self, to: &str, m: &Mail<'_>) -> Result<(), SendError> {
        let to: Mailbox = to.parse().map_err(|_| SendError::Permanent("invalid address".into()))?;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(m.subject)
            .message_id(Some(format!("<{}@aiguillage>", m.message_id)));
        if let Some(target) = m.list_unsubscribe {
            let list_unsubscribe = HeaderName::new_from_ascii_str("List-Unsubscribe");
            builder = builder.raw_header(HeaderValue::new(list_unsubscribe, target.to_string()));
        }
        let message = builder
            .multipart(
                MultiPart::alternative()
                    .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(m.text.to_string()))
                    .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(m.html.to_string())),
            )
            .map_err(|e| SendError::Permanent(format!("message: {e}")))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => {
                Err(SendError::Permanent(e.status().map(|c| c.to_string()).unwrap_or_else(|| "5xx".into())))
            }
            Err(e) if e.is_transient() => {
                Err(SendError::Retry(e.status().map(|c| c.to_string()).unwrap_or_else(|| "4xx".into())))
            }
            Err(e) => Err(SendError::Retry(kind_of(&e))),
        }
    }
}

/// An error without a reply code, in words that carry no address.
fn kind_of(e: &lettre::transport::smtp::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_tls() {
        "tls".into()
    } else if e.is_client() {
        "client".into()
    } else {
        "connection".into()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_of_the_contract() {
        let u = SmtpUrl::parse("smtp://127.0.0.1:2525").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.security, u.credentials), ("127.0.0.1", 2525, Security::None, None));
        let u = SmtpUrl::parse("smtp://user:p%40ss@localhost:2526?tls=starttls").unwrap();
        assert_eq!(u.security, Security::StartTls);
        assert_eq!(u.credentials, Some(("user".into(), "p@ss".into())));
        let u = SmtpUrl::parse("smtps://a:b@mail.example").unwrap();
        assert_eq!((u.port, u.security), (465, Security::Implicit));
        assert_eq!(SmtpUrl::parse("smtp://mail.example?tls=required").unwrap().security, Security::StartTls);
    }

    #[test]
    fn bad_smtp_urls_say_why() {
        for bad in ["http://x", "smtp://", "smtp://x?tls=maybe", "smtps://x?tls=starttls", "smtp://x?foo=1", "nonsense"]
        {
            assert!(SmtpUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
