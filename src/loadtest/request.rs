//! One request of a load test: what it sends (the inputs in turn, the body
//! for the mode), sending it on a counted connection, and recording how it
//! ended against its intended send time; the page's drawings after it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::connect::capture_connection;
use tokio::time::Instant;

use super::client::{self, HttpClient};
use super::{LoadMode, LoadtestArgs, molecules, report};

/// Everything measured so far; shared by the request tasks.
pub(super) struct Tally {
    /// Every request that ended, and the successful ones; latency in µs.
    pub(super) all: hdrhistogram::Histogram<u64>,
    pub(super) ok: hdrhistogram::Histogram<u64>,
    pub(super) completed: u64,
    pub(super) errors: BTreeMap<String, u64>,
    /// The same for the current second (`series`), reset every second.
    pub(super) tick_all: hdrhistogram::Histogram<u64>,
    pub(super) tick_completed: u64,
    pub(super) tick_errors: BTreeMap<String, u64>,
    pub(super) drawings: report::Drawings,
    pub(super) drawings_latency: hdrhistogram::Histogram<u64>,
}

impl Tally {
    pub(super) fn new() -> Self {
        Tally {
            all: report::histogram(),
            ok: report::histogram(),
            completed: 0,
            errors: BTreeMap::new(),
            tick_all: report::histogram(),
            tick_completed: 0,
            tick_errors: BTreeMap::new(),
            drawings: report::Drawings::default(),
            drawings_latency: report::histogram(),
        }
    }

    pub(super) fn ended(&mut self, latency_us: u64, error: Option<String>) {
        let us = latency_us.max(1);
        let _ = self.all.record(us);
        let _ = self.tick_all.record(us);
        match error {
            None => {
                let _ = self.ok.record(us);
                self.completed += 1;
                self.tick_completed += 1;
            }
            Some(kind) => {
                *self.tick_errors.entry(kind.clone()).or_default() += 1;
                *self.errors.entry(kind).or_default() += 1;
            }
        }
    }
}

pub(super) struct Shared {
    pub(super) tally: Mutex<Tally>,
    pub(super) in_flight: AtomicUsize,
    pub(super) sent: AtomicU64,
    pub(super) not_sent: AtomicU64,
}

/// The inputs requests carry in turn.
pub(super) enum Inputs {
    /// A different valid molecule every time (`molecules`).
    Generated,
    Lines(Vec<String>),
}

impl Inputs {
    pub(super) fn get(&self, k: u64) -> String {
        match self {
            Inputs::Generated => molecules::molecule(k),
            Inputs::Lines(lines) => lines[(k % lines.len() as u64) as usize].clone(),
        }
    }
}

/// What one request sends.
pub(super) struct Template {
    pub(super) method: Method,
    pub(super) uri: String,
    pub(super) base: String,
    pub(super) mode: LoadMode,
    /// The request body's fields besides the input(s).
    pub(super) fields: serde_json::Map<String, serde_json::Value>,
    pub(super) inputs: Inputs,
    pub(super) first_input: u64,
    pub(super) batch_size: usize,
    /// Without it, requests carry `Cache-Control: no-cache`.
    pub(super) use_cache: bool,
    pub(super) depict: bool,
    pub(super) max_requests_per_connection: usize,
}

impl Template {
    /// The `k`-th request's body.
    pub(super) fn body(&self, k: u64) -> Bytes {
        let first = self.first_input;
        let mut body = self.fields.clone();
        match self.mode {
            LoadMode::Page => return Bytes::new(),
            LoadMode::Translate => {
                body.insert("text".into(), self.inputs.get(first + k).into());
            }
            LoadMode::Batch => {
                let n = self.batch_size.max(1) as u64;
                let batch: Vec<String> = (0..n).map(|i| self.inputs.get(first + k * n + i)).collect();
                body.insert("inputs".into(), batch.into());
            }
        }
        Bytes::from(serde_json::to_vec(&body).expect("JSON"))
    }
}

pub(super) fn template(args: &LoadtestArgs, inputs: Inputs) -> Template {
    let base = args.url.trim_end_matches('/').to_string();
    let mut fields = serde_json::Map::new();
    if let Some(b) = args.beam {
        fields.insert("beam".into(), b.into());
    }
    if let Some(n) = args.n_best {
        fields.insert("n_best".into(), n.into());
    }
    fields.insert("attention".into(), (args.attention && !args.no_attention).into());
    let (method, uri) = match args.mode {
        LoadMode::Translate => (Method::POST, format!("{base}/api/v1/translate")),
        LoadMode::Batch => (Method::POST, format!("{base}/api/v1/translate/batch")),
        LoadMode::Page => (Method::GET, format!("{base}{}", args.path)),
    };
    Template {
        method,
        uri,
        base,
        mode: args.mode,
        fields,
        inputs,
        first_input: args.first_input,
        batch_size: args.batch_size,
        use_cache: args.use_cache,
        depict: args.depict && args.mode == LoadMode::Translate,
        max_requests_per_connection: args.max_requests_per_connection,
    }
}

/// Sends one request, counting it on its connection; the status and body.
async fn send(
    client: &HttpClient,
    t: &Template,
    method: Method,
    uri: &str,
    body: Bytes,
) -> Result<(hyper::StatusCode, Bytes), String> {
    let mut request = Request::builder().method(method).uri(uri);
    if !body.is_empty() {
        request = request.header("content-type", "application/json");
    }
    if !t.use_cache {
        request = request.header("cache-control", "no-cache");
    }
    let mut request = request.body(Full::new(body)).map_err(|_| "request".to_string())?;
    let captured = capture_connection(&mut request);
    let response = client.request(request).await.map_err(|_| "connection".to_string())?;
    client::count_use(&captured, t.max_requests_per_connection);
    let status = response.status();
    let body = response.into_body().collect().await.map_err(|_| "connection".to_string())?.to_bytes();
    Ok((status, body))
}

/// What a failed response counts as: its status and error code.
fn error_kind(status: hyper::StatusCode, body: &[u8]) -> String {
    let code = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(String::from))
        .unwrap_or_default();
    format!("{} {code}", status.as_u16()).trim().to_string()
}

/// Sends the `k`-th request and records its outcome against its intended
/// time: a success, an error response, a connection error or a timeout, each
/// at the latency it took.
pub(super) async fn fire(
    client: HttpClient,
    shared: Arc<Shared>,
    t: Arc<Template>,
    k: u64,
    intended: Instant,
    timeout: Duration,
) {
    let outcome = tokio::time::timeout(timeout, send(&client, &t, t.method.clone(), &t.uri, t.body(k))).await;
    let latency_us = intended.elapsed().as_micros() as u64;
    let (error, body) = match outcome {
        Ok(Ok((status, body))) if status.is_success() => (None, Some(body)),
        Ok(Ok((status, body))) => (Some(error_kind(status, &body)), None),
        Ok(Err(kind)) => (Some(kind), None),
        Err(_) => (Some("timeout".to_string()), None),
    };
    shared.tally.lock().expect("tally lock").ended(latency_us, error);
    if let (true, Some(body)) = (t.depict, body) {
        drawings(&client, &shared, &t, &body, timeout).await;
    }
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
}

/// The page's drawings of a translation: its input as read and each valid
/// prediction, fetched at once as a browser does.
async fn drawings(client: &HttpClient, shared: &Shared, t: &Template, body: &[u8], timeout: Duration) {
    let Ok(view) = serde_json::from_slice::<serde_json::Value>(body) else { return };
    let smiles: Vec<String> = std::iter::once(&view["canonical"])
        .chain(view["predictions"].as_array().into_iter().flatten().map(|p| &p["canonical"]))
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    let fetches = smiles.into_iter().map(|s| async move {
        let uri = format!("{}/api/v1/depict?smiles={}", t.base, escape(&s));
        let started = Instant::now();
        let outcome = tokio::time::timeout(timeout, send(client, t, Method::GET, &uri, Bytes::new())).await;
        let error = match outcome {
            Ok(Ok((status, _))) if status.is_success() => None,
            Ok(Ok((status, body))) => Some(error_kind(status, &body)),
            Ok(Err(kind)) => Some(kind),
            Err(_) => Some("timeout".to_string()),
        };
        let mut tally = shared.tally.lock().expect("tally lock");
        tally.drawings.requests += 1;
        match error {
            None => {
                tally.drawings.ok += 1;
                let _ = tally.drawings_latency.record((started.elapsed().as_micros() as u64).max(1));
            }
            Some(kind) => *tally.drawings.errors_by_kind.entry(kind).or_default() += 1,
        }
    });
    futures_util::future::join_all(fetches).await;
}

/// A query value, percent-encoded.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
