//! A client that means harm, against the real binary: each test plays one
//! attack and asserts the bound that stops it (a series count, a connection
//! the server closed, a process that exited, a batch that still succeeded, a
//! response under its budget), never a wall-clock time. Small timeouts come
//! from the settings so the tests stay fast.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::emulator::{ACCESS_DENIED_MESSAGE, Behavior, Emulator, Fault};
use crate::helpers::{Server, molecule, server};

/// The longest any test here waits for the server to act; a broken bound
/// shows up as this expiring.
const GUARD: Duration = Duration::from_secs(20);

fn addr(s: &Server) -> String {
    s.base.trim_start_matches("http://").to_string()
}

/// Reads until the server closes the connection (EOF or reset); returns what
/// it sent. Panics if the server keeps it open past `GUARD`.
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(GUARD, read).await.expect("the server closed the connection");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_share_one_label_and_add_no_series() {
    let s = server().spawn();
    let series = |text: &str| text.lines().filter(|l| l.starts_with("http_requests_total{")).count();
    assert_eq!(s.get("/healthz").await.status, 200);
    let before = series(&s.metrics().await);
    for i in 0..300 {
        let method = reqwest::Method::from_bytes(format!("X{i}").as_bytes()).unwrap();
        let _ = s.client.request(method, s.url("/healthz")).send().await.unwrap();
    }
    let text = s.metrics().await;
    assert!(series(&text) <= before + 1, "at most one new series: {}", series(&text) - before);
    assert!(!text.contains("method=\"X1\""), "no label comes from the client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_sent_a_byte_at_a_time_is_cut_at_the_header_timeout() {
    // A long idle timeout: only the header timeout can act (the bytes keep the
    // connection busy).
    let s = server().env("HEADER_READ_TIMEOUT", "1s").env("IDLE_TIMEOUT", "300s").spawn();
    let mut slow = TcpStream::connect(addr(&s)).await.unwrap();
    let slowloris = async {
        for b in b"GET / HTTP/1.1\r\nHost: x\r\nX-a: ".iter().cycle() {
            if slow.write_all(&[*b]).await.is_err() {
                return;
            }
            let mut buf = [0u8; 64];
            // Pace the bytes; a read that ends means the server closed.
            if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(Duration::from_millis(100), slow.read(&mut buf)).await {
                return;
            }
        }
    };
    tokio::time::timeout(GUARD, slowloris).await.expect("the server cut the slow head");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_idle_connections_are_closed_at_the_idle_timeout() {
    // A long header timeout: only the idle watchdog can act.
    let s = server().env("HEADER_READ_TIMEOUT", "300s").env("IDLE_TIMEOUT", "1s").spawn();
    let mut bare = Vec::new();
    for _ in 0..50 {
        bare.push(TcpStream::connect(addr(&s)).await.unwrap());
    }
    let mut idle = TcpStream::connect(addr(&s)).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let answer = until_closed(&mut idle).await;
    assert!(answer.starts_with(b"HTTP/1.1 200"), "served, then closed when idle");
    for mut c in bare {
        // Closed by the server (the call fails the test if not), having sent nothing.
        assert!(until_closed(&mut c).await.is_empty());
    }
    let open = async {
        // The metrics scrape does not count: it is on the other listener.
        while s.metric("http_connections_open").await > 0.0 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(GUARD, open).await.expect("the gauge shows none open");
}

/// Opens `n` connections that each send a large batch with attention (some
/// 30 MB of answer) and never read, through a tiny receive window: the
/// server's writes stall after the first few chunks.
/// Waits until unread batches have stalled: nothing running at the function
/// and no new call across many scrapes (a batch still moving would call the
/// 1 ms function again at once). The slot is then taken by a stalled job's
/// queued wait, which `lambda_invocations_in_flight` does not show.
async fn until_stalled(emu: &Emulator, s: &Server) {
    let stalled_now = async {
        let mut quiet = 0;
        let mut calls = emu.call_count();
        while quiet < 50 {
            let _ = s.metric("lambda_invocations_in_flight").await;
            let now = emu.call_count();
            quiet = if now > 0 && emu.in_flight() == 0 && now == calls { quiet + 1 } else { 0 };
            calls = now;
        }
    };
    tokio::time::timeout(GUARD, stalled_now).await.expect("the unread batches stall holding their slots");
}

/// Another client's 200-row batch, sent while unread batches are open,
/// finishes within GUARD with every row translated.
async fn another_clients_batch_goes_through(s: &Server) {
    let inputs: Vec<String> = (0..200).map(molecule).collect();
    let r = s.client.post(s.url("/api/v1/translate/batch")).json(&json!({"inputs": inputs, "n_best": 1})).send();
    let text = tokio::time::timeout(GUARD, async { r.await.unwrap().text().await.unwrap() })
        .await
        .expect("another client's batch finishes while the unread ones are open");
    let summary: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!((summary["succeeded"].as_u64(), summary["failed"].as_u64()), (Some(200), Some(0)), "{summary}");
}

/// Waits until the gauge `metric` reads 0: nothing stays held.
async fn until_zero(s: &Server, metric: &str) {
    let released = async {
        while s.metric(metric).await > 0.0 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(GUARD, released).await.unwrap_or_else(|_| panic!("{metric} stays above 0"));
}

async fn stalled_batches(s: &Server, n: usize) -> Vec<TcpStream> {
    stalled_batches_from(s, n, |_| "192.0.2.1".to_string()).await
}

/// `stalled_batches`, the i-th saying it comes from `from(i)` (believed by a
/// server that trusts 127.0.0.1 as a proxy, ignored by others).
async fn stalled_batches_from(s: &Server, n: usize, from: impl Fn(usize) -> String) -> Vec<TcpStream> {
    let big: Vec<String> = (0..6000).map(molecule).collect();
    let body = serde_json::to_vec(&json!({"inputs": big, "beam": 10, "n_best": 10, "attention": true})).unwrap();
    let mut stalled = Vec::new();
    for i in 0..n {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut c = socket.connect(addr(s).parse().unwrap()).await.unwrap();
        let head = format!(
            "POST /api/v1/translate/batch HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            from(i),
            body.len()
        );
        c.write_all(head.as_bytes()).await.unwrap();
        c.write_all(&body).await.unwrap();
        stalled.push(c);
    }
    stalled
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_trickles_in_is_refused_with_408() {
    let s = server().env("BODY_READ_TIMEOUT", "1s").spawn();
    let mut c = TcpStream::connect(addr(&s)).await.unwrap();
    c.write_all(
        b"POST /api/v1/translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    .await
    .unwrap();
    let trickle = async {
        loop {
            if c.write_all(b" ").await.is_err() {
                return String::new();
            }
            let mut buf = [0u8; 512];
            if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(200), c.read(&mut buf)).await {
                return String::from_utf8_lossy(&buf[..n]).to_string();
            }
        }
    };
    let answer = tokio::time::timeout(GUARD, trickle).await.expect("the server answered");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_and_unread_answers_do_not_hold_the_process_after_sigterm() {
    // Long header and idle timeouts: it is the drain's hard end that must act
    // (after LAMBDA_TIMEOUT plus 5 s).
    let emu = Emulator::start(Behavior::default()).await;
    let mut s = server()
        .lambda(&emu)
        .env("HEADER_READ_TIMEOUT", "300s")
        .env("IDLE_TIMEOUT", "300s")
        .env("LAMBDA_TIMEOUT", "1s")
        .spawn();
    let mut half = TcpStream::connect(addr(&s)).await.unwrap();
    half.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-a: ").await.unwrap();
    let unread = stalled_batches(&s, 1).await;
    // The batch has started (its invocations reach the function).
    let started = async {
        while emu.call_count() == 0 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(GUARD, started).await.unwrap();
    s.signal("TERM");
    let (code, s) = tokio::task::spawn_blocking(move || (s.wait(GUARD), s)).await.unwrap();
    assert_eq!(code, Some(0), "the process exited after its drain");
    for l in s.log_lines() {
        eprintln!("LOG {l}");
    }
    // The half-sent request's socket was closed without an answer.
    assert!(until_closed(&mut half).await.is_empty());
    drop(unread);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_whose_clients_never_read_give_their_slots_back() {
    let emu = Emulator::start(Behavior { latency: Duration::from_millis(1), ..Default::default() }).await;
    let s = server()
        .lambda(&emu)
        // One invocation slot in the pod: whoever holds it blocks every batch.
        .env("MAX_INFLIGHT_INVOCATIONS", "1")
        .env("IDLE_TIMEOUT", "2s")
        .env("LAMBDA_BATCH_TIMEOUT", "6s")
        .spawn();
    let stalled = stalled_batches(&s, 2).await;
    until_stalled(&emu, &s).await;
    another_clients_batch_goes_through(&s).await;
    // And the stalled ones let go of what they held.
    until_zero(&s, "lambda_invocations_in_flight").await;
    // The unread batches were ended (their memory and task freed), not kept
    // waiting for a reader; the access log says how they ended.
    s.wait_for_log(|l| l.contains("batch ended early")).await;
    drop(stalled);
}

/// The same without the short idle bound: at its default (75 s) the unread
/// batches would hold the slot past GUARD; BATCH_WRITE_STALL stops each one
/// once its client has read nothing for that long, and the slot gauge shows
/// what was held (a slot handed to a chunk that never ran is in no flight).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_client_stops_reading_gives_its_slots_back_at_the_write_stall_bound() {
    let emu = Emulator::start(Behavior { latency: Duration::from_millis(1), ..Default::default() }).await;
    let s = server().lambda(&emu).env("MAX_INFLIGHT_INVOCATIONS", "1").env("BATCH_WRITE_STALL", "1s").spawn();
    let stalled = stalled_batches(&s, 3).await;
    until_stalled(&emu, &s).await;
    another_clients_batch_goes_through(&s).await;
    until_zero(&s, "lambda_invocation_slots_taken").await;
    s.wait_for_log(|l| l.contains("batch client stopped reading")).await;
    assert_eq!(s.metric("lambda_invocations_limit").await, 1.0);
    drop(stalled);
}

/// With every time bound far away (idle, write stall, the function's
/// timeout), unread batches must still not hold the pod's one invocation
/// slot: a batch starts a chunk only while its output has room, and a chunk
/// handed the slot uses it and gives it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_batches_hold_no_invocation_slot_while_they_wait_for_their_reader() {
    let emu = Emulator::start(Behavior { latency: Duration::from_millis(1), ..Default::default() }).await;
    let s = server()
        .lambda(&emu)
        .env("MAX_INFLIGHT_INVOCATIONS", "1")
        .env("IDLE_TIMEOUT", "300s")
        .env("BATCH_WRITE_STALL", "300s")
        .spawn();
    let stalled = stalled_batches(&s, 3).await;
    until_stalled(&emu, &s).await;
    until_zero(&s, "lambda_invocation_slots_taken").await;
    another_clients_batch_goes_through(&s).await;
    until_zero(&s, "lambda_invocation_slots_taken").await;
    // The unread batches are still open: no time bound ended them.
    assert!(s.log_lines().iter().all(|l| !l.contains("batch client stopped reading")));
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_runs_at_most_max_batches_per_client_at_once_and_gets_its_place_back() {
    let emu = Emulator::start(Behavior { latency: Duration::from_millis(1), ..Default::default() }).await;
    let s = server()
        .lambda(&emu)
        .env("MAX_BATCHES_PER_CLIENT", "2")
        .env("TRUSTED_PROXIES", "127.0.0.1/32")
        .env("BATCH_WRITE_STALL", "300s")
        .spawn();
    let stalled = stalled_batches_from(&s, 2, |_| "192.0.2.7".to_string()).await;
    until_stalled(&emu, &s).await;
    let third = || {
        s.client
            .post(s.url("/api/v1/translate/batch"))
            .header("x-forwarded-for", "192.0.2.7")
            .json(&json!({"inputs": ["CCO"], "n_best": 1}))
            .send()
    };
    let refused = third().await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("2 batches running"), "{body}");
    // Other clients are not counted against it.
    another_clients_batch_goes_through(&s).await;
    // The client leaves: its places are given back.
    drop(stalled);
    let accepted = async {
        while third().await.unwrap().status() != 200 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(GUARD, accepted).await.expect("the client may send batches again");
}

#[tokio::test]
async fn the_worst_allowed_request_answers_within_its_budget() {
    let s = server().env("INPUT_FORMAT", "text").spawn();
    let text = "C".repeat(2000);
    let r = s.client.post(s.url("/api/v1/translate"));
    let r = r.json(&json!({"text": text, "beam": 10, "n_best": 10, "attention": true})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.unwrap();
    assert!(body.len() < 1_000_000, "{} bytes", body.len());
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["attention_omitted"], true);
    let reason = json["attention_omitted_reason"].as_str().unwrap();
    assert!(reason.contains("more than the 100,000 this server sends"), "{reason}");
    assert!(json["predictions"][0].get("attention").is_none());
    // A long input whose every map would not fit, but whose first would: result
    // 1 has its map (asked for beside the answer), the others none.
    let long = "C".repeat(250);
    let r = s.translate(json!({"text": long, "beam": 5, "n_best": 5, "attention": true})).await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["attention_omitted"], true);
    let reason = r.json["attention_omitted_reason"].as_str().unwrap();
    assert!(reason.starts_with("only result 1 has attention: this answer has"), "{reason}");
    assert_eq!(
        r.json["predictions"][0]["attention"].as_array().map(Vec::len),
        Some(r.json["predictions"][0]["tokens"].as_array().unwrap().len())
    );
    assert!(r.json["predictions"][1].get("attention").is_none());
    // A request within the budget keeps its attention.
    let r = s.translate(json!({"text": "CCO", "n_best": 2})).await;
    assert!(r.json["predictions"][0]["attention"].is_array() && r.json.get("attention_omitted").is_none());
}

#[tokio::test]
async fn csv_cells_cannot_carry_spreadsheet_formulas() {
    let s = server().env("INPUT_FORMAT", "text").env("TOKENIZER", "none").spawn();
    let hostile = ["=cmd|' /C calc'!A0", "@SUM(A1)", "+1", "-1", "\tTAB"];
    let r = s.client.post(s.url("/api/v1/translate/batch?format=csv"));
    let csv = r.json(&json!({"inputs": hostile, "targets": hostile, "n_best": 1})).send().await.unwrap();
    let text = csv.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    for record in reader.records().map(Result::unwrap) {
        for field in [&record[1], &record[3], &record[6]] {
            assert!(!field.starts_with(['=', '+', '-', '@', '\t', '\r']), "{field:?} in {record:?}");
        }
        assert!(record[1].starts_with('\''), "{record:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_rate_is_told_to_wait_and_cannot_hide_behind_a_header() {
    let s = server().env("RATE_LIMIT", "1/m burst 3").spawn();
    let config = |xff: &str| s.client.get(s.url("/api/v1/config")).header("x-forwarded-for", xff.to_string()).send();
    for i in 0..3 {
        assert_eq!(config(&format!("198.51.100.{i}")).await.unwrap().status(), 200);
    }
    // New made-up addresses from the same peer change nothing.
    let r = config("203.0.113.99").await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(s.get("/healthz").await.status, 200, "health checks are never limited");
    assert_eq!(s.get("/readyz").await.status, 200);

    // Behind a trusted proxy each forwarded client has its own allowance.
    let proxied = server().env("RATE_LIMIT", "1/m burst 1").env("TRUSTED_PROXIES", "127.0.0.0/8").spawn();
    for i in 0..5 {
        let r = proxied.client.get(proxied.url("/api/v1/config")).header("x-forwarded-for", format!("198.51.100.{i}"));
        assert_eq!(r.send().await.unwrap().status(), 200, "client {i}");
    }
    let again = proxied.client.get(proxied.url("/api/v1/config")).header("x-forwarded-for", "198.51.100.0");
    assert_eq!(again.send().await.unwrap().status(), 429);
}

#[tokio::test]
async fn every_error_has_the_documented_shape_for_programs_and_a_page_for_browsers() {
    let s = server().spawn();
    // 405 with Allow, as JSON.
    let r = s.send(s.client.put(s.url("/api/v1/translate"))).await;
    assert_eq!((r.status.as_u16(), r.code()), (405, "method_not_allowed"));
    assert!(r.headers["allow"].to_str().unwrap().contains("POST"), "{:?}", r.headers);
    // An unknown asset and a duplicated query parameter, as JSON.
    let r = s.get("/static/nope.css").await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "not_found"));
    let r = s.get("/api/v1/depict?smiles=CCO&smiles=CO").await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_input"));
    // A browser on a wrong address gets a page, as it asks for it (gzip
    // welcome): not labelled as compressed when it is not.
    let page = s.client.get(s.url("/no/such/page")).header("accept", "text/html,*/*").header("accept-encoding", "gzip");
    let page = page.send().await.unwrap();
    assert_eq!(page.status(), 404);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(page.headers().get("content-encoding").is_none(), "{:?}", page.headers());
    assert!(page.text().await.unwrap().contains("<h1>Page not found</h1>"));
    // The form refuses what the API refuses.
    for (field, value) in [("beam", "-1"), ("beam", "abc"), ("beam", "1e9"), ("n_best", "99")] {
        let form = s.client.post(s.url("/")).form(&[("text", "CCO"), (field, value)]).send().await.unwrap();
        assert_eq!(form.status(), 400, "{field}={value}");
    }
    let bad_utf8 = s
        .client
        .post(s.url("/"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("text=%FF%FE")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_utf8.status(), 400);
    assert!(bad_utf8.text().await.unwrap().contains("not valid UTF-8"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_errors_never_show_the_account_or_role_to_clients() {
    let emu = Emulator::start(Behavior { fault: Fault::AccessDenied, ..Default::default() }).await;
    let s = server().lambda(&emu).spawn();
    let r = s.translate(json!({"text": "CCO"})).await;
    assert_eq!((r.status.as_u16(), r.code()), (502, "lambda_unavailable"));
    let shown = r.json.to_string();
    assert!(!shown.contains("123456789012") && !shown.contains("arn:"), "{shown}");
    let id = r.json["error"]["request_id"].as_str().unwrap().to_string();
    let logged = s.wait_for_log(|l| l.contains(&id)).await;
    assert!(logged.contains("AccessDenied") && logged.contains("123456789012"), "the log keeps it: {logged}");
    let page = s.client.post(s.url("/")).form(&[("text", "CCO")]).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("123456789012") && !page.contains(ACCESS_DENIED_MESSAGE));
}
