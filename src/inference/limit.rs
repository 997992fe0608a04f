//! The pod-wide cap on invocations in flight, and the invocation metrics.
//!
//! Interactive calls are refused at once when the cap is reached (queueing them
//! without bound would only turn overload into timeouts); bulk calls wait for a
//! slot, so one large batch slows down instead of failing.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::{Admission, BoxFuture, InferenceError, Invocation, Request, Translator};
use crate::telemetry::Metrics;

/// How long a client refused for overload is told to wait.
const OVERLOADED_RETRY_AFTER: Duration = Duration::from_secs(1);

pub struct Limited {
    inner: Arc<dyn Translator>,
    slots: Arc<Semaphore>,
    metrics: Metrics,
}

impl Limited {
    pub fn new(inner: Arc<dyn Translator>, max_in_flight: usize, metrics: Metrics) -> Self {
        Self {
            inner,
            slots: Arc::new(Semaphore::new(max_in_flight)),
            metrics,
        }
    }
}

/// Keeps the in-flight gauge right even when the caller's future is dropped.
struct InFlight<'a>(&'a Metrics);

impl<'a> InFlight<'a> {
    fn enter(metrics: &'a Metrics) -> Self {
        metrics.invocations_in_flight.inc();
        Self(metrics)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.invocations_in_flight.dec();
    }
}

impl Translator for Limited {
    fn translate(&self, request: Request) -> BoxFuture<'_, Result<Invocation, InferenceError>> {
        Box::pin(async move {
            let overloaded = InferenceError::Overloaded {
                retry_after: OVERLOADED_RETRY_AFTER,
            };
            let _permit = match request.admission {
                Admission::FailFast => self.slots.try_acquire().map_err(|_| overloaded)?,
                Admission::Wait => tokio::time::timeout_at(request.deadline, self.slots.acquire())
                    .await
                    .map_err(|_| InferenceError::Timeout)?
                    .map_err(|_| overloaded)?,
            };
            let _in_flight = InFlight::enter(&self.metrics);
            let started = Instant::now();
            let inputs = request.inputs.len() as u64;
            let result = self.inner.translate(request).await;
            let outcome = match &result {
                Ok(_) => "ok",
                Err(e) => e.outcome(),
            };
            self.metrics.invocations.with_label_values(&[outcome]).inc();
            self.metrics
                .invocation_duration
                .with_label_values(&[outcome])
                .observe(started.elapsed().as_secs_f64());
            if result.is_ok() {
                self.metrics
                    .translated_inputs
                    .with_label_values(&["all"])
                    .inc_by(inputs);
            }
            result
        })
    }

    fn warmup(&self, deadline: Instant) -> BoxFuture<'_, Result<(), InferenceError>> {
        self.inner.warmup(deadline)
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}
