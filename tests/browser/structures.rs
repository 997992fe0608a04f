//! Structures in and reactions out, in Chromium: the molecule editor (JSME,
//! in a frame of /editor, loaded when opened) draws molecules and reactions
//! into the form; a pasted MOL block and an opened RXN file become SMILES;
//! the results show a top-k grid, a scheme per prediction and their files;
//! at phone and desktop widths, axe-clean, and nothing of it without
//! JavaScript.

use std::time::Duration;

use fantoccini::Locator;
use fantoccini::actions::{InputSource, MouseActions, PointerAction, TouchActions};

use crate::driver::{Browser, Options, browser};
use crate::helpers::server;
use crate::ui::until;

const WAIT: Duration = Duration::from_secs(20);

async fn value(b: &Browser, css: &str) -> String {
    b.client.find(Locator::Css(css)).await.unwrap().prop("value").await.unwrap().unwrap_or_default()
}

/// Waits until `css`'s value is not `before`, and returns it.
async fn changed(b: &Browser, css: &str, before: &str) -> String {
    let wait = async {
        loop {
            let now = value(b, css).await;
            if now != before {
                return now;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(WAIT, wait).await.unwrap_or_else(|_| panic!("{css} changes from {before:?}"))
}

/// Opens the editor and waits until it is ready (its Use button enabled).
async fn open_editor(b: &Browser) {
    b.client.find(Locator::Css("#draw")).await.unwrap().click().await.unwrap();
    b.client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#editor-use:not([disabled])"))
        .await
        .expect("the editor loads");
}

/// Draws `smiles` in the editor's frame through JSME's own API (what a hand
/// with a mouse would leave there).
async fn draw(b: &Browser, smiles: &str) {
    b.client.enter_frame(0).await.unwrap();
    b.client
        .execute("window.jsmeApplet.readGenericMolecularInput(arguments[0])", vec![serde_json::json!(smiles)])
        .await
        .unwrap();
    b.client.enter_parent_frame().await.unwrap();
}

#[ignore = "a browser test: needs Chromium and chromedriver (apt-get install chromium chromium-driver); cargo test -- --include-ignored runs it, as .ci/run does"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chemist_draws_molecules_and_a_reaction_into_the_form() {
    let s = server().spawn();
    for (width, height, name) in [(1280, 900, "desktop"), (390, 844, "phone")] {
        let Some(b) = browser("a_chemist_draws", Options { width, height, ..Default::default() }).await else {
            return;
        };
        b.client.goto(&s.url("/")).await.unwrap();
        // The editor is not loaded until it is opened.
        let frame_src = b.client.find(Locator::Css("#editor-frame")).await.unwrap().attr("src").await.unwrap();
        assert_eq!(frame_src, None, "no editor before it is asked for");
        open_editor(&b).await;
        b.screenshot(&format!("editor-open-{name}")).await;
        let violations = b.axe().await;
        assert!(violations.is_empty(), "axe, editor open at {width} px: {violations:#?}");
        assert!(b.widths().await.0 <= b.widths().await.1, "no sideways scrolling at {width} px");

        // Nothing drawn: the dialog says so and stays open.
        b.client.find(Locator::Css("#editor-use")).await.unwrap().click().await.unwrap();
        b.client.wait().at_most(WAIT).for_element(Locator::Css("#editor-error:not([hidden])")).await.unwrap();

        // A molecule drawn goes into the input.
        draw(&b, "Oc1ccccc1.CC(=O)Cl").await;
        b.client.find(Locator::Css("#editor-use")).await.unwrap().click().await.unwrap();
        let input = changed(&b, "#text", "").await;
        let mut parts: Vec<&str> = input.split('.').collect();
        parts.sort();
        assert_eq!(parts, ["CC(=O)Cl", "Oc1ccccc1"], "as JSME writes them: {input}");
        let open = b.client.execute("return document.querySelector('#editor-dialog').open", vec![]).await.unwrap();
        assert_eq!(open, false, "the dialog closes");

        // The editor opens on what the form holds; a reaction drawn fills the
        // input with its reactants and the expected product with its product.
        open_editor(&b).await;
        b.client.enter_frame(0).await.unwrap();
        let shown = b.client.execute("return window.jsmeApplet.smiles()", vec![]).await.unwrap();
        b.client.enter_parent_frame().await.unwrap();
        assert_eq!(shown.as_str().unwrap().split('.').count(), 2, "the form's molecules are shown: {shown}");
        draw(&b, "CCO.CC(=O)O>>CCOC(C)=O").await;
        b.client.find(Locator::Css("#editor-use")).await.unwrap().click().await.unwrap();
        let target = changed(&b, "#target", "").await;
        assert_eq!(target, "CCOC(C)=O");
        let mut parts: Vec<String> = value(&b, "#text").await.split('.').map(String::from).collect();
        parts.sort();
        assert_eq!(parts, ["CC(=O)O", "CCO"]);

        // And it translates.
        b.client.find(Locator::Css("#submit")).await.unwrap().click().await.unwrap();
        b.client.wait().at_most(WAIT).for_element(Locator::Css("#results .prediction")).await.unwrap();
        b.close().await;
    }
}

#[ignore = "a browser test: needs Chromium and chromedriver (apt-get install chromium chromium-driver); cargo test -- --include-ignored runs it, as .ci/run does"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pasted_mol_block_and_an_opened_rxn_file_become_smiles() {
    let s = server().spawn();
    let mol = s.client.get(s.url("/api/v1/structure?smiles=Oc1ccccc1&format=mol")).send().await.unwrap();
    let mol = mol.text().await.unwrap();
    let rxn = s.client.get(s.url("/api/v1/structure?reaction=CCO.CC(%3DO)O%3E%3ECCOC(C)%3DO&format=rxn")).send().await;
    let rxn = rxn.unwrap().text().await.unwrap();
    let path = std::env::temp_dir().join(format!("tf-browser-{}.rxn", std::process::id()));
    std::fs::write(&path, rxn).unwrap();
    let Some(b) = browser("a_pasted_mol_block", Options::default()).await else {
        return;
    };
    b.client.goto(&s.url("/")).await.unwrap();
    // A paste, as the clipboard delivers it.
    b.client
        .execute(
            "const dt = new DataTransfer(); dt.setData('text/plain', arguments[0]);
             document.querySelector('#text').dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));",
            vec![serde_json::json!(mol)],
        )
        .await
        .unwrap();
    assert_eq!(changed(&b, "#text", "").await, "Oc1ccccc1");
    // A file opened with the button.
    b.client.find(Locator::Css("#structure-file")).await.unwrap().send_keys(path.to_str().unwrap()).await.unwrap();
    assert_eq!(changed(&b, "#target", "").await, "CCOC(C)=O");
    assert_eq!(value(&b, "#text").await, "CCO.CC(=O)O");
    // A broken block is refused in words, and the box keeps what it had.
    b.client
        .execute(
            "const dt = new DataTransfer(); dt.setData('text/plain', '\\n  x\\n\\n  1  0  0  0  0  0  0  0  0  0999 V2000\\nM  END\\n');
             document.querySelector('#text').dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));",
            vec![],
        )
        .await
        .unwrap();
    let error = b.client.wait().at_most(WAIT).for_element(Locator::Css("#error:not([hidden])")).await.unwrap();
    assert!(error.text().await.unwrap().contains("MOL block cannot be read"));
    assert_eq!(value(&b, "#text").await, "CCO.CC(=O)O");
    std::fs::remove_file(path).unwrap();
    b.close().await;
}

#[ignore = "a browser test: needs Chromium and chromedriver (apt-get install chromium chromium-driver); cargo test -- --include-ignored runs it, as .ci/run does"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_show_a_top_k_grid_schemes_and_files_with_and_without_javascript() {
    let s = server().spawn();
    for javascript in [true, false] {
        for (width, height, name) in [(1280, 900, "desktop"), (390, 844, "phone")] {
            let options = Options { javascript, width, height, ..Default::default() };
            let Some(b) = browser("results_show_a_top_k_grid", options).await else {
                return;
            };
            b.client.goto(&s.url("/?text=CCO.CC(%3DO)O&run=1")).await.unwrap();
            let tools = b.client.find(Locator::Css("#structure-tools")).await.unwrap().is_displayed().await.unwrap();
            assert_eq!(tools, javascript, "the editor and file buttons need JavaScript");
            let grid = b.client.find_all(Locator::Css(".topk li a")).await.unwrap();
            let cards = b.client.find_all(Locator::Css("li.prediction")).await.unwrap();
            assert_eq!(grid.len(), cards.len());
            for img in b.client.find_all(Locator::Css(".topk img, .scheme img")).await.unwrap() {
                b.wait_loaded(&img).await;
            }
            // A grid cell opens its card, on this page (not reloaded: the
            // fragment's popstate is not a Back).
            b.client.execute("window.stillHere = true", vec![]).await.unwrap();
            grid[2].click().await.unwrap();
            let at = b.client.current_url().await.unwrap();
            assert_eq!(at.fragment(), Some("result-3"));
            // (the browser scrolls to the fragment on its own time)
            until(&b, "Math.abs(document.querySelector('#result-3').getBoundingClientRect().top) < 5").await;
            let same = b.client.execute("return window.stillHere === true", vec![]).await.unwrap();
            assert_eq!(same, serde_json::Value::Bool(true), "the page was not reloaded");
            b.screenshot(&format!("results-grid-{name}-{}", if javascript { "js" } else { "nojs" })).await;
            let (scroll, inner) = b.widths().await;
            assert!(scroll <= inner, "no sideways scrolling at {width} px: {scroll} > {inner}");
            if javascript {
                let violations = b.axe().await;
                assert!(violations.is_empty(), "axe at {width} px: {violations:#?}");
            }
            b.close().await;
        }
    }
}

#[ignore = "a browser test: needs Chromium and chromedriver (apt-get install chromium chromium-driver); cargo test -- --include-ignored runs it, as .ci/run does"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn choosing_a_product_atom_shows_where_it_looked() {
    let s = server().spawn();
    for javascript in [true, false] {
        for (width, height, name) in [(1280, 900, "desktop"), (390, 844, "phone")] {
            let options = Options { javascript, width, height, ..Default::default() };
            let Some(b) = browser("choosing_a_product_atom", options).await else {
                return;
            };
            b.client.goto(&s.url("/?text=CC(%3DO)Cl.OCC&run=1")).await.unwrap();
            let view = b.client.find(Locator::Css("#result-1 .atom-view")).await.unwrap();
            let images = view.find_all(Locator::Css("img")).await.unwrap();
            for img in &images {
                b.wait_loaded(img).await;
            }
            let readout = view.find(Locator::Css(".atom-readout")).await.unwrap().text().await.unwrap();
            assert!(readout.starts_with("The product's atom Cl 4 attended most"), "{readout}");
            let pick = view.find(Locator::Css(".atom-pick")).await.unwrap().is_displayed().await.unwrap();
            assert_eq!(pick, javascript, "the atom choice needs JavaScript; without, the clearest atom's picture");
            if javascript {
                let before = images[1].attr("src").await.unwrap().unwrap();
                view.find(Locator::Css("select.atom-choice")).await.unwrap().select_by_value("2").await.unwrap();
                let readout = view.find(Locator::Css(".atom-readout")).await.unwrap().text().await.unwrap();
                assert!(readout.starts_with("The product's atom O 3 attended most"), "{readout}");
                let after = images[1].attr("src").await.unwrap().unwrap();
                assert_ne!(before, after, "the input's marks follow the chosen atom");
                assert!(images[0].attr("src").await.unwrap().unwrap().ends_with("&highlight=3"));
                for img in &images {
                    b.wait_loaded(img).await;
                }
                // Pointing at atom 1 on the product's drawing chooses it: a
                // mouse resting there on a desktop, a tap on a phone. Where
                // RDKit drew it comes from the drawing's own metadata.
                let at = b
                    .client
                    .execute_async(
                        "const done = arguments[arguments.length - 1];
                         const img = document.querySelector('#result-1 .atom-product');
                         img.scrollIntoView({ block: 'center' });
                         fetch(img.src).then((r) => r.text()).then((svg) => {
                           const doc = new DOMParser().parseFromString(svg, 'image/svg+xml');
                           const a = [...doc.getElementsByTagNameNS('http://www.rdkit.org/xml', 'atom')]
                             .find((e) => e.getAttribute('idx') === '1');
                           const r = img.getBoundingClientRect();
                           done([r.left + Number(a.getAttribute('drawing-x')) * r.width / 300,
                                 r.top + Number(a.getAttribute('drawing-y')) * r.height / 220]);
                         });",
                        vec![],
                    )
                    .await
                    .unwrap();
                let (x, y) = (at[0].as_f64().unwrap().round(), at[1].as_f64().unwrap().round());
                if width > 600 {
                    let rest = MouseActions::new("mouse".into()).then(PointerAction::MoveTo { duration: None, x, y });
                    b.client.perform_actions(rest).await.unwrap();
                } else {
                    let tap = TouchActions::new("finger".into())
                        .then(PointerAction::MoveTo { duration: None, x, y })
                        .then(PointerAction::Down { button: 0 })
                        .then(PointerAction::Up { button: 0 });
                    b.client.perform_actions(tap).await.unwrap();
                }
                until(&b, "document.querySelector('#result-1 .atom-choice').value === '0'").await;
                let readout = view.find(Locator::Css(".atom-readout")).await.unwrap().text().await.unwrap();
                assert!(readout.starts_with("The product's atom C 1 attended most"), "{readout}");
                assert!(images[0].attr("src").await.unwrap().unwrap().ends_with("&highlight=1"));
                for img in &images {
                    b.wait_loaded(img).await;
                }
                let violations = b.axe().await;
                assert!(violations.is_empty(), "axe at {width} px: {violations:#?}");
            }
            b.client
                .execute("arguments[0].scrollIntoView()", vec![serde_json::to_value(&view).unwrap()])
                .await
                .unwrap();
            b.screenshot(&format!("atoms-{name}-{}", if javascript { "js" } else { "nojs" })).await;
            let (scroll, inner) = b.widths().await;
            assert!(scroll <= inner, "no sideways scrolling at {width} px");
            b.close().await;
        }
    }
}
