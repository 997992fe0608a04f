//! Structures in the browser: drawn on the server, shown with and without
//! JavaScript, at phone and desktop widths, light and dark.

use std::time::Duration;

use fantoccini::Locator;

use crate::driver::{Browser, Options, browser};
use crate::helpers::server;

const WAIT: Duration = Duration::from_secs(15);

/// The drawings of the input, the target and each prediction (not those of
/// the attention on the atoms, which are inside their own disclosure).
const STRUCTURES: &str = ".structure img:not(.atom-view img)";

/// Waits until every structure image on the page has loaded and has a size;
/// returns how many there are.
async fn structures_loaded(b: &Browser) -> usize {
    b.client.wait().at_most(WAIT).for_element(Locator::Css(STRUCTURES)).await.expect("structures appear");
    let images = b.client.find_all(Locator::Css(STRUCTURES)).await.unwrap();
    for img in &images {
        b.wait_loaded(img).await;
    }
    images.len()
}

#[ignore = "a browser test: needs Chromium and chromedriver (apt-get install chromium chromium-driver); cargo test -- --include-ignored runs it, as .ci/run does"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_javascript_a_reaction_shows_the_input_and_every_valid_prediction() {
    let s = server().spawn();
    for (width, height, name) in [(1280, 900, "desktop"), (390, 844, "phone")] {
        let options = Options { javascript: false, width, height, ..Default::default() };
        let Some(b) = browser("without_javascript_a_reaction_shows_structures", options).await else {
            return;
        };
        b.client.goto(&s.url("/")).await.unwrap();
        // An example button posts the form: no script involved. The demo
        // answers a reaction mixture with its components: all molecules.
        b.client.find(Locator::Css("button.chip")).await.unwrap().click().await.unwrap();
        assert_eq!(structures_loaded(&b).await, 1 + 5, "the input and each prediction are drawn");
        let alt = b.client.find(Locator::Css(".structure img")).await.unwrap().attr("alt").await.unwrap();
        assert!(alt.unwrap().starts_with("Structure of the input"));
        b.client.execute("document.querySelector('#results').scrollIntoView()", vec![]).await.unwrap();
        b.screenshot(&format!("chemistry-nojs-{name}")).await;
        // One molecule: its reversed and rotated forms are mostly not molecules.
        b.client.goto(&s.url("/")).await.unwrap();
        b.client.find(Locator::Css("#text")).await.unwrap().send_keys("CC(=O)Oc1ccccc1C(=O)O").await.unwrap();
        b.client.find(Locator::Css("#submit")).await.unwrap().click().await.unwrap();
        let drawn = structures_loaded(&b).await;
        let predictions = b.client.find_all(Locator::Css("li.prediction")).await.unwrap().len();
        let invalid = b.client.find_all(Locator::Css("li.prediction.invalid")).await.unwrap().len();
        assert_eq!(predictions, 5);
        assert!(invalid >= 1, "the demo's reversed forms are not molecules");
        assert_eq!(drawn, 1 + predictions - invalid, "the input and each valid prediction are drawn");
        assert_eq!(b.client.find_all(Locator::Css(".badge.invalid")).await.unwrap().len(), invalid);
        let overflow = b.client.execute("return document.documentElement.scrollWidth > innerWidth", vec![]).await;
        assert_eq!(overflow.unwrap(), false, "no sideways scrolling at {width} px");
        let first_invalid = b.client.find(Locator::Css("li.prediction.invalid")).await.unwrap();
        b.client
            .execute("arguments[0].scrollIntoView()", vec![serde_json::to_value(&first_invalid).unwrap()])
            .await
            .unwrap();
        b.screenshot(&format!("chemistry-invalid-{name}")).await;
        b.close().await;
    }
}

#[ignore = "a browser test: needs Chromium and chromedriver (apt-get install chromium chromium-driver); cargo test -- --include-ignored runs it, as .ci/run does"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expected_product_written_another_way_is_found_and_marked() {
    let s = server().spawn();
    for (width, height, dark, name) in [(1280, 900, false, "desktop"), (390, 844, true, "phone-dark")] {
        let options = Options { width, height, dark, ..Default::default() };
        let Some(b) = browser("an_expected_product_is_found_and_marked", options).await else {
            return;
        };
        b.client.goto(&s.url("/")).await.unwrap();
        b.client.find(Locator::Css("#text")).await.unwrap().send_keys("OCC.OC(C)=O").await.unwrap();
        b.client.find(Locator::Css(".target-field summary")).await.unwrap().click().await.unwrap();
        // Acetic acid, written as a chemist might: the demo's first answer.
        b.client.find(Locator::Css("#target")).await.unwrap().send_keys("C(C)(O)=O").await.unwrap();
        b.client.find(Locator::Css("#submit")).await.unwrap().click().await.unwrap();
        let correct = b.client.wait().at_most(WAIT).for_element(Locator::Css("li.prediction.correct")).await.unwrap();
        let text = correct.text().await.unwrap();
        assert!(text.contains("#1") && text.contains("Expected product"), "{text}");
        // The input, the expected product, and the valid predictions.
        assert!(structures_loaded(&b).await >= 3);
        let overflow: bool = b
            .client
            .execute("return document.documentElement.scrollWidth > window.innerWidth", vec![])
            .await
            .unwrap()
            .as_bool()
            .unwrap();
        assert!(!overflow, "no sideways scrolling at {width} px");
        b.client.execute("document.querySelector('#results').scrollIntoView()", vec![]).await.unwrap();
        b.screenshot(&format!("chemistry-target-{name}")).await;
        b.close().await;
    }
}
