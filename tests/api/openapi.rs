//! The OpenAPI document: served, 3.1, this server's limits in it, every API
//! route in it, and its example a real answer. (Schemathesis and the
//! boundary checks run against it in tests/contract/run.py.)

use serde_json::{Value, json};

use crate::helpers::server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_describes_this_server() {
    let s = server().env("MAX_INPUT_CHARS", "500").env("MAX_BEAM", "7").spawn();
    let r = s.get("/api/v1/openapi.json").await;
    assert_eq!(r.status, 200);
    let doc = r.json;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths: Vec<&str> = doc["paths"].as_object().unwrap().keys().map(String::as_str).collect();
    for route in [
        "/api/v1/translate",
        "/api/v1/translate/batch",
        "/api/v1/config",
        "/api/v1/depict",
        "/api/v1/openapi.json",
        "/healthz",
        "/readyz",
    ] {
        assert!(paths.contains(&route), "{route} in {paths:?}");
    }
    let input = &doc["components"]["schemas"]["TranslateInput"];
    assert_eq!(input["properties"]["text"]["maxLength"], 500);
    assert_eq!(input["properties"]["beam"]["maximum"], 7);
    // n_best at most the beam: a branch per beam width, and the default's.
    let branches = input["anyOf"].as_array().unwrap();
    assert_eq!(branches.len(), 8);
    assert_eq!(
        branches[2],
        json!({"required": ["beam"], "properties": {"beam": {"const": 3}, "n_best": {"maximum": 3}}})
    );
    // The example is what this server answers to its first example.
    let example = &doc["components"]["schemas"]["TranslationView"]["example"];
    let config = s.get("/api/v1/config").await.json;
    assert_eq!(example["input"], config["examples"][0]);
    let real = s.translate(json!({"text": config["examples"][0], "beam": 3, "n_best": 2})).await.json;
    assert_eq!(example["predictions"], real["predictions"]);
    let codes = &doc["components"]["schemas"]["ErrorCode"];
    assert!(codes.to_string().contains("lambda_throttled"), "{codes}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_numbers_may_be_written_as_floats() {
    let s = server().spawn();
    let r = s.translate(json!({"text": "CCO", "beam": 3.0, "n_best": 2.0})).await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["predictions"].as_array().unwrap().len(), 2);
    for bad in [json!(2.5), json!(-1), json!("3"), json!(1e12)] {
        let r = s.translate(json!({"text": "CCO", "beam": bad})).await;
        assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_input"), "{bad}");
    }
    let r = s.send(s.client.post(s.url("/api/v1/translate/batch")).json(&json!({"inputs": ["CCO"], "beam": 2.0})));
    assert_eq!(r.await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_page_reads_the_document() {
    let s = server().spawn();
    let html = s.client.get(s.url("/api")).send().await.unwrap().text().await.unwrap();
    let doc: Value = s.get("/api/v1/openapi.json").await.json;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            assert!(
                html.contains(&format!("id=\"{method}-{}\"", path.trim_matches('/').replace(['/', '.'], "-"))),
                "{method} {path}"
            );
        }
    }
    assert!(html.contains("1 to 2000 characters"), "the text's limits");
    assert!(html.contains("1 to 10000 items"), "the batch's limits");
    assert!(html.contains("lambda_timeout"), "the errors");
    // Code in the document's descriptions is shown as code, not as Markdown.
    assert!(html.contains("<code>Cache-Control: no-cache</code>"), "inline code");
    let prose: String = html.split("<pre").map(|part| part.split("</pre>").last().unwrap_or("")).collect();
    assert!(!prose.contains('`'), "no Markdown backticks left in the page's text");
    // A request to copy, with this server's address and its first example.
    let host = s.url("").trim_start_matches("http://").to_string();
    let example = s.get("/api/v1/config").await.json["examples"][0].as_str().unwrap().to_string();
    let curl = format!("curl -s http://{host}/api/v1/translate -H &#39;content-type: application/json&#39;");
    assert!(html.contains(&curl), "a curl request for the translation");
    assert!(html.contains(&example), "with this server's example");
    // A hostile Host header is not written into the page.
    let r = s.client.get(s.url("/api")).header("host", "evil.example/<script>").send().await.unwrap();
    let html = r.text().await.unwrap();
    assert!(!html.contains("<script>") && html.contains("curl -s http://localhost:8501/api/v1/config"));
}
