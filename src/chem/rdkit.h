// The C++ side of the RDKit bridge (see rdkit.rs). Every function takes and
// returns plain strings; RDKit's exceptions and parse messages become one
// std::runtime_error, which cxx hands to Rust as an Err.
#pragma once
#include <cstdint>

#include "rust/cxx.h"

namespace tf_chem {

// The canonical SMILES of `smiles`, stereochemistry removed when asked.
rust::String canonical_smiles(rust::Str smiles, bool remove_stereo);

// An SVG drawing of `smiles` on a transparent background, refused above
// `max_atoms` atoms (hydrogens included once explicit).
rust::String draw_svg(rust::Str smiles, uint32_t width, uint32_t height, uint32_t max_atoms);

}  // namespace tf_chem
