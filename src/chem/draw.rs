//! Structure drawings by RDKit: a molecule or mixture (its atoms optionally
//! highlighted), or a reaction scheme, as SVG (transparent, recoloured for a
//! dark scheme by its own stylesheet) or PNG (on white, for downloads).

use super::{ChemError, MAX_DRAW_ATOMS, atoms, rdkit, reason, words};

/// What to draw.
#[derive(Debug, Clone, PartialEq)]
pub enum Picture {
    /// A molecule or mixture, with atoms (index in the SMILES as written,
    /// from 0) highlighted by weight (0 to 1).
    Molecule { smiles: String, highlights: Vec<(u32, f32)> },
    /// A reaction scheme: reactants (and reagents) -> products.
    Reaction { reactants: String, products: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Image {
    Svg,
    Png,
}

/// Tokens joined, as for a translation; whatever follows a space is not read
/// as RDKit's extensions (a CXSMILES label once made a 2.9 MB drawing).
fn joined(smiles: &str) -> Result<String, ChemError> {
    let smiles: String = smiles.split_whitespace().collect();
    if smiles.is_empty() || smiles.chars().any(char::is_control) {
        return Err(ChemError("there is no SMILES to draw".into()));
    }
    Ok(smiles)
}

/// Checks each molecule of a part, for an error in a chemist's words.
fn explain(smiles: &str, e: &cxx::Exception) -> ChemError {
    let one = |part: &str| rdkit::canonical_smiles(part, false).map(drop).map_err(|e| reason(e.what()));
    ChemError(words::explain(smiles, &reason(e.what()), one))
}

/// A drawing of `picture` in `width` x `height` pixels, refused above
/// [`MAX_DRAW_ATOMS`] atoms (counted before RDKit reads anything).
pub fn draw(picture: &Picture, image: Image, width: u32, height: u32) -> Result<Vec<u8>, ChemError> {
    let png = image == Image::Png;
    let bytes = match picture {
        Picture::Molecule { smiles, highlights } => {
            let smiles = joined(smiles)?;
            bounded(atoms::count(&smiles))?;
            let highlights: Vec<rdkit::Highlight> =
                highlights.iter().map(|&(atom, weight)| rdkit::Highlight { atom, weight }).collect();
            rdkit::draw(&smiles, false, png, width, height, MAX_DRAW_ATOMS, &highlights)
                .map_err(|e| explain(&smiles, &e))?
        }
        Picture::Reaction { reactants, products } => {
            let (reactants, products) = (joined(reactants)?, joined(products)?);
            bounded(atoms::count(&reactants) + atoms::count(&products))?;
            // Each side read first, so an error names the molecule at fault.
            for side in [&reactants, &products] {
                rdkit::canonical_smiles(side, false).map_err(|e| explain(side, &e))?;
            }
            let scheme = format!("{reactants}>>{products}");
            rdkit::draw(&scheme, true, png, width, height, MAX_DRAW_ATOMS, &[])
                .map_err(|e| ChemError(reason(e.what())))?
        }
    };
    Ok(match image {
        Image::Png => bytes,
        Image::Svg => themed(&String::from_utf8_lossy(&bytes)).into_bytes(),
    })
}

fn bounded(atoms: usize) -> Result<(), ChemError> {
    if atoms > MAX_DRAW_ATOMS as usize {
        return Err(ChemError(format!("too many atoms to draw ({atoms}; the limit is {MAX_DRAW_ATOMS})")));
    }
    Ok(())
}

/// An SVG drawing of a molecule or mixture.
pub fn depict(smiles: &str, width: u32, height: u32) -> Result<String, ChemError> {
    let picture = Picture::Molecule { smiles: smiles.to_string(), highlights: Vec::new() };
    draw(&picture, Image::Svg, width, height).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// RDKit's colours that need another shade on a dark background: bonds and
/// carbon labels (black), and the two darkest element colours.
const DARK_THEME: &str = "<style>@media (prefers-color-scheme: dark){\
    [style*='#000000']{stroke:#e7eaee!important}[fill='#000000']{fill:#e7eaee}\
    [style*='#0000FF']{stroke:#8fb3ff!important}[fill='#0000FF']{fill:#8fb3ff}\
    [style*='#FF0000']{stroke:#ff7a7a!important}[fill='#FF0000']{fill:#ff7a7a}}</style>";

/// Drops the XML prolog (RDKit declares latin-1; the drawing is ASCII) and adds
/// the dark-scheme stylesheet after the header.
fn themed(svg: &str) -> String {
    let body = match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    };
    let mut out = String::with_capacity(body.len() + DARK_THEME.len());
    match body.find("<!-- END OF HEADER -->") {
        Some(i) => {
            out.push_str(&body[..i]);
            out.push_str(DARK_THEME);
            out.push_str(&body[i..]);
        }
        None => out.push_str(body),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svg(picture: &Picture) -> String {
        String::from_utf8(draw(picture, Image::Svg, 400, 200).unwrap()).unwrap()
    }

    #[test]
    fn reactions_are_drawn_as_schemes_with_an_arrow() {
        let scheme = Picture::Reaction { reactants: "CCO.CC(=O)O".into(), products: "CCOC(C)=O".into() };
        let drawn = svg(&scheme);
        assert!(drawn.starts_with("<svg"), "{}", &drawn[..80]);
        // The product's oxygens and the reactants': more than one molecule's.
        let plain = depict("CCOC(C)=O", 400, 200).unwrap();
        assert!(drawn.len() > plain.len() * 3 / 2, "{} vs {}", drawn.len(), plain.len());
        let bad = Picture::Reaction { reactants: "CCO.c1cccc1".into(), products: "CC".into() };
        let e = draw(&bad, Image::Svg, 400, 200).unwrap_err().0;
        assert!(e.contains("molecule 2 of 2") && e.contains("c1cccc1"), "{e}");
    }

    #[test]
    fn highlights_colour_the_atoms_asked_for_and_no_others() {
        let plain = svg(&Picture::Molecule { smiles: "CCO".into(), highlights: vec![] });
        let lit = svg(&Picture::Molecule { smiles: "CCO".into(), highlights: vec![(2, 1.0), (0, 0.2)] });
        assert_ne!(plain, lit);
        assert_eq!(lit.matches("class='atom-").count() - plain.matches("class='atom-").count(), 2, "{lit}");
        let e = draw(&Picture::Molecule { smiles: "CCO".into(), highlights: vec![(3, 1.0)] }, Image::Svg, 200, 200);
        assert!(e.unwrap_err().0.contains("no atom 4"));
    }

    #[test]
    fn pngs_are_pngs_of_the_size_asked_for() {
        let png =
            draw(&Picture::Molecule { smiles: "c1ccccc1O".into(), highlights: vec![] }, Image::Png, 320, 200).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // IHDR: width and height, big-endian, after the chunk's length and name.
        assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 320);
        assert_eq!(u32::from_be_bytes(png[20..24].try_into().unwrap()), 200);
        let scheme = Picture::Reaction { reactants: "CCO".into(), products: "CC=O".into() };
        assert_eq!(&draw(&scheme, Image::Png, 500, 200).unwrap()[..4], b"\x89PNG");
    }
}
