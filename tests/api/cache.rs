//! The result cache, through the real binary and the real SDK: the
//! emulator's call count says when the Lambda was asked.

use serde_json::{Value, json};

use crate::emulator::{Behavior, Emulator, Fault};
use crate::helpers::{molecule, run, server};

/// The inputs the emulator received, call by call (keep-warm pings aside).
fn sent(emu: &Emulator) -> Vec<Vec<String>> {
    emu.calls().into_iter().filter(|c| c.event["warmup"] != true).map(|c| c.inputs).collect()
}

fn tokens(smiles: &str) -> String {
    smiles.chars().map(String::from).collect::<Vec<_>>().join(" ")
}

/// A response without what differs between two answers to the same request.
fn answer(mut v: Value) -> Value {
    let o = v.as_object_mut().unwrap();
    o.remove("elapsed_ms");
    o.remove("cached");
    v
}

/// The NDJSON lines of a batch request.
async fn batch(request: reqwest::RequestBuilder) -> Vec<Value> {
    let r = request.send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_request_is_answered_without_invoking_the_lambda() {
    let emu = Emulator::start(Behavior::default()).await;
    let s = server().lambda(&emu).spawn();
    let body = json!({"text": "CCO.CC(=O)O", "beam": 3, "n_best": 2});
    let first = s.translate(body.clone()).await;
    assert_eq!((first.status.as_u16(), &first.json["cached"]), (200, &json!(false)));
    assert_eq!(first.headers["x-cache"], "miss");
    assert_eq!(sent(&emu).len(), 1);
    let again = s.translate(body.clone()).await;
    assert_eq!((&again.json["cached"], &again.headers["x-cache"]), (&json!(true), &"hit".parse().unwrap()));
    assert_eq!(answer(again.json), answer(first.json.clone()), "the same answer");
    // The same molecules written another way are the same input to the model.
    let other = s.translate(json!({"text": "OC(C)=O.OCC", "beam": 3, "n_best": 2})).await;
    assert_eq!(other.json["cached"], true);
    assert_eq!(sent(&emu).len(), 1, "only the first request reached the function");
    // The page's fragment says so.
    let page = s.client.post(s.url("/api/v1/translate")).header("accept", "text/html").json(&body).send();
    assert!(page.await.unwrap().text().await.unwrap().contains("(from this server's cache)"));
    // A client that wants a fresh answer gets one, by header or by field.
    let fresh = s.send(s.client.post(s.url("/api/v1/translate")).header("cache-control", "no-cache").json(&body));
    assert_eq!(fresh.await.json["cached"], false);
    let fresh = s.translate(json!({"text": "CCO.CC(=O)O", "beam": 3, "n_best": 2, "cache": false})).await;
    assert_eq!(fresh.json["cached"], false);
    assert_eq!(sent(&emu).len(), 3);
    // Other parameters are another answer.
    s.translate(json!({"text": "CCO.CC(=O)O", "beam": 3, "n_best": 3})).await;
    assert_eq!(sent(&emu).len(), 4);
    assert_eq!(s.metric("translation_cache_hits_total").await, 3.0);
    assert_eq!(s.metric("translation_cache_misses_total").await, 4.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_answers_are_never_kept() {
    let emu = Emulator::start(Behavior { fault: Fault::FunctionError, ..Default::default() }).await;
    let s = server().lambda(&emu).env("COALESCE_MAX_WAIT", "0").spawn();
    for fault in [Fault::FunctionError, Fault::Malformed, Fault::Mismatched] {
        emu.set(|b| b.fault = fault);
        let before = sent(&emu).len();
        for _ in 0..2 {
            assert!(s.translate(json!({"text": "CCN"})).await.status.is_server_error(), "{fault:?}");
        }
        assert_eq!(sent(&emu).len(), before + 2, "{fault:?}: each failing request asked again");
    }
    emu.set(|b| b.fault = Fault::None);
    assert_eq!(s.translate(json!({"text": "CCN"})).await.json["cached"], false);
    assert_eq!(s.translate(json!({"text": "CCN"})).await.json["cached"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_sends_only_its_misses_each_once() {
    let emu = Emulator::start(Behavior::default()).await;
    let s = server().lambda(&emu).spawn();
    let url = s.url("/api/v1/translate/batch");
    let lines = batch(s.client.post(&url).json(&json!({"inputs": ["CCO", "CCN", "CCO", "CCC"]}))).await;
    assert_eq!(sent(&emu), [["CCO", "CCN", "CCC"].map(tokens)]);
    assert_eq!(lines.last().unwrap()["cached"], 0);
    let lines = batch(s.client.post(&url).json(&json!({"inputs": ["CCC", "CCO", "CCCC", "CCN"]}))).await;
    assert_eq!(sent(&emu)[1], [tokens("CCCC")], "only the miss");
    assert_eq!(lines.last().unwrap()["cached"], 3);
    let results: Vec<&Value> = lines.iter().filter(|l| l["type"] == "result").collect();
    assert_eq!(results.len(), 4);
    assert!(results.iter().all(|r| r["predictions"].as_array().is_some_and(|p| !p.is_empty())));
    // Bypassed: every input asked again.
    let fresh = s.client.post(&url).header("cache-control", "no-cache").json(&json!({"inputs": ["CCC", "CCO"]}));
    batch(fresh).await;
    assert_eq!(sent(&emu)[2], ["CCC", "CCO"].map(tokens));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_generator_drives_the_lambda_unless_told_to_use_the_cache() {
    let emu = Emulator::start(Behavior::default()).await;
    let s = server().lambda(&emu).spawn();
    let loadtest = |extra: &'static [&'static str]| {
        let url = s.base.clone();
        tokio::task::spawn_blocking(move || {
            let mut args = vec!["loadtest", "--url", &url, "--rate", "20", "--duration", "1s", "--json", "--quiet"];
            args.extend(extra);
            let out = run(&args, &[]);
            assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
            serde_json::from_slice::<Value>(&out.stdout).unwrap()["completed"].as_u64().unwrap() as usize
        })
    };
    let completed = loadtest(&[]).await.unwrap();
    assert!(completed > 0);
    // Eight built-in examples, over and over: every request reached the function.
    assert_eq!(sent(&emu).iter().map(Vec::len).sum::<usize>(), completed);
    let before = sent(&emu).len();
    let completed = loadtest(&["--use-cache"]).await.unwrap();
    assert!(completed > 0);
    assert_eq!(sent(&emu).len(), before, "every example was cached by the first run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_stays_within_its_byte_budget() {
    let budget = 64 * 1024;
    let s = server().env("CACHE_MAX_BYTES", &budget.to_string()).spawn();
    for i in 0..80 {
        let r = s.translate(json!({"text": format!("{}.CC(=O)O", molecule(i)), "attention": true})).await;
        assert_eq!(r.status, 200);
        let bytes = s.metric("translation_cache_bytes").await;
        assert!(bytes <= budget as f64, "{bytes} bytes held after {i} answers");
    }
    assert!(s.metric("translation_cache_evictions_total").await > 0.0);
    assert!(s.metric("translation_cache_bytes").await > budget as f64 / 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_ttl_switches_the_cache_off() {
    let emu = Emulator::start(Behavior::default()).await;
    let s = server().lambda(&emu).env("CACHE_TTL", "0").spawn();
    assert_eq!(s.get("/api/v1/config").await.json["cache"], Value::Null);
    for _ in 0..2 {
        assert_eq!(s.translate(json!({"text": "CCO"})).await.json["cached"], false);
    }
    assert_eq!(sent(&emu).len(), 2);
    let on = server().spawn();
    assert_eq!(on.get("/api/v1/config").await.json["cache"], json!({"max_bytes": 32 << 20, "ttl_s": 3600}));
}
