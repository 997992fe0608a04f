//! The one place where errors become HTTP statuses and JSON bodies.
//!
//! Bodies carry a stable `code` and a message meant for people; never internals.
//! The cause is logged once, by the request logger, from the [`ErrorDetail`]
//! extension the response carries.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::inference::InferenceError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<Duration>,
}

/// What the request logger reads to log the error once, at the boundary.
#[derive(Debug, Clone)]
pub struct ErrorDetail {
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None }
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }

    /// `503 overloaded` with `Retry-After`: this pod has no room for the work now.
    pub fn busy(message: impl Into<String>, retry_after: Duration) -> Self {
        Self { retry_after: Some(retry_after), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message) }
    }

    /// A fault of ours (a task that panicked); the log has the detail.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// Seconds to tell the client to wait, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after.map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0)).map(|s| s.max(1))
    }
}

impl From<InferenceError> for ApiError {
    fn from(e: InferenceError) -> Self {
        let message = e.to_string();
        match e {
            InferenceError::Overloaded { retry_after } => Self {
                retry_after: Some(retry_after),
                ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", "the server is busy; try again shortly")
            },
            InferenceError::Throttled { retry_after } => Self {
                retry_after: Some(retry_after),
                ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "lambda_throttled", message)
            },
            InferenceError::FunctionError { .. } => {
                Self::new(StatusCode::BAD_GATEWAY, "lambda_function_error", message)
            }
            InferenceError::BadPayload(_) => Self::new(StatusCode::BAD_GATEWAY, "lambda_bad_payload", message),
            InferenceError::Timeout => Self::new(StatusCode::GATEWAY_TIMEOUT, "lambda_timeout", message),
            InferenceError::Unavailable(_) => Self::new(StatusCode::BAD_GATEWAY, "lambda_unavailable", message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs() {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response.extensions_mut().insert(ErrorDetail { code: self.code, message: self.message });
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_inference_error_has_its_documented_status() {
        let cases = [
            (InferenceError::Overloaded { retry_after: Duration::from_secs(1) }, 503, "overloaded"),
            (InferenceError::Throttled { retry_after: Duration::from_millis(1500) }, 503, "lambda_throttled"),
            (
                InferenceError::FunctionError { error_type: "E".into(), message: "m".into() },
                502,
                "lambda_function_error",
            ),
            (InferenceError::BadPayload("x".into()), 502, "lambda_bad_payload"),
            (InferenceError::Timeout, 504, "lambda_timeout"),
            (InferenceError::Unavailable("x".into()), 502, "lambda_unavailable"),
        ];
        for (e, status, code) in cases {
            let api = ApiError::from(e);
            assert_eq!((api.status.as_u16(), api.code), (status, code));
        }
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let api = ApiError::from(InferenceError::Throttled { retry_after: Duration::from_millis(1500) });
        assert_eq!(api.retry_after_secs(), Some(2));
        let response = api.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }
}
