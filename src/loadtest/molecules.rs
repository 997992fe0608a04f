//! Distinct, valid reaction inputs for load tests and benchmarks: what a load
//! test of a chemistry service should send. One repeated input measures the
//! caches and the coalescer, not the service.
//!
//! Molecule `k` is a reactant built from five parts (a head group, a carbon
//! chain, a middle group, a second chain, a tail group) and a reagent, written
//! as `reactant.reagent`: for example `N#CCCC(O)CCCl.CC(C)=O`. Every part is
//! valid SMILES in any neighbour's place (each combination was checked with
//! RDKit), so all [`COUNT`] molecules parse; they are a few dozen heavy atoms,
//! the size of the model's training reactions. `k` is scrambled by a
//! multiplication modulo [`COUNT`] (a bijection), so neighbouring indices
//! differ in every part, as independent users' molecules do.

const HEADS: [&str; 16] = [
    "N#C",
    "O=C(O)",
    "CC(=O)N",
    "c1ccccc1",
    "c1ccncc1",
    "C1CC1",
    "FC(F)(F)",
    "ClC(Cl)",
    "COC(=O)",
    "CS(=O)(=O)",
    "O=C1CCCN1",
    "Cc1ccc(cc1)",
    "CN(C)",
    "Brc1ccc(cc1)",
    "OC",
    "CC(C)(C)OC(=O)N",
];
const MIDDLES: [&str; 16] = [
    "C(O)",
    "C(=O)",
    "N",
    "O",
    "C(C)(C)",
    "c1ccc(cc1)",
    "C(F)",
    "S(=O)(=O)",
    "C=C",
    "C(N)",
    "C1CCC(CC1)",
    "C(=O)N",
    "C(Cl)",
    "C#C",
    "N(C)",
    "c1cc(ncc1)",
];
const TAILS: [&str; 16] = [
    "O", "N", "Cl", "Br", "F", "c1ccccc1", "C(=O)O", "C(=O)OC", "C#N", "N(C)C", "OC", "C(F)(F)F", "S", "C(=O)Cl",
    "N1CCOCC1", "I",
];
const REAGENTS: [&str; 16] = [
    "CC(C)=O",
    "O",
    "CO",
    "ClCCl",
    "CCN(CC)CC",
    "O=C([O-])[O-].[K+].[K+]",
    "CN(C)C=O",
    "C1CCOC1",
    "[Na+].[OH-]",
    "CC(=O)Cl",
    "O=S(Cl)Cl",
    "[H][H]",
    "CCOC(C)=O",
    "c1ccncc1",
    "OB(O)c1ccccc1",
    "CC#N",
];
/// Chain lengths 0..CHAIN on each side of the middle group.
const CHAIN: u64 = 10;

/// How many distinct molecules there are before they repeat.
pub const COUNT: u64 = 16 * 16 * 16 * CHAIN * CHAIN * 16;

/// Coprime with [`COUNT`] (a prime that divides neither 2 nor 5), so
/// `k * SCRAMBLE % COUNT` visits every molecule once.
const SCRAMBLE: u64 = 1_000_003;

/// The `k`-th molecule (any `k`; they repeat after [`COUNT`]).
pub fn molecule(k: u64) -> String {
    let mut i = (k % COUNT) * SCRAMBLE % COUNT;
    let mut digit = |base: u64| {
        let d = i % base;
        i /= base;
        d as usize
    };
    let (reagent, tail, right, left, middle, head) =
        (digit(16), digit(16), digit(CHAIN), digit(CHAIN), digit(16), digit(16));
    format!(
        "{}{}{}{}{}.{}",
        HEADS[head],
        "C".repeat(left),
        MIDDLES[middle],
        "C".repeat(right),
        TAILS[tail],
        REAGENTS[reagent]
    )
}

/// The first `n` molecules.
pub fn first(n: usize) -> Vec<String> {
    (0..n as u64).map(molecule).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_hundred_thousand_are_distinct_texts() {
        let all = first(100_000);
        let distinct: std::collections::HashSet<&String> = all.iter().collect();
        assert_eq!(distinct.len(), all.len());
        assert!(all.iter().all(|m| m.len() < 80 && m.contains('.')), "{:?}", all.iter().max_by_key(|m| m.len()));
    }

    #[test]
    fn every_combination_of_parts_is_a_molecule_and_most_are_distinct_molecules() {
        // Validity depends only on which parts meet, not on the chain lengths
        // (a carbon chain is valid beside anything a part can meet).
        for head in HEADS {
            for middle in MIDDLES {
                for tail in TAILS {
                    for chains in [("", ""), ("C", ""), ("", "C")] {
                        let reactant = format!("{head}{}{middle}{}{tail}", chains.0, chains.1);
                        crate::chem::prepare(&reactant).unwrap_or_else(|e| panic!("{reactant}: {e}"));
                    }
                }
            }
        }
        for reagent in REAGENTS {
            crate::chem::prepare(reagent).unwrap_or_else(|e| panic!("{reagent}: {e}"));
        }
        // A few spellings meet in one canonical form (symmetric molecules).
        let canonical: std::collections::HashSet<String> =
            first(3_000).iter().map(|m| crate::chem::prepare(m).unwrap()).collect();
        assert!(canonical.len() > 2_990, "{}", canonical.len());
    }

    #[test]
    fn indices_wrap_after_count() {
        assert_eq!(molecule(7), molecule(7 + COUNT));
        assert_ne!(molecule(0), molecule(1));
    }
}
