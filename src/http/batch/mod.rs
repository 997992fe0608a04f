//! `POST /api/v1/translate/batch` (and the batch page's form): the core's
//! batch job (`translate::batch`) streamed back on the same response, so any
//! replica can serve any batch and nothing stays on the pod. Here: the
//! format, the body, a client's bound on batches running, and the stream.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::mpsc;

mod input;

pub use input::{BatchJson, BatchUpload};

use super::AppState;
use super::error::ApiError;
use super::metrics::{Ended, StreamEnd};
use crate::chem::pool::ClientKey;
use crate::translate::batch::{BatchLine, BatchRow, BatchSummary, Export, Format, Job, export, fault_line};

#[derive(Debug, Deserialize)]
pub struct FormatQuery {
    format: Option<String>,
    columns: Option<String>,
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
    summary = "Translate many inputs, streamed as NDJSON, CSV or SDF",
    description = "Rows are chunked and invoked with bounded fan-out; the answer streams as rows finish: NDJSON \
        (`application/x-ndjson`, the default: one `BatchLine` per line) or CSV (`?format=csv` or `Accept: text/csv`; \
        columns `line,source,rank,prediction,canonical,probability,target,correct,error` (`line` from 1: the input's line), one line per prediction, \
        RFC 4180 quoting, cells a spreadsheet would run as a formula prefixed with `'`; `?columns=classic` gives the \
        original app's columns) or SDF (`?format=sdf` or `Accept: chemical/x-mdl-sdfile`, SMILES mode: one record \
        per prediction that is a molecule, with `id` (the line, from 1), `rank`, `probability`, `canonical`, `source` \
        and, with targets, `target` and `correct` as properties; a file cut short ends with an atomless record whose \
        `note` says why). A row that fails is an error row; the others are translated. Rows the result cache \
        holds are not sent to the model unless `Cache-Control: no-cache` or `\"cache\": false`.",
    params(
        ("format" = Option<String>, Query, description = "`ndjson` (default), `csv` or `sdf`", pattern = "^(ndjson|csv|sdf)$"),
        ("columns" = Option<String>, Query, description = "`standard` (default) or `classic` (CSV only)", pattern = "^(standard|classic)$"),
        ("Cache-Control" = Option<String>, Header, description = "`no-cache`: ask the model for every row"),
    ),
    request_body(content(
        (BatchJson = "application/json"),
        (BatchUpload = "multipart/form-data"),
    )),
    responses(
        (status = 200, description = "The rows, as they finish",
            content((BatchLine = "application/x-ndjson"), (String = "text/csv"), (String = "chemical/x-mdl-sdfile"))),
        (status = 400, description = "invalid_input: malformed, out of bounds, or targets not one per input", body = super::error::ErrorBody),
        (status = 408, description = "request_timeout", body = super::error::ErrorBody),
        (status = 413, description = "too_large: more inputs than this server takes", body = super::error::ErrorBody),
        (status = 401, description = "unauthorized: this server has API keys (API_KEYS_FILE) and none, or an unknown one, was sent", body = super::error::ErrorBody),
        (status = 429, description = "rate_limited, or quota_exceeded: the API key's daily inputs would be passed by this batch's (Retry-After: until 00:00 UTC)", body = super::error::ErrorBody),
        (status = 500, description = "internal_error", body = super::error::ErrorBody),
    )
)]
pub async fn post_batch(
    State(state): State<Arc<AppState>>,
    super::extract::ApiQuery(query): super::extract::ApiQuery<FormatQuery>,
    req: Request,
) -> Result<Response, ApiError> {
    let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (accepts_csv, accepts_sdf) = (accept.contains("text/csv"), accept.contains("chemical/x-mdl-sdfile"));
    let mut format = match query.format.as_deref() {
        Some("csv") => Format::Csv,
        Some("sdf") => Format::Sdf,
        None if accepts_sdf => Format::Sdf,
        Some("ndjson") | None if !accepts_csv => Format::Ndjson,
        None | Some("ndjson") => Format::Csv,
        Some(other) => {
            return Err(ApiError::invalid_input(format!("unknown format '{other}' (use ndjson, csv or sdf)")));
        }
    };
    if format == Format::Sdf {
        sdf_needs_smiles(&state)?;
    }
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
    let key = req.extensions().get::<super::auth::KeyInUse>().cloned();
    let mut input = input::parse(&state, req).await?;
    input.bypass_cache |= no_cache;
    // A key pays for its batch's inputs before any is translated.
    if let (Some(super::auth::KeyInUse(key)), Some(access)) = (key, state.access.as_ref()) {
        access.charge(&key, input.inputs.len(), &state.metrics)?;
    }
    let job = Job::new(&state.service, input, super::error::caller()).await?;
    // Two encoded chunks between the job and the socket: enough to keep the
    // socket busy, little to hold for a client that stops reading.
    let (tx, rx) = mpsc::channel::<Vec<u8>>(2);
    let (ended_tx, ended_rx) = tokio::sync::oneshot::channel();
    let with_targets = job.with_targets();
    let request_id = super::error::REQUEST_ID.try_with(Clone::clone).ok();
    // The job runs in its own task; this one keeps its handle, so a panic in it
    // ends the stream with a line that says so, and the request log records it
    // (`ended_tx` dropped unsent).
    let last_word = tx.clone();
    let job = tokio::spawn(job.run(state.service.clone(), format, tx, None));
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
                let _ = last_word.send(fault_line(format, with_targets, request_id.as_deref())).await;
            }
        }
    });
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::convert::Infallible>(Bytes::from(b)), rx))
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
        Format::Sdf => sdf_headers(h),
    }
    // Tell buffering proxies (nginx) to pass lines through as they come.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.extensions_mut().insert(StreamEnd::new(ended_rx));
    Ok(response)
}

/// SDF holds molecules: only a server that reads SMILES writes it.
fn sdf_needs_smiles(state: &AppState) -> Result<(), ApiError> {
    if state.service.reading.format != crate::config::InputFormat::Smiles {
        return Err(ApiError::invalid_input(
            "format=sdf writes molecules: this server translates text (INPUT_FORMAT=text); use ndjson or csv",
        ));
    }
    Ok(())
}

fn sdf_headers(h: &mut axum::http::HeaderMap) {
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("chemical/x-mdl-sdfile"));
    h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"predictions.sdf\""));
}

#[derive(Debug, Deserialize)]
pub struct ExportQuery {
    format: Option<String>,
    n_best: Option<u32>,
}

#[utoipa::path(
    post,
    path = "/api/v1/translate/batch/export",
    tag = "translate",
    summary = "Write rows you already have as the batch would: CSV, SDF, or their summary",
    description = "The body is a batch's NDJSON `result` lines (only those), from one request or \
        several (a batch resumed with `resume_from`, rows sent again): the answer is the standard CSV of those rows \
        (`format=csv`, the default), their SDF records (`format=sdf`, SMILES mode) or their `summary` line (`format=summary`, top-k accuracy up to `n_best`; its \
        `elapsed_ms` is 0, the time being the client's to count). Nothing is translated.",
    params(
        ("format" = Option<String>, Query, description = "`csv` (default), `sdf` or `summary`", pattern = "^(csv|sdf|summary)$"),
        ("n_best" = Option<u32>, Query, description = "summary: the k of the top-k accuracy (default the server's default)", minimum = 1),
    ),
    request_body(description = "A batch's result rows, one per line (NDJSON): the items of this array, each on its own line",
        content = Vec<BatchRow>, content_type = "application/x-ndjson"),
    responses(
        (status = 200, description = "The CSV, the SDF, or the summary", content((String = "text/csv"), (String = "chemical/x-mdl-sdfile"), (BatchSummary = "application/json"))),
        (status = 400, description = "invalid_input: a line that is not JSON or not a result row, or a bad parameter", body = super::error::ErrorBody),
        (status = 413, description = "too_large: over MAX_BODY_BYTES", body = super::error::ErrorBody),
        (status = 429, description = "rate_limited (Retry-After)", body = super::error::ErrorBody),
    )
)]
pub async fn post_export(
    State(state): State<Arc<AppState>>,
    super::extract::ApiQuery(query): super::extract::ApiQuery<ExportQuery>,
    req: Request,
) -> Result<Response, ApiError> {
    let body = super::extract::read_body(req, &state).await?;
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::invalid_input("the body is not valid UTF-8"))?;
    if text.trim().is_empty() {
        return Err(ApiError::invalid_input("the body is empty: send the batch's lines, one per line"));
    }
    let c = &state.config;
    let n_best = query.n_best.unwrap_or(c.default_n_best);
    if !(1..=c.max_beam).contains(&n_best) {
        return Err(ApiError::invalid_input(format!("n_best must be between 1 and {}, got {n_best}", c.max_beam)));
    }
    let what = match query.format.as_deref() {
        None | Some("csv") => Export::Csv,
        Some("summary") => Export::Summary { n_best: n_best as usize },
        Some("sdf") => Export::Sdf,
        Some(other) => {
            return Err(ApiError::invalid_input(format!("unknown format '{other}' (use csv, sdf or summary)")));
        }
    };
    let out = if what == Export::Sdf {
        sdf_needs_smiles(&state)?;
        // 2D coordinates for each molecule: RDKit work, at this client's turn.
        let text = text.to_string();
        state
            .chemistry
            .run(super::error::client(), crate::chem::pool::Admission::FailFast, move || export(&text, what))
            .await
            .map_err(|e| match e {
                crate::chem::pool::PoolError::Busy => ApiError::busy(
                    "the server has too much chemistry waiting; try again shortly",
                    std::time::Duration::from_secs(1),
                ),
                crate::chem::pool::PoolError::Failed => ApiError::internal("the SDF could not be written"),
            })??
    } else {
        export(text, what)?
    };
    let mut response = out.into_response();
    let h = response.headers_mut();
    match what {
        Export::Csv => {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
            h.insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"translations.csv\""),
            );
        }
        Export::Sdf => sdf_headers(h),
        Export::Summary { .. } => {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
    }
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

#[cfg(test)]
mod tests;
