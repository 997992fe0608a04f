//! `translation-front loadtest`: an open-loop load generator.
//!
//! Requests leave on the schedule's clock, whether or not earlier ones have
//! returned, and latency counts from the *intended* send time, so a stalled
//! server shows in the percentiles instead of slowing the test down
//! (no coordinated omission). At most `--max-inflight` requests are open; one
//! due past that cap is counted as not sent on time.

mod args;
mod client;
mod fleet;
pub mod molecules;
pub mod report;
mod request;
pub mod schedule;
pub mod series;
pub mod threshold;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

pub use args::{LoadMode, LoadtestArgs};
use client::HttpClient;
use fleet::{Fleet, fleet_cpu, scrape_fleet, watch_fleet};
use report::{Capacity, Report};
use request::{Inputs, Shared, Tally, Template, fire, template};
use schedule::Schedule;
use series::Sample;
use threshold::{Figures, Threshold};

fn fail(message: String) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
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
