//! Coalescing of concurrent single translations, through the real SDK.

use std::time::Duration;

use serde_json::json;
use translation_front::inference::{Params, demo};

use crate::emulator::{Behavior, Emulator};
use crate::helpers::{Reply, Server, molecule as input, server};

/// Waits until the emulator has `calls` calls in flight and the server's
/// coalescer holds `queued` requests; a minute is a safety net, not a timing.
async fn until_held(s: &Server, emu: &Emulator, calls: usize, queued: f64) {
    let state = async {
        while emu.in_flight() != calls || s.metric("coalesce_queued").await != queued {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), state)
        .await
        .unwrap_or_else(|_| panic!("never saw {calls} calls in flight and {queued} requests queued"));
}

/// With the emulator holding calls: sends requests `0..firsts` and waits until
/// they are in flight, sends `firsts..total`, waits until `in_flight` calls are
/// out and the coalescer holds `queued` requests, then releases them all.
/// The replies, in request order.
async fn held_then_released(
    s: &Server,
    emu: &Emulator,
    body: impl Fn(usize) -> serde_json::Value,
    (firsts, total): (usize, usize),
    (in_flight, queued): (usize, f64),
) -> Vec<Reply> {
    let send = |range: std::ops::Range<usize>| futures_util::future::join_all(range.map(|i| s.translate(body(i))));
    emu.hold();
    let rest = async {
        while emu.in_flight() < firsts {
            tokio::task::yield_now().await;
        }
        let held = async {
            until_held(s, emu, in_flight, queued).await;
            emu.release();
        };
        tokio::join!(send(firsts..total), held).0
    };
    let (mut replies, rest) = tokio::join!(send(0..firsts), rest);
    replies.extend(rest);
    replies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_translations_share_invocations_and_each_gets_its_own_answer() {
    let emu = Emulator::start(Behavior::default()).await;
    // Groups leave when the call in flight returns or they are full (50 at beam 5).
    let s = server().lambda(&emu).env("COALESCE_MAX_WAIT", "3600s").spawn();
    let body = |i: usize| json!({"text": input(i), "beam": 5, "n_best": 3, "attention": false});
    // The first is held in flight; 50 queued behind it fill a group, which
    // leaves (and is held too); 13 wait.
    let replies = held_then_released(&s, &emu, body, (1, 64), (2, 13.0)).await;
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
    let mut sizes: Vec<usize> = emu.calls().iter().map(|c| c.inputs.len()).collect();
    sizes.sort();
    assert_eq!(sizes, [1, 13, 50], "one alone, a full group, then the rest when the first returned");
    assert_eq!(s.metric("translated_inputs_total{path=\"single\"}").await, 64.0);
    assert_eq!(s.metric("lambda_invocations_total{outcome=\"ok\"}").await, 3.0);
    assert_eq!(s.metric("coalesce_group_size_count").await, 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_parameters_are_never_grouped() {
    let emu = Emulator::start(Behavior::default()).await;
    let s = server().lambda(&emu).env("COALESCE_MAX_WAIT", "3600s").spawn();
    let kinds = [(5, false), (3, false), (5, true)];
    let body = |i: usize| {
        let (beam, attention) = kinds[i % 3];
        json!({"text": input(i), "beam": beam, "n_best": 2, "attention": attention})
    };
    // One call of each kind held in flight; seven of each kind queue behind it.
    let replies = held_then_released(&s, &emu, body, (3, 24), (3, 21.0)).await;
    assert!(replies.iter().all(|r| r.status == 200));
    let calls = emu.calls();
    for call in &calls {
        let (beam, attention) =
            (call.event["beam"].as_u64().unwrap(), call.event["return_attention"].as_bool().unwrap());
        for tokenized in &call.inputs {
            let i = (0..24).find(|&i| input(i) == tokenized.replace(' ', "")).expect("one of the inputs");
            assert_eq!(kinds[i % 3], (beam, attention), "input {i} in a call with other parameters");
        }
    }
    let mut sizes: Vec<usize> = calls.iter().map(|c| c.inputs.len()).collect();
    sizes.sort();
    assert_eq!(sizes, [1, 1, 1, 7, 7, 7], "each kind grouped with its own");
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
    let replies = held_then_released(&s, &emu, body, (1, 16), (1, 15.0)).await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status.as_u16()).collect();
    let mut want = vec![200; 16];
    want[9] = 502;
    assert_eq!(statuses, want);
    assert_eq!(replies[9].code(), "lambda_function_error");
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
