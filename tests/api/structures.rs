//! Structures in and reactions out: reaction schemes, PNG drawings and atom
//! highlights from `depict`; MOL blocks and RXN files read and written by
//! `/api/v1/structure`; predictions as SDF (single, batch, export, the
//! results page's download), read back by RDKit's own SDF reader (Python's
//! `rdkit`, a separate program from the server).

use serde_json::{Value, json};

use crate::helpers::{Server, server};

async fn bytes(s: &Server, path: &str) -> (u16, String, Vec<u8>) {
    let r = s.client.get(s.url(path)).send().await.unwrap();
    let kind = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (r.status().as_u16(), kind, r.bytes().await.unwrap().to_vec())
}

/// Each record of an SDF as RDKit's SDMolSupplier reads it: its canonical
/// SMILES and its properties. Debian's `python3-rdkit` is for the system's
/// Python (`/usr/bin/python3`, whichever `python3` is first on PATH); fails,
/// saying why, when it is missing.
fn read_sdf(sdf: &[u8]) -> Vec<Value> {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("tf-sdf-{}-{n}.sdf", std::process::id()));
    std::fs::write(&path, sdf).unwrap();
    let script = "import sys, json\n\
        from rdkit import Chem\n\
        out = []\n\
        for m in Chem.SDMolSupplier(sys.argv[1]):\n\
        \x20   out.append(None if m is None else {'smiles': Chem.MolToSmiles(m), 'name': m.GetProp('_Name'), **m.GetPropsAsDict()})\n\
        print(json.dumps(out))\n";
    let run = std::process::Command::new("/usr/bin/python3").args(["-c", script]).arg(&path).output().expect(
        "/usr/bin/python3 runs (needs Debian's python3-rdkit: apt-get install python3-rdkit; .ci/run installs it)",
    );
    let _ = std::fs::remove_file(&path);
    assert!(run.status.success(), "RDKit could not read the SDF: {}", String::from_utf8_lossy(&run.stderr));
    serde_json::from_slice::<Vec<Value>>(&run.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactions_are_drawn_as_schemes_and_drawings_come_as_png_and_highlighted() {
    let s = server().spawn();
    let (status, kind, scheme) = bytes(&s, "/api/v1/depict?reaction=CCO.CC(%3DO)O%3E%3ECCOC(C)%3DO").await;
    assert_eq!((status, kind.as_str()), (200, "image/svg+xml"));
    let scheme = String::from_utf8(scheme).unwrap();
    let (_, _, product) = bytes(&s, "/api/v1/depict?smiles=CCOC(C)%3DO").await;
    // Three molecules and an arrow: more drawn than the product alone.
    assert!(scheme.len() > product.len() * 3 / 2, "{} vs {}", scheme.len(), product.len());
    assert!(scheme.contains("width='600px'"), "a scheme is wide by default");
    // Reagents between the arrows join the reactants.
    assert_eq!(bytes(&s, "/api/v1/depict?reaction=CCO%3EO%3ECC%3DO").await.0, 200);

    let (status, kind, png) = bytes(&s, "/api/v1/depict?smiles=c1ccccc1O&format=png&width=320&height=200").await;
    assert_eq!((status, kind.as_str()), (200, "image/png"));
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 320);
    let (status, kind, png) = bytes(&s, "/api/v1/depict?reaction=CCO%3E%3ECC%3DO&format=png").await;
    assert_eq!((status, kind.as_str(), &png[1..4]), (200, "image/png", &b"PNG"[..]));

    let (_, _, plain) = bytes(&s, "/api/v1/depict?smiles=CCO").await;
    let (status, _, lit) = bytes(&s, "/api/v1/depict?smiles=CCO&highlight=3:0.9,1").await;
    assert_eq!(status, 200);
    let (plain, lit) = (String::from_utf8(plain).unwrap(), String::from_utf8(lit).unwrap());
    assert_ne!(plain, lit, "a highlight changes the drawing");

    for (path, words) in [
        ("/api/v1/depict?reaction=CCO", "reactants>>products"),
        ("/api/v1/depict?reaction=CCO.c1cccc1%3E%3ECC", "molecule 2 of 2"),
        ("/api/v1/depict?smiles=CCO&reaction=CCO%3E%3ECC", "not both"),
        ("/api/v1/depict?smiles=CCO&format=gif", "svg or png"),
        ("/api/v1/depict?smiles=CCO&highlight=4", "no atom 4"),
        ("/api/v1/depict?smiles=CCO&highlight=0", "counted from 1"),
        ("/api/v1/depict?reaction=CCO%3E%3ECC&highlight=1", "not a reaction"),
    ] {
        let r = s.get(path).await;
        assert_eq!(r.status, 400, "{path}: {}", r.json);
        let message = r.json["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{path}: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mol_blocks_and_rxn_files_go_in_and_come_out() {
    let s = server().spawn();
    let (status, kind, mol) = bytes(&s, "/api/v1/structure?smiles=OC(%3DO)c1ccccc1&format=mol").await;
    assert_eq!((status, kind.as_str()), (200, "chemical/x-mdl-molfile"));
    let mol = String::from_utf8(mol).unwrap();
    assert!(mol.contains("V2000") && mol.ends_with("M  END\n"), "{mol}");
    // What comes out goes back in: the same molecule.
    let r = s.send(s.client.post(s.url("/api/v1/structure")).body(mol.replace('\n', "\r\n"))).await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json, json!({"kind": "molecule", "smiles": "O=C(O)c1ccccc1"}));

    let (status, kind, rxn) = bytes(&s, "/api/v1/structure?reaction=CCO.CC(%3DO)O%3E%3ECCOC(C)%3DO&format=rxn").await;
    assert_eq!((status, kind.as_str()), (200, "chemical/x-mdl-rxnfile"));
    let rxn = String::from_utf8(rxn).unwrap();
    assert!(rxn.starts_with("$RXN"), "{rxn}");
    let r = s.send(s.client.post(s.url("/api/v1/structure")).body(rxn)).await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["kind"], "reaction");
    assert_eq!(r.json["smiles"], "CCO.CC(=O)O");
    assert_eq!(r.json["products"], "CCOC(C)=O");

    for (body, words) in [
        ("CCO", "not a MOL block"),
        ("\n  x\n\n  1  0  0  0  0  0  0  0  0  0999 V2000\nM  END\n", "the MOL block cannot be read"),
        ("$RXN\n\n\n\n  1  1\n", "the RXN file cannot be read"),
        ("", "empty"),
    ] {
        let r = s.send(s.client.post(s.url("/api/v1/structure")).body(body)).await;
        assert_eq!(r.status, 400, "{body:?}: {}", r.json);
        assert!(r.json["error"]["message"].as_str().unwrap().contains(words), "{}", r.json);
    }
    let r = s.get("/api/v1/structure?smiles=c1cccc1&format=mol").await;
    assert_eq!(r.status, 400);
    assert!(r.json["error"]["message"].as_str().unwrap().contains("c1cccc1"), "{}", r.json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predictions_leave_as_sdf_that_rdkit_reads_back_with_their_properties() {
    let s = server().spawn();
    // A batch, streamed as SDF, with a target and a row that fails.
    let body = json!({"inputs": ["CCO.CC(=O)O", "c1cccc1", "CCN"], "targets": ["CC(=O)O", "CC", "CCN"], "beam": 3, "n_best": 3});
    let r = s.client.post(s.url("/api/v1/translate/batch?format=sdf")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "chemical/x-mdl-sdfile");
    let sdf = r.bytes().await.unwrap();
    let records = read_sdf(&sdf);
    assert!(!records.is_empty() && records.iter().all(|r| !r.is_null()), "{records:?}");
    // Rows 1 and 3 have records, numbered from 1 as their lines; row 2 failed.
    let ids: std::collections::BTreeSet<i64> = records.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.into_iter().collect::<Vec<_>>(), [1, 3]);
    for r in &records {
        // The record's molecule is its `canonical` property.
        assert_eq!(r["smiles"], r["canonical"], "{r}");
        assert!(r["probability"].as_f64().unwrap() > 0.0 && r["probability"].as_f64().unwrap() <= 1.0);
        let correct = r["correct"].to_string().to_lowercase().replace('"', "");
        assert!(correct == "true" || correct == "false", "{r}");
        assert!(r["name"].as_str().unwrap().starts_with(&format!("line {}, rank", r["id"])), "{r}");
    }
    let first = records.iter().find(|r| r["id"] == 1 && r["rank"] == 1).unwrap();
    assert_eq!(first["source"], "CC(=O)O.CCO");

    // The same rows exported from NDJSON give the same records.
    let ndjson = s.batch_text("", body.clone()).await;
    let rows: String = ndjson.lines().filter(|l| l.contains("\"type\":\"result\"")).map(|l| format!("{l}\n")).collect();
    let r = s.client.post(s.url("/api/v1/translate/batch/export?format=sdf")).body(rows).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(read_sdf(&r.bytes().await.unwrap()), records);

    // One translation: by Accept on the API, and the results page's download.
    let r = s
        .client
        .post(s.url("/api/v1/translate"))
        .header("accept", "chemical/x-mdl-sdfile")
        .json(&json!({"text": "CCO.CC(=O)O", "beam": 3, "n_best": 3, "target": "CC(=O)O"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let single = read_sdf(&r.bytes().await.unwrap());
    let batch_first: Vec<&Value> = records.iter().filter(|r| r["id"] == 1).collect();
    assert_eq!(single.iter().collect::<Vec<_>>(), batch_first);
    let (status, kind, page) =
        bytes(&s, "/?text=CCO.CC(%3DO)O&beam=3&n_best=3&target=CC(%3DO)O&run=1&format=sdf").await;
    assert_eq!((status, kind.as_str()), (200, "chemical/x-mdl-sdfile"));
    assert_eq!(read_sdf(&page), single);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_results_page_links_schemes_downloads_and_a_top_k_grid() {
    let s = server().spawn();
    let page = s.client.get(s.url("/?text=CCO.CC(%3DO)O&run=1")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("class=\"topk\""), "a grid of the top-k");
    for rank in 1..=3 {
        assert!(page.contains(&format!("href=\"#result-{rank}\"")), "the grid opens card {rank}");
        assert!(page.contains(&format!("id=\"result-{rank}\"")));
    }
    assert!(page.contains("/api/v1/depict?reaction=CC(%3DO)O.CCO%3E%3E"), "a scheme per prediction");
    assert!(page.contains("format=png") && page.contains("format=rxn") && page.contains("format=mol"));
    assert!(page.contains("&#38;run=1&#38;format=sdf"), "the SDF download");
    // Every link on the page answers.
    let links: Vec<String> = page
        .split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|h| h.starts_with("/api/v1/") || h.contains("format=sdf"))
        .map(|h| h.replace("&#38;", "&"))
        .collect();
    assert!(links.len() >= 10, "{links:?}");
    for link in links {
        assert_eq!(bytes(&s, &link).await.0, 200, "{link}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_javascript_a_pasted_block_is_read_by_the_form() {
    let s = server().spawn();
    let mol = s.client.get(s.url("/api/v1/structure?smiles=Oc1ccccc1&format=mol")).send().await.unwrap();
    let mol = mol.text().await.unwrap();
    let rxn = s.client.get(s.url("/api/v1/structure?reaction=CCO.CC(%3DO)O%3E%3ECCOC(C)%3DO&format=rxn")).send().await;
    let rxn = rxn.unwrap().text().await.unwrap();
    let no_redirect = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let post = |text: String| no_redirect.post(s.url("/")).form(&[("text", text)]).send();
    let r = post(mol).await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/?text=Oc1ccccc1&run=1#outcome");
    let r = post(rxn).await.unwrap();
    assert_eq!(r.headers()["location"], "/?text=CCO.CC%28%3DO%29O&target=CCOC%28C%29%3DO&run=1#outcome");
    let r = post("\n  x\n\n  1  0  0  0  0  0  0  0  0  0999 V2000\nM  END\n".into()).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("MOL block cannot be read"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attention_is_shown_on_the_atoms_and_a_long_input_keeps_result_ones() {
    let s = server().spawn();
    let page = s.client.get(s.url("/?text=CC(%3DO)Cl.OCC&run=1")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("class=\"atom-view\""), "an atom view");
    // Acetyl chloride's Cl (atom 4 as written) attends to the input's Cl in
    // the demo's near-diagonal attention: the clearest atom, shown first.
    assert!(
        page.contains("The product&#39;s atom Cl 4 attended most to the input&#39;s Cl 4"),
        "{}",
        &page[page.find("atom-readout").unwrap_or(0)..][..300]
    );
    let images: Vec<String> = page
        .split("src=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|src| src.contains("highlight="))
        .map(|src| src.replace("&#38;", "&"))
        .collect();
    assert!(images.len() >= 4, "{images:?}");
    for src in &images {
        assert_eq!(bytes(&s, src).await.0, 200, "{src}");
    }
    // A long input: result 1's heatmap and atoms, and a note for the rest.
    let long = format!("{}O", "C".repeat(150));
    let page =
        s.client.get(s.url(&format!("/?text={long}&run=1&n_best=5"))).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Only result 1 has its attention maps"), "the note");
    assert_eq!(page.matches("class=\"atom-view\"").count(), 1, "result 1's atoms");
    assert_eq!(page.matches("<svg class=\"heatmap\"").count(), 1, "result 1's heatmap");
}
