//! The bridge to RDKit's C++ (rdkit.h, rdkit.cc). The only foreign code in the
//! crate; `cxx` checks the signatures on both sides at build time, and C++
//! exceptions arrive as `Err(cxx::Exception)`.

#[cxx::bridge(namespace = "tf_chem")]
mod ffi {
    unsafe extern "C++" {
        include!("translation-front/src/chem/rdkit.h");

        fn canonical_smiles(smiles: &str, remove_stereo: bool) -> Result<String>;
        fn draw_svg(smiles: &str, width: u32, height: u32, max_atoms: u32) -> Result<String>;
    }
}

pub use ffi::{canonical_smiles, draw_svg};
