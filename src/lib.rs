//! translation-front: the web front end of a sequence-to-sequence model served
//! from AWS Lambda.
//!
//! # Layout
//!
//! ```text
//! main.rs        parse the command line, init telemetry, run a subcommand
//! cli            the subcommands; each one's flags live with it
//! config         the server's settings, validated once at start
//! chem/          SMILES chemistry through RDKit: canonical forms, drawings; its
//!                rdkit.rs/rdkit.cc bridge is the crate's only foreign code;
//!                pool: the chemistry threads every RDKit call runs on; memo:
//!                RDKit's answers remembered, bounded by their real bytes
//! keys           API keys (API_KEYS_FILE): the file, hashes, rates and daily
//!                quotas on a clock; `key new`
//! rate           a rate as the settings write it (`20/s burst 40`), a leaf
//! memory         what an allocation really takes (what caches are charged)
//! telemetry      tracing init and the per-app Prometheus registry
//! translate/     the product's core, no HTTP: the Service (translator,
//!                reading, limits, chemistry threads) and one translation
//!                (mod); request: the fields, the one beam/n_best parser, the
//!                checks, preparation; view: the n-best list as shown (one
//!                view and one finish for single and batch); batch/: the bulk
//!                job and its encoders (output: the NDJSON lines the API
//!                document describes, CSV); error: the core's Error and the
//!                wire's ErrorCode; json: how answers are written; words
//! backend        the Translator the settings ask for (Lambda or demo, with the
//!                limit, coalescer and cache around it), wired once
//! startup        app_state wires the server's state; Application::build binds
//!                the sockets; run_until drains and stops; warmup/check
//! http/          the web doors onto the core: routes, extractors (extract),
//!                the error mapping (error: each code's status, in one place),
//!                the middleware (metrics: the request log; ratelimit), the
//!                server's bounds (server), pages, the batch route (batch/:
//!                the stream, the export, a client's bound; input: the JSON
//!                and multipart bodies), auth: API keys at the door, mcp: the
//!                MCP tool server (rmcp) on the same core, openapi: the
//!                document assembled from the served types, api_page: its page
//! inference/     the Translator trait and its backends:
//!   answer       the model's answer: Hypothesis, Matrix (attention), probability
//!   protocol/    the Lambda event/result codec (pure: serde, base64, gzip):
//!                mod (event, entry points, validation), envelope, reader
//!   tokenize     chars / whitespace / none tokenizers, and Tokens
//!   lambda       the aws-sdk-lambda backend: deadlines, retries, error mapping,
//!                the preflight
//!   demo         a deterministic in-process backend for use without AWS
//!   cache        the per-pod result cache above the coalescer
//!   limit        the pod-wide cap on invocations in flight
//!   coalesce     groups concurrent single translations into shared invocations
//!   fanout       bulk chunking and bounded concurrency
//!   keep_warm    the per-pod pinger and warm-on-visit
//! loadtest/      the open-loop load generator subcommand (an HTTP client only;
//!                args: its flags; client: http/https connections; request:
//!                one request and its outcome; fleet: the pods behind
//!                --metrics-url; molecules:
//!                distinct valid inputs; threshold: pass/fail; series: the run
//!                second by second and its plot; report; schedule)
//! offline        the `translate` subcommand: the core's batch job, files to
//!                CSV, beside the web server (no HTTP)
//! ```
//!
//! Dependencies point one way, and these are all of them:
//!
//! - `main -> {cli, config, telemetry, startup, loadtest, offline}`;
//!   `cli -> {config, loadtest, offline, keys}` (each subcommand's flags);
//!   `loadtest -> config` (two flag parsers only);
//!   `startup -> {config, telemetry, backend, http, inference, translate}`;
//!   `offline -> {config, telemetry, backend, translate, chem::pool}`.
//! - `http -> translate` (the core); `http -> inference` for the answer's
//!   types (`Matrix`, `Tokens`), `InferenceError`, `keep_warm` (pings on a
//!   page visit) and the demo's answers (the document's example); `http ->
//!   chem` (drawings), `http -> keys` (auth), `http -> telemetry`, `http ->
//!   config`; never the wire
//!   codec (`protocol`) and never `inference::lambda`, so never the AWS SDK.
//! - `translate -> {inference, chem, config}`: no axum, no `AppState`.
//! - `backend -> {config, inference, telemetry}`; `keys -> rate`; `config ->
//!   {rate, keys}` (the keys file is read with the settings).
//! - `inference -> telemetry` (its metrics handles), `inference::cache -> memory`;
//!   `inference::lambda -> protocol
//!   -> answer`. The encoders only the emulator and tests need live in
//!   `tests/support/wire.rs`, not in the library.
//!   Inference knows nothing of HTTP or chemistry: it moves tokenized strings.
//! - `config -> chem` (to check SMILES examples at start), `config ->
//!   inference::tokenize` (the `Tokenizer` it parses into) and `config ->
//!   telemetry` (`LogFormat`); `telemetry` imports nothing of the crate;
//!   `chem` imports only `memory`, a leaf.

// tests/support/wire.rs names the crate as the emulator and examples do; the
// protocol's unit tests include it too.
#[cfg(test)]
extern crate self as translation_front;

pub mod backend;
pub mod chem;
pub mod cli;
pub mod config;
pub mod http;
pub mod inference;
pub mod keys;
pub mod loadtest;
pub mod memory;
pub mod offline;
pub mod rate;
pub mod startup;
pub mod telemetry;
pub mod translate;

/// The allocator of every program of this crate (the service, its examples
/// and tests, so the codec benchmark measures what the service runs). glibc's
/// malloc was a sixth of a translation's CPU at saturation (its arena locks
/// and free-list consolidation between the two workers); mimalloc's
/// thread-local pages cut a request's CPU by about a quarter (73 -> 55 us,
/// docs/performance.md). Transparent huge pages off (`no_thp`): with them an
/// idle pod held 14 MB more. It also replaces `malloc` and `free` for the
/// whole process (`override`), so RDKit's C++ allocations use it too: glibc's
/// malloc under RDKit was ~13% of a SMILES-mode translation; with it gone a
/// distinct molecule costs ~13% less CPU. How soon freed memory goes back to
/// the system is set at start-up ([`memory::tune_allocator`]).
#[cfg(not(test))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The unit tests' allocator: the same, counting each thread's bytes, so a
/// test can weigh what a structure really holds.
#[cfg(test)]
#[global_allocator]
static ALLOCATOR: testing::Counting = testing::Counting;

#[cfg(test)]
mod testing {
    use std::alloc::{GlobalAlloc, Layout};
    use std::cell::Cell;

    thread_local! {
        static NET: Cell<isize> = const { Cell::new(0) };
    }

    /// Bytes this thread has been handed by the allocator (its real block
    /// sizes, not the sizes asked for) less those it has freed.
    pub fn allocated_here() -> isize {
        NET.with(Cell::get)
    }

    /// Whether the calling test is to measure now: true in a process of this
    /// test binary running that test alone; otherwise it starts one, checks
    /// that the test passed there, and answers false. For counts that other
    /// tests would disturb: moka frees evicted entries through a process-wide
    /// epoch collector, so another test's thread can free this test's memory.
    pub fn alone(test: &str) -> bool {
        const VAR: &str = "TRANSLATION_FRONT_TEST_ALONE";
        if std::env::var(VAR).is_ok_and(|t| t == test) {
            return true;
        }
        let exe = std::env::current_exe().expect("the test binary");
        let out = std::process::Command::new(exe)
            .args([test, "--exact", "--test-threads=1", "--nocapture"])
            .env(VAR, test)
            .output()
            .expect("the test binary runs");
        let said = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && said.contains("1 passed"), "{test}, run alone:\n{said}");
        false
    }

    fn add(n: isize) {
        // `try_with`: a thread's last frees come after its locals are gone.
        let _ = NET.try_with(|c| c.set(c.get() + n));
    }

    #[allow(unsafe_code)]
    unsafe extern "C" {
        /// Compiled into the program with mimalloc (libmimalloc-sys).
        fn mi_usable_size(p: *const u8) -> usize;
    }

    #[allow(unsafe_code)]
    fn block(p: *const u8) -> isize {
        if p.is_null() { 0 } else { unsafe { mi_usable_size(p) as isize } }
    }

    pub struct Counting;

    // SAFETY: every call is passed on unchanged to mimalloc; only counts are added.
    #[allow(unsafe_code)]
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let p = unsafe { mimalloc::MiMalloc.alloc(layout) };
            add(block(p));
            p
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            let p = unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) };
            add(block(p));
            p
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            add(-block(ptr));
            unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let before = block(ptr);
            let p = unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) };
            if !p.is_null() {
                add(block(p) - before);
            }
            p
        }
    }
}
