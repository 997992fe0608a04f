//! Bad settings stop the program with one clear line and exit code 2.

use crate::helpers::run;

fn assert_one_line_exit_2(args: &[&str], env: &[(&str, &str)], needle: &str) {
    let out = run(args, env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(needle), "{needle:?} in {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"));
}

#[test]
fn unparsable_duration_exits_2_with_one_line() {
    assert_one_line_exit_2(&[], &[("LAMBDA_TIMEOUT", "forever")], "forever");
}

#[test]
fn n_best_default_above_beam_exits_2() {
    assert_one_line_exit_2(&[], &[("DEFAULT_BEAM", "3"), ("DEFAULT_N_BEST", "4")], "DEFAULT_N_BEST");
}

#[test]
fn unknown_tokenizer_exits_2() {
    assert_one_line_exit_2(&["--tokenizer", "bpe"], &[], "bpe");
}

#[test]
fn address_in_use_exits_2() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    assert_one_line_exit_2(&[], &[("LISTEN_ADDR", &addr)], "cannot listen on");
}

#[test]
fn help_lists_every_setting_with_its_environment_name() {
    let out = run(&["--help"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for name in [
        "LISTEN_ADDR",
        "METRICS_ADDR",
        "TRANSLATION_FUNCTION",
        "TRANSLATION_QUALIFIER",
        "TOKENIZER",
        "DEFAULT_BEAM",
        "DEFAULT_N_BEST",
        "MAX_BEAM",
        "MAX_INPUT_CHARS",
        "MAX_BATCH_INPUTS",
        "MAX_BODY_BYTES",
        "LAMBDA_TIMEOUT",
        "LAMBDA_FAN_OUT",
        "MAX_INFLIGHT_INVOCATIONS",
        "COALESCE_MAX_WAIT",
        "LAMBDA_WARMUP_INTERVAL",
        "LAMBDA_WARMUP_CONCURRENCY",
        "EXAMPLES_FILE",
        "LOG_FORMAT",
        "SHUTDOWN_GRACE",
    ] {
        assert!(help.contains(name), "--help mentions {name}");
    }
}
