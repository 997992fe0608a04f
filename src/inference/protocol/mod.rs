//! The Lambda wire contract (v1): the event we send and the result we decode.
//!
//! Pure: serde, base64 and gzip only, no I/O, no AWS SDK, no HTTP. Every decoding
//! failure is a [`ProtocolError`], never a panic: the payload comes from outside.

//!
//! - `envelope`: base64, gzip and error bodies around a result;
//! - `reader`: the result JSON, read in one pass;
//! - this file: the event, the entry points, and validation against the request.
//!
//! The answer's types (`Hypothesis`, `Matrix`) live in `inference::answer`.

mod envelope;
mod reader;

use serde::{Deserialize, Serialize};

use envelope::{truncate, unwrap_body};
use reader::Reader;

pub use crate::inference::answer::{Hypothesis, Matrix, probability};

/// A gzipped body may not expand past this: a Lambda response is at most 6 MB, and
/// a model result that large compresses well, but a zip bomb must not take the pod.
const MAX_DECOMPRESSED_BYTES: u64 = 256 << 20;

/// The event the function expects. `data` is a JSON *string* holding the list of
/// tokenized inputs (double encoded, as the existing function reads it).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub data: String,
    pub beam: u32,
    pub n_best: u32,
    pub return_attention: bool,
    pub warmup: bool,
}

/// Encodes the invoke event for a list of tokenized inputs.
pub fn encode_event(inputs: &[String], beam: u32, n_best: u32, return_attention: bool) -> Vec<u8> {
    let event = Event { data: encode_data(inputs), beam, n_best, return_attention, warmup: false };
    serde_json::to_vec(&event).expect("the event always serializes")
}

/// The list as Python's `json.dumps` writes it (`", "` between items), which is
/// what the existing function was written against.
fn encode_data(inputs: &[String]) -> String {
    let mut data = String::with_capacity(2 + inputs.iter().map(|i| i.len() + 4).sum::<usize>());
    data.push('[');
    for (i, input) in inputs.iter().enumerate() {
        if i > 0 {
            data.push_str(", ");
        }
        data.push_str(&serde_json::to_string(input).expect("a string always serializes"));
    }
    data.push(']');
    data
}

/// Encodes the keep-warm ping.
pub fn encode_warmup() -> Vec<u8> {
    let event = Event { data: "[]".into(), beam: 1, n_best: 1, return_attention: false, warmup: true };
    serde_json::to_vec(&event).expect("the event always serializes")
}

/// Decodes an event (the emulator's side of the wire); `data` is parsed too.
/// The result object inside the envelope.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultBody {
    pub predictions: Vec<Vec<String>>,
    pub scores: Vec<Vec<f64>>,
    #[serde(default)]
    pub attention: Option<Vec<Option<Vec<Matrix>>>>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProtocolError {
    /// Not JSON, not base64, not gzip, or not the expected shape.
    #[error("malformed result: {0}")]
    Malformed(String),
    /// Well formed, but does not answer the request (counts or lengths differ).
    #[error("result does not match the request: {0}")]
    Mismatch(String),
    /// The envelope carried an error status.
    #[error("function answered status {status}: {message}")]
    Status { status: u16, message: String },
}

/// Decodes and validates the result of a translation invoke for `inputs` inputs.
/// Attention is returned only when `want_attention` and the function sent it.
pub fn decode_result(
    payload: &[u8],
    inputs: usize,
    n_best: u32,
    want_attention: bool,
) -> Result<Vec<Vec<Hypothesis>>, ProtocolError> {
    let body = unwrap_body(payload)?;
    validate(read_result(&body, want_attention)?, inputs, n_best as usize, want_attention)
}

/// Reads a result object (the JSON inside the envelope) in one pass; attention
/// is read only when `want_attention`. `examples/codec-bench` compares it with
/// serde_json reading the same text.
pub fn read_result(body_json: &[u8], want_attention: bool) -> Result<ResultBody, ProtocolError> {
    Reader::new(body_json).result(want_attention)
}

fn validate(
    result: ResultBody,
    inputs: usize,
    n_best: usize,
    want_attention: bool,
) -> Result<Vec<Vec<Hypothesis>>, ProtocolError> {
    let ResultBody { predictions, scores, attention } = result;
    if predictions.len() != inputs || scores.len() != inputs {
        return Err(ProtocolError::Mismatch(format!(
            "{inputs} inputs sent, {} prediction lists and {} score lists returned",
            predictions.len(),
            scores.len()
        )));
    }
    let width = predictions.first().map_or(0, Vec::len);
    // Every score is finite: the reader checks each one.
    for (i, (p, s)) in predictions.iter().zip(&scores).enumerate() {
        if p.len() != width || s.len() != width {
            return Err(ProtocolError::Mismatch(format!(
                "input {i}: {} predictions and {} scores, expected {width} of each",
                p.len(),
                s.len()
            )));
        }
    }
    if inputs > 0 && !(1..=n_best).contains(&width) {
        return Err(ProtocolError::Mismatch(format!("{width} hypotheses per input, asked for {n_best}")));
    }
    // `[null]` (or no field at all) means the function sent no attention.
    let attention = attention.filter(|a| a.iter().any(Option::is_some));
    let mut attention = match attention {
        Some(a) if a.len() != inputs => {
            return Err(ProtocolError::Mismatch(format!("{} attention lists for {inputs} inputs", a.len())));
        }
        Some(a) if want_attention => Some(a.into_iter()),
        _ => None,
    };
    let mut out = Vec::with_capacity(inputs);
    for (i, (preds, scores)) in predictions.into_iter().zip(scores).enumerate() {
        let mut mats = match attention.as_mut().and_then(Iterator::next).flatten() {
            Some(m) if m.len() != width => {
                return Err(ProtocolError::Mismatch(format!(
                    "input {i}: {} attention matrices for {width} hypotheses",
                    m.len()
                )));
            }
            // Every weight is finite: the reader checks each one.
            Some(m) => Some(m.into_iter()),
            None => None,
        };
        let hyps = preds
            .into_iter()
            .zip(scores)
            .map(|(tokens, score)| Hypothesis { tokens, score, attention: mats.as_mut().and_then(Iterator::next) })
            .collect();
        out.push(hyps);
    }
    Ok(out)
}

/// Checks a keep-warm answer: `{"warmup": "confirmed"}` inside the envelope.
pub fn decode_warmup(payload: &[u8]) -> Result<(), ProtocolError> {
    #[derive(Deserialize)]
    struct Warmup {
        warmup: Option<String>,
    }
    let body = unwrap_body(payload)?;
    match serde_json::from_slice::<Warmup>(&body) {
        Ok(Warmup { warmup: Some(w) }) if w == "confirmed" => Ok(()),
        _ => Err(ProtocolError::Malformed(format!(
            "warmup not confirmed: {}",
            truncate(&String::from_utf8_lossy(&body), 200)
        ))),
    }
}

/// The `errorType` and `errorMessage` of a function that raised.
pub fn decode_function_error(payload: &[u8]) -> (String, String) {
    #[derive(Deserialize)]
    struct FunctionError {
        #[serde(rename = "errorType")]
        error_type: Option<String>,
        #[serde(rename = "errorMessage")]
        error_message: Option<String>,
    }
    match serde_json::from_slice::<FunctionError>(payload) {
        Ok(e) => {
            (e.error_type.unwrap_or_else(|| "Unhandled".into()), truncate(&e.error_message.unwrap_or_default(), 500))
        }
        Err(_) => ("Unhandled".into(), truncate(&String::from_utf8_lossy(payload), 200)),
    }
}

// The encoders only the emulator and tests need, kept out of the library.
#[cfg(test)]
#[path = "../../../tests/support/wire.rs"]
mod wire;

#[cfg(test)]
mod tests;
