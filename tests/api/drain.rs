//! Leaving the fleet without losing anything: keep-alive clients are told to
//! go at once, a batch running when the grace period ends stops cleanly with
//! where to resume, and the preflight says whether the pod may invoke the
//! function.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::emulator::{Behavior, Emulator, Fault};
use crate::helpers::{molecule, run, server};

const GUARD: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_draining_every_response_closes_its_connection() {
    let s = server().env("SHUTDOWN_GRACE", "30s").spawn();
    let r = s.client.get(s.url("/healthz")).send().await.unwrap();
    assert!(r.headers().get("connection").is_none(), "keep-alive while serving");
    s.signal("TERM");
    let draining = async {
        while s.get("/readyz").await.status != 503 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(GUARD, draining).await.unwrap();
    let r = s.client.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "still serving in the grace period");
    assert_eq!(r.headers()["connection"], "close");
    s.signal("KILL");
}

/// Starts a 400-row batch (`query`: `""` or `"?format=csv"`) on a server with a
/// 1 s grace period, sends SIGTERM once its first rows have arrived, and
/// returns everything the stream carried, the emulator and the inputs.
async fn cut_batch(query: &str) -> (String, Emulator, Vec<String>) {
    let emu = Emulator::start(Behavior { latency: Duration::from_millis(150), ..Default::default() }).await;
    let mut s = server().lambda(&emu).env("SHUTDOWN_GRACE", "1s").env("LAMBDA_FAN_OUT", "1").spawn();
    let inputs: Vec<String> = (0..400).map(molecule).collect();
    let url = s.url(&format!("/api/v1/translate/batch{query}"));
    let response = s.client.post(url).json(&json!({"inputs": inputs, "n_best": 1})).send().await.unwrap();
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let mut signalled = false;
    let read = async {
        while let Some(chunk) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            // Shut the pod down once its first rows have arrived.
            if !signalled && text.lines().count() > 2 {
                s.signal("TERM");
                signalled = true;
            }
        }
    };
    tokio::time::timeout(GUARD, read).await.expect("the stream ends");
    let code = tokio::task::spawn_blocking(move || s.wait(GUARD)).await.unwrap();
    assert_eq!(code, Some(0), "the pod exited cleanly");
    (text, emu, inputs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_cut_by_shutdown_says_where_to_resume_and_another_pod_finishes_it() {
    let (text, emu, inputs) = cut_batch("").await;
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let last = lines.last().unwrap();
    assert_eq!((last["type"].as_str(), last["reason"].as_str()), (Some("interrupted"), Some("shutdown")), "{last}");
    let resume_from = last["resume_from"].as_u64().unwrap() as usize;
    let received: Vec<usize> =
        lines.iter().filter(|l| l["type"] == "result").map(|l| l["index"].as_u64().unwrap() as usize).collect();
    assert_eq!(received, (0..resume_from).collect::<Vec<_>>(), "rows 0..resume_from, each once");
    assert!(resume_from > 0 && resume_from < 400, "cut in the middle: {resume_from}");

    // Another pod takes the rest: every row arrives exactly once.
    let other = server().lambda(&emu).spawn();
    let rest = other.batch_text("", json!({"inputs": inputs[resume_from..], "n_best": 1})).await;
    let summary: Value = serde_json::from_str(rest.lines().last().unwrap()).unwrap();
    assert_eq!(summary["succeeded"].as_u64().unwrap() as usize + resume_from, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_cut_by_shutdown_ends_with_a_row_saying_so() {
    let (text, _emu, _) = cut_batch("?format=csv").await;
    let last = text.lines().last().unwrap();
    assert!(last.starts_with(",,,,,,,,interrupted: this server is shutting down"), "{last}");
    assert!(last.contains("send the rest again from line") && last.contains("(resume_from "), "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_says_what_is_wrong_with_one_exit_code_per_cause() {
    let ok = Emulator::start(Behavior::default()).await;
    let denied = Emulator::start(Behavior { fault: Fault::AccessDenied, ..Default::default() }).await;
    let missing = Emulator::start(Behavior { fault: Fault::NotFound, ..Default::default() }).await;
    let closed = format!("http://{}", std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap());
    let cases = [
        (ok.url(), 0, "ok: the function translation exists"),
        (denied.url(), 4, "access_denied: this identity may not invoke translation"),
        (missing.url(), 3, "function_not_found"),
        (closed, 6, "endpoint_unreachable"),
    ];
    for (endpoint, code, said) in cases {
        let out = tokio::task::spawn_blocking(move || {
            run(&["check"], &[("TRANSLATION_FUNCTION", "translation"), ("AWS_ENDPOINT_URL_LAMBDA", endpoint.as_str())])
        })
        .await
        .unwrap();
        let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(code), "{printed}");
        assert!(printed.contains(said), "{printed}");
    }
    assert_eq!(ok.dry_runs(), 1, "a DryRun invoke");
    assert_eq!(ok.call_count(), 0, "the function never ran");
    let out = run(&["check"], &[]);
    assert_eq!(out.status.code(), Some(2), "no function set");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_compares_what_the_fleet_can_ask_with_the_functions_and_the_accounts_concurrency() {
    let cases = [
        // 10 pods x 64 slots = 640 at once.
        (
            Some(100),
            1000,
            &["--max-replicas", "10"][..],
            "warning: capacity: the fleet can ask for 640 concurrent executions but the function's reserved concurrency is 100",
        ),
        (Some(700), 1000, &[][..], "ok: capacity: the function has 700 reserved; the fleet can ask for 640"),
        (
            None,
            500,
            &[][..],
            "warning: capacity: the function has no reserved concurrency and shares the account's unreserved 500",
        ),
        (
            None,
            1000,
            &["--max-replicas", "2"][..],
            "ok: capacity: the function has no reserved concurrency: the fleet's 128",
        ),
    ];
    for (reserved, account, args, said) in cases {
        let emu = Emulator::start(Behavior {
            reserved_concurrency: reserved,
            account_concurrency: account,
            ..Default::default()
        })
        .await;
        let url = emu.url();
        let mut argv = vec!["check"];
        argv.extend_from_slice(args);
        let out = tokio::task::spawn_blocking(move || {
            run(&argv, &[("TRANSLATION_FUNCTION", "translation"), ("AWS_ENDPOINT_URL_LAMBDA", url.as_str())])
        })
        .await
        .unwrap();
        let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "a shortfall is a warning: {printed}");
        assert!(printed.contains(said), "{said}\n{printed}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_runs_the_preflight_at_start_and_shows_only_its_outcome() {
    let denied = Emulator::start(Behavior { fault: Fault::AccessDenied, ..Default::default() }).await;
    let s = server()
        .lambda(&denied)
        .env("TRANSLATION_FUNCTION", "arn:aws:lambda:us-east-1:123456789012:function:translation")
        .spawn();
    assert_eq!(s.get("/readyz").await.status, 200, "ready without waiting for it");
    let outcome = async {
        loop {
            let config = s.get("/api/v1/config").await.json;
            if config["preflight"] != "pending" {
                return config;
            }
            tokio::task::yield_now().await;
        }
    };
    let config = tokio::time::timeout(GUARD, outcome).await.unwrap();
    assert_eq!(config["preflight"], "access_denied");
    assert!(!config.to_string().contains("123456789012"), "{config}");
    s.wait_for_log(|l| l.contains("preflight failed") && l.contains("may not invoke")).await;
    assert_eq!(server().spawn().get("/api/v1/config").await.json["preflight"], Value::Null, "demo: none");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_pod_is_still_scraped_and_its_batches_are_counted() {
    let emu = Emulator::start(Behavior::default()).await;
    let mut s = server().lambda(&emu).env("SHUTDOWN_GRACE", "300ms").spawn();
    let done = s.batch_text("", json!({"inputs": ["CCO", "CCN", "C1CC1"], "n_best": 1})).await;
    assert!(done.contains("\"summary\""), "{done}");
    let ended = async {
        while s.metric("batches_total{ended=\"completed\"}").await < 1.0 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(GUARD, ended).await.expect("the batch is counted when its stream ends");
    assert_eq!(s.metric("batch_rows_total{outcome=\"translated\"}").await, 3.0);

    // A request still in flight when the main listener closes.
    emu.hold();
    let pending = tokio::spawn(s.client.post(s.url("/api/v1/translate")).json(&json!({"text": "CCCO"})).send());
    while emu.in_flight() < 1 {
        tokio::task::yield_now().await;
    }
    s.signal("TERM");
    let addr = s.url("").trim_start_matches("http://").trim_end_matches('/').to_string();
    let closed = async {
        while tokio::net::TcpStream::connect(&addr).await.is_ok() {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(GUARD, closed).await.expect("the main listener closes after SHUTDOWN_GRACE");
    // The metrics port still answers, and shows the call in flight.
    assert_eq!(s.metric("lambda_invocations_in_flight").await, 1.0);
    emu.release();
    assert_eq!(pending.await.unwrap().unwrap().status(), 200, "the request in flight finished");
    let code = tokio::task::spawn_blocking(move || s.wait(GUARD)).await.unwrap();
    assert_eq!(code, Some(0));
}
