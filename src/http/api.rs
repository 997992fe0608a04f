//! The JSON API handlers: parse (with the extractors in `extract`), call, render.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::error::ApiError;
use super::extract::ApiJson;
use super::json;
use super::metrics::LambdaRequestId;
use super::pages;
use super::prediction::{self, TranslateInput};

/// JSON by default; with `Accept: text/html`, the rendered results fragment
/// (what the translate page inserts, so the page and the API share one renderer)
/// or, on an error, its words for people as plain text.
pub async fn post_translate(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ApiJson(mut input): ApiJson<TranslateInput>,
) -> Result<Response, ApiError> {
    let beam = input.beam.unwrap_or(state.config.default_beam);
    if asks_no_cache(&headers) {
        input.cache = Some(false);
    }
    let wants_html =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/html"));
    let asked = wants_html.then(|| input.clone());
    let (view, request_id) = match prediction::predict(&state, input).await {
        Ok(done) => done,
        // The page's script shows the words as they are: it words nothing itself.
        Err(e) if wants_html => return Ok(e.into_people_response()),
        Err(e) => return Err(e),
    };
    let cached = view.cached;
    let mut response = match asked {
        Some(asked) => pages::render(&pages::ResultsFragment::new(view, &asked, beam)),
        None => json::response(&view),
    };
    let x_cache = if cached { "hit" } else { "miss" };
    response.headers_mut().insert("x-cache", header::HeaderValue::from_static(x_cache));
    if let Some(id) = request_id {
        response.extensions_mut().insert(LambdaRequestId(id));
    }
    Ok(response)
}

/// `Cache-Control: no-cache` (or `no-store`, or `max-age=0`): the client wants
/// a fresh answer from the model.
pub fn asks_no_cache(headers: &HeaderMap) -> bool {
    headers.get_all(header::CACHE_CONTROL).iter().filter_map(|v| v.to_str().ok()).any(|v| {
        v.split(',')
            .map(|d| d.trim().to_ascii_lowercase())
            .any(|d| d == "no-cache" || d == "no-store" || d == "max-age=0")
    })
}

pub async fn config(State(state): State<Arc<AppState>>) -> Response {
    let c = &state.config;
    Json(json!({
        "backend": state.translator.backend(),
        // The outcome only: the details (function, region, role) are in the log.
        "preflight": match state.translator.backend() {
            "demo" => serde_json::Value::Null,
            _ => json!(state.preflight.lock().unwrap_or_else(std::sync::PoisonError::into_inner).map_or("pending", |p| p.name())),
        },
        "input_format": c.input_format.name(),
        "tokenizer": state.tokenizer.name(),
        "version": env!("CARGO_PKG_VERSION"),
        "defaults": {"beam": c.default_beam, "n_best": c.default_n_best},
        "limits": {
            "max_beam": c.max_beam,
            "max_input_chars": c.max_input_chars,
            "max_batch_inputs": c.max_batch_inputs,
            "max_body_bytes": c.max_body_bytes,
            "lambda_timeout_ms": c.lambda_timeout.as_millis() as u64,
        },
        "examples": c.examples,
        // Whether repeated requests are answered without an invocation.
        "cache": if c.cache_max_bytes == 0 || c.cache_ttl.is_zero() {
            serde_json::Value::Null
        } else {
            json!({"max_bytes": c.cache_max_bytes, "ttl_s": c.cache_ttl.as_secs()})
        },
    }))
    .into_response()
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such page or endpoint")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}
