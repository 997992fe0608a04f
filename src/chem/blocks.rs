//! MDL files in and out: a MOL block or an RXN file pasted (or drawn in the
//! editor) becomes SMILES, and predictions leave as SDF records.

use super::{ChemError, rdkit, reason};

/// The longest MOL block or RXN file read: a few hundred atoms' worth.
pub const MAX_BLOCK_BYTES: usize = 256 << 10;

/// What an MDL file held, as SMILES.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Structure {
    Molecule(String),
    /// An RXN file: reactants, reagents (agents) and products.
    Reaction {
        reactants: String,
        agents: String,
        products: String,
    },
}

/// Whether a text is a MOL block, an SDF record or an RXN file rather than
/// SMILES (which never spans lines nor holds `M  END`).
pub fn is_block(text: &str) -> bool {
    let t = text.trim_start();
    t.starts_with("$RXN") || text.contains("M  END") || text.contains("V2000") || text.contains("V3000")
}

/// Reads a MOL block, an SDF's first record or an RXN file.
pub fn read(text: &str) -> Result<Structure, ChemError> {
    if text.len() > MAX_BLOCK_BYTES {
        return Err(ChemError(format!("the file has {} bytes; the limit is {MAX_BLOCK_BYTES}", text.len())));
    }
    if text.contains('\0') {
        return Err(ChemError("a MOL or RXN file cannot hold a NUL character".into()));
    }
    // MDL files are line-based; Windows line ends are read as Unix ones.
    let text = text.trim_start_matches(['\u{feff}']).replace("\r\n", "\n");
    let rxn = text.trim_start().starts_with("$RXN");
    let text = if rxn { text.trim_start().to_string() } else { text };
    let smiles = rdkit::block_to_smiles(&text).map_err(|e| {
        let what = if rxn { "RXN file" } else { "MOL block" };
        ChemError(format!("the {what} cannot be read: {}", reason(e.what())))
    })?;
    if !rxn {
        if smiles.is_empty() {
            return Err(ChemError("the MOL block has no atoms".into()));
        }
        return Ok(Structure::Molecule(smiles));
    }
    let mut parts = smiles.splitn(3, '>').map(String::from);
    let (reactants, agents, products) =
        (parts.next().unwrap_or_default(), parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    if reactants.is_empty() {
        return Err(ChemError("the RXN file has no reactants".into()));
    }
    Ok(Structure::Reaction { reactants, agents, products })
}

/// A MOL block (V2000, 2D coordinates) of a SMILES.
pub fn mol_block(smiles: &str) -> Result<String, ChemError> {
    let smiles: String = smiles.split_whitespace().collect();
    rdkit::mol_block(&smiles).map_err(|e| ChemError(reason(e.what())))
}

/// One SDF record: `title` on its first line (one line, at most 80
/// characters), the molecule's block, then each property as
/// `> <name>` and its value, then `$$$$`. Property values are one line each
/// (line breaks become spaces: the format ends a value at a blank line).
pub fn sdf_record(smiles: &str, title: &str, properties: &[(&str, String)]) -> Result<String, ChemError> {
    let block = mol_block(smiles)?;
    let title: String = title.chars().filter(|c| !c.is_control()).take(80).collect();
    let mut out = title;
    out.push_str(block.find('\n').map_or(block.as_str(), |i| &block[i..]));
    for (name, value) in properties {
        let value = value.replace(['\r', '\n'], " ");
        out.push_str(&format!("> <{name}>\n{}\n\n", if value.is_empty() { " " } else { &value }));
    }
    out.push_str("$$$$\n");
    Ok(out)
}

/// An RXN file (V2000) of a reaction written as SMILES.
pub fn rxn_file(reactants: &str, products: &str) -> Result<String, ChemError> {
    let mut out = String::from("$RXN\n\n      translation-front\n\n");
    let (reactants, products): (Vec<&str>, Vec<&str>) = (
        reactants.split('.').filter(|s| !s.is_empty()).collect(),
        products.split('.').filter(|s| !s.is_empty()).collect(),
    );
    out.push_str(&format!("{:>3}{:>3}\n", reactants.len(), products.len()));
    for smiles in reactants.iter().chain(&products) {
        out.push_str("$MOL\n");
        out.push_str(&mol_block(smiles)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mol_blocks_and_sdf_records_read_back_as_the_same_molecule() {
        let block = mol_block("CC(=O)Oc1ccccc1C(=O)O").unwrap();
        assert!(block.contains("V2000") && block.contains("M  END"), "{block}");
        assert!(is_block(&block));
        assert_eq!(read(&block).unwrap(), Structure::Molecule("CC(=O)Oc1ccccc1C(=O)O".into()));
        let record = sdf_record("CCO", "line 1, rank 1", &[("rank", "1".into()), ("source", "C\nC".into())]).unwrap();
        assert!(record.starts_with("line 1, rank 1\n"), "{record}");
        assert!(record.ends_with("> <rank>\n1\n\n> <source>\nC C\n\n$$$$\n"), "{record}");
        assert_eq!(read(&record).unwrap(), Structure::Molecule("CCO".into()));
        assert_eq!(read(&block.replace('\n', "\r\n")).unwrap(), Structure::Molecule("CC(=O)Oc1ccccc1C(=O)O".into()));
    }

    #[test]
    fn rxn_files_give_reactants_and_products() {
        let rxn = rxn_file("CCO.CC(=O)O", "CCOC(C)=O").unwrap();
        assert!(is_block(&rxn));
        assert_eq!(
            read(&rxn).unwrap(),
            Structure::Reaction {
                reactants: "CCO.CC(=O)O".into(),
                agents: String::new(),
                products: "CCOC(C)=O".into()
            }
        );
    }

    #[test]
    fn broken_files_are_refused_in_words() {
        assert!(!is_block("CCO"));
        let e = read("\n  junk\n\n  2  1  0  0  0  0  0  0  0  0999 V2000\nM  END\n").unwrap_err().0;
        assert!(e.starts_with("the MOL block cannot be read"), "{e}");
        let e = read("$RXN\n\n\n\n  1  1\n$MOL\n").unwrap_err().0;
        assert!(e.starts_with("the RXN file cannot be read"), "{e}");
        assert!(read(&"x".repeat(MAX_BLOCK_BYTES + 1)).unwrap_err().0.contains("limit"));
    }
}
