//! The JSON API on the demo backend: results, limits and every 400/413 case.

use serde_json::json;

use crate::helpers::server;

#[tokio::test]
async fn demo_backend_translates_with_ranked_probabilities_and_attention() {
    let s = server().spawn();
    let r = s.translate(json!({"text": " CC(=O)O ", "beam": 3, "n_best": 2})).await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["input"], " CC(=O)O ");
    assert_eq!(r.json["tokens"], json!(["C", "C", "(", "=", "O", ")", "O"]));
    let preds = r.json["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 2);
    assert_eq!(preds[0]["rank"], 1);
    assert_eq!(preds[0]["text"], "CC(=O)O");
    let (p0, p1) = (preds[0]["probability"].as_f64().unwrap(), preds[1]["probability"].as_f64().unwrap());
    assert!(p0 > p1 && p1 > 0.0 && p0 <= 1.0);
    let score = preds[0]["score"].as_f64().unwrap();
    assert!((p0 - score.exp()).abs() < 1e-12);
    let att = preds[0]["attention"].as_array().unwrap();
    assert_eq!(att.len(), 7);
    assert!(att.iter().all(|row| row.as_array().unwrap().len() == 7));
    assert!(r.json["elapsed_ms"].as_f64().is_some());
}

#[tokio::test]
async fn defaults_apply_and_attention_can_be_turned_off() {
    let s = server().spawn();
    let r = s.translate(json!({"text": "N#Cc1ccccc1", "attention": false})).await;
    assert_eq!(r.status, 200);
    let preds = r.json["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 5, "DEFAULT_N_BEST");
    assert!(preds.iter().all(|p| p.get("attention").is_none()));
}

#[tokio::test]
async fn config_reports_the_demo_backend_limits_and_examples() {
    let s = server().env("MAX_INPUT_CHARS", "300").spawn();
    let r = s.get("/api/v1/config").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["backend"], "demo");
    assert_eq!(r.json["tokenizer"], "chars");
    assert_eq!(r.json["limits"]["max_input_chars"], 300);
    assert_eq!(r.json["limits"]["max_atoms"], 200);
    assert_eq!(r.json["limits"]["max_beam"], 10);
    assert!(!r.json["examples"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn every_bad_input_gets_invalid_input_as_json() {
    let s = server().spawn();
    let cases = [
        json!({"text": ""}),
        json!({"text": "   \n\t"}),
        json!({"text": "CCO", "beam": 0}),
        json!({"text": "CCO", "beam": 11}),
        json!({"text": "CCO", "beam": -1}),
        json!({"text": "CCO", "beam": "five"}),
        json!({"text": "CCO", "beam": 3, "n_best": 4}),
        json!({"text": "CCO", "n_best": 0}),
        json!({"text": 42}),
        json!({"beam": 3}),
        json!(["CCO"]),
    ];
    for body in cases {
        let r = s.translate(body.clone()).await;
        assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_input"), "{body} -> {}", r.json);
        assert!(!r.json["error"]["message"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn malformed_bodies_get_invalid_input_never_a_framework_text() {
    let s = server().spawn();
    let url = s.url("/api/v1/translate");
    let c = &s.client;
    let cases = [
        ("wrong content type", c.post(&url).header("content-type", "text/plain").body(r#"{"text":"CCO"}"#)),
        ("no content type", c.post(&url).body(r#"{"text":"CCO"}"#)),
        ("malformed JSON", c.post(&url).header("content-type", "application/json").body(r#"{"text": "#)),
        (
            "not UTF-8",
            c.post(&url).header("content-type", "application/json").body(b"{\"text\": \"\xff\xfe\"}".to_vec()),
        ),
        ("empty body", c.post(&url).header("content-type", "application/json")),
    ];
    for (what, request) in cases {
        let r = s.send(request).await;
        assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_input"), "{what}: {}", r.json);
    }
    let r =
        s.send(c.post(&url).header("content-type", "application/json").body(b"{\"text\": \"\xff\"}".to_vec())).await;
    assert!(r.json["error"]["message"].as_str().unwrap().contains("UTF-8"));
}

#[tokio::test]
async fn input_length_is_counted_in_code_points() {
    let s = server().env("MAX_INPUT_CHARS", "10").env("INPUT_FORMAT", "text").spawn();
    // 10 two-byte characters: 20 bytes, 10 code points, allowed
    let r = s.translate(json!({"text": "éééééééééé", "n_best": 1})).await;
    assert_eq!(r.status, 200, "{}", r.json);
    let r = s.translate(json!({"text": "ééééééééééé", "n_best": 1})).await;
    assert_eq!((r.status.as_u16(), r.code()), (413, "too_large"));
    assert!(r.json["error"]["message"].as_str().unwrap().contains("11 characters"));
}

#[tokio::test]
async fn a_body_over_max_body_bytes_is_too_large() {
    let s = server().env("MAX_BODY_BYTES", "4KiB").spawn();
    let text = "C".repeat(5000);
    let r = s.translate(json!({ "text": text })).await;
    assert_eq!((r.status.as_u16(), r.code()), (413, "too_large"), "{}", r.json);
}

#[tokio::test]
async fn unknown_paths_get_a_json_404_and_health_endpoints_answer() {
    let s = server().spawn();
    let r = s.get("/wp-admin").await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "not_found"));
    assert_eq!(s.get("/healthz").await.status, 200);
    assert_eq!(s.get("/readyz").await.status, 200);
}
