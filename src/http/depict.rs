//! `GET /api/v1/depict?smiles=...` (a structure) or `?reaction=R>>P` (a
//! reaction scheme): a drawing as `image/svg+xml`, or `image/png` with
//! `format=png`; `highlight=3:0.8,5` marks atoms (counted from 1 as written,
//! with an optional weight from 0 to 1).
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
    reaction: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    format: Option<String>,
    highlight: Option<String>,
}

/// A reaction scheme's default size: three molecules side by side.
pub const REACTION_SIZE: (u32, u32) = (600, 200);

/// Reads `highlight=3:0.8,5,7:0.25`: atoms counted from 1, each with a weight
/// (1 when left out); at most `MAX_DRAW_ATOMS` of them.
fn highlights(text: &str) -> Result<Vec<(u32, f32)>, ApiError> {
    let bad = |what: &str| {
        ApiError::invalid_input(format!(
            "highlight {what}: write atoms counted from 1, each with an optional weight from 0 to 1, as 3:0.8,5"
        ))
    };
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        if out.len() >= chem::MAX_DRAW_ATOMS as usize {
            return Err(bad("names too many atoms"));
        }
        let (atom, weight) = item.split_once(':').unwrap_or((item, "1"));
        let atom: u32 =
            atom.parse().ok().filter(|a| *a >= 1).ok_or_else(|| bad(&format!("'{item}' is not an atom")))?;
        let weight: f32 = weight
            .parse()
            .ok()
            .filter(|w: &f32| (0.0..=1.0).contains(w))
            .ok_or_else(|| bad(&format!("'{item}' has no weight from 0 to 1")))?;
        out.push((atom - 1, weight));
    }
    Ok(out)
}

/// A reaction written `reactants>>products` (or `reactants>reagents>products`)
/// as its two sides, reagents joining the reactants.
fn sides(text: &str) -> Result<(String, String), ApiError> {
    let parts: Vec<&str> = text.split('>').collect();
    let (reactants, products) = match parts.as_slice() {
        [r, "", p] => (r.to_string(), p.to_string()),
        [r, a, p] => (format!("{r}.{a}"), p.to_string()),
        _ => {
            return Err(ApiError::invalid_input(
                "reaction must be written reactants>>products: /api/v1/depict?reaction=CCO.CC(=O)O>>CCOC(C)=O",
            ));
        }
    };
    if reactants.trim().is_empty() || products.trim().is_empty() {
        return Err(ApiError::invalid_input("reaction needs reactants and products on either side of '>>'"));
    }
    Ok((reactants, products))
}

/// The drawing's URL for a SMILES string (what the result pages link).
pub fn url(smiles: &str) -> String {
    format!("/api/v1/depict?smiles={}", escape(smiles))
}

/// The URL of a reaction scheme's drawing.
pub fn reaction_url(reactants: &str, products: &str) -> String {
    format!("/api/v1/depict?reaction={}", escape(&format!("{reactants}>>{products}")))
}

/// A query value with everything a query could misread escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
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
    summary = "A drawing of a structure or a reaction scheme, as SVG or PNG",
    params(
        ("smiles" = Option<String>, Query, description = "The molecule(s), as SMILES (this or reaction)", min_length = 1),
        ("reaction" = Option<String>, Query, description = "A reaction scheme, reactants>>products (or reactants>reagents>products)", min_length = 3),
        ("width" = Option<u32>, Query, description = "Pixels, 50 to 1200 (default 300, a reaction 600)", minimum = 50, maximum = 1200),
        ("height" = Option<u32>, Query, description = "Pixels, 50 to 1200 (default 220, a reaction 200)", minimum = 50, maximum = 1200),
        ("format" = Option<String>, Query, description = "svg (default) or png", pattern = "^(svg|png)$"),
        ("highlight" = Option<String>, Query, description = "With smiles: atoms to mark, counted from 1 as written, each with an optional weight from 0 to 1: 3:0.8,5", pattern = "^[0-9:., ]*$"),
    ),
    responses(
        (status = 200, description = "The drawing: SVG (transparent, recoloured in dark mode) or PNG (on white)", content((String = "image/svg+xml"), (Vec<u8> = "image/png"))),
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
    let image = match q.format.as_deref() {
        None | Some("svg") => chem::Image::Svg,
        Some("png") => chem::Image::Png,
        Some(_) => return Err(ApiError::invalid_input("format must be svg or png")),
    };
    let (picture, size) = match (q.smiles, q.reaction) {
        (Some(_), Some(_)) => return Err(ApiError::invalid_input("send smiles or reaction, not both")),
        (None, Some(reaction)) => {
            if q.highlight.is_some() {
                return Err(ApiError::invalid_input("highlight marks the atoms of a smiles drawing, not a reaction"));
            }
            check_length(&state, &reaction, "reaction")?;
            let (reactants, products) = sides(&reaction)?;
            (chem::Picture::Reaction { reactants, products }, REACTION_SIZE)
        }
        (smiles, None) => {
            let smiles = smiles.unwrap_or_default();
            let highlights = highlights(q.highlight.as_deref().unwrap_or(""))?;
            (chem::Picture::Molecule { smiles, highlights }, DEFAULT_SIZE)
        }
    };
    let (width, height) = (q.width.unwrap_or(size.0), q.height.unwrap_or(size.1));
    let bytes = draw_picture(&state, super::error::client(), picture, image, width, height).await?;
    let mut response = bytes.into_response();
    let h = response.headers_mut();
    let kind = if image == chem::Image::Png { "image/png" } else { "image/svg+xml" };
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
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
    let picture = chem::Picture::Molecule { smiles, highlights: Vec::new() };
    let bytes = draw_picture(state, client, picture, chem::Image::Svg, width, height).await?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn check_length(state: &AppState, text: &str, what: &str) -> Result<(), ApiError> {
    let max = state.config.max_input_chars;
    let chars = text.chars().count();
    if chars > max {
        return Err(ApiError::too_large(format!("{what} has {chars} characters; the limit is {max}")));
    }
    Ok(())
}

/// Any drawing within this server's bounds, on the chemistry threads at
/// `client`'s turn.
pub async fn draw_picture(
    state: &AppState,
    client: chem::pool::ClientKey,
    picture: chem::Picture,
    image: chem::Image,
    width: u32,
    height: u32,
) -> Result<Vec<u8>, ApiError> {
    if let chem::Picture::Molecule { smiles, .. } = &picture {
        if smiles.trim().is_empty() {
            return Err(ApiError::invalid_input(
                "smiles or reaction is missing: /api/v1/depict?smiles=CCO or ?reaction=CCO>>CC=O",
            ));
        }
        check_length(state, smiles, "smiles")?;
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
            chem::draw(&picture, image, width, height).map_err(|e| (picture, e))
        })
        .await
        .map_err(|e| match e {
            chem::pool::PoolError::Busy => {
                ApiError::busy("too many drawings in progress; try again shortly", Duration::from_secs(1))
            }
            chem::pool::PoolError::Failed => ApiError::internal("the structure could not be drawn"),
        })?;
    drawn.map_err(|(picture, e)| {
        let (what, text) = match picture {
            chem::Picture::Molecule { smiles, .. } => ("", smiles),
            chem::Picture::Reaction { reactants, products } => ("the reaction ", format!("{reactants}>>{products}")),
        };
        let short: String = text.chars().take(80).collect();
        ApiError::invalid_input(format!("{what}'{short}' cannot be drawn: {e}"))
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
        assert_eq!(reaction_url("CCO", "CC=O"), "/api/v1/depict?reaction=CCO%3E%3ECC%3DO");
    }

    #[test]
    fn highlights_and_reactions_are_read_or_refused_in_words() {
        assert_eq!(highlights("3:0.5, 1").unwrap(), vec![(2, 0.5), (0, 1.0)]);
        assert!(highlights("").unwrap().is_empty());
        for bad in ["0", "x", "2:1.5", "2:-1", "2:nan"] {
            assert!(highlights(bad).is_err(), "{bad}");
        }
        assert!(highlights(&"1,".repeat(300)).is_err());
        assert_eq!(sides("CCO>>CC=O").unwrap(), ("CCO".into(), "CC=O".into()));
        assert_eq!(sides("CCO>O>CC=O").unwrap(), ("CCO.O".into(), "CC=O".into()));
        for bad in ["CCO", "CCO>>", ">>CC", "a>b>c>d"] {
            assert!(sides(bad).is_err(), "{bad}");
        }
    }
}
