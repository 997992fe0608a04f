//! The API contract: an OpenAPI 3.1 document generated from the handlers'
//! and the bodies' own declarations (`utoipa`), with this server's limits
//! written in (lengths, beam, top-k at most the beam, batch size) and examples
//! produced by the code that answers requests. Served as
//! `GET /api/v1/openapi.json` and read by people at `GET /api`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::{OpenApi, ToSchema};

use super::AppState;
use super::prediction::{self, PredictionView, TargetView, TranslateInput, TranslationView};
use crate::config::InputFormat;
use crate::inference::{Params, demo};

/// The error body of every API error.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorInfo,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorInfo {
    /// What went wrong, for programs.
    #[schema(value_type = String, example = "invalid_input")]
    pub code: ErrorCode,
    /// What went wrong, in words.
    pub message: String,
    /// The id of this request in the server's log.
    pub request_id: Option<String>,
}

/// The `code` of an error.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the request is malformed or asks for something out of bounds.
    InvalidInput,
    /// 413: the body or the batch is larger than this server takes.
    TooLarge,
    /// 408: the body did not arrive within `BODY_READ_TIMEOUT`.
    RequestTimeout,
    /// 429: this client sends too fast (`RATE_LIMIT`).
    RateLimited,
    /// 503: this server has all its invocations in flight.
    Overloaded,
    /// 503: the Lambda function is throttled.
    LambdaThrottled,
    /// 502: the model failed on this input.
    LambdaFunctionError,
    /// 502: the model's answer could not be read.
    LambdaBadPayload,
    /// 504: the model did not answer in time.
    LambdaTimeout,
    /// 502: the model cannot be reached.
    LambdaUnavailable,
    /// 500: a fault in this server.
    InternalError,
    /// 404.
    NotFound,
    /// 405.
    MethodNotAllowed,
}

/// The multipart form of `POST /api/v1/translate/batch` (what the batch page
/// sends): UTF-8 text files, one input (or target) per line.
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
}

/// One line of the NDJSON answer of a batch: `start` first, then `result`
/// lines (one per row, in order) and `progress` lines, then `summary`; or
/// `interrupted` when the server shuts down mid-way (resume from
/// `resume_from`), or `error` when the server failed.
#[derive(Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BatchLine {
    Start { total: usize, chunks: usize, beam: u32, n_best: u32, attention: bool },
    Result(BatchRow),
    Progress { done: usize, total: usize, elapsed_ms: u64, eta_ms: Option<u64>, rate_per_s: f64 },
    Summary(BatchSummary),
    Interrupted { reason: String, resume_from: usize, total: usize },
    Error { error: ErrorInfo },
}

/// One row: its predictions, or its error.
#[derive(Serialize, ToSchema)]
pub struct BatchRow {
    /// Row number, from 0.
    pub index: usize,
    pub input: String,
    pub canonical: Option<String>,
    pub target: Option<String>,
    pub target_canonical: Option<String>,
    /// Why the target could not be compared.
    pub target_error: Option<String>,
    /// The rank of the first prediction that is the target.
    pub correct_rank: Option<usize>,
    pub attention_omitted: Option<bool>,
    pub predictions: Option<Vec<BatchPrediction>>,
    /// Present instead of predictions when the row failed.
    pub error: Option<RowError>,
}

#[derive(Serialize, ToSchema)]
pub struct BatchPrediction {
    pub rank: usize,
    pub text: String,
    pub score: f64,
    pub probability: f64,
    pub canonical: Option<String>,
    pub merged_ranks: Option<Vec<usize>>,
    #[schema(value_type = Option<Vec<Vec<f32>>>)]
    pub attention: Option<Vec<Vec<f32>>>,
}

#[derive(Serialize, ToSchema)]
pub struct RowError {
    #[schema(value_type = String)]
    pub code: ErrorCode,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
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

#[derive(OpenApi)]
#[openapi(
    info(
        title = "translation-front",
        description = "The JSON API of translation-front: n-best translations of a sequence-to-sequence model served \
            from AWS Lambda, with probabilities and attention. This document is generated by the server that serves \
            it: its limits are this server's.",
    ),
    paths(
        super::api::post_translate,
        super::batch::post_batch,
        super::api::config,
        super::depict::depict,
        openapi_json,
        super::health::healthz,
        super::health::readyz,
    ),
    components(schemas(
        TranslateInput,
        TranslationView,
        PredictionView,
        TargetView,
        ErrorBody,
        ErrorInfo,
        ErrorCode,
        super::batch::BatchJson,
        BatchUpload,
        BatchLine,
        BatchRow,
        BatchPrediction,
        BatchSummary,
        RowError,
        super::api::ConfigView,
    )),
    tags((name = "translate", description = "Translations, one or many"),
         (name = "service", description = "The server: its settings, health and this document"))
)]
struct ApiDoc;

/// The document for this server: generated, then this server's limits and
/// real examples written in.
pub fn document(state: &AppState) -> Value {
    let c = &state.config;
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serializes");
    doc["info"]["version"] = json!(env!("CARGO_PKG_VERSION"));
    doc["info"]["license"] = json!({"name": env!("CARGO_PKG_LICENSE"), "identifier": env!("CARGO_PKG_LICENSE")});
    let smiles = c.input_format == InputFormat::Smiles;
    let schemas = &mut doc["components"]["schemas"];

    let text = &mut schemas["TranslateInput"]["properties"]["text"];
    text["minLength"] = json!(1);
    text["maxLength"] = json!(c.max_input_chars);
    text["pattern"] = json!("\\S");
    if smiles {
        text["description"] = json!(format!(
            "{} This server reads SMILES: text that is not a molecule is refused with 400 invalid_input, \
             whatever this schema allows.",
            text["description"].as_str().unwrap_or("")
        ));
    }
    for (schema, what) in [("TranslateInput", "beam"), ("BatchRequest", "beam")] {
        let p = &mut schemas[schema]["properties"][what];
        p["minimum"] = json!(1);
        p["maximum"] = json!(c.max_beam);
    }
    for schema in ["TranslateInput", "BatchRequest"] {
        schemas[schema]["properties"]["n_best"]["minimum"] = json!(1);
        schemas[schema]["properties"]["n_best"]["maximum"] = json!(c.max_beam);
        // n_best at most the beam: one branch per beam width, and one for the
        // default beam when none is given.
        let mut branches: Vec<Value> = (1..=c.max_beam)
            .map(|b| json!({"required": ["beam"], "properties": {"beam": {"const": b}, "n_best": {"maximum": b}}}))
            .collect();
        branches.push(json!({"properties": {"beam": {"type": "null"}, "n_best": {"maximum": c.default_beam}}}));
        schemas[schema]["anyOf"] = Value::Array(branches);
    }
    let inputs = &mut schemas["BatchRequest"]["properties"]["inputs"];
    inputs["minItems"] = json!(1);
    inputs["maxItems"] = json!(c.max_batch_inputs);
    schemas["TranslationView"]["example"] = example(state);
    schemas["ConfigView"]["example"] = json!(super::api::config_view(state));
    if let Some(target) = schemas["TranslateInput"]["properties"]["target"].as_object_mut() {
        target.insert("maxLength".into(), json!(c.max_input_chars));
    }
    doc
}

/// A real answer to one of this server's examples, made by the code that
/// answers requests, from the demo model (no invocation).
fn example(state: &AppState) -> Value {
    let text = state.config.examples.first().cloned().unwrap_or_else(|| "CCO".into());
    let Ok(prepared) = prediction::prepare(state, &text, "text") else {
        return Value::Null;
    };
    let params = Params { beam: 3, n_best: 2, attention: true };
    let hypotheses = demo::hypotheses(&prepared.tokenized, params);
    let view = prediction::view(state.reading(), text, prepared, hypotheses, tokio::time::Instant::now());
    // As the API writes it (4-decimal weights).
    let mut body = Vec::new();
    super::json::write(&mut body, &view);
    serde_json::from_slice(&body).unwrap_or(Value::Null)
}

/// `GET /api/v1/openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "service",
    summary = "This API's OpenAPI 3.1 document",
    responses((status = 200, description = "The document", content_type = "application/json", body = Object))
)]
pub async fn openapi_json(State(state): State<Arc<AppState>>) -> Response {
    Json(state.openapi()).into_response()
}

impl AppState {
    /// This server's document, made on first use.
    pub fn openapi(&self) -> &Value {
        self.openapi.get_or_init(|| document(self))
    }
}
