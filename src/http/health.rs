//! Liveness and readiness. Neither depends on the Lambda: a slow or failing model
//! must not make Kubernetes restart or unroute healthy pods.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;

use super::AppState;

/// 200 while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "service", summary = "Liveness",
    responses((status = 200, description = "The process runs", content_type = "text/plain", body = String)))]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// 200 while serving; 503 from the moment shutdown starts, so the load balancer
/// stops sending new requests during the drain.
#[utoipa::path(get, path = "/readyz", tag = "service", summary = "Readiness: 503 once shutdown starts",
    responses((status = 200, description = "Serving", content_type = "text/plain", body = String),
              (status = 503, description = "Draining", content_type = "text/plain", body = String)))]
pub async fn readyz(State(state): State<Arc<AppState>>) -> (StatusCode, &'static str) {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    }
}
