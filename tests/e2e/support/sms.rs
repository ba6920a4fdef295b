//! The real capture SMS server of `deploy/dev/sms` (the Brevo-compatible API), one per
//! test: its own port, state and message folder. It can be killed (`kill -9`) and started
//! again on the same port with the same settings, keeping the messages already written.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::eventually;

/// The key the tests' servers want.
pub const KEY: &str = "e2e-sms-key";

pub struct SmsServer {
    pub port: u16,
    pub state: PathBuf,
    settings: Vec<(String, String)>,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl SmsServer {
    /// Starts a server with these `SMS_*` settings (README of deploy/dev/sms).
    pub async fn start(settings: &[(&str, &str)]) -> Self {
        let port = free_port();
        let state = std::env::temp_dir().join(format!("e2e_sms_{port}_{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&state).unwrap();
        let server =
            Self { port, state, settings: settings.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() };
        server.run("start.sh").await;
        server
    }

    async fn run(&self, script: &str) {
        let out = tokio::process::Command::new(repo().join("deploy/dev/sms").join(script))
            .env("SMS_PORT", self.port.to_string())
            .env("SMS_STATE_DIR", &self.state)
            .env("SMS_DIR", self.dir())
            .env("SMS_API_KEY", KEY)
            .envs(self.settings.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> PathBuf {
        self.state.join("sms")
    }

    /// Kills the server abruptly (SIGKILL): the provider is down.
    pub async fn kill(&self) {
        let pid = std::fs::read_to_string(self.state.join("server.pid")).unwrap();
        let status = std::process::Command::new("kill").args(["-9", pid.trim()]).status().unwrap();
        assert!(status.success());
        eventually("the SMS server to be down", Duration::from_secs(10), || async {
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err().then_some(())
        })
        .await;
    }

    /// Starts it again on the same port, with the same settings.
    pub async fn restart(&self) {
        self.run("start.sh").await;
    }

    /// Every message accepted so far, in the order received (the files' JSON).
    pub fn messages(&self) -> Vec<Value> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir())
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        names.retain(|p| p.extension().is_some_and(|e| e == "json"));
        names.sort();
        names.into_iter().map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()).collect()
    }

    /// The texts sent to `recipient` (digits, no `+`), in order.
    pub fn texts_to(&self, recipient: &str) -> Vec<String> {
        self.messages()
            .into_iter()
            .filter(|m| m["recipient"] == recipient)
            .map(|m| m["content"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    pub async fn stop(self) {
        drop(self);
    }
}

/// Stopped when dropped, a failed test's included: no server outlives its test.
impl Drop for SmsServer {
    fn drop(&mut self) {
        let _ = std::process::Command::new(repo().join("deploy/dev/sms/stop.sh"))
            .env("SMS_PORT", self.port.to_string())
            .env("SMS_STATE_DIR", &self.state)
            .output();
        let _ = std::fs::remove_dir_all(&self.state);
    }
}
