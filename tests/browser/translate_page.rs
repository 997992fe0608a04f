use std::time::Duration;

use fantoccini::Locator;
use fantoccini::key::Key;

use crate::driver::{Options, browser};
use crate::emulator::{Behavior, Emulator, Fault};
use crate::helpers::server;

const WAIT: Duration = Duration::from_secs(15);

/// The results of the latest request (not the dimmed ones of an earlier input).
pub async fn results(b: &crate::driver::Browser) -> Vec<fantoccini::elements::Element> {
    b.client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#results:not(.stale):not([aria-busy]) .prediction"))
        .await
        .expect("results appear");
    b.client.find_all(Locator::Css(".prediction")).await.unwrap()
}

#[ignore = "a browser test: needs Chromium and chromedriver (apt-get install chromium chromium-driver); cargo test -- --include-ignored runs it, as .ci/run does"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn translate_an_input_with_chosen_beam_and_top_k() {
    let s = server().spawn();
    let Some(b) = browser("translate_an_input_with_chosen_beam_and_top_k", Options::default()).await else {
        return;
    };
    b.client.goto(&s.url("/")).await.unwrap();
    b.screenshot("translate-empty-desktop").await;
    b.client.find(Locator::Css("#text")).await.unwrap().send_keys("CC(=O)Oc1ccccc1C(=O)O").await.unwrap();
    let counter = b.client.find(Locator::Css("#counter")).await.unwrap().text().await.unwrap();
    assert_eq!(counter, "21 / 2000 characters");
    b.client.find(Locator::Css("#beam")).await.unwrap().select_by_value("3").await.unwrap();
    b.client.find(Locator::Css("#n_best")).await.unwrap().select_by_value("2").await.unwrap();
    b.client.find(Locator::Css("#submit")).await.unwrap().click().await.unwrap();
    let preds = results(&b).await;
    assert_eq!(preds.len(), 2);
    // Where the eye is: focus moved to the results' heading, the button says
    // Translate again.
    let focused = b.client.execute("return document.activeElement.id", vec![]).await.unwrap();
    assert_eq!(focused, "results-title", "focus on the results' heading");
    let button = b.client.find(Locator::Css("#submit")).await.unwrap();
    assert_eq!((button.text().await.unwrap().as_str(), button.attr("aria-busy").await.unwrap()), ("Translate", None));
    let first = preds[0].text().await.unwrap();
    assert!(first.contains("#1") && first.contains("CC(=O)Oc1ccccc1C(=O)O") && first.contains('%'), "{first}");
    assert_eq!(b.client.find_all(Locator::Css("svg.heatmap")).await.unwrap().len(), 2);
    // The address is the state: reload shows the same results, Back the
    // empty page, and the prediction is in this browser's recent list.
    let url = b.client.current_url().await.unwrap();
    let query = url.query().unwrap_or("");
    assert!(query.contains("run=1") && query.contains("beam=3") && query.contains("n_best=2"), "{url}");
    b.client.refresh().await.unwrap();
    assert_eq!(results(&b).await.len(), 2, "a reload shows the results again");
    let recent = b.client.find(Locator::Css("#recent-list a")).await.unwrap();
    // (inside the closed list: its text content, not what is displayed)
    assert_eq!(recent.prop("textContent").await.unwrap().as_deref(), Some("CC(=O)Oc1ccccc1C(=O)O"));
    b.client.back().await.unwrap();
    let back = async {
        while b.client.current_url().await.unwrap().query().is_some() {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(WAIT, back).await.expect("Back returns to the empty page's address");
    b.client.wait().at_most(WAIT).for_element(Locator::Css("#recent:not([hidden])")).await.unwrap();
    assert!(b.client.find_all(Locator::Css(".prediction")).await.unwrap().is_empty(), "Back: the empty page");
    b.client.find(Locator::Css("#recent summary")).await.unwrap().click().await.unwrap();
    b.client.find(Locator::Css("#recent-clear")).await.unwrap().click().await.unwrap();
    assert!(!b.client.find(Locator::Css("#recent")).await.unwrap().is_displayed().await.unwrap(), "cleared");
    b.client.forward().await.unwrap();
    let preds = results(&b).await;
    // top-k can never exceed the beam: options above it are disabled
    b.client.find(Locator::Css("#beam")).await.unwrap().select_by_value("1").await.unwrap();
    let n_best = b.client.find(Locator::Css("#n_best")).await.unwrap();
    assert_eq!(n_best.prop("value").await.unwrap().as_deref(), Some("1"));
    b.screenshot("translate-results-desktop").await;
    let png = preds[0].screenshot().await.unwrap();
    std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/target/screenshots/translate-heatmap.png"), png).unwrap();
    b.close().await;
}

#[ignore = "a browser test: needs Chromium and chromedriver (apt-get install chromium chromium-driver); cargo test -- --include-ignored runs it, as .ci/run does"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clicks_translate_an_example_on_a_phone() {
    let s = server().spawn();
    let options = Options { width: 360, height: 780, ..Default::default() };
    let Some(b) = browser("two_clicks_translate_an_example_on_a_phone", options).await else {
        return;
    };
    b.client.goto(&s.url("/")).await.unwrap();
    b.client.find(Locator::Css("button.chip")).await.unwrap().click().await.unwrap();
    let value = b.client.find(Locator::Css("#text")).await.unwrap().prop("value").await.unwrap();
    assert_eq!(value.as_deref(), Some(translation_front::config::BUILTIN_REACTIONS[0].1));
    b.client.find(Locator::Css("#submit")).await.unwrap().click().await.unwrap();
    assert_eq!(results(&b).await.len(), 5);
    let width: f64 =
        b.client.execute("return document.documentElement.scrollWidth", vec![]).await.unwrap().as_f64().unwrap();
    assert!(width <= 360.0, "no sideways scrolling of the page on a phone: {width}");
    b.screenshot("translate-results-phone").await;
    b.close().await;
}

#[ignore = "a browser test: needs Chromium and chromedriver (apt-get install chromium chromium-driver); cargo test -- --include-ignored runs it, as .ci/run does"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_enter_submits() {
    let s = server().spawn();
    let Some(b) = browser("ctrl_enter_submits", Options::default()).await else {
        return;
    };
    b.client.goto(&s.url("/")).await.unwrap();
    let text = b.client.find(Locator::Css("#text")).await.unwrap();
    text.send_keys("N#Cc1ccccc1").await.unwrap();
    text.send_keys(&format!("{}{}{}", char::from(Key::Control), char::from(Key::Enter), char::from(Key::Null)))
        .await
        .unwrap();
    assert_eq!(results(&b).await.len(), 5);
    b.close().await;
}

#[ignore = "a browser test: needs Chromium and chromedriver (apt-get install chromium chromium-driver); cargo test -- --include-ignored runs it, as .ci/run does"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_error_shows_inline_and_keeps_the_page() {
    let emu = Emulator::start(Behavior { fault: Fault::FunctionError, ..Default::default() }).await;
    let s = server().lambda(&emu).spawn();
    let Some(b) = browser("a_function_error_shows_inline_and_keeps_the_page", Options::default()).await else {
        return;
    };
    b.client.goto(&s.url("/")).await.unwrap();
    b.client.find(Locator::Css("#text")).await.unwrap().send_keys("CCO").await.unwrap();
    b.client.find(Locator::Css("#submit")).await.unwrap().click().await.unwrap();
    let error = b.client.wait().at_most(WAIT).for_element(Locator::Css("#error:not([hidden])")).await.unwrap();
    let message = error.text().await.unwrap();
    assert!(message.contains("The model failed on this input") && !message.contains("CUDA"), "{message}");
    assert!(!message.contains('{'), "plain words, not JSON: {message}");
    let value = b.client.find(Locator::Css("#text")).await.unwrap().prop("value").await.unwrap();
    assert_eq!(value.as_deref(), Some("CCO"), "the input is kept");
    b.screenshot("translate-error-desktop").await;
    b.close().await;
}

#[ignore = "a browser test: needs Chromium and chromedriver (apt-get install chromium chromium-driver); cargo test -- --include-ignored runs it, as .ci/run does"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_injection_stays_inert_text() {
    let s = server().env("TOKENIZER", "whitespace").env("INPUT_FORMAT", "text").spawn();
    let Some(b) = browser("script_injection_stays_inert_text", Options::default()).await else {
        return;
    };
    open_with_trapped_alert(&b, &s.url("/")).await;
    for input in XSS {
        submit(&b, input).await;
        let preds = results(&b).await;
        let shown = preds[0].find(Locator::Css(".pred-text")).await.unwrap().text().await.unwrap();
        assert_eq!(shown, input, "rendered as text");
        assert!(b.client.find_all(Locator::Css("#results img, #results script")).await.unwrap().is_empty());
        assert_no_script_ran(&b).await;
    }
    // SMILES mode: the same strings are not molecules, and the error that
    // names them shows them as text.
    let smiles = server().spawn();
    open_with_trapped_alert(&b, &smiles.url("/")).await;
    for input in XSS {
        submit(&b, input).await;
        let error = b.client.wait().at_most(WAIT).for_element(Locator::Css("#error:not([hidden])")).await.unwrap();
        let shown = error.text().await.unwrap();
        assert!(shown.contains(input) && shown.contains("cannot be read"), "{shown}");
        assert!(b.client.find_all(Locator::Css("#error img, #error script")).await.unwrap().is_empty());
        assert_no_script_ran(&b).await;
    }
    b.close().await;
}

const XSS: [&str; 2] = ["<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>"];

/// Opens `url` with `alert` replaced by a flag, so a script that ran shows.
async fn open_with_trapped_alert(b: &crate::driver::Browser, url: &str) {
    b.client.goto(url).await.unwrap();
    b.client
        .execute("window.__alerted = false; window.alert = () => { window.__alerted = true; };", vec![])
        .await
        .unwrap();
}

async fn submit(b: &crate::driver::Browser, input: &str) {
    let text = b.client.find(Locator::Css("#text")).await.unwrap();
    text.clear().await.unwrap();
    text.send_keys(input).await.unwrap();
    b.client.find(Locator::Css("#submit")).await.unwrap().click().await.unwrap();
}

async fn assert_no_script_ran(b: &crate::driver::Browser) {
    assert!(b.client.get_alert_text().await.is_err(), "no dialog");
    let alerted = b.client.execute("return window.__alerted", vec![]).await.unwrap();
    assert_eq!(alerted, serde_json::Value::Bool(false));
}

#[ignore = "a browser test: needs Chromium and chromedriver (apt-get install chromium chromium-driver); cargo test -- --include-ignored runs it, as .ci/run does"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_javascript_the_form_posts_and_renders_results() {
    let s = server().spawn();
    let options = Options { javascript: false, ..Default::default() };
    let Some(b) = browser("without_javascript_the_form_posts_and_renders_results", options).await else {
        return;
    };
    b.client.goto(&s.url("/")).await.unwrap();
    let text = b.client.find(Locator::Css("#text")).await.unwrap();
    text.send_keys("CCN(CC)CC").await.unwrap();
    b.client.find(Locator::Css("#submit")).await.unwrap().click().await.unwrap();
    let preds = results(&b).await;
    assert_eq!(preds.len(), 5);
    assert!(preds[0].text().await.unwrap().contains("CCN(CC)CC"));
    // the example buttons translate directly too. The click posts the form:
    // wait for the new page's answer, not the old page's results.
    b.client.find(Locator::Css("button.chip")).await.unwrap().click().await.unwrap();
    // The demo answers a mixture with its largest component.
    let example = translation_front::config::BUILTIN_REACTIONS[0].1;
    let want = example.split('.').max_by_key(|c| c.len()).unwrap();
    let answered = async {
        loop {
            if let Ok(e) = b.client.find(Locator::Css(".pred-text")).await
                && e.text().await.is_ok_and(|t| t == want)
            {
                return;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(WAIT, answered).await.expect("the example's answer appears");
    b.screenshot("translate-nojs-desktop").await;
    b.close().await;
}
