//! The bridge to RDKit's C++ (rdkit.h, rdkit.cc). The only foreign code in the
//! crate; `cxx` checks the signatures on both sides at build time, and C++
//! exceptions arrive as `Err(cxx::Exception)`.

#[cxx::bridge(namespace = "tf_chem")]
// The fully perceived reading is what tests hold the other to.
#[cfg_attr(not(test), allow(dead_code))]
mod ffi {
    /// An atom to highlight in a drawing, by its index in the SMILES as
    /// written, and how strongly (0 to 1).
    struct Highlight {
        atom: u32,
        weight: f32,
    }

    unsafe extern "C++" {
        include!("translation-front/src/chem/rdkit.h");

        fn canonical_smiles(smiles: &str, remove_stereo: bool) -> Result<String>;
        fn canonical_smiles_fully_perceived(smiles: &str, remove_stereo: bool) -> Result<String>;
        fn draw(
            smiles: &str,
            reaction: bool,
            png: bool,
            width: u32,
            height: u32,
            max_atoms: u32,
            highlights: &[Highlight],
        ) -> Result<Vec<u8>>;
        fn mol_block(smiles: &str) -> Result<String>;
        fn block_to_smiles(block: &str) -> Result<String>;
    }
}

#[cfg(test)]
pub use ffi::canonical_smiles_fully_perceived;
pub use ffi::{Highlight, block_to_smiles, canonical_smiles, draw, mol_block};
