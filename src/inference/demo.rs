//! The built-in demo backend: deterministic, in-process, no AWS account needed.
//!
//! It "translates" by copying parts of the input: for a mixture of molecules
//! (SMILES components joined by `.`) the largest component first, as a
//! reaction's product often resembles it, then the whole mixture and the other
//! components; then the input reversed and rotated, which are rarely valid
//! SMILES. So its answers are real molecules with some invalid ones among them,
//! its n-best lists, scores and attention matrices have the shapes of the real
//! model's, and its heatmaps show clear, explainable patterns.

use tokio::time::Instant;

use super::protocol::Matrix;
use super::tokenize::split_tokens;
use super::{BoxFuture, Hypothesis, InferenceError, Invocation, Params, Request, Translator};

pub struct DemoBackend;

impl Translator for DemoBackend {
    fn invoke(&self, request: Request) -> BoxFuture<'_, Result<Invocation, InferenceError>> {
        let results = request.inputs.iter().map(|input| hypotheses(input, request.params)).collect();
        Box::pin(async move { Ok(Invocation { results, request_id: None, cached: Vec::new() }) })
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
    variants(&source, params.n_best as usize)
        .into_iter()
        .enumerate()
        .map(|(rank, align)| {
            let tokens: Vec<&str> = align.iter().map(|&i| source[i]).collect();
            // Strictly decreasing: each rank costs 0.9 nats plus a jitter below 0.5.
            let jitter = ((seed.rotate_left(rank as u32 * 7) % 1000) as f64) / 2000.0;
            let score = -(0.03 + 0.9 * rank as f64 + jitter * (rank as f64 + 0.1));
            // Four decimals, as the real function rounds its scores.
            let score = (score * 1e4).round() / 1e4;
            let attention = params.attention.then(|| {
                let rows: Vec<Vec<f32>> = align
                    .iter()
                    .map(|&focus| {
                        let row: Vec<f32> = (0..n).map(|s| (-2.0 * (s as f32 - focus as f32).abs()).exp()).collect();
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

/// For each rank, the source position each target token copies.
fn variants(source: &[&str], n_best: usize) -> Vec<Vec<usize>> {
    let n = source.len();
    let mut parts: Vec<std::ops::Range<usize>> = Vec::new();
    let mut start = 0;
    for (i, t) in source.iter().enumerate().chain(std::iter::once((n, &"."))) {
        if *t == "." {
            if i > start {
                parts.push(start..i);
            }
            start = i + 1;
        }
    }
    let mut out: Vec<Vec<usize>> = Vec::with_capacity(n_best);
    if parts.len() > 1 {
        // Largest first; a stable sort keeps equal sizes in input order.
        parts.sort_by_key(|p| std::cmp::Reverse(p.len()));
        out.push(parts[0].clone().collect());
        out.push((0..n).collect());
        out.extend(parts[1..].iter().map(|p| p.clone().collect()));
    } else {
        out.push((0..n).collect());
    }
    let mut k = 1;
    while out.len() < n_best {
        out.push(match k {
            1 => (0..n).rev().collect(),
            _ => (0..n).map(|t| (t + k - 1) % n).collect(),
        });
        k += 1;
    }
    out.truncate(n_best);
    out
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
    fn a_mixture_gives_its_largest_component_first_then_the_whole_and_the_rest() {
        let p = Params { beam: 5, n_best: 5, attention: true };
        let h = hypotheses("C C O . c 1 c c c c c 1 . O", p);
        let tokens: Vec<&str> = h.iter().map(|x| x.tokens.as_str()).collect();
        assert_eq!(tokens[..4], ["c 1 c c c c c 1", "C C O . c 1 c c c c c 1 . O", "C C O", "O"]);
        assert_eq!(tokens[4], "O . 1 c c c c c 1 c . O C C");
        // The largest component's attention looks at its own place in the input.
        let a = h[0].attention.as_ref().unwrap();
        assert_eq!((a.rows(), a.cols()), (8, 14));
        let first = a.iter_rows().next().unwrap();
        let argmax = first.iter().enumerate().max_by(|x, y| x.1.total_cmp(y.1)).unwrap().0;
        assert_eq!(argmax, 4);
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
