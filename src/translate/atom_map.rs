//! Attention on the atoms: the model's attention is between tokens (often
//! characters: `Cl` is `C` and `l`), while a chemist reads atoms. Both the
//! input the model read and the prediction it wrote are SMILES whose atoms
//! are known by where they are written ([`chem::atoms::spans`]), so the
//! token-to-token weights add up to atom-to-atom ones: for each atom of the
//! product, how much of its tokens' attention fell on each atom of the input.

use crate::chem;
use crate::inference::Matrix;
use crate::inference::tokenize::Tokens;

/// Product atoms x input atoms.
#[derive(Debug, Clone, PartialEq)]
pub struct AtomMap {
    /// The product's atoms (element as written), in RDKit's order.
    pub product: Vec<String>,
    /// The input's atoms, in RDKit's order.
    pub input: Vec<String>,
    /// `weights[p][i]`: the share of product atom `p`'s attention (its
    /// tokens' rows averaged) that fell on input atom `i`'s tokens.
    pub weights: Vec<Vec<f32>>,
}

/// The byte range of each token in the text the tokens join into, or `None`
/// when they do not join into it.
fn token_ranges(tokens: &Tokens, text: &str) -> Option<Vec<std::ops::Range<usize>>> {
    let mut at = 0;
    let mut out = Vec::new();
    for t in tokens.iter() {
        if !text[at..].starts_with(t) {
            return None;
        }
        out.push(at..at + t.len());
        at += t.len();
    }
    (at == text.len()).then_some(out)
}

/// For each atom, the tokens written inside it.
fn atom_tokens(tokens: &Tokens, text: &str) -> Option<(Vec<String>, Vec<Vec<usize>>)> {
    let ranges = token_ranges(tokens, text)?;
    let atoms = chem::atoms::spans(text)?;
    let mut members = vec![Vec::new(); atoms.len()];
    for (t, r) in ranges.iter().enumerate() {
        if let Some(a) = atoms.iter().position(|(span, _)| span.start < r.end && r.start < span.end) {
            members[a].push(t);
        }
    }
    Some((atoms.into_iter().map(|(_, symbol)| symbol).collect(), members))
}

/// The atom map of one prediction, when both texts are written as their
/// tokens and every atom can be placed; `attention` is prediction tokens x
/// input tokens.
pub fn atom_map(
    input: &str,
    input_tokens: &Tokens,
    product: &str,
    product_tokens: &Tokens,
    attention: &Matrix,
) -> Option<AtomMap> {
    let (input_atoms, input_members) = atom_tokens(input_tokens, input)?;
    let (product_atoms, product_members) = atom_tokens(product_tokens, product)?;
    if input_atoms.is_empty() || product_atoms.is_empty() {
        return None;
    }
    let weights = product_members
        .iter()
        .map(|rows| {
            let rows: Vec<&[f32]> = rows.iter().filter(|&&r| r < attention.rows()).map(|&r| attention.row(r)).collect();
            input_members
                .iter()
                .map(|cols| {
                    let sum: f32 = rows.iter().map(|row| cols.iter().filter_map(|&c| row.get(c)).sum::<f32>()).sum();
                    if rows.is_empty() { 0.0 } else { sum / rows.len() as f32 }
                })
                .collect()
        })
        .collect();
    Some(AtomMap { product: product_atoms, input: input_atoms, weights })
}

impl AtomMap {
    /// The product atom whose attention is most concentrated on one input
    /// atom: the one shown first.
    pub fn clearest(&self) -> usize {
        let peak = |w: &Vec<f32>| w.iter().copied().fold(0.0f32, f32::max);
        (0..self.product.len()).max_by(|&a, &b| peak(&self.weights[a]).total_cmp(&peak(&self.weights[b]))).unwrap_or(0)
    }

    /// The input atoms product atom `p` attended to, strongest first: at most
    /// `most`, each at least a tenth of the strongest; `(atom, share)`.
    pub fn attended(&self, p: usize, most: usize) -> Vec<(usize, f32)> {
        let mut all: Vec<(usize, f32)> = self.weights[p].iter().copied().enumerate().collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1));
        let top = all.first().map_or(0.0, |a| a.1);
        all.into_iter().take(most).filter(|a| a.1 > 0.0 && a.1 >= top / 10.0).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(s: &str) -> Tokens {
        Tokens::new(s.chars().map(String::from).collect::<Vec<_>>().join(" "))
    }

    #[test]
    fn token_weights_add_up_to_atom_weights() {
        // Input "ClCO" (tokens C l C O: atoms Cl, C, O); product "OC" (O, C).
        // Row 0 (product O) looks at the input's O; row 1 (product C) half at
        // each of Cl's two characters and half... as written below.
        let m = Matrix::from_rows(&[[0.0f32, 0.0, 0.1, 0.9], [0.3, 0.3, 0.4, 0.0]]);
        let map = atom_map("ClCO", &chars("ClCO"), "OC", &chars("OC"), &m).unwrap();
        assert_eq!(map.input, ["Cl", "C", "O"]);
        assert_eq!(map.product, ["O", "C"]);
        let round = |v: &Vec<f32>| v.iter().map(|w| (w * 100.0).round() as i32).collect::<Vec<_>>();
        assert_eq!(round(&map.weights[0]), [0, 10, 90]);
        assert_eq!(round(&map.weights[1]), [60, 40, 0], "Cl's two characters are one atom");
        assert_eq!(map.clearest(), 0);
        assert_eq!(map.attended(1, 5), [(0, 0.6), (1, 0.4)]);
        assert_eq!(map.attended(0, 1), [(2, 0.9)]);
    }

    #[test]
    fn multi_character_tokens_and_bonds_are_placed() {
        // Tokens as a SMILES tokenizer writes them: [NH4+] and Cl whole.
        let input = Tokens::new("[NH4+] . [Cl-]".into());
        let product = Tokens::new("C ( = O ) N".into());
        let m = Matrix::from_rows(&[[0.2f32, 0.6, 0.2]; 5]);
        let map = atom_map("[NH4+].[Cl-]", &input, "C(=O)N", &product, &m).unwrap();
        assert_eq!((map.input.len(), map.product.len()), (2, 3));
        // The dot between is no atom's: its weight belongs to neither.
        assert!((map.weights[0][0] - 0.2).abs() < 1e-6 && (map.weights[0][1] - 0.2).abs() < 1e-6);
    }

    #[test]
    fn texts_that_are_not_their_tokens_or_hold_written_hydrogens_have_no_map() {
        let m = Matrix::from_rows(&[[1.0f32, 0.0]]);
        assert!(atom_map("CO", &chars("CN"), "C", &chars("C"), &m).is_none());
        assert!(atom_map("[H]O", &chars("[H]O"), "C", &chars("C"), &m).is_none());
    }
}
