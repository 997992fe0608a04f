//! API keys and quotas (`API_KEYS_FILE`), as an operator sets them up and a
//! script meets them: keys made with `key new`, sent as a bearer token or an
//! `X-API-Key`, counted by name, a daily quota at its boundary, anonymous
//! callers refused or limited, and the file reloaded without a restart.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use crate::helpers::{Server, run, server};

/// The longest a test waits for the server to act on a changed file.
const GUARD: Duration = Duration::from_secs(20);

/// A new key and its entry, as an operator makes them.
fn new_key(name: &str) -> (String, String) {
    let out = run(&["key", "new", "--name", name], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let key = text.lines().next().unwrap().to_string();
    let entry = text.lines().skip_while(|l| !l.starts_with("[[key]]")).collect::<Vec<_>>().join("\n") + "\n";
    assert!(!entry.contains(&key), "the file's entry holds the key's hash, not the key");
    (key, entry)
}

fn keys_file(test: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("tf-keys-{}-{test}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

async fn translate_with(s: &Server, header: Option<(&str, String)>) -> crate::helpers::Reply {
    let mut request = s.client.post(s.url("/api/v1/translate")).json(&json!({"text": "CCO"}));
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    s.send(request).await
}

#[tokio::test]
async fn a_key_lets_its_script_in_by_either_header_and_everyone_else_is_told_how() {
    let (key, entry) = new_key("ci-script");
    let file = keys_file("in", &entry);
    let s = server().env("API_KEYS_FILE", file.to_str().unwrap()).env("ANONYMOUS_RATE", "0").spawn();

    let r = translate_with(&s, None).await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "unauthorized"), "{}", r.json);
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    assert!(r.json["error"]["message"].as_str().unwrap().contains("Authorization: Bearer KEY"));
    assert_eq!(s.get("/").await.status, 200, "pages still load");
    assert_eq!(s.get("/api/v1/config").await.status, 200);
    let doc = s.get("/api/v1/openapi.json").await.json;
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert_eq!(doc["paths"]["/api/v1/translate"]["post"]["security"], json!([{"bearer": []}, {"apiKey": []}]));

    let r = translate_with(&s, Some(("authorization", format!("Bearer {key}")))).await;
    assert_eq!(r.status, 200, "{}", r.json);
    let r = translate_with(&s, Some(("x-api-key", key.clone()))).await;
    assert_eq!(r.status, 200, "{}", r.json);
    let r = translate_with(&s, Some(("x-api-key", format!("{key}x")))).await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "unauthorized"), "a wrong key is refused");

    assert_eq!(s.metric(r#"api_key_requests_total{key="ci-script",outcome="accepted"}"#).await, 2.0);
    assert_eq!(s.metric(r#"api_key_inputs_total{key="ci-script"}"#).await, 2.0);
    assert_eq!(s.metric(r#"api_key_requests_total{key="unknown",outcome="unauthorized"}"#).await, 1.0);
    assert_eq!(s.metric(r#"api_key_requests_total{key="anonymous",outcome="unauthorized"}"#).await, 1.0);
    let line = s.wait_for_log(|l| l.contains(r#""key":"ci-script""#)).await;
    assert!(!line.contains(&key), "the log names the key, never shows it: {line}");
    let _ = std::fs::remove_file(file);
}

#[tokio::test]
async fn a_daily_quota_takes_inputs_up_to_its_limit_and_refuses_the_next_with_its_reset_time() {
    let (key, entry) = new_key("nightly");
    let file = keys_file("quota", &entry.replace("# daily_inputs = 10000", "daily_inputs = 4"));
    let s = server().env("API_KEYS_FILE", file.to_str().unwrap()).spawn();
    let with_key = |r: reqwest::RequestBuilder| r.header("x-api-key", key.clone());

    let batch = json!({"inputs": ["CCO", "CCN", "c1ccccc1"]});
    let r = s.send(with_key(s.client.post(s.url("/api/v1/translate/batch"))).json(&batch)).await;
    assert_eq!(r.status, 200, "3 of 4");
    let r = translate_with(&s, Some(("x-api-key", key.clone()))).await;
    assert_eq!(r.status, 200, "the 4th input, the last of the day: {}", r.json);
    let r = translate_with(&s, Some(("x-api-key", key.clone()))).await;
    assert_eq!((r.status.as_u16(), r.code()), (429, "quota_exceeded"), "{}", r.json);
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&wait), "until midnight UTC: {wait}");
    let message = r.json["error"]["message"].as_str().unwrap();
    assert!(message.contains("daily quota is 4 inputs and 4 are used today"), "{message}");
    assert!(message.contains("T00:00:00Z (00:00 UTC)"), "{message}");
    let r = s.send(with_key(s.client.post(s.url("/api/v1/translate/batch"))).json(&json!({"inputs": ["C"]}))).await;
    assert_eq!((r.status.as_u16(), r.code()), (429, "quota_exceeded"), "a batch is refused before it runs");
    assert_eq!(s.metric(r#"api_key_inputs_total{key="nightly"}"#).await, 4.0);
    assert_eq!(s.metric(r#"api_key_requests_total{key="nightly",outcome="quota_exceeded"}"#).await, 2.0);
    let _ = std::fs::remove_file(file);
}

#[tokio::test]
async fn callers_without_a_key_get_the_anonymous_rate_per_client() {
    let (key, entry) = new_key("script");
    let file = keys_file("anon", &entry);
    let s = server().env("API_KEYS_FILE", file.to_str().unwrap()).env("ANONYMOUS_RATE", "1/h burst 2").spawn();
    assert_eq!(translate_with(&s, None).await.status, 200);
    assert_eq!(translate_with(&s, None).await.status, 200);
    let r = translate_with(&s, None).await;
    assert_eq!((r.status.as_u16(), r.code()), (429, "rate_limited"), "{}", r.json);
    assert!(r.headers.contains_key("retry-after"));
    assert_eq!(translate_with(&s, Some(("x-api-key", key))).await.status, 200, "a key is not anonymous");
    let _ = std::fs::remove_file(file);
}

/// Waits until the server has looked at the changed file (it looks every few
/// seconds), as its counter of reloads says.
async fn reloads(s: &Server, outcome: &str) {
    let sample = format!(r#"api_keys_reloads_total{{outcome="{outcome}"}}"#);
    let seen = async {
        while s.metric(&sample).await < 1.0 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(GUARD, seen).await.expect("the changed file is read");
}

#[tokio::test]
async fn a_changed_keys_file_is_in_force_without_a_restart_and_a_removed_key_stops_working() {
    let (old, old_entry) = new_key("old");
    let (new, new_entry) = new_key("new");
    let file = keys_file("reload", &old_entry);
    let s = server().env("API_KEYS_FILE", file.to_str().unwrap()).env("ANONYMOUS_RATE", "0").spawn();
    assert_eq!(translate_with(&s, Some(("x-api-key", old.clone()))).await.status, 200);
    assert_eq!(translate_with(&s, Some(("x-api-key", new.clone()))).await.status, 401);

    std::fs::write(&file, &new_entry).unwrap();
    reloads(&s, "ok").await;
    assert_eq!(translate_with(&s, Some(("x-api-key", new.clone()))).await.status, 200, "the new key works");
    assert_eq!(translate_with(&s, Some(("x-api-key", old))).await.status, 401, "revoked");

    std::fs::write(&file, "[[key]]\nname = \"broken\"\n").unwrap();
    reloads(&s, "failed").await;
    assert_eq!(translate_with(&s, Some(("x-api-key", new))).await.status, 200, "a broken file changes nothing");
    let _ = std::fs::remove_file(file);
}

#[test]
fn a_keys_file_that_does_not_read_stops_the_server_at_start_with_one_line() {
    let file = keys_file("bad", "[[key]]\nname = \"ci\"\nsha256 = \"not-a-hash\"\n");
    let out = run(&["healthcheck"], &[("API_KEYS_FILE", file.to_str().unwrap())]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("API_KEYS_FILE") && stderr.contains("sha256 must be 64 hex digits"), "{stderr}");
    let out = run(&["healthcheck"], &[("ANONYMOUS_RATE", "0")]);
    assert_eq!(out.status.code(), Some(2), "ANONYMOUS_RATE alone is a mistake");
    let _ = std::fs::remove_file(file);
}
