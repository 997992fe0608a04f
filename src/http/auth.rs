//! API keys at the door (`API_KEYS_FILE`; off when unset): every translation
//! (the JSON API, a batch, the page's form) is made by a known key, within its
//! rate and its daily quota, or anonymously within `ANONYMOUS_RATE` per client
//! (`0`: not at all). Pages, drawings, health and the document stay open.
//!
//! A key is sent as `Authorization: Bearer KEY` or `X-API-Key: KEY`. A key
//! that is not one of ours is refused even where anonymous callers are let
//! in: a script with a revoked key should hear so, not carry on unnoticed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use super::ratelimit::Limiter;
use crate::config::{AnonymousRate, Config};
use crate::keys::{Key, Keys, Refusal, SystemClock};
use crate::telemetry::Metrics;

/// The keys in force and the anonymous callers' limit.
pub struct Access {
    pub keys: Keys,
    /// `None`: callers without a key are refused.
    anonymous: Option<Limiter>,
    file: PathBuf,
}

/// The key a request was let in with (for the batch route's charge).
#[derive(Clone)]
pub struct KeyInUse(pub Arc<Key>);

/// The name of the key a response was made for (for the access log).
#[derive(Clone)]
pub struct KeyName(pub String);

/// A key longer than this is not one of ours (ours are 68 characters).
const MAX_KEY_CHARS: usize = 256;

/// How often the keys file is looked at for changes.
const RELOAD_EVERY: Duration = Duration::from_secs(5);

impl Access {
    /// From the settings: `None` when no keys file is set.
    pub fn new(config: &Config, metrics: &Metrics) -> Option<Access> {
        let file = config.api_keys_file.clone()?;
        let anonymous = match config.anonymous_rate {
            Some(AnonymousRate::Limited(rate)) => Some(Limiter::new(rate, config.trusted_proxies.0.clone())),
            Some(AnonymousRate::Refused) | None => None,
        };
        metrics.keys_loaded.set(config.api_keys.len() as i64);
        Some(Access { keys: Keys::new(config.api_keys.clone(), Box::new(SystemClock)), anonymous, file })
    }

    /// Whether callers without a key may translate (within `ANONYMOUS_RATE`).
    pub fn admits_anonymous(&self) -> bool {
        self.anonymous.is_some()
    }

    /// Charges a batch's inputs to its key, or refuses the batch whole.
    pub fn charge(&self, key: &Key, inputs: usize, metrics: &Metrics) -> Result<(), ApiError> {
        match self.keys.charge(key, inputs as u64) {
            Ok(()) => {
                metrics.key_inputs.with_label_values(&[&key.name]).inc_by(inputs as u64);
                Ok(())
            }
            Err(refusal) => {
                metrics.key_requests.with_label_values(&[&key.name, "quota_exceeded"]).inc();
                Err(self.refused(refusal, inputs as u64))
            }
        }
    }

    fn refused(&self, refusal: Refusal, asked: u64) -> ApiError {
        match refusal {
            Refusal::RateLimited(wait) => ApiError::rate_limited(wait),
            Refusal::QuotaExceeded { used, limit, resets } => {
                let wait = Duration::from_secs(self.keys.seconds_until(resets));
                ApiError::quota_exceeded(used, limit, asked, resets, wait)
            }
        }
    }
}

/// Reads the keys file every few seconds and puts a changed one in force;
/// a file that no longer reads leaves the keys as they were (logged once,
/// counted). Compared by content, not by time stamp: a Secret's volume
/// swaps a symlink, and a quick rewrite may keep the same time stamp.
pub async fn reload(state: Arc<AppState>) {
    let Some(access) = state.access.as_ref() else { return };
    let read = |path: &PathBuf| std::fs::read_to_string(path).map_err(|e| e.to_string());
    let mut seen = read(&access.file);
    let mut tick = tokio::time::interval(RELOAD_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = read(&access.file);
        if now == seen {
            continue;
        }
        seen = now.clone();
        match now.and_then(|text| crate::keys::parse(&text)) {
            Ok(entries) => {
                let n = entries.len();
                access.keys.replace(entries);
                state.metrics.keys_loaded.set(n as i64);
                state.metrics.keys_reloads.with_label_values(&["ok"]).inc();
                tracing::info!(keys = n, file = %access.file.display(), "API keys reloaded");
            }
            Err(e) => {
                state.metrics.keys_reloads.with_label_values(&["failed"]).inc();
                tracing::error!(error = %e, file = %access.file.display(), "API keys file not reloaded; the keys in force stay");
            }
        }
    }
}

/// What a request asks for, as far as keys are concerned.
#[derive(PartialEq)]
enum Cost {
    /// Not a translation: open to all.
    Free,
    /// One translation: one input.
    One,
    /// A batch: its inputs, charged once its body is read.
    Batch,
    /// An MCP message: the caller is let in (or not) here; a tool that
    /// predicts charges its input itself.
    Call,
}

fn cost(method: &Method, path: &str, query: Option<&str>) -> Cost {
    match (method, path) {
        (&Method::POST, "/api/v1/translate" | "/") => Cost::One,
        (&Method::POST, "/api/v1/translate/batch" | "/batch") => Cost::Batch,
        // A link that translates at once (the page without JavaScript).
        (&Method::GET, "/") if query.is_some_and(|q| q.split('&').any(|p| p == "run=1")) => Cost::One,
        (_, "/mcp") => Cost::Call,
        _ => Cost::Free,
    }
}

/// The key sent, if any: `Authorization: Bearer KEY` or `X-API-Key: KEY`.
fn presented(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| {
        let (scheme, key) = v.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
    });
    bearer.or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim)).filter(|k| !k.is_empty())
}

pub async fn middleware(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let Some(access) = state.access.as_ref() else {
        return next.run(req).await;
    };
    let cost = cost(req.method(), req.uri().path(), req.uri().query());
    if cost == Cost::Free {
        return next.run(req).await;
    }
    let m = &state.metrics;
    let count = |key: &str, outcome: &str| m.key_requests.with_label_values(&[key, outcome]).inc();
    let Some(presented) = presented(req.headers()) else {
        let Some(limiter) = access.anonymous.as_ref() else {
            count("anonymous", "unauthorized");
            return ApiError::unauthorized(
                "translations on this server need an API key: send it as 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
            )
            .into_response();
        };
        if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>()
            && let Err(wait) = limiter.check(limiter.client(peer.ip(), req.headers()))
        {
            count("anonymous", "rate_limited");
            return ApiError::rate_limited(wait).into_response();
        }
        count("anonymous", "accepted");
        return next.run(req).await;
    };
    let Some(key) = (presented.chars().count() <= MAX_KEY_CHARS).then(|| access.keys.find(presented)).flatten() else {
        count("unknown", "unauthorized");
        return ApiError::unauthorized("this API key is not known here: it may have been revoked, or mistyped")
            .into_response();
    };
    if let Err(refusal) = access.keys.admit(&key) {
        count(&key.name, "rate_limited");
        return access.refused(refusal, 1).into_response();
    }
    if cost == Cost::One
        && let Err(e) = access.charge(&key, 1, m)
    {
        return e.into_response();
    }
    count(&key.name, "accepted");
    let name = key.name.clone();
    req.extensions_mut().insert(KeyInUse(key));
    let mut response = next.run(req).await;
    response.extensions_mut().insert(KeyName(name));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translations_cost_and_everything_else_is_free() {
        assert!(cost(&Method::POST, "/api/v1/translate", None) == Cost::One);
        assert!(cost(&Method::POST, "/", None) == Cost::One);
        assert!(cost(&Method::GET, "/", Some("text=CCO&run=1")) == Cost::One);
        assert!(cost(&Method::POST, "/api/v1/translate/batch", None) == Cost::Batch);
        assert!(cost(&Method::POST, "/batch", None) == Cost::Batch);
        for (m, p, q) in [
            (Method::GET, "/", Some("text=CCO")),
            (Method::GET, "/", Some("xrun=1")),
            (Method::GET, "/batch", None),
            (Method::GET, "/api/v1/depict", Some("smiles=CCO")),
            (Method::GET, "/api/v1/config", None),
            (Method::GET, "/healthz", None),
        ] {
            assert!(cost(&m, p, q) == Cost::Free, "{m} {p} {q:?}");
        }
    }

    #[test]
    fn a_key_comes_as_a_bearer_token_or_an_x_api_key() {
        let h = |name: &'static str, v: &str| {
            let mut h = HeaderMap::new();
            h.insert(name, v.parse().unwrap());
            h
        };
        assert_eq!(presented(&h("authorization", "Bearer tfk_1")), Some("tfk_1"));
        assert_eq!(presented(&h("authorization", "bearer  tfk_1 ")), Some("tfk_1"));
        assert_eq!(presented(&h("authorization", "Basic dXNlcg==")), None);
        assert_eq!(presented(&h("x-api-key", "tfk_2")), Some("tfk_2"));
        assert_eq!(presented(&h("x-api-key", " ")), None);
        assert_eq!(presented(&HeaderMap::new()), None);
    }
}
