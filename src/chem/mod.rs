//! SMILES chemistry as the model was trained on it: inputs and targets in
//! RDKit's canonical form without stereochemistry, predictions canonicalized or
//! marked as not a molecule, and structure drawings.
//!
//! A leaf: it knows nothing of HTTP or of the Lambda. RDKit does the chemistry
//! (the toolkit the training data and the original app were made with); its C++
//! is reached only through `rdkit`.

// cxx generates the unsafe FFI glue; it checks both sides' signatures at build time.
#[allow(unsafe_code)]
mod rdkit;

/// Why a text is not a molecule, in a chemist's words (`words`): which
/// molecule of a mixture and what is wrong with it. (RDKit 2022.09 does not
/// say at which character its parser stopped, so neither can we.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ChemError(pub String);

pub mod atoms;
pub mod blocks;
mod draw;
mod memo;
pub mod pool;
mod words;

pub use draw::{Image, Picture, depict, draw};
use memo::Memo;

/// Parsing is most of the CPU a translation costs here (about 0.1 ms a SMILES,
/// six or more a request) and gives the same answer every time: the pod keeps
/// recent answers, bounded by the bytes they really take (`memo`). Repeated
/// inputs (cache hits, the page's examples) and the predictions they bring
/// skip RDKit.
pub const MEMO_BYTES: usize = 4 << 20;

static PREPARED: std::sync::LazyLock<Memo<Result<Box<str>, Box<str>>>> =
    std::sync::LazyLock::new(|| Memo::new(MEMO_BYTES));

static CANONICAL: std::sync::LazyLock<Memo<Option<Box<str>>>> = std::sync::LazyLock::new(|| Memo::new(MEMO_BYTES));

/// Bytes the two memos hold now (each at most [`MEMO_BYTES`]).
pub fn memo_bytes() -> usize {
    PREPARED.bytes() + CANONICAL.bytes()
}

/// Atoms above which a structure is not drawn (the drawing's time and size grow
/// with it; reaction mixtures of the model's kind stay far below).
pub const MAX_DRAW_ATOMS: u32 = 250;

/// The most atoms in a molecule or mixture that RDKit is asked to read
/// (`MAX_ATOMS`, set once at start): counted first, without parsing
/// ([`atoms::count`]). The model's training reactions (patent reactions) are
/// a few dozen heavy atoms, their mixtures rarely past 100; 200 leaves room
/// for the largest while one parse stays within ~30 ms (a 2,000-atom chain
/// took 6-10 s, most of it RDKit's stereo perception).
pub const DEFAULT_MAX_ATOMS: usize = 200;

static MAX_ATOMS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(DEFAULT_MAX_ATOMS);

/// Sets the bound of [`DEFAULT_MAX_ATOMS`] for the process (the server's
/// `MAX_ATOMS`).
pub fn set_max_atoms(atoms: usize) {
    MAX_ATOMS.store(atoms, std::sync::atomic::Ordering::Relaxed);
}

pub fn max_atoms() -> usize {
    MAX_ATOMS.load(std::sync::atomic::Ordering::Relaxed)
}

/// The longest a chemistry job may spend on RDKit (`CHEMISTRY_BUDGET`, set
/// once at start): a single request's input, its predictions, a batch's slice
/// of rows or a chunk's predictions. RDKit cannot be stopped inside a call,
/// but once a job's budget has passed no further call is started: the rest
/// of its predictions are returned as written, marked, and an input not yet
/// read is an error. With `MAX_ATOMS` one call stays within ~30 ms, so a job
/// overruns its budget by about that at most.
pub const DEFAULT_BUDGET: std::time::Duration = std::time::Duration::from_secs(2);

static BUDGET_MICROS: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(DEFAULT_BUDGET.as_micros() as u64);

thread_local! {
    /// When the job running on this thread must stop starting RDKit calls.
    static BUDGET_ENDS: std::cell::Cell<Option<std::time::Instant>> = const { std::cell::Cell::new(None) };
}

/// Sets the budget of [`DEFAULT_BUDGET`] for the process (`CHEMISTRY_BUDGET`).
pub fn set_budget(budget: std::time::Duration) {
    BUDGET_MICROS.store(budget.as_micros().min(u64::MAX as u128) as u64, std::sync::atomic::Ordering::Relaxed);
}

pub fn budget() -> std::time::Duration {
    std::time::Duration::from_micros(BUDGET_MICROS.load(std::sync::atomic::Ordering::Relaxed))
}

/// Runs `f` as one chemistry job: RDKit calls it would start after the
/// budget has passed are not made.
pub fn within_budget<T>(f: impl FnOnce() -> T) -> T {
    struct Reset(Option<std::time::Instant>);
    impl Drop for Reset {
        fn drop(&mut self) {
            BUDGET_ENDS.set(self.0);
        }
    }
    let _reset = Reset(BUDGET_ENDS.replace(Some(std::time::Instant::now() + budget())));
    f()
}

/// Whether the job running on this thread has spent its budget.
fn out_of_time() -> bool {
    BUDGET_ENDS.get().is_some_and(|end| std::time::Instant::now() >= end)
}

/// The atoms of `smiles` when they are more than the bound (no RDKit work).
pub fn too_many_atoms(smiles: &str) -> Option<usize> {
    let atoms = atoms::count(smiles);
    (atoms > max_atoms()).then_some(atoms)
}

/// A prediction's canonical form, or why it has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Canonical {
    Molecule(String),
    /// RDKit could not read it as a molecule.
    NotAMolecule,
    /// More atoms than the bound: returned as written, never parsed.
    TooLarge {
        atoms: usize,
    },
    /// The job's chemistry budget ran out before it was read.
    OutOfTime,
}

impl Canonical {
    pub fn smiles(self) -> Option<String> {
        match self {
            Canonical::Molecule(s) => Some(s),
            _ => None,
        }
    }
}

/// Prepares an input or a target the way the model's training data was
/// prepared: whitespace removed (so tokenized or space-separated SMILES work),
/// `>` between reactants and reagents read as `.`, then parsed and written in
/// RDKit's canonical form with stereochemistry removed.
pub fn prepare(text: &str) -> Result<String, ChemError> {
    if let Some(atoms) = too_many_atoms(text) {
        return Err(ChemError(format!("{atoms} atoms, more than the {} this server reads", max_atoms())));
    }
    let answer = match PREPARED.get(text) {
        Some(answer) => answer,
        None if out_of_time() => {
            return Err(ChemError(format!(
                "the chemistry time of one request ({:?}) ran out before this could be read; send fewer or smaller \
                 molecules at once",
                budget()
            )));
        }
        None => {
            let answer = prepare_uncached(text).map(String::into_boxed_str).map_err(|e| e.0.into_boxed_str());
            PREPARED.insert(text, answer.clone());
            answer
        }
    };
    answer.map(String::from).map_err(|e| ChemError(e.into()))
}

/// Whether a SMILES writes stereochemistry (`@` chirality, `/` `\` double
/// bond geometry), which [`prepare`] removes.
pub fn has_stereo(smiles: &str) -> bool {
    smiles.contains(['@', '/', '\\'])
}

/// Whether [`prepare`] of `text` is a lookup now (no RDKit work).
pub fn prepared_already(text: &str) -> bool {
    PREPARED.contains(text) || too_many_atoms(text).is_some()
}

/// Whether [`canonical`] of `smiles` is a lookup now (no RDKit work).
pub fn canonical_already(smiles: &str) -> bool {
    CANONICAL.contains(smiles) || too_many_atoms(smiles).is_some()
}

fn prepare_uncached(text: &str) -> Result<String, ChemError> {
    let joined: String = text.split_whitespace().collect();
    if joined.is_empty() {
        return Err(ChemError("there is no SMILES to read".into()));
    }
    if joined.contains(">>") {
        return Err(ChemError(
            "this looks like a whole reaction (reactants>>products): enter only the reactants and reagents, \
             separated by '.'"
                .into(),
        ));
    }
    if let Some(c) = joined.chars().find(|c| c.is_control()) {
        return Err(ChemError(format!("a SMILES string cannot hold the control character {c:?}")));
    }
    let mixture = joined.replace('>', ".");
    rdkit::canonical_smiles(&mixture, true).map_err(|e| {
        let one = |part: &str| rdkit::canonical_smiles(part, true).map(drop).map_err(|e| reason(e.what()));
        ChemError(words::explain(&mixture, &reason(e.what()), one))
    })
}

/// The canonical form of a predicted SMILES (tokens joined, stereochemistry
/// kept as predicted), or why it has none.
pub fn canonical(smiles: &str) -> Canonical {
    if let Some(atoms) = too_many_atoms(smiles) {
        return Canonical::TooLarge { atoms };
    }
    let answer = match CANONICAL.get(smiles) {
        Some(answer) => answer.map(String::from),
        None if out_of_time() => return Canonical::OutOfTime,
        None => {
            let answer = canonical_uncached(smiles);
            CANONICAL.insert(smiles, answer.as_deref().map(Into::into));
            answer
        }
    };
    answer.map_or(Canonical::NotAMolecule, Canonical::Molecule)
}

fn canonical_uncached(smiles: &str) -> Option<String> {
    let joined: String = smiles.split_whitespace().collect();
    if joined.is_empty() || joined.chars().any(char::is_control) {
        return None;
    }
    rdkit::canonical_smiles(&joined, false).ok().filter(|c| !c.is_empty())
}

/// RDKit's log lines, without their time stamps and prefixes, as one sentence.
fn reason(log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .map(|l| if l.starts_with('[') { l.split_once("] ").map_or(l, |(_, rest)| rest) } else { l })
        .map(|l| l.strip_prefix("SMILES Parse Error: ").unwrap_or(l).trim_end())
        .filter(|l| !l.trim().is_empty())
        // The last line only repeats the input.
        .filter(|l| !l.starts_with("Failed parsing SMILES"))
        // "syntax error while parsing: C1CC(": the caller names the input.
        .map(|l| l.split(" while parsing: ").next().unwrap_or(l))
        .map(|l| l.split(" for input: ").next().unwrap_or(l))
        .collect();
    if lines.is_empty() {
        return "RDKit could not read it as a molecular structure".into();
    }
    lines.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_past_its_budget_starts_no_rdkit_call_and_remembers_nothing_of_it() {
        // The budget is the process's: measured in a process of its own.
        if !crate::testing::alone("chem::tests::a_job_past_its_budget_starts_no_rdkit_call_and_remembers_nothing_of_it")
        {
            return;
        }
        set_budget(std::time::Duration::ZERO);
        let (predicted, input) = within_budget(|| (canonical("CCCCCCCCOCN"), prepare("NCCCCCCCCOC")));
        assert_eq!(predicted, Canonical::OutOfTime);
        let why = input.unwrap_err().0;
        assert!(why.starts_with("the chemistry time of one request (0ns) ran out"), "{why}");
        // Nothing was remembered as out of time: outside a job (or with time
        // left) the same molecules are read.
        assert_eq!(canonical("CCCCCCCCOCN"), Canonical::Molecule("CCCCCCCCOCN".into()));
        assert_eq!(prepare("NCCCCCCCCOC").unwrap(), "COCCCCCCCCN");
        // What is remembered costs nothing and is answered past the budget.
        assert_eq!(within_budget(|| canonical("CCCCCCCCOCN")), Canonical::Molecule("CCCCCCCCOCN".into()));
    }

    #[tokio::test]
    async fn a_single_requests_job_that_waited_past_the_budget_is_refused_unrun() {
        if !crate::testing::alone("chem::tests::a_single_requests_job_that_waited_past_the_budget_is_refused_unrun") {
            return;
        }
        set_budget(std::time::Duration::ZERO);
        let pool = pool::Pool::start(1);
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ran.clone();
        let single =
            pool.run(1, pool::Admission::FailFast, move || flag.store(true, std::sync::atomic::Ordering::SeqCst));
        assert_eq!(single.await, Err(pool::PoolError::Busy));
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
        // A batch's job waits its turn whatever the wait.
        assert_eq!(pool.run(1, pool::Admission::Wait, || 5).await, Ok(5));
    }

    #[test]
    fn reading_without_stereo_perception_writes_what_rdkits_full_reading_writes() {
        // The shortcut (no stereo perception when no stereochemistry is
        // written) must not change one canonical SMILES or error: held to
        // RDKit's default reading on load-test molecules, the demo model's
        // predictions of them (scrambled tokens, often not molecules), and
        // the spellings where hydrogens, charges, isotopes and stereo meet.
        use crate::inference::demo;
        use crate::inference::tokenize::Tokenizer;
        let mut texts: Vec<String> = "[H][H] [H]C([H])([H])O [2H]C [H]n1cccc1 C[H] [H]N1CC1 [13CH3]O [NH4+].[Cl-] \
            c1ccc2[nH]ccc2c1 C[N+](C)(C)C [CH2]C O=C([O-])[O-].[K+].[K+] C1CC2CCC1C2 CC(C)(F)Cl FC(Cl)(Br)I CC=CC \
            C/C=C/C C[C@H](N)O N[C@@H](C)C(=O)O F/C=C\\F c1ccccc1C=CC C%10CCCCC%10 [Fe+2] [se]1cccc1 C1=CC=CC=C1 \
            OC1CCCCC1O C=C1CCC1 C1CC c1cccc1 C(C)(C)(C)(C)C not-a-molecule"
            .split_whitespace()
            .map(String::from)
            .chain([String::new()])
            .collect();
        let params = crate::inference::Params { beam: 5, n_best: 5, attention: false };
        for k in 0..1_500 {
            let molecule = crate::loadtest::molecules::molecule(7_000_000 + k);
            let canonical = rdkit::canonical_smiles_fully_perceived(&molecule, true).expect("a molecule");
            let predicted = demo::hypotheses(&Tokenizer::Chars.tokenize(&canonical), params);
            texts.extend(predicted.iter().map(|h| Tokenizer::Chars.detokenize(&h.tokens)));
            texts.push(molecule);
        }
        let mut molecules = 0;
        for text in &texts {
            for remove_stereo in [true, false] {
                let ours = rdkit::canonical_smiles(text, remove_stereo).map_err(|e| reason(e.what()));
                let full = rdkit::canonical_smiles_fully_perceived(text, remove_stereo).map_err(|e| reason(e.what()));
                assert_eq!(ours, full, "{text:?}, stereo removed: {remove_stereo}");
                molecules += usize::from(ours.is_ok());
            }
        }
        // Most of them molecules, some not: both kinds of answer were compared.
        assert!(molecules > texts.len() && molecules < 2 * texts.len() - 100, "{molecules} of {}", 2 * texts.len());
    }

    #[test]
    fn inputs_written_any_valid_way_meet_in_one_canonical_form() {
        let acetic = prepare("CC(=O)O").unwrap();
        assert_eq!(acetic, "CC(=O)O");
        for written in ["OC(=O)C", "C C ( = O ) O", " CC(O)=O \n", "C(C)(=O)O"] {
            assert_eq!(prepare(written).unwrap(), acetic, "{written}");
        }
        assert_eq!(prepare("C1=CC=CC=C1").unwrap(), "c1ccccc1");
        assert_eq!(prepare("OC").unwrap(), "CO");
    }

    #[test]
    fn reagents_after_a_gt_sign_join_the_mixture_and_stereo_is_removed() {
        assert_eq!(prepare("CC(=O)O>CCO").unwrap(), prepare("CCO.CC(=O)O").unwrap());
        assert_eq!(prepare("C[C@H](N)C(=O)O").unwrap(), "CC(N)C(=O)O");
        assert_eq!(prepare("F/C=C/F").unwrap(), "FC=CF");
    }

    #[test]
    fn unparsable_inputs_say_why() {
        assert_eq!(prepare("C1CC(").unwrap_err().0, "it is not valid SMILES (a syntax error)");
        assert!(prepare("C1CC").unwrap_err().0.starts_with("a ring is opened and never closed"));
        assert_eq!(prepare("CC)C").unwrap_err().0, "a ')' closes a branch that was never opened");
        assert!(prepare("c1cccc1").unwrap_err().0.starts_with("its aromatic ring cannot be kekulized: 5 aromatic"));
        let e = prepare("CC(C)(C)(C)C").unwrap_err().0;
        assert_eq!(e, "atom 2 (C) has 5 bonds, more than C can have; check its bonds and charges");
        let e = prepare("CCO.c1cccc1").unwrap_err().0;
        assert!(e.starts_with("molecule 2 of 2, 'c1cccc1': its aromatic ring cannot be kekulized"), "{e}");
        assert!(prepare("[Xx]").unwrap_err().0.contains("'Xx' is not an element"));
        assert!(prepare("aspirin").unwrap_err().0.starts_with("this looks like a name"));
        assert!(prepare("not a smiles").is_err());
        assert!(prepare("   ").is_err());
        assert!(prepare("CCO>>CC=O").unwrap_err().0.contains("whole reaction"));
        assert!(prepare("C\u{0}C").is_err());
    }

    #[test]
    fn predictions_are_canonical_or_none() {
        assert_eq!(canonical("O C").smiles().as_deref(), Some("CO"));
        assert_eq!(canonical("C [C@H] ( N ) C ( = O ) O").smiles().as_deref(), Some("C[C@H](N)C(=O)O"));
        assert_eq!(canonical("C 1 C C"), Canonical::NotAMolecule);
        assert_eq!(canonical(""), Canonical::NotAMolecule);
    }

    #[test]
    fn drawings_are_svg_with_a_dark_scheme() {
        let svg = depict("CC(=O)O", 200, 150).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        assert!(svg.contains("prefers-color-scheme: dark") && svg.trim_end().ends_with("</svg>"));
        assert!(depict("C1CC", 200, 150).is_err());
        let huge = "C".repeat(MAX_DRAW_ATOMS as usize + 1);
        assert!(depict(&huge, 200, 150).unwrap_err().0.contains("too many atoms"));
    }

    #[test]
    fn repeated_parses_give_the_same_answers_as_rdkit() {
        for text in ["OCC", "C1CC", "CC(C)(C)(C)C", "N#Cc1ccccc1", "a>>b"] {
            assert_eq!(prepare(text), prepare_uncached(text), "{text}");
            assert_eq!(prepare(text), prepare_uncached(text), "{text}, remembered");
            assert_eq!(canonical(text).smiles(), canonical_uncached(text), "{text}");
            assert_eq!(canonical(text).smiles(), canonical_uncached(text), "{text}, remembered");
        }
        assert!(PREPARED.contains("OCC") && CANONICAL.contains("N#Cc1ccccc1"));
    }

    #[test]
    fn parses_on_many_threads_keep_their_own_reasons() {
        // Both reasons come from RDKit's error log, which is process-wide.
        let handles: Vec<_> = (0..8)
            .map(|i| {
                std::thread::spawn(move || {
                    let (input, want) = if i % 2 == 0 {
                        ("C1CC(", "it is not valid SMILES (a syntax error)")
                    } else {
                        ("CC)C", "a ')' closes a branch that was never opened")
                    };
                    for _ in 0..300 {
                        assert_eq!(prepare_uncached(input).unwrap_err().0, want);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }
}

#[cfg(test)]
mod bound_tests {
    use super::*;

    #[test]
    fn molecules_over_the_atom_bound_are_never_parsed() {
        let chain = "C".repeat(DEFAULT_MAX_ATOMS + 1);
        assert!(prepare(&chain).unwrap_err().0.contains("201 atoms, more than the 200"));
        assert_eq!(canonical(&chain), Canonical::TooLarge { atoms: 201 });
        assert!(prepared_already(&chain) && canonical_already(&chain), "no RDKit work to wait for");
        // A 2,000-atom chain took RDKit seconds; counting takes microseconds.
        let huge = "C".repeat(2000);
        assert_eq!(canonical(&huge), Canonical::TooLarge { atoms: 2000 });
        assert!(!PREPARED.contains(&chain) && !CANONICAL.contains(&huge), "nothing remembered for them");
        assert!(prepare(&"C".repeat(DEFAULT_MAX_ATOMS)).is_ok(), "the bound itself is read");
    }

    #[test]
    fn drawings_join_tokens_and_read_nothing_after_a_space() {
        let plain = depict("CCO", 200, 150).unwrap();
        assert_eq!(depict("C C O", 200, 150).unwrap(), plain);
        // After a space RDKit would read a CXSMILES label and draw it into
        // the picture (a 6 KB URL made a 2.9 MB drawing): joined, it is not SMILES.
        assert!(depict(&format!("CCO |$x{}$|", "y".repeat(3000)), 200, 150).is_err());
        let many = "C".repeat(MAX_DRAW_ATOMS as usize + 1);
        assert!(depict(&many, 200, 150).unwrap_err().0.contains("too many atoms to draw (251"));
    }
}
