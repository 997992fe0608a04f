//! Why a text is not a molecule, in a chemist's words: which molecule of a
//! mixture (its place and its text) and what is wrong with it, read from
//! RDKit's reason (the kind of failure and the atoms it names), not passed on
//! as RDKit's text. Worked out only once a parse has failed.

/// Every element symbol, for telling a misspelt `[Xx]` from a syntax slip.
const ELEMENTS: &[&str] = &[
    "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P", "S", "Cl", "Ar", "K", "Ca",
    "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As", "Se", "Br", "Kr", "Rb", "Sr", "Y",
    "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In", "Sn", "Sb", "Te", "I", "Xe", "Cs", "Ba", "La", "Ce",
    "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm", "Yb", "Lu", "Hf", "Ta", "W", "Re", "Os", "Ir",
    "Pt", "Au", "Hg", "Tl", "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th", "Pa", "U", "Np", "Pu", "Am", "Cm",
    "Bk", "Cf", "Es", "Fm", "Md", "No", "Lr", "Rf", "Db", "Sg", "Bh", "Hs", "Mt", "Ds", "Rg", "Cn", "Nh", "Fl", "Mc",
    "Lv", "Ts", "Og",
];

/// Lower-case atoms SMILES writes aromatic.
const AROMATIC: &[&str] = &["b", "c", "n", "o", "p", "s", "se", "as", "te"];

/// What is wrong with `mixture` (the input, its parts joined by `.`), given
/// RDKit's reason for the whole; `parse` reads one part (RDKit), for finding
/// which part of a mixture fails.
pub fn explain(mixture: &str, reason: &str, parse: impl Fn(&str) -> Result<(), String>) -> String {
    let parts: Vec<&str> = mixture.split('.').filter(|p| !p.is_empty()).collect();
    if parts.len() < 2 {
        return describe(mixture, reason);
    }
    let failing: Vec<(usize, &str, String)> =
        parts.iter().enumerate().filter_map(|(i, p)| parse(p).err().map(|why| (i, *p, why))).collect();
    match failing.as_slice() {
        [] => describe(mixture, reason),
        [(i, part, why)] => format!("molecule {} of {}, '{part}': {}", i + 1, parts.len(), describe(part, why)),
        many => {
            let first = &many[0];
            format!(
                "{} of its {} molecules cannot be read; the first, molecule {} '{}': {}",
                many.len(),
                parts.len(),
                first.0 + 1,
                first.1,
                describe(first.1, &first.2)
            )
        }
    }
}

/// One molecule's failure in words.
fn describe(smiles: &str, reason: &str) -> String {
    if let Some(atoms) = reason.split("Unkekulized atoms:").nth(1) {
        let n = atoms.split_whitespace().count();
        return format!(
            "its aromatic ring cannot be kekulized: {n} aromatic atoms (written in lower case) do not make a valid \
             aromatic ring; check the ring size, or write the ring with alternating single and double bonds (benzene \
             is C1=CC=CC=C1)"
        );
    }
    if let Some(rest) = reason.split("Explicit valence for atom #").nth(1) {
        // " 0 C, 5, is greater than permitted"
        let fields: Vec<&str> = rest.split(',').map(str::trim).collect();
        let mut atom = fields.first().map(|f| f.split_whitespace()).into_iter().flatten();
        if let (Some(index), Some(element), Some(bonds)) =
            (atom.next().and_then(|i| i.parse::<usize>().ok()), atom.next(), fields.get(1))
        {
            return format!(
                "atom {} ({element}) has {bonds} bonds, more than {element} can have; check its bonds and charges",
                index + 1
            );
        }
    }
    match reason {
        "unclosed ring" => {
            return "a ring is opened and never closed: each ring-closure digit must appear twice".into();
        }
        "extra open parentheses" => return "a branch opened with '(' is never closed".into(),
        "extra close parentheses" => return "a ')' closes a branch that was never opened".into(),
        _ => {}
    }
    if reason.contains("syntax error") {
        if let Some(symbol) = unknown_element(smiles) {
            return format!("'{symbol}' is not an element");
        }
        if looks_like_a_name(smiles) {
            return "this looks like a name, not SMILES: enter the structure as SMILES (ethanol is CCO); a name \
                    can mean more than one structure"
                .into();
        }
        return "it is not valid SMILES (a syntax error)".into();
    }
    reason.to_string()
}

/// The first bracket atom whose symbol is not an element.
fn unknown_element(smiles: &str) -> Option<&str> {
    smiles.split('[').skip(1).filter_map(|b| b.split(']').next()).find_map(|inside| {
        let body = inside.trim_start_matches(|c: char| c.is_ascii_digit());
        let end = body.char_indices().skip(1).find(|(_, c)| !c.is_ascii_lowercase()).map_or(body.len(), |(i, _)| i);
        let symbol = &body[..end];
        if symbol.is_empty() || symbol == "*" {
            return None;
        }
        // `[Cl]`, `[se]`, but also `[CH3]` (C then H): the longest known prefix.
        let known = |s: &str| ELEMENTS.contains(&s) || AROMATIC.contains(&s);
        let first_char = &symbol[..symbol.chars().next().map_or(0, char::len_utf8)];
        (!known(symbol) && !known(first_char)).then_some(symbol)
    })
}

/// Letters a SMILES outside brackets never has in lower case: only aromatic
/// atoms and the second letters of Cl and Br are.
fn looks_like_a_name(smiles: &str) -> bool {
    let letters = smiles.chars().filter(char::is_ascii_alphabetic).count();
    let mut previous = ' ';
    let mut odd = false;
    for c in smiles.chars() {
        if c.is_ascii_lowercase() && !"bcnops".contains(c) && !matches!((previous, c), ('C', 'l') | ('B', 'r')) {
            odd = true;
        }
        previous = c;
    }
    odd && letters >= 3 && !smiles.contains('[')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alone(smiles: &str, reason: &str) -> String {
        explain(smiles, reason, |_| Ok(()))
    }

    #[test]
    fn rdkits_reasons_become_a_chemists() {
        let kekule = alone("c1cccc1", "Can't kekulize mol.  Unkekulized atoms: 0 1 2 3 4");
        assert!(kekule.starts_with("its aromatic ring cannot be kekulized: 5 aromatic atoms"), "{kekule}");
        assert_eq!(
            alone("C(C)(C)(C)(C)C", "Explicit valence for atom # 0 C, 5, is greater than permitted"),
            "atom 1 (C) has 5 bonds, more than C can have; check its bonds and charges"
        );
        assert_eq!(alone("[Xx]", "syntax error"), "'Xx' is not an element");
        assert_eq!(alone("C[Qq]C", "syntax error"), "'Qq' is not an element");
        assert!(alone("aspirin", "syntax error").starts_with("this looks like a name"));
        assert!(alone("ethanol", "syntax error").starts_with("this looks like a name"));
        assert_eq!(alone("C%C", "syntax error"), "it is not valid SMILES (a syntax error)");
        assert!(alone("C1CC", "unclosed ring").starts_with("a ring is opened and never closed"));
        assert_eq!(alone("CC(C", "extra open parentheses"), "a branch opened with '(' is never closed");
    }

    #[test]
    fn real_symbols_are_not_called_unknown() {
        for ok in ["[CH3]", "[13CH4]", "[Na+]", "[se]", "[nH]", "[Cl-]", "[2H]", "[*]"] {
            assert_eq!(unknown_element(ok), None, "{ok}");
        }
        for smiles in ["CCl", "BrCCBr", "c1ccccc1", "CCO", "OC(=O)c1ccccc1"] {
            assert!(!looks_like_a_name(smiles), "{smiles}");
        }
    }

    #[test]
    fn a_mixture_says_which_molecule_is_wrong() {
        let parse = |p: &str| {
            if p == "c1cccc1" { Err("Can't kekulize mol.  Unkekulized atoms: 3 4 5 6 7".into()) } else { Ok(()) }
        };
        let words = explain("CCO.c1cccc1", "Can't kekulize mol.  Unkekulized atoms: 3 4 5 6 7", parse);
        assert!(words.starts_with("molecule 2 of 2, 'c1cccc1': its aromatic ring cannot be kekulized: 5"), "{words}");
        let both = explain("aspirin.C1CC", "syntax error", |p| {
            Err(if p == "C1CC" { "unclosed ring" } else { "syntax error" }.into())
        });
        assert!(
            both.starts_with(
                "2 of its 2 molecules cannot be read; the first, molecule 1 'aspirin': this looks like a name"
            ),
            "{both}"
        );
    }
}
