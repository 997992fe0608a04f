//! `GET /api/v1/depict?smiles=...`: a structure drawing as `image/svg+xml`.
//!
//! Drawing is CPU work in RDKit's C++ that cannot be interrupted, so it is
//! bounded before it starts: the text by `MAX_INPUT_CHARS`, the molecule by
//! `chem::MAX_DRAW_ATOMS`, and the pod by its chemistry threads (`chem::pool`),
//! where drawings take turns with the rest of the chemistry. The same SMILES
//! always gives the same picture, so browsers and CDNs may keep it.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use crate::chem;

/// The default size, and the bounds of a requested one, in pixels.
pub const DEFAULT_SIZE: (u32, u32) = (300, 220);
const SIZES: std::ops::RangeInclusive<u32> = 50..=1200;

#[derive(Debug, Deserialize)]
pub struct DepictQuery {
    smiles: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
}

/// The drawing's URL for a SMILES string (what the result pages link).
pub fn url(smiles: &str) -> String {
    let mut out = String::from("/api/v1/depict?smiles=");
    for b in smiles.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'(' | b')' | b'*' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[utoipa::path(
    get,
    path = "/api/v1/depict",
    tag = "translate",
    summary = "A structure drawing of a SMILES string, as SVG",
    params(
        ("smiles" = String, Query, description = "The molecule(s), as SMILES", min_length = 1),
        ("width" = Option<u32>, Query, description = "Pixels, 50 to 1200 (default 300)", minimum = 50, maximum = 1200),
        ("height" = Option<u32>, Query, description = "Pixels, 50 to 1200 (default 220)", minimum = 50, maximum = 1200),
    ),
    responses(
        (status = 200, description = "The drawing (transparent, recoloured in dark mode)", content_type = "image/svg+xml", body = String),
        (status = 400, description = "invalid_input: missing, not a molecule, or a size out of bounds", body = super::error::ErrorBody),
        (status = 413, description = "too_large: more atoms than this server draws", body = super::error::ErrorBody),
        (status = 429, description = "rate_limited (Retry-After)", body = super::error::ErrorBody),
        (status = 503, description = "overloaded: chemistry is busy (Retry-After)", body = super::error::ErrorBody),
    )
)]
pub async fn depict(
    State(state): State<Arc<AppState>>,
    super::extract::ApiQuery(q): super::extract::ApiQuery<DepictQuery>,
) -> Result<Response, ApiError> {
    let smiles = q.smiles.unwrap_or_default();
    let width = q.width.unwrap_or(DEFAULT_SIZE.0);
    let height = q.height.unwrap_or(DEFAULT_SIZE.1);
    let svg = draw(&state, super::error::client(), smiles, width, height).await?;
    let mut response = svg.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
    // The drawing's own stylesheet recolours it in dark mode; nothing else runs.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    Ok(response)
}

/// A structure drawing (SVG) within this server's bounds, on the chemistry
/// threads at `client`'s turn: the route's and the MCP tool's.
pub async fn draw(
    state: &AppState,
    client: chem::pool::ClientKey,
    smiles: String,
    width: u32,
    height: u32,
) -> Result<String, ApiError> {
    if smiles.trim().is_empty() {
        return Err(ApiError::invalid_input("smiles is missing: /api/v1/depict?smiles=CCO"));
    }
    let max = state.config.max_input_chars;
    let chars = smiles.chars().count();
    if chars > max {
        return Err(ApiError::too_large(format!("smiles has {chars} characters; the limit is {max}")));
    }
    if !SIZES.contains(&width) || !SIZES.contains(&height) {
        return Err(ApiError::invalid_input(format!(
            "width and height must be between {} and {} pixels",
            SIZES.start(),
            SIZES.end()
        )));
    }
    let drawn = state
        .chemistry
        .run(client, chem::pool::Admission::FailFast, move || {
            chem::depict(&smiles, width, height).map_err(|e| (smiles, e))
        })
        .await
        .map_err(|e| match e {
            chem::pool::PoolError::Busy => {
                ApiError::busy("too many drawings in progress; try again shortly", Duration::from_secs(1))
            }
            chem::pool::PoolError::Failed => ApiError::internal("the structure could not be drawn"),
        })?;
    drawn.map_err(|(smiles, e)| {
        let short: String = smiles.chars().take(80).collect();
        ApiError::invalid_input(format!("'{short}' cannot be drawn: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_escape_everything_a_query_could_misread() {
        assert_eq!(url("CC(=O)O"), "/api/v1/depict?smiles=CC(%3DO)O");
        assert_eq!(url("N#C[C@H]1.[Na+]"), "/api/v1/depict?smiles=N%23C%5BC%40H%5D1.%5BNa%2B%5D");
        assert_eq!(url("F/C=C\\F"), "/api/v1/depict?smiles=F%2FC%3DC%5CF");
    }
}
