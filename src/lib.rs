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
//!                rdkit.rs/rdkit.cc bridge is the crate's only foreign code
//! telemetry      tracing init and the per-app Prometheus registry
//! startup        app_state wires the backend; Application::build binds the
//!                sockets; run_until drains and stops; the warmup/check subcommands
//! http/          routes and views; prediction: one input's path (prepare,
//!                predict, view), shared by the API, the page and batch rows;
//!                extract: the body/query/form extractors;
//!                error: maps every error to a status and a body, in one place;
//!                batch/ is the streamed bulk route (mod: the job; input: the
//!                JSON and multipart bodies; output: the NDJSON and CSV encoders);
//!                openapi: the generated API document, api_page: its page;
//!                server.rs is the accept loop and its bounds
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
//!                args: its flags)
//! offline        the `translate` subcommand: the batch route's job, files to CSV
//! ```
//!
//! Dependencies point one way, and these are all of them:
//!
//! - `main -> {cli, config, telemetry, startup, loadtest, offline}`;
//!   `cli -> {config, loadtest, offline}` (each subcommand's flags);
//!   `loadtest -> config` (the built-in examples and two flag parsers only);
//!   `startup -> {config, telemetry, http, inference}`; `offline -> {config, http::batch, startup}`.
//! - `http -> inference`: the trait, its request and error types, the answer's
//!   types (`answer`), `tokenize::Tokens` and `Tokenizer`, and `fanout`'s chunk
//!   plan for batches; never the wire codec (`protocol`) and never
//!   `inference::lambda`, so never the AWS SDK.
//! - `http -> chem`, `http -> telemetry`, `http -> config`.
//! - `inference -> telemetry` (its metrics handles); `inference::lambda -> protocol
//!   -> answer`. The encoders only the emulator and tests need live in
//!   `tests/support/wire.rs`, not in the library.
//!   Inference knows nothing of HTTP or chemistry: it moves tokenized strings.
//! - `config -> chem` (to check SMILES examples at start), `config ->
//!   inference::tokenize` (the `Tokenizer` it parses into); `telemetry -> config`
//!   (`LogFormat` only); `chem` imports nothing of the crate.

// tests/support/wire.rs names the crate as the emulator and examples do; the
// protocol's unit tests include it too.
#[cfg(test)]
extern crate self as translation_front;

pub mod chem;
pub mod cli;
pub mod config;
pub mod http;
pub mod inference;
pub mod loadtest;
pub mod offline;
pub mod startup;
pub mod telemetry;

/// The allocator of every program of this crate (the service, its examples
/// and tests, so the codec benchmark measures what the service runs). glibc's
/// malloc was a sixth of a translation's CPU at saturation (its arena locks
/// and free-list consolidation between the two workers); mimalloc's
/// thread-local pages cut a request's CPU by about a quarter (73 -> 55 us,
/// docs/performance.md). Transparent huge pages off (`no_thp`): with them an
/// idle pod held 14 MB more.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
