//! The load generator against the real service and the emulator on 127.0.0.1.
//! Counts are checked, never speed.

use serde_json::Value;

use crate::emulator::{Behavior, Emulator};
use crate::helpers::{run, server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_open_loop_run_reports_counts_that_add_up() {
    let emu = Emulator::start(Behavior::default()).await;
    let s = server().lambda(&emu).spawn();
    let (url, metrics) = (s.base.clone(), format!("{}/metrics", s.metrics_base));
    let out = tokio::task::spawn_blocking(move || {
        run(
            &[
                "loadtest",
                "--url",
                &url,
                "--rate",
                "40",
                "--duration",
                "2s",
                "--json",
                "--quiet",
                "--metrics-url",
                &metrics,
            ],
            &[],
        )
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    let n = |k: &str| report[k].as_u64().unwrap();
    assert_eq!(n("scheduled"), 80);
    assert_eq!(n("scheduled"), n("completed") + n("errors") + n("not_sent"));
    assert_eq!(n("sent"), n("completed") + n("errors"));
    assert!(n("completed") > 0);
    let by_kind: u64 = report["errors_by_kind"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(by_kind, n("errors"));
    assert!(report["latency"]["p99_ms"].as_f64().unwrap() >= report["latency"]["p50_ms"].as_f64().unwrap());
    let capacity = &report["capacity"];
    assert!(capacity["cpu_us_per_request"].as_f64().is_some(), "{report}");
    assert!(capacity["replicas_at"][0][1].as_u64().unwrap() >= 1);
    assert_eq!(emu.calls().iter().map(|c| c.inputs.len()).sum::<usize>() as u64, n("completed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_counted_by_status_and_code() {
    let s = server().env("MAX_INPUT_CHARS", "3").spawn();
    let url = s.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        run(&["loadtest", "--url", &url, "--stages", "1s:20", "--json", "--quiet"], &[])
    })
    .await
    .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    // the built-in examples are longer than 3 characters
    assert_eq!(report["completed"], 0);
    assert_eq!(report["errors_by_kind"]["413 too_large"], report["errors"]);
    assert_eq!(report["scheduled"], 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_mode_gets_the_path_asked_for() {
    let s = server().spawn();
    let url = s.base.clone();
    let report = |path: &'static str| {
        let url = url.clone();
        async move {
            let out = tokio::task::spawn_blocking(move || {
                let args = ["--mode", "page", "--path", path, "--rate", "20", "--duration", "1s", "--json", "--quiet"];
                run(&[&["loadtest", "--url", &url][..], &args].concat(), &[])
            })
            .await
            .unwrap();
            assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
            serde_json::from_slice::<Value>(&out.stdout).expect("a JSON report")
        }
    };
    let healthz = report("/healthz").await;
    assert_eq!(healthz["completed"], 20, "{healthz}");
    let missing = report("/no-such-page").await;
    assert_eq!(missing["completed"], 0, "{missing}");
    assert_eq!(missing["errors_by_kind"]["404 not_found"], 20, "{missing}");
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    for args in [
        &["loadtest", "--url", "https://example.invalid", "--rate", "1"][..],
        &["loadtest", "--stages", "soon"],
        &["loadtest", "--mode", "page", "--path", "healthz", "--rate", "1"],
        &["loadtest"],
    ] {
        let out = run(args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr).trim().lines().count(), 1, "{args:?}");
    }
}

#[test]
fn the_load_generator_does_not_check_the_servers_settings() {
    // A server setting that would stop the server (its examples file is
    // missing) is none of the HTTP client's business.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let url = format!("http://{closed}");
    let out = crate::helpers::run(
        &["loadtest", "--url", &url, "--rate", "2", "--duration", "1s", "--timeout", "1s", "--json", "--quiet"],
        &[("EXAMPLES_FILE", "/nonexistent/examples.txt")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("EXAMPLES_FILE"), "{stderr}");
    assert_ne!(out.status.code(), Some(2), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert_eq!(report["completed"], 0, "nothing listens there");
}
