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

/// One log line and one observation per request, labelled by route template.
/// Installed with `route_layer`, so unmatched paths create no new series.
pub async fn observe(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    // MatchedPath is a shared string: cloning it allocates nothing.
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("", MatchedPath::as_str);
    let method = req.method().clone();
    let request_id = format!("{:016x}", fastrand::u64(..));
    let client = req.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map_or(0, |c| {
        let ip = super::ratelimit::client(c.0.ip(), req.headers(), &state.config.trusted_proxies.0);
        std::hash::BuildHasher::hash_one(&std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default(), ip)
    });
    let handled = super::error::CLIENT.scope(client, next.run(req));
    let mut response = super::error::REQUEST_ID.scope(request_id.clone(), handled).await;
    if let Ok(value) = axum::http::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    let status = response.status();
    if let Some(end) = response.extensions().get::<super::batch::StreamEnd>().cloned() {
        // A streamed batch: its status line left long ago; record it when the
        // stream ends, with what happened to its rows.
        let (route, method) = (route.to_string(), method_label(&method));
        tokio::spawn(async move {
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
                Ok(Some(super::batch::Ended { rows, failed, .. })) => tracing::info!(
                    target: ACCESS_TARGET, method, route, status = status.as_u16(), latency_ms, request_id, rows, rows_failed = failed,
                    "batch streamed"
                ),
                Ok(None) => tracing::info!(
                    target: ACCESS_TARGET, method, route, status = status.as_u16(), latency_ms, request_id,
                    "batch ended early: its client went away or stopped reading"
                ),
                Err(()) => tracing::error!(
                    target: ACCESS_TARGET, method, route, status = status.as_u16(), latency_ms, request_id,
                    "batch job failed (panicked); the stream was cut"
                ),
            }
        });
        return response;
    }
    let elapsed = started.elapsed();
    let m = &state.metrics;
    // The error code is one of the fixed set (`ApiError`'s constructors).
    let code = response.extensions().get::<ErrorDetail>().map_or("none", |e| e.code);
    m.http_requests.with_label_values(&[route, method_label(&method), status.as_str(), code]).inc();
    m.http_duration.with_label_values(&[route, status_class(status.as_u16())]).observe(elapsed.as_secs_f64());

    let latency_ms = elapsed.as_secs_f64() * 1e3;
    let lambda_request_id = response.extensions().get::<LambdaRequestId>().map(|r| r.0.as_str());
    match response.extensions().get::<ErrorDetail>() {
        Some(e) if status.is_server_error() => tracing::warn!(
            target: ACCESS_TARGET, %method, route, status = status.as_u16(), latency_ms, request_id, lambda_request_id, code = e.code, error = %e.message,
            "request failed"
        ),
        Some(e) => tracing::info!(
            target: ACCESS_TARGET, %method, route, status = status.as_u16(), latency_ms, request_id, lambda_request_id, code = e.code, error = %e.message, "request rejected"
        ),
        None => {
            tracing::info!(target: ACCESS_TARGET, %method, route, status = status.as_u16(), latency_ms, request_id, lambda_request_id, "request")
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::method_label;
    use axum::http::Method;

    #[test]
    fn methods_outside_the_standard_set_are_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"X1").unwrap()), "other");
        assert_eq!(method_label(&Method::from_bytes(b"PROPFIND").unwrap()), "other");
    }
}
