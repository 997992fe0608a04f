//! One input's path: checks against the limits, canonicalization and tokenizing
//! (`prepare`), the call (`predict`), and the view model shared by the JSON API,
//! the server-rendered page and each row of a batch.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use crate::chem;
use crate::chem::pool::{self, PoolError};
use crate::config::InputFormat;
use crate::inference::Matrix;
use crate::inference::tokenize::{Tokenizer, Tokens};
use crate::inference::{Admission, CacheUse, Hypothesis, Params, Request};

/// The body of `POST /api/v1/translate` and the fields of the translate form.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct TranslateInput {
    /// The input: in SMILES mode all reactants and reagents as SMILES,
    /// separated by `.` (any valid spelling; it is canonicalized), in text
    /// mode the text to translate. Not blank.
    pub text: String,
    /// Beam width (default 5). A whole number; `5.0` is read as 5.
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(value_type = Option<u32>)]
    pub beam: Option<u32>,
    /// How many of the best results to return (default 5, at most the beam).
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(value_type = Option<u32>)]
    pub n_best: Option<u32>,
    /// Return each result's attention matrix (default true).
    pub attention: Option<bool>,
    /// The expected answer, to see at which rank the model finds it.
    pub target: Option<String>,
    /// SMILES mode: predictions that are the same molecule become one, their
    /// probabilities summed.
    pub fold_duplicates: Option<bool>,
    /// `false`: ask the model even if the result cache holds the answer (as
    /// `Cache-Control: no-cache` does).
    pub cache: Option<bool>,
}

/// A whole number that JSON may write as `5` or `5.0` (JSON Schema's
/// `integer` allows both), within `u32`; `null` is absent.
pub fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    use serde::de::Error;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(u) = n.as_u64() {
        return u32::try_from(u).map(Some).map_err(|_| D::Error::custom(format!("{n} is too large")));
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&f) => Ok(Some(f as u32)),
        _ => Err(D::Error::custom(format!("expected a whole number from 0, got {n}"))),
    }
}

/// The answer of `POST /api/v1/translate`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TranslationView {
    /// The input as given.
    pub input: String,
    /// The input as the model read it (SMILES mode: RDKit's canonical form).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canonical: Option<String>,
    /// The input's tokens, as the model saw them.
    #[schema(value_type = Vec<String>)]
    pub tokens: Tokens,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetView>,
    pub predictions: Vec<PredictionView>,
    /// Attention was asked for but left out: it would exceed MAX_ATTENTION_CELLS.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub attention_omitted: bool,
    /// Why attention was left out, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attention_omitted_reason: Option<String>,
    /// Answered from the result cache, without an invocation.
    pub cached: bool,
    /// Time spent on this request in the service, in milliseconds.
    pub elapsed_ms: f64,
}

/// Why attention is left out of a response, or `None` when `cells` fits.
pub fn attention_over_budget(cells: usize, budget: usize) -> Option<String> {
    (cells > budget).then(|| {
        format!(
            "this answer has {} attention weights, more than the {} this server sends; ask for fewer results \
             or a shorter input to see them",
            super::words::thousands(cells),
            super::words::thousands(budget)
        )
    })
}

/// Attention weights in an answer: rows x columns of every matrix.
pub fn attention_cells(predictions: &[PredictionView]) -> usize {
    predictions.iter().filter_map(|p| p.attention.as_ref()).map(|m| m.rows() * m.cols()).sum()
}

/// The expected answer and where the model found it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TargetView {
    /// The target as given.
    pub text: String,
    /// SMILES mode: its canonical form.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canonical: Option<String>,
    /// The rank of the first prediction that is the target, if any.
    pub correct_rank: Option<usize>,
}

/// One result of the n-best list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PredictionView {
    /// 1 for the best.
    #[schema(minimum = 1)]
    pub rank: usize,
    /// The result, its tokens joined.
    pub text: String,
    #[schema(value_type = Vec<String>)]
    pub tokens: Tokens,
    /// The model's log-probability of this result.
    pub score: f64,
    /// `exp(score)`, from 0 to 1.
    #[schema(minimum = 0, maximum = 1)]
    pub probability: f64,
    /// SMILES mode only: the canonical SMILES, or `null` when the prediction is
    /// not a molecule. Absent in text mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub canonical: Option<Option<String>>,
    /// SMILES mode: why `canonical` is null without RDKit's verdict (the
    /// prediction has more atoms than this server reads, `MAX_ATOMS`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_canonicalized: Option<String>,
    /// When duplicates were folded into this prediction: the ranks (in the
    /// model's own order) of every prediction it stands for, its own first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_ranks: Option<Vec<usize>>,
    /// Result tokens x input tokens, each row adding up to 1; weights with
    /// 4 decimals (see [`super::json`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Vec<f32>>>)]
    pub attention: Option<Matrix>,
}

/// Folds predictions that are the same molecule (equal canonical SMILES) into
/// the best-ranked of them: probabilities summed, `score` its logarithm, the
/// others' ranks in `merged_ranks`, ranks renumbered. Predictions that are not
/// molecules, and all predictions in text mode, stay as they are.
pub fn fold_duplicates(predictions: Vec<PredictionView>) -> Vec<PredictionView> {
    let mut out: Vec<PredictionView> = Vec::with_capacity(predictions.len());
    for p in predictions {
        let same = match &p.canonical {
            Some(Some(c)) => out.iter_mut().find(|q| matches!(&q.canonical, Some(Some(d)) if d == c)),
            _ => None,
        };
        match same {
            Some(q) => {
                // A probability, whatever the model's scores add up to (the
                // demo's n-best lists, a miscalibrated model): at most 1.
                q.probability = (q.probability + p.probability).min(1.0);
                q.score = q.probability.ln();
                q.merged_ranks.get_or_insert_with(|| vec![q.rank]).push(p.rank);
            }
            None => out.push(p),
        }
    }
    for (i, p) in out.iter_mut().enumerate() {
        p.rank = i + 1;
    }
    out
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
fn check_text(state: &AppState, text: &str, what: &str) -> Result<(), ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::invalid_input(format!("{what} is empty")));
    }
    let max = state.config.max_input_chars;
    let chars = text.chars().count();
    if chars > max {
        return Err(ApiError::too_large(format!("{what} has {chars} characters; the limit is {max}")));
    }
    Ok(())
}

/// How texts are read and predictions shown: what [`view`] needs of the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    pub tokenizer: Tokenizer,
    pub format: InputFormat,
}

impl AppState {
    pub fn reading(&self) -> Reading {
        Reading { tokenizer: self.tokenizer, format: self.config.input_format }
    }
}

/// An input or target as the model reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// SMILES mode: the canonical SMILES the tokens were made from.
    pub canonical: Option<String>,
    pub tokenized: String,
}

/// Checks one input (or target) and turns it into the model's tokens: in SMILES
/// mode through RDKit's canonical form, so a molecule written any valid way
/// reaches the model as it was trained. `what` names it in errors ("text",
/// "target", "input 3").
pub fn prepare(state: &AppState, text: &str, what: &str) -> Result<Prepared, ApiError> {
    check_text(state, text, what)?;
    let canonical = match state.config.input_format {
        InputFormat::Text => None,
        InputFormat::Smiles => {
            if let Some(atoms) = chem::too_many_atoms(text) {
                return Err(ApiError::too_large(format!(
                    "{what} has {atoms} atoms; the limit is {} (MAX_ATOMS)",
                    chem::max_atoms()
                )));
            }
            Some(chem::prepare(text).map_err(|e| ApiError::invalid_input(format!("{what} '{}' {e}", shorten(text))))?)
        }
    };
    let tokenized = state.tokenizer.tokenize(canonical.as_deref().unwrap_or(text));
    if tokenized.trim().is_empty() {
        return Err(ApiError::invalid_input(format!("{what} has nothing to translate once tokenized")));
    }
    Ok(Prepared { canonical, tokenized })
}

/// A text for an error message: trimmed, at most 80 characters.
fn shorten(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// What a prediction is compared with a target by: the canonical SMILES (an
/// invalid prediction matches nothing), or in text mode the text with its
/// whitespace normalized the way the tokenizer sees it.
pub fn answer_key<'a>(p: &'a PredictionView, state: &AppState) -> Option<std::borrow::Cow<'a, str>> {
    match &p.canonical {
        Some(canonical) => canonical.as_deref().map(std::borrow::Cow::Borrowed),
        None => Some(std::borrow::Cow::Owned(normalize(state.tokenizer, &p.text))),
    }
}

/// The key of a prepared target (see [`answer_key`]).
pub fn target_key(state: &AppState, target: &str, prepared: &Prepared) -> String {
    match &prepared.canonical {
        Some(c) => c.clone(),
        None => normalize(state.tokenizer, target),
    }
}

/// Compared after trimming and normalizing whitespace the way the tokenizer
/// does, so `the  cat` and `the cat` match under `whitespace`.
fn normalize(tokenizer: Tokenizer, text: &str) -> String {
    tokenizer.detokenize(&tokenizer.tokenize(text.trim())).split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The rank of the first prediction whose key is `key`.
pub fn correct_rank(state: &AppState, predictions: &[PredictionView], key: &str) -> Option<usize> {
    predictions.iter().find(|p| answer_key(p, state).as_deref() == Some(key)).map(|p| p.rank)
}

/// Whether preparing these texts needs no RDKit work now.
fn preparation_is_cheap(state: &AppState, texts: &[&str]) -> bool {
    state.config.input_format == InputFormat::Text || texts.iter().all(|t| chem::prepared_already(t))
}

/// Whether the view of these hypotheses needs no RDKit work now.
fn view_is_cheap(state: &AppState, hypotheses: &[Hypothesis]) -> bool {
    state.config.input_format == InputFormat::Text
        || hypotheses.iter().all(|h| chem::canonical_already(&state.tokenizer.detokenize(&h.tokens)))
}

/// Runs `f` now when it is cheap (text mode, or RDKit's answers remembered),
/// else on the chemistry threads at this client's turn (`chem::pool`): the
/// async workers keep serving, and no thread is made for the occasion. When
/// the pool's queue is full the request is told the server is busy.
async fn chemistry<T: Send + 'static>(
    state: &AppState,
    cheap: bool,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    if cheap {
        return Ok(f());
    }
    state.chemistry.run(super::error::client(), pool::Admission::FailFast, f).await.map_err(|e| match e {
        PoolError::Busy => {
            ApiError::busy("the server has too much chemistry waiting; try again shortly", Duration::from_secs(1))
        }
        PoolError::Failed => ApiError::internal("the chemistry of this request failed"),
    })
}

/// Validates, translates one text, and builds its view. Also returns the Lambda
/// request id for the log.
pub async fn predict(
    state: &Arc<AppState>,
    input: TranslateInput,
) -> Result<(TranslationView, Option<String>), ApiError> {
    let started = Instant::now();
    let mut params = params(state, input.beam, input.n_best, input.attention.unwrap_or(true))?;
    let target = input.target.as_deref().filter(|t| !t.trim().is_empty());
    let texts: Vec<&str> = std::iter::once(input.text.as_str()).chain(target).collect();
    let cheap = preparation_is_cheap(state, &texts);
    let (job_state, text, job_target) = (state.clone(), input.text.clone(), target.map(String::from));
    let (prepared, target_prepared) = chemistry(state, cheap, move || {
        let prepared = prepare(&job_state, &text, "text")?;
        let target = job_target.map(|t| prepare(&job_state, &t, "target")).transpose()?;
        Ok::<_, ApiError>((prepared, target))
    })
    .await??;
    // The output's length is unknown before the answer: estimate it as the
    // input's (products are rarely longer than their reactants), and do not
    // even ask for attention that would not fit.
    let budget = state.config.max_attention_cells;
    let source_tokens = crate::inference::tokenize::split_tokens(&prepared.tokenized).len();
    let mut omitted = None;
    if params.attention {
        omitted = attention_over_budget(source_tokens * source_tokens * params.n_best as usize, budget);
        params.attention = omitted.is_none();
    }
    let request = Request {
        inputs: vec![prepared.tokenized.clone()],
        params,
        deadline: started + state.config.lambda_timeout,
        admission: Admission::FailFast,
        cache: if input.cache == Some(false) { CacheUse::Bypass } else { CacheUse::Use },
        request_ids: super::error::REQUEST_ID.try_with(Clone::clone).into_iter().collect(),
    };
    let invocation = state.translator.invoke(request).await?;
    let cached = invocation.was_cached(0);
    let hypotheses = invocation.results.into_iter().next().unwrap_or_default();
    let cheap = view_is_cheap(state, &hypotheses);
    let reading = state.reading();
    let text = input.text;
    let mut view = chemistry(state, cheap, move || view(reading, text, prepared, hypotheses, started)).await?;
    if omitted.is_none() {
        omitted = attention_over_budget(attention_cells(&view.predictions), budget);
        if omitted.is_some() {
            view.predictions.iter_mut().for_each(|p| p.attention = None);
        }
    }
    view.attention_omitted = omitted.is_some();
    view.attention_omitted_reason = omitted;
    view.cached = cached;
    if input.fold_duplicates == Some(true) {
        view.predictions = fold_duplicates(view.predictions);
    }
    if let (Some(text), Some(prepared)) = (target, target_prepared) {
        let key = target_key(state, text, &prepared);
        let correct_rank = correct_rank(state, &view.predictions, &key);
        view.target = Some(TargetView { text: text.to_string(), canonical: prepared.canonical, correct_rank });
    }
    Ok((view, invocation.request_id))
}

/// Builds the view of one input's n-best list: predictions detokenized and, in
/// SMILES mode, canonicalized; attention cut to the real token counts (the
/// function pads rows and columns to the longest in a batch).
pub fn view(
    reading: Reading,
    input: String,
    prepared: Prepared,
    hypotheses: Vec<Hypothesis>,
    started: Instant,
) -> TranslationView {
    let tokenizer = reading.tokenizer;
    let smiles = reading.format == InputFormat::Smiles;
    let source = Tokens::new(prepared.tokenized);
    let source_len = source.len();
    let predictions = hypotheses
        .into_iter()
        .enumerate()
        .map(|(i, h)| {
            let text = tokenizer.detokenize(&h.tokens);
            let canonical = smiles.then(|| chem::canonical(&text));
            let not_canonicalized = match &canonical {
                Some(chem::Canonical::TooLarge { atoms }) => Some(format!(
                    "{atoms} atoms, more than the {} this server reads: shown as the model wrote it",
                    chem::max_atoms()
                )),
                Some(chem::Canonical::OutOfTime) => Some(format!(
                    "the chemistry time of one request ({:?}) ran out before this prediction was read: shown as the \
                     model wrote it",
                    chem::budget()
                )),
                _ => None,
            };
            let canonical = canonical.map(chem::Canonical::smiles);
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
                probability: crate::inference::answer::probability(h.score),
                canonical,
                not_canonicalized,
                merged_ranks: None,
                attention,
            }
        })
        .collect();
    TranslationView {
        input,
        canonical: prepared.canonical,
        tokens: source,
        target: None,
        predictions,
        attention_omitted: false,
        attention_omitted_reason: None,
        cached: false,
        elapsed_ms: (started.elapsed().as_secs_f64() * 1e4).round() / 10.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prediction(rank: usize, canonical: Option<Option<&str>>, probability: f64) -> PredictionView {
        PredictionView {
            rank,
            text: format!("p{rank}"),
            tokens: Tokens::default(),
            score: probability.ln(),
            probability,
            canonical: canonical.map(|c| c.map(String::from)),
            not_canonicalized: None,
            merged_ranks: None,
            attention: None,
        }
    }

    #[test]
    fn folding_sums_the_same_molecule_into_its_best_rank() {
        let folded = fold_duplicates(vec![
            prediction(1, Some(Some("CCO")), 0.5),
            prediction(2, Some(None), 0.2),
            prediction(3, Some(Some("CCO")), 0.1),
            prediction(4, Some(None), 0.05),
            prediction(5, Some(Some("CO")), 0.04),
        ]);
        let summary: Vec<(usize, &str, f64)> =
            folded.iter().map(|p| (p.rank, p.text.as_str(), (p.probability * 100.0).round())).collect();
        assert_eq!(summary, [(1, "p1", 60.0), (2, "p2", 20.0), (3, "p4", 5.0), (4, "p5", 4.0)]);
        assert_eq!(folded[0].merged_ranks, Some(vec![1, 3]));
        assert!((folded[0].score - 0.6f64.ln()).abs() < 1e-12);
        assert_eq!(folded[1].merged_ranks, None, "invalid predictions never fold");
    }

    /// Found by schemathesis: the demo's scores of one molecule added up to
    /// more than 1 (probability 1.54, score 0.43).
    #[test]
    fn folded_probabilities_stay_probabilities() {
        let folded = fold_duplicates(vec![
            prediction(1, Some(Some("O")), 0.9),
            prediction(2, Some(Some("O")), 0.4),
            prediction(3, Some(Some("O")), 0.3),
        ]);
        assert_eq!((folded.len(), folded[0].probability, folded[0].score), (1, 1.0, 0.0));
    }

    #[test]
    fn a_prediction_past_the_atom_bound_is_shown_as_written_and_marked() {
        let reading = Reading { tokenizer: Tokenizer::Chars, format: InputFormat::Smiles };
        let huge = vec!["C"; chem::DEFAULT_MAX_ATOMS + 50].join(" ");
        let hypotheses = vec![
            Hypothesis { tokens: "C C O".into(), score: -0.1, attention: None },
            Hypothesis { tokens: huge, score: -0.2, attention: None },
        ];
        let prepared = Prepared { canonical: Some("CCO".into()), tokenized: "C C O".into() };
        let v = view(reading, "CCO".into(), prepared, hypotheses, Instant::now());
        assert_eq!(v.predictions[0].canonical, Some(Some("CCO".into())));
        assert_eq!(v.predictions[0].not_canonicalized, None);
        assert_eq!(v.predictions[1].canonical, Some(None));
        assert!(v.predictions[1].not_canonicalized.as_deref().unwrap().starts_with("250 atoms, more than the 200"));
        assert_eq!(v.predictions[1].text.len(), 250, "shown as the model wrote it");
    }

    #[test]
    fn past_the_chemistry_budget_predictions_are_shown_as_written_and_marked() {
        // The budget is the process's: measured in a process of its own.
        if !crate::testing::alone(
            "http::prediction::tests::past_the_chemistry_budget_predictions_are_shown_as_written_and_marked",
        ) {
            return;
        }
        chem::set_budget(std::time::Duration::ZERO);
        let reading = Reading { tokenizer: Tokenizer::Chars, format: InputFormat::Smiles };
        let hypotheses = vec![Hypothesis { tokens: "C C C C O C C N".into(), score: -0.1, attention: None }];
        let prepared = Prepared { canonical: Some("CCO".into()), tokenized: "C C O".into() };
        let v = chem::within_budget(|| view(reading, "CCO".into(), prepared, hypotheses, Instant::now()));
        assert_eq!(v.predictions[0].canonical, Some(None));
        let why = v.predictions[0].not_canonicalized.as_deref().unwrap();
        assert!(why.starts_with("the chemistry time of one request (0ns) ran out"), "{why}");
        assert_eq!(v.predictions[0].text, "CCCCOCCN", "shown as the model wrote it");
    }

    #[test]
    fn text_mode_never_folds() {
        let folded = fold_duplicates(vec![prediction(1, None, 0.5), prediction(2, None, 0.5)]);
        assert_eq!(folded.len(), 2);
    }
}
