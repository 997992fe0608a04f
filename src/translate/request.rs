//! What a translation asks for, and its checks: the request's fields (one
//! parser of beam and n_best for every door), the limits, and the input's
//! preparation (canonical SMILES, tokens) as the model reads it.

use serde::Deserialize;
use utoipa::ToSchema;

use super::error::Error;
use super::{Limits, Reading};
use crate::chem;
use crate::config::InputFormat;
use crate::inference::Params;

/// The body of `POST /api/v1/translate` and the fields of the translate form.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct TranslateInput {
    /// The input: in SMILES mode all reactants and reagents as SMILES,
    /// separated by `.` (any valid spelling; it is canonicalized), in text
    /// mode the text to translate. Not blank.
    pub text: String,
    /// Beam width (default 5). A whole number; `5.0` is read as 5.
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(value_type = Option<u32>)]
    pub beam: Option<u32>,
    /// How many of the best results to return (default 5, at most the beam).
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(value_type = Option<u32>)]
    pub n_best: Option<u32>,
    /// Return each result's attention matrix (default true).
    pub attention: Option<bool>,
    /// The expected answer, to see at which rank the model finds it.
    pub target: Option<String>,
    /// SMILES mode: predictions that are the same molecule become one, their
    /// probabilities summed.
    pub fold_duplicates: Option<bool>,
    /// `false`: ask the model even if the result cache holds the answer (as
    /// `Cache-Control: no-cache` does).
    pub cache: Option<bool>,
}

/// A whole number that JSON may write as `5` or `5.0` (JSON Schema's
/// `integer` allows both), within `u32`; `null` is absent.
pub fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    use serde::de::Error;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(u) = n.as_u64() {
        return u32::try_from(u).map(Some).map_err(|_| D::Error::custom(format!("{n} is too large")));
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&f) => Ok(Some(f as u32)),
        _ => Err(D::Error::custom(format!("expected a whole number from 0, got {n}"))),
    }
}

/// A whole number as a form or an upload writes it (text; blank is unset):
/// the forms' reading of beam and n_best, so every door reads them alike.
pub fn whole_number_text(what: &str, text: &str) -> Result<Option<u32>, Error> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| Error::invalid_input(format!("{what} must be a whole number, got '{text}'")))
}

/// Checks beam and n_best against the configured bounds, filling in defaults.
pub fn params(limits: &Limits, beam: Option<u32>, n_best: Option<u32>, attention: bool) -> Result<Params, Error> {
    let beam = beam.unwrap_or(limits.default_beam);
    if !(1..=limits.max_beam).contains(&beam) {
        return Err(Error::invalid_input(format!("beam must be between 1 and {}, got {beam}", limits.max_beam)));
    }
    let n_best = n_best.unwrap_or(limits.default_n_best.min(beam));
    if n_best == 0 || n_best > beam {
        return Err(Error::invalid_input(format!(
            "n_best must be between 1 and the beam width ({beam}), got {n_best}"
        )));
    }
    Ok(Params { beam, n_best, attention })
}

/// Checks one input text: not blank, at most `MAX_INPUT_CHARS` code points.
fn check_text(limits: &Limits, text: &str, what: &str) -> Result<(), Error> {
    if text.trim().is_empty() {
        return Err(Error::invalid_input(format!("{what} is empty")));
    }
    let max = limits.max_input_chars;
    let chars = text.chars().count();
    if chars > max {
        return Err(Error::too_large(format!("{what} has {chars} characters; the limit is {max}")));
    }
    Ok(())
}

/// An input or target as the model reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// SMILES mode: the canonical SMILES the tokens were made from.
    pub canonical: Option<String>,
    pub tokenized: String,
}

/// Checks one input (or target) and turns it into the model's tokens: in SMILES
/// mode through RDKit's canonical form, so a molecule written any valid way
/// reaches the model as it was trained. `what` names it in errors ("text",
/// "target", "line 3"). RDKit work: call it on the chemistry threads unless
/// [`preparation_is_cheap`].
pub fn prepare(reading: Reading, limits: &Limits, text: &str, what: &str) -> Result<Prepared, Error> {
    let canonical = match reading.format {
        InputFormat::Text => {
            check_text(limits, text, what)?;
            None
        }
        InputFormat::Smiles => Some(canonical(limits, text, what)?),
    };
    let tokenized = reading.tokenizer.tokenize(canonical.as_deref().unwrap_or(text));
    if tokenized.trim().is_empty() {
        return Err(Error::invalid_input(format!("{what} has nothing to translate once tokenized")));
    }
    Ok(Prepared { canonical, tokenized })
}

/// A SMILES checked against the limits (not blank, `MAX_INPUT_CHARS`,
/// `MAX_ATOMS`) and written in RDKit's canonical form without
/// stereochemistry, as the model reads it; `what` names it in errors. RDKit
/// work (see [`Service::canonical`](super::Service::canonical)).
pub fn canonical(limits: &Limits, text: &str, what: &str) -> Result<String, Error> {
    check_text(limits, text, what)?;
    if let Some(atoms) = chem::too_many_atoms(text) {
        return Err(Error::too_large(format!(
            "{what} has {atoms} atoms; the limit is {} (MAX_ATOMS)",
            chem::max_atoms()
        )));
    }
    chem::prepare(text).map_err(|e| Error::invalid_input(format!("{what} '{}' cannot be read: {e}", shorten(text))))
}

/// Whether preparing these texts needs no RDKit work now.
pub fn preparation_is_cheap(reading: Reading, texts: &[&str]) -> bool {
    reading.format == InputFormat::Text || texts.iter().all(|t| chem::prepared_already(t))
}

/// A text for an error message: trimmed, at most 80 characters.
fn shorten(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beam_and_n_best_default_and_keep_to_their_bounds() {
        let limits = Limits::default();
        let p = params(&limits, None, None, true).unwrap();
        assert_eq!((p.beam, p.n_best), (limits.default_beam, limits.default_n_best.min(limits.default_beam)));
        assert_eq!(params(&limits, Some(3), None, false).unwrap().n_best, 3, "n_best's default is at most the beam");
        assert!(params(&limits, Some(0), None, true).unwrap_err().message.starts_with("beam must be between 1"));
        assert!(params(&limits, Some(2), Some(3), true).unwrap_err().message.contains("the beam width (2), got 3"));
    }

    #[test]
    fn forms_write_numbers_as_text_and_blank_is_unset() {
        assert_eq!(whole_number_text("beam", " 7 ").unwrap(), Some(7));
        assert_eq!(whole_number_text("beam", "").unwrap(), None);
        assert_eq!(whole_number_text("beam", "5.5").unwrap_err().message, "beam must be a whole number, got '5.5'");
    }
}
