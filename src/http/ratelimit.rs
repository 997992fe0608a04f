//! Per-client rate limits (`RATE_LIMIT`, off by default), so one client cannot
//! take the pod's invocations from everyone else.
//!
//! A client is its TCP peer address, or, when the peer is one of
//! `TRUSTED_PROXIES`, the nearest address in `X-Forwarded-For` that is not a
//! trusted proxy; a header from any other peer is ignored, so it cannot be
//! spoofed. IPv6 clients are keyed by their /64, which one host usually holds
//! whole. Health checks and static assets are never limited.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;

use super::AppState;
use super::error::ApiError;
use crate::config::RateLimit;

pub struct Limiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    trusted: Vec<IpNet>,
    checks: AtomicU64,
}

/// Every this many checks, forget clients whose bucket is full again, so the
/// table holds only clients seen recently.
const CLEAN_EVERY: u64 = 4096;

impl Limiter {
    pub fn new(limit: RateLimit, trusted: Vec<IpNet>) -> Self {
        let burst = NonZeroU32::new(limit.burst.max(1)).expect("at least 1");
        let quota = Quota::with_period(limit.period).expect("a period above zero").allow_burst(burst);
        Limiter { limiter: RateLimiter::keyed(quota), trusted, checks: AtomicU64::new(0) }
    }

    /// The client a request counts against.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        client(peer, headers, &self.trusted)
    }

    /// `Err(wait)` when `client` is over its limit.
    pub fn check(&self, client: IpAddr) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % CLEAN_EVERY == CLEAN_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter.check_key(&client).map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Clients in the table (for tests and metrics).
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }
}

/// The client a request comes from: its peer, or behind `trusted` proxies
/// the nearest hop of `X-Forwarded-For` that is not one of them; IPv6 by its
/// /64. Also what the chemistry threads take turns by (`chem::pool`).
pub fn client(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(&ip));
    let mut client = canonical(peer);
    if !trusted(client) {
        return key(client);
    }
    // Proxies append: read from the right, past every trusted hop.
    let hops: Vec<&str> =
        headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).collect();
    for hop in hops.iter().rev() {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = canonical(ip);
                if !trusted(client) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    key(client)
}

/// IPv4-mapped IPv6 addresses as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The key of a client: IPv4 as is, IPv6 by its /64.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// Paths never limited: the balancer's and kubelet's checks, cacheable assets.
fn exempt(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz") || path.starts_with("/static/")
}

pub async fn middleware(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(limiter) = state.rate_limiter.as_ref() else {
        return next.run(req).await;
    };
    if exempt(req.uri().path()) {
        return next.run(req).await;
    }
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    if let Some(peer) = peer {
        let client = limiter.client(peer, req.headers());
        if let Err(wait) = limiter.check(client) {
            return ApiError::rate_limited(wait).into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(trusted: &[&str]) -> Limiter {
        let trusted = trusted.iter().map(|t| t.parse().unwrap()).collect();
        Limiter::new(RateLimit { period: Duration::from_secs(1), burst: 2 }, trusted)
    }

    fn xff(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", value.parse().unwrap());
        h
    }

    #[test]
    fn a_header_from_an_untrusted_peer_is_ignored() {
        let l = limiter(&["10.0.0.0/8"]);
        let peer: IpAddr = "203.0.113.7".parse().unwrap();
        assert_eq!(l.client(peer, &xff("198.51.100.1")), peer);
    }

    #[test]
    fn behind_trusted_proxies_the_nearest_untrusted_hop_is_the_client() {
        let l = limiter(&["10.0.0.0/8"]);
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        // The client lies about its own hops on the left; the proxies append.
        let h = xff("1.1.1.1, 198.51.100.9, 10.9.9.9");
        assert_eq!(l.client(proxy, &h), "198.51.100.9".parse::<IpAddr>().unwrap());
        assert_eq!(l.client(proxy, &HeaderMap::new()), proxy, "no header: the proxy itself");
        assert_eq!(l.client(proxy, &xff("garbage, 10.9.9.9")), "10.9.9.9".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn ipv6_clients_share_their_64_and_mapped_ipv4_is_ipv4() {
        let l = limiter(&[]);
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(l.client(a, &HeaderMap::new()), l.client(b, &HeaderMap::new()));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(l.client(mapped, &HeaderMap::new()), "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn the_burst_passes_then_the_client_waits_and_others_do_not() {
        let l = limiter(&[]);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        assert!(l.check(a).is_ok() && l.check(a).is_ok());
        let wait = l.check(a).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        assert!(l.check(b).is_ok(), "another client is not affected");
        assert!(exempt("/healthz") && exempt("/static/app.css") && !exempt("/api/v1/translate"));
    }
}
