//! The result cache: the model is deterministic for an input and its
//! decoding parameters (beam search), so an answer can be given again without
//! an invocation. Per pod, in memory, bounded by an estimate of its bytes
//! (`CACHE_MAX_BYTES`) and by age (`CACHE_TTL`).
//!
//! It sits above the coalescer and the in-flight limit: a hit costs no slot
//! and no invocation. For a request of several inputs (a batch chunk) only the
//! misses are sent. Concurrent requests for the same missing input share one
//! invocation: the first asks, the others wait for its answer (and ask
//! themselves if it goes away or fails). Only answers that decoded and match
//! the request's shape are kept; errors never are.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moka::notification::RemovalCause;
use moka::sync::Cache;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{BoxFuture, CacheUse, Hypothesis, InferenceError, Invocation, Params, Request, Translator};
use crate::telemetry::Metrics;

/// What one input's answer is kept under. The function (and qualifier) is
/// part of it: a pod serves one, but two configurations must never share.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    function: Arc<str>,
    input: Box<str>,
    params: Params,
}

type Answer = Arc<Vec<Hypothesis>>;
/// An in-flight miss: `None` until its owner has the answer (or gave up).
type Pending = watch::Receiver<Option<Result<Answer, InferenceError>>>;

/// Bytes an entry is charged: each of its allocations as the allocator hands
/// it out (its key, the answer's list, each result's tokens and attention),
/// and the cache's own bookkeeping per entry.
fn weight(key: &Key, answer: &Answer) -> u32 {
    use crate::memory::allocation;
    let list = allocation(16 + answer.capacity() * std::mem::size_of::<Hypothesis>());
    let results: usize = answer
        .iter()
        .map(|h| allocation(h.tokens.capacity()) + h.attention.as_ref().map_or(0, |m| allocation(m.heap_bytes())))
        .sum();
    let held = allocation(key.input.len()) + list + results;
    u32::try_from(PER_ENTRY + held + held / 4).unwrap_or(u32::MAX)
}

/// Measured with the allocator's own count
/// (`the_byte_budget_bounds_the_memory_the_cache_really_holds`): beside what
/// an entry holds, the cache's bookkeeping took ~1.2 KB per entry (moka's
/// entry, its two order queues' nodes, its hash table's bucket, the key's
/// shared copy), and up to a fifth more of the entries' own bytes (evicted
/// entries whose memory moka frees a little later, its hash table freeing
/// through epochs). Charged: 1,280 bytes and a quarter.
const PER_ENTRY: usize = 1_280;

pub struct Cached {
    inner: Arc<dyn Translator>,
    cache: Cache<Key, Answer>,
    pending: Mutex<HashMap<Key, Pending>>,
    function: Arc<str>,
    metrics: Metrics,
    /// Bytes inserted since the cache last evicted down to its budget.
    unsettled: AtomicU64,
    /// How many such bytes may wait for the next eviction: what the cache
    /// may hold beyond `CACHE_MAX_BYTES` for a moment (plus one answer).
    slack: u64,
}

/// The share of the budget inserted between two evictions. Evicting after
/// every insert was a quarter of a translation's CPU at saturation (every
/// request with `Cache-Control: no-cache` still stores its fresh answer).
const SLACK_SHARE: u64 = 16;

impl Cached {
    /// `function` names what answers: the Lambda function and qualifier, or
    /// the demo backend.
    pub fn new(inner: Arc<dyn Translator>, max_bytes: u64, ttl: Duration, function: &str, metrics: Metrics) -> Self {
        let evictions = metrics.cache_evictions.clone();
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(weight)
            .time_to_live(ttl)
            .eviction_listener(move |_, _, cause| {
                if cause == RemovalCause::Size {
                    evictions.inc();
                }
            })
            .build();
        // The size gauges are read when the metrics are: keeping them current
        // on every insert would cost every request the cache's housekeeping.
        let (kept, bytes, entries) = (cache.clone(), metrics.cache_bytes.clone(), metrics.cache_entries.clone());
        metrics.on_render(move || {
            kept.run_pending_tasks();
            bytes.set(i64::try_from(kept.weighted_size()).unwrap_or(i64::MAX));
            entries.set(i64::try_from(kept.entry_count()).unwrap_or(i64::MAX));
        });
        Cached {
            inner,
            cache,
            pending: Mutex::default(),
            function: function.into(),
            metrics,
            unsettled: AtomicU64::new(0),
            slack: (max_bytes / SLACK_SHARE).max(1),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Pending>> {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn key(&self, input: &str, params: Params) -> Key {
        Key { function: self.function.clone(), input: input.into(), params }
    }

    /// Counts `bytes` inserted; once they pass the slack, lets the cache evict
    /// what is over its budget now (it would otherwise wait for its own
    /// housekeeping, which a burst of large answers can outrun).
    fn inserted(&self, bytes: u64) {
        let unsettled = self.unsettled.fetch_add(bytes, Ordering::AcqRel) + bytes;
        if unsettled >= self.slack && self.unsettled.swap(0, Ordering::AcqRel) > 0 {
            self.cache.run_pending_tasks();
        }
    }

    async fn invoke_cached(&self, request: Request) -> Result<Invocation, InferenceError> {
        let Request { inputs, params, deadline, admission, cache, request_ids } = request;
        let n = inputs.len();
        let mut cached = vec![false; n];
        // Inputs this request asks the model for (each once; with a sender when
        // others may wait on it), the inputs that wait on another request's
        // invocation, and where each input's answer comes from.
        let mut asked: Vec<(Key, Option<Publish>)> = Vec::new();
        let mut waiting: Vec<(Key, Pending)> = Vec::new();
        let mut source: Vec<Source> = Vec::with_capacity(n);
        for (i, input) in inputs.iter().enumerate() {
            if let Some(j) = inputs[..i].iter().position(|x| x == input) {
                source.push(Source::Same(j));
                continue;
            }
            let key = self.key(input, params);
            if cache == CacheUse::Bypass {
                self.metrics.cache_misses.inc();
                asked.push((key, None));
                source.push(Source::Asked(asked.len() - 1));
                continue;
            }
            if let Some(hit) = self.cache.get(&key) {
                self.metrics.cache_hits.inc();
                cached[i] = true;
                source.push(Source::Hit(hit));
                continue;
            }
            self.metrics.cache_misses.inc();
            let mut pending = self.pending();
            if let Some(rx) = pending.get(&key) {
                waiting.push((key, rx.clone()));
                source.push(Source::Waiting(waiting.len() - 1));
            } else {
                let (tx, rx) = watch::channel(None);
                pending.insert(key.clone(), rx);
                asked.push((key, Some(tx)));
                source.push(Source::Asked(asked.len() - 1));
            }
        }
        // However this ends (even by this future being dropped), the pending
        // entries this request owns go; waiters then have the answer, or see
        // the sender gone and ask for themselves.
        let _owned =
            Owned { cache: self, keys: asked.iter().filter(|(_, tx)| tx.is_some()).map(|(k, _)| k.clone()).collect() };
        let mut request_id = None;
        let mut fresh: Vec<Answer> = Vec::with_capacity(asked.len());
        if !asked.is_empty() {
            let keys: Vec<&Key> = asked.iter().map(|(k, _)| k).collect();
            let (answers, id) =
                self.ask(&keys, params, deadline, admission, cache, &request_ids).await.inspect_err(|e| {
                    for (_, tx) in &asked {
                        if let Some(tx) = tx {
                            tx.send_replace(Some(Err(e.clone())));
                        }
                    }
                })?;
            for ((_, tx), answer) in asked.iter().zip(&answers) {
                if let Some(tx) = tx {
                    tx.send_replace(Some(Ok(answer.clone())));
                }
            }
            fresh = answers;
            request_id = id;
        }
        let mut shared: Vec<Answer> = Vec::with_capacity(waiting.len());
        for (key, mut rx) in waiting {
            let got = match tokio::time::timeout_at(deadline, rx.wait_for(Option::is_some)).await {
                Err(_) => return Err(InferenceError::Timeout),
                Ok(Ok(value)) => value.clone(),
                Ok(Err(_)) => None,
            };
            let answer = match got {
                Some(answer) => answer?,
                // Its owner went away without an answer: ask here.
                None => self.ask(&[&key], params, deadline, admission, cache, &request_ids).await?.0.remove(0),
            };
            shared.push(answer);
        }
        let mut results: Vec<Vec<Hypothesis>> = Vec::with_capacity(n);
        for (i, s) in source.into_iter().enumerate() {
            let answer = match s {
                Source::Hit(answer) => (*answer).clone(),
                Source::Asked(a) => (*fresh[a]).clone(),
                Source::Waiting(w) => (*shared[w]).clone(),
                Source::Same(j) => {
                    cached[i] = cached[j];
                    results[j].clone()
                }
            };
            results.push(answer);
        }
        let cached = if cached.contains(&true) { cached } else { Vec::new() };
        Ok(Invocation { results, request_id, cached })
    }

    /// One invocation for `keys`; keeps the answers when they fit the request.
    async fn ask(
        &self,
        keys: &[&Key],
        params: Params,
        deadline: Instant,
        admission: super::Admission,
        cache: CacheUse,
        request_ids: &[String],
    ) -> Result<(Vec<Answer>, Option<String>), InferenceError> {
        let inputs = keys.iter().map(|k| k.input.to_string()).collect();
        let request = Request { inputs, params, deadline, admission, cache, request_ids: request_ids.to_vec() };
        let inv = self.inner.invoke(request).await?;
        if !fits(&inv, keys.len(), params) {
            return Err(InferenceError::BadPayload("the answer does not match the request".into()));
        }
        let answers: Vec<Answer> = inv.results.into_iter().map(Arc::new).collect();
        let mut bytes = 0;
        for (key, answer) in keys.iter().zip(&answers) {
            // Asked anew (a bypass) and answered as before: the cache holds
            // this answer already, and writing it again through the cache's
            // policy costs a bypassed request a twentieth of its CPU.
            if cache == CacheUse::Bypass && self.cache.get(*key).is_some_and(|held| held == *answer) {
                continue;
            }
            bytes += u64::from(weight(key, answer));
            self.cache.insert((*key).clone(), answer.clone());
        }
        self.inserted(bytes);
        Ok((answers, inv.request_id))
    }
}

type Publish = watch::Sender<Option<Result<Answer, InferenceError>>>;

/// Where an input's answer comes from.
enum Source {
    /// The cache.
    Hit(Answer),
    /// This request's invocation (its index among the asked inputs).
    Asked(usize),
    /// Another request's invocation (its index among the waited ones).
    Waiting(usize),
    /// The same input earlier in this request.
    Same(usize),
}

/// An answer is kept only if it has a result for every input asked and the
/// n-best lists are not longer than asked.
fn fits(inv: &Invocation, inputs: usize, params: Params) -> bool {
    inv.results.len() == inputs && inv.results.iter().all(|h| h.len() <= params.n_best as usize)
}

/// Removes this request's pending entries when it is done (or dropped): the
/// waiters then have the answer, or see the sender gone and ask themselves.
struct Owned<'a> {
    cache: &'a Cached,
    keys: Vec<Key>,
}

impl Drop for Owned<'_> {
    fn drop(&mut self) {
        if self.keys.is_empty() {
            return;
        }
        let mut pending = self.cache.pending();
        for k in &self.keys {
            pending.remove(k);
        }
    }
}

impl Translator for Cached {
    fn invoke(&self, request: Request) -> BoxFuture<'_, Result<Invocation, InferenceError>> {
        Box::pin(self.invoke_cached(request))
    }

    fn warmup(&self, deadline: Instant) -> BoxFuture<'_, Result<(), InferenceError>> {
        self.inner.warmup(deadline)
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}

#[cfg(test)]
mod tests;
