//! The pod-wide cap on invocations in flight, and the invocation metrics.
//!
//! Interactive calls are refused at once when the cap is reached (queueing them
//! without bound would only turn overload into timeouts); bulk calls wait for a
//! slot, so one large batch slows down instead of failing.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::keep_warm::OnVisit;
use super::{Admission, BoxFuture, InferenceError, Invocation, Request, Translator};
use crate::telemetry::{Held, Metrics};

/// How long a client refused for overload is told to wait.
const OVERLOADED_RETRY_AFTER: Duration = Duration::from_secs(1);

pub struct Limited {
    inner: Arc<dyn Translator>,
    /// Every invocation takes one of these.
    slots: Arc<Semaphore>,
    /// Bulk invocations also take one of these: fewer than `slots`, so a quarter
    /// of the pod's slots always stays free for interactive translations.
    bulk_slots: Semaphore,
    metrics: Metrics,
    /// Told of every invocation, so a page visit knows whether the function is warm.
    activity: Arc<OnVisit>,
}

impl Limited {
    pub fn new(inner: Arc<dyn Translator>, max_in_flight: usize, metrics: Metrics, activity: Arc<OnVisit>) -> Self {
        let bulk = (max_in_flight - max_in_flight / 4).max(1);
        let slots = Arc::new(Semaphore::new(max_in_flight));
        let (free, taken) = (slots.clone(), metrics.invocation_slots_taken.clone());
        metrics.on_render(move || taken.set(max_in_flight.saturating_sub(free.available_permits()) as i64));
        Self { inner, slots, bulk_slots: Semaphore::new(bulk), metrics, activity }
    }
}

impl Translator for Limited {
    fn invoke(&self, request: Request) -> BoxFuture<'_, Result<Invocation, InferenceError>> {
        Box::pin(async move {
            let overloaded = InferenceError::Overloaded { retry_after: OVERLOADED_RETRY_AFTER };
            let (_bulk, _permit) = match request.admission {
                Admission::FailFast => match self.slots.try_acquire() {
                    Ok(slot) => (None, slot),
                    Err(_) => {
                        self.metrics.invocation_slots_refused.inc();
                        return Err(overloaded);
                    }
                },
                Admission::Wait => {
                    let both = async { (self.bulk_slots.acquire().await, self.slots.acquire().await) };
                    match tokio::time::timeout_at(request.deadline, both).await {
                        Err(_) => return Err(InferenceError::Timeout),
                        Ok((Ok(bulk), Ok(slot))) => (Some(bulk), slot),
                        Ok(_) => return Err(overloaded),
                    }
                }
            };
            let _in_flight = Held::enter(&self.metrics.invocations_in_flight);
            let _slot_time = SlotTime(Instant::now(), &self.metrics.invocation_slot_seconds);
            self.activity.touch();
            let started = Instant::now();
            let inputs = request.inputs.len() as u64;
            // Interactive translations fail fast; bulk chunks wait for a slot.
            let path = match request.admission {
                Admission::FailFast => "single",
                Admission::Wait => "batch",
            };
            let result = self.inner.invoke(request).await;
            let outcome = match &result {
                Ok(_) => "ok",
                Err(e) => e.outcome(),
            };
            self.metrics.invocations.with_label_values(&[outcome]).inc();
            self.metrics.invocation_duration.with_label_values(&[outcome]).observe(started.elapsed().as_secs_f64());
            if result.is_ok() {
                self.metrics.translated_inputs.with_label_values(&[path]).inc_by(inputs);
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

/// Adds the time a slot was held to `lambda_invocation_slot_seconds_total`
/// when dropped (a call cancelled by its caller counts too).
struct SlotTime<'a>(Instant, &'a prometheus::Counter);

impl Drop for SlotTime<'_> {
    fn drop(&mut self) {
        self.1.inc_by(self.0.elapsed().as_secs_f64());
    }
}
