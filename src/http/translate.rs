//! Translating one text: validation against the limits, the call, and the view
//! model shared by the JSON API and the server-rendered page.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::AppState;
use super::error::ApiError;
use crate::inference::protocol::Matrix;
use crate::inference::tokenize::{Tokenizer, Tokens};
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
    pub tokens: Tokens,
    pub predictions: Vec<PredictionView>,
    pub elapsed_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PredictionView {
    pub rank: usize,
    pub text: String,
    pub tokens: Tokens,
    pub score: f64,
    pub probability: f64,
    /// Written with 4 decimals (see [`super::json`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attention: Option<Matrix>,
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
    let view = view(input.text, tokenized, hypotheses, state.tokenizer, started);
    Ok((view, invocation.request_id))
}

/// Builds the view of one input's n-best list; attention is cut to the real
/// token counts (the function pads rows and columns to the longest in a batch).
pub fn view(
    input: String,
    tokenized: String,
    hypotheses: Vec<Hypothesis>,
    tokenizer: Tokenizer,
    started: Instant,
) -> TranslationView {
    let source = Tokens::new(tokenized);
    let source_len = source.len();
    let predictions = hypotheses
        .into_iter()
        .enumerate()
        .map(|(i, h)| {
            let text = tokenizer.detokenize(&h.tokens);
            let tokens = Tokens::new(h.tokens);
            let attention = h.attention.map(|mut m| {
                m.truncate(tokens.len(), source_len);
                m
            });
            PredictionView {
                rank: i + 1,
                text,
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
