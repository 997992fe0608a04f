//! The real Lambda path: the real `aws-sdk-lambda` client against the emulator,
//! configured through `AWS_ENDPOINT_URL_LAMBDA` as users configure it.

use std::time::Duration;

use serde_json::{Value, json};
use translation_front::inference::Params;
use translation_front::inference::demo;

use crate::emulator::{Behavior, Emulator, Fault, Format};
use crate::helpers::server;

async fn setup(behavior: Behavior) -> (Emulator, crate::helpers::Server) {
    let emu = Emulator::start(behavior).await;
    let s = server().lambda(&emu).env("LAMBDA_TIMEOUT", "3s").spawn();
    (emu, s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn translation_goes_through_the_lambda_and_matches_what_it_answered() {
    let (emu, s) = setup(Behavior::default()).await;
    let r = s.translate(json!({"text": "CC(=O)O", "beam": 3, "n_best": 2})).await;
    assert_eq!(r.status, 200, "{}", r.json);
    let want = demo::hypotheses("C C ( = O ) O", Params { beam: 3, n_best: 2, attention: true });
    let preds = r.json["predictions"].as_array().unwrap();
    for (p, h) in preds.iter().zip(&want) {
        assert_eq!(p["tokens"].as_array().unwrap().len(), 7);
        assert_eq!(p["text"], h.tokens.replace(' ', ""));
        assert_eq!(p["score"].as_f64().unwrap(), h.score);
        let att: Vec<Vec<f32>> = serde_json::from_value(p["attention"].clone()).unwrap();
        let want = h.attention.as_ref().unwrap();
        assert_eq!(att.len(), want.rows());
        for (a, w) in att.iter().flatten().zip(want.iter_rows().flatten()) {
            assert!((a - w).abs() <= 5e-5, "attention to 4 decimals: {a} vs {w}");
        }
    }
    assert_eq!(emu.calls().len(), 1);
    assert!(s.backend_is_lambda().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_on_the_wire_is_the_existing_functions_format() {
    let emu = Emulator::start(Behavior::default()).await;
    let s = server()
        .lambda(&emu)
        .env("TRANSLATION_FUNCTION", "arn:aws:lambda:us-east-1:123456789012:function:translation")
        .env("TRANSLATION_QUALIFIER", "live")
        .spawn();
    let r = s.translate(json!({"text": "  N#C c1\tccccc1 ", "beam": 4, "n_best": 3, "attention": false})).await;
    assert_eq!(r.status, 200, "{}", r.json);
    let calls = emu.calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.function, "arn:aws:lambda:us-east-1:123456789012:function:translation");
    assert_eq!(call.qualifier.as_deref(), Some("live"));
    assert_eq!(
        call.event,
        json!({"data": "[\"N # C c 1 c c c c c 1\"]", "beam": 4, "n_best": 3, "return_attention": false, "warmup": false})
    );
    assert!(call.authorization.as_deref().unwrap_or("").starts_with("AWS4-HMAC-SHA256"), "SigV4 signed");
    assert!(r.json["predictions"][0].get("attention").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_result_encoding_decodes() {
    for format in [Format::Envelope, Format::Plain, Format::StringBody, Format::Base64NoGzip] {
        let (_emu, s) = setup(Behavior { format, ..Default::default() }).await;
        for attention in [true, false] {
            let r = s.translate(json!({"text": "CCO", "beam": 2, "n_best": 2, "attention": attention})).await;
            assert_eq!(r.status, 200, "{format:?}: {}", r.json);
            assert_eq!(r.json["predictions"][0]["text"], "CCO", "{format:?}");
            assert_eq!(r.json["predictions"][1]["attention"].is_array(), attention, "{format:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_error_is_a_502_with_a_plain_message_and_is_not_retried() {
    let (emu, s) = setup(Behavior { fault: Fault::FunctionError, ..Default::default() }).await;
    let r = s.translate(json!({"text": "CCO"})).await;
    assert_eq!((r.status.as_u16(), r.code()), (502, "lambda_function_error"));
    let message = r.json["error"]["message"].as_str().unwrap();
    assert_eq!(message, "the model failed on this input", "the function's own words stay in the log");
    let id = r.json["error"]["request_id"].as_str().unwrap().to_string();
    assert_eq!(r.headers["x-request-id"], id.as_str());
    let logged = s.wait_for_log(|l| l.contains(&id)).await;
    assert!(logged.contains("RuntimeError") && logged.contains("CUDA out of memory"), "{logged}");
    assert_eq!(emu.calls().len(), 1);
    assert_eq!(s.metric("lambda_invocations_total{outcome=\"function_error\"}").await, 1.0);
    assert_eq!(s.get("/readyz").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_twice_then_success_takes_three_calls() {
    let (emu, s) = setup(Behavior { throttle_next: 2, ..Default::default() }).await;
    let r = s.translate(json!({"text": "CCO"})).await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(emu.calls().len(), 3);
    assert_eq!(s.metric("lambda_retries_total{reason=\"throttled\"}").await, 2.0);
    assert_eq!(s.metric("lambda_invocations_total{outcome=\"ok\"}").await, 1.0);
    // Each attempt apart from the call: two throttled, one answered.
    assert_eq!(s.metric("lambda_attempt_duration_seconds_count{outcome=\"throttled\"}").await, 2.0);
    assert_eq!(s.metric("lambda_attempt_duration_seconds_count{outcome=\"ok\"}").await, 1.0);
    assert_eq!(s.metric("lambda_invocation_duration_seconds_count{outcome=\"ok\"}").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_too() {
    let (emu, s) = setup(Behavior { server_error_next: 1, ..Default::default() }).await;
    let r = s.translate(json!({"text": "CCO"})).await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(emu.calls().len(), 2);
    assert_eq!(s.metric("lambda_retries_total{reason=\"server_error\"}").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_throttled_gives_503_with_retry_after() {
    let (emu, s) = setup(Behavior { fault: Fault::ThrottleAlways, ..Default::default() }).await;
    let r = s.translate(json!({"text": "CCO"})).await;
    assert_eq!((r.status.as_u16(), r.code()), (503, "lambda_throttled"), "{}", r.json);
    let retry_after: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after >= 1);
    assert!(emu.calls().len() > 1, "retried before giving up");
    assert!(emu.calls().len() <= 4, "and gave up after its attempts, not at the 55 s deadline");
    assert_eq!(s.metric("lambda_invocations_total{outcome=\"throttled\"}").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_lambda_gives_504_at_the_deadline_and_the_server_stays_healthy() {
    let emu = Emulator::start(Behavior { fault: Fault::Hang, ..Default::default() }).await;
    let s = server().lambda(&emu).env("LAMBDA_TIMEOUT", "1s").spawn();
    let r = s.translate(json!({"text": "CCO"})).await;
    // The deadline's own answer (the request timeout would say otherwise).
    assert_eq!((r.status.as_u16(), r.code()), (504, "lambda_timeout"), "{}", r.json);
    emu.set(|b| b.fault = Fault::None);
    assert_eq!(s.translate(json!({"text": "CCO"})).await.status, 200);
    assert_eq!(s.metric("lambda_invocations_total{outcome=\"timeout\"}").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_mismatched_payloads_are_bad_payload() {
    for fault in [Fault::Malformed, Fault::Mismatched] {
        let (_emu, s) = setup(Behavior { fault, ..Default::default() }).await;
        let r = s.translate(json!({"text": "CCO"})).await;
        assert_eq!((r.status.as_u16(), r.code()), (502, "lambda_bad_payload"), "{fault:?}: {}", r.json);
        assert_eq!(s.get("/healthz").await.status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_status_in_the_envelope_is_a_function_error() {
    let (_emu, s) = setup(Behavior { fault: Fault::ErrorStatus, ..Default::default() }).await;
    let r = s.translate(json!({"text": "CCO"})).await;
    assert_eq!((r.status.as_u16(), r.code()), (502, "lambda_function_error"), "{}", r.json);
    // The envelope's own words go to the log, under the request id.
    let id = r.json["error"]["request_id"].as_str().unwrap().to_string();
    assert!(s.wait_for_log(|l| l.contains(&id)).await.contains("model failed to load"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_is_lambda_unavailable() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let s = server().env("TRANSLATION_FUNCTION", "translation").env("AWS_ENDPOINT_URL_LAMBDA", &url).spawn();
    let r = s.translate(json!({"text": "CCO"})).await;
    assert_eq!((r.status.as_u16(), r.code()), (502, "lambda_unavailable"), "{}", r.json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_credentials_the_server_is_ready_at_once_and_requests_fail_fast() {
    let emu = Emulator::start(Behavior::default()).await;
    let s = server()
        .lambda(&emu)
        .without("AWS_ACCESS_KEY_ID")
        .without("AWS_SECRET_ACCESS_KEY")
        .without("AWS_REGION")
        .env("HOME", "/nonexistent")
        .env("LAMBDA_TIMEOUT", "120s")
        .spawn();
    // Ready while the AWS chain has found nothing (the preflight is pending or failed).
    assert_eq!(s.get("/readyz").await.status, 200);
    let r = s.translate(json!({"text": "CCO"})).await;
    // Failed fast with the cause, not at the 120 s deadline with a timeout.
    assert_eq!((r.status.as_u16(), r.code()), (502, "lambda_unavailable"), "{}", r.json);
    assert!(emu.calls().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_in_flight_cap_requests_get_503_overloaded_at_once() {
    let emu = Emulator::start(Behavior { latency: Duration::from_millis(800), ..Default::default() }).await;
    let s = server().lambda(&emu).env("MAX_INFLIGHT_INVOCATIONS", "2").spawn();
    // Three different inputs: the same one would share an invocation.
    let slow = ["CCO", "CCN"].map(|text| s.translate(json!({"text": text})));
    let slow = futures_util::future::join_all(slow);
    let probe = async {
        // Both slots taken (the two slow calls are at the function)...
        while emu.in_flight() < 2 {
            tokio::task::yield_now().await;
        }
        let r = s.translate(json!({"text": "CCC"})).await;
        // ...and still taken when the answer came: it was refused, not queued.
        (r, emu.in_flight())
    };
    let (slow, (r, busy)) = tokio::join!(slow, probe);
    assert!(slow.iter().all(|r| r.status == 200));
    assert_eq!((r.status.as_u16(), r.code()), (503, "overloaded"), "{}", r.json);
    assert!(r.headers.contains_key("retry-after"));
    assert_eq!(busy, 2, "refused at once, while the slots were still held");
    assert_eq!(s.translate(json!({"text": "CCCC"})).await.status, 200, "recovers");
    // Operators see the refusal and the slots' use: two calls of >= 0.8 s
    // and one more held their slots at least 1.6 s in all.
    assert_eq!(s.metric("lambda_invocation_slots_refused_total").await, 1.0);
    assert!(s.metric("lambda_invocation_slot_seconds_total").await >= 1.6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_lasting_throttle_retries_stay_within_a_tenth_of_calls_and_the_reason_is_counted() {
    let (emu, s) = setup(Behavior { fault: Fault::ThrottleAlways, ..Default::default() }).await;
    let requests = 60;
    for i in 0..requests {
        let r = s.translate(json!({"text": format!("[{}CH3]O", i + 1)})).await;
        assert_eq!(r.code(), "lambda_throttled", "{}", r.json);
    }
    let calls = emu.calls().len();
    // Without a budget each request is tried 4 times (240 calls); with it,
    // each once, plus the reserve of 20 retries and a tenth of the calls.
    assert!(calls <= requests + 20 + requests / 10, "{calls} calls for {requests} requests");
    assert!(s.metric("lambda_retries_denied_total").await >= 1.0);
    let reason = "lambda_throttles_total{reason=\"ReservedFunctionConcurrentInvocationLimitExceeded\"}";
    assert_eq!(s.metric(reason).await, calls as f64, "every throttle counted under Lambda's reason");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_invocations_and_the_process() {
    let (_emu, s) = setup(Behavior::default()).await;
    for text in ["CCO", "CCN", "CCC"] {
        assert_eq!(s.translate(json!({"text": text})).await.status, 200);
    }
    assert_eq!(s.translate(json!({"text": ""})).await.status, 400);
    let text = s.metrics().await;
    let ok = r#"http_requests_total{code="none",method="POST",route="/api/v1/translate",status="200"} 3"#;
    assert!(text.contains(ok), "{text}");
    // The error code, from the fixed set, says which 4xx or 5xx it was.
    let bad = r#"http_requests_total{code="invalid_input",method="POST",route="/api/v1/translate",status="400"} 1"#;
    assert!(text.contains(bad), "{text}");
    // Latency of successes apart from failures.
    let fast = r#"http_request_duration_seconds_count{route="/api/v1/translate",status_class="2xx"} 3"#;
    assert!(text.contains(fast), "{text}");
    assert!(text.contains(r#"http_request_duration_seconds_count{route="/api/v1/translate",status_class="4xx"} 1"#));
    assert!(text.contains(r#"lambda_invocations_total{outcome="ok"} 3"#));
    assert!(text.contains(r#"lambda_invocation_duration_seconds_count{outcome="ok"} 3"#));
    assert!(text.contains("lambda_invocations_in_flight 0"));
    // The slot cap beside the gauge (MAX_INFLIGHT_INVOCATIONS, 64 by default),
    // and the version serving.
    assert!(text.contains("lambda_invocations_limit 64"), "{text}");
    assert!(text.contains(&format!("build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"))), "{text}");
    assert!(text.contains("process_cpu_seconds_total"));
    assert!(text.contains("process_resident_memory_bytes"));
    // no user text in any label
    assert!(!text.contains("CCO"));
    // one log line per request with the Lambda request id, and no input text;
    // access lines are written out in batches (every 200 ms)
    let access = |l: &String| l.contains("\"lambda_request_id\":\"emu-") && l.contains("/api/v1/translate");
    let written = async {
        while s.log_lines().iter().filter(|l| access(l)).count() < 3 {
            tokio::task::yield_now().await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), written).await;
    let logs = s.log_lines();
    assert_eq!(logs.iter().filter(|l| access(l)).count(), 3, "{logs:?}");
    assert!(!logs.iter().any(|l| l.contains("CCO")), "{logs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incoming_traceparent_is_the_request_id_in_the_response_the_log_and_the_functions_client_context() {
    let (emu, s) = setup(Behavior::default()).await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let request = s
        .client
        .post(s.url("/api/v1/translate"))
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .json(&json!({"text": "CCOC(C)=O"}));
    let r = s.send(request).await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.headers["x-request-id"], trace);
    let calls = emu.calls();
    let context = calls.last().unwrap().client_context.clone().expect("a client context");
    assert_eq!(context["custom"]["request_ids"], json!([trace]), "{context}");
    // The access line: found by its target, with our id and the function's.
    let line = s.wait_for_log(|l| l.contains(trace)).await;
    let line: Value = serde_json::from_str(&line).unwrap();
    assert_eq!((line["target"].as_str(), line["request_id"].as_str()), (Some("access"), Some(trace)), "{line}");
    assert!(line["lambda_request_id"].as_str().is_some_and(|id| id.starts_with("emu-")), "{line}");
    // An X-Request-Id is kept as given; one a client could abuse is replaced.
    let kept = s.send(s.client.get(s.url("/healthz")).header("x-request-id", "lb-7f3a.01")).await;
    assert_eq!(kept.headers["x-request-id"], "lb-7f3a.01");
    let replaced = s.send(s.client.get(s.url("/healthz")).header("x-request-id", "x".repeat(200))).await;
    assert_eq!(replaced.headers["x-request-id"].len(), 16);
}
