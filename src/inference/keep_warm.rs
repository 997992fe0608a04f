//! The per-pod keep-warm pinger (`LAMBDA_WARMUP_INTERVAL`, off by default).
//!
//! One pinger per cluster (the `warmup` subcommand in a CronJob) is usually
//! enough; this background loop is for single-host use, since its volume grows
//! with the replica count. It never fails the server: failures are counted and
//! logged, and it stops when shutdown starts.

use std::sync::Arc;
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
