//! A small TCP proxy the tests put between the server and the broker (or the database),
//! to cut connections, refuse new ones, or blackhole traffic, without touching the
//! shared services themselves.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const OPEN: u8 = 0;
const REFUSE: u8 = 1;
const BLACKHOLE: u8 = 2;

pub struct Proxy {
    pub port: u16,
    mode: Arc<AtomicU8>,
    /// Bumped to drop every live connection.
    generation: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(OPEN));
        let (generation, _) = watch::channel(0u64);
        let upstream = upstream.to_string();
        let (m, g) = (Arc::clone(&mode), generation.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { return };
                match m.load(Ordering::SeqCst) {
                    REFUSE => {
                        let _ = client.shutdown().await;
                        continue;
                    }
                    BLACKHOLE => {
                        // Accept and never answer.
                        let mut cut = g.subscribe();
                        tokio::spawn(async move {
                            let _ = cut.changed().await;
                            drop(client);
                        });
                        continue;
                    }
                    _ => {}
                }
                let upstream = upstream.clone();
                let mut cut = g.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self { port, mode, generation, task }
    }

    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.mode.store(REFUSE, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Drops every connection; new ones are accepted but never answered.
    pub fn blackhole(&self) {
        self.mode.store(BLACKHOLE, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn restore(&self) {
        self.mode.store(OPEN, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.generation.send_modify(|g| *g += 1);
    }
}
