//! What a batch request came in as: a JSON body, or a multipart upload of
//! text files (the batch page's form), read into a [`BatchInput`].

use std::sync::Arc;

use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header;
use serde::Deserialize;

use serde::Serialize;
use utoipa::ToSchema;

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{self, ApiJson};
use crate::translate::batch::{BatchInput, lines};
use crate::translate::request::{whole_number, whole_number_text};

/// The multipart form of `POST /api/v1/translate/batch` (what the batch page
/// sends): UTF-8 text files, one input (or target) per line. Read field by
/// field (`parse_multipart`); this type describes it.
#[derive(Serialize, ToSchema)]
pub struct BatchUpload {
    /// The inputs file. Blank lines at its end are not rows.
    #[schema(value_type = String, content_media_type = "text/plain")]
    pub inputs: String,
    /// The targets file: as many lines as the inputs file.
    #[schema(value_type = Option<String>, content_media_type = "text/plain")]
    pub targets: Option<String>,
    /// Beam width; empty (as a form sends an unset field) is the default.
    #[schema(value_type = Option<String>, pattern = "^[0-9]*$")]
    pub beam: Option<String>,
    /// Results per row; empty is the default.
    #[schema(value_type = Option<String>, pattern = "^[0-9]*$")]
    pub n_best: Option<String>,
    /// Start at this row (an `interrupted` line's `resume_from`); empty is 0.
    #[schema(value_type = Option<String>, pattern = "^[0-9]*$")]
    pub resume_from: Option<String>,
}

/// The JSON body of `POST /api/v1/translate/batch`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = BatchRequest)]
pub struct BatchJson {
    /// The inputs, one per row. A row that cannot be translated (blank, too
    /// long, not a molecule) is an error row; the others are translated.
    inputs: Vec<String>,
    /// Expected answers, one per input (the same number), for top-k accuracy.
    targets: Option<Vec<String>>,
    /// Beam width (default 5).
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(value_type = Option<u32>)]
    beam: Option<u32>,
    /// Results per row (default 5, at most the beam).
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(value_type = Option<u32>)]
    n_best: Option<u32>,
    /// Include attention matrices (default false).
    attention: Option<bool>,
    /// SMILES mode: fold results that are the same molecule.
    fold_duplicates: Option<bool>,
    /// `false`: ask the model even for rows the result cache holds.
    cache: Option<bool>,
    /// Start at this row, as an `interrupted` line's `resume_from` says: send
    /// the same inputs again with it, and the rows keep their indices.
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(value_type = Option<u32>)]
    resume_from: Option<u32>,
}

/// JSON (`{"inputs": [...]}`) or multipart (an `inputs` file, optional `targets`).
pub(super) async fn parse(state: &Arc<AppState>, req: Request) -> Result<BatchInput, ApiError> {
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if content_type.starts_with("multipart/form-data") {
        return parse_multipart(extract::multipart(req, state).await?).await;
    }
    let ApiJson(json) = ApiJson::<BatchJson>::from_request(req, state).await?;
    Ok(BatchInput {
        inputs: json.inputs,
        targets: json.targets,
        beam: json.beam,
        n_best: json.n_best,
        attention: json.attention.unwrap_or(false),
        fold_duplicates: json.fold_duplicates.unwrap_or(false),
        bypass_cache: json.cache == Some(false),
        resume_from: json.resume_from.unwrap_or(0) as usize,
    })
}

async fn parse_multipart(mut multipart: Multipart) -> Result<BatchInput, ApiError> {
    let mut input = BatchInput::default();
    let mut saw_inputs = false;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(extract::multipart_error(&e)),
        };
        let name = field.name().unwrap_or("").to_string();
        let bytes = field.bytes().await.map_err(|e| extract::multipart_error(&e))?;
        let number = |what: &str| -> Result<Option<u32>, ApiError> {
            Ok(whole_number_text(what, &String::from_utf8_lossy(&bytes))?)
        };
        match name.as_str() {
            "inputs" => {
                input.inputs = lines(&bytes, "inputs").map_err(ApiError::from)?;
                saw_inputs = true;
            }
            "targets" if !bytes.is_empty() => input.targets = Some(lines(&bytes, "targets").map_err(ApiError::from)?),
            "beam" => input.beam = number("beam")?,
            "n_best" => input.n_best = number("n_best")?,
            "attention" => input.attention = matches!(&bytes[..], b"true" | b"on" | b"1"),
            "fold_duplicates" => input.fold_duplicates = matches!(&bytes[..], b"true" | b"on" | b"1"),
            "resume_from" => input.resume_from = number("resume_from")?.unwrap_or(0) as usize,
            _ => {}
        }
    }
    if !saw_inputs {
        return Err(ApiError::invalid_input("the upload has no 'inputs' file"));
    }
    Ok(input)
}
