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
    // MolDraw2DCairo's inline code calls Cairo itself (PNG drawings).
    "cairo",
];

/// Gzips each file under `static/vendor` into `OUT_DIR` and lists them in
/// `vendor.rs` for `http::assets` (the molecule editor: 8 MB as written, about
/// 2 MB gzipped; browsers take it gzipped, and the rare client that does not
/// gets it unzipped on the fly).
fn vendor() {
    use std::io::Write;
    let root = PathBuf::from("static/vendor");
    println!("cargo:rerun-if-changed=static/vendor");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("static/vendor is readable") {
            let path = entry.expect("static/vendor is readable").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut list = String::from("&[\n");
    for (i, path) in files.iter().enumerate() {
        let name = path.strip_prefix(&root).expect("under static/vendor").to_string_lossy().replace('\\', "/");
        let body = std::fs::read(path).expect("a vendored file is readable");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&body).expect("writing to a Vec cannot fail");
        let gz_path = out.join(format!("vendor-{i}.gz"));
        std::fs::write(&gz_path, gz.finish().expect("writing to a Vec cannot fail")).expect("OUT_DIR is writable");
        list.push_str(&format!("    ({name:?}, include_bytes!({:?})),\n", gz_path.display().to_string()));
    }
    list.push(']');
    std::fs::write(out.join("vendor.rs"), list).expect("OUT_DIR is writable");
}

fn main() {
    vendor();
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
