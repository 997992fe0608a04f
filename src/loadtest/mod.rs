//! `translation-front loadtest`: an open-loop load generator.
//!
//! Requests leave on the schedule's clock, whether or not earlier ones have
//! returned, and latency counts from the *intended* send time, so a stalled
//! server shows in the percentiles instead of slowing the test down
//! (no coordinated omission). At most `--max-inflight` requests are open; one
//! due past that cap is counted as not sent on time.

mod args;
pub mod molecules;
pub mod report;
pub mod schedule;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

use crate::config::BUILTIN_EXAMPLES;
pub use args::{LoadMode, LoadtestArgs};
use report::{Capacity, Report};
use schedule::Schedule;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Everything measured so far; shared by the request tasks.
struct Tally {
    histogram: hdrhistogram::Histogram<u64>,
    completed: u64,
    errors: BTreeMap<String, u64>,
}

struct Shared {
    tally: Mutex<Tally>,
    in_flight: AtomicUsize,
    sent: AtomicU64,
    not_sent: AtomicU64,
}

/// What one request sends.
struct Template {
    method: Method,
    uri: String,
    bodies: Vec<Bytes>,
    /// Without it, requests carry `Cache-Control: no-cache`.
    use_cache: bool,
}

fn template(args: &LoadtestArgs, inputs: &[String]) -> Template {
    let base = args.url.trim_end_matches('/');
    let mut fields = serde_json::Map::new();
    if let Some(b) = args.beam {
        fields.insert("beam".into(), b.into());
    }
    if let Some(n) = args.n_best {
        fields.insert("n_best".into(), n.into());
    }
    fields.insert("attention".into(), args.attention.into());
    let use_cache = args.use_cache;
    match args.mode {
        LoadMode::Translate => Template {
            method: Method::POST,
            uri: format!("{base}/api/v1/translate"),
            bodies: inputs
                .iter()
                .map(|text| {
                    let mut body = fields.clone();
                    body.insert("text".into(), text.clone().into());
                    Bytes::from(serde_json::to_vec(&body).expect("JSON"))
                })
                .collect(),
            use_cache,
        },
        LoadMode::Batch => {
            let batch: Vec<&String> = inputs.iter().cycle().take(args.batch_size.max(1)).collect();
            let mut body = fields.clone();
            body.insert("inputs".into(), serde_json::to_value(batch).expect("JSON"));
            Template {
                method: Method::POST,
                uri: format!("{base}/api/v1/translate/batch"),
                bodies: vec![Bytes::from(serde_json::to_vec(&body).expect("JSON"))],
                use_cache,
            }
        }
        LoadMode::Page => {
            Template { method: Method::GET, uri: format!("{base}{}", args.path), bodies: vec![Bytes::new()], use_cache }
        }
    }
}

/// Sends one request and records its outcome against its intended time.
async fn fire(
    client: HttpClient,
    shared: Arc<Shared>,
    t: Arc<Template>,
    i: usize,
    intended: Instant,
    timeout: Duration,
) {
    let body = t.bodies[i % t.bodies.len()].clone();
    let mut request =
        Request::builder().method(t.method.clone()).uri(&t.uri).header("content-type", "application/json");
    if !t.use_cache {
        request = request.header("cache-control", "no-cache");
    }
    let request = request.body(Full::new(body)).expect("a valid request");
    let outcome = tokio::time::timeout(timeout, async {
        let response = client.request(request).await.map_err(|_| "connection".to_string())?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(|_| "connection".to_string())?.to_bytes();
        Ok::<_, String>((status, body))
    })
    .await;
    let latency_us = intended.elapsed().as_micros() as u64;
    let mut tally = shared.tally.lock().expect("tally lock");
    match outcome {
        Ok(Ok((status, body))) => {
            let _ = tally.histogram.record(latency_us.max(1));
            if status.is_success() {
                tally.completed += 1;
            } else {
                let code = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["error"]["code"].as_str().map(String::from))
                    .unwrap_or_default();
                *tally.errors.entry(format!("{} {code}", status.as_u16()).trim().to_string()).or_default() += 1;
            }
        }
        Ok(Err(kind)) => *tally.errors.entry(kind).or_default() += 1,
        Err(_) => *tally.errors.entry("timeout".into()).or_default() += 1,
    }
    drop(tally);
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
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

pub async fn run(args: LoadtestArgs) -> ExitCode {
    if !args.url.starts_with("http://") {
        return fail(format!(
            "--url {}: only http:// is supported (inside a cluster, use the Service's name)",
            args.url
        ));
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
    let inputs: Vec<String> = match &args.inputs {
        None => BUILTIN_EXAMPLES.iter().map(|s| s.to_string()).collect(),
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect(),
            Err(e) => return fail(format!("--inputs {}: {e}", path.display())),
        },
    };
    if inputs.is_empty() {
        return fail("--inputs has no lines".into());
    }
    let template = Arc::new(template(&args, &inputs));
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient =
        Client::builder(TokioExecutor::new()).pool_max_idle_per_host(args.max_inflight).build(connector);
    let cpu_before = match &args.metrics_url {
        Some(url) => match scrape_fleet(&client, url).await {
            Ok(v) => Some(v),
            Err(e) => return fail(e),
        },
        None => None,
    };

    let shared = Arc::new(Shared {
        tally: Mutex::new(Tally { histogram: report::histogram(), completed: 0, errors: BTreeMap::new() }),
        in_flight: AtomicUsize::new(0),
        sent: AtomicU64::new(0),
        not_sent: AtomicU64::new(0),
    });
    let start = Instant::now();
    let progress = (!args.quiet).then(|| tokio::spawn(progress(shared.clone(), schedule.clone(), start)));
    let interrupted = tokio::select! {
        _ = schedule_requests(&args, &schedule, &client, &shared, &template, start) => false,
        _ = tokio::signal::ctrl_c() => true,
    };
    // Let requests in flight finish (all are bounded by --timeout); after
    // Ctrl-C, report what there is after a short wait.
    let drain = if interrupted { Duration::from_secs(2) } else { args.timeout + Duration::from_secs(1) };
    let drained = Instant::now() + drain;
    while shared.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < drained {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = start.elapsed();
    if let Some(p) = progress {
        p.abort();
    }
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
    let report = Report {
        mode: format!("{:?}", args.mode).to_lowercase(),
        duration_s,
        scheduled: sent + not_sent,
        sent,
        completed: tally.completed,
        errors,
        not_sent,
        errors_by_kind,
        target_rate: (schedule.expected() as f64 / schedule.total().as_secs_f64() * 10.0).round() / 10.0,
        achieved_rate: (achieved_rate * 10.0).round() / 10.0,
        latency: report::latency(&tally.histogram),
        capacity,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("JSON"));
    } else {
        print!("{report}");
    }
    ExitCode::SUCCESS
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
                handle.spawn(fire(client.clone(), shared.clone(), template.clone(), k as usize, intended, timeout));
            }
            k += 1;
        }
        let _ = done_tx.send(());
    });
    // Dropped on Ctrl-C: the clock thread sees the flag and stops.
    struct Stop(Arc<AtomicBool>);
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let _stop = Stop(stop);
    let _ = done_rx.await;
}

/// One line a second on stderr: elapsed, target and achieved rate, in flight,
/// p50/p99 so far, errors.
async fn progress(shared: Arc<Shared>, schedule: Schedule, start: Instant) {
    let mut tick = tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    let mut last_completed = 0;
    loop {
        tick.tick().await;
        let t = start.elapsed().as_secs_f64();
        let (completed, errors, p50, p99) = {
            let tally = shared.tally.lock().expect("tally lock");
            let h = &tally.histogram;
            (tally.completed, tally.errors.values().sum::<u64>(), h.value_at_quantile(0.5), h.value_at_quantile(0.99))
        };
        eprintln!(
            "{t:6.1}s  target {:7.1}/s  achieved {:7.1}/s  in flight {:5}  p50 {:8.2} ms  p99 {:8.2} ms  errors {errors}  not sent {}",
            schedule.rate_at(t - 0.5),
            (completed - last_completed) as f64,
            shared.in_flight.load(Ordering::SeqCst),
            p50 as f64 / 1000.0,
            p99 as f64 / 1000.0,
            shared.not_sent.load(Ordering::SeqCst),
        );
        last_completed = completed;
    }
}
