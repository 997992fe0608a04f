//! Bulk translation: cutting a list of inputs into chunks the Lambda can take,
//! and invoking them with bounded concurrency, results in input order.
//!
//! Chunks are contiguous ranges of rows, so results can be emitted in input
//! order; rows that failed validation ride along in their range and are never
//! sent.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Admission, CacheUse, Hypothesis, InferenceError, Params, Request, Translator};

/// Stay well under Lambda's 6 MB synchronous limit, for the event and for the
/// expected answer alike (a gzipped body grows by a third in base64).
pub const MAX_CHUNK_BYTES: usize = 3 << 20;

/// Inputs per invocation by beam, as the existing client sized them; a wider beam
/// costs the model more per input, so fewer go together.
const CHUNK_TABLE: [(u32, usize); 4] = [(1, 100), (2, 80), (3, 60), (5, 50)];

/// Inputs per chunk for a beam width: the table, linear between its points, and
/// `250 / beam` past its end (never below 5).
pub fn chunk_size_for_beam(beam: u32) -> usize {
    let beam = beam.max(1);
    for pair in CHUNK_TABLE.windows(2) {
        let ((b0, n0), (b1, n1)) = (pair[0], pair[1]);
        if beam <= b1 {
            let t = (beam - b0) as f64 / (b1 - b0) as f64;
            return (n0 as f64 + (n1 as f64 - n0 as f64) * t).round() as usize;
        }
    }
    (250 / beam as usize).max(5)
}

/// A row of a bulk request: tokenized and ready, or already failed its checks
/// (the caller keeps why).
#[derive(Debug, Clone)]
pub enum Row {
    Valid(String),
    Invalid,
}

/// A generous estimate of what one input adds to the event and to the answer.
pub fn estimated_bytes(tokenized: &str, params: Params) -> usize {
    let tokens = tokenized.split(' ').count() + 2;
    let text = tokenized.len() + 8;
    let answer = params.n_best as usize * (text + 24);
    let attention = if params.attention { params.n_best as usize * tokens * tokens * 8 } else { 0 };
    text + (answer + attention) * 4 / 3
}

/// Cuts `rows` into contiguous ranges of at most `max_inputs` valid rows and at
/// most `max_bytes` estimated bytes (a single larger input still gets a chunk).
pub fn plan(rows: &[Row], params: Params, max_inputs: usize, max_bytes: usize) -> Vec<Range<usize>> {
    let mut chunks = Vec::new();
    let (mut start, mut count, mut bytes) = (0, 0, 0);
    for (i, row) in rows.iter().enumerate() {
        let Row::Valid(tokenized) = row else { continue };
        let size = estimated_bytes(tokenized, params);
        if count > 0 && (count == max_inputs || bytes + size > max_bytes) {
            chunks.push(start..i);
            (start, count, bytes) = (i, 0, 0);
        }
        count += 1;
        bytes += size;
    }
    if start < rows.len() {
        chunks.push(start..rows.len());
    }
    chunks
}

/// One finished chunk: its row range, and the n-best lists of its valid rows
/// with how many of them came from the result cache.
pub type ChunkResult = (Range<usize>, Result<(Vec<Vec<Hypothesis>>, usize), InferenceError>);

/// Invokes one chunk: its valid rows in one request, at most `timeout` long.
pub async fn invoke_chunk(
    translator: Arc<dyn Translator>,
    rows: Arc<Vec<Row>>,
    range: Range<usize>,
    params: Params,
    timeout: Duration,
    cache: CacheUse,
    request_ids: Vec<String>,
) -> ChunkResult {
    let inputs: Vec<String> = rows[range.clone()]
        .iter()
        .filter_map(|r| match r {
            Row::Valid(t) => Some(t.clone()),
            Row::Invalid => None,
        })
        .collect();
    if inputs.is_empty() {
        return (range, Ok((Vec::new(), 0)));
    }
    let deadline = Instant::now() + timeout;
    let request = Request { inputs, params, deadline, admission: Admission::Wait, cache, request_ids };
    let result = translator.invoke(request).await.map(|inv| {
        let hits = inv.cached.iter().filter(|&&c| c).count();
        (inv.results, hits)
    });
    (range, result)
}

/// A bulk job's chunks in flight, each in a task of its own, read back in
/// order. The job starts a chunk only when its output has room, so a batch
/// whose reader stalls starts nothing new; and because every started chunk is
/// driven by its own task (not by the job's loop, which may be waiting on a
/// stalled reader), a chunk handed an invocation slot uses it and gives it
/// back, instead of holding it unpolled for as long as the reader stalls.
/// Dropping this aborts every chunk still in flight.
#[derive(Default)]
pub struct InFlight {
    chunks: std::collections::VecDeque<(usize, tokio::task::JoinHandle<ChunkResult>)>,
    rows: usize,
}

impl InFlight {
    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Rows in the chunks in flight.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Starts `chunk` of `rows` rows after those already in flight.
    pub fn start(&mut self, rows: usize, chunk: impl Future<Output = ChunkResult> + Send + 'static) {
        self.rows += rows;
        self.chunks.push_back((rows, tokio::spawn(chunk)));
    }

    /// The oldest chunk's result, when it is done (pending forever when none
    /// is in flight). A chunk that panicked panics here, in the job.
    pub async fn next(&mut self) -> ChunkResult {
        let Some((rows, first)) = self.chunks.front_mut() else {
            return std::future::pending().await;
        };
        let done = first.await;
        self.rows -= *rows;
        self.chunks.pop_front();
        match done {
            Ok(result) => result,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        for (_, chunk) in &self.chunks {
            chunk.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Params = Params { beam: 5, n_best: 5, attention: false };

    #[test]
    fn chunk_sizes_follow_the_beam_table_and_interpolate() {
        assert_eq!(chunk_size_for_beam(1), 100);
        assert_eq!(chunk_size_for_beam(2), 80);
        assert_eq!(chunk_size_for_beam(3), 60);
        assert_eq!(chunk_size_for_beam(4), 55);
        assert_eq!(chunk_size_for_beam(5), 50);
        assert_eq!(chunk_size_for_beam(10), 25);
        assert_eq!(chunk_size_for_beam(64), 5);
    }

    fn rows(n: usize) -> Vec<Row> {
        (0..n).map(|i| Row::Valid(format!("C C O {i}"))).collect()
    }

    #[test]
    fn plan_cuts_by_count_and_covers_every_row_once() {
        let chunks = plan(&rows(120), P, 50, MAX_CHUNK_BYTES);
        assert_eq!(chunks, vec![0..50, 50..100, 100..120]);
    }

    #[test]
    fn invalid_rows_ride_along_without_counting() {
        let mut r = rows(4);
        r.insert(2, Row::Invalid);
        assert_eq!(plan(&r, P, 2, MAX_CHUNK_BYTES), vec![0..3, 3..5], "the invalid row rides with its neighbours");
        let all_invalid = vec![Row::Invalid];
        assert_eq!(plan(&all_invalid, P, 2, MAX_CHUNK_BYTES), vec![0..1]);
        assert!(plan(&[], P, 2, MAX_CHUNK_BYTES).is_empty());
    }

    #[test]
    fn plan_cuts_by_bytes_with_attention() {
        let long = vec![Row::Valid(vec!["C"; 300].join(" ")); 10];
        let p = Params { attention: true, ..P };
        let one = estimated_bytes(&vec!["C"; 300].join(" "), p);
        assert!(one * 2 > MAX_CHUNK_BYTES, "a 300-token input with attention is large");
        let chunks = plan(&long, p, 50, MAX_CHUNK_BYTES);
        assert_eq!(chunks.len(), 10, "one per chunk: {chunks:?}");
    }
}
