//! The real capture servers of `deploy/dev` (SMTP with aiosmtpd, SMS speaking the
//! Brevo-compatible API), one per test: its own port, state and message folder, started
//! and stopped by the same scripts as the demo's. It can be killed (`kill -9`) and started
//! again on the same port with the same settings, keeping the messages already written.
//! [`super::smtp::SmtpServer`] and [`super::sms::SmsServer`] read what each one writes.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use super::eventually;

/// Which server: its scripts' folder, its settings' prefix and its messages' folder.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    /// `deploy/dev/<folder>`, and `SMTP`/`SMS` for the settings.
    pub folder: &'static str,
    pub prefix: &'static str,
    /// The setting that names the messages' folder, and that folder under the state.
    pub messages_setting: &'static str,
    pub messages_folder: &'static str,
}

pub struct CaptureServer {
    kind: Kind,
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

impl CaptureServer {
    /// Starts a server of `kind` with these settings (README beside its scripts).
    pub async fn start(kind: Kind, settings: &[(&str, &str)]) -> Self {
        let port = free_port();
        let state = std::env::temp_dir().join(format!("e2e_{}_{port}_{}", kind.folder, uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&state).unwrap();
        let server = Self {
            kind,
            port,
            state,
            settings: settings.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        server.run("start.sh").await;
        server
    }

    fn script(&self, script: &str) -> std::process::Command {
        let prefix = self.kind.prefix;
        let mut command = std::process::Command::new(repo().join("deploy/dev").join(self.kind.folder).join(script));
        command
            .env(format!("{prefix}_PORT"), self.port.to_string())
            .env(format!("{prefix}_STATE_DIR"), &self.state)
            .env(self.kind.messages_setting, self.messages_dir())
            .envs(self.settings.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        command
    }

    async fn run(&self, script: &str) {
        let out = tokio::process::Command::from(self.script(script)).output().await.unwrap();
        assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Where the server writes what it receives.
    pub fn messages_dir(&self) -> PathBuf {
        self.state.join(self.kind.messages_folder)
    }

    /// The files received so far with this extension, in the order received.
    pub fn files(&self, extension: &str) -> Vec<PathBuf> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.messages_dir())
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        names.retain(|p| p.extension().is_some_and(|e| e == extension));
        names.sort();
        names
    }

    /// Kills the server abruptly (SIGKILL), as a crash or an outage would.
    pub async fn kill(&self) {
        let pid = std::fs::read_to_string(self.state.join("server.pid")).unwrap();
        let status = std::process::Command::new("kill").args(["-9", pid.trim()]).status().unwrap();
        assert!(status.success());
        eventually(&format!("the {} server to be down", self.kind.prefix), Duration::from_secs(10), || async {
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err().then_some(())
        })
        .await;
    }

    /// Starts it again on the same port, with the same settings.
    pub async fn restart(&self) {
        self.run("start.sh").await;
    }
}

/// Stopped when dropped, a failed test's included: no server outlives its test.
impl Drop for CaptureServer {
    fn drop(&mut self) {
        let _ = self.script("stop.sh").output();
        let _ = std::fs::remove_dir_all(&self.state);
    }
}
