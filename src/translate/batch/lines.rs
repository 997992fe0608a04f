//! The NDJSON lines of a batch's answer, as written (`output`) and as the API
//! document describes them (`http::openapi` lists these types): one type per
//! thing on the wire.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::inference::Matrix;
use crate::translate::error::{ErrorCode, ErrorInfo};

/// One line of the NDJSON answer of a batch: `start` first, then `result`
/// lines (one per row, in order) and `progress` lines, then `summary`; or
/// `interrupted` when the server shuts down mid-way (resume from
/// `resume_from`), or `error` when the server failed.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BatchLine<'a> {
    Start {
        total: usize,
        chunks: usize,
        beam: u32,
        n_best: u32,
        attention: bool,
    },
    Result(#[serde(borrow)] BatchRow<'a>),
    Progress {
        done: usize,
        total: usize,
        elapsed_ms: u64,
        eta_ms: Option<u64>,
        rate_per_s: f64,
        /// Rows sent to the function whose answers have not come back yet
        /// (rows arrive in input order, so `done` can stay still while these
        /// are being translated).
        in_flight: usize,
    },
    Summary(BatchSummary),
    Interrupted {
        #[serde(borrow)]
        #[schema(value_type = String)]
        reason: Cow<'a, str>,
        resume_from: usize,
        total: usize,
    },
    Error {
        error: ErrorInfo,
    },
}

/// One row: its predictions, or its error. Also what
/// `POST /api/v1/translate/batch/export` reads back.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct BatchRow<'a> {
    /// Row number, from 0 (the file's line number less one).
    pub index: usize,
    #[serde(borrow)]
    #[schema(value_type = String)]
    pub input: Cow<'a, str>,
    /// SMILES mode: the input's canonical form.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub canonical: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    #[schema(value_type = Option<String>)]
    pub target: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub target_canonical: Option<Cow<'a, str>>,
    /// Why the target could not be compared (not a molecule, too long).
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub target_error: Option<Cow<'a, str>>,
    /// The rank of the first prediction that is the target (`null`: not
    /// found, or no target); absent on a failed row.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<usize>)]
    pub correct_rank: Option<Option<usize>>,
    /// This row's attention exceeded MAX_ATTENTION_CELLS and was left out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub attention_omitted: bool,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub predictions: Option<Vec<BatchPrediction<'a>>>,
    /// Present instead of predictions when the row failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RowError>,
}

/// A field that may be `null`: present (`Some(None)` for `null`) or absent
/// (`None`, by `default`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<usize>>, D::Error> {
    Option::<usize>::deserialize(d).map(Some)
}

/// One result of a row's n-best list.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct BatchPrediction<'a> {
    pub rank: usize,
    #[serde(borrow)]
    #[schema(value_type = String)]
    pub text: Cow<'a, str>,
    /// As in the single API: absent in text mode, `null` when not a molecule.
    #[serde(borrow, default, deserialize_with = "present_str", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub canonical: Option<Option<Cow<'a, str>>>,
    pub score: f64,
    pub probability: f64,
    /// The probability as the pages show it: three significant digits as a
    /// percentage, below 0.01% in scientific notation (`1.2e-5`).
    #[serde(default)]
    pub probability_text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<usize>>)]
    pub merged_ranks: Option<Cow<'a, [usize]>>,
    /// Result tokens x input tokens, weights with 4 decimals.
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Vec<f32>>>)]
    pub attention: Option<&'a Matrix>,
}

/// `canonical` as written: absent, `null`, or a string.
fn present_str<'de: 'a, 'a, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<Cow<'a, str>>>, D::Error> {
    #[derive(Deserialize)]
    struct Text<'a>(#[serde(borrow)] Cow<'a, str>);
    Option::<Text<'a>>::deserialize(d).map(|t| Some(t.map(|t| t.0)))
}

/// Why a row failed.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct RowError {
    pub code: ErrorCode,
    pub message: String,
}

/// The last line: what the batch adds up to.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct BatchSummary {
    pub total: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub failed_indices: Vec<usize>,
    /// Rows with a comparable target that were translated.
    pub evaluated: usize,
    pub targets_invalid: usize,
    /// Top-1 to top-n_best accuracy over the evaluated rows, when any.
    pub top_k_accuracy: Option<Vec<f64>>,
    /// Rows answered from the result cache.
    pub cached: usize,
    pub elapsed_ms: u64,
}
