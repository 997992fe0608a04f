//! The JSON API handlers: parse, call, render. Rejections of malformed bodies are
//! our JSON errors too, never the framework's plain-text ones.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::AppState;
use super::error::ApiError;
use super::json;
use super::metrics::LambdaRequestId;
use super::pages;
use super::translate::{self, TranslateInput};

/// A JSON body: `Content-Type: application/json`, valid UTF-8, within
/// `MAX_BODY_BYTES`, deserializing into `T`; otherwise an [`ApiError`].
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(ApiError::invalid_input("Content-Type must be application/json"));
        }
        let body = read_body(req, state).await?;
        std::str::from_utf8(&body).map_err(|_| ApiError::invalid_input("the body is not valid UTF-8"))?;
        serde_json::from_slice(&body).map(ApiJson).map_err(|e| ApiError::invalid_input(format!("invalid JSON: {e}")))
    }
}

/// A query string deserializing into `T`; otherwise our JSON `invalid_input`
/// (axum's own rejection is plain text).
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| ApiError::invalid_input(format!("the query string is not valid: {}", e.body_text())))
    }
}

/// An HTML form body (`application/x-www-form-urlencoded`) whose every
/// percent-decoded field is valid UTF-8, deserializing into `T`. axum's `Form`
/// would decode invalid UTF-8 lossily; the API refuses it, so the form does too.
pub struct StrictForm<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for StrictForm<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let body = read_body(req, state).await?;
        if !form_is_utf8(&body) {
            return Err(ApiError::invalid_input("the form is not valid UTF-8"));
        }
        serde_urlencoded::from_bytes(&body)
            .map(StrictForm)
            .map_err(|e| ApiError::invalid_input(format!("the form could not be read: {e}")))
    }
}

/// Whether every name and value of a urlencoded body decodes to valid UTF-8.
fn form_is_utf8(body: &[u8]) -> bool {
    body.split(|b| *b == b'&').flat_map(|pair| pair.split(|b| *b == b'=')).all(|part| {
        let mut decoded = Vec::with_capacity(part.len());
        let mut i = 0;
        while i < part.len() {
            match part[i] {
                b'%' if i + 2 < part.len() => {
                    let hex =
                        std::str::from_utf8(&part[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                    match hex {
                        Some(b) => {
                            decoded.push(b);
                            i += 3;
                        }
                        None => {
                            decoded.push(b'%');
                            i += 1;
                        }
                    }
                }
                b'+' => {
                    decoded.push(b' ');
                    i += 1;
                }
                b => {
                    decoded.push(b);
                    i += 1;
                }
            }
        }
        std::str::from_utf8(&decoded).is_ok()
    })
}

/// Reads the whole body, mapping the size limit to `too_large`.
pub async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large("the request body is larger than MAX_BODY_BYTES")
        } else if super::server::is_body_timeout(&e) {
            ApiError::request_timeout()
        } else {
            ApiError::invalid_input(format!("could not read the body: {e}"))
        }
    })
}

/// JSON by default; with `Accept: text/html`, the rendered results fragment
/// (what the translate page inserts, so the page and the API share one renderer).
pub async fn translate(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<TranslateInput>,
) -> Result<Response, ApiError> {
    let beam = input.beam.unwrap_or(state.config.default_beam);
    let (view, request_id) = translate::translate(&state, input).await?;
    let wants_html =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/html"));
    let mut response =
        if wants_html { pages::render(&pages::ResultsFragment::new(view, beam)) } else { json::response(&view) };
    if let Some(id) = request_id {
        response.extensions_mut().insert(LambdaRequestId(id));
    }
    Ok(response)
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
    }))
    .into_response()
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such page or endpoint")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

#[cfg(test)]
mod tests {
    use super::form_is_utf8;

    #[test]
    fn forms_with_invalid_utf8_are_told_apart() {
        assert!(form_is_utf8(b"text=CC%28%3DO%29O&beam=5"));
        assert!(form_is_utf8("text=%C3%A9+x&n=%".as_bytes()));
        assert!(!form_is_utf8(b"text=%FF%FE"));
        assert!(!form_is_utf8(b"text=ok&%C3=x"));
        assert!(!form_is_utf8(b"text=\xff"));
    }
}
