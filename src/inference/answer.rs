//! The model's answer as the rest of the crate sees it: ranked hypotheses with
//! their scores and attention matrices. The wire codec (`protocol`) makes these;
//! the views draw them; neither side needs the other.

use serde::{Deserialize, Serialize};

/// One hypothesis of the n-best list, as the model returned it.
#[derive(Debug, Clone, PartialEq)]
pub struct Hypothesis {
    /// The predicted tokens, space separated, as the model wrote them.
    pub tokens: String,
    /// Log-probability; the probability shown is `exp(score)`.
    pub score: f64,
    /// `target tokens x source tokens` weights; rows may be padded.
    pub attention: Option<Matrix>,
}

/// Probability of a hypothesis from its log-probability score.
pub fn probability(score: f64) -> f64 {
    score.exp().clamp(0.0, 1.0)
}

/// `target tokens x source tokens` attention weights of one hypothesis, row by
/// row in one allocation (a `Vec` per row was most of a result's allocations).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

impl Matrix {
    /// From rows; shorter rows are padded with zeros to the longest.
    pub fn from_rows<R: AsRef<[f32]>>(rows: &[R]) -> Matrix {
        let cols = rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0);
        let mut data = Vec::with_capacity(rows.len() * cols);
        for row in rows {
            data.extend_from_slice(row.as_ref());
            data.resize(data.len() + cols - row.as_ref().len(), 0.0);
        }
        Matrix { rows: rows.len(), cols, data }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The bytes its weights take on the heap (what a cache holds for it).
    pub fn heap_bytes(&self) -> usize {
        self.data.capacity() * std::mem::size_of::<f32>()
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }

    pub fn iter_rows(&self) -> impl Iterator<Item = &[f32]> {
        (0..self.rows).map(|r| self.row(r))
    }

    /// Keeps the top-left `rows x cols` corner: the function pads to the longest
    /// input and hypothesis of a batch, the view cuts back to the token counts.
    pub fn truncate(&mut self, rows: usize, cols: usize) {
        let (rows, cols) = (rows.min(self.rows), cols.min(self.cols));
        if cols < self.cols {
            for r in 1..rows {
                self.data.copy_within(r * self.cols..r * self.cols + cols, r * cols);
            }
        }
        self.data.truncate(rows * cols);
        (self.rows, self.cols) = (rows, cols);
    }

    /// From its parts: `data` holds `rows x cols` weights, row by row.
    pub(crate) fn from_parts(rows: usize, cols: usize, data: Vec<f32>) -> Matrix {
        debug_assert_eq!(data.len(), rows * cols);
        Matrix { rows, cols, data }
    }
}

/// A list of rows, as on the wire.
impl Serialize for Matrix {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter_rows())
    }
}

impl<'de> Deserialize<'de> for Matrix {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<Vec<f32>>::deserialize(deserializer).map(|rows| Matrix::from_rows(&rows))
    }
}
