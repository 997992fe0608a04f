//! The HTTP layer: routes, layers and handlers. Handlers stay thin: parse, call
//! the [`Translator`], render. Only [`error`] turns errors into statuses.

pub mod api;
pub mod api_page;
pub mod assets;
pub mod auth;
pub mod batch;
pub mod depict;
pub mod error;
pub mod extract;
pub mod health;
pub mod heatmap;
pub mod mcp;
pub mod metrics;
pub mod openapi;
pub mod pages;
pub mod ratelimit;
pub mod server;
pub mod site;
pub mod structure;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::routing::{get, post};
use tower_http::compression::CompressionLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

use crate::config::Config;
use crate::telemetry::Metrics;

/// Everything a handler needs; shared by every request, holding no per-user state.
pub struct AppState {
    /// The product's core: translations, one or many (`translate`).
    pub service: Arc<crate::translate::Service>,
    pub config: Arc<Config>,
    pub metrics: Metrics,
    /// False from the moment shutdown starts (`/readyz` answers 503).
    pub ready: Arc<AtomicBool>,
    /// Turns true when `SHUTDOWN_GRACE` ends: listeners stop accepting and
    /// running batches stop with an `interrupted` line.
    pub stopping: tokio::sync::watch::Sender<bool>,
    /// The start-up preflight's outcome, by name (`ok`, or what failed;
    /// `None` while it runs, or on the demo). Set by `startup`.
    pub preflight: std::sync::Mutex<Option<&'static str>>,
    /// The title and description the pages show.
    pub site: site::Site,
    /// API keys and quotas (`API_KEYS_FILE`), when set.
    pub access: Option<auth::Access>,
    /// Per-client limits (`RATE_LIMIT`), when set.
    pub rate_limiter: Option<ratelimit::Limiter>,
    /// Whether the function has been idle: a page visit then warms it.
    pub warmth: Arc<crate::inference::keep_warm::OnVisit>,
    /// The OpenAPI document, made on first use (`openapi::document`).
    pub openapi: std::sync::OnceLock<serde_json::Value>,
    /// The chemistry threads every RDKit call runs on (`chem::pool`): one
    /// per core, jobs taken in turns per client (drawings use them here).
    pub chemistry: &'static crate::chem::pool::Pool,
    /// Batches running per client (`MAX_BATCHES_PER_CLIENT`).
    pub batches: batch::PerClient,
}

impl AppState {
    /// Called by page handlers: after a quiet spell, one keep-warm ping in the
    /// background (the page never waits for it).
    pub fn warm_on_visit(self: &Arc<Self>) {
        if !self.warmth.claim() {
            return;
        }
        self.metrics.warm_on_visit.inc();
        let state = self.clone();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + crate::inference::keep_warm::PING_TIMEOUT;
            let outcome = match state.service.translator.warmup(deadline).await {
                Ok(()) => "ok",
                Err(e) => {
                    tracing::warn!(error = %e, "keep-warm ping on page visit failed");
                    "failed"
                }
            };
            state.metrics.warmup_pings.with_label_values(&[outcome]).inc();
        });
    }
}

/// Headroom over the Lambda deadline, so the request timeout never cuts off an
/// answer that the inference deadline would still have produced.
pub const REQUEST_TIMEOUT_HEADROOM: Duration = Duration::from_secs(5);

/// The Content-Security-Policy of every response: nothing but this origin, no
/// inline scripts, no framing.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// While draining, every response says `Connection: close`, so keep-alive
/// clients (and a balancer's pooled connections) move to other pods now rather
/// than when the listener closes.
async fn close_when_draining(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    req: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    let mut response = next.run(req).await;
    if !state.ready.load(std::sync::atomic::Ordering::Relaxed) {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

pub fn router(state: Arc<AppState>) -> Router {
    let request_timeout = state.config.lambda_timeout + REQUEST_TIMEOUT_HEADROOM;
    let security = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    // Bulk requests stream for as long as their chunks take: no request timeout
    // (each chunk has its own deadline) and no compression (lines must flow).
    let bulk = Router::new()
        .route("/api/v1/translate/batch", post(batch::post_batch))
        .route("/batch", post(batch::post_form))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::middleware))
        .route_layer(middleware::from_fn_with_state(state.clone(), metrics::observe))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes));
    let mut router = Router::new()
        .route("/", get(pages::index).post(pages::index_post))
        .route("/about", get(pages::about))
        .route("/batch", get(pages::batch))
        .route("/static/{file}", get(assets::serve))
        .route("/static/vendor/{*path}", get(assets::vendor))
        .route("/editor", get(pages::editor))
        .route("/api/v1/translate", post(api::post_translate))
        .route("/api/v1/translate/batch/export", post(batch::post_export))
        .route("/api/v1/config", get(api::config))
        .route("/api/v1/openapi.json", get(openapi::openapi_json))
        .route("/api", get(api_page::api_page))
        .route("/api/v1/depict", get(depict::depict))
        .route("/api/v1/structure", get(structure::file).post(structure::read))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz));
    if state.config.mcp_enabled {
        router = router.route_service("/mcp", mcp::service(state.clone()));
    }
    let mut router = router
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::middleware))
        .route_layer(middleware::from_fn_with_state(state.clone(), metrics::observe))
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(CompressionLayer::new())
        .layer(TimeoutLayer::with_status_code(StatusCode::GATEWAY_TIMEOUT, request_timeout))
        .merge(bulk);
    router = router.layer(middleware::from_fn_with_state(state.clone(), ratelimit::middleware));
    router = router.layer(middleware::from_fn_with_state(state.clone(), close_when_draining));
    router = router.layer(middleware::from_fn_with_state(state.clone(), pages::html_errors));
    for (name, value) in security {
        router = router.layer(SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value)));
    }
    let body_limit = state.config.body_read_timeout;
    router = router.layer(middleware::from_fn(move |req, next| server::body_deadline(body_limit, req, next)));
    router.with_state(state)
}
