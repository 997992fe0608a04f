//! The HTTP layer: routes, layers and handlers. Handlers stay thin: parse, call
//! the [`Translator`], render. Only [`error`] turns errors into statuses.

pub mod api;
pub mod error;
pub mod health;
pub mod metrics;
pub mod translate;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, post};
use tower_http::timeout::TimeoutLayer;

use crate::config::Config;
use crate::inference::Translator;
use crate::inference::tokenize::Tokenizer;
use crate::telemetry::Metrics;

/// Everything a handler needs; shared by every request, holding no per-user state.
pub struct AppState {
    pub translator: Arc<dyn Translator>,
    pub config: Arc<Config>,
    pub tokenizer: Tokenizer,
    pub metrics: Metrics,
    /// False from the moment shutdown starts (`/readyz` answers 503).
    pub ready: Arc<AtomicBool>,
}

/// Headroom over the Lambda deadline, so the request timeout never cuts off an
/// answer that the inference deadline would still have produced.
const REQUEST_TIMEOUT_HEADROOM: Duration = Duration::from_secs(5);

pub fn router(state: Arc<AppState>) -> Router {
    let request_timeout = state.config.lambda_timeout + REQUEST_TIMEOUT_HEADROOM;
    Router::new()
        .route("/api/v1/translate", post(api::translate))
        .route("/api/v1/config", get(api::config))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::observe,
        ))
        .fallback(api::not_found)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            request_timeout,
        ))
        .with_state(state)
}
