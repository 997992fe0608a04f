//! The codec alone, without sockets or the machine's noise: how long reading a
//! coalesced Lambda answer and writing one translate response take per request.
//!
//!   cargo run --release --example codec-bench [-- ITERATIONS] [--molecules]
//!
//! The answer is what the emulator sends for a group of 11 inputs (the group
//! size the benchmark sees at saturation) of 16 characters, beam 5, n_best 5,
//! attention on: the demo model's weights as shortest f32 texts, gzipped, base64.
//! With `--molecules` the inputs are the load generator's distinct molecules
//! instead (canonical, ~30 characters, as a load test sends them): 64 groups of
//! 11, read in turn, since one group's cost depends on its longest molecule
//! (every matrix is padded to it) and one group is no sample of a load test's.
//! RDKit's own work per request is timed too: preparing the input and
//! canonicalizing its five predictions, each molecule once (as distinct inputs
//! are). The response is built in text mode: RDKit's canonicalization of
//! predictions (SMILES mode) is chemistry, not codec, and is measured apart.

use std::hint::black_box;
use std::time::Instant;

use translation_front::config::InputFormat;
use translation_front::inference::protocol::{self, ResultBody};
use translation_front::translate::{Prepared, Reading};
use translation_front::translate::{json, view};

#[path = "../tests/support/wire.rs"]
mod wire;
use translation_front::chem;
use translation_front::inference::tokenize::Tokenizer;
use translation_front::inference::{Hypothesis, Params, demo};
use translation_front::loadtest::molecules::molecule;

const GROUP: usize = 11;
/// Groups of distinct molecules (`--molecules`), from molecule `FIRST_MOLECULE`.
const GROUPS: usize = 64;
const FIRST_MOLECULE: u64 = 1_000;

/// One coalesced group: its inputs (tokenized), the function's answer, and
/// that answer as sent (enveloped).
struct Group {
    inputs: Vec<String>,
    body: ResultBody,
    payload: Vec<u8>,
}

/// The answer the emulator sends for `inputs`: columns padded to the group's
/// longest input, as the function sends them (inputs of different lengths
/// make every matrix as wide as the longest, and the reader reads the padding
/// too).
fn group(inputs: Vec<String>, params: Params) -> Group {
    let all: Vec<_> = inputs.iter().map(|i| demo::hypotheses(i, params)).collect();
    let width = inputs.iter().map(|i| i.split_whitespace().count()).max().unwrap_or(0);
    let padded = |h: &Hypothesis| wire::with_cols(h.attention.as_ref().expect("attention"), width);
    let body = ResultBody {
        predictions: all.iter().map(|h| h.iter().map(|x| x.tokens.clone()).collect()).collect(),
        scores: all.iter().map(|h| h.iter().map(|x| x.score).collect()).collect(),
        attention: Some(all.iter().map(|h| Some(h.iter().map(padded).collect())).collect()),
    };
    let payload = wire::encode_envelope(&serde_json::to_vec(&body).expect("serializes"));
    Group { inputs, body, payload }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let iterations: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(2_000);
    let molecules = args.iter().any(|a| a == "--molecules");
    let params = Params { beam: 5, n_best: 5, attention: true };
    if molecules {
        chemistry(params);
    }
    let groups: Vec<Group> = match molecules {
        true => (0..GROUPS)
            .map(|g| {
                let first = FIRST_MOLECULE + (g * GROUP) as u64;
                let canonical = |k: u64| chem::prepare(&molecule(k)).expect("a molecule");
                group((first..first + GROUP as u64).map(|k| Tokenizer::Chars.tokenize(&canonical(k))).collect(), params)
            })
            .collect(),
        false => vec![group(
            (0..GROUP).map(|i| Tokenizer::Chars.tokenize(&format!("CC(=O)Oc1ccccc{}", i % 10))).collect(),
            params,
        )],
    };
    let body = &groups[0].body;
    let mean_bytes = groups.iter().map(|g| g.payload.len()).sum::<usize>() / groups.len();
    println!("answer for {GROUP} inputs: {mean_bytes} bytes on the wire (mean of {} groups)", groups.len());

    // The reader alone against serde_json, on the answer's JSON (no envelope).
    let json = serde_json::to_vec(body).expect("serializes");
    let (mut ours_ns, mut serde_ns) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        let started = Instant::now();
        for _ in 0..iterations {
            black_box(protocol::read_result(black_box(&json), true).expect("reads"));
        }
        ours_ns.push(started.elapsed().as_nanos() as f64 / iterations as f64);
        let started = Instant::now();
        for _ in 0..iterations {
            black_box(serde_json::from_slice::<ResultBody>(black_box(&json)).expect("reads"));
        }
        serde_ns.push(started.elapsed().as_nanos() as f64 / iterations as f64);
    }

    // Each group's answer read in turn, and each member's response written,
    // as the service meets them.
    let rounds = (iterations / groups.len()).max(1);
    let requests = (rounds * groups.len() * GROUP) as f64;
    let mut decode_ns = Vec::new();
    let mut write_ns = Vec::new();
    let mut response_bytes = 0;
    for _ in 0..7 {
        let started = Instant::now();
        for _ in 0..rounds {
            for g in &groups {
                black_box(protocol::decode_result(black_box(&g.payload), GROUP, 5, true).expect("decodes"));
            }
        }
        decode_ns.push(started.elapsed().as_nanos() as f64 / requests);

        let results: Vec<_> =
            groups.iter().map(|g| protocol::decode_result(&g.payload, GROUP, 5, true).expect("decodes")).collect();
        let (mut bytes, started) = (0, Instant::now());
        for _ in 0..rounds {
            for (g, results) in groups.iter().zip(&results) {
                for (input, result) in g.inputs.iter().zip(results) {
                    let view = view::view(
                        Reading { tokenizer: Tokenizer::Chars, format: InputFormat::Text },
                        Tokenizer::Chars.detokenize(input),
                        Prepared { canonical: None, tokenized: input.clone() },
                        result.clone(),
                        tokio::time::Instant::now(),
                    );
                    let mut out = Vec::with_capacity(4096);
                    json::write(&mut out, &view);
                    bytes += out.len();
                    black_box(out);
                }
            }
        }
        write_ns.push(started.elapsed().as_nanos() as f64 / requests);
        response_bytes = bytes / (rounds * groups.len() * GROUP);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2] / 1000.0
    };
    println!("reading the answer's JSON ({} bytes, {GROUP} inputs), median of 7 rounds:", json.len());
    let (ours, theirs) = (median(&mut ours_ns), median(&mut serde_ns));
    println!("  the one-pass reader            {ours:8.1} us");
    println!("  serde_json into the same types {theirs:8.1} us ({:.1}x)", theirs / ours);
    println!("response: {response_bytes} bytes (mean)");
    println!("per request, median of 7 rounds:");
    println!("  read its share of the answer   {:6.1} us", median(&mut decode_ns));
    println!("  build and write its response   {:6.1} us (includes cloning its hypotheses)", median(&mut write_ns));
}

/// RDKit's work for one request of a distinct molecule, alone: its input
/// prepared (parsed, stereo removed, canonical) and its five predictions
/// canonicalized, as the service does; each molecule once, as distinct
/// inputs are, far from the indices a load test starts at.
fn chemistry(params: Params) {
    const N: u64 = 2_000;
    const FIRST: u64 = 5_000_000;
    let predictions: Vec<Vec<String>> = (FIRST..FIRST + N)
        .map(|k| {
            let canonical = chem::prepare(&molecule(k)).expect("a molecule");
            let hypotheses = demo::hypotheses(&Tokenizer::Chars.tokenize(&canonical), params);
            hypotheses.iter().map(|h| Tokenizer::Chars.detokenize(&h.tokens)).collect()
        })
        .collect();
    // The preparation above filled the memo of inputs: time fresh ones.
    let inputs: Vec<String> = (FIRST + N..FIRST + 2 * N).map(molecule).collect();
    let started = Instant::now();
    for (input, predicted) in inputs.iter().zip(&predictions) {
        black_box(chem::prepare(black_box(input)).expect("a molecule"));
        for p in predicted {
            black_box(chem::canonical(black_box(p)));
        }
    }
    let per_request = started.elapsed().as_nanos() as f64 / N as f64 / 1000.0;
    println!("chemistry per request, {N} distinct molecules each once:");
    println!("  RDKit for its input and predictions {per_request:6.1} us");
}
