//! Keeping the function warm: the per-pod pinger (`LAMBDA_WARMUP_INTERVAL`, off
//! by default) and warm-on-visit (`LAMBDA_WARM_ON_VISIT`, [`OnVisit`]).
//!
//! One pinger per cluster (the `warmup` subcommand in a CronJob) is usually
//! enough; this background loop is for single-host use, since its volume grows
//! with the replica count. It never fails the server: failures are counted and
//! logged, and it stops when shutdown starts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::watch;
use tokio::time::Instant;

use super::Translator;
use crate::telemetry::Metrics;

/// Sends `concurrency` keep-warm pings at once; returns the failures, described.
pub async fn ping_round(translator: &dyn Translator, concurrency: usize, deadline: Instant) -> Vec<String> {
    let results = join_all((0..concurrency).map(|_| translator.warmup(deadline))).await;
    results.into_iter().filter_map(Result::err).map(|e| e.to_string()).collect()
}

/// Sends `concurrency` pings every `interval` (±10% jitter, so replicas spread
/// out) until `stop` turns true.
pub async fn run(
    translator: Arc<dyn Translator>,
    interval: Duration,
    concurrency: usize,
    timeout: Duration,
    metrics: Metrics,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let jittered = interval.mul_f64(0.9 + fastrand::f64() * 0.2);
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(jittered) => {}
        }
        let failed = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            f = ping_round(translator.as_ref(), concurrency, Instant::now() + timeout) => f,
        };
        metrics.warmup_pings.with_label_values(&["ok"]).inc_by((concurrency - failed.len()) as u64);
        if !failed.is_empty() {
            metrics.warmup_pings.with_label_values(&["failed"]).inc_by(failed.len() as u64);
            tracing::warn!(failed = failed.len(), concurrency, error = %failed[0], "keep-warm pings failed");
        } else {
            tracing::debug!(concurrency, "keep-warm pings confirmed");
        }
    }
}

/// Warm on visit: a page visit after the function has been idle for `idle`
/// starts one keep-warm ping, so the visitor's first translation does not wait
/// out a cold start. At most one per pod per `idle`; never delays the page.
pub struct OnVisit {
    idle: Duration,
    origin: std::time::Instant,
    /// Milliseconds since `origin` of the last invocation or ping; `NEVER` at first.
    last: AtomicU64,
}

/// How long one keep-warm ping may take (capped by LAMBDA_TIMEOUT where it is shorter).
pub const PING_TIMEOUT: Duration = Duration::from_secs(30);

const NEVER: u64 = u64::MAX;

impl OnVisit {
    /// `idle` zero switches it off.
    pub fn new(idle: Duration) -> Self {
        OnVisit { idle, origin: std::time::Instant::now(), last: AtomicU64::new(NEVER) }
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// Records that the function was just invoked (it is warm).
    pub fn touch(&self) {
        self.last.store(self.now_ms(), Ordering::Relaxed);
    }

    /// True when the caller should ping now: the function has not been invoked
    /// for `idle` (or ever), and no other caller claimed this ping first.
    pub fn claim(&self) -> bool {
        if self.idle.is_zero() {
            return false;
        }
        let now = self.now_ms();
        let last = self.last.load(Ordering::Relaxed);
        if last != NEVER && now.saturating_sub(last) < self.idle.as_millis() as u64 {
            return false;
        }
        self.last.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_ping_per_quiet_spell_and_none_while_in_use() {
        let v = OnVisit::new(Duration::from_secs(3600));
        assert!(v.claim(), "never invoked: warm it");
        assert!(!v.claim(), "the ping just sent counts as use");
        let busy = OnVisit::new(Duration::from_secs(3600));
        busy.touch();
        assert!(!busy.claim(), "invoked a moment ago");
        let off = OnVisit::new(Duration::ZERO);
        assert!(!off.claim());
        let quick = OnVisit::new(Duration::from_millis(1));
        quick.touch();
        quick.last.store(0, Ordering::Relaxed);
        while quick.now_ms() < 2 {
            std::hint::spin_loop();
        }
        assert!(quick.claim(), "idle longer than the period");
    }
}
