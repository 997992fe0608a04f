//! What can go wrong with a translation, in the core's own terms: a stable
//! [`ErrorCode`] for programs and a message for people. No HTTP here: the web
//! layer gives each code its status in one place (`http::error`); a batch row
//! carries the same code and message in its line.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::inference::InferenceError;

/// The `code` of an error, as every error body and every failed batch row
/// writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the request is malformed or asks for something out of bounds.
    InvalidInput,
    /// 413: the body or the batch is larger than this server takes.
    TooLarge,
    /// 408: the body did not arrive within `BODY_READ_TIMEOUT`.
    RequestTimeout,
    /// 401: this server needs an API key, or the key sent is not one of its.
    Unauthorized,
    /// 429: this client sends too fast (`RATE_LIMIT`, its key's rate) or runs
    /// too many batches.
    RateLimited,
    /// 429: this API key's daily quota of inputs is used.
    QuotaExceeded,
    /// 503: this server has no room for the work now.
    Overloaded,
    /// 503: the Lambda function is throttled.
    LambdaThrottled,
    /// 502: the model failed on this input.
    LambdaFunctionError,
    /// 502: the model's answer could not be read.
    LambdaBadPayload,
    /// 504: the model did not answer in time.
    LambdaTimeout,
    /// 502: the model cannot be reached.
    LambdaUnavailable,
    /// 500: a fault in this server.
    InternalError,
    /// 404.
    NotFound,
    /// 405.
    MethodNotAllowed,
}

impl ErrorCode {
    /// The code as written on the wire (and as a metric label: a closed set).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::LambdaThrottled => "lambda_throttled",
            ErrorCode::LambdaFunctionError => "lambda_function_error",
            ErrorCode::LambdaBadPayload => "lambda_bad_payload",
            ErrorCode::LambdaTimeout => "lambda_timeout",
            ErrorCode::LambdaUnavailable => "lambda_unavailable",
            ErrorCode::InternalError => "internal_error",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error as every error body writes it (`{"error": ErrorInfo}`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorInfo {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong, in words.
    pub message: String,
    /// The id of this request in the server's log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// A translation that cannot be done, or not now.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    pub code: ErrorCode,
    /// What the client is told.
    pub message: String,
    /// What only the log is told (the full cause), when it says more. AWS
    /// errors name accounts, roles and ARNs, a function's own message may echo
    /// its input: they stay here.
    pub detail: Option<String>,
    /// When to try again, for the codes that mean "not now".
    pub retry_after: Option<Duration>,
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), detail: None, retry_after: None }
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidInput, message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::TooLarge, message)
    }

    /// `overloaded`, with when to try again: no room for the work now.
    pub fn busy(message: impl Into<String>, retry_after: Duration) -> Self {
        Self { retry_after: Some(retry_after), ..Self::new(ErrorCode::Overloaded, message) }
    }

    /// A fault of ours (a task that panicked); the log has the detail.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InternalError, message)
    }
}

impl From<InferenceError> for Error {
    fn from(e: InferenceError) -> Self {
        let detail = Some(e.to_string());
        let error = match e {
            InferenceError::Overloaded { retry_after } => {
                Self::busy("the server is busy; try again shortly", retry_after)
            }
            InferenceError::Throttled { retry_after } => Self {
                retry_after: Some(retry_after),
                ..Self::new(ErrorCode::LambdaThrottled, "the model is busy with other requests; try again shortly")
            },
            InferenceError::FunctionError { .. } => {
                Self::new(ErrorCode::LambdaFunctionError, "the model failed on this input")
            }
            InferenceError::BadPayload(_) => {
                Self::new(ErrorCode::LambdaBadPayload, "the model's answer could not be read")
            }
            InferenceError::Timeout => Self::new(ErrorCode::LambdaTimeout, "the model did not answer in time"),
            InferenceError::Unavailable(_) => {
                Self::new(ErrorCode::LambdaUnavailable, "the model cannot be reached right now")
            }
        };
        Self { detail, ..error }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_written_as_the_document_names_them() {
        for code in [ErrorCode::InvalidInput, ErrorCode::LambdaBadPayload, ErrorCode::MethodNotAllowed] {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
    }

    #[test]
    fn clients_never_see_what_aws_or_the_function_said() {
        let arn = "AccessDeniedException (HTTP 403): User: arn:aws:sts::123456789012:assumed-role/node/i-0abc \
                   is not authorized to perform: lambda:InvokeFunction on resource: arn:aws:lambda:eu-west-1:123456789012:function:T";
        for e in [
            InferenceError::Unavailable(arn.into()),
            InferenceError::FunctionError { error_type: "RuntimeError".into(), message: "secret input CCO".into() },
            InferenceError::BadPayload("body: {\"x\": 123456789012}".into()),
        ] {
            let error = Error::from(e);
            assert!(!error.message.contains("123456789012") && !error.message.contains("arn:"), "{}", error.message);
            assert!(!error.message.contains("RuntimeError") && !error.message.contains("secret"), "{}", error.message);
            let logged = error.detail.as_deref().unwrap();
            assert!(logged.contains("123456789012") || logged.contains("secret") || logged.contains("x"), "{logged}");
        }
    }
}
