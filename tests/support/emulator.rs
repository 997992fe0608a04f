//! A Lambda Invoke API emulator on 127.0.0.1, for tests and for trying the real
//! Lambda path without AWS (`cargo run --example lambda-emulator`).
//!
//! It answers `POST /2015-03-31/functions/{name}/invocations` like the real
//! service and the existing TranslationFunction: the demo model's n-best lists in
//! the base64+gzip envelope, function errors as HTTP 200 with
//! `X-Amz-Function-Error`, throttles as HTTP 429 `TooManyRequestsException`. It
//! records every event it receives and can be told to misbehave.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use translation_front::inference::demo;
use translation_front::inference::protocol::ResultBody;

#[path = "wire.rs"]
mod wire;
use translation_front::inference::tokenize::split_tokens;
use translation_front::inference::{Hypothesis, Params};

/// What every call does, after the one-shot counters are used up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Fault {
    #[default]
    None,
    /// HTTP 200 + `X-Amz-Function-Error: Unhandled` (the function raised).
    FunctionError,
    /// HTTP 429 on every call.
    ThrottleAlways,
    /// Never answers.
    Hang,
    /// A payload that is not a result at all.
    Malformed,
    /// A well-formed result for one input fewer than were sent.
    Mismatched,
    /// The envelope says statusCode 500.
    ErrorStatus,
    /// HTTP 403 AccessDeniedException naming an account and a role, as AWS does.
    AccessDenied,
    /// HTTP 404 ResourceNotFoundException: no such function in this region.
    NotFound,
}

/// How a successful result is wrapped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    /// base64(gzip(result)) in the envelope, like the existing function.
    #[default]
    Envelope,
    /// The result object with no envelope.
    Plain,
    /// `isBase64Encoded: false` with the result JSON as a string body.
    StringBody,
    /// base64 of the result JSON, not gzipped.
    Base64NoGzip,
}

#[derive(Debug, Clone, Default)]
pub struct Behavior {
    /// Time per invocation, whatever it holds.
    pub latency: Duration,
    /// Time per input on top of `latency`, as a model's time grows with its
    /// batch.
    pub per_input: Duration,
    /// Throttle this many calls (HTTP 429), then behave.
    pub throttle_next: usize,
    /// Answer this many calls with HTTP 500 ServiceException, then behave.
    pub server_error_next: usize,
    pub fault: Fault,
    pub format: Format,
    /// A function error for any call that holds an input containing this text.
    pub poison: Option<String>,
    /// Count calls without keeping them (long benchmark runs).
    pub forget_calls: bool,
    /// The function's reserved concurrency (GetFunctionConcurrency); none set
    /// when `None`.
    pub reserved_concurrency: Option<u32>,
    /// The account's concurrency limit (GetAccountSettings); 1,000 when 0.
    pub account_concurrency: u32,
}

/// One call as the emulator received it.
#[derive(Debug, Clone)]
pub struct Call {
    pub function: String,
    pub qualifier: Option<String>,
    pub event: serde_json::Value,
    pub inputs: Vec<String>,
    pub authorization: Option<String>,
    /// The invocation's client context (`X-Amz-Client-Context`), decoded.
    pub client_context: Option<serde_json::Value>,
}

#[derive(Default)]
pub struct EmulatorState {
    pub behavior: Mutex<Behavior>,
    pub calls: Mutex<Vec<Call>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    request_ids: AtomicUsize,
    dry_runs: AtomicUsize,
    /// While true, calls are received and recorded but not answered.
    held: tokio::sync::watch::Sender<bool>,
}

pub struct Emulator {
    pub addr: SocketAddr,
    pub state: Arc<EmulatorState>,
}

impl Emulator {
    /// Starts on 127.0.0.1 with an ephemeral port.
    pub async fn start(behavior: Behavior) -> Emulator {
        Self::start_on("127.0.0.1:0".parse().unwrap(), behavior).await
    }

    pub async fn start_on(addr: SocketAddr, behavior: Behavior) -> Emulator {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind the emulator");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(EmulatorState { behavior: Mutex::new(behavior), ..Default::default() });
        let app = router(state.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("emulator serves");
        });
        Emulator { addr, state }
    }

    /// What to put in `AWS_ENDPOINT_URL_LAMBDA`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, f: impl FnOnce(&mut Behavior)) {
        f(&mut self.state.behavior.lock().unwrap());
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.calls.lock().unwrap().clone()
    }

    /// Calls received, recorded or not.
    pub fn call_count(&self) -> usize {
        self.state.request_ids.load(Ordering::SeqCst)
    }

    /// DryRun invokes (preflights) received.
    pub fn dry_runs(&self) -> usize {
        self.state.dry_runs.load(Ordering::SeqCst)
    }

    /// Calls being answered right now.
    pub fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::SeqCst)
    }

    /// Calls from now on wait, received but unanswered, until [`Emulator::release`].
    pub fn hold(&self) {
        self.state.held.send_replace(true);
    }

    pub fn release(&self) {
        self.state.held.send_replace(false);
    }

    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }
}

pub fn router(state: Arc<EmulatorState>) -> Router {
    Router::new()
        .route("/2015-03-31/functions/{name}/invocations", post(invoke))
        .route("/2019-09-30/functions/{name}/concurrency", axum::routing::get(function_concurrency))
        .route("/2016-08-19/account-settings", axum::routing::get(account_settings))
        .route("/2016-08-19/account-settings/", axum::routing::get(account_settings))
        .with_state(state)
}

/// GetFunctionConcurrency: `{}` when none is reserved, as Lambda answers.
async fn function_concurrency(State(state): State<Arc<EmulatorState>>) -> Response {
    let b = state.behavior.lock().unwrap().clone();
    if b.fault == Fault::AccessDenied {
        return access_denied("concurrency");
    }
    let body = match b.reserved_concurrency {
        Some(n) => serde_json::json!({"ReservedConcurrentExecutions": n}),
        None => serde_json::json!({}),
    };
    base(StatusCode::OK, "concurrency", serde_json::to_vec(&body).unwrap())
}

/// GetAccountSettings: the limit, and what no function has reserved.
async fn account_settings(State(state): State<Arc<EmulatorState>>) -> Response {
    let b = state.behavior.lock().unwrap().clone();
    if b.fault == Fault::AccessDenied {
        return access_denied("account");
    }
    let limit = if b.account_concurrency == 0 { 1000 } else { b.account_concurrency };
    let unreserved = limit - b.reserved_concurrency.unwrap_or(0);
    let body = serde_json::json!({
        "AccountLimit": {"TotalCodeSize": 80530636800u64, "CodeSizeUnzipped": 262144000, "CodeSizeZipped": 52428800,
                         "ConcurrentExecutions": limit, "UnreservedConcurrentExecutions": unreserved},
        "AccountUsage": {"TotalCodeSize": 1000, "FunctionCount": 1}
    });
    base(StatusCode::OK, "account", serde_json::to_vec(&body).unwrap())
}

#[derive(Deserialize)]
struct InvokeQuery {
    #[serde(rename = "Qualifier")]
    qualifier: Option<String>,
}

struct InFlight<'a>(&'a EmulatorState);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn invoke(
    State(state): State<Arc<EmulatorState>>,
    Path(function): Path<String>,
    Query(query): Query<InvokeQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // A DryRun invoke (the preflight) runs nothing and is not a call: counted
    // apart, so the call counts of the tests stay exact.
    if headers.get("x-amz-invocation-type").is_some_and(|v| v == "DryRun") {
        state.dry_runs.fetch_add(1, Ordering::SeqCst);
        let fault = state.behavior.lock().unwrap().fault;
        return match fault {
            Fault::AccessDenied => access_denied("emu-dryrun"),
            Fault::NotFound => not_found("emu-dryrun"),
            _ => {
                let mut r = base(StatusCode::NO_CONTENT, "emu-dryrun", Vec::new());
                r.headers_mut().remove("content-type");
                r
            }
        };
    }
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let _guard = InFlight(&state);
    let request_id = format!("emu-{:08}", state.request_ids.fetch_add(1, Ordering::SeqCst));

    let decoded = wire::decode_event(&body);
    let (event, inputs) = match &decoded {
        Ok((e, i)) => (Some(e), i.clone()),
        Err(_) => (None, Vec::new()),
    };
    let behavior = {
        let mut b = state.behavior.lock().unwrap();
        let snapshot = b.clone();
        if b.throttle_next > 0 {
            b.throttle_next -= 1;
        } else if b.server_error_next > 0 {
            b.server_error_next -= 1;
        }
        snapshot
    };
    if !behavior.forget_calls {
        state.calls.lock().unwrap().push(Call {
            function,
            qualifier: query.qualifier,
            event: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
            inputs: inputs.clone(),
            authorization: headers.get("authorization").and_then(|v| v.to_str().ok()).map(String::from),
            client_context: headers.get("x-amz-client-context").and_then(|v| {
                use base64::Engine;
                let json = base64::engine::general_purpose::STANDARD.decode(v.as_bytes()).ok()?;
                serde_json::from_slice(&json).ok()
            }),
        });
    }
    let _ = state.held.subscribe().wait_for(|held| !*held).await;
    // A zero sleep still waits for the timer's next tick (up to 1 ms): "0 ms"
    // must mean no wait at all.
    let busy = behavior.latency + behavior.per_input * inputs.len() as u32;
    if !busy.is_zero() {
        tokio::time::sleep(busy).await;
    }

    if behavior.throttle_next > 0 || behavior.fault == Fault::ThrottleAlways {
        return throttled(&request_id);
    }
    if behavior.fault == Fault::AccessDenied {
        return access_denied(&request_id);
    }
    if behavior.fault == Fault::NotFound {
        return not_found(&request_id);
    }

    if behavior.server_error_next > 0 {
        return service_error(&request_id);
    }
    let Some(event) = event else {
        return function_error(&request_id, "JSONDecodeError", "the event is not the expected JSON");
    };
    if behavior.poison.as_ref().is_some_and(|p| inputs.iter().any(|i| i.contains(p.as_str()))) {
        return function_error(&request_id, "RuntimeError", "poisoned input");
    }
    match behavior.fault {
        Fault::FunctionError => {
            return function_error(&request_id, "RuntimeError", "CUDA out of memory");
        }
        Fault::Hang => std::future::pending::<()>().await,
        Fault::Malformed => return ok(&request_id, b"{\"predictions\": \"oops\"".to_vec()),
        Fault::ErrorStatus => {
            let body = br#"{"statusCode": 500, "body": "{\"message\": \"model failed to load\"}"}"#;
            return ok(&request_id, body.to_vec());
        }
        _ => {}
    }
    if event.warmup {
        return ok(&request_id, wire::encode_envelope(br#"{"warmup": "confirmed"}"#));
    }
    let params = Params { beam: event.beam, n_best: event.n_best, attention: event.return_attention };
    let mut answered: Vec<&String> = inputs.iter().collect();
    if behavior.fault == Fault::Mismatched {
        answered.pop();
    }
    let result = result_body(&answered, params);
    let json = serde_json::to_vec(&result).unwrap();
    let payload = match behavior.format {
        Format::Envelope => wire::encode_envelope(&json),
        Format::Plain => json,
        Format::StringBody => serde_json::to_vec(&serde_json::json!({
            "statusCode": 200, "isBase64Encoded": false, "body": String::from_utf8(json).unwrap()
        }))
        .unwrap(),
        Format::Base64NoGzip => {
            use base64::Engine;
            serde_json::to_vec(&serde_json::json!({
                "statusCode": 200, "isBase64Encoded": true,
                "body": base64::engine::general_purpose::STANDARD.encode(json)
            }))
            .unwrap()
        }
    };
    ok(&request_id, payload)
}

/// The demo model's answer for these inputs, as the function would send it:
/// attention columns padded to the longest input, `[null]` when off.
pub fn result_body(inputs: &[&String], params: Params) -> ResultBody {
    let width = inputs.iter().map(|i| split_tokens(i).len()).max().unwrap_or(0);
    let all: Vec<Vec<Hypothesis>> = inputs.iter().map(|i| demo::hypotheses(i, params)).collect();
    let attention = if params.attention {
        all.iter()
            .map(|hyps| {
                Some(
                    hyps.iter()
                        .map(|h| h.attention.as_ref().map(|m| wire::with_cols(m, width)).unwrap_or_default())
                        .collect(),
                )
            })
            .collect()
    } else {
        vec![None]
    };
    ResultBody {
        predictions: all.iter().map(|h| h.iter().map(|x| x.tokens.clone()).collect()).collect(),
        scores: all.iter().map(|h| h.iter().map(|x| x.score).collect()).collect(),
        attention: Some(attention),
    }
}

fn base(status: StatusCode, request_id: &str, body: Vec<u8>) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert("x-amzn-requestid", HeaderValue::from_str(request_id).unwrap());
    r
}

fn ok(request_id: &str, payload: Vec<u8>) -> Response {
    let mut r = base(StatusCode::OK, request_id, payload);
    r.headers_mut().insert("x-amz-executed-version", HeaderValue::from_static("$LATEST"));
    r
}

fn function_error(request_id: &str, error_type: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "errorMessage": message, "errorType": error_type,
        "stackTrace": ["  File \"/var/task/app.py\", line 64, in lambda_handler\n"]
    });
    let mut r = ok(request_id, serde_json::to_vec(&body).unwrap());
    r.headers_mut().insert("x-amz-function-error", HeaderValue::from_static("Unhandled"));
    r
}

fn throttled(request_id: &str) -> Response {
    let body = br#"{"Type": "User", "message": "Rate Exceeded.", "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"}"#;
    let mut r = base(StatusCode::TOO_MANY_REQUESTS, request_id, body.to_vec());
    r.headers_mut().insert("x-amzn-errortype", HeaderValue::from_static("TooManyRequestsException"));
    r
}

/// What AWS answers an identity that may not invoke the function: the account,
/// the role and the function's ARN in the message.
pub const ACCESS_DENIED_MESSAGE: &str = "User: arn:aws:sts::123456789012:assumed-role/eks-node-role/i-0abc123 \
    is not authorized to perform: lambda:InvokeFunction on resource: \
    arn:aws:lambda:us-east-1:123456789012:function:translation because no identity-based policy allows it";

fn not_found(request_id: &str) -> Response {
    let body = br#"{"Type": "User", "Message": "Function not found: arn:aws:lambda:us-east-1:123456789012:function:translation"}"#;
    let mut r = base(StatusCode::NOT_FOUND, request_id, body.to_vec());
    r.headers_mut().insert("x-amzn-errortype", HeaderValue::from_static("ResourceNotFoundException"));
    r
}

fn access_denied(request_id: &str) -> Response {
    let body = serde_json::json!({"Type": "User", "Message": ACCESS_DENIED_MESSAGE});
    let mut r = base(StatusCode::FORBIDDEN, request_id, serde_json::to_vec(&body).unwrap());
    r.headers_mut().insert("x-amzn-errortype", HeaderValue::from_static("AccessDeniedException"));
    r
}

fn service_error(request_id: &str) -> Response {
    let body = br#"{"Type": "Service", "message": "Internal service error."}"#;
    let mut r = base(StatusCode::INTERNAL_SERVER_ERROR, request_id, body.to_vec());
    r.headers_mut().insert("x-amzn-errortype", HeaderValue::from_static("ServiceException"));
    r
}
