//! The real capture SMTP server of `deploy/dev/smtp` (aiosmtpd), one per test: its own
//! port, state and mail folder. It can be killed (`kill -9`) and started again on the
//! same port with the same settings, keeping the messages already written.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::eventually;

pub struct SmtpServer {
    pub port: u16,
    pub state: PathBuf,
    settings: Vec<(String, String)>,
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

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl SmtpServer {
    /// Starts a server with these `SMTP_*` settings (README of deploy/dev/smtp).
    pub async fn start(settings: &[(&str, &str)]) -> Self {
        let port = free_port();
        let state = std::env::temp_dir().join(format!("notify_smtp_{port}_{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&state).unwrap();
        let server =
            Self { port, state, settings: settings.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() };
        server.run("start.sh").await;
        server
    }

    async fn run(&self, script: &str) {
        let out = tokio::process::Command::new(repo().join("deploy/dev/smtp").join(script))
            .env("SMTP_PORT", self.port.to_string())
            .env("SMTP_STATE_DIR", &self.state)
            .env("SMTP_MAILDIR", self.maildir())
            .envs(self.settings.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn maildir(&self) -> PathBuf {
        self.state.join("mail")
    }

    /// Kills the server abruptly (SIGKILL), as a crash would.
    pub async fn kill(&self) {
        let pid = std::fs::read_to_string(self.state.join("server.pid")).unwrap();
        let status = std::process::Command::new("kill").args(["-9", pid.trim()]).status().unwrap();
        assert!(status.success());
        eventually("the SMTP server to be down", Duration::from_secs(10), || async {
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err().then_some(())
        })
        .await;
    }

    /// Starts it again on the same port, with the same settings.
    pub async fn restart(&self) {
        self.run("start.sh").await;
    }

    /// Every message received so far, in order.
    pub fn messages(&self) -> Vec<Captured> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.maildir())
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        names.retain(|p| p.extension().is_some_and(|e| e == "eml"));
        names.sort();
        names
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

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = std::process::Command::new(repo().join("deploy/dev/smtp/stop.sh"))
            .env("SMTP_PORT", self.port.to_string())
            .env("SMTP_STATE_DIR", &self.state)
            .output();
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

/// RFC 2047 encoded words (`=?utf-8?b?…?=` or `=?utf-8?q?…?=`), as lettre writes them.
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
