//! The load generator's flags. It is an HTTP client only: none of the server's
//! settings apply to it.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::config::{parse_duration, parse_path};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LoadMode {
    /// POST /api/v1/translate, one input per request.
    Translate,
    /// POST /api/v1/translate/batch with --batch-size inputs per request.
    Batch,
    /// GET of one page (`--path`, default `/`), no Lambda.
    Page,
}

/// `translation-front loadtest`: requests leave on a schedule, never "when the
/// last one returned"; latency counts from the intended send time.
#[derive(Debug, Clone, Args)]
pub struct LoadtestArgs {
    /// Base URL of the service, http:// or https://: inside a cluster the
    /// Service's name, or the load balancer's address (its TLS listener too)
    /// to test the whole path.
    #[arg(long, alias = "target-url", default_value = "http://127.0.0.1:8501")]
    pub url: String,
    /// PEM file of certificates to trust for https:// besides the system's
    /// (a balancer with a private CA's certificate).
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
    /// What each request does.
    #[arg(long, value_enum, default_value = "translate")]
    pub mode: LoadMode,
    /// Constant arrival rate, requests per second (with --duration).
    #[arg(long, conflicts_with = "stages")]
    pub rate: Option<f64>,
    /// How long to run at --rate.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Linear ramps, DURATION:TARGET_RATE, comma separated, from 0 req/s:
    /// e.g. 30s:50,2m:400,1m:400,30s:0.
    #[arg(long)]
    pub stages: Option<String>,
    /// Most requests in flight; a request due when the cap is reached is not
    /// sent and is counted as "not sent on time".
    #[arg(long, default_value_t = 1000)]
    pub max_inflight: usize,
    /// Inputs, one per line, sent in turn. Default: a different valid
    /// molecule every request (6.5 million before they repeat), as the users
    /// of a chemistry service send; one repeated input would measure the
    /// caches, not the service.
    #[arg(long)]
    pub inputs: Option<PathBuf>,
    /// Start at this input (the N-th generated molecule, or line of
    /// --inputs): a second run then sends molecules the service has not seen.
    #[arg(long, default_value_t = 0)]
    pub first_input: u64,
    #[arg(long)]
    pub beam: Option<u32>,
    #[arg(long)]
    pub n_best: Option<u32>,
    /// Ask for attention matrices, as the page does (the default).
    #[arg(long, default_value_t = true, conflicts_with = "no_attention", hide = true)]
    pub attention: bool,
    /// Do not ask for attention matrices.
    #[arg(long, default_value_t = false)]
    pub no_attention: bool,
    /// After each translation, fetch the drawing of its input and of each
    /// valid prediction, as the page does (`/api/v1/depict`).
    #[arg(long, default_value_t = false)]
    pub depict: bool,
    /// The page to GET in page mode (e.g. /about, or /healthz to measure the
    /// HTTP floor).
    #[arg(long, default_value = "/", value_parser = parse_path)]
    pub path: String,
    /// Inputs per request in batch mode.
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Per-request timeout; a request still unanswered then is a `timeout`
    /// error, counted at this latency. Default above the service's own
    /// deadline (LAMBDA_TIMEOUT 55 s + 5 s), so the service's answer is seen.
    #[arg(long, default_value = "65s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// A new connection after this many requests on one (0: as many as the
    /// connection lasts), so pods added during the run get traffic.
    #[arg(long, default_value_t = 0)]
    pub max_requests_per_connection: usize,
    /// Pass/fail criteria, repeatable: p99<800ms, p99_ok<1s, errors<1%,
    /// rate>=95% (of the schedule's mean rate). A failed one exits 1.
    #[arg(long = "threshold", value_name = "EXPR")]
    pub thresholds: Vec<String>,
    /// Stop as soon as a latency or error threshold has failed (checked each
    /// second once 100 requests have ended), to stop spending on a failed run.
    #[arg(long, default_value_t = false)]
    pub abort_on_fail: bool,
    /// Write one line per second (JSON lines; CSV for a .csv name; `-`:
    /// standard output, before the report with --json).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Draw rate, latency, errors and replicas against time into this PNG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// A /metrics URL whose host resolves to every pod (a headless Service,
    /// e.g. http://translation-metrics:9090/metrics): CPU is summed over the
    /// fleet to report CPU per request and the replicas the HPA would settle on.
    #[arg(long)]
    pub metrics_url: Option<String>,
    /// CPU request per pod, for the capacity estimate (250m or 0.25).
    #[arg(long, default_value = "250m")]
    pub cpu_request: String,
    /// HPA target CPU utilization, percent.
    #[arg(long, default_value_t = 75.0)]
    pub target_utilization: f64,
    /// Let the service answer from its result cache. Off by default: every
    /// request is sent with `Cache-Control: no-cache`, so a load test drives
    /// the Lambda (and the autoscaler) however often its inputs repeat.
    #[arg(long, default_value_t = false)]
    pub use_cache: bool,
    /// Print the final report as JSON, on one line.
    #[arg(long, default_value_t = false)]
    pub json: bool,
    /// No progress lines.
    #[arg(long, default_value_t = false)]
    pub quiet: bool,
}
