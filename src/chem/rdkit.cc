// RDKit behind a few plain functions. RDKit reports a SMILES syntax error by
// writing to its error log and returning null; the log is a process-wide
// stream, so we point it at a buffer that is thread-local: each call reads
// only the lines that its own parse wrote, whatever other threads are doing.
#include "translation-front/src/chem/rdkit.h"

#include "translation-front/src/chem/rdkit.rs.h"

#include <GraphMol/ChemReactions/Reaction.h>
#include <GraphMol/ChemReactions/ReactionParser.h>
#include <GraphMol/Depictor/RDDepictor.h>
#include <GraphMol/FileParsers/FileParsers.h>
#include <GraphMol/MolDraw2D/MolDraw2DCairo.h>

#include <GraphMol/MolDraw2D/MolDraw2DSVG.h>
#include <GraphMol/MolDraw2D/MolDraw2DUtils.h>
#include <GraphMol/MolOps.h>
#include <GraphMol/SmilesParse/SmilesParse.h>
#include <GraphMol/SmilesParse/SmilesWrite.h>
#include <RDGeneral/RDLog.h>

#include <memory>
#include <mutex>
#include <stdexcept>
#include <streambuf>
#include <string>
#include <string_view>

namespace tf_chem {
namespace {

thread_local std::string captured;

class CaptureBuf : public std::streambuf {
 protected:
  int overflow(int c) override {
    if (c != traits_type::eof()) captured.push_back(static_cast<char>(c));
    return c;
  }
  std::streamsize xsputn(const char *s, std::streamsize n) override {
    captured.append(s, static_cast<size_t>(n));
    return n;
  }
};

void install_logs() {
  static std::once_flag once;
  std::call_once(once, [] {
    static CaptureBuf buf;
    static std::ostream stream(&buf);
    rdErrorLog = std::make_shared<boost::logging::rdLogger>(&stream);
    // Warnings (e.g. about hydrogens) are not errors: keep them out of stderr.
    rdWarningLog.reset();
    rdInfoLog.reset();
  });
}

// Stereochemistry is written only with '@' (chirality) and '/' '\' (double
// bond geometry): a SMILES without them describes a molecule without any.
bool writes_stereo(rust::Str smiles) {
  return std::string_view(smiles.data(), smiles.size()).find_first_of("@/\\") != std::string_view::npos;
}

// `perceive`: RDKit's full reading (what SmilesToMol does by default). Else,
// for a SMILES that writes no stereochemistry (the caller checks
// `writes_stereo`), no stereo perception follows parsing (it ranks every atom
// that could be a stereocentre, a fifth of a small molecule's
// canonicalization, to find nothing), and the molecule is marked as perceived
// so that writing it does not start over.
// Everything else is the parser's own: sanitization, then explicit hydrogens
// removed (tests hold the two readings to the same canonical SMILES).
std::unique_ptr<RDKit::RWMol> parse(rust::Str smiles, bool perceive = true) {
  install_logs();
  captured.clear();
  std::string text(smiles.data(), smiles.size());
  std::unique_ptr<RDKit::RWMol> mol;
  try {
    if (perceive) {
      mol.reset(RDKit::SmilesToMol(text));
    } else {
      RDKit::SmilesParserParams params;
      params.sanitize = false;
      params.removeHs = false;
      mol.reset(RDKit::SmilesToMol(text, params));
      if (mol) {
        bool implicit_only = false, update_explicit_count = true, sanitize = true;
        RDKit::MolOps::removeHs(*mol, implicit_only, update_explicit_count, sanitize);
        mol->setProp(RDKit::common_properties::_StereochemDone, 1, true);
      }
    }
  } catch (const std::exception &e) {
    // Sanitization: valence, aromaticity (kekulization), ring problems.
    throw std::runtime_error(e.what());
  }
  if (!mol) {
    std::string why = captured.empty() ? "not a valid SMILES string" : captured;
    captured.clear();
    throw std::runtime_error(why);
  }
  return mol;
}

void check_atoms(unsigned int atoms, uint32_t max_atoms) {
  if (atoms > max_atoms) {
    throw std::runtime_error("too many atoms to draw (" + std::to_string(atoms) + "; the limit is " +
                             std::to_string(max_atoms) + ")");
  }
}

std::unique_ptr<RDKit::ChemicalReaction> parse_reaction(rust::Str text) {
  install_logs();
  captured.clear();
  std::unique_ptr<RDKit::ChemicalReaction> rxn;
  try {
    rxn.reset(RDKit::RxnSmartsToChemicalReaction(std::string(text.data(), text.size()), nullptr, true, false));
  } catch (const std::exception &e) {
    throw std::runtime_error(e.what());
  }
  if (!rxn) {
    std::string why = captured.empty() ? "not a valid reaction SMILES" : captured;
    captured.clear();
    throw std::runtime_error(why);
  }
  return rxn;
}

// Writes a reaction's molecules of one role as one SMILES, joined by '.'.
std::string join(const RDKit::MOL_SPTR_VECT &mols) {
  std::string out;
  for (const auto &tpl : mols) {
    RDKit::RWMol mol(*tpl);
    RDKit::MolOps::sanitizeMol(mol);
    if (!out.empty()) out.push_back('.');
    out += RDKit::MolToSmiles(mol);
  }
  return out;
}

rust::Vec<uint8_t> bytes(const std::string &text) {
  rust::Vec<uint8_t> out;
  out.reserve(text.size());
  for (char c : text) out.push_back(static_cast<uint8_t>(c));
  return out;
}

}  // namespace

rust::String canonical_smiles(rust::Str smiles, bool remove_stereo) {
  bool stereo = writes_stereo(smiles);
  auto mol = parse(smiles, stereo);
  // Without stereochemistry written there is none to remove.
  if (remove_stereo && stereo) RDKit::MolOps::removeStereochemistry(*mol);
  return rust::String(RDKit::MolToSmiles(*mol));
}

rust::String canonical_smiles_fully_perceived(rust::Str smiles, bool remove_stereo) {
  auto mol = parse(smiles);
  if (remove_stereo) RDKit::MolOps::removeStereochemistry(*mol);
  return rust::String(RDKit::MolToSmiles(*mol));
}

rust::Vec<uint8_t> draw(rust::Str smiles, bool reaction, bool png, uint32_t width, uint32_t height,
                        uint32_t max_atoms, rust::Slice<const Highlight> highlights) {
  std::unique_ptr<RDKit::MolDraw2D> drawer;
  // The molecule as drawn (coordinates, kekulized), for the SVG's metadata.
  std::unique_ptr<RDKit::RWMol> drawn;
  if (png) {
    drawer.reset(new RDKit::MolDraw2DCairo(static_cast<int>(width), static_cast<int>(height)));
  } else {
    drawer.reset(new RDKit::MolDraw2DSVG(static_cast<int>(width), static_cast<int>(height)));
    drawer->drawOptions().clearBackground = false;
  }
  if (reaction) {
    auto rxn = parse_reaction(smiles);
    unsigned int atoms = 0;
    for (const auto &m : rxn->getReactants()) atoms += m->getNumAtoms();
    for (const auto &m : rxn->getAgents()) atoms += m->getNumAtoms();
    for (const auto &m : rxn->getProducts()) atoms += m->getNumAtoms();
    check_atoms(atoms, max_atoms);
    try {
      drawer->drawReaction(*rxn);
    } catch (const std::exception &e) {
      throw std::runtime_error(std::string("could not draw the reaction: ") + e.what());
    }
  } else {
    auto mol = parse(smiles);
    check_atoms(mol->getNumAtoms(), max_atoms);
    std::vector<int> atoms;
    std::map<int, RDKit::DrawColour> colours;
    std::map<int, double> radii;
    for (const auto &h : highlights) {
      if (h.atom >= mol->getNumAtoms()) {
        throw std::runtime_error("there is no atom " + std::to_string(h.atom + 1) + " to highlight");
      }
      double w = std::min(1.0, std::max(0.0, static_cast<double>(h.weight)));
      atoms.push_back(static_cast<int>(h.atom));
      // From a pale to a strong orange, as the heatmap's scale.
      colours[static_cast<int>(h.atom)] = RDKit::DrawColour(1.0, 0.85 - 0.45 * w, 0.6 - 0.6 * w, 0.35 + 0.55 * w);
      radii[static_cast<int>(h.atom)] = 0.25 + 0.15 * w;
    }
    try {
      drawn.reset(new RDKit::RWMol(*mol));
      RDKit::MolDraw2DUtils::prepareMolForDrawing(*drawn);
      drawer->drawMolecule(*drawn, "", atoms.empty() ? nullptr : &atoms, nullptr, atoms.empty() ? nullptr : &colours,
                           nullptr, atoms.empty() ? nullptr : &radii);
    } catch (const std::exception &e) {
      throw std::runtime_error(std::string("could not draw the structure: ") + e.what());
    }
  }
  if (png) {
    auto cairo = static_cast<RDKit::MolDraw2DCairo *>(drawer.get());
    cairo->finishDrawing();
    return bytes(cairo->getDrawingText());
  }
  auto svg = static_cast<RDKit::MolDraw2DSVG *>(drawer.get());
  // Each atom's place in the picture (RDKit's metadata: drawing-x and
  // drawing-y by atom, numbered from 1), so a page can tell which atom a
  // pointer is over.
  if (drawn) svg->addMoleculeMetadata(*drawn);
  svg->finishDrawing();
  return bytes(svg->getDrawingText());
}

rust::String mol_block(rust::Str smiles) {
  auto mol = parse(smiles);
  RDDepict::compute2DCoords(*mol);
  return rust::String(RDKit::MolToMolBlock(*mol));
}

rust::String block_to_smiles(rust::Str block) {
  install_logs();
  captured.clear();
  std::string text(block.data(), block.size());
  try {
    if (text.compare(0, 4, "$RXN") == 0) {
      std::unique_ptr<RDKit::ChemicalReaction> rxn(RDKit::RxnBlockToChemicalReaction(text));
      if (!rxn) throw std::runtime_error("not a readable RXN file");
      return rust::String(join(rxn->getReactants()) + ">" + join(rxn->getAgents()) + ">" +
                          join(rxn->getProducts()));
    }
    auto end = text.find("$$$$");
    if (end != std::string::npos) text.resize(end);
    std::unique_ptr<RDKit::RWMol> mol(RDKit::MolBlockToMol(text));
    if (!mol) {
      std::string why = captured.empty() ? "not a readable MOL block" : captured;
      captured.clear();
      throw std::runtime_error(why);
    }
    return rust::String(RDKit::MolToSmiles(*mol));
  } catch (const std::exception &e) {
    throw std::runtime_error(e.what());
  }
}

}  // namespace tf_chem
