//! Counting a SMILES string's atoms without parsing it: the bound on the
//! molecules the service reads is checked before any RDKit work, since
//! RDKit's cost grows much faster than the atoms (its stereo perception is
//! about n^2.7 on a chain: 250 atoms 21 ms, 2,000 atoms 6-10 s).

/// Atoms written in `smiles`: each bracket atom (`[NH4+]`, `[2H]`) once, and
/// each atom of the organic subset (`B C N O P S F Cl Br I`, aromatic
/// `b c n o p s`, `*`). Implicit hydrogens are not written, so not counted.
/// Not a validation: whatever is not an atom (bonds, rings, branches, dots,
/// anything else) is passed over, and RDKit judges the rest.
pub fn count(smiles: &str) -> usize {
    let bytes = smiles.as_bytes();
    let (mut atoms, mut i) = (0, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'[' => {
                atoms += 1;
                i += bytes[i..].iter().position(|&b| b == b']').unwrap_or(bytes.len() - i);
            }
            b'C' if bytes.get(i + 1) == Some(&b'l') => {
                atoms += 1;
                i += 1;
            }
            b'B' if bytes.get(i + 1) == Some(&b'r') => {
                atoms += 1;
                i += 1;
            }
            b'B' | b'C' | b'N' | b'O' | b'P' | b'S' | b'F' | b'I' | b'b' | b'c' | b'n' | b'o' | b'p' | b's' | b'*' => {
                atoms += 1
            }
            _ => {}
        }
        i += 1;
    }
    atoms
}

/// Where each atom of `smiles` is written (byte ranges) and its element as
/// written, in the order RDKit numbers the atoms it reads from this text (the
/// order they are written). `None` when a hydrogen is written as an atom
/// (`[H]`, `[2H]`): RDKit may fold it into its neighbour, and the numbers
/// after it would no longer match.
pub fn spans(smiles: &str) -> Option<Vec<(std::ops::Range<usize>, String)>> {
    let bytes = smiles.as_bytes();
    let (mut out, mut i) = (Vec::new(), 0);
    while i < bytes.len() {
        let start = i;
        match bytes[i] {
            b'[' => {
                let end = bytes[i..].iter().position(|&b| b == b']').map_or(bytes.len(), |p| i + p + 1);
                let inner = &smiles[i + 1..end.saturating_sub(1).max(i + 1)];
                // The element: a letter and, for two-letter ones (Cl, Na, se),
                // a lower-case second; a hydrogen count (NH4) is not part of it.
                let mut letters = inner.trim_start_matches(|c: char| c.is_ascii_digit()).chars();
                let mut symbol: String = letters.next().filter(char::is_ascii_alphabetic).into_iter().collect();
                if let Some(c) = letters.next().filter(char::is_ascii_lowercase) {
                    symbol.push(c);
                }
                if symbol == "H" {
                    return None;
                }
                out.push((start..end, symbol));
                i = end;
                continue;
            }
            b'C' if bytes.get(i + 1) == Some(&b'l') => i += 1,
            b'B' if bytes.get(i + 1) == Some(&b'r') => i += 1,
            b'B' | b'C' | b'N' | b'O' | b'P' | b'S' | b'F' | b'I' | b'b' | b'c' | b'n' | b'o' | b'p' | b's' | b'*' => {}
            _ => {
                i += 1;
                continue;
            }
        }
        i += 1;
        out.push((start..i, smiles[start..i].to_string()));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::{count, spans};

    #[test]
    fn spans_are_the_atoms_in_rdkits_order_with_their_elements() {
        let s = spans("ClC(=O)c1ccc[nH]1.[Na+]").unwrap();
        let written: Vec<(&str, &str)> =
            s.iter().map(|(r, e)| (&"ClC(=O)c1ccc[nH]1.[Na+]"[r.clone()], e.as_str())).collect();
        assert_eq!(
            written,
            [
                ("Cl", "Cl"),
                ("C", "C"),
                ("O", "O"),
                ("c", "c"),
                ("c", "c"),
                ("c", "c"),
                ("c", "c"),
                ("[nH]", "n"),
                ("[Na+]", "Na")
            ]
        );
        assert_eq!(spans("[NH4+]").unwrap()[0].1, "N");
        assert_eq!(spans("[13CH3]O").unwrap()[0].1, "C");
        assert_eq!(spans("[Se]").unwrap()[0].1, "Se");
        assert!(spans("[H]C").is_none() && spans("[2H]OC").is_none(), "written hydrogens");
        let mut checked = 0;
        for k in 0..200 {
            let m = crate::loadtest::molecules::molecule(k * 7919);
            if let Some(s) = spans(&m) {
                assert_eq!(s.len(), count(&m), "{m}");
                checked += 1;
            }
        }
        assert!(checked > 150, "{checked}");
    }

    #[test]
    fn atoms_are_counted_as_rdkit_counts_heavy_atoms() {
        for (smiles, atoms) in [
            ("CCO", 3),
            ("ClCCBr", 4),
            ("c1ccccc1", 6),
            ("[NH4+].[Cl-]", 2),
            ("C[C@H](N)C(=O)O", 6),
            ("O=C([O-])[O-].[K+].[K+]", 6),
            ("[2H]OC", 3),
            ("N#Cc1ccc(Br)cc1", 9),
            ("C1CC[C@@H]2CCCC[C@H]2C1", 10),
            ("*c1ccncc1", 7),
            ("", 0),
            ("[unclosed", 1),
        ] {
            assert_eq!(count(smiles), atoms, "{smiles}");
        }
        assert_eq!(count(&"C".repeat(2000)), 2000);
    }

    #[test]
    fn the_count_agrees_with_rdkit_on_the_load_generators_molecules() {
        // RDKit's heavy atoms: its canonical form has the same atoms, written
        // its own way; explicit [H] atoms aside, which none of these have.
        for k in 0..500 {
            let m = crate::loadtest::molecules::molecule(k * 7919);
            let canonical = super::super::prepare(&m).unwrap();
            assert_eq!(count(&m), count(&canonical), "{m} -> {canonical}");
        }
    }
}
