//! Inference: the [`Translator`] trait, its error type, and its implementations.
//!
//! The HTTP layer sees only this module's trait and types. Nothing here knows of
//! HTTP status codes; `http::error` maps [`InferenceError`] to statuses.

pub mod answer;
pub mod cache;
pub mod coalesce;
pub mod demo;
pub mod fanout;
pub mod keep_warm;
pub mod lambda;
pub mod limit;
pub mod protocol;
pub mod tokenize;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::time::Instant;

pub use answer::{Hypothesis, Matrix};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Decoding parameters; invocations only share inputs with equal parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Params {
    pub beam: u32,
    pub n_best: u32,
    pub attention: bool,
}

/// How a call waits for a free invocation slot when the pod is at its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Interactive: fail at once with [`InferenceError::Overloaded`].
    FailFast,
    /// Bulk work: wait for a slot until the deadline.
    Wait,
}

/// Whether a request may be answered from the result cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheUse {
    #[default]
    Use,
    /// Ask the model even when the cache holds the answer (`Cache-Control:
    /// no-cache`, `"cache": false`, the load generator). The fresh answer is
    /// still kept.
    Bypass,
}

/// One translation request: tokenized inputs sent together in one invocation.
#[derive(Debug, Clone)]
pub struct Request {
    pub inputs: Vec<String>,
    pub params: Params,
    pub deadline: Instant,
    pub admission: Admission,
    pub cache: CacheUse,
    /// The ids of the HTTP requests this serves (from their `traceparent` or
    /// `X-Request-Id`, or made up), passed to the function in the
    /// invocation's client context so its logs can be joined with ours.
    pub request_ids: Vec<String>,
}

/// What one invocation returned: the n-best list of each input, in input order.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub results: Vec<Vec<Hypothesis>>,
    /// The Lambda request id, for logs and support tickets.
    pub request_id: Option<String>,
    /// For each input: answered from the result cache. Empty when nothing was.
    pub cached: Vec<bool>,
}

impl Invocation {
    /// Whether input `i` was answered from the cache.
    pub fn was_cached(&self, i: usize) -> bool {
        self.cached.get(i).copied().unwrap_or(false)
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InferenceError {
    #[error("too many translations in flight on this server")]
    Overloaded { retry_after: Duration },
    #[error("the model is throttled (too many concurrent requests)")]
    Throttled { retry_after: Duration },
    #[error("the model raised {error_type}: {message}")]
    FunctionError { error_type: String, message: String },
    #[error("the model's answer could not be read: {0}")]
    BadPayload(String),
    #[error("the model did not answer before the deadline")]
    Timeout,
    #[error("the model could not be reached: {0}")]
    Unavailable(String),
}

impl InferenceError {
    /// The `outcome` label of `lambda_invocations_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            InferenceError::Overloaded { .. } => "overloaded",
            InferenceError::Throttled { .. } => "throttled",
            InferenceError::FunctionError { .. } => "function_error",
            InferenceError::BadPayload(_) => "bad_payload",
            InferenceError::Timeout => "timeout",
            InferenceError::Unavailable(_) => "unavailable",
        }
    }
}

/// A backend that translates tokenized inputs: the Lambda, the demo, or a
/// wrapper around one of them (the in-flight limit).
pub trait Translator: Send + Sync {
    /// Translates `request.inputs` in one invocation, within `request.deadline`.
    fn invoke(&self, request: Request) -> BoxFuture<'_, Result<Invocation, InferenceError>>;

    /// Sends one keep-warm ping.
    fn warmup(&self, deadline: Instant) -> BoxFuture<'_, Result<(), InferenceError>>;

    /// `lambda` or `demo`.
    fn backend(&self) -> &'static str;
}
