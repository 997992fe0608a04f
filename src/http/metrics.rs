//! The metrics listener (its own port, kept off the load balancer) and the
//! middleware that counts, times and logs every routed request.

use std::sync::Arc;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::time::Instant;

use super::AppState;
use super::error::ErrorDetail;
use crate::telemetry::log_buffer::ACCESS_TARGET;
use crate::telemetry::{Metrics, status_class};

/// The Lambda request id of a response, for the request log line.
#[derive(Debug, Clone)]
pub struct LambdaRequestId(pub String);

pub fn router(metrics: Metrics) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], metrics.render()).into_response() }
        }),
    )
}

/// The `method` label: the standard methods by name, anything a client made up
/// as `other`, so no client can add series.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// How a streamed batch ended, for the request logger: its rows, or `None`
/// when its reader went away first. A sender dropped without a word
/// means the job panicked.
#[derive(Debug, Clone, Copy)]
pub struct Ended {
    pub rows: usize,
    pub failed: usize,
    /// Stopped by shutdown (the client was told where to resume).
    pub interrupted: bool,
}

/// Put on a streamed response by its handler (the batch route): the request
/// logger waits on it to count and log how the stream ended.
#[derive(Clone)]
pub struct StreamEnd(Arc<std::sync::Mutex<Option<EndReceiver>>>);

type EndReceiver = tokio::sync::oneshot::Receiver<Option<Ended>>;

impl StreamEnd {
    pub fn new(rx: EndReceiver) -> Self {
        StreamEnd(Arc::new(std::sync::Mutex::new(Some(rx))))
    }

    /// Waits for the end (once; later calls see `Err`).
    pub async fn ended(&self) -> Result<Option<Ended>, ()> {
        let rx = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        match rx {
            Some(rx) => rx.await.map_err(|_| ()),
            None => Err(()),
        }
    }
}

/// The id a request arrived with: the trace id of a valid W3C `traceparent`
/// (from a client or a balancer), else an `X-Request-Id` of at most 64
/// characters from `[A-Za-z0-9._:-]`; anything else is ignored (a new id is
/// made), so no client can put arbitrary text in our logs.
pub fn incoming_request_id(headers: &axum::http::HeaderMap) -> Option<String> {
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if let Some(tp) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
        let parts: Vec<&str> = tp.trim().split('-').collect();
        if let [version, trace, parent, flags, ..] = parts[..]
            && hex(version, 2)
            && version != "ff"
            && (version != "00" || parts.len() == 4)
            && hex(trace, 32)
            && trace.bytes().any(|b| b != b'0')
            && hex(parent, 16)
            && parent.bytes().any(|b| b != b'0')
            && hex(flags, 2)
        {
            return Some(trace.to_string());
        }
    }
    let id = headers.get("x-request-id").and_then(|v| v.to_str().ok())?.trim();
    let safe = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-');
    (!id.is_empty() && id.len() <= 64 && id.bytes().all(safe)).then(|| id.to_string())
}

/// One log line and one observation per request, labelled by route template.
/// Installed with `route_layer`, so unmatched paths create no new series.
pub async fn observe(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    // MatchedPath is a shared string: cloning it allocates nothing.
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("", MatchedPath::as_str);
    let method = req.method().clone();
    let request_id = incoming_request_id(req.headers()).unwrap_or_else(|| format!("{:016x}", fastrand::u64(..)));
    let client = req.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map_or(0, |c| {
        let ip = super::ratelimit::client(c.0.ip(), req.headers(), &state.config.trusted_proxies.0);
        std::hash::BuildHasher::hash_one(&std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default(), ip)
    });
    // Also on the request, for handlers that run outside this task (`mcp`).
    let caller = crate::translate::Caller { client, request_id: Some(request_id.clone()) };
    req.extensions_mut().insert(super::error::RequestCaller(caller));
    let handled = super::error::CLIENT.scope(client, next.run(req));
    let mut response = super::error::REQUEST_ID.scope(request_id.clone(), handled).await;
    if let Ok(value) = axum::http::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    let status = response.status();
    if let Some(end) = response.extensions().get::<StreamEnd>().cloned() {
        // A streamed batch: its status line left long ago; record it when the
        // stream ends, with what happened to its rows.
        let (route, method) = (route.to_string(), method_label(&method));
        let key = response.extensions().get::<super::auth::KeyName>().map(|k| k.0.clone());
        tokio::spawn(async move {
            let key = key.as_deref();
            let ended = end.ended().await;
            let latency_ms = started.elapsed().as_secs_f64() * 1e3;
            let m = &state.metrics;
            m.http_requests.with_label_values(&[&route, method, status.as_str(), "none"]).inc();
            m.http_duration.with_label_values(&[&route, status_class(status.as_u16())]).observe(latency_ms / 1e3);
            let how = match ended {
                Ok(Some(e)) if e.interrupted => "interrupted",
                Ok(Some(_)) => "completed",
                Ok(None) => "client_left",
                Err(()) => "failed",
            };
            m.batches.with_label_values(&[how]).inc();
            if let Ok(Some(e)) = ended {
                m.batch_rows.with_label_values(&["translated"]).inc_by((e.rows - e.failed) as u64);
                m.batch_rows.with_label_values(&["failed"]).inc_by(e.failed as u64);
            }
            match ended {
                Ok(Some(Ended { rows, failed, .. })) => tracing::info!(
                    target: ACCESS_TARGET, method, route, status = status.as_u16(), latency_ms, request_id, key, rows, rows_failed = failed,
                    "batch streamed"
                ),
                Ok(None) => tracing::info!(
                    target: ACCESS_TARGET, method, route, status = status.as_u16(), latency_ms, request_id, key,
                    "batch ended early: its client went away or stopped reading"
                ),
                Err(()) => tracing::error!(
                    target: ACCESS_TARGET, method, route, status = status.as_u16(), latency_ms, request_id, key,
                    "batch job failed (panicked); the stream was cut"
                ),
            }
        });
        return response;
    }
    let elapsed = started.elapsed();
    let m = &state.metrics;
    // The error code is one of the fixed set (`ApiError`'s constructors).
    let code = response.extensions().get::<ErrorDetail>().map_or("none", |e| e.code.as_str());
    m.http_requests.with_label_values(&[route, method_label(&method), status.as_str(), code]).inc();
    m.http_duration.with_label_values(&[route, status_class(status.as_u16())]).observe(elapsed.as_secs_f64());

    let latency_ms = elapsed.as_secs_f64() * 1e3;
    let lambda_request_id = response.extensions().get::<LambdaRequestId>().map(|r| r.0.as_str());
    let key = response.extensions().get::<super::auth::KeyName>().map(|k| k.0.as_str());
    match response.extensions().get::<ErrorDetail>() {
        Some(e) if status.is_server_error() => tracing::warn!(
            target: ACCESS_TARGET, %method, route, status = status.as_u16(), latency_ms, request_id, lambda_request_id, key, code = e.code.as_str(), error = %e.message,
            "request failed"
        ),
        Some(e) => tracing::info!(
            target: ACCESS_TARGET, %method, route, status = status.as_u16(), latency_ms, request_id, lambda_request_id, key, code = e.code.as_str(), error = %e.message, "request rejected"
        ),
        None => {
            tracing::info!(target: ACCESS_TARGET, %method, route, status = status.as_u16(), latency_ms, request_id, lambda_request_id, key, "request")
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::method_label;
    use axum::http::Method;

    #[test]
    fn a_request_id_comes_from_a_valid_traceparent_or_a_plain_x_request_id_and_nothing_else() {
        use super::incoming_request_id as id;
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut h = axum::http::HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, axum::http::HeaderValue::from_str(v).unwrap());
            }
            h
        };
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        let tp = format!("00-{trace}-00f067aa0ba902b7-01");
        assert_eq!(id(&headers(&[("traceparent", &tp)])).as_deref(), Some(trace));
        // A traceparent wins over X-Request-Id; a later version may add fields.
        let both = headers(&[("traceparent", &tp), ("x-request-id", "abc")]);
        assert_eq!(id(&both).as_deref(), Some(trace));
        let v1 = format!("01-{trace}-00f067aa0ba902b7-01-more");
        assert_eq!(id(&headers(&[("traceparent", &v1)])).as_deref(), Some(trace));
        for bad in [
            format!("ff-{trace}-00f067aa0ba902b7-01"),
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01".to_string(),
            format!("00-{trace}-0000000000000000-01"),
            format!("00-{}-00f067aa0ba902b7-01", trace.to_uppercase()),
            format!("00-{trace}-00f067aa0ba902b7-01-extra"),
            "garbage".to_string(),
        ] {
            assert_eq!(id(&headers(&[("traceparent", &bad)])), None, "{bad}");
        }
        assert_eq!(id(&headers(&[("x-request-id", "req-42.a_b:c")])).as_deref(), Some("req-42.a_b:c"));
        for bad in ["a b", "x".repeat(65).as_str(), "<script>", "", "a\"b"] {
            assert_eq!(id(&headers(&[("x-request-id", bad)])), None, "{bad}");
        }
    }

    #[test]
    fn methods_outside_the_standard_set_are_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"X1").unwrap()), "other");
        assert_eq!(method_label(&Method::from_bytes(b"PROPFIND").unwrap()), "other");
    }
}
