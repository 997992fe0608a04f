use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::inference::demo;

/// Counts invocations and their sizes; fails any call holding "POISON";
/// takes `latency` per call.
struct Counting {
    calls: Mutex<Vec<usize>>,
    in_flight: AtomicUsize,
    latency: Duration,
}

impl Translator for Counting {
    fn invoke(&self, request: Request) -> BoxFuture<'_, Result<Invocation, InferenceError>> {
        Box::pin(async move {
            self.calls.lock().unwrap().push(request.inputs.len());
            self.in_flight.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.latency).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if request.inputs.iter().any(|i| i.contains("POISON")) {
                return Err(InferenceError::FunctionError { error_type: "E".into(), message: "poisoned".into() });
            }
            let results = request.inputs.iter().map(|i| demo::hypotheses(i, request.params)).collect();
            Ok(Invocation { results, request_id: None, cached: Vec::new() })
        })
    }
    fn warmup(&self, _: Instant) -> BoxFuture<'_, Result<(), InferenceError>> {
        Box::pin(async { Ok(()) })
    }
    fn backend(&self) -> &'static str {
        "test"
    }
}

fn setup(latency_ms: u64) -> (Arc<Counting>, Coalescing) {
    let inner = Arc::new(Counting {
        calls: Mutex::default(),
        in_flight: AtomicUsize::new(0),
        latency: Duration::from_millis(latency_ms),
    });
    let c = Coalescer::new(inner.clone(), Duration::from_millis(5), Metrics::new());
    (inner, Coalescing(c))
}

const P: Params = Params { beam: 5, n_best: 2, attention: false };

fn req(input: &str, params: Params) -> Request {
    Request {
        inputs: vec![input.to_string()],
        params,
        deadline: Instant::now() + Duration::from_secs(5),
        admission: Admission::FailFast,
        cache: CacheUse::Use,
        request_ids: Vec::new(),
    }
}

#[test]
fn a_poisoned_lock_does_not_stop_coalescing() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let c = Coalescer::new(Arc::new(crate::inference::demo::DemoBackend), Duration::from_millis(5), Metrics::new());
        let poisoner = c.clone();
        let _ = std::thread::spawn(move || {
            let _guard = poisoner.groups.lock().unwrap();
            panic!("poison the lock");
        })
        .join();
        assert!(c.groups.is_poisoned());
        let p = Params { beam: 2, n_best: 1, attention: false };
        let answer =
            c.clone().single("C C O".into(), p, tokio::time::Instant::now() + Duration::from_secs(5), Vec::new()).await;
        assert!(answer.is_ok(), "{answer:?}");
    });
}

#[tokio::test(start_paused = true)]
async fn concurrent_requests_share_invocations_and_get_their_own_answers() {
    let (inner, c) = setup(20);
    let inputs: Vec<String> = (0..64).map(|i| format!("C C {i}")).collect();
    let answers = futures_util::future::join_all(inputs.iter().map(|i| c.invoke(req(i, P)))).await;
    for (i, a) in inputs.iter().zip(answers) {
        assert_eq!(a.unwrap().results[0], demo::hypotheses(i, P));
    }
    let calls = inner.calls.lock().unwrap().clone();
    // Paused time: exact. The first leaves alone; 50 queued behind it fill a
    // group, which leaves; the other 13 leave at the 5 ms max wait.
    assert_eq!(calls, vec![1, 50, 13]);
}

#[tokio::test(start_paused = true)]
async fn the_same_input_twice_in_a_group_is_sent_once() {
    let (inner, c) = setup(20);
    // One leaves alone; the next six (three inputs, twice each) queue
    // behind it and leave as one group of three.
    let inputs = ["C 0", "C 1", "C 2", "C 1", "C 2", "C 3", "C 3"];
    let answers = futures_util::future::join_all(inputs.iter().map(|i| c.invoke(req(i, P)))).await;
    for (i, a) in inputs.iter().zip(answers) {
        assert_eq!(a.unwrap().results[0], demo::hypotheses(i, P));
    }
    assert_eq!(inner.calls.lock().unwrap().clone(), vec![1, 3]);
}

// Paused time: the clock moves only through timers, so an elapsed time
// below the max wait proves no max-wait timer was waited on.
#[tokio::test(start_paused = true)]
async fn one_at_a_time_each_request_leaves_at_once() {
    let (inner, c) = setup(0);
    for i in 0..5 {
        let started = Instant::now();
        c.invoke(req(&format!("C {i}"), P)).await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(5), "no added wait");
    }
    assert_eq!(inner.calls.lock().unwrap().clone(), vec![1; 5]);
}

// A slow function (100 ms) and requests 10 ms apart, against a 5 ms max
// wait: a partner within the wait is unlikely, so though invocations are
// always in flight, each request leaves at once (paused time: exactly the
// function's 100 ms, no more). 1 ms apart, they wait and share.
#[tokio::test(start_paused = true)]
async fn a_request_waits_only_when_a_partner_is_likely() {
    for (gap_ms, grouped) in [(10, false), (1, true)] {
        let (inner, c) = setup(100);
        let c = &c;
        let requests = (0..20u64).map(|i| async move {
            tokio::time::sleep(Duration::from_millis(i * gap_ms)).await;
            let started = Instant::now();
            c.invoke(req(&format!("C {i}"), P)).await.unwrap();
            started.elapsed()
        });
        let took = futures_util::future::join_all(requests).await;
        let calls = inner.calls.lock().unwrap().clone();
        if grouped {
            assert!(calls.len() < 10, "{calls:?}");
        } else {
            assert_eq!(calls, vec![1; 20]);
            assert!(took.iter().all(|t| *t == Duration::from_millis(100)), "{took:?}");
        }
    }
}

// A slow function (100 ms) and a steady stream (one request every 2 ms): many
// invocations are in flight at once, and each return must not send the
// queue early; groups hold what arrives in one max wait (5 ms here).
#[tokio::test(start_paused = true)]
async fn with_slow_invocations_in_flight_groups_fill_for_the_max_wait() {
    let (inner, c) = setup(100);
    let c = Arc::new(c);
    let mut callers = Vec::new();
    for i in 0..200 {
        let c = c.clone();
        callers.push(tokio::spawn(async move {
            let started = Instant::now();
            c.invoke(req(&format!("C {i}"), P)).await.unwrap();
            started.elapsed()
        }));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for caller in callers {
        let took = caller.await.unwrap();
        assert!(took <= Duration::from_millis(100 + 5 + 1), "waited at most the max wait: {took:?}");
    }
    let calls = inner.calls.lock().unwrap().clone();
    assert_eq!(calls.iter().sum::<usize>(), 200);
    let mean = 200.0 / calls.len() as f64;
    assert!(mean >= 2.0, "groups of about 5 ms / 2 ms, not of one: {calls:?}");
}

#[tokio::test(start_paused = true)]
async fn different_parameters_are_never_grouped() {
    let (inner, c) = setup(20);
    // Another n_best: an answer made with the wrong parameters has the wrong length.
    let other = Params { beam: 3, n_best: 1, ..P };
    let futs = (0..10).map(|i| c.invoke(req(&format!("C {i}"), if i % 2 == 0 { P } else { other })));
    let answers = futures_util::future::join_all(futs).await;
    for (i, a) in answers.into_iter().enumerate() {
        let p = if i % 2 == 0 { P } else { other };
        assert_eq!(a.unwrap().results[0], demo::hypotheses(&format!("C {i}"), p));
    }
    let calls = inner.calls.lock().unwrap().clone();
    // Paused time: exact. Per kind, the first leaves alone and the four
    // queued behind it leave together at the max wait.
    let mut sizes = calls.clone();
    sizes.sort();
    assert_eq!(sizes, vec![1, 1, 4, 4], "{calls:?}");
}

#[tokio::test(start_paused = true)]
async fn a_poisoned_input_fails_alone() {
    let (_inner, c) = setup(10);
    let inputs: Vec<String> = (0..16).map(|i| if i == 7 { "POISON".into() } else { format!("C {i}") }).collect();
    let answers = futures_util::future::join_all(inputs.iter().map(|i| c.invoke(req(i, P)))).await;
    let failed: Vec<usize> = answers.iter().enumerate().filter(|(_, a)| a.is_err()).map(|(i, _)| i).collect();
    assert_eq!(failed, vec![7]);
}

#[tokio::test(start_paused = true)]
async fn a_leader_that_goes_away_mid_call_frees_its_slot() {
    let (inner, c) = setup(50);
    let gone = tokio::time::timeout(Duration::from_millis(10), c.invoke(req("C 0", P))).await;
    assert!(gone.is_err(), "dropped mid-call");
    assert!(c.0.groups().is_empty(), "the slot was freed");
    c.invoke(req("C 1", P)).await.unwrap();
    assert_eq!(inner.calls.lock().unwrap().clone(), vec![1, 1]);
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_gives_up_does_not_hurt_the_others() {
    let (_inner, c) = setup(30);
    let first = c.invoke(req("C 0", P));
    let mut short = req("C 1", P);
    short.deadline = Instant::now() + Duration::from_millis(1);
    let dropped = c.invoke(req("C 2", P));
    let others = (3..8).map(|i| c.invoke(req(&format!("C {i}"), P)));
    drop(dropped);
    let (first, short, others) = tokio::join!(first, c.invoke(short), futures_util::future::join_all(others));
    assert!(first.is_ok());
    assert_eq!(short.unwrap_err(), InferenceError::Timeout);
    assert!(others.iter().all(Result::is_ok));
}
