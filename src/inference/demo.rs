//! The built-in demo backend: deterministic, in-process, no AWS account needed.
//!
//! It "translates" by rearranging the input tokens (as is, reversed, rotated), so
//! its n-best lists, scores and attention matrices have the shapes of the real
//! model's and its heatmaps show clear, explainable patterns.

use tokio::time::Instant;

use super::protocol::Matrix;
use super::tokenize::split_tokens;
use super::{BoxFuture, Hypothesis, InferenceError, Invocation, Params, Request, Translator};

pub struct DemoBackend;

impl Translator for DemoBackend {
    fn translate(&self, request: Request) -> BoxFuture<'_, Result<Invocation, InferenceError>> {
        let results = request.inputs.iter().map(|input| hypotheses(input, request.params)).collect();
        Box::pin(async move { Ok(Invocation { results, request_id: None }) })
    }

    fn warmup(&self, _deadline: Instant) -> BoxFuture<'_, Result<(), InferenceError>> {
        Box::pin(async { Ok(()) })
    }

    fn backend(&self) -> &'static str {
        "demo"
    }
}

/// The demo's n-best list for one tokenized input.
pub fn hypotheses(tokenized: &str, params: Params) -> Vec<Hypothesis> {
    let source = split_tokens(tokenized);
    let n = source.len();
    let seed = fnv1a(tokenized.as_bytes());
    (0..params.n_best as usize)
        .map(|rank| {
            // Where target position t takes its token from, for this rank.
            let align = |t: usize| match rank {
                0 => t,
                1 => n - 1 - t,
                k => (t + k - 1) % n,
            };
            let tokens: Vec<&str> = (0..n).map(|t| source[align(t)]).collect();
            // Strictly decreasing: each rank costs 0.9 nats plus a jitter below 0.5.
            let jitter = ((seed.rotate_left(rank as u32 * 7) % 1000) as f64) / 2000.0;
            let score = -(0.03 + 0.9 * rank as f64 + jitter * (rank as f64 + 0.1));
            // Four decimals, as the real function rounds its scores.
            let score = (score * 1e4).round() / 1e4;
            let attention = params.attention.then(|| {
                let rows: Vec<Vec<f32>> = (0..n)
                    .map(|t| {
                        let focus = align(t) as f32;
                        let row: Vec<f32> = (0..n).map(|s| (-2.0 * (s as f32 - focus).abs()).exp()).collect();
                        let sum: f32 = row.iter().sum();
                        row.into_iter().map(|w| w / sum).collect()
                    })
                    .collect();
                Matrix::from_rows(&rows)
            });
            Hypothesis { tokens: tokens.join(" "), score, attention }
        })
        .collect()
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARAMS: Params = Params { beam: 5, n_best: 3, attention: true };

    #[test]
    fn gives_n_best_ranked_hypotheses_with_square_attention() {
        let h = hypotheses("C C ( = O ) O", PARAMS);
        assert_eq!(h.len(), 3);
        assert_eq!(h[0].tokens, "C C ( = O ) O");
        assert_eq!(h[1].tokens, "O ) O = ( C C");
        assert!(h[0].score > h[1].score && h[1].score > h[2].score);
        assert!(h.iter().all(|x| x.score < 0.0));
        for x in &h {
            let a = x.attention.as_ref().unwrap();
            assert_eq!((a.rows(), a.cols()), (7, 7));
            for row in a.iter_rows() {
                assert_eq!(row.len(), 7);
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn is_deterministic_and_honours_attention_off() {
        let p = Params { attention: false, ..PARAMS };
        assert_eq!(hypotheses("a b c", p), hypotheses("a b c", p));
        assert!(hypotheses("a b c", p).iter().all(|x| x.attention.is_none()));
    }

    #[test]
    fn empty_input_gives_empty_hypotheses_not_a_panic() {
        let h = hypotheses("", PARAMS);
        assert_eq!(h.len(), 3);
        assert!(h.iter().all(|x| x.tokens.is_empty()));
    }
}
