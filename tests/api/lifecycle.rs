//! Start-up and graceful shutdown of the real process.

use std::time::Duration;

use serde_json::json;

use crate::emulator::{Behavior, Emulator};
use crate::helpers::server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flips_readiness_finishes_the_request_in_flight_and_exits_0() {
    let emu = Emulator::start(Behavior { latency: Duration::from_millis(1500), ..Default::default() }).await;
    let mut s = server().lambda(&emu).env("SHUTDOWN_GRACE", "1s").spawn();
    let client = s.client.clone();
    let url = s.url("/api/v1/translate");
    let slow = tokio::spawn(async move { client.post(url).json(&json!({"text": "CCO"})).send().await });
    // The request is at the function when the signal comes.
    let at_function = async {
        while emu.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), at_function).await.unwrap();
    s.signal("TERM");
    let not_ready = async {
        while s.get("/readyz").await.status != 503 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), not_ready).await.expect("readiness flips");
    assert_eq!(s.get("/healthz").await.status, 200, "still serving during the grace period");
    assert_eq!(emu.in_flight(), 1, "while the request is still in flight");
    let r = slow.await.unwrap().expect("the request in flight completes");
    assert_eq!(r.status(), 200);
    let code = tokio::task::spawn_blocking(move || s.wait(Duration::from_secs(10))).await.unwrap();
    assert_eq!(code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_also_drains_and_exits_0_with_every_access_line_written() {
    let mut s = server().spawn();
    assert_eq!(s.get("/api/v1/config").await.status, 200);
    s.signal("INT");
    let (code, s) = tokio::task::spawn_blocking(move || (s.wait(Duration::from_secs(10)), s)).await.unwrap();
    assert_eq!(code, Some(0));
    // the access line of the last request is written at exit, not lost with the buffer
    s.wait_for_log(|l| l.contains("\"route\":\"/api/v1/config\"")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_healthcheck_command_reports_a_live_server_and_a_missing_one() {
    let s = server().spawn();
    let addr = s.base.trim_start_matches("http://").to_string();
    let out =
        tokio::task::spawn_blocking(move || crate::helpers::run(&["healthcheck"], &[("LISTEN_ADDR", addr.as_str())]))
            .await
            .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let out = crate::helpers::run(&["healthcheck"], &[("LISTEN_ADDR", closed.as_str())]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"));
}

/// Chemistry a client left behind (a batch of the largest molecules
/// MAX_ATOMS allows, tens of seconds of RDKit work) runs on threads that do
/// not hold the process: SIGTERM exits within SHUTDOWN_GRACE and the drain
/// limit (LAMBDA_TIMEOUT + 5 s), whatever was in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_with_abandoned_chemistry_still_running() {
    let mut s = server().env("LAMBDA_TIMEOUT", "1s").spawn();
    let inputs: Vec<String> =
        (0..1000).map(|i| format!("{}O{}", "C".repeat(100 + i / 12), "C".repeat(i % 12))).collect();
    let request = s.client.post(s.url("/api/v1/translate/batch")).json(&json!({"inputs": inputs}));
    let abandoned = tokio::spawn(request.send());
    let running = async {
        while s.metric("chemistry_running").await < 1.0 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), running).await.expect("the batch's chemistry starts");
    abandoned.abort();
    s.signal("TERM");
    // Well before the chemistry could finish: 1,000 rows of 100-200 atoms.
    let code = tokio::task::spawn_blocking(move || s.wait(Duration::from_secs(10))).await.unwrap();
    assert_eq!(code, Some(0), "the process waited for abandoned chemistry");
}
