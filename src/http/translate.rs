//! Translating one text: validation against the limits, the call, and the view
//! model shared by the JSON API and the server-rendered page.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::AppState;
use super::error::ApiError;
use crate::inference::tokenize::{Tokenizer, split_tokens};
use crate::inference::{Admission, Hypothesis, Params, Request};

/// The body of `POST /api/v1/translate` and the fields of the translate form.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TranslateInput {
    pub text: String,
    pub beam: Option<u32>,
    pub n_best: Option<u32>,
    pub attention: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TranslationView {
    pub input: String,
    pub tokens: Vec<String>,
    pub predictions: Vec<PredictionView>,
    pub elapsed_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PredictionView {
    pub rank: usize,
    pub text: String,
    pub tokens: Vec<String>,
    pub score: f64,
    pub probability: f64,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "weights")]
    pub attention: Option<Vec<Vec<f32>>>,
}

/// Attention weights in responses are rounded to 4 decimals (0.01%), plenty for
/// any heatmap: written by hand into one string per matrix, which costs a
/// fraction of general float formatting and makes the answer smaller.
pub fn weights<S: serde::Serializer>(matrix: &Option<Vec<Vec<f32>>>, serializer: S) -> Result<S::Ok, S::Error> {
    let Some(rows) = matrix else { return serializer.serialize_none() };
    let mut text = String::with_capacity(2 + rows.iter().map(|r| r.len() * 7 + 3).sum::<usize>());
    text.push('[');
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push('[');
        for (j, v) in row.iter().enumerate() {
            if j > 0 {
                text.push(',');
            }
            push_weight(&mut text, *v);
        }
        text.push(']');
    }
    text.push(']');
    let raw = serde_json::value::RawValue::from_string(text).map_err(serde::ser::Error::custom)?;
    raw.serialize(serializer)
}

fn push_weight(out: &mut String, v: f32) {
    let n = (f64::from(v) * 1e4).round();
    if (0.0..1e4).contains(&n) {
        let n = n as u32;
        if n == 0 {
            out.push('0');
            return;
        }
        let digits =
            [b'0' + (n / 1000) as u8, b'0' + (n / 100 % 10) as u8, b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8];
        let len = 4 - digits.iter().rev().take_while(|d| **d == b'0').count();
        out.push_str("0.");
        out.push_str(std::str::from_utf8(&digits[..len]).expect("ASCII digits"));
    } else {
        use std::fmt::Write;
        let _ = write!(out, "{}", n / 1e4);
    }
}

/// Checks beam and n_best against the configured bounds, filling in defaults.
pub fn params(state: &AppState, beam: Option<u32>, n_best: Option<u32>, attention: bool) -> Result<Params, ApiError> {
    let c = &state.config;
    let beam = beam.unwrap_or(c.default_beam);
    if !(1..=c.max_beam).contains(&beam) {
        return Err(ApiError::invalid_input(format!("beam must be between 1 and {}, got {beam}", c.max_beam)));
    }
    let n_best = n_best.unwrap_or(c.default_n_best.min(beam));
    if n_best == 0 || n_best > beam {
        return Err(ApiError::invalid_input(format!(
            "n_best must be between 1 and the beam width ({beam}), got {n_best}"
        )));
    }
    Ok(Params { beam, n_best, attention })
}

/// Checks one input text: not blank, at most `MAX_INPUT_CHARS` code points.
pub fn check_text(state: &AppState, text: &str) -> Result<(), ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::invalid_input("text is empty"));
    }
    let max = state.config.max_input_chars;
    let chars = text.chars().count();
    if chars > max {
        return Err(ApiError::too_large(format!("text has {chars} characters; the limit is {max}")));
    }
    Ok(())
}

/// Validates, translates one text, and builds its view. Also returns the Lambda
/// request id for the log.
pub async fn translate(
    state: &Arc<AppState>,
    input: TranslateInput,
) -> Result<(TranslationView, Option<String>), ApiError> {
    let started = Instant::now();
    let params = params(state, input.beam, input.n_best, input.attention.unwrap_or(true))?;
    check_text(state, &input.text)?;
    let tokenized = state.tokenizer.tokenize(&input.text);
    if tokenized.trim().is_empty() {
        return Err(ApiError::invalid_input("text has nothing to translate once tokenized"));
    }
    let request = Request {
        inputs: vec![tokenized.clone()],
        params,
        deadline: started + state.config.lambda_timeout,
        admission: Admission::FailFast,
    };
    let invocation = state.translator.translate(request).await?;
    let hypotheses = invocation.results.into_iter().next().unwrap_or_default();
    let view = view(input.text, &tokenized, hypotheses, state.tokenizer, started);
    Ok((view, invocation.request_id))
}

/// Builds the view of one input's n-best list; attention is cut to the real
/// token counts (the function pads rows and columns to the longest in a batch).
pub fn view(
    input: String,
    tokenized: &str,
    hypotheses: Vec<Hypothesis>,
    tokenizer: Tokenizer,
    started: Instant,
) -> TranslationView {
    let source: Vec<String> = split_tokens(tokenized).into_iter().map(String::from).collect();
    let predictions = hypotheses
        .into_iter()
        .enumerate()
        .map(|(i, h)| {
            let tokens: Vec<String> = split_tokens(&h.tokens).into_iter().map(String::from).collect();
            let attention = h.attention.map(|mut rows| {
                rows.truncate(tokens.len());
                for row in &mut rows {
                    row.truncate(source.len());
                }
                rows
            });
            PredictionView {
                rank: i + 1,
                text: tokenizer.detokenize(&h.tokens),
                tokens,
                score: h.score,
                probability: crate::inference::protocol::probability(h.score),
                attention,
            }
        })
        .collect();
    TranslationView {
        input,
        tokens: source,
        predictions,
        elapsed_ms: (started.elapsed().as_secs_f64() * 1e4).round() / 10.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(m: Vec<Vec<f32>>) -> String {
        let mut out = Vec::new();
        weights(&Some(m), &mut serde_json::Serializer::new(&mut out)).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn weights_are_written_with_four_decimals() {
        assert_eq!(
            text(vec![vec![0.8, 0.02, 0.000_04, 0.123_456, 1.0], vec![0.0, 0.99996, 2.5, -0.25]]),
            "[[0.8,0.02,0,0.1235,1],[0,1,2.5,-0.25]]"
        );
        assert_eq!(text(vec![]), "[]");
        let parsed: Vec<Vec<f64>> = serde_json::from_str(&text(vec![vec![0.000_06, 0.4999]])).unwrap();
        assert_eq!(parsed, vec![vec![0.0001, 0.4999]]);
    }
}
