//! What a chemist meets: a tool that says what it predicts and how to ask, real
//! reaction examples and a sample set, the function warmed on a visit, batch
//! chunks that may wait as long as the function, precise numbers, and the
//! original app's CSV columns.

use std::time::Duration;

use serde_json::json;

use crate::emulator::{Behavior, Emulator};
use crate::helpers::server;

#[tokio::test]
async fn the_pages_say_what_the_tool_predicts_and_how_to_ask() {
    let s = server().spawn();
    let index = s.client.get(s.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(index.contains("<h1 class=\"page-title\">Reaction predictor</h1>"));
    assert!(index.contains("Predict the products of organic reactions"));
    assert!(index.contains("single molecule on its own gives a meaningless answer"));
    assert!(index.contains("<title>Predict · Reaction predictor</title>"));
    // The examples are reaction mixtures, each with a name.
    assert!(index.contains("value=\"CCN(CC)CC.CO.COC(=O)c1sc(Cl)c(Cl)c1NC(C)=O.[H][H]\""));
    assert!(index.contains("<span class=\"chip-name\">Sonogashira coupling</span>"));
    let config = s.get("/api/v1/config").await.json;
    assert_eq!(config["example_names"].as_array().unwrap().len(), config["examples"].as_array().unwrap().len());
    assert_eq!(config["example_names"][5], "Sonogashira coupling");
    let about = s.client.get(s.url("/about")).send().await.unwrap().text().await.unwrap();
    for needle in ["Molecular Transformer", "1.4 million", "Stereochemistry is removed", "arxiv.org/abs/1811.02633"] {
        assert!(about.contains(needle), "{needle}");
    }

    let text = server().env("INPUT_FORMAT", "text").spawn();
    let index = text.client.get(text.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(index.contains("Translate text with a sequence-to-sequence model") && !index.contains("reaction"));
}

#[tokio::test]
async fn an_operator_sets_the_title_and_the_description_in_markdown() {
    let path = std::env::temp_dir().join(format!("tf-description-{}.md", std::process::id()));
    std::fs::write(&path, "**Retrosynthesis** for *everyone*. <script>alert(1)</script>\n\n## Data\n\nUSPTO-50k.\n")
        .unwrap();
    let s = server().env("APP_TITLE", "Retro").env("MODEL_DESCRIPTION_FILE", path.to_str().unwrap()).spawn();
    let index = s.client.get(s.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(index.contains("<strong>Retrosynthesis</strong> for <em>everyone</em>."));
    assert!(index.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !index.contains("<script>alert"));
    assert!(!index.contains("USPTO-50k"), "only the first paragraph on the translate page");
    let about = s.client.get(s.url("/about")).send().await.unwrap().text().await.unwrap();
    assert!(about.contains("<h2>Data</h2>") && about.contains("USPTO-50k") && about.contains("About Retro"));
    std::fs::remove_file(path).unwrap();
}

#[tokio::test]
async fn the_sample_set_is_served_and_every_line_is_a_molecule() {
    let s = server().spawn();
    let reactions = s.client.get(s.url("/static/sample-reactions.txt")).send().await.unwrap().text().await.unwrap();
    let products = s.client.get(s.url("/static/sample-products.txt")).send().await.unwrap().text().await.unwrap();
    assert_eq!((reactions.lines().count(), products.lines().count()), (100, 100));
    for line in reactions.lines().chain(products.lines()) {
        translation_front::chem::prepare(line).unwrap_or_else(|e| panic!("{line}: {e}"));
    }
    let batch = s.client.get(s.url("/batch")).send().await.unwrap().text().await.unwrap();
    assert!(batch.contains("id=\"sample\"") && batch.contains("href=\"/static/sample-reactions.txt\""));
    assert!(batch.contains("10,000 lines"), "numbers with separators");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_visit_after_a_quiet_spell_warms_the_function_once() {
    let emu = Emulator::start(Behavior::default()).await;
    let s = server().lambda(&emu).spawn();
    let pings = || emu.calls().iter().filter(|c| c.event["warmup"] == true).count();
    assert_eq!(s.get("/about").await.status, 200);
    // The ping runs in the background; wait for the function to receive it.
    let arrived = async {
        while pings() < 1 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), arrived).await.expect("the visit sent a keep-warm ping");
    assert_eq!(s.metric("lambda_warm_on_visit_total").await, 1.0);
    // The function is warm now: more visits send nothing.
    for path in ["/", "/batch", "/about"] {
        assert_eq!(s.get(path).await.status, 200);
    }
    assert_eq!(s.metric("lambda_warm_on_visit_total").await, 1.0, "no second ping was started");
    assert_eq!(pings(), 1);

    let off = server().lambda(&emu).env("LAMBDA_WARM_ON_VISIT", "0").spawn();
    assert_eq!(off.get("/").await.status, 200);
    assert_eq!(off.metric("lambda_warm_on_visit_total").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_chunks_wait_as_long_as_the_function_while_single_requests_time_out() {
    // A function slower than the interactive deadline, faster than the batch one.
    let emu = Emulator::start(Behavior { latency: Duration::from_millis(1500), ..Default::default() }).await;
    let s = server()
        .lambda(&emu)
        .env("LAMBDA_TIMEOUT", "1s")
        .env("LAMBDA_BATCH_TIMEOUT", "20s")
        .env("LAMBDA_WARM_ON_VISIT", "0")
        .spawn();
    let r = s.translate(json!({"text": "CCO"})).await;
    assert_eq!((r.status.as_u16(), r.code()), (504, "lambda_timeout"));
    let page = s.client.post(s.url("/")).form(&[("text", "CCO")]).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("It may still be warming up"), "plain words on the page");
    let body = s.batch_text("", json!({"inputs": ["CCO", "c1ccccc1"], "n_best": 1})).await;
    let summary: serde_json::Value = serde_json::from_str(body.lines().last().unwrap()).unwrap();
    assert_eq!((summary["succeeded"].as_u64(), summary["failed"].as_u64()), (Some(2), Some(0)), "{body}");
}

#[tokio::test]
async fn the_original_csv_columns_are_offered() {
    let s = server().spawn();
    let csv = |query: &'static str, body: serde_json::Value| {
        let request = s.client.post(s.url(&format!("/api/v1/translate/batch{query}"))).json(&body).send();
        async move { request.await.unwrap().text().await.unwrap() }
    };
    let with_targets =
        csv("?format=csv&columns=classic", json!({"inputs": ["OCC", "C1CC"], "targets": ["CCO", "CCO"], "n_best": 2}))
            .await;
    let mut reader = csv::Reader::from_reader(with_targets.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, ["ID", "Sources", "Prediction_Tokens", "Scores", "Predictions", "Targets", "Correct", "Error"]);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2 + 1);
    // Sources is the canonical input, Scores the probability, Predictions canonical.
    assert_eq!((&rows[0][0], &rows[0][1], &rows[0][2], &rows[0][4]), ("0", "CCO", "C C O", "CCO"));
    assert_eq!((&rows[0][5], &rows[0][6]), ("CCO", "True"));
    let p: f64 = rows[0][3].parse().unwrap();
    assert!(p > 0.5 && p <= 1.0, "{p}");
    assert!(rows[2][7].starts_with("invalid_input: line 2 'C1CC'"), "{:?}", &rows[2]);
    let without = csv("?format=csv&columns=classic", json!({"inputs": ["OCC"], "n_best": 1})).await;
    assert!(without.starts_with("ID,Sources,Prediction_Tokens,Scores,Predictions,Error\r\n"), "{without}");
    let r = s.send(s.client.post(s.url("/api/v1/translate/batch?columns=classic")).json(&json!({"inputs": ["C"]})));
    assert_eq!(r.await.code(), "invalid_input", "classic columns are a CSV thing");
}

#[tokio::test]
async fn result_pages_show_the_log_probability_and_the_reaction_to_copy() {
    let s = server().spawn();
    let page = s.client.post(s.url("/")).form(&[("text", "OCC.OC(C)=O"), ("n_best", "2")]).send();
    let html = page.await.unwrap().text().await.unwrap();
    assert!(html.contains("<span class=\"logp\""), "the log-probability is shown");
    assert!(html.contains("<code class=\"smiles\">CC(=O)O.CCO&#62;&#62;CC(=O)O</code>"), "reactants>>product");
    assert!(html.contains("data-copy=\"CC(=O)O.CCO&#62;&#62;CC(=O)O\""));
    assert!(!html.contains("class=\"pct\">0.0%<"), "no probability shows as 0.0%");
}

#[tokio::test]
async fn a_link_carries_a_whole_request_and_translates_when_opened_without_javascript() {
    let s = server().spawn();
    let link = "/?text=OCC.OC(C)%3DO&target=CC(O)%3DO&beam=3&n_best=2&run=1";
    let r = s.client.get(s.url(link)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert_eq!(html.matches("<li class=\"prediction").count(), 2, "n_best from the link");
    assert!(html.contains("<option value=\"3\" selected>3</option>"), "beam from the link");
    assert!(html.contains("Expected product</span>"), "the target from the link is compared");
    assert!(html.contains("<svg class=\"heatmap\""), "with attention");
    // Without run=1 the link only fills the form.
    let html = s.client.get(s.url("/?text=CCO&beam=3")).send().await.unwrap().text().await.unwrap();
    assert!(!html.contains("<li class=\"prediction") && html.contains(">CCO</textarea>"));
    // A bad input in a link is the page's error, not a crash.
    let r = s.client.get(s.url("/?text=C1CC&run=1")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("a ring is opened and never closed"));
}
