//! `POST /api/v1/translate/batch`: bulk translation streamed back on the same
//! response, so any replica can serve any batch and nothing stays on the pod.
//!
//! Every input line gets exactly one result row, in input order, carrying its
//! index; a line that cannot be translated gets an error row, never a drop. The
//! work runs in a task that writes into a small channel: when the client goes
//! away the channel closes and no further chunk is invoked.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

mod input;
mod output;

pub use input::{BatchJson, lines};
use output::Output;

use super::AppState;
use super::error::ApiError;
use super::metrics::{Ended, StreamEnd};
use super::prediction::{self, Prepared};
use crate::chem::pool::{Admission, ClientKey};
use crate::config::InputFormat;
use crate::inference::fanout::{self, MAX_CHUNK_BYTES, Row};
use crate::inference::{CacheUse, InferenceError, Params};

/// Progress lines at least this often, so proxies with idle timeouts keep the
/// connection open while a slow chunk runs.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// A bulk request, whatever it came in as (JSON, an upload, the command line).
#[derive(Debug, Default)]
pub struct BatchInput {
    pub inputs: Vec<String>,
    pub targets: Option<Vec<String>>,
    pub beam: Option<u32>,
    pub n_best: Option<u32>,
    pub attention: bool,
    pub fold_duplicates: bool,
    /// Ask the model even for inputs the result cache holds.
    pub bypass_cache: bool,
}

#[derive(Debug, Deserialize)]
pub struct FormatQuery {
    format: Option<String>,
    columns: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Csv,
    /// The original app's columns: `ID,Sources,Prediction_Tokens,Scores,
    /// Predictions,Targets,Correct` (Targets and Correct with targets), and an
    /// `Error` column for rows that could not be translated.
    ClassicCsv,
}

/// What a finished batch adds up to.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub total: usize,
    pub failed: usize,
    /// Rows with a comparable target that were translated.
    pub evaluated: usize,
    pub targets_invalid: usize,
    /// Top-1 to top-n_best, when any row was evaluated.
    pub top_k_accuracy: Option<Vec<f64>>,
    /// Stopped by shutdown before every row was done.
    pub interrupted: bool,
}

/// `POST /batch`: the batch page's form without JavaScript. The same job,
/// answered as a CSV download; its errors, like every page's, come back as a
/// page in words for a browser (see `pages::html_errors`), not as JSON.
pub async fn post_form(state: State<Arc<AppState>>, req: Request) -> Result<Response, ApiError> {
    let query = FormatQuery { format: Some("csv".into()), columns: None };
    post_batch(state, super::extract::ApiQuery(query), req).await
}

#[utoipa::path(
    post,
    path = "/api/v1/translate/batch",
    tag = "translate",
    summary = "Translate many inputs, streamed as NDJSON or CSV",
    description = "Rows are chunked and invoked with bounded fan-out; the answer streams as rows finish: NDJSON \
        (`application/x-ndjson`, the default: one `BatchLine` per line) or CSV (`?format=csv` or `Accept: text/csv`; \
        columns `id,source,rank,prediction,canonical,probability,target,correct,error`, one line per prediction, \
        RFC 4180 quoting, cells a spreadsheet would run as a formula prefixed with `'`; `?columns=classic` gives the \
        original app's columns). A row that fails is an error row; the others are translated. Rows the result cache \
        holds are not sent to the model unless `Cache-Control: no-cache` or `\"cache\": false`.",
    params(
        ("format" = Option<String>, Query, description = "`ndjson` (default) or `csv`", pattern = "^(ndjson|csv)$"),
        ("columns" = Option<String>, Query, description = "`standard` (default) or `classic` (CSV only)", pattern = "^(standard|classic)$"),
        ("Cache-Control" = Option<String>, Header, description = "`no-cache`: ask the model for every row"),
    ),
    request_body(content(
        (BatchJson = "application/json"),
        (super::openapi::BatchUpload = "multipart/form-data"),
    )),
    responses(
        (status = 200, description = "The rows, as they finish",
            content((super::openapi::BatchLine = "application/x-ndjson"), (String = "text/csv"))),
        (status = 400, description = "invalid_input: malformed, out of bounds, or targets not one per input", body = super::openapi::ErrorBody),
        (status = 408, description = "request_timeout", body = super::openapi::ErrorBody),
        (status = 413, description = "too_large: more inputs than this server takes", body = super::openapi::ErrorBody),
        (status = 429, description = "rate_limited (Retry-After)", body = super::openapi::ErrorBody),
        (status = 500, description = "internal_error", body = super::openapi::ErrorBody),
    )
)]
pub async fn post_batch(
    State(state): State<Arc<AppState>>,
    super::extract::ApiQuery(query): super::extract::ApiQuery<FormatQuery>,
    req: Request,
) -> Result<Response, ApiError> {
    let accepts_csv =
        req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/csv"));
    let mut format = match query.format.as_deref() {
        Some("csv") => Format::Csv,
        Some("ndjson") | None if !accepts_csv => Format::Ndjson,
        None | Some("ndjson") => Format::Csv,
        Some(other) => {
            return Err(ApiError::invalid_input(format!("unknown format '{other}' (use ndjson or csv)")));
        }
    };
    match (query.columns.as_deref(), format) {
        (None | Some("standard"), _) => {}
        (Some("classic"), Format::Csv) => format = Format::ClassicCsv,
        (Some("classic"), _) => return Err(ApiError::invalid_input("columns=classic is for CSV (add format=csv)")),
        (Some(other), _) => {
            return Err(ApiError::invalid_input(format!("unknown columns '{other}' (use standard or classic)")));
        }
    }
    let no_cache = super::extract::asks_no_cache(req.headers());
    // Counted before the body is read: a client at its bound sends no more.
    let running = PerClient::claim(&state, super::error::client(), state.config.max_batches_per_client)?;
    let mut input = input::parse(&state, req).await?;
    input.bypass_cache |= no_cache;
    let job = prepare(&state, input).await?;
    // Two encoded chunks between the job and the socket: enough to keep the
    // socket busy, little to hold for a client that stops reading.
    let (tx, rx) = mpsc::channel::<Bytes>(2);
    let (ended_tx, ended_rx) = tokio::sync::oneshot::channel();
    let job_state = state.clone();
    let with_targets = job.texts.targets.is_some();
    let request_id = super::error::REQUEST_ID.try_with(Clone::clone).ok();
    // The job runs in its own task; this one keeps its handle, so a panic in it
    // ends the stream with a line that says so, and the request log records it
    // (`ended_tx` dropped unsent).
    let last_word = tx.clone();
    let job = tokio::spawn(job.run(job_state, format, tx, None));
    tokio::spawn(async move {
        let _running = running;
        match job.await {
            Ok(summary) => {
                drop(last_word);
                let _ = ended_tx.send(summary.map(|s| Ended {
                    rows: s.total,
                    failed: s.failed,
                    interrupted: s.interrupted,
                }));
            }
            Err(_) => {
                let _ = last_word.send(output::fault_line(format, with_targets, request_id.as_deref())).await;
            }
        }
    });
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    }));
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    match format {
        Format::Ndjson => {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
        }
        Format::Csv | Format::ClassicCsv => {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
            h.insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"translations.csv\""),
            );
        }
    }
    // Tell buffering proxies (nginx) to pass lines through as they come.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.extensions_mut().insert(StreamEnd::new(ended_rx));
    Ok(response)
}

/// The batches running for each client, each held by a `Running` that gives
/// its place back when the batch's task ends. The table has one entry per
/// client with a batch running, so it is bounded by the connections open.
#[derive(Default)]
pub struct PerClient(std::sync::Mutex<std::collections::HashMap<ClientKey, usize>>);

/// One running batch's place in its client's count.
pub struct Running {
    table: Arc<AppState>,
    client: ClientKey,
}

impl PerClient {
    /// A place for one more of `client`'s batches, or `429` when it runs `max`.
    fn claim(state: &Arc<AppState>, client: ClientKey, max: usize) -> Result<Running, ApiError> {
        let mut table = state.batches.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let running = table.entry(client).or_insert(0);
        if *running >= max {
            return Err(ApiError::too_many_batches(*running));
        }
        *running += 1;
        Ok(Running { table: state.clone(), client })
    }

    /// Clients with a batch running.
    pub fn clients(&self) -> usize {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut table = self.table.batches.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = table.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                table.remove(&self.client);
            }
        }
    }
}

/// A target as compared: its canonical form (SMILES mode) and its key, or why
/// it cannot be compared.
type TargetPrep = Result<(Option<String>, String), String>;

/// A validated bulk request, ready to run.
struct Job {
    texts: Arc<Texts>,
    rows: Arc<Vec<Row>>,
    chunks: Vec<std::ops::Range<usize>>,
    params: Params,
    fold_duplicates: bool,
    cache: CacheUse,
    /// Who asked: its chemistry takes turns with other clients'.
    client: ClientKey,
    /// The batch's request id, passed to the function with every chunk.
    request_id: Option<String>,
}

/// A job's texts, shared with its chunks' chemistry on the chemistry threads.
struct Texts {
    inputs: Vec<String>,
    /// SMILES mode: each valid input's canonical form.
    canonical: Vec<Option<String>>,
    targets: Option<Vec<(String, TargetPrep)>>,
}

impl Job {
    /// Checks everything that can be checked before any invocation.
    /// Checks everything that can be checked before any invocation: the
    /// parameters and counts here, each row's chemistry in slices on the
    /// chemistry threads, at `client`'s turn (a slice at a time, so a large
    /// batch takes turns with everyone else's work instead of holding a
    /// chemistry thread for minutes).
    async fn new(state: &Arc<AppState>, input: BatchInput, client: ClientKey) -> Result<Job, ApiError> {
        let c = &state.config;
        let params = prediction::params(state, input.beam, input.n_best, input.attention)?;
        if input.inputs.is_empty() {
            return Err(ApiError::invalid_input("there are no inputs"));
        }
        if input.inputs.len() > c.max_batch_inputs {
            return Err(ApiError::too_large(format!(
                "{} inputs; the limit is {} per request",
                super::words::thousands(input.inputs.len()),
                super::words::thousands(c.max_batch_inputs)
            )));
        }
        if let Some(targets) = &input.targets
            && targets.len() != input.inputs.len()
        {
            return Err(ApiError::invalid_input(format!(
                "{} targets for {} inputs: the targets file must have one line per input",
                targets.len(),
                input.inputs.len()
            )));
        }
        let prepared = prepare_texts(state, client, &input.inputs, "input").await;
        let mut canonical = Vec::with_capacity(input.inputs.len());
        let rows: Vec<Row> = prepared
            .into_iter()
            .map(|p| match p {
                Err(e) => {
                    canonical.push(None);
                    Row::Invalid { code: e.code, message: e.message }
                }
                Ok(Prepared { canonical: c, tokenized }) => {
                    canonical.push(c);
                    Row::Valid(tokenized)
                }
            })
            .collect();
        let targets = match input.targets {
            None => None,
            Some(targets) => {
                let prepared = prepare_texts(state, client, &targets, "target").await;
                Some(
                    targets
                        .into_iter()
                        .zip(prepared)
                        .map(|(t, p)| {
                            let prep = p
                                .map(|p| (p.canonical.clone(), prediction::target_key(state, &t, &p)))
                                .map_err(|e| e.message);
                            (t, prep)
                        })
                        .collect(),
                )
            }
        };
        let chunks = fanout::plan(&rows, params, fanout::chunk_size_for_beam(params.beam), MAX_CHUNK_BYTES);
        Ok(Job {
            texts: Arc::new(Texts { inputs: input.inputs, canonical, targets }),
            rows: Arc::new(rows),
            chunks,
            params,
            fold_duplicates: input.fold_duplicates,
            cache: if input.bypass_cache { CacheUse::Bypass } else { CacheUse::Use },
            client,
            request_id: super::error::REQUEST_ID.try_with(Clone::clone).ok(),
        })
    }

    /// Streams the job's output into `tx` (and rows done into `progress`);
    /// returns its summary, or `None` when the reader went away first.
    async fn run(
        self,
        state: Arc<AppState>,
        format: Format,
        tx: mpsc::Sender<Bytes>,
        progress: Option<watch::Sender<usize>>,
    ) -> Option<Summary> {
        let started = Instant::now();
        let total = self.rows.len();
        let mut out = Output::new(format, state.clone(), self.params.n_best as usize);
        out.fold_duplicates = self.fold_duplicates;
        out.with_targets = self.texts.targets.is_some();
        out.start(total, self.chunks.len(), self.params);
        if !out.flush(&tx).await {
            return None;
        }
        let (translator, timeout, cache) = (state.translator.clone(), state.config.lambda_batch_timeout, self.cache);
        let fan_out = state.config.lambda_fan_out.max(1);
        let mut to_start = self.chunks.into_iter();
        let mut in_flight = fanout::InFlight::default();
        let mut heartbeat = tokio::time::interval_at(Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
        let mut stopping = state.stopping.subscribe();
        loop {
            // Chunks start only while the output has room (the reader keeps
            // up), or when none is in flight: a stalled reader's batch asks the
            // function for nothing more and waits for no invocation slot.
            while in_flight.len() < fan_out && (in_flight.is_empty() || tx.capacity() > 0) {
                let Some(range) = to_start.next() else { break };
                let (translator, rows, params) = (translator.clone(), self.rows.clone(), self.params);
                let ids = self.request_id.iter().cloned().collect();
                in_flight.start(fanout::invoke_chunk(translator, rows, range, params, timeout, cache, ids));
            }
            if in_flight.is_empty() {
                break;
            }
            tokio::select! {
                // (wait_for's guard is dropped inside: it must not live across awaits)
                _ = async { let _ = stopping.wait_for(|s| *s).await; } => {
                    // The pod is going away: no new chunk; rows already
                    // translated are sent, and the client learns where to resume.
                    tracing::info!(done = out.done, total, "batch interrupted by shutdown");
                    out.interrupted(total);
                    out.flush(&tx).await;
                    return Some(Summary { total: out.done, failed: out.failed.len(), evaluated: out.evaluated,
                        targets_invalid: out.targets_invalid, top_k_accuracy: None, interrupted: true });
                }
                _ = tx.closed() => {
                    tracing::info!(done = out.done, total, "batch client went away; stopping");
                    return None;
                }
                (range, result) = in_flight.next() => {
                    if let Err(e) = &result {
                        // The rows say it in plain words; the log keeps the cause.
                        tracing::warn!(rows = range.len(), first_row = range.start, error = %e, "batch chunk failed");
                    }
                    let mut hypotheses = match result {
                        Ok((h, from_cache)) => {
                            out.cached += from_cache;
                            Ok(h.into_iter())
                        }
                        Err(e) => Err(e),
                    };
                    // Canonicalizing a chunk's predictions is CPU work: on the
                    // chemistry threads at the batch's turn (the rows' output
                    // goes with it and comes back written).
                    let (texts, rows) = (self.texts.clone(), self.rows.clone());
                    let write = move |mut out: Output| {
                        for i in range {
                            let target = texts.targets.as_ref().map(|t| (t[i].0.as_str(), &t[i].1));
                            let outcome = match (&rows[i], &mut hypotheses) {
                                (Row::Invalid { code, message }, _) => Err((*code, message.clone())),
                                (Row::Valid(_), Err(e)) => Err(error_of(e)),
                                (Row::Valid(tokenized), Ok(it)) => match it.next() {
                                    Some(h) => Ok((tokenized.as_str(), h)),
                                    None => Err(("lambda_bad_payload", "no result for this input".to_string())),
                                },
                            };
                            out.row(i, &texts.inputs[i], texts.canonical[i].as_deref(), target, outcome);
                        }
                        out
                    };
                    out = chemistry(&state, self.client, move || write(out)).await;
                    out.progress(total, started);
                    if let Some(p) = &progress {
                        p.send_replace(out.done);
                    }
                    if !out.flush(&tx).await {
                        return None;
                    }
                    heartbeat.reset();
                }
                _ = heartbeat.tick() => {
                    out.progress(total, started);
                    if !out.flush(&tx).await {
                        return None;
                    }
                }
            }
        }
        let summary = out.summary(total, started);
        out.flush(&tx).await;
        Some(summary)
    }
}

/// Runs a bulk job outside HTTP (the `translate` subcommand): the same checks,
/// chunking, fan-out and encoding as the batch route, `format` into `tx`, rows
/// done into `progress`.
pub async fn run_job(
    state: Arc<AppState>,
    input: BatchInput,
    format: Format,
    tx: mpsc::Sender<Bytes>,
    progress: watch::Sender<usize>,
) -> Result<Option<Summary>, ApiError> {
    let job = prepare(&state, input).await?;
    Ok(job.run(state, format, tx, Some(progress)).await)
}

/// Runs a batch's chemistry (preparing its rows, canonicalizing a chunk's
/// predictions) on the chemistry threads, taking turns with other clients'
/// work; in text mode there is none, so it runs here. A batch has one such job
/// at a time, so it waits for its turn rather than being refused. A panic in
/// it is the job's panic (the stream then ends with an error line).
async fn chemistry<T: Send + 'static>(
    state: &AppState,
    client: ClientKey,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    if state.config.input_format == InputFormat::Text {
        return f();
    }
    match state.chemistry.run(client, Admission::Wait, f).await {
        Ok(out) => out,
        Err(e) => panic!("the batch's chemistry: {e}"),
    }
}

/// Up to MAX_BATCH_INPUTS canonicalizations: CPU work, off the async workers.
async fn prepare(state: &Arc<AppState>, input: BatchInput) -> Result<Job, ApiError> {
    Job::new(state, input, super::error::client()).await
}

/// Rows prepared per chemistry job: a slice of the largest molecules
/// (MAX_ATOMS) takes about a second; most take milliseconds.
const PREPARE_SLICE: usize = 32;

/// Each text prepared (`prediction::prepare`), `what` and its number from 1
/// naming it in errors; a slice at a time on the chemistry threads.
async fn prepare_texts(
    state: &Arc<AppState>,
    client: ClientKey,
    texts: &[String],
    what: &'static str,
) -> Vec<Result<Prepared, ApiError>> {
    let mut out = Vec::with_capacity(texts.len());
    for (n, slice) in texts.chunks(PREPARE_SLICE).enumerate() {
        let (job_state, slice, first) = (state.clone(), slice.to_vec(), n * PREPARE_SLICE);
        out.extend(
            chemistry(state, client, move || {
                let name = |i: usize| format!("{what} {}", first + i + 1);
                slice.iter().enumerate().map(|(i, t)| prediction::prepare(&job_state, t, &name(i))).collect::<Vec<_>>()
            })
            .await,
        );
    }
    out
}

fn error_of(e: &InferenceError) -> (&'static str, String) {
    let api = ApiError::from(e.clone());
    (api.code, api.message)
}

#[cfg(test)]
mod tests;
