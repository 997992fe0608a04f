#![allow(dead_code)]

//! Spawning the real binary on 127.0.0.1:0, configured through the environment
//! the way users configure it, and talking to it over HTTP.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::emulator::Emulator;

pub const BIN: &str = env!("CARGO_BIN_EXE_translation-front");

pub struct Server {
    child: Child,
    pub base: String,
    pub metrics_base: String,
    pub logs: Arc<Mutex<Vec<String>>>,
    pub client: reqwest::Client,
}

#[derive(Default)]
pub struct ServerBuilder {
    env: Vec<(String, String)>,
}

/// A server with the demo backend unless told otherwise.
pub fn server() -> ServerBuilder {
    ServerBuilder::default()
}

/// The environment every test server starts from: loopback listeners, JSON logs,
/// a region, fake credentials and no EC2 metadata probing.
pub fn base_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("LISTEN_ADDR", "127.0.0.1:0"),
        ("METRICS_ADDR", "127.0.0.1:0"),
        ("LOG_FORMAT", "json"),
        ("SHUTDOWN_GRACE", "0s"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "AKIDEMULATOR"),
        ("AWS_SECRET_ACCESS_KEY", "emulator-secret"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
}

impl ServerBuilder {
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn without(mut self, key: &str) -> Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), String::new()));
        self
    }

    /// Points the server at the emulator through `AWS_ENDPOINT_URL_LAMBDA`.
    pub fn lambda(self, emulator: &Emulator) -> Self {
        self.env("TRANSLATION_FUNCTION", "translation").env("AWS_ENDPOINT_URL_LAMBDA", &emulator.url())
    }

    pub fn spawn(self) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in base_env() {
            cmd.env(k, v);
        }
        for (k, v) in &self.env {
            if v.is_empty() {
                cmd.env_remove(k);
            } else {
                cmd.env(k, v);
            }
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn translation-front");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && let (Some(addr), Some(metrics)) = (v["addr"].as_str(), v["metrics_addr"].as_str())
                {
                    let _ = tx.send((addr.to_string(), metrics.to_string()));
                }
                sink.lock().unwrap().push(line);
            }
        });
        let stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(format!("stderr: {line}"));
            }
        });
        let (addr, metrics_addr) = rx.recv_timeout(Duration::from_secs(15)).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("server did not report its address; output: {:?}", logs.lock().unwrap());
        });
        Server {
            child,
            base: format!("http://{addr}"),
            metrics_base: format!("http://{metrics_addr}"),
            logs,
            client: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
        }
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let r = request.send().await.expect("request reaches the server");
        let status = r.status();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.unwrap();
        let json =
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        Reply { status, headers, json }
    }

    pub async fn translate(&self, body: Value) -> Reply {
        self.send(self.client.post(self.url("/api/v1/translate")).json(&body)).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.client.get(self.url(path))).await
    }

    pub async fn metrics(&self) -> String {
        self.client.get(format!("{}/metrics", self.metrics_base)).send().await.unwrap().text().await.unwrap()
    }

    /// The value of one sample line of `/metrics`, 0 when absent.
    pub async fn metric(&self, sample: &str) -> f64 {
        let text = self.metrics().await;
        text.lines().find_map(|l| l.strip_prefix(sample).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0.0)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill").args([&format!("-{signal}"), &self.pid().to_string()]).status().unwrap();
        assert!(ok.success());
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let start = std::time::Instant::now();
        while start.elapsed() < timeout {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Posts a JSON batch to `/api/v1/translate/batch{query}` and reads the
    /// whole streamed answer.
    pub async fn batch_text(&self, query: &str, body: Value) -> String {
        let url = self.url(&format!("/api/v1/translate/batch{query}"));
        self.client.post(url).json(&body).send().await.unwrap().text().await.unwrap()
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// The first log line matching `found`, waiting for the server's batched
    /// access log to write it (at most 10 s).
    pub async fn wait_for_log(&self, found: impl Fn(&str) -> bool) -> String {
        let wait = async {
            loop {
                if let Some(line) = self.log_lines().into_iter().find(|l| found(l)) {
                    return line;
                }
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait).await.expect("the log line was written")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary to completion with `args` and extra environment.
pub fn run(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in base_env().into_iter().chain(env.iter().copied()) {
        cmd.env(k, v);
    }
    cmd.args(args).output().expect("run translation-front")
}

impl Server {
    pub async fn backend_is_lambda(&self) -> bool {
        self.get("/api/v1/config").await.json["backend"] == "lambda"
    }
}

/// The `i`-th of a family of distinct molecules, in RDKit's canonical form (so
/// the model sees it as written): methanol with a carbon isotope label `i + 1`.
pub fn molecule(i: usize) -> String {
    translation_front::chem::prepare(&format!("[{}CH3]O", i + 1)).expect("a valid molecule")
}
