//! SMILES mode (the default): inputs and targets reach the model in RDKit's
//! canonical form on every path, predictions carry theirs, accuracy compares
//! molecules, and structures are drawn. Through the emulator and the real SDK,
//! so what the function received is checked, not only what came back.

use serde_json::{Value, json};

use crate::emulator::{Behavior, Emulator};
use crate::helpers::{Server, server};

/// The same molecules written several ways, and the form the model must see.
const WRITTEN: [(&str, &str); 5] = [
    ("OC(=O)C", "CC(=O)O"),
    ("C C ( = O ) O", "CC(=O)O"),
    ("CC(=O)O>CCO", "CC(=O)O.CCO"),
    ("C[C@H](N)C(=O)O", "CC(N)C(=O)O"),
    ("C1=CC=CC=C1", "c1ccccc1"),
];

fn tokens(smiles: &str) -> String {
    smiles.chars().map(String::from).collect::<Vec<_>>().join(" ")
}

async fn batch_lines(s: &Server, body: Value) -> Vec<Value> {
    let r = s.client.post(s.url("/api/v1/translate/batch")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn results(lines: &[Value]) -> Vec<&Value> {
    lines.iter().filter(|l| l["type"] == "result").collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_path_sends_the_canonical_form_whatever_way_it_was_written() {
    let emu = Emulator::start(Behavior::default()).await;
    // No result cache: every path must reach the function, to be seen there.
    let s = server().lambda(&emu).env("COALESCE_MAX_WAIT", "0").env("CACHE_TTL", "0").spawn();
    for (written, canonical) in WRITTEN {
        // The JSON API.
        let r = s.translate(json!({"text": written, "beam": 2, "n_best": 2})).await;
        assert_eq!(r.status, 200, "{written}: {}", r.json);
        assert_eq!((r.json["input"].as_str(), r.json["canonical"].as_str()), (Some(written), Some(canonical)));
        assert_eq!(emu.calls().last().unwrap().inputs, [tokens(canonical)], "API: {written}");
        // The form, without JavaScript.
        let page = s.client.post(s.url("/")).form(&[("text", written)]).send().await.unwrap();
        assert_eq!(page.status(), 200);
        assert!(page.text().await.unwrap().contains(&format!("<code class=\"smiles\">{canonical}</code>")));
        assert_eq!(emu.calls().last().unwrap().inputs, [tokens(canonical)], "form: {written}");
    }
    // A batch: inputs and targets alike.
    let before = emu.calls().len();
    let inputs: Vec<&str> = WRITTEN.iter().map(|w| w.0).collect();
    let lines = batch_lines(&s, json!({"inputs": inputs, "targets": inputs, "beam": 1, "n_best": 1})).await;
    let sent: Vec<String> = emu.calls()[before..].iter().flat_map(|c| c.inputs.clone()).collect();
    assert_eq!(sent, WRITTEN.map(|w| tokens(w.1)));
    for (r, (_, canonical)) in results(&lines).iter().zip(WRITTEN) {
        assert_eq!((r["canonical"].as_str(), r["target_canonical"].as_str()), (Some(canonical), Some(canonical)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unparsable_input_is_refused_on_every_path_and_never_sent() {
    let emu = Emulator::start(Behavior::default()).await;
    let s = server().lambda(&emu).spawn();
    let r = s.translate(json!({"text": "C1CC(=O"})).await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_input"));
    let message = r.json["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("'C1CC(=O'") && message.contains("cannot be read: a branch opened with '(' is never closed"),
        "{message}"
    );
    let r = s.translate(json!({"text": "CC(C)(C)(C)C"})).await;
    assert!(r.json["error"]["message"].as_str().unwrap().contains("atom 2 (C) has 5 bonds"), "{}", r.json);
    let r = s.translate(json!({"text": "CCO", "target": "C1CC"})).await;
    assert_eq!(r.code(), "invalid_input");
    assert!(r.json["error"]["message"].as_str().unwrap().starts_with("target 'C1CC'"), "{}", r.json);

    let page = s.client.post(s.url("/")).form(&[("text", "C1CC")]).send().await.unwrap();
    assert_eq!(page.status(), 400);
    assert!(page.text().await.unwrap().contains("a ring is opened and never closed"));
    assert_eq!(emu.calls().len(), 0, "nothing unparsable reaches the function");

    let lines = batch_lines(&s, json!({"inputs": ["CCO", "C1CC", "c1ccccc1"], "n_best": 1})).await;
    let rows = results(&lines);
    assert_eq!(rows[1]["error"]["code"], "invalid_input");
    assert!(rows[1]["error"]["message"].as_str().unwrap().starts_with("line 2 'C1CC'"), "{}", rows[1]);
    assert!(rows[0].get("error").is_none() && rows[2].get("error").is_none());
    let sent: Vec<String> = emu.calls().iter().flat_map(|c| c.inputs.clone()).collect();
    assert_eq!(sent, [tokens("CCO"), tokens("c1ccccc1")]);
}

#[tokio::test]
async fn predictions_carry_their_canonical_form_or_null_when_not_a_molecule() {
    let s = server().spawn();
    // The demo answers a single molecule with itself, then reversed and rotated
    // forms: "OCC" reversed is "CCO" (ethanol again), rotated "COC" (an ether).
    let r = s.translate(json!({"text": "OCC", "beam": 3, "n_best": 3})).await;
    let p = r.json["predictions"].as_array().unwrap();
    assert_eq!(p[0]["canonical"], "CCO");
    assert_eq!(p[1]["canonical"], "CCO");
    assert_eq!(p[2]["canonical"], "COC");
    // "CC(=O)O" reversed is "O)O=(CC": not a molecule.
    let r = s.translate(json!({"text": "CC(=O)O", "beam": 2, "n_best": 2})).await;
    let p = r.json["predictions"].as_array().unwrap();
    assert_eq!(p[0]["canonical"], "CC(=O)O");
    assert_eq!((p[1]["text"].as_str(), &p[1]["canonical"]), (Some("O)O=(CC"), &Value::Null));
    // The page marks it, and draws only the molecule.
    let page = s.client.post(s.url("/")).form(&[("text", "CC(=O)O"), ("beam", "2"), ("n_best", "2")]).send();
    let html = page.await.unwrap().text().await.unwrap();
    assert_eq!(html.matches("Not a valid molecule").count(), 1);
    assert_eq!(html.matches("<li class=\"prediction invalid\"").count(), 1);
    assert_eq!(html.matches("alt=\"Structure of result").count(), 1);
    assert!(html.contains("alt=\"Structure of the input, CC(=O)O\""));
}

#[tokio::test]
async fn text_mode_sends_text_as_typed_and_has_no_chemistry() {
    let s = server().env("INPUT_FORMAT", "text").spawn();
    let r = s.translate(json!({"text": "OC(=O)C", "n_best": 1})).await;
    assert_eq!(r.json["tokens"], json!(["O", "C", "(", "=", "O", ")", "C"]));
    assert!(r.json.get("canonical").is_none() && r.json["predictions"][0].get("canonical").is_none());
    assert_eq!(s.get("/api/v1/config").await.json["input_format"], "text");
    assert_eq!(server().spawn().get("/api/v1/config").await.json["input_format"], "smiles");
}

#[tokio::test]
async fn accuracy_compares_molecules_not_strings() {
    let s = server().spawn();
    // The demo's first answer for a mixture is its largest component, written
    // canonically: acetic acid here, methanol for "OC" alone.
    let inputs = ["CCO.CC(=O)O", "OC", "CCO.CC(=O)O", "CCN"];
    let targets = ["OC(C)=O", "OC", "C(C)O", "C1CC"];
    let lines = batch_lines(&s, json!({"inputs": inputs, "targets": targets, "beam": 3, "n_best": 3})).await;
    let rows = results(&lines);
    let ranks: Vec<&Value> = rows.iter().map(|r| &r["correct_rank"]).collect();
    // Ethanol is the mixture's third answer (after acetic acid and the whole).
    assert_eq!(ranks, [&json!(1), &json!(1), &json!(3), &Value::Null]);
    assert_eq!(rows[1]["predictions"][0]["text"], "CO", "predicted CO for the target OC");
    assert!(rows[3]["target_error"].as_str().unwrap().contains("a ring is opened and never closed"));
    let summary = lines.last().unwrap();
    assert_eq!((summary["evaluated"].as_u64(), summary["targets_invalid"].as_u64()), (Some(3), Some(1)));
    assert_eq!(summary["top_k_accuracy"], json!([2.0 / 3.0, 2.0 / 3.0, 1.0]));

    // The single API and the CSV say the same.
    let r = s.translate(json!({"text": "OC", "target": "OC", "n_best": 1})).await;
    assert_eq!((r.json["target"]["canonical"].as_str(), &r.json["target"]["correct_rank"]), (Some("CO"), &json!(1)));
    let csv = s.batch_text("?format=csv", json!({"inputs": ["OC"], "targets": ["OC"], "n_best": 1})).await;
    assert_eq!(csv.lines().nth(1).unwrap().split(',').collect::<Vec<_>>()[..5], ["1", "OC", "1", "CO", "CO"]);
    assert!(csv.lines().nth(1).unwrap().contains(",OC,true,"));
}

#[tokio::test]
async fn depict_draws_molecules_and_refuses_what_it_cannot_draw() {
    let s = server().env("MAX_INPUT_CHARS", "300").spawn();
    let r = s.client.get(s.url("/api/v1/depict?smiles=CC(%3DO)O")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    assert!(r.headers()["cache-control"].to_str().unwrap().contains("max-age"));
    let svg = r.text().await.unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("</svg>") && svg.len() < 50_000, "{} bytes", svg.len());

    let cases = [
        ("/api/v1/depict?smiles=C1CC", 400, "invalid_input"),
        ("/api/v1/depict", 400, "invalid_input"),
        ("/api/v1/depict?smiles=CCO&width=5000", 400, "invalid_input"),
        (&format!("/api/v1/depict?smiles={}", "C".repeat(301)), 413, "too_large"),
        // Within the text limit but beyond the atoms a drawing may have.
        (&format!("/api/v1/depict?smiles={}", "C".repeat(260)), 400, "invalid_input"),
    ];
    for (path, status, code) in cases {
        let r = s.get(path).await;
        assert_eq!((r.status.as_u16(), r.code()), (status, code), "{path}: {}", r.json);
    }
}

#[tokio::test]
async fn duplicates_that_are_one_molecule_fold_when_asked() {
    let s = server().spawn();
    // The demo answers "OCC" with CCO, OCC (ethanol again) and COC.
    let plain = s.translate(json!({"text": "OCC", "beam": 3, "n_best": 3})).await;
    let folded = s.translate(json!({"text": "OCC", "beam": 3, "n_best": 3, "fold_duplicates": true})).await;
    let p = plain.json["predictions"].as_array().unwrap();
    let f = folded.json["predictions"].as_array().unwrap();
    assert_eq!(p.len(), 3);
    assert_eq!(f.len(), 2);
    assert_eq!((f[0]["rank"].as_u64(), f[0]["canonical"].as_str()), (Some(1), Some("CCO")));
    assert_eq!(f[0]["merged_ranks"], json!([1, 2]));
    // Added up, and still a probability (the demo's scores are not a
    // distribution: its sums can pass 1).
    let sum = (p[0]["probability"].as_f64().unwrap() + p[1]["probability"].as_f64().unwrap()).min(1.0);
    assert!((f[0]["probability"].as_f64().unwrap() - sum).abs() < 1e-9);
    assert_eq!((f[1]["rank"].as_u64(), f[1]["canonical"].as_str()), (Some(2), Some("COC")));
    assert!(p[0].get("merged_ranks").is_none());

    let lines = batch_lines(
        &s,
        json!({"inputs": ["OCC"], "targets": ["COC"], "beam": 3, "n_best": 3, "fold_duplicates": true}),
    )
    .await;
    let row = results(&lines)[0];
    assert_eq!(row["predictions"].as_array().unwrap().len(), 2);
    assert_eq!(row["correct_rank"], 2, "ranks after folding");

    let page = s.client.post(s.url("/")).form(&[("text", "OCC"), ("beam", "3"), ("n_best", "3"), ("fold", "1")]);
    let html = page.send().await.unwrap().text().await.unwrap();
    assert_eq!(html.matches("<li class=\"prediction").count(), 2);
    assert!(html.contains("results #1 + #2, added up"));
}

/// Under a load test of distinct molecules (each one RDKit work), the
/// chemistry runs on its fixed threads: the process makes no thread per
/// request. Each thread holds the allocator's pages of its own, so threads made
/// for the occasion were how a realistic load test grew a pod past its memory
/// limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_molecules_under_load_make_no_new_threads() {
    let emu = Emulator::start(Behavior { forget_calls: true, ..Default::default() }).await;
    let s = server().lambda(&emu).env("CACHE_TTL", "0").spawn();
    let threads = || std::fs::read_dir(format!("/proc/{}/task", s.pid())).unwrap().count();
    assert_eq!(s.translate(json!({"text": "CCO"})).await.status, 200);
    let before = threads();
    let mut most = before;
    let molecules = translation_front::loadtest::molecules::first(600);
    for wave in molecules.chunks(32) {
        let requests = wave.iter().map(|m| {
            let request = s.client.post(s.url("/api/v1/translate")).json(&json!({"text": m, "cache": false}));
            async move { request.send().await.unwrap().status() }
        });
        for status in futures_util::future::join_all(requests).await {
            assert_eq!(status, 200);
        }
        most = most.max(threads());
    }
    assert!(most <= before + 1, "{before} threads before, {most} during the load");
    assert_eq!(s.metric("chemistry_queued").await, 0.0);
}

/// Molecules past MAX_ATOMS are refused before any RDKit work (a 2,000-atom
/// chain cost RDKit seconds of CPU), on every path, and never sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_with_more_atoms_than_max_atoms_are_refused_unparsed() {
    let emu = Emulator::start(Behavior::default()).await;
    let s = server().lambda(&emu).env("MAX_ATOMS", "12").env("CACHE_TTL", "0").spawn();
    let big = "C".repeat(13);
    let r = s.translate(json!({"text": big})).await;
    assert_eq!((r.status.as_u16(), r.code()), (413, "too_large"), "{:?}", r.json);
    assert!(r.json["error"]["message"].as_str().unwrap().contains("text has 13 atoms; the limit is 12"));
    let r = s.translate(json!({"text": "CCO", "target": big})).await;
    assert_eq!(r.status.as_u16(), 413);
    let lines = batch_lines(&s, json!({"inputs": ["CCO", big]})).await;
    let rows = results(&lines);
    assert_eq!(rows[1]["error"]["code"], "too_large", "{:?}", rows[1]);
    assert!(rows[0]["error"].is_null());
    // Exactly the limit is read.
    assert_eq!(s.translate(json!({"text": "C".repeat(12)})).await.status, 200);
    let sent: Vec<String> = emu.calls().iter().flat_map(|c| c.inputs.clone()).collect();
    assert!(sent.iter().all(|i| i.split_whitespace().count() <= 12), "{sent:?}");
}

/// A client's large batches take turns at the chemistry threads with other
/// clients' work, a slice of rows at a time: another client's translation is
/// answered while two batches of the largest molecules (tens of seconds of
/// RDKit work, enough to fill both threads for that long if each were one
/// job) are still being prepared. Clients are told apart by X-Forwarded-For
/// from a trusted proxy, as behind a balancer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_clients_translation_is_not_queued_behind_a_large_batch() {
    let s = server().env("TRUSTED_PROXIES", "127.0.0.1/32").spawn();
    let batch = |offset: usize| {
        let inputs: Vec<String> =
            (0..1000).map(|i| format!("{}O{}", "C".repeat(100 + i / 12), "C".repeat(offset + i % 12))).collect();
        let request = s.client.post(s.url("/api/v1/translate/batch")).header("x-forwarded-for", "203.0.113.1");
        tokio::spawn(request.json(&json!({"inputs": inputs})).send())
    };
    let (first, second) = (batch(0), batch(40));
    let busy = async {
        while s.metric("chemistry_running").await < 2.0 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), busy).await.expect("both batches' chemistry runs");
    let r = s
        .client
        .post(s.url("/api/v1/translate"))
        .header("x-forwarded-for", "203.0.113.2")
        .json(&json!({"text": "CC(=O)Nc1ccc(O)cc1", "cache": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The batches answer once all their rows are prepared: still not.
    assert!(!first.is_finished() && !second.is_finished(), "the batches were prepared before the translation");
    first.abort();
    second.abort();
}

/// A chemist who writes stereochemistry is told it was removed: in the JSON
/// (`notices`) and on the page's results.
#[tokio::test]
async fn removed_stereochemistry_is_said_in_the_answer_and_on_the_page() {
    let s = server().spawn();
    let r = s.translate(json!({"text": "C[C@H](N)C(=O)O"})).await;
    assert_eq!(r.json["canonical"], "CC(N)C(=O)O");
    assert!(r.json["notices"][0].as_str().unwrap().starts_with("Stereochemistry (@, /, \\) was removed"), "{}", r.json);
    assert!(s.translate(json!({"text": "CC(N)C(=O)O"})).await.json.get("notices").is_none());
    let page = s.client.get(s.url("/?text=F%2FC%3DC%2FF&run=1")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Stereochemistry (@, /, \\) was removed from the input"), "the page says it too");
}
