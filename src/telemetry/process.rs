//! The `process_*` metrics, read from `/proc/self` at each scrape.
//!
//! The prometheus crate's own process collector reports CPU time in whole
//! seconds, too coarse to tell CPU per request from a short load test; this
//! one keeps the kernel's 10 ms resolution.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Counter, Gauge, Opts};

/// Linux reports times in /proc in USER_HZ ticks, which is 100 on every
/// architecture's userspace ABI.
const USER_HZ: f64 = 100.0;

pub struct ProcessCollector {
    cpu: Counter,
    rss: Gauge,
    vsize: Gauge,
    threads: Gauge,
    open_fds: Gauge,
    start_time: Gauge,
    descs: Vec<Desc>,
}

impl ProcessCollector {
    pub fn new() -> Self {
        let cpu = Counter::with_opts(Opts::new(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
        ))
        .expect("valid metric");
        let gauge = |name: &str, help: &str| Gauge::with_opts(Opts::new(name, help)).expect("valid metric");
        let rss = gauge("process_resident_memory_bytes", "Resident memory size in bytes.");
        let vsize = gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.");
        let threads = gauge("process_threads", "Number of OS threads in the process.");
        let open_fds = gauge("process_open_fds", "Number of open file descriptors.");
        let start_time =
            gauge("process_start_time_seconds", "Start time of the process since the Unix epoch in seconds.");
        let mut descs = Vec::new();
        for c in [&cpu as &dyn Collector, &rss, &vsize, &threads, &open_fds, &start_time] {
            descs.extend(c.desc().into_iter().cloned());
        }
        if let Some(boot) = boot_time()
            && let Some(stat) = read_stat()
        {
            start_time.set(boot + stat.start_ticks / USER_HZ);
        }
        ProcessCollector { cpu, rss, vsize, threads, open_fds, start_time, descs }
    }
}

impl Default for ProcessCollector {
    fn default() -> Self {
        Self::new()
    }
}

struct Stat {
    cpu_ticks: f64,
    threads: f64,
    start_ticks: f64,
    vsize: f64,
}

/// Fields of /proc/self/stat after the command name (which may hold spaces).
fn read_stat() -> Option<Stat> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // after ") ": state is field 3 of stat(5), so field n is f[n - 3]
    let num = |n: usize| f.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    Some(Stat { cpu_ticks: num(14)? + num(15)?, threads: num(20)?, start_ticks: num(22)?, vsize: num(23)? })
}

fn boot_time() -> Option<f64> {
    std::fs::read_to_string("/proc/stat").ok()?.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
}

fn rss_bytes() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 =
        status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024.0)
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        if let Some(stat) = read_stat() {
            let seconds = stat.cpu_ticks / USER_HZ;
            let delta = seconds - self.cpu.get();
            if delta > 0.0 {
                self.cpu.inc_by(delta);
            }
            self.threads.set(stat.threads);
            self.vsize.set(stat.vsize);
        }
        if let Some(rss) = rss_bytes() {
            self.rss.set(rss);
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(fds.count() as f64);
        }
        let mut out = Vec::new();
        for c in [&self.cpu as &dyn Collector, &self.rss, &self.vsize, &self.threads, &self.open_fds, &self.start_time]
        {
            out.extend(c.collect());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let c = ProcessCollector::new();
        // burn a little CPU so the counter moves past zero
        let mut x = 0u64;
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_millis(50) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        assert!(x != 1);
        let families = c.collect();
        let names: Vec<&str> = families.iter().map(|f| f.name()).collect();
        assert!(names.contains(&"process_cpu_seconds_total"));
        assert!(c.cpu.get() > 0.0, "CPU seconds are fractional and moving");
        assert!(c.rss.get() > 1e6);
        assert!(c.threads.get() >= 1.0);
        assert!(c.start_time.get() > 1.6e9);
    }
}
