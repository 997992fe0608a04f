// The C++ side of the RDKit bridge (see rdkit.rs). Every function takes and
// returns plain strings; RDKit's exceptions and parse messages become one
// std::runtime_error, which cxx hands to Rust as an Err.
#pragma once
#include <cstdint>

#include "rust/cxx.h"

namespace tf_chem {

struct Highlight;

// The canonical SMILES of `smiles`, stereochemistry removed when asked.
rust::String canonical_smiles(rust::Str smiles, bool remove_stereo);

// The same through RDKit's default reading, stereo perception always run:
// what `canonical_smiles` must agree with (tests and the codec benchmark).
rust::String canonical_smiles_fully_perceived(rust::Str smiles, bool remove_stereo);

// A drawing as bytes: of a molecule (`reaction` false), with its atoms in
// `highlights` marked, or of a reaction written `reactants>>products`; SVG on a
// transparent background, or PNG on white.
rust::Vec<uint8_t> draw(rust::Str smiles, bool reaction, bool png, uint32_t width, uint32_t height,
                        uint32_t max_atoms, rust::Slice<const Highlight> highlights);

// A V2000 MOL block of `smiles` with 2D coordinates.
rust::String mol_block(rust::Str smiles);

// The SMILES of a MOL block (or an SDF's first record), or the reaction SMILES
// (`reactants>agents>products`) of an RXN file.
rust::String block_to_smiles(rust::Str block);

}  // namespace tf_chem
