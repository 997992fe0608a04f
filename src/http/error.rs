//! The one place where errors become HTTP statuses and JSON bodies.
//!
//! Bodies carry a stable `code`, a message meant for people and the request's
//! id; never internals (AWS errors name accounts, roles and ARNs; a function's
//! own message may echo its input). The cause is logged once, by the request
//! logger, from the [`ErrorDetail`] extension the response carries, under the
//! same request id.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::inference::InferenceError;
use crate::translate::{self, ErrorCode, error::ErrorInfo};

/// An error on its way to the client: the core's code and words, and a status.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    /// What the client is told.
    pub message: String,
    /// What only the log is told (the full cause), when it says more.
    pub detail: Option<String>,
    pub retry_after: Option<Duration>,
}

/// The body of every API error.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorInfo,
}

/// Each code's status: the one mapping from the core's failures to HTTP.
pub fn status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::RateLimited | ErrorCode::QuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Overloaded | ErrorCode::LambdaThrottled => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::LambdaFunctionError | ErrorCode::LambdaBadPayload | ErrorCode::LambdaUnavailable => {
            StatusCode::BAD_GATEWAY
        }
        ErrorCode::LambdaTimeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorCode::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
    }
}

impl From<translate::Error> for ApiError {
    fn from(e: translate::Error) -> Self {
        ApiError {
            status: status(e.code),
            code: e.code,
            message: e.message,
            detail: e.detail,
            retry_after: e.retry_after,
        }
    }
}

impl From<InferenceError> for ApiError {
    fn from(e: InferenceError) -> Self {
        translate::Error::from(e).into()
    }
}

/// What the request logger reads to log the error once, at the boundary (and
/// what a browser's error page shows).
#[derive(Debug, Clone)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// For the log: the full cause.
    pub message: String,
    /// What the client was told.
    pub public: String,
    pub request_id: Option<String>,
}

tokio::task_local! {
    /// The id of the request being handled (set by the request logger), so an
    /// error body can name it and a support ticket find its log line.
    pub static REQUEST_ID: String;
    /// Who sent it (set by the request logger): the chemistry threads take
    /// turns by client (`chem::pool`).
    pub static CLIENT: crate::chem::pool::ClientKey;
}

/// The client of the request being handled (0 outside one).
pub fn client() -> crate::chem::pool::ClientKey {
    CLIENT.try_with(|c| *c).unwrap_or(0)
}

/// Who sent a request, as the core knows callers: on the request's
/// extensions, for work that runs in a task of its own.
#[derive(Debug, Clone)]
pub struct RequestCaller(pub translate::Caller);

/// Who the request being handled is, as the core knows callers.
pub fn caller() -> translate::Caller {
    translate::Caller { client: client(), request_id: REQUEST_ID.try_with(Clone::clone).ok() }
}

impl ApiError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        translate::Error::new(code, message).into()
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        translate::Error::invalid_input(message).into()
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        translate::Error::too_large(message).into()
    }

    /// `503 overloaded` with `Retry-After`: this pod has no room for the work now.
    pub fn busy(message: impl Into<String>, retry_after: Duration) -> Self {
        translate::Error::busy(message, retry_after).into()
    }

    /// `429 rate_limited` with `Retry-After`: this client is over `RATE_LIMIT`.
    pub fn rate_limited(wait: Duration) -> Self {
        Self {
            retry_after: Some(wait),
            ..Self::new(ErrorCode::RateLimited, "too many requests from this client; slow down")
        }
    }

    /// `429 rate_limited` with `Retry-After`: this client already runs
    /// `MAX_BATCHES_PER_CLIENT` batches.
    pub fn too_many_batches(running: usize) -> Self {
        Self {
            retry_after: Some(Duration::from_secs(5)),
            ..Self::new(
                ErrorCode::RateLimited,
                format!(
                    "this client already has {running} batches running, the most it may; send the next when one ends"
                ),
            )
        }
    }

    /// `401 unauthorized` (with `WWW-Authenticate`): no key where one is
    /// needed, or a key that is not one of ours.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    /// `429 quota_exceeded` with `Retry-After`: the key's `daily_inputs` is
    /// used; the message says when it starts again.
    pub fn quota_exceeded(used: u64, limit: u64, asked: u64, resets: std::time::SystemTime, wait: Duration) -> Self {
        let words = crate::translate::words::thousands;
        Self {
            retry_after: Some(wait),
            ..Self::new(
                ErrorCode::QuotaExceeded,
                format!(
                    "this API key's daily quota is {} inputs and {} are used today; this request has {}; the count \
                     starts again at {} (00:00 UTC)",
                    words(limit as usize),
                    words(used as usize),
                    words(asked as usize),
                    humantime::format_rfc3339_seconds(resets)
                ),
            )
        }
    }

    /// `408 request_timeout`: the body did not arrive within `BODY_READ_TIMEOUT`.
    pub fn request_timeout() -> Self {
        Self::new(ErrorCode::RequestTimeout, "the request body did not arrive in time")
    }

    /// A fault of ours (a task that panicked); the log has the detail.
    pub fn internal(message: impl Into<String>) -> Self {
        translate::Error::internal(message).into()
    }

    /// `405 method_not_allowed` (the router adds `Allow`).
    pub fn method_not_allowed() -> Self {
        Self::new(ErrorCode::MethodNotAllowed, "this address does not take that method")
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// Seconds to tell the client to wait, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after.map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0)).map(|s| s.max(1))
    }
}

/// The words a person sees for an error, in one place: the translate page
/// renders them, its script shows them (`ApiError::into_people_response`).
impl ApiError {
    pub fn for_people(&self) -> String {
        match (self.code, self.retry_after_secs()) {
            (ErrorCode::Overloaded | ErrorCode::LambdaThrottled, Some(s)) => {
                format!("The model is busy. Try again in {s} s.")
            }
            (ErrorCode::Overloaded | ErrorCode::LambdaThrottled, None) => {
                "The model is busy. Try again in a few seconds.".into()
            }
            (ErrorCode::LambdaTimeout, _) => {
                "The model did not answer in time. It may still be warming up after a quiet \
                spell: try again in a minute."
                    .into()
            }
            (ErrorCode::LambdaUnavailable, _) => "The model cannot be reached right now. Try again in a minute.".into(),
            (ErrorCode::LambdaFunctionError, _) => {
                "The model failed on this input. Try another input, or try again later.".into()
            }
            (ErrorCode::LambdaBadPayload, _) => "The model's answer could not be read. Try again later.".into(),
            _ => sentence(&self.message),
        }
    }

    /// For a script that shows errors to a person (`Accept: text/html` on the
    /// translate API): the status and headers as ever, the body the words of
    /// [`ApiError::for_people`] as plain text.
    pub fn into_people_response(self) -> Response {
        let words = self.for_people();
        let mut response = self.into_response();
        response.headers_mut().remove(header::CONTENT_LENGTH);
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        *response.body_mut() = axum::body::Body::from(words);
        response
    }
}

/// A message as a sentence: capital first letter (unless it starts with a name
/// such as `n_best`), final full stop.
pub fn sentence(message: &str) -> String {
    let first = message.split(' ').next().unwrap_or("");
    let mut out: String = if first.chars().all(|c| c.is_ascii_lowercase()) {
        message.chars().take(1).flat_map(char::to_uppercase).chain(message.chars().skip(1)).collect()
    } else {
        message.to_string()
    };
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = REQUEST_ID.try_with(Clone::clone).ok();
        let body = ErrorBody {
            error: ErrorInfo { code: self.code, message: self.message.clone(), request_id: request_id.clone() },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs() {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.code == ErrorCode::Unauthorized {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        let message = self.detail.unwrap_or_else(|| self.message.clone());
        response.extensions_mut().insert(ErrorDetail { code: self.code, message, public: self.message, request_id });
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
            assert_eq!((api.status.as_u16(), api.code.as_str()), (status, code));
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
