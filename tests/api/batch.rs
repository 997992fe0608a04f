//! Bulk translation against the emulator through the real SDK.

use std::time::Duration;

use serde_json::{Value, json};
use translation_front::inference::demo;
use translation_front::inference::{Params, tokenize::Tokenizer};

use crate::emulator::{Behavior, Emulator};
use crate::helpers::{Server, molecule, server};

async fn batch(s: &Server, body: Value) -> Vec<Value> {
    let r = s.client.post(s.url("/api/v1/translate/batch")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let text = r.text().await.unwrap();
    text.lines().map(|l| serde_json::from_str(l).expect("every line is JSON")).collect()
}

fn of_type<'a>(lines: &'a [Value], t: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["type"] == t).collect()
}

fn inputs(n: usize) -> Vec<String> {
    (0..n).map(molecule).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_lines_fan_out_four_wide_and_come_back_in_order() {
    let emu = Emulator::start(Behavior { latency: Duration::from_millis(20), ..Default::default() }).await;
    let s = server().lambda(&emu).env("LAMBDA_FAN_OUT", "4").spawn();
    let lines = batch(&s, json!({"inputs": inputs(1000), "beam": 5, "n_best": 2})).await;
    assert_eq!(lines[0]["type"], "start");
    assert_eq!(lines[0]["total"], 1000);
    assert_eq!(lines[0]["chunks"], 20);
    let results = of_type(&lines, "result");
    let indices: Vec<u64> = results.iter().map(|r| r["index"].as_u64().unwrap()).collect();
    assert_eq!(indices, (0..1000).collect::<Vec<_>>(), "every index once, in order");
    assert!(results.iter().all(|r| r["predictions"].as_array().unwrap().len() == 2));
    assert_eq!(results[7]["predictions"][0]["text"], inputs(1000)[7]);
    assert!(emu.max_in_flight() <= 4, "never more than LAMBDA_FAN_OUT at once: {}", emu.max_in_flight());
    assert!(emu.max_in_flight() >= 2, "and it does fan out");
    let sizes: Vec<usize> = emu.calls().iter().map(|c| c.inputs.len()).collect();
    assert_eq!(sizes, vec![50; 20], "beam 5 -> chunks of 50");
    assert!(!of_type(&lines, "progress").is_empty());
    let summary = lines.last().unwrap();
    assert_eq!(
        (summary["type"].as_str(), summary["succeeded"].as_u64(), summary["failed"].as_u64()),
        (Some("summary"), Some(1000), Some(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_sizes_follow_the_beam_table() {
    let emu = Emulator::start(Behavior::default()).await;
    let s = server().lambda(&emu).spawn();
    for (beam, size) in [(1, 100), (2, 80), (3, 60), (10, 25)] {
        let before = emu.calls().len();
        batch(&s, json!({"inputs": inputs(size + 1), "beam": beam, "n_best": 1})).await;
        let mut sizes: Vec<usize> = emu.calls()[before..].iter().map(|c| c.inputs.len()).collect();
        sizes.sort_unstable(); // the two chunks run concurrently
        assert_eq!(sizes, vec![1, size], "beam {beam}");
        assert_eq!(emu.calls()[before].event["beam"], beam);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_chunk_marks_only_its_rows() {
    let emu = Emulator::start(Behavior { poison: Some("[ P o ]".into()), ..Default::default() }).await;
    let s = server().lambda(&emu).spawn();
    let mut list = inputs(150);
    list[75] = "[Po]".into();
    let lines = batch(&s, json!({"inputs": list, "beam": 5, "n_best": 1})).await;
    let results = of_type(&lines, "result");
    assert_eq!(results.len(), 150);
    for r in &results {
        let i = r["index"].as_u64().unwrap();
        if (50..100).contains(&i) {
            assert_eq!(r["error"]["code"], "lambda_function_error", "row {i}");
        } else {
            assert!(r.get("error").is_none(), "row {i}: {r}");
        }
    }
    let summary = lines.last().unwrap();
    assert_eq!(summary["failed"], 50);
    assert_eq!(summary["failed_indices"].as_array().unwrap().len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_give_top_k_accuracy_in_text_mode() {
    let emu = Emulator::start(Behavior::default()).await;
    let s = server().lambda(&emu).env("INPUT_FORMAT", "text").spawn();
    let p = Params { beam: 3, n_best: 3, attention: false };
    let list = inputs(8);
    let nth = |i: usize, rank: usize| -> String {
        let tokenized = Tokenizer::Chars.tokenize(&list[i]);
        Tokenizer::Chars.detokenize(&demo::hypotheses(&tokenized, p)[rank].tokens)
    };
    // 0-3: right at rank 1; 4-5: at rank 2 (one spelled tokenized); 6: rank 3; 7: never
    let mut targets: Vec<String> = (0..4).map(|i| nth(i, 0)).collect();
    targets.push(nth(4, 1));
    targets.push(Tokenizer::Chars.tokenize(&nth(5, 1)));
    targets.push(format!("  {}  ", nth(6, 2)));
    targets.push("nothing like it".into());
    let lines = batch(&s, json!({"inputs": list, "targets": targets, "beam": 3, "n_best": 3})).await;
    let ranks: Vec<Value> = of_type(&lines, "result").iter().map(|r| r["correct_rank"].clone()).collect();
    assert_eq!(ranks, vec![json!(1), json!(1), json!(1), json!(1), json!(2), json!(2), json!(3), Value::Null]);
    let summary = lines.last().unwrap();
    assert_eq!(summary["evaluated"], 8);
    assert_eq!(summary["top_k_accuracy"], json!([0.5, 0.75, 0.875]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mismatched_targets_are_rejected_before_any_invocation() {
    let emu = Emulator::start(Behavior::default()).await;
    let s = server().lambda(&emu).spawn();
    let r = s
        .send(s.client.post(s.url("/api/v1/translate/batch")).json(&json!({"inputs": ["a", "b"], "targets": ["a"]})))
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_input"));
    let form = reqwest::multipart::Form::new()
        .part("inputs", reqwest::multipart::Part::bytes(b"CCO\nCCN\n".to_vec()).file_name("in.txt"))
        .part("targets", reqwest::multipart::Part::bytes(b"CCO\n".to_vec()).file_name("t.txt"));
    let r = s.send(s.client.post(s.url("/api/v1/translate/batch")).multipart(form)).await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_input"), "{}", r.json);
    assert!(emu.calls().is_empty());
}

#[tokio::test]
async fn limits_and_bad_lines_are_reported_not_dropped() {
    let s = server().env("MAX_BATCH_INPUTS", "5").env("MAX_INPUT_CHARS", "10").spawn();
    let r = s.send(s.client.post(s.url("/api/v1/translate/batch")).json(&json!({"inputs": inputs(6)}))).await;
    assert_eq!((r.status.as_u16(), r.code()), (413, "too_large"));
    let r = s.send(s.client.post(s.url("/api/v1/translate/batch")).json(&json!({"inputs": []}))).await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_input"));
    // CRLF upload with an empty and an over-long line in the middle
    let form = reqwest::multipart::Form::new()
        .part(
            "inputs",
            reqwest::multipart::Part::bytes(b"CCO\r\n\r\nCCCCCCCCCCCCCCC\r\nCCN\r\n".to_vec()).file_name("in.txt"),
        )
        .text("beam", "2")
        .text("n_best", "2");
    let r = s.client.post(s.url("/api/v1/translate/batch")).multipart(form).send().await.unwrap();
    let lines: Vec<Value> = r.text().await.unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let results = of_type(&lines, "result");
    assert_eq!(results.len(), 4);
    assert_eq!(results[0]["predictions"][0]["text"], "CCO");
    assert_eq!(results[1]["error"]["code"], "invalid_input");
    assert_eq!(results[2]["error"]["code"], "too_large");
    assert_eq!(results[3]["predictions"][0]["text"], "CCN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_stops_further_invocations() {
    let emu = Emulator::start(Behavior { latency: Duration::from_millis(200), ..Default::default() }).await;
    let s = server().lambda(&emu).env("LAMBDA_FAN_OUT", "2").spawn();
    let mut r = s
        .client
        .post(s.url("/api/v1/translate/batch"))
        .json(&json!({"inputs": inputs(5000), "beam": 1, "n_best": 1}))
        .send()
        .await
        .unwrap();
    let first = r.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("\"start\""));
    drop(r);
    // The job has ended (its access line says how), and what it had in flight
    // has returned: from here no invocation can start.
    s.wait_for_log(|l| l.contains("batch ended early")).await;
    let settled = async {
        while emu.in_flight() > 0 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), settled).await.unwrap();
    let after_disconnect = emu.calls().len();
    assert!(after_disconnect < 10, "far fewer than the 50 chunks: {after_disconnect}");
    assert_eq!(s.get("/healthz").await.status, 200);
}

#[tokio::test]
async fn csv_parses_and_round_trips_quotes_commas_and_newlines() {
    let s = server().env("INPUT_FORMAT", "text").spawn();
    let tricky = vec!["C,C\"O\"".to_string(), "N#C\nc1ccccc1".to_string(), "plain".to_string(), String::new()];
    let r = s
        .client
        .post(s.url("/api/v1/translate/batch"))
        .header("accept", "text/csv")
        .json(&json!({"inputs": tricky, "targets": ["C,C\"O\"", "x", "y", "z"], "beam": 2, "n_best": 2}))
        .send()
        .await
        .unwrap();
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let body = r.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header,
        ["line", "source", "rank", "prediction", "canonical", "probability", "target", "correct", "error"]
    );
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 2 + 2 + 2 + 1, "one row per prediction, one per failed input");
    assert_eq!(&records[0][1], "C,C\"O\"");
    assert_eq!(&records[0][3], "C,C\"O\"", "the prediction keeps its comma and quotes");
    assert_eq!(&records[0][4], "", "no canonical form in text mode");
    assert_eq!(&records[0][7], "true");
    assert_eq!(&records[2][1], "N#C\nc1ccccc1");
    assert_eq!(&records[6][0], "4", "the input's line, from 1");
    assert!(records[6][8].starts_with("invalid_input"));
    let p: f64 = records[0][5].parse().unwrap();
    assert!(p > 0.0 && p <= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_warmup_command_sends_the_documented_events_and_reports() {
    let emu = Emulator::start(Behavior::default()).await;
    let url = emu.url();
    let env = [
        ("TRANSLATION_FUNCTION", "translation"),
        ("AWS_ENDPOINT_URL_LAMBDA", url.as_str()),
        ("LAMBDA_WARMUP_CONCURRENCY", "3"),
    ];
    let out = tokio::task::spawn_blocking({
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move || {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            crate::helpers::run(&["warmup"], &env)
        }
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("3/3"));
    let fixture: Value = serde_json::from_str(include_str!("../fixtures/warmup-event.json")).unwrap();
    let calls = emu.calls();
    assert_eq!(calls.len(), 3);
    assert!(calls.iter().all(|c| c.event == fixture));

    emu.set(|b| b.fault = crate::emulator::Fault::FunctionError);
    let out = tokio::task::spawn_blocking(move || {
        crate::helpers::run(
            &["warmup"],
            &[("TRANSLATION_FUNCTION", "translation"), ("AWS_ENDPOINT_URL_LAMBDA", url.as_str())],
        )
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CUDA out of memory"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_pinger_pings_on_its_interval_and_counts() {
    let emu = Emulator::start(Behavior::default()).await;
    let s = server()
        .lambda(&emu)
        .env("LAMBDA_WARMUP_INTERVAL", "200ms")
        .env("LAMBDA_WARMUP_CONCURRENCY", "2")
        .env("LAMBDA_WARM_ON_VISIT", "0")
        .spawn();
    // Two rounds of two: the loop goes on by itself.
    let pings = || emu.calls().iter().filter(|c| c.event["warmup"] == true).count();
    let rounds = async {
        while pings() < 4 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), rounds).await.expect("the pinger pings again and again");
    // The emulator saw the fourth ping before the service read its answer.
    let counted = async {
        while s.metric("lambda_warmup_pings_total{outcome=\"ok\"}").await < 4.0 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), counted).await.expect("every ping is counted");
}

#[tokio::test]
async fn bulk_inputs_are_counted_apart_from_single_translations() {
    let s = server().spawn();
    batch(&s, json!({"inputs": inputs(7), "beam": 2, "n_best": 1})).await;
    assert_eq!(s.translate(json!({"text": "CCO"})).await.status, 200);
    assert_eq!(s.metric("translated_inputs_total{path=\"batch\"}").await, 7.0);
    assert_eq!(s.metric("translated_inputs_total{path=\"single\"}").await, 1.0);
}

/// A batch's chemistry (preparing its rows, canonicalizing its predictions)
/// runs on the chemistry threads, one per core: batches opened together
/// queue for them instead of each taking a thread, and all of them finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_queue_for_the_chemistry_threads() {
    let s = server().spawn();
    let threads_before = std::fs::read_dir(format!("/proc/{}/task", s.pid())).unwrap().count();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let body = json!({"inputs": inputs(4000), "beam": 1, "n_best": 1, "attention": false});
    let batches: Vec<_> = (0..cores + 2)
        .map(|_| {
            let request = s.client.post(s.url("/api/v1/translate/batch")).json(&body);
            tokio::spawn(async move { request.send().await.unwrap().text().await.unwrap() })
        })
        .collect();
    let someone_waits = async {
        while s.metric("chemistry_queued").await < 1.0 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), someone_waits).await.expect("no batch queued for chemistry");
    let threads_during = std::fs::read_dir(format!("/proc/{}/task", s.pid())).unwrap().count();
    assert!(s.metric("chemistry_running").await <= cores as f64);
    for b in batches {
        let text = b.await.unwrap();
        let summary: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!((summary["succeeded"].as_u64(), summary["failed"].as_u64()), (Some(4000), Some(0)), "{summary}");
    }
    assert_eq!(s.metric("chemistry_queued").await, 0.0);
    // The chemistry threads (started on first use) and nothing per batch.
    assert!(threads_during <= threads_before + cores + 1, "{threads_before} threads before, {threads_during} during");
}

/// The batch page's resume and its download: rows sent again from a row keep
/// their numbers, and the server writes the rows a client holds (from one
/// request or several) as the batch itself would have.
#[tokio::test]
async fn a_batch_resumed_from_a_row_keeps_its_numbers_and_the_export_writes_what_the_batch_would() {
    let s = server().spawn();
    let inputs = json!(["CCO", "C1CC", "c1ccccc1", "CCN", "OCC"]);
    let targets = json!(["OCC", "CCO", "c1ccccc1", "N", "CCO"]);
    let whole = s.batch_text("", json!({"inputs": inputs, "targets": targets})).await;
    let csv = s.batch_text("?format=csv", json!({"inputs": inputs, "targets": targets})).await;

    let tail = batch(&s, json!({"inputs": inputs, "targets": targets, "resume_from": 3})).await;
    let rows = of_type(&tail, "result");
    assert_eq!(rows.iter().map(|r| r["index"].as_u64().unwrap()).collect::<Vec<_>>(), [3, 4]);
    let head = batch(
        &s,
        json!({"inputs": [inputs[0], inputs[1], inputs[2]], "targets": [targets[0], targets[1], targets[2]]}),
    )
    .await;
    assert!(of_type(&head, "result")[1]["error"]["message"].as_str().unwrap().starts_with("line 2 'C1CC'"));
    let r = s
        .send(s.client.post(s.url("/api/v1/translate/batch")).json(&json!({"inputs": inputs, "resume_from": 5})))
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_input"), "{}", r.json);

    // The two parts' rows, as a client holds them after a resume.
    let parts: String =
        of_type(&head, "result").into_iter().chain(of_type(&tail, "result")).map(|l| format!("{l}\n")).collect();
    let export = |query: &'static str, body: String| {
        s.client.post(s.url(&format!("/api/v1/translate/batch/export?{query}"))).body(body).send()
    };
    let exported = export("format=csv", parts.clone()).await.unwrap();
    assert_eq!(exported.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(exported.text().await.unwrap(), csv, "the same CSV as the batch's own");

    let summary: Value = export("format=summary&n_best=5", parts).await.unwrap().json().await.unwrap();
    let mut whole_summary: Value = serde_json::from_str(whole.lines().next_back().unwrap()).unwrap();
    for (k, v) in [("cached", json!(0)), ("elapsed_ms", json!(0))] {
        whole_summary[k] = v;
    }
    whole_summary.as_object_mut().unwrap().remove("type");
    assert_eq!(summary, whole_summary, "the same summary as the batch's own");

    let r = s
        .send(s.client.post(s.url("/api/v1/translate/batch/export")).body("{\"type\":\"result\",\"index\":\"x\"}\n"))
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_input"), "{}", r.json);
    assert!(r.json["error"]["message"].as_str().unwrap().starts_with("line 1 is not a batch result row"), "{}", r.json);
    let r = s.send(s.client.post(s.url("/api/v1/translate/batch/export")).body("{\"type\":\"nonsense\"}\n")).await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_input"), "an unknown line: {}", r.json);
    let r = s.send(s.client.post(s.url("/api/v1/translate/batch/export")).body("")).await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_input"), "an empty body: {}", r.json);
    let r =
        s.send(s.client.post(s.url("/api/v1/translate/batch/export?format=summary&n_best=99999999")).body("{}")).await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_input"), "n_best is bounded: {}", r.json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rows_with_the_function_are_reported_before_any_comes_back() {
    let emu = Emulator::start(Behavior::default()).await;
    emu.hold();
    let s = server().lambda(&emu).env("LAMBDA_FAN_OUT", "2").spawn();
    // Beam 5: chunks of 50 rows, two of them in flight, the third waits.
    let mut r = s
        .client
        .post(s.url("/api/v1/translate/batch"))
        .json(&json!({"inputs": inputs(120), "beam": 5, "n_best": 1}))
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    while text.lines().count() < 2 {
        text.push_str(&String::from_utf8_lossy(&r.chunk().await.unwrap().expect("more lines")));
    }
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["type"], "start");
    let first = &lines[1];
    assert_eq!(first["type"], "progress", "{first}");
    assert_eq!((first["done"].as_u64(), first["in_flight"].as_u64()), (Some(0), Some(100)), "{first}");
    // Sent as the chunks start, not by the heartbeat (every 2 s).
    assert!(first["elapsed_ms"].as_u64().unwrap() < 2000, "{first}");
    emu.release();
    let rest = r.text().await.unwrap();
    let last: Vec<Value> = rest.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let progress = of_type(&last, "progress");
    assert_eq!(progress.last().unwrap()["in_flight"], 0, "nothing is with the function at the end");
    assert_eq!(last.last().unwrap()["type"], "summary");
}
