//! The chemistry threads: every RDKit call a request needs runs here, on a
//! fixed set of long-lived threads (one per core), never on the async workers
//! and never on a thread made for the occasion.
//!
//! Why not `block_in_place` or `spawn_blocking`: both hand the work to threads
//! that tokio makes and retires as load comes and goes. Under a load test of
//! distinct molecules that meant ~40 threads, each with the allocator's pages
//! of its own, and memory freed on one thread but allocated on another: the
//! pod's RSS climbed past 400 MB. With a fixed set it stays flat
//! (docs/performance.md, "Memory over minutes").
//!
//! Jobs wait in one queue per client, taken in turns (round robin), so one
//! client's many jobs wait behind each other, not in front of everyone. A job
//! whose caller has gone (its future dropped: the client left, the deadline
//! passed) is dropped unrun when its turn comes.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, LazyLock, Mutex};

type Job = Box<dyn FnOnce() + Send>;

/// Why a job did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The queue is full, or a single request's job waited longer than a job
    /// may run (`chem::budget`): the pod has more chemistry waiting than it
    /// can do soon.
    #[error("chemistry is busy")]
    Busy,
    /// The job panicked (RDKit threw something the bridge did not turn into an error).
    #[error("chemistry failed")]
    Failed,
}

/// Who a job is for: jobs of one client take turns with other clients' jobs.
pub type ClientKey = u64;

/// Whether a caller would rather wait than be told the pool is busy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Refused (`Busy`) when `MAX_QUEUED` jobs are waiting: single requests.
    FailFast,
    /// Always queued: a batch has at most one job waiting at a time, so
    /// batches are bounded by the connections that carry them.
    Wait,
}

/// Jobs waiting at most, before `FailFast` callers are refused.
pub const MAX_QUEUED: usize = 1024;

#[derive(Default)]
struct Queues {
    by_client: HashMap<ClientKey, VecDeque<Job>>,
    /// Clients with jobs waiting, in the order they get their next turn.
    turns: VecDeque<ClientKey>,
    queued: usize,
}

impl Queues {
    fn push(&mut self, client: ClientKey, job: Job) {
        let jobs = self.by_client.entry(client).or_default();
        if jobs.is_empty() {
            self.turns.push_back(client);
        }
        jobs.push_back(job);
        self.queued += 1;
    }

    fn pop(&mut self) -> Option<Job> {
        let client = self.turns.pop_front()?;
        let jobs = self.by_client.get_mut(&client).expect("a client in turns has jobs");
        let job = jobs.pop_front().expect("a client in turns has jobs");
        if jobs.is_empty() {
            self.by_client.remove(&client);
        } else {
            self.turns.push_back(client);
        }
        self.queued -= 1;
        Some(job)
    }
}

pub struct Pool {
    queues: Mutex<Queues>,
    ready: Condvar,
    running: AtomicUsize,
    threads: usize,
}

static POOL: LazyLock<&'static Pool> = LazyLock::new(|| {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    Pool::start(threads)
});

/// The process's chemistry threads (started on first use).
pub fn pool() -> &'static Pool {
    &POOL
}

impl Pool {
    /// Starts `threads` chemistry threads; they live as long as the process.
    pub fn start(threads: usize) -> &'static Pool {
        let pool: &'static Pool = Box::leak(Box::new(Pool {
            queues: Mutex::new(Queues::default()),
            ready: Condvar::new(),
            running: AtomicUsize::new(0),
            threads: threads.max(1),
        }));
        for i in 0..pool.threads {
            std::thread::Builder::new()
                .name(format!("chemistry-{i}"))
                .spawn(move || pool.work())
                .expect("a chemistry thread starts");
        }
        pool
    }

    fn work(&self) {
        loop {
            let job = {
                let mut q = self.queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                loop {
                    if let Some(job) = q.pop() {
                        break job;
                    }
                    q = self.ready.wait(q).unwrap_or_else(std::sync::PoisonError::into_inner);
                }
            };
            self.running.fetch_add(1, Ordering::Relaxed);
            job();
            self.running.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Runs `f` on a chemistry thread at `client`'s turn and waits for it.
    /// Dropping the returned future before its turn means `f` never runs.
    pub async fn run<T, F>(&self, client: ClientKey, admission: Admission, f: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let queued_at = std::time::Instant::now();
        let job: Job = Box::new(move || {
            if tx.is_closed() {
                return; // nobody waits for it any more
            }
            // A single request that waited longer than a job may run is told
            // the pod is busy rather than served late.
            if admission == Admission::FailFast && queued_at.elapsed() > super::budget() {
                let _ = tx.send(Err(PoolError::Busy));
                return;
            }
            // A panic leaves this thread working; the caller hears `Failed`.
            if let Ok(out) = std::panic::catch_unwind(AssertUnwindSafe(|| super::within_budget(f))) {
                let _ = tx.send(Ok(out));
            }
        });
        {
            let mut q = self.queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if admission == Admission::FailFast && q.queued >= MAX_QUEUED {
                return Err(PoolError::Busy);
            }
            q.push(client, job);
        }
        self.ready.notify_one();
        rx.await.unwrap_or(Err(PoolError::Failed))
    }

    /// Jobs waiting for a thread.
    pub fn queued(&self) -> usize {
        self.queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner).queued
    }

    /// Jobs running now (at most `threads`).
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    pub fn threads(&self) -> usize {
        self.threads
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    use super::*;

    /// Blocks the pool's only thread until the returned sender is used.
    async fn occupy(pool: &'static Pool) -> std::sync::mpsc::Sender<()> {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = tokio::sync::oneshot::channel();
        tokio::spawn(pool.run(99, Admission::Wait, move || {
            let _ = started_tx.send(());
            let _ = wait.recv();
        }));
        started.await.unwrap();
        release
    }

    async fn until_queued(pool: &Pool, n: usize) {
        while pool.queued() != n {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn clients_take_turns_whatever_order_their_jobs_came_in() {
        let pool = Pool::start(1);
        let release = occupy(pool).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        // Client 1 queues three jobs before client 2 queues two.
        for (client, name) in [(1, "a1"), (1, "a2"), (1, "a3"), (2, "b1"), (2, "b2")] {
            let order = order.clone();
            waiting.push(tokio::spawn(pool.run(client, Admission::Wait, move || order.lock().unwrap().push(name))));
            until_queued(pool, waiting.len()).await;
        }
        release.send(()).unwrap();
        for w in waiting {
            w.await.unwrap().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["a1", "b1", "a2", "b2", "a3"]);
    }

    #[tokio::test]
    async fn a_job_whose_caller_left_never_runs() {
        let pool = Pool::start(1);
        let release = occupy(pool).await;
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        let abandoned = tokio::spawn(pool.run(1, Admission::Wait, move || flag.store(true, Ordering::SeqCst)));
        until_queued(pool, 1).await;
        abandoned.abort();
        let _ = abandoned.await;
        release.send(()).unwrap();
        // A later job runs after the abandoned one's turn has passed.
        pool.run(2, Admission::Wait, || ()).await.unwrap();
        assert!(!ran.load(Ordering::SeqCst));
        assert_eq!(pool.queued(), 0);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_only_callers_that_would_not_wait() {
        let pool = Pool::start(1);
        let release = occupy(pool).await;
        let mut waiting = Vec::new();
        for _ in 0..MAX_QUEUED {
            waiting.push(tokio::spawn(pool.run(1, Admission::FailFast, || 1)));
        }
        until_queued(pool, MAX_QUEUED).await;
        assert_eq!(pool.run(2, Admission::FailFast, || 2).await, Err(PoolError::Busy));
        let patient = tokio::spawn(pool.run(2, Admission::Wait, || 3));
        until_queued(pool, MAX_QUEUED + 1).await;
        release.send(()).unwrap();
        assert_eq!(patient.await.unwrap(), Ok(3));
        for w in waiting {
            assert_eq!(w.await.unwrap(), Ok(1));
        }
    }

    #[tokio::test]
    async fn a_panicking_job_fails_alone_and_the_thread_keeps_working() {
        let pool = Pool::start(1);
        let failed = pool.run(1, Admission::Wait, || -> u8 { panic!("RDKit threw") }).await;
        assert_eq!(failed, Err(PoolError::Failed));
        assert_eq!(pool.run(1, Admission::Wait, || 7).await, Ok(7));
        let name = pool.run(1, Admission::Wait, || std::thread::current().name().map(String::from)).await;
        assert_eq!(name.unwrap().as_deref(), Some("chemistry-0"));
    }
}
