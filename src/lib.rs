//! translation-front: the web front end of a sequence-to-sequence model served
//! from AWS Lambda.
//!
//! # Layout
//!
//! ```text
//! main.rs        parse config, init telemetry, run a subcommand
//! config         every setting, validated once at start (imports only chem)
//! chem/          SMILES chemistry through RDKit: canonical forms, drawings (a leaf;
//!                its rdkit.rs/rdkit.cc bridge is the crate's only foreign code)
//! telemetry      tracing init and the per-app Prometheus registry (a leaf)
//! startup        Application::build binds the sockets; run_until drains and stops
//! http/          routes, extractors, views; maps errors to statuses in one place
//! inference/     the Translator trait and its backends:
//!   protocol     the Lambda event/result codec (pure: serde, base64, gzip)
//!   tokenize     chars / whitespace / none tokenizers
//!   lambda       the aws-sdk-lambda backend: deadlines, retries, error mapping
//!   demo         a deterministic in-process backend for use without AWS
//!   limit        the pod-wide cap on invocations in flight
//!   coalesce     groups concurrent single translations into shared invocations
//!   fanout       bulk chunking and bounded concurrency
//!   keep_warm    the optional per-pod keep-warm pinger
//! loadtest/      the open-loop load generator subcommand (an HTTP client only)
//! offline        the `translate` subcommand: the batch route's job, from files to CSV
//! ```
//!
//! Dependencies point one way: `main -> startup -> {config, telemetry, http,
//! inference}`, `http -> inference` (the trait and its error type only, never the
//! AWS SDK), `http -> chem`, `config -> chem`, `inference::lambda -> protocol`.
//! Inference knows nothing of HTTP or chemistry: it moves tokenized strings.

pub mod chem;
pub mod config;
pub mod http;
pub mod inference;
pub mod loadtest;
pub mod offline;
pub mod startup;
pub mod telemetry;
