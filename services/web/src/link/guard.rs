//! What every `/reponse/...` answer gets, whatever it is: headers that keep the link's
//! token on this site and out of caches and search engines, and a slower answer for a
//! client that keeps trying links that do not work.
//!
//! A token is a capability: guessing one is hopeless (128 random bits or more), but a
//! client that tries link after link is slowed down anyway. Each unknown or ended link
//! (404, 410) counts as one failure of its client; after [`LIMIT`] failures within
//! [`WINDOW`], every `/reponse/...` request of that client answers 429 with `Retry-After`
//! until the window ends. The count is in memory, per replica: a small bound on
//! guessing, with nothing to share or store.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

/// Failures of one client within [`WINDOW`] before it is slowed down.
pub const LIMIT: u32 = 10;
pub const WINDOW: Duration = Duration::from_secs(60);
/// Clients remembered at most; beyond, the oldest windows are forgotten first.
const REMEMBERED: usize = 50_000;

/// One client's failures since `since`.
#[derive(Clone, Copy)]
struct Count {
    since: Instant,
    failures: u32,
}

/// The failures of each client (an IPv4 address, or an IPv6 /64: one subscriber's).
#[derive(Default)]
pub struct Failures {
    clients: Mutex<HashMap<IpAddr, Count>>,
}

impl Failures {
    /// How long `client` must wait, when it has failed too often.
    pub fn wait(&self, client: IpAddr, now: Instant) -> Option<Duration> {
        let clients = self.clients.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = clients.get(&client)?;
        let ends = count.since + WINDOW;
        (count.failures >= LIMIT && now < ends).then(|| ends - now)
    }

    /// One more failure of `client`.
    pub fn failed(&self, client: IpAddr, now: Instant) {
        let mut clients = self.clients.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if clients.len() >= REMEMBERED && !clients.contains_key(&client) {
            clients.retain(|_, c| now < c.since + WINDOW);
            if clients.len() >= REMEMBERED {
                // Still full: forget the oldest half.
                let mut starts: Vec<Instant> = clients.values().map(|c| c.since).collect();
                starts.sort_unstable();
                let cut = starts[starts.len() / 2];
                clients.retain(|_, c| c.since > cut);
            }
        }
        let count = clients.entry(client).or_insert(Count { since: now, failures: 0 });
        if now >= count.since + WINDOW {
            *count = Count { since: now, failures: 0 };
        }
        count.failures = count.failures.saturating_add(1);
    }
}

/// The client of a request, as the limiter counts it.
///
/// The address is the socket's peer, except when that peer is on a loopback or private
/// network: then the request came through this deployment's reverse proxy (Caddy, the
/// ingress), and the client is the last address of `X-Forwarded-For`, the one that proxy
/// added. Earlier entries are whatever the client sent, and are never trusted; neither is
/// the header when the peer is a public address (anyone could send one). IPv6 clients
/// count per /64, the block one subscriber gets.
pub fn client(peer: Option<IpAddr>, headers: &HeaderMap) -> IpAddr {
    let Some(peer) = peer.map(canonical) else {
        // No socket (a request handed to the router in process): one unknown client.
        return IpAddr::V6(Ipv6Addr::UNSPECIFIED);
    };
    let address = if behind_proxy(peer) { forwarded(headers).unwrap_or(peer) } else { peer };
    match canonical(address) {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`) is that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// A peer on this machine or a private network: the deployment's own proxy.
fn behind_proxy(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unique_local() || v6.is_unicast_link_local(),
    }
}

/// The last address of `X-Forwarded-For` (of its last occurrence).
fn forwarded(headers: &HeaderMap) -> Option<IpAddr> {
    let last = headers.get_all("x-forwarded-for").iter().next_back()?.to_str().ok()?;
    let entry = last.rsplit(',').next()?.trim();
    entry.parse::<IpAddr>().ok().or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// The layer of every `/reponse/...` route: a client that failed too often waits (429);
/// an unknown or ended link counts as a failure; every answer is kept out of caches,
/// `Referer` headers to other sites and search engines.
pub async fn guard(State(failures): State<Arc<Failures>>, request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let client = client(peer, request.headers());
    let mut response = match failures.wait(client, Instant::now()) {
        Some(wait) => too_many(wait),
        None => {
            let response = next.run(request).await;
            if matches!(response.status(), StatusCode::NOT_FOUND | StatusCode::GONE) {
                failures.failed(client, Instant::now());
            }
            response
        }
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert("x-robots-tag", HeaderValue::from_static("noindex"));
    response
}

fn too_many(wait: Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut response = super::slowed_down();
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn forwarded_for(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", value.parse().unwrap());
        h
    }

    #[test]
    fn a_client_waits_after_ten_failures_in_a_minute_and_not_before() {
        let failures = Failures::default();
        let (a, b) = (ip("203.0.113.7"), ip("198.51.100.2"));
        let t0 = Instant::now();
        for i in 0..LIMIT {
            assert_eq!(failures.wait(a, t0), None, "after {i} failures");
            failures.failed(a, t0 + Duration::from_secs(u64::from(i)));
        }
        let wait = failures.wait(a, t0 + Duration::from_secs(20)).unwrap();
        assert_eq!(wait, Duration::from_secs(40));
        assert_eq!(failures.wait(b, t0), None, "another client is not slowed");
        // The window ends: a fresh start.
        assert_eq!(failures.wait(a, t0 + WINDOW), None);
        failures.failed(a, t0 + WINDOW);
        assert_eq!(failures.wait(a, t0 + WINDOW), None);
    }

    #[test]
    fn failures_spread_over_more_than_a_minute_never_slow_a_client() {
        let failures = Failures::default();
        let a = ip("203.0.113.7");
        let t0 = Instant::now();
        for i in 0..30u64 {
            failures.failed(a, t0 + Duration::from_secs(i * 7));
        }
        // Windows restart every minute: at most 9 failures fall in each one here.
        assert_eq!(failures.wait(a, t0 + Duration::from_secs(30 * 7)), None);
    }

    #[test]
    fn the_forwarded_address_counts_only_behind_a_private_peer_and_only_its_last_entry() {
        let spoofed = forwarded_for("192.0.2.1, 203.0.113.9");
        // Behind the proxy (loopback, private): the address the proxy added.
        assert_eq!(client(Some(ip("127.0.0.1")), &spoofed), ip("203.0.113.9"));
        assert_eq!(client(Some(ip("10.0.3.4")), &spoofed), ip("203.0.113.9"));
        assert_eq!(client(Some(ip("::ffff:172.18.0.5")), &spoofed), ip("203.0.113.9"));
        // A public peer: its own address, whatever it says.
        assert_eq!(client(Some(ip("198.51.100.2")), &spoofed), ip("198.51.100.2"));
        // Behind the proxy without the header, or with garbage: the peer.
        assert_eq!(client(Some(ip("127.0.0.1")), &HeaderMap::new()), ip("127.0.0.1"));
        assert_eq!(client(Some(ip("127.0.0.1")), &forwarded_for("nonsense")), ip("127.0.0.1"));
        // IPv6 per /64; IPv4 written as IPv6 is IPv4.
        assert_eq!(client(Some(ip("2001:db8:1:2:3:4:5:6")), &HeaderMap::new()), ip("2001:db8:1:2::"));
        assert_eq!(client(Some(ip("::ffff:198.51.100.2")), &HeaderMap::new()), ip("198.51.100.2"));
        assert_eq!(client(None, &spoofed), ip("::"), "no socket: the header is not trusted");
    }

    #[test]
    fn a_full_memory_forgets_ended_windows_first() {
        let failures = Failures::default();
        let t0 = Instant::now();
        for i in 0..REMEMBERED {
            let [a, b] = (i as u16).to_be_bytes();
            failures.failed(IpAddr::V4(std::net::Ipv4Addr::new(10, (i >> 16) as u8, a, b)), t0);
        }
        let later = t0 + WINDOW + Duration::from_secs(1);
        failures.failed(ip("203.0.113.7"), later);
        assert_eq!(failures.clients.lock().unwrap().len(), 1);
    }
}
