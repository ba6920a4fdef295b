//! The real capture SMS server of `deploy/dev/sms` (the Brevo-compatible API), one per
//! test ([`CaptureServer`]), and what it received.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::path::PathBuf;

use super::capture::{CaptureServer, Kind};

/// The key the tests' servers want.
pub const KEY: &str = "e2e-sms-key";

pub struct SmsServer(CaptureServer);

const KIND: Kind = Kind { folder: "sms", prefix: "SMS", messages_setting: "SMS_DIR", messages_folder: "sms" };

impl std::ops::Deref for SmsServer {
    type Target = CaptureServer;
    fn deref(&self) -> &CaptureServer {
        &self.0
    }
}

impl SmsServer {
    /// Starts a server with these `SMS_*` settings (README of deploy/dev/sms), wanting [`KEY`].
    pub async fn start(settings: &[(&str, &str)]) -> Self {
        let mut all = vec![("SMS_API_KEY", KEY)];
        all.extend_from_slice(settings);
        Self(CaptureServer::start(KIND, &all).await)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> PathBuf {
        self.messages_dir()
    }

    /// Every message accepted so far, in the order received (the files' JSON).
    pub fn messages(&self) -> Vec<Value> {
        self.files("json")
            .into_iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
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
