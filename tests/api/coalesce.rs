//! Coalescing of concurrent single translations, through the real SDK.

use std::time::Duration;

use serde_json::json;
use translation_front::inference::{Params, demo};

use crate::emulator::{Behavior, Emulator};
use crate::helpers::{molecule as input, server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_translations_share_invocations_and_each_gets_its_own_answer() {
    let emu = Emulator::start(Behavior { latency: Duration::from_millis(50), ..Default::default() }).await;
    // The 64 requests reach the server over some milliseconds (64 connections,
    // a debug build); a wider wait than the default makes the grouping certain.
    let s = server().lambda(&emu).env("COALESCE_MAX_WAIT", "25ms").spawn();
    let requests = (0..64).map(|i| s.translate(json!({"text": input(i), "beam": 5, "n_best": 3, "attention": false})));
    let replies = futures_util::future::join_all(requests).await;
    let p = Params { beam: 5, n_best: 3, attention: false };
    for (i, r) in replies.iter().enumerate() {
        assert_eq!(r.status, 200, "{}", r.json);
        let tokenized = translation_front::inference::tokenize::Tokenizer::Chars.tokenize(&input(i));
        let want = demo::hypotheses(&tokenized, p);
        for (got, want) in r.json["predictions"].as_array().unwrap().iter().zip(&want) {
            assert_eq!(got["score"].as_f64().unwrap(), want.score, "request {i} got its own answer");
            assert_eq!(got["text"], want.tokens.replace(' ', ""));
        }
    }
    let calls = emu.calls();
    assert!(calls.len() < 32, "far fewer than 64 invocations: {}", calls.len());
    assert_eq!(calls.iter().map(|c| c.inputs.len()).sum::<usize>(), 64);
    let inputs = s.metric("translated_inputs_total{path=\"single\"}").await;
    let invocations = s.metric("lambda_invocations_total{outcome=\"ok\"}").await;
    assert_eq!(inputs, 64.0);
    assert!(inputs / invocations >= 2.0, "coalescing ratio {}", inputs / invocations);
    assert!(s.metrics().await.contains("coalesce_group_size_count"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_parameters_are_never_grouped() {
    let emu = Emulator::start(Behavior { latency: Duration::from_millis(50), ..Default::default() }).await;
    let s = server().lambda(&emu).env("COALESCE_MAX_WAIT", "25ms").spawn();
    let requests = (0..24).map(|i| {
        let (beam, attention) = [(5, false), (3, false), (5, true)][i % 3];
        s.translate(json!({"text": input(i), "beam": beam, "n_best": 2, "attention": attention}))
    });
    let replies = futures_util::future::join_all(requests).await;
    assert!(replies.iter().all(|r| r.status == 200));
    for call in emu.calls() {
        let (beam, attention) =
            (call.event["beam"].as_u64().unwrap(), call.event["return_attention"].as_bool().unwrap());
        for tokenized in &call.inputs {
            let i = (0..24).find(|&i| input(i) == tokenized.replace(' ', "")).expect("one of the inputs");
            assert_eq!(
                [(5, false), (3, false), (5, true)][i % 3],
                (beam, attention),
                "input {i} in a call with other parameters"
            );
        }
    }
    assert!(emu.calls().iter().any(|c| c.inputs.len() > 1), "requests with equal parameters were grouped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_poisoned_input_among_sixteen_fails_alone() {
    let emu = Emulator::start(Behavior { poison: Some("[ P o ]".into()), ..Default::default() }).await;
    // The queue leaves only when the call in flight returns.
    let s = server().lambda(&emu).env("COALESCE_MAX_WAIT", "3600s").spawn();
    let body = |i: usize| {
        // Polonium: a valid molecule that the emulated function chokes on.
        let text = if i == 9 { "[Po]".to_string() } else { input(i) };
        json!({"text": text, "beam": 2, "n_best": 1})
    };
    // One call is held in flight, the other fifteen queue behind it; then it returns.
    emu.hold();
    let first = s.translate(body(0));
    let rest = async {
        while emu.in_flight() < 1 {
            tokio::task::yield_now().await;
        }
        let queued = async {
            // A safety net, not a timing: the gauge reaches 15 within milliseconds.
            let fifteen = async {
                while s.metric("coalesce_queued").await < 15.0 {
                    tokio::task::yield_now().await;
                }
            };
            let seen = tokio::time::timeout(Duration::from_secs(60), fifteen).await;
            emu.release();
            seen.expect("coalesce_queued never showed the fifteen waiting requests");
        };
        tokio::join!(futures_util::future::join_all((1..16).map(|i| s.translate(body(i)))), queued).0
    };
    let (first, rest) = tokio::join!(first, rest);
    let statuses: Vec<u16> = std::iter::once(&first).chain(&rest).map(|r| r.status.as_u16()).collect();
    let mut want = vec![200; 16];
    want[9] = 502;
    assert_eq!(statuses, want);
    assert_eq!(rest[8].code(), "lambda_function_error");
    // It failed alone although it was sent in a group: the group was retried
    // input by input.
    let calls = emu.calls();
    assert!(
        calls.iter().any(|c| c.inputs.len() == 15 && c.inputs.iter().any(|i| i == "[ P o ]")),
        "the fifteen queued inputs, the poisoned one among them, shared an invocation"
    );
    assert_eq!(s.metric("coalesce_queued").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_at_a_time_gets_its_own_invocation_at_once() {
    let emu = Emulator::start(Behavior::default()).await;
    // An hour's wait: a lone request that waited for a partner would hang here.
    let s = server().lambda(&emu).env("COALESCE_MAX_WAIT", "3600s").spawn();
    let one_by_one = async {
        for i in 0..5 {
            assert_eq!(s.translate(json!({"text": input(i)})).await.status, 200);
        }
    };
    tokio::time::timeout(Duration::from_secs(30), one_by_one).await.expect("no lone request waited");
    assert_eq!(emu.calls().iter().map(|c| c.inputs.len()).collect::<Vec<_>>(), vec![1; 5]);
    assert_eq!(s.metric("coalesce_group_size_count").await, 5.0, "each went through the coalescer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_disconnects_does_not_affect_the_others() {
    let emu = Emulator::start(Behavior { latency: Duration::from_millis(300), ..Default::default() }).await;
    let s = server().lambda(&emu).env("COALESCE_MAX_WAIT", "25ms").spawn();
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(100)).build().unwrap();
    let gone = impatient.post(s.url("/api/v1/translate")).json(&json!({"text": "CCO"})).send();
    let others = (0..8).map(|i| s.translate(json!({"text": input(i)})));
    let (gone, others) = tokio::join!(gone, futures_util::future::join_all(others));
    assert!(gone.is_err(), "the impatient client gave up");
    assert!(others.iter().all(|r| r.status == 200));
    assert!(emu.calls().iter().any(|c| c.inputs.len() > 1), "the others were grouped (with or without it)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalescing_can_be_turned_off() {
    let emu = Emulator::start(Behavior { latency: Duration::from_millis(50), ..Default::default() }).await;
    let s = server().lambda(&emu).env("COALESCE_MAX_WAIT", "0").spawn();
    let replies = futures_util::future::join_all((0..8).map(|i| s.translate(json!({"text": input(i)})))).await;
    assert!(replies.iter().all(|r| r.status == 200));
    assert_eq!(emu.calls().len(), 8);
}
