//! `/api/v1/structure`: MDL files in and out. `POST` a MOL block, an SDF
//! record or an RXN file and get its SMILES (what the page does with a pasted
//! file); `GET ?smiles=...&format=mol` or `?reaction=R>>P&format=rxn` for a
//! file to open in other tools (the results page links them).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use crate::chem::{self, blocks};

/// What a MOL block or an RXN file holds, as SMILES.
#[derive(Debug, Serialize, ToSchema)]
pub struct StructureView {
    /// `molecule` (a MOL block or SDF record) or `reaction` (an RXN file).
    kind: &'static str,
    /// The molecule; for a reaction its reactants and reagents joined by `.`
    /// (what the model reads).
    smiles: String,
    /// A reaction's reactants.
    #[serde(skip_serializing_if = "Option::is_none")]
    reactants: Option<String>,
    /// A reaction's reagents (its agents), when it lists any.
    #[serde(skip_serializing_if = "Option::is_none")]
    agents: Option<String>,
    /// A reaction's products (the expected product, for a translation).
    #[serde(skip_serializing_if = "Option::is_none")]
    products: Option<String>,
}

async fn chemistry<T: Send + 'static>(state: &AppState, f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    state.chemistry.run(super::error::client(), chem::pool::Admission::FailFast, f).await.map_err(|e| match e {
        chem::pool::PoolError::Busy => {
            ApiError::busy("the server has too much chemistry waiting; try again shortly", Duration::from_secs(1))
        }
        chem::pool::PoolError::Failed => ApiError::internal("the structure could not be read"),
    })
}

#[utoipa::path(
    post,
    path = "/api/v1/structure",
    tag = "translate",
    summary = "Read a MOL block, an SDF record or an RXN file as SMILES",
    request_body(description = "The file's text (V2000 or V3000), at most 256 KiB", content = String, content_type = "text/plain"),
    responses(
        (status = 200, description = "Its SMILES", body = StructureView),
        (status = 400, description = "invalid_input: not a file RDKit can read, in words", body = super::error::ErrorBody),
        (status = 413, description = "too_large", body = super::error::ErrorBody),
        (status = 429, description = "rate_limited (Retry-After)", body = super::error::ErrorBody),
        (status = 503, description = "overloaded: chemistry is busy (Retry-After)", body = super::error::ErrorBody),
    )
)]
pub async fn read(State(state): State<Arc<AppState>>, req: Request) -> Result<Response, ApiError> {
    let body = super::extract::read_body(req, &state).await?;
    if body.len() > blocks::MAX_BLOCK_BYTES {
        return Err(ApiError::too_large(format!(
            "the file has {} bytes; the limit is {}",
            body.len(),
            blocks::MAX_BLOCK_BYTES
        )));
    }
    let text = String::from_utf8(body.to_vec()).map_err(|_| ApiError::invalid_input("the file is not valid UTF-8"))?;
    if text.trim().is_empty() {
        return Err(ApiError::invalid_input("the body is empty: send a MOL block, an SDF record or an RXN file"));
    }
    if !blocks::is_block(&text) {
        return Err(ApiError::invalid_input(
            "this is not a MOL block, an SDF record or an RXN file (a MOL block ends with 'M  END'; an RXN file \
             starts with '$RXN'); SMILES can be typed as they are",
        ));
    }
    let read = chemistry(&state, move || blocks::read(&text)).await?;
    let view = match read.map_err(|e| ApiError::invalid_input(e.0))? {
        blocks::Structure::Molecule(smiles) => {
            StructureView { kind: "molecule", smiles, reactants: None, agents: None, products: None }
        }
        blocks::Structure::Reaction { reactants, agents, products } => StructureView {
            kind: "reaction",
            smiles: if agents.is_empty() { reactants.clone() } else { format!("{reactants}.{agents}") },
            reactants: Some(reactants),
            agents: (!agents.is_empty()).then_some(agents),
            products: (!products.is_empty()).then_some(products),
        },
    };
    Ok(super::api::json_response(&view))
}

#[derive(Debug, Deserialize)]
pub struct FileQuery {
    smiles: Option<String>,
    reaction: Option<String>,
    format: Option<String>,
}

/// The link to a molecule's MOL file.
pub fn mol_url(smiles: &str) -> String {
    format!("/api/v1/structure?smiles={}&format=mol", super::depict::escape(smiles))
}

/// The link to a reaction's RXN file.
pub fn rxn_url(reactants: &str, products: &str) -> String {
    format!("/api/v1/structure?reaction={}&format=rxn", super::depict::escape(&format!("{reactants}>>{products}")))
}

#[utoipa::path(
    get,
    path = "/api/v1/structure",
    tag = "translate",
    summary = "A molecule as a MOL file, or a reaction as an RXN file",
    params(
        ("smiles" = Option<String>, Query, description = "A molecule or mixture, with format=mol", min_length = 1),
        ("reaction" = Option<String>, Query, description = "reactants>>products, with format=rxn", min_length = 4),
        ("format" = String, Query, description = "mol or rxn", pattern = "^(mol|rxn)$"),
    ),
    responses(
        (status = 200, description = "The file (V2000, 2D coordinates)", content((String = "chemical/x-mdl-molfile"), (String = "chemical/x-mdl-rxnfile"))),
        (status = 400, description = "invalid_input", body = super::error::ErrorBody),
        (status = 413, description = "too_large", body = super::error::ErrorBody),
        (status = 429, description = "rate_limited (Retry-After)", body = super::error::ErrorBody),
        (status = 503, description = "overloaded: chemistry is busy (Retry-After)", body = super::error::ErrorBody),
    )
)]
pub async fn file(
    State(state): State<Arc<AppState>>,
    super::extract::ApiQuery(q): super::extract::ApiQuery<FileQuery>,
) -> Result<Response, ApiError> {
    let (text, kind) = match (q.format.as_deref(), q.smiles, q.reaction) {
        (Some("mol"), Some(smiles), None) => (smiles, "mol"),
        (Some("rxn"), None, Some(reaction)) => (reaction, "rxn"),
        _ => {
            return Err(ApiError::invalid_input("ask for ?smiles=CCO&format=mol or ?reaction=CCO>>CC=O&format=rxn"));
        }
    };
    if text.trim().is_empty() {
        return Err(ApiError::invalid_input(format!("{} is empty", if kind == "rxn" { "reaction" } else { "smiles" })));
    }
    let max = state.config.max_input_chars;
    let chars = text.chars().count();
    if chars > max {
        return Err(ApiError::too_large(format!("the text has {chars} characters; the limit is {max}")));
    }
    let atoms = chem::atoms::count(&text);
    if atoms > chem::max_atoms() {
        return Err(ApiError::too_large(format!("{atoms} atoms; the limit is {} (MAX_ATOMS)", chem::max_atoms())));
    }
    let short: String = text.trim().chars().take(80).collect();
    let written = chemistry(&state, move || {
        let smiles: String = text.split_whitespace().collect();
        // Each molecule read first, for errors in a chemist's words.
        let sides: Vec<&str> = if kind == "rxn" { smiles.split(">>").collect() } else { vec![smiles.as_str()] };
        if sides.len() != if kind == "rxn" { 2 } else { 1 } || sides.iter().any(|s| s.is_empty()) {
            return Err(chem::ChemError("a reaction is written reactants>>products".into()));
        }
        for side in &sides {
            chem::prepare(side)?;
        }
        match kind {
            "rxn" => blocks::rxn_file(sides[0], sides[1]),
            _ => blocks::mol_block(&smiles),
        }
    })
    .await?
    .map_err(|e| ApiError::invalid_input(format!("'{short}' cannot be written as a file: {e}")))?;
    let (content_type, name) = match kind {
        "rxn" => ("chemical/x-mdl-rxnfile", "attachment; filename=\"reaction.rxn\""),
        _ => ("chemical/x-mdl-molfile", "attachment; filename=\"molecule.mol\""),
    };
    let mut response = written.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static(name));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
    Ok(response)
}
