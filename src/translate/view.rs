//! What a translation shows: the n-best list detokenized, canonicalized (SMILES
//! mode), with probabilities, attention cut to the real token counts, folded
//! and matched against a target. One [`view`] and one [`finish`] for a single
//! translation and for every row of a batch.

use std::borrow::Cow;

use serde::Serialize;
use tokio::time::Instant;
use utoipa::ToSchema;

use super::Reading;
use super::request::Prepared;
use crate::chem;
use crate::config::InputFormat;
use crate::inference::Hypothesis;
use crate::inference::Matrix;
use crate::inference::tokenize::{Tokenizer, Tokens};

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
    /// What the reader should know about how the input was read (SMILES
    /// mode: stereochemistry removed), in words.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
    /// Answered from the result cache, without an invocation.
    pub cached: bool,
    /// Time spent on this request in the service, in milliseconds.
    pub elapsed_ms: f64,
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
    /// 4 decimals (see `http::json`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Vec<f32>>>)]
    pub attention: Option<Matrix>,
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

/// What a prediction is compared with a target by: the canonical SMILES (an
/// invalid prediction matches nothing), or in text mode the text with its
/// whitespace normalized the way the tokenizer sees it.
pub fn answer_key(tokenizer: Tokenizer, p: &PredictionView) -> Option<Cow<'_, str>> {
    match &p.canonical {
        Some(canonical) => canonical.as_deref().map(Cow::Borrowed),
        None => Some(Cow::Owned(normalize(tokenizer, &p.text))),
    }
}

/// The key of a prepared target (see [`answer_key`]).
pub fn target_key(tokenizer: Tokenizer, target: &str, prepared: &Prepared) -> String {
    match &prepared.canonical {
        Some(c) => c.clone(),
        None => normalize(tokenizer, target),
    }
}

/// Compared after trimming and normalizing whitespace the way the tokenizer
/// does, so `the  cat` and `the cat` match under `whitespace`.
fn normalize(tokenizer: Tokenizer, text: &str) -> String {
    tokenizer.detokenize(&tokenizer.tokenize(text.trim())).split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The rank of the first prediction whose key is `key`.
pub fn correct_rank(tokenizer: Tokenizer, predictions: &[PredictionView], key: &str) -> Option<usize> {
    predictions.iter().find(|p| answer_key(tokenizer, p).as_deref() == Some(key)).map(|p| p.rank)
}

/// Whether the view of these hypotheses needs no RDKit work now.
pub fn view_is_cheap(reading: Reading, hypotheses: &[Hypothesis]) -> bool {
    reading.format == InputFormat::Text
        || hypotheses.iter().all(|h| chem::canonical_already(&reading.tokenizer.detokenize(&h.tokens)))
}

/// Builds the view of one input's n-best list: predictions detokenized and, in
/// SMILES mode, canonicalized; attention cut to the real token counts (the
/// function pads rows and columns to the longest in a batch). RDKit work: on
/// the chemistry threads unless [`view_is_cheap`].
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
        notices: Vec::new(),
        cached: false,
        elapsed_ms: (started.elapsed().as_secs_f64() * 1e4).round() / 10.0,
    }
}

/// The steps after [`view`] that a single translation and a batch row share:
/// attention left out past `attention_budget` (unless already left out),
/// duplicates folded when asked, and the rank at which the target (its key)
/// was found. Returns that rank.
pub fn finish(
    tokenizer: Tokenizer,
    view: &mut TranslationView,
    attention_budget: usize,
    fold: bool,
    target_key: Option<&str>,
) -> Option<usize> {
    if !view.attention_omitted
        && let Some(why) = attention_over_budget(attention_cells(&view.predictions), attention_budget)
    {
        view.predictions.iter_mut().for_each(|p| p.attention = None);
        view.attention_omitted = true;
        view.attention_omitted_reason = Some(why);
    }
    if fold {
        view.predictions = fold_duplicates(std::mem::take(&mut view.predictions));
    }
    target_key.and_then(|key| correct_rank(tokenizer, &view.predictions, key))
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
            "translate::view::tests::past_the_chemistry_budget_predictions_are_shown_as_written_and_marked",
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
