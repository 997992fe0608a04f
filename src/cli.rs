//! The command line: the subcommands and where each one's arguments live. The
//! server's settings are [`Config`]; `loadtest` and `translate` own their flags.

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::loadtest::LoadtestArgs;
use crate::offline::TranslateArgs;

#[derive(Debug, Parser)]
#[command(
    name = "translation-front",
    version,
    about = "Web front end of a sequence-to-sequence model served from AWS Lambda",
    long_about = "Web front end of a sequence-to-sequence model served from AWS Lambda.\n\n\
        With no subcommand it serves the UI and the JSON API. Every flag has an \
        environment fallback (shown as [env: NAME=]). AWS settings come from the \
        standard AWS chain (AWS_REGION, AWS_PROFILE, web identity, AWS_ENDPOINT_URL_LAMBDA)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Serve the UI and the API (the default).
    Serve,
    /// Send one round of keep-warm pings to the Lambda and exit (for a CronJob).
    Warmup,
    /// Exit 0 when the server on LISTEN_ADDR answers /healthz (for container health checks).
    Healthcheck,
    /// Preflight: may this identity invoke TRANSLATION_FUNCTION? (A DryRun
    /// invoke; the function does not run.) Exit 0 yes, 3 not found, 4 access
    /// denied, 5 no credentials, 6 endpoint unreachable, 1 other, 2 not set.
    /// Then, when this identity may read them, the function's reserved
    /// concurrency and the account's limits against what the fleet can ask
    /// for at once (--max-replicas x MAX_INFLIGHT_INVOCATIONS); a shortfall
    /// is a warning, not an exit code.
    Check {
        /// Pods the fleet may run: the HorizontalPodAutoscaler's maxReplicas.
        #[arg(long, default_value_t = 10)]
        max_replicas: u32,
    },
    /// Open-loop load generator: drive a service (and its HPA) at a scheduled rate.
    Loadtest(Box<LoadtestArgs>),
    /// Translate a file without a server, through the same Lambda path, chunking
    /// and fan-out as the batch API; writes CSV and reports accuracy.
    Translate(TranslateArgs),
    /// API keys (API_KEYS_FILE).
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Debug, Clone, Subcommand)]
pub enum KeyCommand {
    /// Print a new random key (give it to its caller) and its entry for the
    /// keys file (which holds only the key's SHA-256).
    New {
        /// The key's name in metrics and logs: letters, digits, '-', '_', '.'.
        #[arg(long)]
        name: String,
    },
}

/// `translation-front key new --name NAME`: the key on standard output's
/// first line, then its entry; exit 2 for a name the file would refuse.
pub fn key_new(name: &str) -> std::process::ExitCode {
    match crate::keys::new_key(name) {
        Ok((key, entry)) => {
            println!("{key}");
            println!();
            println!("# Add to API_KEYS_FILE (the key above is shown once and stored nowhere):");
            print!("{entry}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
