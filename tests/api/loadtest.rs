//! The load generator against the real service and the emulator on 127.0.0.1.
//! Counts are checked, never speed.

use serde_json::Value;

use crate::emulator::{Behavior, Emulator, Fault};
use crate::helpers::{run, server};

/// Runs the load generator off the test's runtime; its exit code and report.
async fn loadtest(url: &str, args: &[&str]) -> (Option<i32>, Value) {
    let mut all: Vec<String> = ["loadtest", "--url", url, "--json", "--quiet"].map(String::from).to_vec();
    all.extend(args.iter().map(|a| a.to_string()));
    let out = tokio::task::spawn_blocking(move || run(&all.iter().map(String::as_str).collect::<Vec<_>>(), &[]))
        .await
        .unwrap();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("no JSON report: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), report)
}

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
        &["loadtest", "--url", "ftp://example.invalid", "--rate", "1"][..],
        &["loadtest", "--rate", "1", "--threshold", "p99<fast"],
        &["loadtest", "--rate", "1", "--ca-cert", "/nonexistent/ca.pem", "--url", "https://127.0.0.1:1"],
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_threshold_fails_the_run_against_a_failing_function_and_passes_against_a_healthy_one() {
    let emu = Emulator::start(Behavior::default()).await;
    let s = server().lambda(&emu).spawn();
    let gate = ["--rate", "30", "--duration", "1s", "--threshold", "errors<1%", "--threshold", "p99_ok<10s"];
    let (code, report) = loadtest(&s.base, &gate).await;
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["passed"], true);
    assert_eq!(report["thresholds"][0]["value"], 0.0);

    emu.set(|b| b.fault = Fault::FunctionError);
    let (code, report) = loadtest(&s.base, &gate).await;
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["passed"], false);
    assert_eq!(report["thresholds"][0]["value"], 100.0);
    assert_eq!(report["thresholds"][0]["passed"], false);
    // Nothing succeeded: a latency of successes cannot pass.
    assert_eq!(report["thresholds"][1]["value"], Value::Null);
    assert_eq!(report["errors_by_kind"]["502 lambda_function_error"], 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_on_fail_stops_a_failed_run_early() {
    let emu = Emulator::start(Behavior { fault: Fault::FunctionError, ..Default::default() }).await;
    let s = server().lambda(&emu).spawn();
    let args = ["--rate", "200", "--duration", "60s", "--threshold", "errors<1%", "--abort-on-fail"];
    let (code, report) = loadtest(&s.base, &args).await;
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["aborted"], true);
    let scheduled = report["scheduled"].as_u64().unwrap();
    assert!((100..12_000).contains(&scheduled), "stopped after {scheduled} of 12,000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_is_an_error_counted_at_its_latency() {
    let emu = Emulator::start(Behavior { fault: Fault::Hang, ..Default::default() }).await;
    let s = server().lambda(&emu).spawn();
    let (code, report) = loadtest(&s.base, &["--rate", "10", "--duration", "1s", "--timeout", "1s"]).await;
    assert_eq!(code, Some(0), "no thresholds: the run itself passes");
    assert_eq!(report["errors_by_kind"]["timeout"], 10, "{report}");
    assert_eq!(report["completed"], 0);
    let p99 = report["latency"]["p99_ms"].as_f64().unwrap();
    assert!((1000.0..2000.0).contains(&p99), "p99 {p99} ms: a timeout counts at the time it took");
    assert_eq!(report["latency_ok"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_time_series_has_a_line_per_second_that_adds_up_to_the_report_and_a_plot() {
    let s = server().spawn();
    let dir = std::env::temp_dir().join(format!("loadtest-series-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (out, plot) = (dir.join("run.jsonl"), dir.join("run.png"));
    let args = ["--rate", "40", "--duration", "3s", "--out", out.to_str().unwrap(), "--plot", plot.to_str().unwrap()];
    let (code, report) = loadtest(&s.base, &args).await;
    assert_eq!(code, Some(0), "{report}");
    let lines: Vec<Value> =
        std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let seconds = report["duration_s"].as_f64().unwrap().ceil() as usize;
    assert_eq!(lines.len(), seconds, "{lines:?}");
    let sum = |k: &str| lines.iter().map(|l| l[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(sum("sent"), report["sent"].as_u64().unwrap());
    assert_eq!(sum("completed"), report["completed"].as_u64().unwrap());
    assert!(lines.iter().all(|l| l["target_rate"] == 40.0 || l == lines.last().unwrap()), "{lines:?}");
    assert!(std::fs::read(&plot).unwrap().starts_with(b"\x89PNG"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_is_a_different_molecule_with_attention_and_drawings_by_default() {
    let emu = Emulator::start(Behavior::default()).await;
    let s = server().lambda(&emu).env("CACHE_TTL", "0").spawn();
    let (code, report) = loadtest(&s.base, &["--rate", "20", "--duration", "1s", "--depict"]).await;
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["completed"], 20, "{report}");
    let calls = emu.calls();
    let inputs: std::collections::HashSet<String> = calls.iter().flat_map(|c| c.inputs.clone()).collect();
    assert_eq!(inputs.len(), 20, "every request a different molecule");
    assert!(calls.iter().all(|c| c.event["return_attention"] == true));
    // The input and each valid prediction, as the page draws them.
    let drawings = &report["drawings"];
    assert!(drawings["requests"].as_u64().unwrap() >= 40, "{drawings}");
    assert_eq!(drawings["ok"], drawings["requests"]);
}

/// Counts the connections a client opens, passing each on to `to`.
async fn counting_relay(to: std::net::SocketAddr) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut outbound = tokio::net::TcpStream::connect(to).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    (format!("http://{addr}"), accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_retired_after_max_requests_so_new_pods_get_traffic() {
    let s = server().spawn();
    let to: std::net::SocketAddr = s.base.trim_start_matches("http://").parse().unwrap();
    let (url, accepted) = counting_relay(to).await;
    let args = ["--mode", "page", "--path", "/healthz", "--rate", "50", "--duration", "1s"];
    let (_, report) = loadtest(&url, &[&args[..], &["--max-requests-per-connection", "5"]].concat()).await;
    assert_eq!(report["completed"], 50, "{report}");
    let retired = accepted.swap(0, std::sync::atomic::Ordering::SeqCst);
    assert!(retired >= 10, "{retired} connections for 50 requests at 5 each");
    let (_, report) = loadtest(&url, &args).await;
    assert_eq!(report["completed"], 50, "{report}");
    let kept = accepted.load(std::sync::atomic::Ordering::SeqCst);
    assert!(kept < retired, "{kept} connections when they are kept alive, {retired} when retired");
}

/// A TLS listener (as a balancer's) in front of `to`, with a certificate for
/// 127.0.0.1 made by openssl; the URL and the certificate's file.
async fn tls_relay(to: std::net::SocketAddr, dir: &std::path::Path) -> (String, std::path::PathBuf) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=translation-test", "-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl makes the test certificate (apt-get install openssl)");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(&cert).unwrap().map(Result::unwrap).collect();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, PrivateKeyDer::from_pem_file(&key).unwrap())
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(inbound).await else { return };
                let mut outbound = tokio::net::TcpStream::connect(to).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut outbound).await;
            });
        }
    });
    (format!("https://{addr}"), cert)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_reaches_a_tls_listener_whose_certificate_it_trusts() {
    let s = server().spawn();
    let dir = std::env::temp_dir().join(format!("loadtest-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (url, cert) = tls_relay(s.base.trim_start_matches("http://").parse().unwrap(), &dir).await;
    let args = ["--rate", "20", "--duration", "1s", "--timeout", "5s"];
    let (code, report) = loadtest(&url, &[&args[..], &["--ca-cert", cert.to_str().unwrap()]].concat()).await;
    assert_eq!((code, &report["completed"]), (Some(0), &Value::from(20)), "{report}");
    // The system's roots do not know this certificate: every request fails.
    let (_, report) = loadtest(&url, &args).await;
    assert_eq!(report["errors_by_kind"]["connection"], 20, "{report}");
    std::fs::remove_dir_all(&dir).unwrap();
}
