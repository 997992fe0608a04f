//! The JSON API handlers: parse (with the extractors in `extract`), call, render.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::ApiJson;
use super::metrics::LambdaRequestId;
use super::pages;
use crate::translate::{TranslateInput, TranslationView, json};

#[utoipa::path(
    post,
    path = "/api/v1/translate",
    tag = "translate",
    summary = "Translate one input: its n-best results with probabilities and attention",
    description = "The answer is JSON; with `Accept: text/html` it is the results fragment the translate page shows \
        (and errors are the sentence a person should read, as text/plain); with `Accept: chemical/x-mdl-sdfile` \
        (SMILES mode) an SDF, one record per prediction that is a molecule (`id`, `rank`, `probability`, \
        `canonical`, `source`, and with a target `target` and `correct`). Repeated requests are answered from the \
        result cache (`cached`, `X-Cache`) unless `Cache-Control: no-cache` or `\"cache\": false`.",
    request_body(content = TranslateInput, content_type = "application/json"),
    params(("Cache-Control" = Option<String>, Header, description = "`no-cache`: ask the model even if the answer is cached")),
    responses(
        (status = 200, description = "The n-best list", headers(("X-Cache" = String, description = "hit or miss")),
            content((TranslationView = "application/json"), (String = "text/html"), (String = "chemical/x-mdl-sdfile"))),
        (status = 400, description = "invalid_input: malformed, out of bounds, or (SMILES mode) not a molecule", body = ErrorBody),
        (status = 408, description = "request_timeout", body = ErrorBody),
        (status = 413, description = "too_large", body = ErrorBody),
        (status = 401, description = "unauthorized: this server has API keys (API_KEYS_FILE) and none, or an unknown one, was sent", body = ErrorBody),
        (status = 429, description = "rate_limited, or quota_exceeded: the API key's daily inputs are used (Retry-After: until 00:00 UTC)", body = ErrorBody),
        (status = 500, description = "internal_error", body = ErrorBody),
        (status = 502, description = "lambda_function_error, lambda_bad_payload, lambda_unavailable", body = ErrorBody),
        (status = 503, description = "overloaded, lambda_throttled (Retry-After)", body = ErrorBody),
        (status = 504, description = "lambda_timeout", body = ErrorBody),
    )
)]
/// JSON by default; with `Accept: text/html`, the rendered results fragment
/// (what the translate page inserts, so the page and the API share one renderer)
/// or, on an error, its words for people as plain text.
pub async fn post_translate(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ApiJson(mut input): ApiJson<TranslateInput>,
) -> Result<Response, ApiError> {
    let beam = input.beam.unwrap_or(state.config.default_beam);
    if super::extract::asks_no_cache(&headers) {
        input.cache = Some(false);
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let wants_html = accept.starts_with("text/html");
    let wants_sdf = accept.contains("chemical/x-mdl-sdfile");
    if wants_sdf && state.service.reading.format != crate::config::InputFormat::Smiles {
        return Err(ApiError::invalid_input("SDF holds molecules: this server translates text (INPUT_FORMAT=text)"));
    }
    let asked = wants_html.then(|| input.clone());
    let (view, request_id) = match state.service.predict(input, &super::error::caller()).await.map_err(ApiError::from) {
        Ok(done) => done,
        // The page's script shows the words as they are: it words nothing itself.
        Err(e) if wants_html => return Ok(e.into_people_response()),
        Err(e) => return Err(e),
    };
    let cached = view.cached;
    if wants_sdf {
        let sdf = state.service.sdf(view, &super::error::caller()).await?;
        return Ok(sdf_response(sdf));
    }
    let mut response = match asked {
        Some(asked) => pages::render(&pages::ResultsFragment::new(view, &asked, beam)),
        None => json_response(&view),
    };
    let x_cache = if cached { "hit" } else { "miss" };
    response.headers_mut().insert("x-cache", header::HeaderValue::from_static(x_cache));
    if let Some(id) = request_id {
        response.extensions_mut().insert(LambdaRequestId(id));
    }
    Ok(response)
}

/// SDF records as a download (`predictions.sdf`).
pub fn sdf_response(sdf: Vec<u8>) -> Response {
    let mut response = sdf.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("chemical/x-mdl-sdfile"));
    h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"predictions.sdf\""));
    response
}

/// A `200 application/json` response holding `value`, written as answers are
/// (`translate::json`: attention weights with 4 decimals).
pub fn json_response<T: Serialize + ?Sized>(value: &T) -> Response {
    let mut body = Vec::with_capacity(4096);
    json::write(&mut body, value);
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

/// The settings a client needs (`GET /api/v1/config`).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ConfigView {
    /// `lambda` or `demo`.
    backend: &'static str,
    /// The start-up check of the function: `ok`, `pending`, or what failed;
    /// null on the demo backend.
    preflight: Option<&'static str>,
    /// `smiles` or `text`.
    input_format: &'static str,
    tokenizer: &'static str,
    version: &'static str,
    defaults: Defaults,
    limits: Limits,
    examples: Vec<String>,
    /// Each example's name, in the same order (null for one without).
    example_names: Vec<Option<String>>,
    /// The result cache, or null when it is off.
    cache: Option<CacheSettings>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct Defaults {
    beam: u32,
    n_best: u32,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct Limits {
    max_beam: u32,
    max_input_chars: usize,
    /// SMILES mode: the most atoms in a molecule or mixture this server reads.
    max_atoms: usize,
    max_batch_inputs: usize,
    max_body_bytes: usize,
    lambda_timeout_ms: u64,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct CacheSettings {
    max_bytes: usize,
    ttl_s: u64,
}

pub fn config_view(state: &AppState) -> ConfigView {
    let c = &state.config;
    ConfigView {
        backend: state.service.translator.backend(),
        // The outcome only: the details (function, region, role) are in the log.
        preflight: match state.service.translator.backend() {
            "demo" => None,
            _ => Some(state.preflight.lock().unwrap_or_else(std::sync::PoisonError::into_inner).unwrap_or("pending")),
        },
        input_format: c.input_format.name(),
        tokenizer: state.service.reading.tokenizer.name(),
        version: env!("CARGO_PKG_VERSION"),
        defaults: Defaults { beam: c.default_beam, n_best: c.default_n_best },
        limits: Limits {
            max_beam: c.max_beam,
            max_input_chars: c.max_input_chars,
            max_atoms: c.max_atoms,
            max_batch_inputs: c.max_batch_inputs,
            max_body_bytes: c.max_body_bytes,
            lambda_timeout_ms: c.lambda_timeout.as_millis() as u64,
        },
        examples: c.examples.iter().map(|e| e.text.clone()).collect(),
        example_names: c.examples.iter().map(|e| e.name.clone()).collect(),
        // Whether repeated requests are answered without an invocation.
        cache: (c.cache_max_bytes > 0 && !c.cache_ttl.is_zero())
            .then(|| CacheSettings { max_bytes: c.cache_max_bytes, ttl_s: c.cache_ttl.as_secs() }),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/config",
    tag = "service",
    summary = "This server's settings: backend, input format, defaults, limits, examples, cache",
    responses((status = 200, description = "The settings", body = ConfigView))
)]
pub async fn config(State(state): State<Arc<AppState>>) -> Response {
    Json(config_view(&state)).into_response()
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such page or endpoint")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}
