//! A batch: many inputs translated as one job, its output streamed as the rows
//! finish (NDJSON lines or CSV records) into a channel that the caller drains
//! (a response body, a file). Used by `POST /api/v1/translate/batch` and the
//! `translate` subcommand.
//!
//! Every input line gets exactly one result row, in input order, carrying its
//! index; a line that cannot be translated gets an error row, never a drop.
//! When the reader goes away the channel closes and no further chunk is
//! invoked.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

mod lines;
mod output;

pub use lines::{BatchLine, BatchPrediction, BatchRow, BatchSummary, RowError};
use output::Output;
pub use output::{CSV_HEADER, Tally, csv_rows, fault_line, sdf_records, view_sdf};

use super::error::{Error, ErrorCode};
use super::request::{self, Prepared};
use super::{Caller, Service, view};
use crate::chem::pool::{Admission, ClientKey};
use crate::config::InputFormat;
use crate::inference::fanout::{self, MAX_CHUNK_BYTES, Row};
use crate::inference::{CacheUse, Params};

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
    /// Start at this row (the `resume_from` of an `interrupted` line): the
    /// rows before it are neither checked nor translated, and the rows sent
    /// keep their indices.
    pub resume_from: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Csv,
    /// The original app's columns: `ID,Sources,Prediction_Tokens,Scores,
    /// Predictions,Targets,Correct` (Targets and Correct with targets), and an
    /// `Error` column for rows that could not be translated.
    ClassicCsv,
    /// SDF: one record per prediction that is a molecule
    /// ([`output::sdf_records`]); SMILES mode only.
    Sdf,
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

/// The lines of an uploaded file: UTF-8, LF or CRLF. Blank lines at the end
/// (an editor's final newline, or a few) are not rows; blank lines between
/// rows are, so line numbers stay those of the file.
pub fn lines(bytes: &[u8], what: &str) -> Result<Vec<String>, Error> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Error::invalid_input(format!("the {what} file is not valid UTF-8 (at byte {})", e.valid_up_to()))
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines: Vec<String> = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l).to_string()).collect();
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    Ok(lines)
}

/// What an export of rows makes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Export {
    /// The standard CSV, as `?format=csv` writes it.
    Csv,
    /// SDF records, as `?format=sdf` writes them.
    Sdf,
    /// The summary line of the rows, as a batch's last line (`elapsed_ms`
    /// 0: how long they took is the client's to count).
    Summary { n_best: usize },
}

/// Rows a client already holds (a batch's `result` lines, one per line, from
/// one request or several: a resumed batch, retried rows), written again by
/// the server's own rules: the CSV the batch would have written, or its
/// summary. Nothing is translated.
pub fn export(ndjson: &str, what: Export) -> Result<Vec<u8>, Error> {
    let mut buf = Vec::new();
    let mut tally = Tally::new(match what {
        Export::Summary { n_best } => n_best,
        Export::Csv | Export::Sdf => 0,
    });
    if what == Export::Csv {
        buf.extend_from_slice(CSV_HEADER);
    }
    for (n, line) in ndjson.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| Error::invalid_input(format!("line {} is not JSON: {e}", n + 1)))?;
        if !within_int64(&value) {
            return Err(Error::invalid_input(format!("line {} has a whole number past 2^63 - 1", n + 1)));
        }
        let row = <BatchRow as serde::Deserialize>::deserialize(&value)
            .map_err(|e| Error::invalid_input(format!("line {} is not a batch result row: {e}", n + 1)))?;
        tally.add(&row);
        match what {
            Export::Csv => csv_rows(&mut buf, &row),
            Export::Sdf => sdf_records(&mut buf, &row),
            Export::Summary { .. } => {}
        }
    }
    if let Export::Summary { .. } = what {
        super::json::write(&mut buf, &tally.summary(0, 0));
    }
    Ok(buf)
}

/// Whether every whole number in `value` fits the document's `int64` (serde
/// reads a `u64` or `usize` field up to 2^64 - 1).
fn within_int64(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Number(n) => n.as_u64().is_none_or(|u| u <= i64::MAX as u64),
        serde_json::Value::Array(items) => items.iter().all(within_int64),
        serde_json::Value::Object(fields) => fields.values().all(within_int64),
        _ => true,
    }
}

/// A target as compared: its canonical form (SMILES mode) and its key, or why
/// it cannot be compared.
type TargetPrep = Result<(Option<String>, String), String>;

/// A validated bulk request, ready to run.
pub struct Job {
    texts: Arc<Texts>,
    rows: Arc<Vec<Row>>,
    chunks: Vec<std::ops::Range<usize>>,
    params: Params,
    /// The index of the job's first row (`resume_from`).
    first: usize,
    fold_duplicates: bool,
    cache: CacheUse,
    /// Who asked: its chemistry takes turns with other clients'; its request
    /// id goes to the function with every chunk.
    caller: Caller,
}

/// A job's texts, shared with its chunks' chemistry on the chemistry threads.
struct Texts {
    inputs: Vec<String>,
    /// SMILES mode: each valid input's canonical form.
    canonical: Vec<Option<String>>,
    /// Why each row that failed its checks failed.
    rejected: Vec<Option<Error>>,
    targets: Option<Vec<(String, TargetPrep)>>,
}

impl Job {
    /// Checks everything that can be checked before any invocation: the
    /// parameters and counts here, each row's chemistry in slices on the
    /// chemistry threads, at the caller's turn (a slice at a time, so a large
    /// batch takes turns with everyone else's work instead of holding a
    /// chemistry thread for minutes).
    pub async fn new(service: &Service, input: BatchInput, caller: Caller) -> Result<Job, Error> {
        let limits = &service.limits;
        let params = request::params(limits, input.beam, input.n_best, input.attention)?;
        if input.inputs.is_empty() {
            return Err(Error::invalid_input("there are no inputs"));
        }
        let mut input = input;
        let first = input.resume_from;
        if first >= input.inputs.len() {
            return Err(Error::invalid_input(format!(
                "resume_from is {first}, but the inputs are rows 0 to {}",
                input.inputs.len() - 1
            )));
        }
        if input.inputs.len() > limits.max_batch_inputs {
            return Err(Error::too_large(format!(
                "{} inputs; the limit is {} per request",
                super::words::thousands(input.inputs.len()),
                super::words::thousands(limits.max_batch_inputs)
            )));
        }
        if let Some(targets) = &input.targets
            && targets.len() != input.inputs.len()
        {
            return Err(Error::invalid_input(format!(
                "{} targets for {} inputs: the targets file must have one line per input",
                targets.len(),
                input.inputs.len()
            )));
        }
        input.inputs.drain(..first);
        if let Some(t) = input.targets.as_mut() {
            t.drain(..first);
        }
        let prepared = prepare_texts(service, caller.client, &input.inputs, "line", first).await;
        let mut canonical = Vec::with_capacity(input.inputs.len());
        let mut rejected = Vec::with_capacity(input.inputs.len());
        let rows: Vec<Row> = prepared
            .into_iter()
            .map(|p| match p {
                Err(e) => {
                    canonical.push(None);
                    rejected.push(Some(e));
                    Row::Invalid
                }
                Ok(Prepared { canonical: c, tokenized }) => {
                    canonical.push(c);
                    rejected.push(None);
                    Row::Valid(tokenized)
                }
            })
            .collect();
        let targets = match input.targets {
            None => None,
            Some(targets) => {
                let prepared = prepare_texts(service, caller.client, &targets, "target line", first).await;
                let tokenizer = service.reading.tokenizer;
                Some(
                    targets
                        .into_iter()
                        .zip(prepared)
                        .map(|(t, p)| {
                            let prep = p
                                .map(|p| (p.canonical.clone(), view::target_key(tokenizer, &t, &p)))
                                .map_err(|e| e.message);
                            (t, prep)
                        })
                        .collect(),
                )
            }
        };
        let chunks = fanout::plan(&rows, params, fanout::chunk_size_for_beam(params.beam), MAX_CHUNK_BYTES);
        Ok(Job {
            texts: Arc::new(Texts { inputs: input.inputs, canonical, rejected, targets }),
            rows: Arc::new(rows),
            chunks,
            params,
            first,
            fold_duplicates: input.fold_duplicates,
            cache: if input.bypass_cache { CacheUse::Bypass } else { CacheUse::Use },
            caller,
        })
    }

    /// Whether targets were given (the CSV then has their columns).
    pub fn with_targets(&self) -> bool {
        self.texts.targets.is_some()
    }

    /// Streams the job's output into `tx` (and rows done into `progress`);
    /// returns its summary, or `None` when the reader went away first.
    pub async fn run(
        self,
        service: Arc<Service>,
        format: Format,
        tx: mpsc::Sender<Vec<u8>>,
        progress: Option<watch::Sender<usize>>,
    ) -> Option<Summary> {
        let started = Instant::now();
        let total = self.rows.len();
        let mut out = Output::new(format, service.clone(), self.params.n_best as usize);
        out.fold_duplicates = self.fold_duplicates;
        out.first = self.first;
        out.with_targets = self.texts.targets.is_some();
        out.start(total, self.chunks.len(), self.params);
        if !out.flush(&tx).await {
            return None;
        }
        let (translator, timeout, cache) =
            (service.translator.clone(), service.limits.lambda_batch_timeout, self.cache);
        let fan_out = service.limits.lambda_fan_out;
        let mut to_start = self.chunks.into_iter();
        let mut in_flight = fanout::InFlight::default();
        let mut heartbeat = tokio::time::interval_at(Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
        let mut stopping = service.stopping.clone();
        loop {
            // Chunks start only while the output has room (the reader keeps
            // up), or when none is in flight: a stalled reader's batch asks the
            // function for nothing more and waits for no invocation slot.
            let before = in_flight.rows();
            while in_flight.len() < fan_out && (in_flight.is_empty() || tx.capacity() > 0) {
                let Some(range) = to_start.next() else { break };
                let (translator, rows, params) = (translator.clone(), self.rows.clone(), self.params);
                let ids = self.caller.request_id.iter().cloned().collect();
                in_flight
                    .start(range.len(), fanout::invoke_chunk(translator, rows, range, params, timeout, cache, ids));
            }
            if in_flight.is_empty() {
                break;
            }
            if out.done == 0 && before == 0 {
                // The first rows come back after a whole chunk's translation
                // (seconds with a slow or cold function): say at once that
                // they are with the model.
                out.progress(total, started, in_flight.rows());
                if !out.flush(&tx).await {
                    return None;
                }
            }
            tokio::select! {
                // (wait_for's guard is dropped inside: it must not live across
                // awaits; with no one left to say "stop", nothing stops it)
                _ = async { if stopping.wait_for(|s| *s).await.is_err() { std::future::pending::<()>().await } } => {
                    // The pod is going away: no new chunk; rows already
                    // translated are sent, and the client learns where to resume.
                    tracing::info!(done = out.done, total, "batch interrupted by shutdown");
                    out.interrupted(total);
                    out.flush(&tx).await;
                    return Some(Summary { total: out.done, failed: out.tally.failed.len(), evaluated: out.tally.evaluated,
                        targets_invalid: out.tally.targets_invalid, top_k_accuracy: None, interrupted: true });
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
                        Err(e) => Err(Error::from(e)),
                    };
                    // Canonicalizing a chunk's predictions is CPU work: on the
                    // chemistry threads at the batch's turn (the rows' output
                    // goes with it and comes back written).
                    let (texts, rows) = (self.texts.clone(), self.rows.clone());
                    let write = move |mut out: Output| {
                        for i in range {
                            let target = texts.targets.as_ref().map(|t| (t[i].0.as_str(), &t[i].1));
                            let outcome = match (&rows[i], &mut hypotheses, &texts.rejected[i]) {
                                (_, _, Some(rejected)) => Err(rejected.clone()),
                                (Row::Invalid, _, None) => Err(Error::internal("this row was not checked")),
                                (Row::Valid(_), Err(e), None) => Err(e.clone()),
                                (Row::Valid(tokenized), Ok(it), None) => match it.next() {
                                    Some(h) => Ok((tokenized.as_str(), h)),
                                    None => Err(Error::new(ErrorCode::LambdaBadPayload, "no result for this input")),
                                },
                            };
                            out.row(i, &texts.inputs[i], texts.canonical[i].as_deref(), target, outcome);
                        }
                        out
                    };
                    out = chemistry(&service, self.caller.client, move || write(out)).await;
                    out.progress(total, started, in_flight.rows());
                    if let Some(p) = &progress {
                        p.send_replace(out.done);
                    }
                    if !out.flush(&tx).await {
                        return None;
                    }
                    heartbeat.reset();
                }
                _ = heartbeat.tick() => {
                    out.progress(total, started, in_flight.rows());
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

/// Runs a batch's chemistry (preparing its rows, canonicalizing a chunk's
/// predictions) on the chemistry threads, taking turns with other clients'
/// work; in text mode there is none, so it runs here. A batch has one such job
/// at a time, so it waits for its turn rather than being refused. A panic in
/// it is the job's panic (the stream then ends with an error line).
async fn chemistry<T: Send + 'static>(
    service: &Service,
    client: ClientKey,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    if service.reading.format == InputFormat::Text {
        return f();
    }
    match service.chemistry.run(client, Admission::Wait, f).await {
        Ok(out) => out,
        Err(e) => panic!("the batch's chemistry: {e}"),
    }
}

/// Rows prepared per chemistry job: a slice of the largest molecules
/// (MAX_ATOMS) takes about a second; most take milliseconds.
const PREPARE_SLICE: usize = 32;

/// Each text prepared (`request::prepare`), named in errors as the line it
/// is (`line 2` is the row with `index` 1: lines count from 1, as in the
/// file, indices from 0, as in the API); a slice at a time on the chemistry
/// threads.
async fn prepare_texts(
    service: &Service,
    client: ClientKey,
    texts: &[String],
    what: &'static str,
    first_row: usize,
) -> Vec<Result<Prepared, Error>> {
    let mut out = Vec::with_capacity(texts.len());
    for (n, slice) in texts.chunks(PREPARE_SLICE).enumerate() {
        let (reading, limits, slice, first) =
            (service.reading, service.limits.clone(), slice.to_vec(), first_row + n * PREPARE_SLICE);
        out.extend(
            chemistry(service, client, move || {
                let name = |i: usize| format!("{what} {}", first + i + 1);
                slice
                    .iter()
                    .enumerate()
                    .map(|(i, t)| request::prepare(reading, &limits, t, &name(i)))
                    .collect::<Vec<_>>()
            })
            .await,
        );
    }
    out
}

#[cfg(test)]
mod tests;
