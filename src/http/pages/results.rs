//! The results view: one translation's n-best list as the page shows it
//! (ranks, probabilities in words, drawings, heatmaps, the share link). The
//! translate page renders it; so does the API for `Accept: text/html`.

use askama::Template;

use crate::http::heatmap::Heatmap;
use crate::http::{depict, structure};
use crate::inference::tokenize::Tokens;
use crate::translate::atom_map::{AtomMap, atom_map};
use crate::translate::{TranslateInput, TranslationView};

pub struct Item {
    pub rank: usize,
    pub text: String,
    pub score: String,
    pub percent: String,
    pub bar: String,
    /// SMILES mode: the scheme input -> this prediction, when it is a molecule.
    pub scheme: Option<Scheme>,
    /// SMILES mode: `reactants>>product`, ready to paste into other tools.
    pub reaction: Option<String>,
    /// Folded duplicates: the model's ranks this result stands for.
    pub merged: Option<String>,
    /// SMILES mode: the drawing of the canonical form, when it is a molecule.
    pub structure: Option<Structure>,
    /// SMILES mode: the prediction is not a molecule.
    pub invalid: bool,
    /// The prediction is the expected product.
    pub correct: bool,
    pub heatmap: Option<Heatmap>,
    /// SMILES mode: the attention on the atoms, when both texts' atoms are
    /// known.
    pub atoms: Option<AtomView>,
}

/// A structure drawing on the page: the image's URL and its SMILES, a larger
/// picture, and its files.
pub struct Structure {
    pub url: String,
    pub smiles: String,
    /// The same drawing at 900 x 660 (the picture links it).
    pub large: String,
    /// A small drawing for the top-k grid.
    pub thumb: String,
    pub png: String,
    pub mol: String,
}

impl Structure {
    fn of(smiles: &str) -> Self {
        let url = depict::url(smiles);
        Structure {
            large: format!("{url}&width=900&height=660"),
            thumb: format!("{url}&width=160&height=120"),
            png: format!("{url}&format=png&width=900&height=660"),
            mol: structure::mol_url(smiles),
            url,
            smiles: smiles.to_string(),
        }
    }
}

/// Attention on the atoms of one prediction: a product atom chosen (the
/// clearest first), the product with it marked and the input with the atoms it
/// attended to marked; `data` holds the same for every product atom, for the
/// page's script to switch between without asking the server.
pub struct AtomView {
    pub options: Vec<(usize, String)>,
    pub selected: usize,
    pub label: String,
    pub product_url: String,
    pub input_url: String,
    pub readout: String,
    /// JSON: `[{"l": label, "p": product drawing, "i": input drawing, "r": readout}]`.
    pub data: String,
}

/// Input atoms shown per product atom: the strongest, down to a tenth of it.
const ATOMS_SHOWN: usize = 8;

impl AtomView {
    fn of(map: &AtomMap, input: &str, product: &str) -> Self {
        let label = |symbols: &[String], a: usize| format!("{} {}", symbols[a], a + 1);
        let entry = |p: usize| {
            let attended = map.attended(p, ATOMS_SHOWN);
            let top = attended.first().map_or(1.0, |a| a.1).max(f32::EPSILON);
            let marks: Vec<String> = attended.iter().map(|(a, w)| format!("{}:{:.2}", a + 1, w / top)).collect();
            let words: Vec<String> = attended
                .iter()
                .take(3)
                .map(|(a, w)| format!("{} ({:.0}%)", label(&map.input, *a), w * 100.0))
                .collect();
            let readout = if words.is_empty() {
                format!("The product's atom {} attended to no atom of the input.", label(&map.product, p))
            } else {
                format!(
                    "The product's atom {} attended most to the input's {}.",
                    label(&map.product, p),
                    words.join(", ")
                )
            };
            (
                label(&map.product, p),
                format!("{}&highlight={}", depict::url(product), p + 1),
                format!("{}&highlight={}", depict::url(input), marks.join(",")),
                readout,
            )
        };
        let entries: Vec<_> = (0..map.product.len()).map(entry).collect();
        let data = serde_json::to_string(
            &entries.iter().map(|(l, p, i, r)| serde_json::json!({"l": l, "p": p, "i": i, "r": r})).collect::<Vec<_>>(),
        )
        .unwrap_or_default();
        let selected = map.clearest();
        let (label, product_url, input_url, readout) = entries[selected].clone();
        AtomView {
            options: entries.iter().enumerate().map(|(i, e)| (i, e.0.clone())).collect(),
            selected,
            label,
            product_url,
            input_url,
            readout,
            data,
        }
    }
}

/// A reaction scheme (input -> prediction): the drawing and its files.
pub struct Scheme {
    pub url: String,
    pub large: String,
    pub png: String,
    pub rxn: String,
}

impl Scheme {
    fn of(reactants: &str, product: &str) -> Self {
        let url = depict::reaction_url(reactants, product);
        Scheme {
            large: format!("{url}&width=1200&height=400"),
            png: format!("{url}&format=png&width=1200&height=400"),
            rxn: structure::rxn_url(reactants, product),
            url,
        }
    }
}

#[derive(Template)]
#[template(path = "results.html")]
pub struct ResultsFragment {
    count: usize,
    beam: u32,
    /// The query of a link that asks for these results again (`GET /?…&run=1`).
    share: String,
    /// Answered from the result cache.
    cached: bool,
    elapsed: String,
    source: Tokens,
    /// Up to 60 tokens show as chips; more as one line of text, so a long
    /// input does not become thousands of elements.
    source_count: usize,
    input: Option<Structure>,
    target: Option<Structure>,
    /// The target was given and no prediction is it.
    target_missed: bool,
    /// Why there are no heatmaps, when attention was left out.
    attention_omitted: Option<String>,
    /// How the input was read, in words (stereochemistry removed).
    notices: Vec<String>,
    /// SMILES mode: the predictions as an SDF download (`/?…&format=sdf`).
    sdf: Option<String>,
    items: Vec<Item>,
}

impl ResultsFragment {
    /// `asked` is the request as given: its text, target, beam, top-k and
    /// folding go into the share link.
    pub fn new(view: TranslationView, asked: &TranslateInput, beam: u32) -> Self {
        let mut share = vec![("text", view.input.clone()), ("beam", beam.to_string())];
        if let Some(n) = asked.n_best {
            share.push(("n_best", n.to_string()));
        }
        if let Some(t) = asked.target.as_ref().filter(|t| !t.trim().is_empty()) {
            share.push(("target", t.clone()));
        }
        if asked.fold_duplicates == Some(true) {
            share.push(("fold", "1".into()));
        }
        share.push(("run", "1".into()));
        let share = serde_urlencoded::to_string(&share).unwrap_or_default();
        let correct_rank = view.target.as_ref().and_then(|t| t.correct_rank);
        let sources: Vec<&str> = view.tokens.iter().collect();
        let items = view
            .predictions
            .into_iter()
            .map(|p| {
                let targets: Vec<&str> = p.tokens.iter().collect();
                let heatmap = p.attention.as_ref().and_then(|m| Heatmap::new(&sources, &targets, m));
                let atoms = match (&view.canonical, &p.attention, &p.canonical) {
                    (Some(input), Some(m), Some(Some(_))) => atom_map(input, &view.tokens, &p.text, &p.tokens, m)
                        .map(|map| AtomView::of(&map, input, &p.text)),
                    _ => None,
                };
                Item {
                    rank: p.rank,
                    text: p.text,
                    score: format!("{:.4}", p.score),
                    percent: crate::translate::words::probability(p.probability),
                    scheme: match (&view.canonical, &p.canonical) {
                        (Some(input), Some(Some(product))) => Some(Scheme::of(input, product)),
                        _ => None,
                    },
                    reaction: match (&view.canonical, &p.canonical) {
                        (Some(input), Some(Some(product))) => Some(format!("{input}>>{product}")),
                        _ => None,
                    },
                    bar: format!("{:.2}", (p.probability * 100.0).max(0.5)),
                    merged: p
                        .merged_ranks
                        .as_ref()
                        .map(|r| r.iter().map(|x| format!("#{x}")).collect::<Vec<_>>().join(" + ")),
                    invalid: matches!(p.canonical, Some(None)),
                    structure: p.canonical.flatten().as_deref().map(Structure::of),
                    correct: correct_rank == Some(p.rank),
                    heatmap,
                    atoms,
                }
            })
            .collect::<Vec<_>>();
        let elapsed = if view.elapsed_ms >= 1000.0 {
            format!("{:.1} s", view.elapsed_ms / 1000.0)
        } else {
            format!("{:.0} ms", view.elapsed_ms.max(1.0))
        };
        let target = view.target.as_ref().and_then(|t| t.canonical.as_deref()).map(Structure::of);
        ResultsFragment {
            count: items.len(),
            beam,
            share: share.clone(),
            cached: view.cached,
            elapsed,
            source_count: view.tokens.len(),
            source: view.tokens,
            input: view.canonical.as_deref().map(Structure::of),
            target_missed: view.target.is_some() && correct_rank.is_none(),
            // The core's words, as the API gives them.
            attention_omitted: view.attention_omitted_reason.map(|why| {
                match why.strip_prefix("only result 1 has attention: ") {
                    Some(rest) => format!("Only result 1 has its attention maps: {rest}."),
                    None => format!("No attention heatmaps for this answer: {why}."),
                }
            }),
            notices: view.notices,
            sdf: view.canonical.is_some().then(|| format!("/?{share}&format=sdf")),
            target,
            items,
        }
    }
}
