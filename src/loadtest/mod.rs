//! `translation-front loadtest`: an open-loop load generator.
//!
//! Requests leave on the schedule's clock, whether or not earlier ones have
//! returned, and latency counts from the *intended* send time, so a stalled
//! server shows in the percentiles instead of slowing the test down
//! (no coordinated omission). At most `--max-inflight` requests are open; one
//! due past that cap is counted as not sent on time.

mod args;
mod client;
pub mod molecules;
pub mod report;
pub mod schedule;
pub mod series;
pub mod threshold;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::connect::capture_connection;
use tokio::time::Instant;

pub use args::{LoadMode, LoadtestArgs};
use client::HttpClient;
use report::{Capacity, Report};
use schedule::Schedule;
use series::Sample;
use threshold::{Figures, Threshold};

/// Everything measured so far; shared by the request tasks.
struct Tally {
    /// Every request that ended, and the successful ones; latency in µs.
    all: hdrhistogram::Histogram<u64>,
    ok: hdrhistogram::Histogram<u64>,
    completed: u64,
    errors: BTreeMap<String, u64>,
    /// The same for the current second (`series`), reset every second.
    tick_all: hdrhistogram::Histogram<u64>,
    tick_completed: u64,
    tick_errors: BTreeMap<String, u64>,
    drawings: report::Drawings,
    drawings_latency: hdrhistogram::Histogram<u64>,
}

impl Tally {
    fn new() -> Self {
        Tally {
            all: report::histogram(),
            ok: report::histogram(),
            completed: 0,
            errors: BTreeMap::new(),
            tick_all: report::histogram(),
            tick_completed: 0,
            tick_errors: BTreeMap::new(),
            drawings: report::Drawings::default(),
            drawings_latency: report::histogram(),
        }
    }

    fn ended(&mut self, latency_us: u64, error: Option<String>) {
        let us = latency_us.max(1);
        let _ = self.all.record(us);
        let _ = self.tick_all.record(us);
        match error {
            None => {
                let _ = self.ok.record(us);
                self.completed += 1;
                self.tick_completed += 1;
            }
            Some(kind) => {
                *self.tick_errors.entry(kind.clone()).or_default() += 1;
                *self.errors.entry(kind).or_default() += 1;
            }
        }
    }
}

struct Shared {
    tally: Mutex<Tally>,
    in_flight: AtomicUsize,
    sent: AtomicU64,
    not_sent: AtomicU64,
}

/// The inputs requests carry in turn.
enum Inputs {
    /// A different valid molecule every time (`molecules`).
    Generated,
    Lines(Vec<String>),
}

impl Inputs {
    fn get(&self, k: u64) -> String {
        match self {
            Inputs::Generated => molecules::molecule(k),
            Inputs::Lines(lines) => lines[(k % lines.len() as u64) as usize].clone(),
        }
    }
}

/// What one request sends.
struct Template {
    method: Method,
    uri: String,
    base: String,
    mode: LoadMode,
    /// The request body's fields besides the input(s).
    fields: serde_json::Map<String, serde_json::Value>,
    inputs: Inputs,
    first_input: u64,
    batch_size: usize,
    /// Without it, requests carry `Cache-Control: no-cache`.
    use_cache: bool,
    depict: bool,
    max_requests_per_connection: usize,
}

impl Template {
    /// The `k`-th request's body.
    fn body(&self, k: u64) -> Bytes {
        let first = self.first_input;
        let mut body = self.fields.clone();
        match self.mode {
            LoadMode::Page => return Bytes::new(),
            LoadMode::Translate => {
                body.insert("text".into(), self.inputs.get(first + k).into());
            }
            LoadMode::Batch => {
                let n = self.batch_size.max(1) as u64;
                let batch: Vec<String> = (0..n).map(|i| self.inputs.get(first + k * n + i)).collect();
                body.insert("inputs".into(), batch.into());
            }
        }
        Bytes::from(serde_json::to_vec(&body).expect("JSON"))
    }
}

fn template(args: &LoadtestArgs, inputs: Inputs) -> Template {
    let base = args.url.trim_end_matches('/').to_string();
    let mut fields = serde_json::Map::new();
    if let Some(b) = args.beam {
        fields.insert("beam".into(), b.into());
    }
    if let Some(n) = args.n_best {
        fields.insert("n_best".into(), n.into());
    }
    fields.insert("attention".into(), (args.attention && !args.no_attention).into());
    let (method, uri) = match args.mode {
        LoadMode::Translate => (Method::POST, format!("{base}/api/v1/translate")),
        LoadMode::Batch => (Method::POST, format!("{base}/api/v1/translate/batch")),
        LoadMode::Page => (Method::GET, format!("{base}{}", args.path)),
    };
    Template {
        method,
        uri,
        base,
        mode: args.mode,
        fields,
        inputs,
        first_input: args.first_input,
        batch_size: args.batch_size,
        use_cache: args.use_cache,
        depict: args.depict && args.mode == LoadMode::Translate,
        max_requests_per_connection: args.max_requests_per_connection,
    }
}

/// Sends one request, counting it on its connection; the status and body.
async fn send(
    client: &HttpClient,
    t: &Template,
    method: Method,
    uri: &str,
    body: Bytes,
) -> Result<(hyper::StatusCode, Bytes), String> {
    let mut request = Request::builder().method(method).uri(uri);
    if !body.is_empty() {
        request = request.header("content-type", "application/json");
    }
    if !t.use_cache {
        request = request.header("cache-control", "no-cache");
    }
    let mut request = request.body(Full::new(body)).map_err(|_| "request".to_string())?;
    let captured = capture_connection(&mut request);
    let response = client.request(request).await.map_err(|_| "connection".to_string())?;
    client::count_use(&captured, t.max_requests_per_connection);
    let status = response.status();
    let body = response.into_body().collect().await.map_err(|_| "connection".to_string())?.to_bytes();
    Ok((status, body))
}

/// What a failed response counts as: its status and error code.
fn error_kind(status: hyper::StatusCode, body: &[u8]) -> String {
    let code = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(String::from))
        .unwrap_or_default();
    format!("{} {code}", status.as_u16()).trim().to_string()
}

/// Sends the `k`-th request and records its outcome against its intended
/// time: a success, an error response, a connection error or a timeout, each
/// at the latency it took.
async fn fire(client: HttpClient, shared: Arc<Shared>, t: Arc<Template>, k: u64, intended: Instant, timeout: Duration) {
    let outcome = tokio::time::timeout(timeout, send(&client, &t, t.method.clone(), &t.uri, t.body(k))).await;
    let latency_us = intended.elapsed().as_micros() as u64;
    let (error, body) = match outcome {
        Ok(Ok((status, body))) if status.is_success() => (None, Some(body)),
        Ok(Ok((status, body))) => (Some(error_kind(status, &body)), None),
        Ok(Err(kind)) => (Some(kind), None),
        Err(_) => (Some("timeout".to_string()), None),
    };
    shared.tally.lock().expect("tally lock").ended(latency_us, error);
    if let (true, Some(body)) = (t.depict, body) {
        drawings(&client, &shared, &t, &body, timeout).await;
    }
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
}

/// The page's drawings of a translation: its input as read and each valid
/// prediction, fetched at once as a browser does.
async fn drawings(client: &HttpClient, shared: &Shared, t: &Template, body: &[u8], timeout: Duration) {
    let Ok(view) = serde_json::from_slice::<serde_json::Value>(body) else { return };
    let smiles: Vec<String> = std::iter::once(&view["canonical"])
        .chain(view["predictions"].as_array().into_iter().flatten().map(|p| &p["canonical"]))
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    let fetches = smiles.into_iter().map(|s| async move {
        let uri = format!("{}/api/v1/depict?smiles={}", t.base, escape(&s));
        let started = Instant::now();
        let outcome = tokio::time::timeout(timeout, send(client, t, Method::GET, &uri, Bytes::new())).await;
        let error = match outcome {
            Ok(Ok((status, _))) if status.is_success() => None,
            Ok(Ok((status, body))) => Some(error_kind(status, &body)),
            Ok(Err(kind)) => Some(kind),
            Err(_) => Some("timeout".to_string()),
        };
        let mut tally = shared.tally.lock().expect("tally lock");
        tally.drawings.requests += 1;
        match error {
            None => {
                tally.drawings.ok += 1;
                let _ = tally.drawings_latency.record((started.elapsed().as_micros() as u64).max(1));
            }
            Some(kind) => *tally.drawings.errors_by_kind.entry(kind).or_default() += 1,
        }
    });
    futures_util::future::join_all(fetches).await;
}

/// A query value, percent-encoded.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

async fn scrape_cpu(client: &HttpClient, url: &str) -> Result<f64, String> {
    let request = Request::get(url).body(Full::new(Bytes::new())).map_err(|e| format!("--metrics-url: {e}"))?;
    let response = tokio::time::timeout(Duration::from_secs(5), client.request(request))
        .await
        .map_err(|_| format!("{url} did not answer"))?
        .map_err(|e| format!("cannot read {url}: {e}"))?;
    let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    report::cpu_seconds(&String::from_utf8_lossy(&body))
        .ok_or_else(|| format!("{url} has no process_cpu_seconds_total"))
}

/// Every pod behind `url`: its host resolved to all its addresses (a headless
/// Service resolves to every ready pod), each scraped; CPU seconds by address.
async fn scrape_fleet(client: &HttpClient, url: &str) -> Result<BTreeMap<std::net::SocketAddr, f64>, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("--metrics-url {url}: {e}"))?;
    let host = uri.host().ok_or_else(|| format!("--metrics-url {url} has no host"))?;
    let port = uri.port_u16().unwrap_or(80);
    let path = uri.path_and_query().map_or("/metrics", |p| p.as_str());
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| format!("--metrics-url: cannot resolve {host}: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("--metrics-url: {host} resolves to no address"));
    }
    let mut fleet = BTreeMap::new();
    for addr in addrs {
        fleet.insert(addr, scrape_cpu(client, &format!("http://{addr}{path}")).await?);
    }
    Ok(fleet)
}

/// CPU spent by the fleet between two scrapes: each pod's increase; a pod
/// first seen at the end started during the test, so all of its CPU counts.
/// Pods gone by the end are reported apart (their CPU after the start is lost).
fn fleet_cpu(
    before: &BTreeMap<std::net::SocketAddr, f64>,
    after: &BTreeMap<std::net::SocketAddr, f64>,
) -> (f64, usize) {
    let cpu = after.iter().map(|(addr, a)| a - before.get(addr).copied().unwrap_or(0.0)).sum();
    let gone = before.keys().filter(|k| !after.contains_key(*k)).count();
    (cpu, gone)
}

fn fail(message: String) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

/// What `--metrics-url` showed last: pods that answered and the cores they
/// used since the scrape before.
#[derive(Default, Clone, Copy)]
struct Fleet {
    replicas: Option<usize>,
    cores: Option<f64>,
}

/// Scrapes the fleet every two seconds for the time series.
async fn watch_fleet(client: HttpClient, url: String, fleet: Arc<Mutex<Fleet>>) {
    let mut last: Option<(Instant, BTreeMap<std::net::SocketAddr, f64>)> = None;
    loop {
        let now = Instant::now();
        let seen = scrape_fleet(&client, &url).await.ok();
        let cores = match (&last, &seen) {
            (Some((then, before)), Some(after)) => {
                // Pods present at both scrapes; a new pod's CPU so far is not this interval's.
                let cpu: f64 = after.iter().filter_map(|(a, v)| before.get(a).map(|b| v - b)).sum();
                Some((cpu / (now - *then).as_secs_f64() * 1000.0).round() / 1000.0)
            }
            _ => None,
        };
        *fleet.lock().expect("fleet lock") = Fleet { replicas: seen.as_ref().map(BTreeMap::len), cores };
        if let Some(seen) = seen {
            last = Some((now, seen));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The figures thresholds are judged on, from the tally so far.
fn figures(shared: &Shared, tally: &Tally, achieved_rate: f64, target_rate: f64) -> Figures {
    let table = |h: &hdrhistogram::Histogram<u64>| -> Vec<(f64, f64)> {
        if h.is_empty() {
            return Vec::new();
        }
        threshold::QUANTILES.iter().map(|(_, q)| (*q, report::ms_at(h, *q))).collect()
    };
    let not_sent = shared.not_sent.load(Ordering::SeqCst);
    Figures {
        latency_all: table(&tally.all),
        latency_ok: table(&tally.ok),
        scheduled: shared.sent.load(Ordering::SeqCst) + not_sent,
        failed: tally.errors.values().sum::<u64>() + not_sent,
        achieved_rate,
        target_rate,
    }
}

pub async fn run(args: LoadtestArgs) -> ExitCode {
    if !(args.url.starts_with("http://") || args.url.starts_with("https://")) {
        return fail(format!("--url {}: give an http:// or https:// URL", args.url));
    }
    let schedule = match (&args.stages, args.rate) {
        (Some(stages), _) => Schedule::stages(stages),
        (None, Some(rate)) => Schedule::constant(rate, args.duration),
        (None, None) => Err("give --rate (with --duration) or --stages".into()),
    };
    let schedule = match schedule {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let cpu_request = match report::parse_cpu(&args.cpu_request) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let thresholds: Vec<Threshold> = match args.thresholds.iter().map(|t| Threshold::parse(t)).collect() {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let inputs = match &args.inputs {
        None => Inputs::Generated,
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => {
                Inputs::Lines(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect())
            }
            Err(e) => return fail(format!("--inputs {}: {e}", path.display())),
        },
    };
    if matches!(&inputs, Inputs::Lines(l) if l.is_empty()) {
        return fail("--inputs has no lines".into());
    }
    let mut out = match args.out.as_deref().map(series::Writer::create).transpose() {
        Ok(w) => w,
        Err(e) => return fail(e),
    };
    let template = Arc::new(template(&args, inputs));
    let client = match client::build(args.ca_cert.as_deref(), args.max_inflight) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let cpu_before = match &args.metrics_url {
        Some(url) => match scrape_fleet(&client, url).await {
            Ok(v) => Some(v),
            Err(e) => return fail(e),
        },
        None => None,
    };
    let fleet = Arc::new(Mutex::new(Fleet::default()));
    let watcher = args.metrics_url.clone().map(|url| tokio::spawn(watch_fleet(client.clone(), url, fleet.clone())));

    let shared = Arc::new(Shared {
        tally: Mutex::new(Tally::new()),
        in_flight: AtomicUsize::new(0),
        sent: AtomicU64::new(0),
        not_sent: AtomicU64::new(0),
    });
    let mean_rate = schedule.expected() as f64 / schedule.total().as_secs_f64();
    let start = Instant::now();
    let abort = Arc::new(tokio::sync::Notify::new());
    let (stop_ticks, ticks_stopped) = tokio::sync::oneshot::channel::<()>();
    let (samples_tx, mut samples_rx) = tokio::sync::mpsc::unbounded_channel::<Sample>();
    let ticker = tokio::spawn(tick(Tick {
        shared: shared.clone(),
        schedule: schedule.clone(),
        start,
        quiet: args.quiet,
        fleet: fleet.clone(),
        samples: samples_tx,
        early: if args.abort_on_fail {
            thresholds.iter().filter(|t| t.judged_early()).cloned().collect()
        } else {
            vec![]
        },
        abort: abort.clone(),
        mean_rate,
        stop: ticks_stopped,
    }));
    let writer = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Some(sample) = samples_rx.recv().await {
            if let Some(w) = &mut out
                && let Err(e) = w.write(&sample)
            {
                eprintln!("warning: {e}");
                out = None;
            }
            all.push(sample);
        }
        all
    });
    let (interrupted, aborted) = tokio::select! {
        _ = schedule_requests(&args, &schedule, &client, &shared, &template, start) => (false, false),
        _ = tokio::signal::ctrl_c() => (true, false),
        _ = abort.notified() => (false, true),
    };
    // Let requests in flight finish (all are bounded by --timeout); after
    // Ctrl-C or an abort, report what there is after a short wait.
    let drain = if interrupted || aborted { Duration::from_secs(2) } else { args.timeout + Duration::from_secs(1) };
    let drained = Instant::now() + drain;
    while shared.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < drained {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = start.elapsed();
    // The ticker writes the last, partial second and stops.
    let _ = stop_ticks.send(());
    let _ = ticker.await;
    if let Some(w) = watcher {
        w.abort();
    }
    let samples = writer.await.unwrap_or_default();
    let cpu_after = match &args.metrics_url {
        Some(url) => scrape_fleet(&client, url).await.ok(),
        None => None,
    };

    let tally = shared.tally.lock().expect("tally lock");
    let sent = shared.sent.load(Ordering::SeqCst);
    let not_sent = shared.not_sent.load(Ordering::SeqCst);
    let unfinished = shared.in_flight.load(Ordering::SeqCst) as u64;
    let mut errors_by_kind = tally.errors.clone();
    if unfinished > 0 {
        errors_by_kind.insert("unfinished".into(), unfinished);
    }
    let errors: u64 = errors_by_kind.values().sum();
    let duration_s = report::seconds(elapsed);
    let achieved_rate = tally.completed as f64 / elapsed.as_secs_f64();
    let peak =
        (0..=1000).map(|i| schedule.rate_at(schedule.total().as_secs_f64() * i as f64 / 1000.0)).fold(0.0, f64::max);
    let capacity = match (cpu_before, cpu_after) {
        (Some(before), Some(after)) if tally.completed > 0 => {
            let (cpu, gone) = fleet_cpu(&before, &after);
            let per_request = cpu / tally.completed as f64;
            let target = args.target_utilization / 100.0;
            let rates = [achieved_rate, peak];
            Some(Capacity {
                cpu_seconds: (cpu * 1000.0).round() / 1000.0,
                cpu_us_per_request: (per_request * 1e7).round() / 10.0,
                cpu_request_cores: cpu_request,
                target_utilization_percent: args.target_utilization,
                pods_at_start: before.len(),
                pods_at_end: after.len(),
                pods_gone: gone,
                replicas_at: rates
                    .iter()
                    .map(|r| ((r * 10.0).round() / 10.0, report::replicas(*r, per_request, cpu_request, target)))
                    .collect(),
            })
        }
        _ => None,
    };
    // Unfinished requests count as failures for the thresholds too.
    let mut judged = figures(&shared, &tally, achieved_rate, mean_rate);
    judged.failed += unfinished;
    let verdicts: Vec<threshold::Verdict> = thresholds.iter().map(|t| t.check(&judged)).collect();
    let passed = verdicts.iter().all(|v| v.passed);
    let drawings = template.depict.then(|| {
        let mut d = tally.drawings.clone();
        d.latency = (!tally.drawings_latency.is_empty()).then(|| report::latency(&tally.drawings_latency));
        d
    });
    let report = Report {
        mode: format!("{:?}", args.mode).to_lowercase(),
        duration_s,
        scheduled: sent + not_sent,
        sent,
        completed: tally.completed,
        errors,
        not_sent,
        errors_by_kind,
        target_rate: (mean_rate * 10.0).round() / 10.0,
        achieved_rate: (achieved_rate * 10.0).round() / 10.0,
        latency: report::latency(&tally.all),
        latency_ok: (!tally.ok.is_empty()).then(|| report::latency(&tally.ok)),
        drawings,
        capacity,
        thresholds: verdicts,
        aborted,
        passed,
    };
    drop(tally);
    if args.json {
        // One line: after --out /dev/stdout's lines, the last line is the report.
        println!("{}", serde_json::to_string(&report).expect("JSON"));
    } else {
        print!("{report}");
    }
    if let Some(path) = &args.plot {
        let title = format!(
            "{} {}: {} requests, {} ok, {} errors",
            args.url, report.mode, report.scheduled, report.completed, report.errors
        );
        if let Err(e) = series::plot(path, &samples, &title) {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    }
    if passed { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// Sends the requests on the schedule. The clock runs on its own OS thread:
/// the async timer wheel has millisecond granularity, which would add up to a
/// millisecond of our own lag to every latency measured from the intended time.
async fn schedule_requests(
    args: &LoadtestArgs,
    schedule: &Schedule,
    client: &HttpClient,
    shared: &Arc<Shared>,
    template: &Arc<Template>,
    start: Instant,
) {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let stop = Arc::new(AtomicBool::new(false));
    let handle = tokio::runtime::Handle::current();
    let (schedule, client, shared, template) = (schedule.clone(), client.clone(), shared.clone(), template.clone());
    let (max_inflight, timeout, stopped) = (args.max_inflight, args.timeout, stop.clone());
    let start_std = start.into_std();
    std::thread::spawn(move || {
        let mut k: u64 = 1;
        while let Some(at) = schedule.arrival(k) {
            let intended = start_std + Duration::from_secs_f64(at);
            loop {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let now = std::time::Instant::now();
                if now >= intended {
                    break;
                }
                std::thread::sleep((intended - now).min(Duration::from_millis(50)));
            }
            if shared.in_flight.load(Ordering::SeqCst) >= max_inflight {
                shared.not_sent.fetch_add(1, Ordering::SeqCst);
            } else {
                shared.in_flight.fetch_add(1, Ordering::SeqCst);
                shared.sent.fetch_add(1, Ordering::SeqCst);
                let intended = Instant::from_std(intended);
                handle.spawn(fire(client.clone(), shared.clone(), template.clone(), k - 1, intended, timeout));
            }
            k += 1;
        }
        let _ = done_tx.send(());
    });
    // Dropped when the run stops early: the clock thread sees the flag and stops.
    struct Stop(Arc<AtomicBool>);
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let _stop = Stop(stop);
    let _ = done_rx.await;
}

struct Tick {
    shared: Arc<Shared>,
    schedule: Schedule,
    start: Instant,
    quiet: bool,
    fleet: Arc<Mutex<Fleet>>,
    samples: tokio::sync::mpsc::UnboundedSender<Sample>,
    /// Thresholds judged every second (--abort-on-fail).
    early: Vec<Threshold>,
    abort: Arc<tokio::sync::Notify>,
    mean_rate: f64,
    /// The run has ended: one last sample for the time since the last tick.
    stop: tokio::sync::oneshot::Receiver<()>,
}

/// Requests that must have ended before --abort-on-fail judges a run.
const JUDGED_AFTER: u64 = 100;

/// Every second: one sample of the time series, a progress line on stderr,
/// and with --abort-on-fail the early thresholds.
async fn tick(mut t: Tick) {
    let mut interval = tokio::time::interval_at(t.start + Duration::from_secs(1), Duration::from_secs(1));
    let mut last_sent = 0;
    let mut aborted = false;
    let mut last_t = 0.0;
    loop {
        let last = tokio::select! {
            _ = interval.tick() => false,
            _ = &mut t.stop => true,
        };
        let now = t.start.elapsed().as_secs_f64();
        let sent = t.shared.sent.load(Ordering::SeqCst);
        let fleet = *t.fleet.lock().expect("fleet lock");
        let (sample, failing) = {
            let mut tally = t.shared.tally.lock().expect("tally lock");
            let (p50_ms, p99_ms) = match tally.tick_all.is_empty() {
                true => (None, None),
                false => (Some(report::ms_at(&tally.tick_all, 0.5)), Some(report::ms_at(&tally.tick_all, 0.99))),
            };
            let sample = Sample {
                t: if last { (now * 10.0).round() / 10.0 } else { now.round() },
                target_rate: (t.schedule.rate_at(now - 0.5) * 10.0).round() / 10.0,
                sent: sent - last_sent,
                completed: tally.tick_completed,
                errors: tally.tick_errors.values().sum(),
                errors_by_kind: std::mem::take(&mut tally.tick_errors),
                p50_ms,
                p99_ms,
                in_flight: t.shared.in_flight.load(Ordering::SeqCst),
                replicas: fleet.replicas,
                fleet_cpu_cores: fleet.cores,
            };
            tally.tick_all.reset();
            tally.tick_completed = 0;
            let ended = tally.all.len();
            let failing: Vec<threshold::Verdict> = if ended >= JUDGED_AFTER && !t.early.is_empty() {
                let f = figures(&t.shared, &tally, tally.completed as f64 / now, t.mean_rate);
                t.early.iter().map(|th| th.check(&f)).filter(|v| !v.passed).collect()
            } else {
                Vec::new()
            };
            (sample, failing)
        };
        last_sent = sent;
        let idle = sample.sent == 0 && sample.completed == 0 && sample.errors == 0;
        if last && idle && now - last_t < 0.05 {
            return; // the run ended on a tick: nothing since it
        }
        last_t = now;
        if !t.quiet {
            let ms = |v: Option<f64>| v.map_or("      -".to_string(), |v| format!("{v:7.1}"));
            eprintln!(
                "{:6.0}s  target {:7.1}/s  sent {:6}  ok {:6}  errors {:5}  in flight {:5}  p50 {} ms  p99 {} ms{}",
                sample.t,
                sample.target_rate,
                sample.sent,
                sample.completed,
                sample.errors,
                sample.in_flight,
                ms(sample.p50_ms),
                ms(sample.p99_ms),
                sample.replicas.map_or(String::new(), |r| format!("  replicas {r}")),
            );
        }
        let _ = t.samples.send(sample);
        if last {
            return;
        }
        if let (false, Some(v)) = (aborted, failing.first()) {
            eprintln!("aborting: {v}");
            t.abort.notify_one();
            aborted = true;
        }
    }
}
