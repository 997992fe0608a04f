//! The UI at every size and length: no sideways page, light heatmaps with
//! values readable by keyboard and tap, copy over plain HTTP, stale results
//! marked, batches whose failures look like failures, and axe-core's rules.

use std::time::Duration;

use fantoccini::Locator;
use fantoccini::actions::{InputSource, PointerAction, TouchActions};
use fantoccini::key::Key;
use serde_json::{Value, json};

use crate::driver::{Browser, Options, browser};
use crate::emulator::{Behavior, Emulator, Fault};
use crate::helpers::{Server, molecule, server};
use crate::translate_page::results;

const WAIT: Duration = Duration::from_secs(30);

/// The most a results fragment may weigh for any input the service accepts
/// at its default limits (a 2,000-character input, or 100,000 attention
/// weights): bytes of markup and elements.
const FRAGMENT_BYTES: usize = 256 * 1024;
const FRAGMENT_NODES: usize = 3_000;

/// A valid SMILES of exactly `len` characters, with the beam and top-k to
/// ask for. At 2,000 characters the demo's answers are 2,000 tokens long;
/// one result keeps the debug build's demo quick.
fn input_of(len: usize) -> (String, &'static str, &'static str) {
    match len {
        1 => ("C".into(), "5", "5"),
        40 => ("CCO.CC(=O)O.c1ccccc1N.CCN(CC)CC.O=C(O)CC".into(), "5", "5"),
        300 => ("CCO.".repeat(74) + "CCCO", "5", "5"),
        2000 => ("CCO.".repeat(499) + "CCCO", "1", "1"),
        _ => unreachable!(),
    }
}

/// Waits until `condition` (a JavaScript expression) is true.
pub(crate) async fn until(b: &Browser, condition: &str) {
    let script = format!("return !!({condition})");
    let holds = async {
        while b.client.execute(&script, vec![]).await.unwrap() != Value::Bool(true) {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(WAIT, holds).await.unwrap_or_else(|_| panic!("never true: {condition}"));
}

async fn text_of(b: &Browser, css: &str) -> String {
    b.client.find(Locator::Css(css)).await.unwrap().text().await.unwrap()
}

/// Puts `text` in the box (as a paste would), picks beam and top-k, submits.
async fn ask(b: &Browser, text: &str, beam: &str, top_k: &str) {
    let set = "const t = document.querySelector('#text'); t.value = arguments[0]; \
               t.dispatchEvent(new Event('input'))";
    b.client.execute(set, vec![json!(text)]).await.unwrap();
    b.client.find(Locator::Css("#beam")).await.unwrap().select_by_value(beam).await.unwrap();
    b.client.find(Locator::Css("#n_best")).await.unwrap().select_by_value(top_k).await.unwrap();
    b.client.find(Locator::Css("#submit")).await.unwrap().click().await.unwrap();
}

async fn assert_no_overflow(b: &Browser, what: &str) {
    let (scroll, inner) = b.widths().await;
    assert!(scroll <= inner, "{what}: the page is {scroll} px wide in a {inner} px window");
}

async fn assert_axe_clean(b: &Browser, what: &str) {
    let violations = b.axe().await;
    assert!(violations.is_empty(), "{what}: axe-core found {violations:#?}");
}

/// Opens every heatmap and table of values, as a curious reader would.
async fn open_everything(b: &Browser) {
    b.client
        .execute("document.querySelectorAll('#results details').forEach((d) => { d.open = true; })", vec![])
        .await
        .unwrap();
}

#[ignore = "a browser test: needs Chromium and chromedriver (apt-get install chromium chromium-driver); cargo test -- --include-ignored runs it, as .ci/run does"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_page_is_wider_than_the_screen_at_any_size_length_or_theme() {
    // The longest input MAX_INPUT_CHARS allows: MAX_ATOMS (200 by default,
    // fewer atoms than these inputs have) raised so the characters are the bound.
    let s = server().env("MAX_ATOMS", "2000").spawn();
    for (width, dark) in [(320, false), (390, false), (1280, false), (320, true), (390, true), (1280, true)] {
        let options = Options { width, height: 800, dark, ..Default::default() };
        let Some(b) = browser("no_page_is_wider_than_the_screen", options).await else {
            return;
        };
        let theme = if dark { "dark" } else { "light" };
        for len in [1, 40, 300, 2000] {
            let (text, beam, top_k) = input_of(len);
            assert_eq!(text.chars().count(), len);
            b.client.goto(&s.url("/")).await.unwrap();
            ask(&b, &text, beam, top_k).await;
            results(&b).await;
            let what = format!("{len} characters at {width} px, {theme}");
            assert_no_overflow(&b, &what).await;
            open_everything(&b).await;
            assert_no_overflow(&b, &format!("{what}, every heatmap open")).await;
            // Full size: the map scrolls inside its own box, not the page.
            b.client
                .execute("document.querySelectorAll('button.zoom:not([hidden])').forEach((z) => z.click())", vec![])
                .await
                .unwrap();
            assert_no_overflow(&b, &format!("{what}, heatmaps at full size")).await;
            if width == 390 && !dark && len >= 300 {
                b.client.execute("document.querySelector('#results').scrollIntoView()", vec![]).await.unwrap();
                b.screenshot(&format!("ui-{len}-characters-phone")).await;
            }
        }
        // An error that quotes a 2,000-character input wraps too.
        b.client.goto(&s.url("/")).await.unwrap();
        ask(&b, &format!("C1{}", "C".repeat(1998)), "5", "5").await;
        b.client.wait().at_most(WAIT).for_element(Locator::Css("#error:not([hidden])")).await.unwrap();
        assert_no_overflow(&b, &format!("a 2,000-character error at {width} px, {theme}")).await;
        b.close().await;
    }
}

#[ignore = "a browser test: needs Chromium and chromedriver (apt-get install chromium chromium-driver); cargo test -- --include-ignored runs it, as .ci/run does"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axe_core_finds_nothing_on_any_page_in_either_theme() {
    let s = server().spawn();
    for (width, dark) in [(1280, false), (1280, true), (390, false), (390, true)] {
        let options = Options { width, height: 900, dark, ..Default::default() };
        let Some(b) = browser("axe_core_finds_nothing", options).await else {
            return;
        };
        let at = format!("{width} px, {}", if dark { "dark" } else { "light" });
        for path in ["/", "/about", "/batch", "/api", "/no-such-page"] {
            b.client.goto(&s.url(path)).await.unwrap();
            assert_axe_clean(&b, &format!("{path} at {at}")).await;
        }
        b.client.goto(&s.url("/")).await.unwrap();
        ask(&b, &input_of(40).0, "5", "5").await;
        results(&b).await;
        open_everything(&b).await;
        assert_axe_clean(&b, &format!("a result at {at}")).await;
        // An error under the results of an earlier input (kept, marked stale).
        ask(&b, "C1CC", "5", "5").await;
        b.client.wait().at_most(WAIT).for_element(Locator::Css("#error:not([hidden])")).await.unwrap();
        assert_axe_clean(&b, &format!("an error at {at}")).await;
        if width == 390 && !dark {
            b.screenshot("ui-error-over-stale-results-phone").await;
        }
        b.close().await;
    }
}

#[ignore = "a browser test: needs Chromium and chromedriver (apt-get install chromium chromium-driver); cargo test -- --include-ignored runs it, as .ci/run does"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_works_over_plain_http_and_the_link_translates_what_is_shown() {
    let s = server().spawn();
    let port = s.base.rsplit(':').next().unwrap().to_string();
    // A name that is not localhost: plain HTTP there is not a secure context,
    // as a cluster's NodePort is not.
    let options = Options { host_rules: Some("MAP app.test 127.0.0.1"), ..Default::default() };
    let Some(b) = browser("copy_works_over_plain_http", options).await else {
        return;
    };
    let origin = format!("http://app.test:{port}");
    b.client.goto(&format!("{origin}/")).await.unwrap();
    let secure = b.client.execute("return [window.isSecureContext, !!navigator.clipboard]", vec![]).await.unwrap();
    assert_eq!(secure, json!([false, false]), "the test needs an insecure origin");
    ask(&b, "CCO.CC(=O)O", "3", "2").await;
    let preds = results(&b).await;
    assert_eq!(preds.len(), 2);
    let first = preds[0].find(Locator::Css(".pred-text")).await.unwrap().text().await.unwrap();
    let copy = preds[0].find(Locator::Css("button.copy")).await.unwrap();
    assert_eq!(copy.attr("aria-label").await.unwrap().as_deref(), Some("Copy result 1"));
    copy.click().await.unwrap();
    until(&b, "document.querySelector('.prediction button.copy').textContent === 'Copied'").await;
    let pasted = paste_into_the_box(&b).await;
    assert_eq!(pasted, first, "the clipboard holds result 1");

    // The share link is the shown results' (not the box's new text), keeps
    // beam and top-k, and translates when opened.
    b.client.find(Locator::Css("#copy-link")).await.unwrap().click().await.unwrap();
    until(&b, "document.querySelector('#copy-link').textContent === 'Copied'").await;
    let link = paste_into_the_box(&b).await;
    assert!(link.starts_with(&format!("{origin}/?")) && link.contains("run=1"), "{link}");
    b.client.goto(&link).await.unwrap();
    let preds = results(&b).await;
    assert_eq!(preds.len(), 2, "top-k 2 came with the link");
    let text = b.client.find(Locator::Css("#text")).await.unwrap().prop("value").await.unwrap();
    assert_eq!(text.as_deref(), Some("CCO.CC(=O)O"));
    let beam = b.client.find(Locator::Css("#beam")).await.unwrap().prop("value").await.unwrap();
    assert_eq!(beam.as_deref(), Some("3"));
    b.close().await;
}

/// Empties the input box and pastes the clipboard into it with Ctrl+V.
async fn paste_into_the_box(b: &Browser) -> String {
    let text = b.client.find(Locator::Css("#text")).await.unwrap();
    text.clear().await.unwrap();
    text.send_keys(&format!("{}v{}", char::from(Key::Control), char::from(Key::Null))).await.unwrap();
    text.prop("value").await.unwrap().unwrap_or_default()
}

#[ignore = "a browser test: needs Chromium and chromedriver (apt-get install chromium chromium-driver); cargo test -- --include-ignored runs it, as .ci/run does"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heatmaps_stay_light_and_read_out_by_keyboard_and_tap() {
    // As above: MAX_INPUT_CHARS, not MAX_ATOMS, bounds these inputs.
    let s = server().env("MAX_ATOMS", "2000").spawn();
    let options = Options { width: 390, height: 844, ..Default::default() };
    let Some(b) = browser("heatmaps_stay_light", options).await else {
        return;
    };
    // The heaviest answers the defaults allow: 2,000 characters, and close
    // to 100,000 attention weights in five maps.
    for (text, beam, top_k, maps) in
        [(input_of(2000).0, "1", "1", 0), ("CCO.".repeat(34) + "CCO", "5", "5", 5), (input_of(40).0, "5", "5", 5)]
    {
        b.client.goto(&s.url("/")).await.unwrap();
        ask(&b, &text, beam, top_k).await;
        results(&b).await;
        let weight = b
            .client
            .execute(
                "const r = document.querySelector('#results');
                 return [r.innerHTML.length, r.querySelectorAll('*').length,
                         r.querySelectorAll('svg.heatmap').length, r.querySelectorAll('details.attention[open]').length]",
                vec![],
            )
            .await
            .unwrap();
        let (bytes, nodes) = (weight[0].as_u64().unwrap() as usize, weight[1].as_u64().unwrap() as usize);
        let what = format!("{} characters", text.len());
        assert!(bytes <= FRAGMENT_BYTES, "{what}: {bytes} bytes of results");
        assert!(nodes <= FRAGMENT_NODES, "{what}: {nodes} elements in the results");
        assert_eq!(weight[2], maps, "{what}: heatmaps");
        assert_eq!(weight[3], u64::from(maps > 0), "{what}: only the first heatmap starts open");
    }

    // Exact values by keyboard: the arrow keys move a cursor and the readout
    // says the weight the API gives for that cell.
    let api = s.translate(json!({"text": input_of(40).0, "beam": 5, "n_best": 5})).await;
    let weight = |row: usize, col: usize| {
        format!("{:.1}%", api.json["predictions"][0]["attention"][row][col].as_f64().unwrap() * 100.0)
    };
    let map = b.client.find(Locator::Css("details[open] .heatmap-scroll")).await.unwrap();
    b.client.execute("arguments[0].focus()", vec![serde_json::to_value(&map).unwrap()]).await.unwrap();
    until(&b, "document.querySelector('.readout').textContent.startsWith('Result token 1 ')").await;
    map.send_keys(&format!("{}{}{}", char::from(Key::Right), char::from(Key::Right), char::from(Key::Down)))
        .await
        .unwrap();
    until(&b, "document.querySelector('.readout').textContent.startsWith('Result token 2 ')").await;
    let readout = text_of(&b, ".readout").await;
    assert!(readout.contains("→ input token 3 “") && readout.ends_with(&format!(": {}", weight(1, 2))), "{readout}");

    // And by a tap on a cell (row 1, column 5).
    let cell = b
        .client
        .execute(
            "const svg = document.querySelector('details[open] svg.heatmap');
             const m = svg.getScreenCTM(), d = svg.dataset, c = Number(d.cell);
             const p = new DOMPoint(Number(d.left) + 4.5 * c, Number(d.top) + 0.5 * c).matrixTransform(m);
             svg.scrollIntoView({ block: 'center' });
             const q = new DOMPoint(Number(d.left) + 4.5 * c, Number(d.top) + 0.5 * c).matrixTransform(svg.getScreenCTM());
             return [q.x, q.y]",
            vec![],
        )
        .await
        .unwrap();
    let tap = TouchActions::new("finger".into())
        .then(PointerAction::MoveTo { duration: None, x: cell[0].as_f64().unwrap(), y: cell[1].as_f64().unwrap() })
        .then(PointerAction::Down { button: 0 })
        .then(PointerAction::Up { button: 0 });
    b.client.perform_actions(tap).await.unwrap();
    until(&b, "document.querySelector('.readout').textContent.includes('→ input token 5 ')").await;
    let readout = text_of(&b, ".readout").await;
    assert!(readout.starts_with("Result token 1 ") && readout.ends_with(&format!(": {}", weight(0, 4))), "{readout}");
    b.screenshot("ui-heatmap-readout-phone").await;

    // Full size scrolls inside the map's box.
    let zoom = b.client.find(Locator::Css("details[open] button.zoom")).await.unwrap();
    zoom.click().await.unwrap();
    assert_eq!(zoom.attr("aria-pressed").await.unwrap().as_deref(), Some("true"));
    until(&b, "(() => { const s = document.querySelector('details[open] .heatmap-scroll'); return s.scrollWidth > s.clientWidth; })()").await;
    assert_no_overflow(&b, "a heatmap at full size").await;
    b.close().await;
}

#[ignore = "a browser test: needs Chromium and chromedriver (apt-get install chromium chromium-driver); cargo test -- --include-ignored runs it, as .ci/run does"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_of_an_earlier_input_are_dimmed_and_labelled() {
    let emu = Emulator::start(Behavior::default()).await;
    let s = server().lambda(&emu).spawn();
    let Some(b) = browser("results_of_an_earlier_input_are_dimmed", Options::default()).await else {
        return;
    };
    b.client.goto(&s.url("/")).await.unwrap();
    ask(&b, "CCO", "5", "5").await;
    results(&b).await;
    emu.set(|b| b.fault = Fault::FunctionError);
    emu.hold();
    ask(&b, "CCN", "5", "5").await;
    until(&b, "document.querySelector('#results').classList.contains('stale')").await;
    let label = text_of(&b, "#results .stale-label").await;
    assert!(label.contains("results below are for the previous one"), "{label}");
    b.screenshot("ui-stale-while-translating").await;
    emu.release();
    b.client.wait().at_most(WAIT).for_element(Locator::Css("#error:not([hidden])")).await.unwrap();
    let label = text_of(&b, "#results .stale-label").await;
    assert!(label.contains("for an earlier input, not for the one above"), "{label}");
    assert!(
        b.client
            .execute("return document.querySelector('#results').classList.contains('stale')", vec![])
            .await
            .unwrap()
            == true
    );
    // The next answer replaces them, no longer marked.
    emu.set(|b| b.fault = Fault::None);
    ask(&b, "CCN", "5", "5").await;
    results(&b).await;
    assert!(b.client.find_all(Locator::Css("#results .stale-label")).await.unwrap().is_empty());
    b.close().await;
}

#[ignore = "a browser test: needs Chromium and chromedriver (apt-get install chromium chromium-driver); cargo test -- --include-ignored runs it, as .ci/run does"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_where_every_row_fails_says_so_and_its_rows_can_be_retried() {
    let emu = Emulator::start(Behavior { fault: Fault::FunctionError, ..Default::default() }).await;
    let s: Server = server().lambda(&emu).spawn();
    let dir = std::env::temp_dir().join(format!("tf-ui-batch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let inputs: Vec<String> = (0..30).map(molecule).collect();
    // The last target is another molecule: that row is answered, but wrong.
    let mut targets = inputs.clone();
    targets[29] = "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC(=O)O".into();
    // Blank lines at the end of a file are not rows.
    std::fs::write(dir.join("inputs.txt"), inputs.join("\n") + "\n\n\n").unwrap();
    std::fs::write(dir.join("targets.txt"), targets.join("\n") + "\n").unwrap();
    let options = Options { width: 390, height: 844, ..Default::default() };
    let Some(b) = browser("a_batch_where_every_row_fails", options).await else {
        return;
    };
    b.client.goto(&s.url("/batch")).await.unwrap();
    let file = |name: &str| dir.join(name).to_str().unwrap().to_string();
    b.client.find(Locator::Css("#inputs")).await.unwrap().send_keys(&file("inputs.txt")).await.unwrap();
    b.client.find(Locator::Css("#targets")).await.unwrap().send_keys(&file("targets.txt")).await.unwrap();
    emu.hold();
    b.client.find(Locator::Css("#start")).await.unwrap().click().await.unwrap();
    let held = async {
        while emu.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(WAIT, held).await.expect("the batch reaches the function");
    assert_axe_clean(&b, "a batch running").await;
    emu.release();

    let alert = b.client.wait().at_most(WAIT).for_element(Locator::Css("#error:not([hidden])")).await.unwrap();
    assert_eq!(alert.attr("role").await.unwrap().as_deref(), Some("alert"));
    let words = alert.text().await.unwrap();
    assert!(words.contains("Nothing was translated: all 30 rows failed"), "{words}");
    assert!(words.contains("The model failed on this input"), "{words}");
    let progress = text_of(&b, "#progress-text").await;
    assert_eq!(progress, "Finished with errors: all 30 rows failed.");
    let card = b.client.find(Locator::Css("#progress")).await.unwrap();
    assert!(card.attr("class").await.unwrap().unwrap_or_default().contains("failed"), "the bar turns red");
    let failed = b.client.find_all(Locator::Css("#table tbody tr.failed")).await.unwrap();
    assert_eq!(failed.len(), 30);
    let row = failed[0].text().await.unwrap();
    assert!(row.contains("Failed: The model failed on this input.") && !row.contains("lambda_"), "{row}");
    assert_no_overflow(&b, "an all-failed batch on a phone").await;
    assert_axe_clean(&b, "an all-failed batch").await;
    b.client.execute("document.querySelector('#progress').scrollIntoView()", vec![]).await.unwrap();
    b.screenshot("ui-batch-all-failed-phone").await;

    // Retry once the function is well again: the rows take their places.
    emu.set(|b| b.fault = Fault::None);
    b.client.find(Locator::Css("#retry")).await.unwrap().click().await.unwrap();
    until(&b, "document.querySelector('#progress-text').textContent.startsWith('Finished with errors: 0') || document.querySelector('#progress-text').textContent.startsWith('Done')").await;
    assert!(b.client.find_all(Locator::Css("#table tbody tr.failed")).await.unwrap().is_empty());
    assert!(b.client.find(Locator::Css("#error")).await.unwrap().attr("hidden").await.unwrap().is_some());
    assert_eq!(b.client.find_all(Locator::Css("#table tbody tr.correct")).await.unwrap().len(), 29);
    let wrong = b.client.find_all(Locator::Css("#table tbody tr.wrong")).await.unwrap();
    assert_eq!(wrong.len(), 1);
    assert!(wrong[0].text().await.unwrap().contains("✗ not in top-5"));
    let summary = text_of(&b, "#summary").await;
    assert!(summary.contains("Translated\n30") && summary.contains("Failed\n0"), "{summary}");
    assert_axe_clean(&b, "a finished batch").await;
    b.client.execute("document.querySelector('#summary').scrollIntoView()", vec![]).await.unwrap();
    b.screenshot("ui-batch-retried-phone").await;
    b.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[ignore = "a browser test: needs Chromium and chromedriver (apt-get install chromium chromium-driver); cargo test -- --include-ignored runs it, as .ci/run does"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_javascript_results_have_an_address_and_errors_have_words() {
    let s = server().spawn();
    let options = Options { javascript: false, width: 390, height: 844, ..Default::default() };
    let Some(b) = browser("without_javascript_results_have_an_address", options).await else {
        return;
    };
    b.client.goto(&s.url("/")).await.unwrap();
    assert!(
        !b.client.find(Locator::Css("#shortcut")).await.unwrap().is_displayed().await.unwrap(),
        "no Ctrl+Enter hint"
    );
    b.client.find(Locator::Css("#text")).await.unwrap().send_keys("CCO.CC(=O)O").await.unwrap();
    b.client.find(Locator::Css("#submit")).await.unwrap().click().await.unwrap();
    results(&b).await;
    // Post/redirect/get: the results page is an address (a reload does not
    // post the form again).
    let url = b.client.current_url().await.unwrap();
    assert!(url.query().is_some_and(|q| q.contains("run=1") && q.contains("text=CCO.CC")), "{url}");
    assert_eq!(url.fragment(), Some("outcome"), "the page opens at the form's buttons, the results below them");
    b.client.refresh().await.unwrap();
    assert_eq!(results(&b).await.len(), 5);
    // The exact values of a small map, as a table.
    assert!(!b.client.find_all(Locator::Css("details.values table td")).await.unwrap().is_empty());
    // A choice the form's own selects would not make arrives in their words.
    b.client.goto(&s.url("/?text=CCO&beam=3&n_best=5&run=1")).await.unwrap();
    let error = text_of(&b, "#error").await;
    assert_eq!(
        error,
        "The number of results (5) cannot exceed the beam width (3): choose fewer results or a wider beam."
    );
    // A batch form without inputs: a page in words, not JSON.
    b.client.goto(&s.url("/batch")).await.unwrap();
    let empty = std::env::temp_dir().join(format!("tf-ui-empty-{}.txt", std::process::id()));
    std::fs::write(&empty, "").unwrap();
    b.client.find(Locator::Css("#inputs")).await.unwrap().send_keys(empty.to_str().unwrap()).await.unwrap();
    b.client.find(Locator::Css("#start")).await.unwrap().click().await.unwrap();
    let heading = b.client.wait().at_most(WAIT).for_element(Locator::Css("article h1")).await.unwrap();
    assert_eq!(heading.text().await.unwrap(), "That request could not be read");
    assert_eq!(text_of(&b, "article p").await, "There are no inputs.");
    b.close().await;
}
