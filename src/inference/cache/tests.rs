use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Semaphore;

use super::*;
use crate::inference::{Admission, demo};

const P: Params = Params { beam: 3, n_best: 2, attention: true };

/// Records the inputs of every call; answers as the demo does; fails
/// inputs containing "FAIL"; answers "SHORT" with no result; waits for a
/// permit when gated.
#[derive(Default)]
struct Model {
    calls: Mutex<Vec<Vec<String>>>,
    gate: Option<Semaphore>,
    entered: AtomicUsize,
    /// A new model version: every score is one lower.
    redeployed: AtomicBool,
}

impl Translator for Model {
    fn invoke(&self, request: Request) -> BoxFuture<'_, Result<Invocation, InferenceError>> {
        Box::pin(async move {
            self.calls.lock().unwrap().push(request.inputs.clone());
            self.entered.fetch_add(1, Ordering::SeqCst);
            if let Some(gate) = &self.gate {
                gate.acquire().await.unwrap().forget();
            }
            if request.inputs.iter().any(|i| i.contains("FAIL")) {
                return Err(InferenceError::FunctionError { error_type: "E".into(), message: "m".into() });
            }
            let mut results: Vec<_> = request.inputs.iter().map(|i| demo::hypotheses(i, request.params)).collect();
            if self.redeployed.load(Ordering::SeqCst) {
                results.iter_mut().flatten().for_each(|h| h.score -= 1.0);
            }
            if request.inputs.iter().any(|i| i.contains("SHORT")) {
                results.pop();
            }
            Ok(Invocation { results, request_id: Some("r".into()), cached: Vec::new() })
        })
    }
    fn warmup(&self, _: Instant) -> BoxFuture<'_, Result<(), InferenceError>> {
        Box::pin(async { Ok(()) })
    }
    fn backend(&self) -> &'static str {
        "test"
    }
}

fn cached(model: Arc<Model>, max_bytes: u64) -> (Arc<Cached>, Metrics) {
    let metrics = Metrics::new();
    (Arc::new(Cached::new(model, max_bytes, Duration::from_secs(3600), "f", metrics.clone())), metrics)
}

fn req(inputs: &[&str], cache: CacheUse) -> Request {
    Request {
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        params: P,
        deadline: Instant::now() + Duration::from_secs(10),
        admission: Admission::FailFast,
        cache,
        request_ids: Vec::new(),
    }
}

fn calls(model: &Model) -> Vec<Vec<String>> {
    model.calls.lock().unwrap().clone()
}

#[tokio::test]
async fn a_repeated_input_is_answered_without_an_invocation_unless_bypassed() {
    let model = Arc::new(Model::default());
    let (c, metrics) = cached(model.clone(), 1 << 20);
    let first = c.invoke(req(&["C C O"], CacheUse::Use)).await.unwrap();
    assert!(!first.was_cached(0));
    let again = c.invoke(req(&["C C O"], CacheUse::Use)).await.unwrap();
    assert!(again.was_cached(0));
    assert_eq!(again.results, first.results);
    assert_eq!(calls(&model).len(), 1);
    let fresh = c.invoke(req(&["C C O"], CacheUse::Bypass)).await.unwrap();
    assert!(!fresh.was_cached(0));
    assert_eq!(calls(&model).len(), 2, "a bypass always asks the model");
    assert_eq!((metrics.cache_hits.get(), metrics.cache_misses.get()), (1, 2));
    // Other parameters are other answers.
    let other = Request { params: Params { n_best: 1, ..P }, ..req(&["C C O"], CacheUse::Use) };
    c.invoke(other).await.unwrap();
    assert_eq!(calls(&model).len(), 3);
}

#[tokio::test]
async fn a_bypass_keeps_the_fresh_answer_when_it_changed() {
    let model = Arc::new(Model::default());
    let (c, _) = cached(model.clone(), 1 << 20);
    let old = c.invoke(req(&["C C O"], CacheUse::Use)).await.unwrap().results;
    // Asked again, answered the same: still held.
    c.invoke(req(&["C C O"], CacheUse::Bypass)).await.unwrap();
    assert_eq!(c.invoke(req(&["C C O"], CacheUse::Use)).await.unwrap().results, old);
    model.redeployed.store(true, Ordering::SeqCst);
    let fresh = c.invoke(req(&["C C O"], CacheUse::Bypass)).await.unwrap().results;
    assert_ne!(fresh, old);
    let again = c.invoke(req(&["C C O"], CacheUse::Use)).await.unwrap();
    assert!(again.was_cached(0));
    assert_eq!(again.results, fresh, "the cache holds the new model's answer");
    assert_eq!(calls(&model).len(), 3);
}

#[tokio::test]
async fn only_the_misses_of_a_request_are_sent_each_once() {
    let model = Arc::new(Model::default());
    let (c, _) = cached(model.clone(), 1 << 20);
    c.invoke(req(&["A", "B"], CacheUse::Use)).await.unwrap();
    let inv = c.invoke(req(&["B", "C", "A", "C", "D"], CacheUse::Use)).await.unwrap();
    assert_eq!(calls(&model), vec![vec!["A", "B"], vec!["C", "D"]]);
    assert_eq!(inv.cached, vec![true, false, true, false, false]);
    for (input, result) in ["B", "C", "A", "C", "D"].iter().zip(&inv.results) {
        assert_eq!(*result, demo::hypotheses(input, P), "{input}");
    }
}

#[tokio::test]
async fn errors_and_answers_that_do_not_fit_are_never_kept() {
    let model = Arc::new(Model::default());
    let (c, _) = cached(model.clone(), 1 << 20);
    for _ in 0..2 {
        assert!(c.invoke(req(&["FAIL"], CacheUse::Use)).await.is_err());
        let short = c.invoke(req(&["SHORT", "X"], CacheUse::Use)).await;
        assert!(matches!(short, Err(InferenceError::BadPayload(_))), "{short:?}");
    }
    assert_eq!(calls(&model).len(), 4, "every failing request asked again");
    assert_eq!(c.cache.entry_count(), 0);
}

#[tokio::test]
async fn concurrent_identical_misses_share_one_invocation() {
    let model = Arc::new(Model { gate: Some(Semaphore::new(0)), ..Default::default() });
    let (c, metrics) = cached(model.clone(), 1 << 20);
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.invoke(req(&["C C N"], CacheUse::Use)).await })
        })
        .collect();
    // All five missed (each then asks or waits, before its first await),
    // and the one that asks is in the model.
    while metrics.cache_misses.get() < 5 || model.entered.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    model.gate.as_ref().unwrap().add_permits(1);
    for t in tasks {
        // A bound for failure only (a second invocation would wait forever).
        let answer = tokio::time::timeout(Duration::from_secs(10), t).await.expect("answered by the one invocation");
        assert_eq!(answer.unwrap().unwrap().results[0], demo::hypotheses("C C N", P));
    }
    assert_eq!(calls(&model).len(), 1);
}

#[tokio::test]
async fn when_the_asking_request_goes_away_a_waiter_asks_itself() {
    let model = Arc::new(Model { gate: Some(Semaphore::new(0)), ..Default::default() });
    let (c, metrics) = cached(model.clone(), 1 << 20);
    let owner = {
        let c = c.clone();
        tokio::spawn(async move { c.invoke(req(&["C O"], CacheUse::Use)).await })
    };
    while model.entered.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    let waiter = {
        let c = c.clone();
        tokio::spawn(async move { c.invoke(req(&["C O"], CacheUse::Use)).await })
    };
    while metrics.cache_misses.get() < 2 {
        tokio::task::yield_now().await;
    }
    owner.abort();
    let _ = owner.await;
    model.gate.as_ref().unwrap().add_permits(1);
    assert_eq!(waiter.await.unwrap().unwrap().results[0], demo::hypotheses("C O", P));
    assert_eq!(calls(&model).len(), 2);
    assert!(c.pending().is_empty());
}

#[tokio::test]
async fn the_cache_never_holds_more_than_its_byte_budget() {
    let model = Arc::new(Model::default());
    let budget = 64 * 1024;
    let (c, metrics) = cached(model.clone(), budget);
    // An entry is counted with its attention: 14 x 14 weights per result.
    let one = u64::from(weight(&c.key("x", P), &Arc::new(demo::hypotheses("C C C C C C C C C C C C C O", P))));
    assert!(one > 2 * 14 * 14 * 4, "{one}");
    for i in 0..400 {
        let input = format!("C C C C C C C C C C C C O {i}");
        c.invoke(req(&[&input], CacheUse::Use)).await.unwrap();
        // What the map holds now, evicted or not: at most the budget plus
        // the slack before an eviction and the answer that passed it.
        let held: u64 = c.cache.iter().map(|(k, v)| u64::from(weight(&k, &v))).sum();
        assert!(held <= budget + c.slack + one, "{held} bytes held after {i}");
    }
    assert!(metrics.cache_evictions.get() > 0);
    // The gauges are brought up to date when the metrics are read.
    metrics.refresh();
    assert!(metrics.cache_bytes.get() as u64 <= budget && metrics.cache_bytes.get() > budget as i64 / 2);
    assert!(metrics.render().contains(&format!("translation_cache_bytes {}", metrics.cache_bytes.get())));
}

/// The allocator's own count of what the cache holds (keys, answers, and
/// the cache's bookkeeping per entry), against its budget: `weight` charges
/// what an entry really takes, so the budget bounds the memory. Large entries
/// (attention) and small ones (none), whose bookkeeping weighs more.
#[test]
fn the_byte_budget_bounds_the_memory_the_cache_really_holds() {
    if crate::testing::alone("inference::cache::tests::the_byte_budget_bounds_the_memory_the_cache_really_holds") {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(measure_what_the_cache_holds());
    }
}

async fn measure_what_the_cache_holds() {
    for (params, budget) in [(P, 2 << 20), (Params { attention: false, ..P }, 1 << 20)] {
        // One thread (this test's runtime): its allocations less its frees
        // are what it made and kept.
        let before = crate::testing::allocated_here();
        let model = Arc::new(Model::default());
        let (c, _metrics) = cached(model.clone(), budget);
        let mut peak = 0;
        for i in 0..3_000 {
            let molecule = crate::loadtest::molecules::molecule(i);
            let input = crate::inference::tokenize::Tokenizer::Chars.tokenize(&molecule);
            c.invoke(Request { params, ..req(&[&input], CacheUse::Use) }).await.unwrap();
            model.calls.lock().unwrap().clear();
            peak = peak.max(crate::testing::allocated_here() - before);
        }
        c.cache.run_pending_tasks();
        let held = crate::testing::allocated_here() - before;
        let entries = c.cache.entry_count();
        assert!(entries > 100, "{entries} entries");
        let allowed = (budget + c.slack) as isize;
        let charged: u64 = c.cache.iter().map(|(k, v)| u64::from(weight(&k, &v))).sum();
        assert!(charged <= budget + c.slack, "{charged}");
        assert!(held <= allowed, "{held} bytes held for {entries} entries against {allowed}");
        assert!(peak <= allowed + 64 * 1024, "peak {peak} bytes against {allowed}");
        drop(c);
    }
}
