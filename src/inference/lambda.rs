//! The AWS Lambda backend: one shared `aws-sdk-lambda` client, a deadline on every
//! call, jittered exponential backoff for throttles and 5xx, and error mapping.
//!
//! The SDK's own retries are off: they would sleep past our deadline. Our loop
//! retries throttles (429) and server errors (5xx) only; a function error is the
//! model failing on this input, and retrying it would fail again at full cost.
//! (Over 600 lines with its tests: the client, its retry loop and budget, the
//! error mapping and the preflight all read the SDK's errors the same way, and
//! are kept side by side so no path maps them differently.)

use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_lambda::Client;
use aws_sdk_lambda::config::Region;
use aws_sdk_lambda::config::retry::RetryConfig;
use aws_sdk_lambda::config::timeout::TimeoutConfig;
use aws_sdk_lambda::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_lambda::operation::RequestId;
use aws_sdk_lambda::operation::invoke::{InvokeError, InvokeOutput};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::protocol::{self, ProtocolError};
use super::{BoxFuture, InferenceError, Invocation, Request, Translator};
use crate::telemetry::Metrics;

/// Attempts per call, the first included.
const MAX_ATTEMPTS: u32 = 4;
/// First backoff; doubled per retry, with "equal jitter" (half fixed, half random).
const BASE_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// What a throttled client is told to wait when Lambda gives no hint.
const THROTTLED_RETRY_AFTER: Duration = Duration::from_secs(2);

/// The pod's retry budget, in tenths of a retry: every call earns a tenth,
/// every retry spends a whole one, and at most `RETRY_RESERVE` retries are
/// held in reserve. So once the reserve is spent, retries are at most a tenth
/// of calls: when the account or the function is throttled, retrying cannot
/// multiply the load on Lambda (without a budget every call could be sent
/// four times, just when Lambda has no room).
const RETRY_RESERVE: u32 = 20;

struct RetryBudget(std::sync::atomic::AtomicU32);

impl RetryBudget {
    fn new() -> Self {
        RetryBudget(std::sync::atomic::AtomicU32::new(RETRY_RESERVE * 10))
    }

    fn earn(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let _ = self.0.fetch_update(Relaxed, Relaxed, |t| Some((t + 1).min(RETRY_RESERVE * 10)));
    }

    /// Takes one retry from the budget, if it holds one.
    fn spend(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        self.0.fetch_update(Relaxed, Relaxed, |t| t.checked_sub(10)).is_ok()
    }
}

/// Lambda's reasons for a throttle (`TooManyRequestsException.Reason`), as
/// metric labels: a fixed set, anything else `other`.
const THROTTLE_REASONS: [&str; 6] = [
    "ConcurrentInvocationLimitExceeded",
    "FunctionInvocationRateLimitExceeded",
    "ReservedFunctionConcurrentInvocationLimitExceeded",
    "ReservedFunctionInvocationRateLimitExceeded",
    "CallerRateLimitExceeded",
    "ConcurrentSnapStartInvocationLimitExceeded",
];

fn throttle_label(reason: Option<&str>) -> &'static str {
    match reason {
        None => "none_given",
        Some(r) => THROTTLE_REASONS.iter().find(|&&k| k == r).copied().unwrap_or("other"),
    }
}

/// Where to find the function and how long a call may take.
#[derive(Debug, Clone)]
pub struct LambdaSettings {
    pub function: String,
    pub qualifier: Option<String>,
    pub timeout: Duration,
}

pub struct LambdaBackend {
    inner: Arc<Inner>,
}

struct Inner {
    settings: LambdaSettings,
    client: OnceCell<Client>,
    metrics: Metrics,
    retry_budget: RetryBudget,
}

impl LambdaBackend {
    /// Starts loading the AWS configuration in the background and returns at
    /// once: without `AWS_REGION` the SDK may probe the EC2 metadata endpoint for
    /// seconds, and start-up must never wait on that. Must run inside a runtime.
    pub fn new(settings: LambdaSettings, metrics: Metrics) -> Self {
        let inner = Arc::new(Inner { settings, client: OnceCell::new(), metrics, retry_budget: RetryBudget::new() });
        let warm = inner.clone();
        tokio::spawn(async move {
            warm.client().await;
        });
        Self { inner }
    }
}

/// What a preflight found: can this pod invoke the function?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preflight {
    Ok,
    NotFound,
    AccessDenied,
    NoCredentials,
    Unreachable,
    Failed,
}

impl Preflight {
    /// The name `/api/v1/config` shows.
    pub fn name(self) -> &'static str {
        match self {
            Preflight::Ok => "ok",
            Preflight::NotFound => "function_not_found",
            Preflight::AccessDenied => "access_denied",
            Preflight::NoCredentials => "no_credentials",
            Preflight::Unreachable => "endpoint_unreachable",
            Preflight::Failed => "failed",
        }
    }

    /// The `check` subcommand's exit code, one per outcome, for scripts.
    pub fn exit_code(self) -> u8 {
        match self {
            Preflight::Ok => 0,
            Preflight::Failed => 1,
            Preflight::NotFound => 3,
            Preflight::AccessDenied => 4,
            Preflight::NoCredentials => 5,
            Preflight::Unreachable => 6,
        }
    }
}

/// What Lambda will run at once for the fleet: the function's reserved
/// concurrency and the account's limits (`translation-front check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacity {
    /// Reserved concurrency of the function, if any is set.
    pub reserved: Option<u32>,
    /// The account's concurrency limit in this region.
    pub account_limit: u32,
    /// What no function has reserved (shared by all functions without a reservation).
    pub unreserved: u32,
}

/// Lambda keeps this much of an account's concurrency unreserved, whatever
/// the reservations (the Lambda developer guide, "Reserved concurrency").
pub const MIN_UNRESERVED: u32 = 100;

impl Capacity {
    /// Plain words on whether `fleet` concurrent calls fit, and what to do if not.
    pub fn assess(&self, fleet: u32) -> (bool, String) {
        let most_reservable = self.account_limit.saturating_sub(MIN_UNRESERVED);
        match self.reserved {
            Some(r) if fleet > r => (
                false,
                format!(
                    "the fleet can ask for {fleet} concurrent executions but the function's reserved concurrency is \
                     {r}: past it calls are throttled. Reserve {fleet} (the account allows at most \
                     {most_reservable}) or lower maxReplicas or MAX_INFLIGHT_INVOCATIONS"
                ),
            ),
            Some(r) => (true, format!("the function has {r} reserved; the fleet can ask for {fleet} at once")),
            None if fleet > self.unreserved => (
                false,
                format!(
                    "the function has no reserved concurrency and shares the account's unreserved {} with every \
                     other function; the fleet can ask for {fleet}: reserve {fleet} (at most {most_reservable}) or \
                     ask AWS for a higher account limit (now {})",
                    self.unreserved, self.account_limit
                ),
            ),
            None => (
                true,
                format!(
                    "the function has no reserved concurrency: the fleet's {fleet} come from the account's \
                     unreserved {}, shared with every other function (reserving {fleet} guarantees them and caps \
                     the bill)",
                    self.unreserved
                ),
            ),
        }
    }
}

impl LambdaBackend {
    /// The function's reserved concurrency and the account's limits, or why
    /// they could not be read (the pods' role needs only InvokeFunction; an
    /// operator's identity reads these).
    pub async fn capacity(&self, deadline: Instant) -> Result<Capacity, String> {
        let client = tokio::time::timeout_at(deadline, self.inner.client())
            .await
            .map_err(|_| "the AWS configuration did not load in time".to_string())?;
        let denied = |what: &str, e: String| {
            format!("could not read {what} ({e}); it needs lambda:GetAccountSettings and lambda:GetFunctionConcurrency")
        };
        let settings = tokio::time::timeout_at(deadline, client.get_account_settings().send())
            .await
            .map_err(|_| "no answer in time".to_string())?
            .map_err(|e| denied("the account's limits", short_error(&e)))?;
        let limit = settings.account_limit();
        let account_limit = limit.map_or(0, |l| l.concurrent_executions()).max(0) as u32;
        let unreserved = limit.and_then(|l| l.unreserved_concurrent_executions()).unwrap_or(0).max(0) as u32;
        let concurrency = tokio::time::timeout_at(
            deadline,
            client.get_function_concurrency().function_name(&self.inner.settings.function).send(),
        )
        .await
        .map_err(|_| "no answer in time".to_string())?
        .map_err(|e| denied("the function's reserved concurrency", short_error(&e)))?;
        let reserved = concurrency.reserved_concurrent_executions().map(|n| n.max(0) as u32);
        Ok(Capacity { reserved, account_limit, unreserved })
    }

    /// Asks Lambda, without running the function (`InvocationType=DryRun`),
    /// whether the function exists and this identity may invoke it. Returns the
    /// outcome and, for the operator (log or terminal, never a client), what
    /// to do about it.
    pub async fn preflight(&self, deadline: Instant) -> (Preflight, String) {
        let s = &self.inner.settings;
        let Ok(client) = tokio::time::timeout_at(deadline, self.inner.client()).await else {
            return (Preflight::Unreachable, "the AWS configuration did not load in time".into());
        };
        let region = client.config().region().map_or_else(|| "(no region)".to_string(), |r| r.to_string());
        let name = match &s.qualifier {
            Some(q) => format!("{}:{q}", s.function),
            None => s.function.clone(),
        };
        let call = client
            .invoke()
            .function_name(&s.function)
            .set_qualifier(s.qualifier.clone())
            .invocation_type(InvocationType::DryRun)
            .send();
        match tokio::time::timeout_at(deadline, call).await {
            Err(_) => (Preflight::Unreachable, format!("no answer from the Lambda endpoint of {region} in time")),
            Ok(Ok(_)) => {
                (Preflight::Ok, format!("the function {name} exists in {region} and this identity may invoke it"))
            }
            Ok(Err(SdkError::ServiceError(e))) => {
                let status = e.raw().status().as_u16();
                let err = e.into_err();
                let code = err.code().unwrap_or("UnknownError").to_string();
                let message = err.message().unwrap_or("no message").to_string();
                if code == "ResourceNotFoundException" || status == 404 {
                    (
                        Preflight::NotFound,
                        format!(
                            "the function {name} was not found in {region}: check TRANSLATION_FUNCTION, \
                             TRANSLATION_QUALIFIER and AWS_REGION ({message})"
                        ),
                    )
                } else if code == "AccessDeniedException" || status == 403 {
                    (
                        Preflight::AccessDenied,
                        format!(
                            "this identity may not invoke {name}: wire the pod's role (IRSA or EKS Pod Identity, \
                             docs/eks.md) with lambda:InvokeFunction on the function (deploy/iam/lambda-invoke-policy.json) \
                             ({code}: {message})"
                        ),
                    )
                } else {
                    (Preflight::Failed, format!("Lambda answered {code} (HTTP {status}): {message}"))
                }
            }
            Ok(Err(other)) => {
                let detail = DisplayErrorContext(&other).to_string();
                let lower = detail.to_ascii_lowercase();
                if lower.contains("credential") {
                    (
                        Preflight::NoCredentials,
                        format!(
                            "no AWS credentials could be loaded (IRSA, Pod Identity, AWS_PROFILE or keys): {detail}"
                        ),
                    )
                } else if matches!(&other, SdkError::DispatchFailure(f) if f.is_io() || f.is_timeout())
                    || matches!(&other, SdkError::TimeoutError(_))
                {
                    (Preflight::Unreachable, format!("cannot reach the Lambda endpoint of {region}: {detail}"))
                } else {
                    (Preflight::Failed, detail)
                }
            }
        }
    }
}

impl Inner {
    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                let mut loader = aws_config::defaults(BehaviorVersion::latest());
                // An ARN names its region; use it when the environment names none.
                if std::env::var_os("AWS_REGION").is_none()
                    && std::env::var_os("AWS_DEFAULT_REGION").is_none()
                    && let Some(region) = arn_region(&self.settings.function)
                {
                    loader = loader.region(Region::new(region.to_string()));
                }
                let shared = loader.load().await;
                let config = aws_sdk_lambda::config::Builder::from(&shared)
                    .retry_config(RetryConfig::disabled())
                    .timeout_config(
                        TimeoutConfig::builder()
                            .connect_timeout(Duration::from_secs(3).min(self.settings.timeout))
                            .operation_timeout(self.settings.timeout)
                            .operation_attempt_timeout(self.settings.timeout)
                            .build(),
                    )
                    .build();
                Client::from_conf(config)
            })
            .await
    }

    /// One call with retries, all within `deadline`. Returns the payload and the
    /// request id of the successful attempt.
    async fn call(
        &self,
        payload: Vec<u8>,
        context: Option<String>,
        deadline: Instant,
    ) -> Result<(Vec<u8>, Option<String>), InferenceError> {
        let client = tokio::time::timeout_at(deadline, self.client()).await.map_err(|_| InferenceError::Timeout)?;
        let mut attempt = 1;
        self.retry_budget.earn();
        loop {
            let send = client
                .invoke()
                .function_name(&self.settings.function)
                .set_qualifier(self.settings.qualifier.clone())
                .invocation_type(InvocationType::RequestResponse)
                .set_client_context(context.clone())
                .payload(Blob::new(payload.clone()))
                .send();
            let attempt_started = Instant::now();
            let observe = |outcome: &str| {
                let took = attempt_started.elapsed().as_secs_f64();
                self.metrics.attempt_duration.with_label_values(&[outcome]).observe(took);
            };
            let Ok(result) = tokio::time::timeout_at(deadline, send).await else {
                observe("timeout");
                return Err(InferenceError::Timeout);
            };
            let error = match result {
                Ok(output) => {
                    observe("ok");
                    return read_output(output);
                }
                Err(e) => classify(e),
            };
            observe(match &error {
                Failure::Throttled { .. } => "throttled",
                Failure::ServerError(_) => "server_error",
                Failure::Timeout => "timeout",
                Failure::Other(_) => "error",
            });
            if let Failure::Throttled { reason, .. } = &error {
                let label = throttle_label(reason.as_deref());
                self.metrics.throttles.with_label_values(&[label]).inc();
                tracing::warn!(attempt, reason = label, "lambda throttled the invocation");
            }
            let Some(reason) = error.retry_reason() else {
                return Err(error.into());
            };
            let backoff = backoff(attempt);
            if attempt >= MAX_ATTEMPTS || Instant::now() + backoff >= deadline {
                return Err(error.into());
            }
            if !self.retry_budget.spend() {
                self.metrics.retries_denied.inc();
                return Err(error.into());
            }
            self.metrics.retries.with_label_values(&[reason]).inc();
            tracing::debug!(attempt, reason, backoff_ms = backoff.as_millis() as u64, "retrying lambda invoke");
            tokio::time::sleep(backoff).await;
            attempt += 1;
        }
    }
}

/// A failed attempt, before deciding whether to retry it.
enum Failure {
    Throttled { retry_after: Option<Duration>, reason: Option<String> },
    ServerError(String),
    Timeout,
    Other(String),
}

impl Failure {
    fn retry_reason(&self) -> Option<&'static str> {
        match self {
            Failure::Throttled { .. } => Some("throttled"),
            Failure::ServerError(_) => Some("server_error"),
            Failure::Timeout | Failure::Other(_) => None,
        }
    }
}

impl From<Failure> for InferenceError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Throttled { retry_after, .. } => {
                InferenceError::Throttled { retry_after: retry_after.unwrap_or(THROTTLED_RETRY_AFTER) }
            }
            Failure::ServerError(m) | Failure::Other(m) => InferenceError::Unavailable(m),
            Failure::Timeout => InferenceError::Timeout,
        }
    }
}

fn classify(error: SdkError<InvokeError>) -> Failure {
    match error {
        SdkError::ServiceError(e) => {
            let status = e.raw().status().as_u16();
            let err = e.into_err();
            if let InvokeError::TooManyRequestsException(t) = &err {
                let retry_after = t.retry_after_seconds().and_then(|s| s.parse().ok()).map(Duration::from_secs);
                let reason = t.reason().map(|r| r.as_str().to_string());
                return Failure::Throttled { retry_after, reason };
            }
            if status == 429 {
                return Failure::Throttled { retry_after: None, reason: None };
            }
            let message = format!(
                "{} (HTTP {status}): {}",
                err.code().unwrap_or("UnknownError"),
                err.message().unwrap_or("no message")
            );
            if status >= 500 { Failure::ServerError(message) } else { Failure::Other(message) }
        }
        SdkError::TimeoutError(_) => Failure::Timeout,
        SdkError::DispatchFailure(f) if f.is_timeout() => Failure::Timeout,
        other => {
            let detail = DisplayErrorContext(&other).to_string();
            tracing::warn!(error = %detail, "lambda call failed before an answer");
            Failure::Other(short_reason(&other, &detail).to_string())
        }
    }
}

/// A reason fit for a client: the SDK's full chain (logged above) names
/// providers, files and internals that do not belong in a response body.
fn short_reason(error: &SdkError<InvokeError>, detail: &str) -> &'static str {
    let detail = detail.to_ascii_lowercase();
    if detail.contains("credential") {
        "no AWS credentials could be loaded"
    } else if detail.contains("region") {
        "no AWS region is configured"
    } else if matches!(error, SdkError::DispatchFailure(f) if f.is_io()) {
        "cannot connect to the Lambda endpoint"
    } else {
        "the Lambda call failed before an answer"
    }
}

fn read_output(mut output: InvokeOutput) -> Result<(Vec<u8>, Option<String>), InferenceError> {
    let request_id = output.request_id().map(str::to_string);
    let payload = output.payload.take().map(Blob::into_inner).unwrap_or_default();
    if output.function_error.is_some() {
        let (error_type, message) = protocol::decode_function_error(&payload);
        return Err(InferenceError::FunctionError { error_type, message });
    }
    Ok((payload, request_id))
}

fn backoff(attempt: u32) -> Duration {
    let ceiling = BASE_BACKOFF.saturating_mul(1 << (attempt - 1).min(16)).min(MAX_BACKOFF);
    ceiling / 2 + ceiling.mul_f64(fastrand::f64() / 2.0)
}

/// The region of a Lambda ARN (`arn:aws:lambda:REGION:ACCOUNT:function:NAME`).
fn arn_region(function: &str) -> Option<&str> {
    let mut parts = function.split(':');
    (parts.next()? == "arn").then_some(())?;
    let _partition = parts.next()?;
    (parts.next()? == "lambda").then_some(())?;
    parts.next().filter(|r| !r.is_empty())
}

/// Lambda's limit on the client context, base64 included.
const MAX_CLIENT_CONTEXT: usize = 3583;

/// The invocation's client context: `{"custom": {"request_ids": [...]}}`,
/// base64, the ids of the HTTP requests it serves (the function sees them in
/// `context.client_context.custom`), as many as fit Lambda's limit, and how
/// many more there were. `None` when there are none.
fn client_context(request_ids: &[String]) -> Option<String> {
    use base64::Engine;
    if request_ids.is_empty() {
        return None;
    }
    let mut n = request_ids.len();
    loop {
        let mut custom = serde_json::json!({"request_ids": &request_ids[..n]});
        if n < request_ids.len() {
            custom["more_request_ids"] = (request_ids.len() - n).into();
        }
        let json = serde_json::json!({"custom": custom}).to_string();
        let encoded = base64::engine::general_purpose::STANDARD.encode(json);
        if encoded.len() <= MAX_CLIENT_CONTEXT || n == 0 {
            return Some(encoded);
        }
        n /= 2;
    }
}

fn protocol_error(e: ProtocolError) -> InferenceError {
    match e {
        ProtocolError::Status { status, message } => {
            InferenceError::FunctionError { error_type: format!("HTTP {status}"), message }
        }
        other => InferenceError::BadPayload(other.to_string()),
    }
}

impl Translator for LambdaBackend {
    fn invoke(&self, request: Request) -> BoxFuture<'_, Result<Invocation, InferenceError>> {
        Box::pin(async move {
            let p = request.params;
            let event = protocol::encode_event(&request.inputs, p.beam, p.n_best, p.attention);
            let context = client_context(&request.request_ids);
            let (payload, request_id) = self.inner.call(event, context, request.deadline).await?;
            let results = protocol::decode_result(&payload, request.inputs.len(), p.n_best, p.attention)
                .map_err(protocol_error)?;
            Ok(Invocation { results, request_id, cached: Vec::new() })
        })
    }

    fn warmup(&self, deadline: Instant) -> BoxFuture<'_, Result<(), InferenceError>> {
        Box::pin(async move {
            let (payload, _) = self.inner.call(protocol::encode_warmup(), None, deadline).await?;
            protocol::decode_warmup(&payload).map_err(protocol_error)
        })
    }

    fn backend(&self) -> &'static str {
        "lambda"
    }
}

/// An SDK error as a short line for an operator's terminal: its code and
/// message when Lambda answered, else its kind.
fn short_error<E: ProvideErrorMetadata + std::error::Error + 'static>(e: &SdkError<E>) -> String {
    match e {
        SdkError::ServiceError(s) => {
            format!("{}: {}", s.err().code().unwrap_or("UnknownError"), s.err().message().unwrap_or("no message"))
        }
        other => DisplayErrorContext(other).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_context_names_the_requests_and_fits_lambdas_limit() {
        use base64::Engine;
        let decode = |c: String| -> serde_json::Value {
            serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(c).unwrap()).unwrap()
        };
        assert_eq!(client_context(&[]), None);
        let one = decode(client_context(&["4bf92f3577b34da6a3ce929d0e0e4736".into()]).unwrap());
        assert_eq!(one, serde_json::json!({"custom": {"request_ids": ["4bf92f3577b34da6a3ce929d0e0e4736"]}}));
        let many: Vec<String> = (0..500).map(|i| format!("{i:032x}")).collect();
        let encoded = client_context(&many).unwrap();
        assert!(encoded.len() <= MAX_CLIENT_CONTEXT, "{}", encoded.len());
        let v = decode(encoded);
        let sent = v["custom"]["request_ids"].as_array().unwrap().len();
        assert!(sent > 10, "{sent}");
        assert_eq!(sent as u64 + v["custom"]["more_request_ids"].as_u64().unwrap(), 500);
    }

    #[test]
    fn arn_region_is_read_from_function_arns_only() {
        assert_eq!(arn_region("arn:aws:lambda:eu-west-1:123456789012:function:translate"), Some("eu-west-1"));
        assert_eq!(arn_region("arn:aws:lambda:us-east-1:123456789012:function:translate:live"), Some("us-east-1"));
        assert_eq!(arn_region("translate"), None);
        assert_eq!(arn_region("arn:aws:s3:::bucket"), None);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        for attempt in 1..10 {
            let ceiling = BASE_BACKOFF.saturating_mul(1 << (attempt - 1)).min(MAX_BACKOFF);
            let b = backoff(attempt);
            assert!(b >= ceiling / 2 && b <= ceiling, "attempt {attempt}: {b:?}");
        }
    }
}
