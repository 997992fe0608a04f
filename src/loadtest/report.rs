//! What a load test measured: counts, latency percentiles from an HDR histogram,
//! errors by status and code, and the capacity estimate for the HPA.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latency in microseconds, 1 µs to 1 hour, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// Milliseconds at a quantile (1.0: the maximum), to the microsecond.
pub fn ms_at(h: &Histogram<u64>, quantile: f64) -> f64 {
    let us = if quantile >= 1.0 { h.max() } else { h.value_at_quantile(quantile) };
    us as f64 / 1000.0
}

pub fn latency(h: &Histogram<u64>) -> Latency {
    Latency {
        p50_ms: ms_at(h, 0.50),
        p90_ms: ms_at(h, 0.90),
        p95_ms: ms_at(h, 0.95),
        p99_ms: ms_at(h, 0.99),
        p999_ms: ms_at(h, 0.999),
        max_ms: ms_at(h, 1.0),
    }
}

/// Drawings fetched after the translations (`--depict`).
#[derive(Debug, Clone, Serialize, Default)]
pub struct Drawings {
    pub requests: u64,
    pub ok: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
    pub latency: Option<Latency>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Capacity {
    pub cpu_seconds: f64,
    pub cpu_us_per_request: f64,
    pub cpu_request_cores: f64,
    pub target_utilization_percent: f64,
    /// Pods scraped (all addresses of the metrics URL's host) at the start and end.
    pub pods_at_start: usize,
    pub pods_at_end: usize,
    /// Pods gone by the end: their CPU after the start is not counted.
    pub pods_gone: usize,
    /// (rate, replicas) for the achieved rate and the schedule's peak.
    pub replicas_at: Vec<(f64, u64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: String,
    pub duration_s: f64,
    /// Requests the schedule asked for; scheduled = completed + errors + not_sent.
    pub scheduled: u64,
    pub sent: u64,
    pub completed: u64,
    pub errors: u64,
    /// Due while --max-inflight requests were already in flight.
    pub not_sent: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
    pub target_rate: f64,
    /// Successful requests per second.
    pub achieved_rate: f64,
    /// Every request that ended, from its intended send time; a failure at
    /// the time it failed (a timeout at --timeout).
    pub latency: Latency,
    /// Successful requests only (none: nothing succeeded).
    pub latency_ok: Option<Latency>,
    pub drawings: Option<Drawings>,
    pub capacity: Option<Capacity>,
    pub thresholds: Vec<super::threshold::Verdict>,
    /// Stopped early: a threshold failed with --abort-on-fail.
    pub aborted: bool,
    /// Every threshold passed (true when there are none).
    pub passed: bool,
}

/// The replicas a CPU-based HPA settles on for `rate` requests per second:
/// `ceil(rate * cpu_per_request / (cpu_request * target))`, at least 1.
pub fn replicas(rate: f64, cpu_s_per_request: f64, cpu_request_cores: f64, target: f64) -> u64 {
    let needed = rate * cpu_s_per_request / (cpu_request_cores * target);
    (needed - 1e-9).ceil().max(1.0) as u64
}

/// `250m` or `0.25` cores.
pub fn parse_cpu(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let cores = match s.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().map(|m| m / 1000.0),
        None => s.parse::<f64>(),
    }
    .map_err(|_| format!("--cpu-request '{s}' is not a CPU quantity like 250m or 0.25"))?;
    if cores > 0.0 { Ok(cores) } else { Err("--cpu-request must be more than 0".into()) }
}

/// `process_cpu_seconds_total` from a Prometheus text page.
pub fn cpu_seconds(metrics: &str) -> Option<f64> {
    metrics.lines().find_map(|l| l.strip_prefix("process_cpu_seconds_total ")).and_then(|v| v.trim().parse().ok())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "mode {}: {:.1} s, target {:.1} req/s, achieved {:.1} req/s",
            self.mode, self.duration_s, self.target_rate, self.achieved_rate
        )?;
        writeln!(
            f,
            "requests: {} scheduled = {} completed + {} errors + {} not sent on time",
            self.scheduled, self.completed, self.errors, self.not_sent
        )?;
        let line = |l: &Latency| {
            format!(
                "p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
                l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms
            )
        };
        writeln!(f, "latency of every request, from its intended send time: {}", line(&self.latency))?;
        match &self.latency_ok {
            Some(l) => writeln!(f, "latency of the successful ones: {}", line(l))?,
            None => writeln!(f, "latency of the successful ones: none succeeded")?,
        }
        if !self.errors_by_kind.is_empty() {
            let kinds: Vec<String> = self.errors_by_kind.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            writeln!(f, "errors: {}", kinds.join(", "))?;
        }
        if let Some(d) = &self.drawings {
            let kinds: Vec<String> = d.errors_by_kind.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            writeln!(
                f,
                "drawings: {} fetched, {} ok{}{}",
                d.requests,
                d.ok,
                d.latency.as_ref().map_or(String::new(), |l| format!(", {}", line(l))),
                if kinds.is_empty() { String::new() } else { format!("; errors: {}", kinds.join(", ")) }
            )?;
        }
        if let Some(c) = &self.capacity {
            writeln!(
                f,
                "service CPU: {:.3} s over {} pod{} ({} at the start{}), {:.0} us per request",
                c.cpu_seconds,
                c.pods_at_end,
                if c.pods_at_end == 1 { "" } else { "s" },
                c.pods_at_start,
                if c.pods_gone > 0 {
                    format!(", {} gone: their CPU is not counted", c.pods_gone)
                } else {
                    String::new()
                },
                c.cpu_us_per_request
            )?;
            for (rate, n) in &c.replicas_at {
                writeln!(
                    f,
                    "at {rate:.0} req/s: {n} pod{} of {:.0}m at {:.0}% CPU",
                    if *n == 1 { "" } else { "s" },
                    c.cpu_request_cores * 1000.0,
                    c.target_utilization_percent
                )?;
            }
        }
        if self.aborted {
            writeln!(f, "stopped early: a threshold failed (--abort-on-fail)")?;
        }
        for v in &self.thresholds {
            writeln!(f, "{v}")?;
        }
        Ok(())
    }
}

pub fn seconds(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_follow_the_hpa_formula() {
        // 400 req/s x 300 us = 0.12 cores; 0.25 x 0.75 = 0.1875 per pod -> 1 pod
        assert_eq!(replicas(400.0, 300e-6, 0.25, 0.75), 1);
        // 2000 req/s x 300 us = 0.6 cores -> 3.2 -> 4 pods
        assert_eq!(replicas(2000.0, 300e-6, 0.25, 0.75), 4);
        // exactly on the boundary does not round up
        assert_eq!(replicas(625.0, 300e-6, 0.25, 0.75), 1);
        assert_eq!(replicas(0.0, 300e-6, 0.25, 0.75), 1);
    }

    #[test]
    fn cpu_quantities_parse() {
        assert_eq!(parse_cpu("250m"), Ok(0.25));
        assert_eq!(parse_cpu("1.5"), Ok(1.5));
        assert!(parse_cpu("lots").is_err());
        assert!(parse_cpu("0").is_err());
    }

    #[test]
    fn cpu_seconds_are_read_from_metrics() {
        let text = "# HELP process_cpu_seconds_total x\nprocess_cpu_seconds_total 12.5\nprocess_open_fds 9\n";
        assert_eq!(cpu_seconds(text), Some(12.5));
        assert_eq!(cpu_seconds("nothing"), None);
    }

    #[test]
    fn percentiles_come_from_the_histogram() {
        let mut h = histogram();
        for us in 1..=1000 {
            h.record(us * 1000).unwrap(); // 1..1000 ms
        }
        let l = latency(&h);
        assert!((l.p50_ms - 500.0).abs() < 1.0, "{l:?}");
        assert!((l.p99_ms - 990.0).abs() < 1.0, "{l:?}");
        assert!((l.max_ms - 1000.0).abs() < 1.0, "{l:?}");
    }
}
