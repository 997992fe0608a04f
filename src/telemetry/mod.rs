//! Logging and metrics: tracing initialisation and one Prometheus registry per app.
//!
//! A leaf module. Labels are low-cardinality by construction: route templates,
//! status codes and fixed outcome names, never user text, paths or addresses.

use std::sync::{Arc, Mutex};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use tracing_subscriber::EnvFilter;

pub mod log_buffer;
#[cfg(target_os = "linux")]
mod process;

/// How log lines are written: text for a terminal, JSON lines for a log
/// pipeline (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Initialises the global tracing subscriber. `RUST_LOG` overrides the level.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    // JSON lines keep the target (`access` for request lines), so a log
    // query can select them by field rather than by message text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(matches!(format, LogFormat::Json))
        .with_ansi(ansi)
        .with_writer(log_buffer::Stdout::new());
    // try_init: a second init (tests, subcommands) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// For command-line subcommands whose standard output is data (`translate`
/// writes CSV there): warnings and errors only by default, on stderr.
pub fn init_for_cli(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Metric handles, cheap to clone; all registered in `registry`.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub batches: IntCounterVec,
    /// Translation requests by API key name (`anonymous`, `unknown`) and
    /// outcome: accepted, unauthorized, rate_limited, quota_exceeded.
    pub key_requests: IntCounterVec,
    /// Inputs charged to each key (a batch of 500 is 500).
    pub key_inputs: IntCounterVec,
    /// Keys in force; reloads of API_KEYS_FILE by outcome (ok, failed).
    pub keys_loaded: IntGauge,
    pub keys_reloads: IntCounterVec,
    pub batch_rows: IntCounterVec,
    pub invocations: IntCounterVec,
    pub invocation_duration: HistogramVec,
    pub invocations_in_flight: IntGauge,
    /// The cap beside it (`MAX_INFLIGHT_INVOCATIONS`), so slot use is a ratio.
    pub invocations_limit: IntGauge,
    /// Slots taken: the cap less those free (in flight, and handed to a batch
    /// chunk that has yet to run; read at render).
    pub invocation_slots_taken: IntGauge,
    pub retries: IntCounterVec,
    /// Each attempt of a Lambda call apart from the whole call (retries and
    /// backoff excluded): cold starts show here.
    pub attempt_duration: HistogramVec,
    /// Retries not made because the pod's retry budget was spent.
    pub retries_denied: prometheus::IntCounter,
    /// Throttles by Lambda's reason (a fixed set of labels).
    pub throttles: IntCounterVec,
    /// Seconds invocation slots were held, summed: its rate over the limit is
    /// the share of the pod's slots in use (the slot scale signal).
    pub invocation_slot_seconds: prometheus::Counter,
    /// Interactive invocations refused because every slot was taken.
    pub invocation_slots_refused: prometheus::IntCounter,
    pub translated_inputs: IntCounterVec,
    pub warmup_pings: IntCounterVec,
    /// Keep-warm pings started because a page was visited after a quiet spell.
    pub warm_on_visit: prometheus::IntCounter,
    pub coalesce_group_size: Histogram,
    pub coalesce_wait: Histogram,
    /// Single translations queued behind an invocation of their kind, not yet sent.
    pub coalesce_queued: IntGauge,
    /// Chemistry jobs waiting for a chemistry thread, and running on one;
    /// bytes held by the memos of RDKit's answers (read at render).
    pub chemistry_queued: IntGauge,
    pub chemistry_running: IntGauge,
    pub chemistry_memo_bytes: IntGauge,
    /// Open client connections on the UI/API listener.
    pub connections_open: IntGauge,
    /// The result cache: inputs answered from it, inputs it did not hold,
    /// entries it dropped to stay in its byte budget, and its size.
    pub cache_hits: prometheus::IntCounter,
    pub cache_misses: prometheus::IntCounter,
    pub cache_evictions: prometheus::IntCounter,
    pub cache_bytes: IntGauge,
    pub cache_entries: IntGauge,
    /// Run before each render: gauges whose value is cheaper to read when
    /// asked than to keep current on every request (the cache's size).
    refreshers: Arc<Mutex<Vec<Refresher>>>,
}

type Refresher = Box<dyn Fn() + Send + Sync>;

/// Past the function's timeout (55 s), up to a long batch's quarter hour.
const LATENCY_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0];

/// The `status_class` label of a status code: `2xx` … `5xx`.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route template, status and error code (`none` when the request succeeded)",
            ),
            &["route", "method", "status", "code"],
        )
        .unwrap();
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request duration by route template and status class (2xx, 4xx, 5xx)",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route", "status_class"],
        )
        .unwrap();
        let batches = IntCounterVec::new(
            Opts::new(
                "batches_total",
                "Batches by how they ended: completed, interrupted (shutdown), client_left, failed (a fault)",
            ),
            &["ended"],
        )
        .unwrap();
        let key_requests = IntCounterVec::new(
            Opts::new(
                "api_key_requests_total",
                "Translation requests by API key name (anonymous: none sent; unknown: not one of ours) and outcome",
            ),
            &["key", "outcome"],
        )
        .unwrap();
        let key_inputs = IntCounterVec::new(
            Opts::new("api_key_inputs_total", "Inputs charged to each API key's daily quota"),
            &["key"],
        )
        .unwrap();
        let keys_loaded = IntGauge::new("api_keys_loaded", "API keys in force (API_KEYS_FILE)").unwrap();
        let keys_reloads = IntCounterVec::new(
            Opts::new("api_keys_reloads_total", "Reloads of API_KEYS_FILE after it changed, by outcome (ok, failed)"),
            &["outcome"],
        )
        .unwrap();
        let batch_rows = IntCounterVec::new(
            Opts::new("batch_rows_total", "Batch rows written, by outcome: translated or failed"),
            &["outcome"],
        )
        .unwrap();
        let invocations = IntCounterVec::new(
            Opts::new(
                "lambda_invocations_total",
                "Lambda invocations by outcome (ok, function_error, throttled, timeout, bad_payload, unavailable)",
            ),
            &["outcome"],
        )
        .unwrap();
        let invocation_duration = HistogramVec::new(
            HistogramOpts::new(
                "lambda_invocation_duration_seconds",
                "Duration of one Lambda invocation, retries included",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["outcome"],
        )
        .unwrap();
        let invocations_in_flight =
            IntGauge::new("lambda_invocations_in_flight", "Lambda invocations in flight on this pod").unwrap();
        let invocations_limit = IntGauge::new(
            "lambda_invocations_limit",
            "Most Lambda invocations in flight on this pod (MAX_INFLIGHT_INVOCATIONS)",
        )
        .unwrap();
        let invocation_slots_taken = IntGauge::new(
            "lambda_invocation_slots_taken",
            "Invocation slots taken (lambda_invocations_limit less those free): in flight, or handed to a batch chunk \
             about to run",
        )
        .unwrap();
        let build_info = prometheus::IntGaugeVec::new(
            Opts::new("build_info", "The version of translation-front serving (always 1)"),
            &["version"],
        )
        .unwrap();
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let retries =
            IntCounterVec::new(Opts::new("lambda_retries_total", "Lambda calls retried, by reason"), &["reason"])
                .unwrap();
        let attempt_duration = HistogramVec::new(
            HistogramOpts::new(
                "lambda_attempt_duration_seconds",
                "Duration of one attempt of a Lambda invocation, by outcome (ok, throttled, server_error, timeout, \
                 error); the whole call, retries included, is lambda_invocation_duration_seconds",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["outcome"],
        )
        .unwrap();
        let retries_denied = prometheus::IntCounter::new(
            "lambda_retries_denied_total",
            "Lambda retries not made because the pod's retry budget (a tenth of calls) was spent",
        )
        .unwrap();
        let throttles = IntCounterVec::new(
            Opts::new("lambda_throttles_total", "Lambda throttles (HTTP 429), by the reason Lambda gave"),
            &["reason"],
        )
        .unwrap();
        let invocation_slot_seconds = prometheus::Counter::new(
            "lambda_invocation_slot_seconds_total",
            "Seconds invocation slots were held; rate() / lambda_invocations_limit is the share of slots in use",
        )
        .unwrap();
        let invocation_slots_refused = prometheus::IntCounter::new(
            "lambda_invocation_slots_refused_total",
            "Single translations refused 503 overloaded because every invocation slot was taken",
        )
        .unwrap();
        let translated_inputs = IntCounterVec::new(
            Opts::new("translated_inputs_total", "Inputs sent to the model, by path (single or batch)"),
            &["path"],
        )
        .unwrap();
        let warmup_pings =
            IntCounterVec::new(Opts::new("lambda_warmup_pings_total", "Keep-warm pings by outcome"), &["outcome"])
                .unwrap();
        let warm_on_visit = prometheus::IntCounter::new(
            "lambda_warm_on_visit_total",
            "Keep-warm pings started by a page visit after the function was idle",
        )
        .unwrap();
        let coalesce_group_size = Histogram::with_opts(
            HistogramOpts::new("coalesce_group_size", "Single translations sharing one invocation")
                .buckets(vec![1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 50.0, 64.0, 100.0]),
        )
        .unwrap();
        let coalesce_wait = Histogram::with_opts(
            HistogramOpts::new("coalesce_queue_wait_seconds", "Time a single translation waited to be sent")
                .buckets(vec![0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0]),
        )
        .unwrap();

        let coalesce_queued = IntGauge::new(
            "coalesce_queued",
            "Single translations waiting to share an invocation with others of their kind",
        )
        .unwrap();

        let chemistry_queued = IntGauge::new(
            "chemistry_queued",
            "Chemistry jobs (a request's RDKit work, a batch's rows or chunk) waiting for a chemistry thread",
        )
        .unwrap();
        let chemistry_running =
            IntGauge::new("chemistry_running", "Chemistry jobs running (at most one per chemistry thread)").unwrap();
        let chemistry_memo_bytes = IntGauge::new(
            "chemistry_memo_bytes",
            "Bytes held by the memos of RDKit's answers (canonical forms of inputs and predictions)",
        )
        .unwrap();

        let connections_open =
            IntGauge::new("http_connections_open", "Open client connections on the UI/API listener").unwrap();
        let cache_hits =
            prometheus::IntCounter::new("translation_cache_hits_total", "Inputs answered from the result cache")
                .unwrap();
        let cache_misses = prometheus::IntCounter::new(
            "translation_cache_misses_total",
            "Inputs the result cache did not hold (sent to the model)",
        )
        .unwrap();
        let cache_evictions = prometheus::IntCounter::new(
            "translation_cache_evictions_total",
            "Entries dropped from the result cache to keep within CACHE_MAX_BYTES",
        )
        .unwrap();
        let cache_bytes = IntGauge::new("translation_cache_bytes", "Estimated bytes held by the result cache").unwrap();
        let cache_entries = IntGauge::new("translation_cache_entries", "Entries in the result cache").unwrap();
        for c in [
            Box::new(cache_hits.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(cache_misses.clone()),
            Box::new(cache_evictions.clone()),
            Box::new(cache_bytes.clone()),
            Box::new(cache_entries.clone()),
            Box::new(connections_open.clone()),
            Box::new(http_requests.clone()),
            Box::new(http_duration.clone()),
            Box::new(batches.clone()),
            Box::new(batch_rows.clone()),
            Box::new(key_requests.clone()),
            Box::new(key_inputs.clone()),
            Box::new(keys_loaded.clone()),
            Box::new(keys_reloads.clone()),
            Box::new(invocations.clone()),
            Box::new(invocation_duration.clone()),
            Box::new(invocations_in_flight.clone()),
            Box::new(invocations_limit.clone()),
            Box::new(invocation_slots_taken.clone()),
            Box::new(build_info),
            Box::new(retries.clone()),
            Box::new(retries_denied.clone()),
            Box::new(attempt_duration.clone()),
            Box::new(throttles.clone()),
            Box::new(invocation_slot_seconds.clone()),
            Box::new(invocation_slots_refused.clone()),
            Box::new(translated_inputs.clone()),
            Box::new(warmup_pings.clone()),
            Box::new(warm_on_visit.clone()),
            Box::new(coalesce_group_size.clone()),
            Box::new(coalesce_wait.clone()),
            Box::new(coalesce_queued.clone()),
            Box::new(chemistry_queued.clone()),
            Box::new(chemistry_running.clone()),
            Box::new(chemistry_memo_bytes.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(process::ProcessCollector::new()))
            .expect("process collector registers once per registry");

        Self {
            registry,
            http_requests,
            http_duration,
            batches,
            key_requests,
            key_inputs,
            keys_loaded,
            keys_reloads,
            batch_rows,
            invocations,
            invocation_duration,
            invocations_in_flight,
            invocations_limit,
            invocation_slots_taken,
            retries,
            retries_denied,
            attempt_duration,
            throttles,
            invocation_slot_seconds,
            invocation_slots_refused,
            translated_inputs,
            warmup_pings,
            warm_on_visit,
            coalesce_group_size,
            coalesce_wait,
            coalesce_queued,
            chemistry_queued,
            chemistry_running,
            chemistry_memo_bytes,
            connections_open,
            cache_hits,
            cache_misses,
            cache_evictions,
            cache_bytes,
            cache_entries,
            refreshers: Arc::default(),
        }
    }

    /// Runs `refresh` before every render (and [`Metrics::refresh`]).
    pub fn on_render(&self, refresh: impl Fn() + Send + Sync + 'static) {
        self.refreshers().push(Box::new(refresh));
    }

    /// Brings the gauges kept by [`Metrics::on_render`] up to date.
    pub fn refresh(&self) {
        for r in self.refreshers().iter() {
            r();
        }
    }

    fn refreshers(&self) -> std::sync::MutexGuard<'_, Vec<Refresher>> {
        self.refreshers.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The registry in Prometheus text format.
    pub fn render(&self) -> String {
        self.refresh();
        let mut buf = Vec::with_capacity(8 * 1024);
        // Encoding into a Vec cannot fail on I/O; a failure would be a bug in a collector.
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("metrics encode");
        String::from_utf8(buf).expect("prometheus text is UTF-8")
    }
}

/// One more in a gauge while this lives: the gauge stays right even when the
/// future holding it is dropped halfway (a client gone, a timeout).
pub struct Held<'a>(&'a IntGauge);

impl<'a> Held<'a> {
    pub fn enter(gauge: &'a IntGauge) -> Self {
        gauge.inc();
        Held(gauge)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
