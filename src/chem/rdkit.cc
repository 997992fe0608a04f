// RDKit behind three plain functions. RDKit reports a SMILES syntax error by
// writing to its error log and returning null; the log is a process-wide
// stream, so we point it at a buffer that is thread-local: each call reads
// only the lines that its own parse wrote, whatever other threads are doing.
#include "translation-front/src/chem/rdkit.h"

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

std::unique_ptr<RDKit::RWMol> parse(rust::Str smiles) {
  install_logs();
  captured.clear();
  std::string text(smiles.data(), smiles.size());
  std::unique_ptr<RDKit::RWMol> mol;
  try {
    mol.reset(RDKit::SmilesToMol(text));
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

}  // namespace

rust::String canonical_smiles(rust::Str smiles, bool remove_stereo) {
  auto mol = parse(smiles);
  if (remove_stereo) RDKit::MolOps::removeStereochemistry(*mol);
  return rust::String(RDKit::MolToSmiles(*mol));
}

rust::String draw_svg(rust::Str smiles, uint32_t width, uint32_t height, uint32_t max_atoms) {
  auto mol = parse(smiles);
  if (mol->getNumAtoms() > max_atoms) {
    throw std::runtime_error("too many atoms to draw (" + std::to_string(mol->getNumAtoms()) +
                             "; the limit is " + std::to_string(max_atoms) + ")");
  }
  try {
    RDKit::MolDraw2DSVG drawer(static_cast<int>(width), static_cast<int>(height));
    drawer.drawOptions().clearBackground = false;
    RDKit::MolDraw2DUtils::prepareAndDrawMolecule(drawer, *mol);
    drawer.finishDrawing();
    return rust::String(drawer.getDrawingText());
  } catch (const std::exception &e) {
    throw std::runtime_error(std::string("could not draw the structure: ") + e.what());
  }
}

}  // namespace tf_chem
