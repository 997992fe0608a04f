//! Encoding a batch's rows as they finish: NDJSON lines or CSV records (the
//! standard columns or the original app's), with the running counts for the
//! progress lines and the summary. NDJSON lines are written as the types of
//! `lines.rs`, the ones the API document describes.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::lines::{BatchLine, BatchPrediction, BatchRow, BatchSummary, RowError};
use super::{Format, Summary, TargetPrep};
use crate::inference::{Hypothesis, Params};
use crate::translate::Service;
use crate::translate::error::{Error, ErrorCode, ErrorInfo};
use crate::translate::request::Prepared;
use crate::translate::view::{self, PredictionView};
use crate::translate::{json, words};

/// Encodes rows as NDJSON or CSV into a buffer flushed per chunk, and keeps the
/// running counts for progress and the summary.
pub(super) struct Output {
    format: Format,
    service: Arc<Service>,
    buf: Vec<u8>,
    pub(super) done: usize,
    /// What the rows add up to so far.
    pub(super) tally: Tally,
    /// Rows answered from the result cache.
    pub(super) cached: usize,
    /// The index of the job's first row (a batch resumed from a row keeps the
    /// file's numbering).
    pub(super) first: usize,
    pub(super) fold_duplicates: bool,
    /// Targets were given (classic CSV then has its Targets and Correct columns).
    pub(super) with_targets: bool,
}

impl Output {
    pub(super) fn new(format: Format, service: Arc<Service>, n_best: usize) -> Self {
        Output {
            format,
            service,
            buf: Vec::with_capacity(16 * 1024),
            done: 0,
            tally: Tally::new(n_best),
            cached: 0,
            first: 0,
            fold_duplicates: false,
            with_targets: false,
        }
    }

    fn line(&mut self, value: &impl Serialize) {
        json::write(&mut self.buf, value);
        self.buf.push(b'\n');
    }

    pub(super) fn start(&mut self, total: usize, chunks: usize, p: Params) {
        match self.format {
            Format::Ndjson => {
                self.line(&BatchLine::Start { total, chunks, beam: p.beam, n_best: p.n_best, attention: p.attention })
            }
            Format::Csv => self.buf.extend_from_slice(CSV_HEADER),
            Format::ClassicCsv if self.with_targets => {
                self.buf.extend_from_slice(b"ID,Sources,Prediction_Tokens,Scores,Predictions,Targets,Correct,Error\r\n")
            }
            Format::ClassicCsv => {
                self.buf.extend_from_slice(b"ID,Sources,Prediction_Tokens,Scores,Predictions,Error\r\n")
            }
            Format::Sdf => {}
        }
    }

    /// Writes row `index` of the job (counted from the job's first row).
    pub(super) fn row(
        &mut self,
        index: usize,
        input: &str,
        canonical: Option<&str>,
        target: Option<(&str, &TargetPrep)>,
        outcome: Result<(&str, Vec<Hypothesis>), Error>,
    ) {
        self.done += 1;
        let index = self.first + index;
        let target_text = target.map(|t| t.0);
        let (tokenized, hypotheses) = match outcome {
            Ok(ok) => ok,
            Err(Error { code, message, .. }) => {
                let row = BatchRow {
                    index,
                    input: input.into(),
                    canonical: None,
                    target: target_text.map(Into::into),
                    target_canonical: None,
                    target_error: None,
                    correct_rank: None,
                    attention_omitted: false,
                    predictions: None,
                    error: Some(RowError { code, message }),
                };
                self.tally.add(&row);
                match self.format {
                    Format::Ndjson => self.line(&BatchLine::Result(row)),
                    Format::Csv => csv_rows(&mut self.buf, &row),
                    Format::Sdf => {}
                    Format::ClassicCsv => {
                        let error = format!("{}: {}", code, row.error.as_ref().map_or("", |e| e.message.as_str()));
                        let (id, target) = (index.to_string(), target_text.unwrap_or(""));
                        let mut fields = vec![id.as_str(), input, "", "", ""];
                        if self.with_targets {
                            fields.extend([target, ""]);
                        }
                        fields.push(&error);
                        csv_record(&mut self.buf, &fields);
                    }
                }
                return;
            }
        };
        let prepared = Prepared { canonical: canonical.map(String::from), tokenized: tokenized.to_owned() };
        let reading = self.service.reading;
        let mut view = view::view(reading, String::new(), prepared, hypotheses, Instant::now());
        let key = match target.map(|t| t.1) {
            Some(Ok((_, key))) => Some(key.as_str()),
            _ => None,
        };
        let budget = self.service.limits.max_attention_cells;
        let rank = view::finish(reading.tokenizer, &mut view, budget, self.fold_duplicates, key);
        let (target_canonical, target_error) = match target.map(|t| t.1) {
            None => (None, None),
            Some(Err(why)) => (None, Some(why.as_str())),
            Some(Ok((target_canonical, _))) => (target_canonical.as_deref(), None),
        };
        let row = BatchRow {
            index,
            input: input.into(),
            canonical: canonical.map(Into::into),
            target: target_text.map(Into::into),
            target_canonical: target_canonical.map(Into::into),
            target_error: target_error.map(Into::into),
            correct_rank: Some(rank),
            attention_omitted: view.attention_omitted,
            predictions: Some(view.predictions.iter().map(lean).collect()),
            error: None,
        };
        self.tally.add(&row);
        match self.format {
            Format::Ndjson => self.line(&BatchLine::Result(row)),
            Format::Csv => csv_rows(&mut self.buf, &row),
            Format::Sdf => sdf_records(&mut self.buf, &row),
            Format::ClassicCsv => {
                // As the original: Sources is the processed input, Scores the
                // probability, Predictions the canonical SMILES ("" when not a
                // molecule; the text in text mode), Correct True or False.
                let comparable = target.is_some() && target_error.is_none();
                let (id, source) = (index.to_string(), canonical.unwrap_or(input));
                for p in &view.predictions {
                    let tokens = p.tokens.iter().collect::<Vec<_>>().join(" ");
                    let score = format!("{}", p.probability);
                    let prediction = match &p.canonical {
                        Some(c) => c.as_deref().unwrap_or(""),
                        None => p.text.as_str(),
                    };
                    let mut fields = vec![id.as_str(), source, tokens.as_str(), score.as_str(), prediction];
                    if self.with_targets {
                        let correct = match (comparable, rank) {
                            (true, Some(r)) if r == p.rank => "True",
                            (true, _) => "False",
                            (false, _) => "",
                        };
                        fields.extend([target_canonical.or(target_text).unwrap_or(""), correct]);
                    }
                    fields.push(target_error.unwrap_or(""));
                    csv_record(&mut self.buf, &fields);
                }
            }
        }
    }

    pub(super) fn progress(&mut self, total: usize, started: Instant, in_flight: usize) {
        if self.format != Format::Ndjson {
            return;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 { self.done as f64 / elapsed } else { 0.0 };
        let eta_ms = (self.done > 0).then(|| ((total - self.done) as f64 / rate * 1e3).round() as u64);
        self.line(&BatchLine::Progress {
            done: self.done,
            total,
            elapsed_ms: (elapsed * 1e3).round() as u64,
            eta_ms,
            rate_per_s: (rate * 10.0).round() / 10.0,
            in_flight,
        });
    }

    /// The last line of a batch cut by shutdown: rows up to `first + done`
    /// were sent.
    pub(super) fn interrupted(&mut self, total: usize) {
        let resume_from = self.first + self.done;
        match self.format {
            Format::Ndjson => self.line(&BatchLine::Interrupted { reason: "shutdown".into(), resume_from, total }),
            Format::Csv | Format::ClassicCsv => {
                let message = format!(
                    "interrupted: this server is shutting down; lines 1 to {resume_from} were sent; send the rest again \
                     from line {} (resume_from {resume_from})",
                    resume_from + 1
                );
                let mut fields = vec![""; csv_columns(self.format, self.with_targets) - 1];
                fields.push(&message);
                csv_record(&mut self.buf, &fields);
            }
            Format::Sdf => sdf_note(
                &mut self.buf,
                &format!(
                    "interrupted: this server is shutting down; lines 1 to {resume_from} were sent; send the rest again \
                     from line {} (resume_from {resume_from})",
                    resume_from + 1
                ),
            ),
        }
    }

    pub(super) fn summary(&mut self, total: usize, started: Instant) -> Summary {
        let elapsed_ms = started.elapsed().as_millis() as u64;
        tracing::info!(total, failed = self.tally.failed.len(), elapsed_ms, "batch finished");
        let line = self.tally.summary(self.cached, elapsed_ms);
        let summary = Summary {
            total,
            failed: line.failed,
            evaluated: line.evaluated,
            targets_invalid: line.targets_invalid,
            top_k_accuracy: line.top_k_accuracy.clone(),
            interrupted: false,
        };
        if self.format == Format::Ndjson {
            self.line(&BatchLine::Summary(line));
        }
        summary
    }

    /// Sends what is buffered; false when the client is gone. A client that
    /// stops reading stalls this send; its connection then moves no byte, and
    /// the server's idle bound (`http::server`) drops it after twice
    /// `IDLE_TIMEOUT`, which closes the channel and ends the job, freeing its
    /// invocation slots.
    /// Hands what is written to the response; false when the client is gone
    /// or has read nothing for `BATCH_WRITE_STALL` (the job then stops and
    /// gives back what it holds).
    pub(super) async fn flush(&mut self, tx: &mpsc::Sender<Vec<u8>>) -> bool {
        if self.buf.is_empty() {
            return true;
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(16 * 1024));
        let stall = self.service.limits.batch_write_stall;
        match tokio::time::timeout(stall, tx.send(chunk)).await {
            Ok(sent) => sent.is_ok(),
            Err(_) => {
                tracing::info!(
                    done = self.done,
                    stall_s = stall.as_secs_f64(),
                    "batch client stopped reading; stopping"
                );
                false
            }
        }
    }
}

fn csv_columns(format: Format, with_targets: bool) -> usize {
    match format {
        Format::Csv => 9,
        _ if with_targets => 8,
        _ => 6,
    }
}

/// The last line of a batch whose job failed on a server fault (a panic): the
/// rows before it were sent; the client sees why the rest is missing.
pub fn fault_line(format: Format, with_targets: bool, request_id: Option<&str>) -> Vec<u8> {
    let message = "the batch stopped on a server fault; the rows above were sent, send the rest again";
    let mut buf = Vec::new();
    match format {
        Format::Ndjson => {
            let error = ErrorInfo {
                code: ErrorCode::InternalError,
                message: message.into(),
                request_id: request_id.map(String::from),
            };
            json::write(&mut buf, &BatchLine::Error { error });
            buf.push(b'\n');
        }
        Format::Csv | Format::ClassicCsv => {
            let message = format!("error: {message}");
            let mut fields = vec![""; csv_columns(format, with_targets) - 1];
            fields.push(&message);
            csv_record(&mut buf, &fields);
        }
        Format::Sdf => sdf_note(&mut buf, &format!("error: {message}")),
    }
    buf
}

fn lean(p: &PredictionView) -> BatchPrediction<'_> {
    BatchPrediction {
        rank: p.rank,
        text: p.text.as_str().into(),
        canonical: p.canonical.as_ref().map(|c| c.as_deref().map(Into::into)),
        score: p.score,
        probability: p.probability,
        probability_text: words::probability(p.probability),
        merged_ranks: p.merged_ranks.as_deref().map(Into::into),
        attention: p.attention.as_ref(),
    }
}

/// What rows add up to: failures, rows evaluated against a target, and the
/// top-k hits. One rule for the streamed summary and for an export's.
#[derive(Debug, Default)]
pub struct Tally {
    pub(super) total: usize,
    pub(super) failed: Vec<usize>,
    pub(super) evaluated: usize,
    /// Rows whose target could not be compared (left out of the accuracy).
    pub(super) targets_invalid: usize,
    hits: Vec<usize>,
}

impl Tally {
    pub fn new(n_best: usize) -> Self {
        Tally { hits: vec![0; n_best], ..Default::default() }
    }

    pub fn add(&mut self, row: &BatchRow<'_>) {
        self.total += 1;
        if row.error.is_some() {
            self.failed.push(row.index);
            return;
        }
        if row.target_error.is_some() {
            self.targets_invalid += 1;
            return;
        }
        if row.target.is_none() {
            return;
        }
        self.evaluated += 1;
        // A rank past the n-best (or 0, from a hand-made row) is no hit.
        if let Some(Some(rank @ 1..)) = row.correct_rank {
            for hit in self.hits.iter_mut().skip(rank - 1) {
                *hit += 1;
            }
        }
    }

    /// The summary line of the rows added.
    pub fn summary(&self, cached: usize, elapsed_ms: u64) -> BatchSummary {
        let accuracy = (self.evaluated > 0)
            .then(|| self.hits.iter().map(|h| *h as f64 / self.evaluated as f64).collect::<Vec<_>>());
        BatchSummary {
            total: self.total,
            succeeded: self.total - self.failed.len(),
            failed: self.failed.len(),
            failed_indices: self.failed.clone(),
            evaluated: self.evaluated,
            targets_invalid: self.targets_invalid,
            top_k_accuracy: accuracy,
            cached,
            elapsed_ms,
        }
    }
}

/// A row in the standard CSV columns (`line,source,rank,prediction,canonical,
/// probability,target,correct,error`): one record per prediction, or one
/// with the error. The streamed CSV and an export of rows both write it.
pub fn csv_rows(buf: &mut Vec<u8>, row: &BatchRow<'_>) {
    // The input's line, from 1, as the page's table and the errors count
    // (`index` + 1; the original app's columns keep its 0-based ID).
    let id = (row.index + 1).to_string();
    let target = row.target.as_deref().unwrap_or("");
    if let Some(e) = &row.error {
        let error = format!("{}: {}", e.code, e.message);
        csv_record(buf, &[&id, &row.input, "", "", "", "", target, "", &error]);
        return;
    }
    let comparable = row.target.is_some() && row.target_error.is_none();
    for p in row.predictions.iter().flatten() {
        let correct = match (comparable, row.correct_rank) {
            (true, Some(r)) if r == Some(p.rank) => "true",
            (true, _) => "false",
            (false, _) => "",
        };
        let canonical = p.canonical.as_ref().map_or("", |c| c.as_deref().unwrap_or("(not a molecule)"));
        let fields = [
            &id,
            &*row.input,
            &p.rank.to_string(),
            &p.text,
            canonical,
            &format!("{:.6}", p.probability),
            target,
            correct,
            row.target_error.as_deref().unwrap_or(""),
        ];
        csv_record(buf, &fields);
    }
}

/// A row as SDF records: one per prediction that is a molecule, with `id`
/// (the input's line, from 1), `rank`, `probability`, `canonical`, `source`
/// and, with a target, `target` and `correct` as properties. A row that
/// failed, and predictions that are not molecules, have no record. RDKit
/// work (2D coordinates): on the chemistry threads.
pub fn sdf_records(buf: &mut Vec<u8>, row: &BatchRow<'_>) {
    let id = (row.index + 1).to_string();
    let comparable = row.target.is_some() && row.target_error.is_none();
    for p in row.predictions.iter().flatten() {
        let Some(Some(canonical)) = &p.canonical else { continue };
        let mut properties = vec![
            ("id", id.clone()),
            ("rank", p.rank.to_string()),
            ("probability", format!("{:.6}", p.probability)),
            ("canonical", canonical.to_string()),
            ("source", row.canonical.as_deref().unwrap_or(&row.input).to_string()),
        ];
        if let Some(target) = &row.target {
            properties.push(("target", row.target_canonical.as_deref().unwrap_or(target).to_string()));
            let correct = match row.correct_rank {
                Some(Some(r)) if comparable && r == p.rank => "true",
                _ if comparable => "false",
                _ => "",
            };
            properties.push(("correct", correct.to_string()));
        }
        // A canonical SMILES is read back by the same RDKit; should it fail,
        // the record is left out rather than the row.
        let title = format!("line {id}, rank {}", p.rank);
        if let Ok(record) = crate::chem::blocks::sdf_record(canonical, &title, &properties) {
            buf.extend_from_slice(record.as_bytes());
        }
    }
}

/// One translation's predictions as SDF records (`id` 1), as a batch row's.
pub fn view_sdf(view: &crate::translate::TranslationView) -> Vec<u8> {
    let target = view.target.as_ref();
    let row = BatchRow {
        index: 0,
        input: view.input.as_str().into(),
        canonical: view.canonical.as_deref().map(Into::into),
        target: target.map(|t| t.text.as_str().into()),
        target_canonical: target.and_then(|t| t.canonical.as_deref()).map(Into::into),
        target_error: None,
        correct_rank: target.map(|t| t.correct_rank),
        attention_omitted: false,
        predictions: Some(view.predictions.iter().map(lean).collect()),
        error: None,
    };
    let mut buf = Vec::new();
    sdf_records(&mut buf, &row);
    buf
}

/// An SDF record without atoms that says something about the file (it was
/// cut by shutdown or a fault): readers skip or show it, and its `note`
/// property says what happened.
pub fn sdf_note(buf: &mut Vec<u8>, note: &str) {
    let note = note.replace(['\r', '\n'], " ");
    buf.extend_from_slice(
        format!(
            "note\n     translation-front\n\n  0  0  0  0  0  0  0  0  0  0999 V2000\nM  END\n> <note>\n{note}\n\n$$$$\n"
        )
        .as_bytes(),
    );
}

/// The standard CSV header.
pub const CSV_HEADER: &[u8] = b"line,source,rank,prediction,canonical,probability,target,correct,error\r\n";

/// One CSV record, quoted as RFC 4180 says: fields holding a comma, a quote or a
/// line break are quoted, quotes doubled; records end with CRLF. A field that a
/// spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, TAB or
/// CR) gets a leading `'`, as OWASP recommends: inputs, targets and predictions
/// come from clients and the model, and the file is opened in Excel.
fn csv_record(buf: &mut Vec<u8>, fields: &[&str]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        let neutral;
        let f = if f.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            neutral = format!("'{f}");
            neutral.as_str()
        } else {
            f
        };
        if f.contains([',', '"', '\n', '\r']) {
            buf.push(b'"');
            buf.extend_from_slice(f.replace('"', "\"\"").as_bytes());
            buf.push(b'"');
        } else {
            buf.extend_from_slice(f.as_bytes());
        }
    }
    buf.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_only_what_needs_it() {
        let mut buf = Vec::new();
        csv_record(&mut buf, &["1", "a,b", "say \"hi\"", "two\nlines", "plain"]);
        assert_eq!(String::from_utf8(buf).unwrap(), "1,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",plain\r\n");
    }

    #[test]
    fn csv_cells_that_a_spreadsheet_would_run_are_neutralised() {
        let mut buf = Vec::new();
        csv_record(&mut buf, &["=cmd|' /C calc'!A0", "@SUM(A1)", "+1", "-1", "\tx", "\rx", "C=O", "0.5"]);
        assert_eq!(String::from_utf8(buf).unwrap(), "'=cmd|' /C calc'!A0,'@SUM(A1),'+1,'-1,'\tx,\"'\rx\",C=O,0.5\r\n");
    }
}
