//! Dynamic micro-batching: concurrent single translations with the same
//! parameters share one invocation.
//!
//! Adaptive, not a fixed delay: when no invocation of that kind is in flight a
//! request leaves at once (idle latency unchanged). While one is in flight, a
//! request waits only when a partner is likely to come within
//! `COALESCE_MAX_WAIT`: the mean gap between requests of its kind (weighted
//! towards recent ones) says so when `max_wait >= mean_gap x ln 2` (arrivals
//! as a Poisson process: even odds of one more within the wait). Otherwise it
//! leaves at once, so ordinary rates with a slow model pay no wait for a
//! partner that does not come. Waiting requests leave together as soon as the
//! invocations in flight return, or the group is full (the batch table's chunk
//! size), or the first of them has waited `COALESCE_MAX_WAIT`. Each caller
//! keeps its own deadline and may go away without affecting the others. A function error or bad payload of a shared
//! invocation is retried member by member, so only the input that breaks the
//! model gets the error.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::fanout::chunk_size_for_beam;
use super::{Admission, BoxFuture, CacheUse, Hypothesis, InferenceError, Invocation, Params, Request, Translator};
use crate::telemetry::Metrics;

type Answer = Result<(Vec<Hypothesis>, Option<String>), InferenceError>;

struct Waiter {
    input: String,
    request_ids: Vec<String>,
    deadline: Instant,
    queued: Instant,
    reply: oneshot::Sender<Answer>,
}

#[derive(Default)]
struct Group {
    queue: Vec<Waiter>,
    in_flight: usize,
    /// A max-wait timer is armed for the current queue.
    timer: bool,
}

pub struct Coalescer {
    inner: Arc<dyn Translator>,
    max_wait: Duration,
    groups: Mutex<HashMap<Params, Group>>,
    /// How often requests of each kind arrive (at most one entry per
    /// parameter set the server accepts: a bounded map).
    arrivals: Mutex<HashMap<Params, Arrivals>>,
    metrics: Metrics,
}

/// The arrival rate of one kind of request: the last arrival and the mean gap
/// between arrivals, each new gap weighted `GAP_WEIGHT`.
#[derive(Clone, Copy)]
struct Arrivals {
    last: Option<Instant>,
    /// Seconds; infinite until a second request came.
    mean_gap: f64,
}

const GAP_WEIGHT: f64 = 0.2;

impl Coalescer {
    pub fn new(inner: Arc<dyn Translator>, max_wait: Duration, metrics: Metrics) -> Arc<Self> {
        Arc::new(Coalescer {
            inner,
            max_wait,
            groups: Mutex::new(HashMap::new()),
            arrivals: Mutex::new(HashMap::new()),
            metrics,
        })
    }

    /// The groups, even after a panic elsewhere poisoned the lock: every
    /// operation under it leaves the map consistent (waiters are only moved
    /// in or out), so a poisoned lock must not make every later translation
    /// panic too.
    fn groups(&self) -> std::sync::MutexGuard<'_, HashMap<Params, Group>> {
        self.groups.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes the waiters that should leave now, if any, under the lock.
    /// `force`: leave even though an invocation is in flight (a slot freed, or
    /// the max wait passed).
    fn take(&self, params: Params, force: bool) -> Option<Vec<Waiter>> {
        let mut groups = self.groups();
        let group = groups.get_mut(&params)?;
        let before = group.queue.len();
        group.queue.retain(|w| !w.reply.is_closed());
        let full = chunk_size_for_beam(params.beam);
        self.metrics.coalesce_queued.sub((before - group.queue.len()) as i64);
        if group.queue.is_empty() || !(force || group.in_flight == 0 || group.queue.len() >= full) {
            return None;
        }
        let n = group.queue.len().min(full);
        let members: Vec<Waiter> = group.queue.drain(..n).collect();
        self.metrics.coalesce_queued.sub(n as i64);
        group.in_flight += 1;
        if group.queue.is_empty() {
            group.timer = false;
        }
        Some(members)
    }

    fn dispatch(self: &Arc<Self>, params: Params, members: Vec<Waiter>) {
        let this = self.clone();
        tokio::spawn(async move {
            let _slot = Slot(&this, params);
            this.invoke_group(params, members).await;
        });
    }

    fn observe(&self, members: &[Waiter]) {
        let now = Instant::now();
        self.metrics.coalesce_group_size.observe(members.len() as f64);
        for m in members {
            self.metrics.coalesce_wait.observe(now.duration_since(m.queued).as_secs_f64());
        }
    }

    /// An invocation of `params` ended (or was dropped): free its slot. When it
    /// was the last one in flight, whoever queued behind it leaves now; while
    /// others are still in flight the queue keeps growing until its timer or
    /// until it is full. Flushing at every return would, with many slow
    /// invocations in flight, send the queue every few milliseconds in groups
    /// of one or two, whatever `COALESCE_MAX_WAIT` says.
    fn finish(self: &Arc<Self>, params: Params) {
        let last = {
            let mut groups = self.groups();
            let group = groups.entry(params).or_default();
            group.in_flight = group.in_flight.saturating_sub(1);
            let last = group.in_flight == 0;
            if last && group.queue.is_empty() {
                groups.remove(&params);
            }
            last
        };
        if last {
            self.flush(params);
        }
    }

    /// Sends everything queued for `params`, a chunk at a time.
    fn flush(self: &Arc<Self>, params: Params) {
        while let Some(members) = self.take(params, true) {
            self.dispatch(params, members);
        }
    }

    async fn invoke_group(self: &Arc<Self>, params: Params, members: Vec<Waiter>) {
        self.observe(&members);
        let deadline = members.iter().map(|m| m.deadline).max().unwrap_or_else(Instant::now);
        // The same input twice in a group (two users, one molecule) is sent
        // once; both get its answer.
        let mut inputs: Vec<String> = Vec::with_capacity(members.len());
        let at: Vec<usize> = members
            .iter()
            .map(|m| {
                inputs.iter().position(|i| *i == m.input).unwrap_or_else(|| {
                    inputs.push(m.input.clone());
                    inputs.len() - 1
                })
            })
            .collect();
        let sent = inputs.len();
        let request_ids = members.iter().flat_map(|m| m.request_ids.iter().cloned()).collect();
        let request =
            Request { inputs, params, deadline, admission: Admission::FailFast, cache: CacheUse::Use, request_ids };
        match self.inner.invoke(request).await {
            Ok(invocation) if invocation.results.len() == sent => {
                let id = invocation.request_id;
                for (m, j) in members.into_iter().zip(at) {
                    let _ = m.reply.send(Ok((invocation.results[j].clone(), id.clone())));
                }
            }
            Ok(_) => {
                let e = InferenceError::BadPayload("the answer does not match the request".into());
                for m in members {
                    let _ = m.reply.send(Err(e.clone()));
                }
            }
            // One input may have broken the model: retry each member alone so the
            // innocent ones still get their answer.
            Err(InferenceError::FunctionError { .. } | InferenceError::BadPayload(_)) if members.len() > 1 => {
                let singles = members.into_iter().map(|m| {
                    let inner = self.inner.clone();
                    async move {
                        let request = Request {
                            inputs: vec![m.input],
                            params,
                            deadline: m.deadline,
                            admission: Admission::FailFast,
                            cache: CacheUse::Use,
                            request_ids: m.request_ids,
                        };
                        let answer = inner.invoke(request).await.and_then(|inv| {
                            let id = inv.request_id;
                            inv.results
                                .into_iter()
                                .next()
                                .map(|h| (h, id))
                                .ok_or_else(|| InferenceError::BadPayload("no result for this input".into()))
                        });
                        let _ = m.reply.send(answer);
                    }
                });
                futures_util::future::join_all(singles).await;
            }
            Err(e) => {
                for m in members {
                    let _ = m.reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// Records an arrival of `params`; whether another is likely within the
    /// max wait (at least even odds, arrivals taken as a Poisson process).
    fn partner_likely(&self, params: Params) -> bool {
        let now = Instant::now();
        let mut arrivals = self.arrivals.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let a = arrivals.entry(params).or_insert(Arrivals { last: None, mean_gap: f64::INFINITY });
        if let Some(last) = a.last {
            let gap = now.duration_since(last).as_secs_f64();
            a.mean_gap = if a.mean_gap.is_finite() { GAP_WEIGHT * gap + (1.0 - GAP_WEIGHT) * a.mean_gap } else { gap };
        }
        a.last = Some(now);
        self.max_wait.as_secs_f64() >= a.mean_gap * std::f64::consts::LN_2
    }

    fn arm_timer(self: &Arc<Self>, params: Params) {
        let this = self.clone();
        let wait = self.max_wait;
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            this.flush(params);
        });
    }

    async fn single(
        self: Arc<Self>,
        input: String,
        params: Params,
        deadline: Instant,
        request_ids: Vec<String>,
    ) -> Result<Invocation, InferenceError> {
        let (reply, answer) = oneshot::channel();
        let wait = self.partner_likely(params);
        let arm = {
            let mut groups = self.groups();
            let group = groups.entry(params).or_default();
            group.queue.push(Waiter { input, request_ids, deadline, queued: Instant::now(), reply });
            self.metrics.coalesce_queued.inc();
            let arm = wait && group.in_flight > 0 && !group.timer;
            group.timer |= arm;
            arm
        };
        // No partner likely: leave now, with whoever is already waiting.
        match self.take(params, !wait) {
            // Alone and nothing in flight: carry the invocation in this task. No
            // task hand-off means no cross-thread wake-up, which is most of the
            // cost of a request at low load. The slot guard frees the slot even
            // if this caller goes away mid-call.
            Some(members) if members.len() == 1 => {
                let _slot = Slot(&self, params);
                self.invoke_group(params, members).await;
            }
            Some(members) => self.dispatch(params, members),
            None if arm => self.arm_timer(params),
            None => {}
        }
        match tokio::time::timeout_at(deadline, answer).await {
            Err(_) => Err(InferenceError::Timeout),
            Ok(Err(_)) => Err(InferenceError::Unavailable("the invocation was abandoned".into())),
            Ok(Ok(Ok((hyps, request_id)))) => Ok(Invocation { results: vec![hyps], request_id, cached: Vec::new() }),
            Ok(Ok(Err(e))) => Err(e),
        }
    }
}

/// Holds one in-flight slot of a parameter group; frees it when dropped.
struct Slot<'a>(&'a Arc<Coalescer>, Params);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.finish(self.1);
    }
}

/// The coalescer as a [`Translator`]: single-input interactive requests are
/// grouped; everything else (bulk chunks, warmups) passes straight through.
pub struct Coalescing(pub Arc<Coalescer>);

impl Translator for Coalescing {
    fn invoke(&self, request: Request) -> BoxFuture<'_, Result<Invocation, InferenceError>> {
        if request.admission != Admission::FailFast || request.inputs.len() != 1 {
            return self.0.inner.invoke(request);
        }
        let Request { mut inputs, params, deadline, request_ids, .. } = request;
        let input = inputs.pop().expect("one input");
        Box::pin(self.0.clone().single(input, params, deadline, request_ids))
    }

    fn warmup(&self, deadline: Instant) -> BoxFuture<'_, Result<(), InferenceError>> {
        self.0.inner.warmup(deadline)
    }

    fn backend(&self) -> &'static str {
        self.0.inner.backend()
    }
}

#[cfg(test)]
mod tests;
