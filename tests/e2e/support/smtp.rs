//! The real capture SMTP server of `deploy/dev/smtp` (aiosmtpd), one per test
//! ([`CaptureServer`]), and the messages it received.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::capture::{CaptureServer, Kind};
use super::eventually;

pub struct SmtpServer(CaptureServer);

const KIND: Kind = Kind { folder: "smtp", prefix: "SMTP", messages_setting: "SMTP_MAILDIR", messages_folder: "mail" };

impl std::ops::Deref for SmtpServer {
    type Target = CaptureServer;
    fn deref(&self) -> &CaptureServer {
        &self.0
    }
}

/// One message as the server received it.
#[derive(Debug, Clone)]
pub struct Captured {
    pub rcpt_tos: Vec<String>,
    pub eml: String,
}

impl Captured {
    /// A header's value (first occurrence, unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.eml.split("\r\n\r\n").next()?;
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = value.as_mut() {
                if line.starts_with(' ') || line.starts_with('\t') {
                    v.push_str(line.trim_start());
                    continue;
                }
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case(name)
            {
                value = Some(v.trim().to_string());
            }
        }
        value
    }

    /// The subject, decoded from RFC 2047 when lettre encoded it.
    pub fn subject(&self) -> String {
        decode_words(&self.header("Subject").unwrap_or_default())
    }

    /// The text of every part, decoded (quoted-printable or base64).
    pub fn text(&self) -> String {
        decode_body(&self.eml)
    }
}

impl SmtpServer {
    /// Starts a server with these `SMTP_*` settings (README of deploy/dev/smtp).
    pub async fn start(settings: &[(&str, &str)]) -> Self {
        Self(CaptureServer::start(KIND, settings).await)
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn maildir(&self) -> PathBuf {
        self.messages_dir()
    }

    /// Every message received so far, in order.
    pub fn messages(&self) -> Vec<Captured> {
        self.files("eml")
            .into_iter()
            .map(|eml_path| {
                let envelope: Value =
                    serde_json::from_str(&std::fs::read_to_string(eml_path.with_extension("json")).unwrap()).unwrap();
                Captured {
                    rcpt_tos: envelope["rcpt_tos"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_str().unwrap().to_lowercase())
                        .collect(),
                    eml: std::fs::read_to_string(&eml_path).unwrap(),
                }
            })
            .collect()
    }

    /// Waits until `n` messages have arrived, and returns them.
    pub async fn until(&self, n: usize) -> Vec<Captured> {
        eventually(&format!("{n} e-mails"), Duration::from_secs(60), || async {
            let m = self.messages();
            (m.len() >= n).then_some(m)
        })
        .await
    }
}

fn decode_words(s: &str) -> String {
    use base64::Engine;
    let mut out = String::new();
    for word in s.split_whitespace() {
        let parts: Vec<&str> = word.split('?').collect();
        if parts.len() == 5 && parts[0] == "=" && parts[4] == "=" {
            let bytes = match parts[2].to_ascii_lowercase().as_str() {
                "b" => base64::engine::general_purpose::STANDARD.decode(parts[3]).unwrap_or_default(),
                _ => quoted_printable(&parts[3].replace('_', " ")),
            };
            out.push_str(&String::from_utf8_lossy(&bytes));
        } else {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(word);
        }
    }
    out
}

fn quoted_printable(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' {
            if b.get(i + 1) == Some(&b'\r') && b.get(i + 2) == Some(&b'\n') {
                i += 3;
                continue;
            }
            if b.get(i + 1) == Some(&b'\n') {
                i += 2;
                continue;
            }
            if let Some(h) = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok())
                && let Ok(v) = u8::from_str_radix(h, 16)
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Every part of a MIME message, decoded and concatenated (good enough to search).
fn decode_body(eml: &str) -> String {
    use base64::Engine;
    let mut out = String::new();
    for part in eml.split("\r\n--") {
        let (head, body) = part.split_once("\r\n\r\n").unwrap_or(("", part));
        let head_l = head.to_ascii_lowercase();
        let bytes = if head_l.contains("content-transfer-encoding: base64") {
            base64::engine::general_purpose::STANDARD
                .decode(body.split_whitespace().collect::<String>())
                .unwrap_or_default()
        } else if head_l.contains("content-transfer-encoding: quoted-printable") {
            quoted_printable(body)
        } else {
            body.as_bytes().to_vec()
        };
        out.push_str(&String::from_utf8_lossy(&bytes));
        out.push('\n');
    }
    out
}
