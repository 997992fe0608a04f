//! Builds the small C++ bridge to RDKit (src/chem/rdkit.cc) and links the RDKit
//! libraries it uses. RDKit comes from the system: on Debian and Ubuntu,
//! `apt-get install librdkit-dev libboost-dev libboost-serialization-dev libcairo2-dev`
//! (Cairo's headers: RDKit draws PNGs with it).
//! `RDKIT_INCLUDE_DIR` and `RDKIT_LIB_DIR` point elsewhere (e.g. a conda env).

use std::path::PathBuf;

const INSTALL_HINT: &str = "RDKit is needed to build translation-front: install it with \
    `sudo apt-get install -y librdkit-dev libboost-dev libboost-serialization-dev libcairo2-dev` \
    (Debian/Ubuntu), or set RDKIT_INCLUDE_DIR and RDKIT_LIB_DIR";

/// RDKit libraries the bridge calls directly; each one pulls in its own
/// dependencies through the dynamic linker.
const LIBS: &[&str] = &[
    "RDKitMolDraw2D",
    "RDKitChemReactions",
    "RDKitFileParsers",
    "RDKitDepictor",
    "RDKitSmilesParse",
    "RDKitGraphMol",
    "RDKitRDGeneral",
];

fn main() {
    println!("cargo:rerun-if-changed=src/chem/rdkit.rs");
    println!("cargo:rerun-if-changed=src/chem/rdkit.cc");
    println!("cargo:rerun-if-changed=src/chem/rdkit.h");
    println!("cargo:rerun-if-env-changed=RDKIT_INCLUDE_DIR");
    println!("cargo:rerun-if-env-changed=RDKIT_LIB_DIR");
    println!("cargo:rerun-if-env-changed=CAIRO_INCLUDE_DIR");

    let include = PathBuf::from(std::env::var("RDKIT_INCLUDE_DIR").unwrap_or_else(|_| "/usr/include/rdkit".into()));
    let lib = PathBuf::from(std::env::var("RDKIT_LIB_DIR").unwrap_or_else(|_| "/usr/lib".into()));
    let cairo = PathBuf::from(std::env::var("CAIRO_INCLUDE_DIR").unwrap_or_else(|_| "/usr/include/cairo".into()));
    let header = include.join("GraphMol/SmilesParse/SmilesParse.h");
    let library = lib.join("libRDKitSmilesParse.so");
    if !header.is_file() || !library.exists() || !cairo.join("cairo.h").is_file() {
        println!("cargo::error={INSTALL_HINT}");
        eprintln!(
            "error: {INSTALL_HINT} (looked for {}, {} and {})",
            header.display(),
            library.display(),
            cairo.display()
        );
        std::process::exit(1);
    }

    cxx_build::bridge("src/chem/rdkit.rs")
        .file("src/chem/rdkit.cc")
        .include(&include)
        .include(&cairo)
        .std("c++17")
        // RDKit's and Boost's headers warn a lot; our own file is small.
        .warnings(false)
        .compile("translation-front-rdkit");

    println!("cargo:rustc-link-search=native={}", lib.display());
    for name in LIBS {
        println!("cargo:rustc-link-lib=dylib={name}");
    }
}
