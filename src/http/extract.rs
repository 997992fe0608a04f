//! The request extractors every route uses. A malformed body, query or form is
//! one of our [`ApiError`]s (JSON for the API, a page for a browser, decided in
//! `error`), never the framework's plain-text rejection.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::error::ApiError;

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

/// A multipart upload's reader; its errors through [`multipart_error`].
pub async fn multipart<S: Send + Sync>(req: Request, state: &S) -> Result<axum::extract::Multipart, ApiError> {
    axum::extract::Multipart::from_request(req, state)
        .await
        .map_err(|e| ApiError::invalid_input(format!("could not read the upload: {}", e.body_text())))
}

/// A failure while reading a multipart field: the size limit, the body timeout,
/// or a malformed upload.
pub fn multipart_error(e: &axum::extract::multipart::MultipartError) -> ApiError {
    body_error(e.status(), e, "the upload", e.body_text())
}

/// Reads the whole body, mapping the size limit to `too_large`.
pub async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| body_error(e.status(), &e, "the request body", e.to_string()))
}

/// A body that could not be read: past `MAX_BODY_BYTES` (413), past
/// `BODY_READ_TIMEOUT` (408), or malformed (400).
fn body_error(status: StatusCode, error: &(dyn std::error::Error + 'static), what: &str, detail: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large(format!("{what} is larger than MAX_BODY_BYTES"))
    } else if super::server::is_body_timeout(error) {
        ApiError::request_timeout()
    } else {
        ApiError::invalid_input(format!("could not read {what}: {detail}"))
    }
}

/// `Cache-Control: no-cache` (or `no-store`, or `max-age=0`): the client wants
/// a fresh answer from the model.
pub fn asks_no_cache(headers: &axum::http::HeaderMap) -> bool {
    headers.get_all(header::CACHE_CONTROL).iter().filter_map(|v| v.to_str().ok()).any(|v| {
        v.split(',')
            .map(|d| d.trim().to_ascii_lowercase())
            .any(|d| d == "no-cache" || d == "no-store" || d == "max-age=0")
    })
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
