//! A local Lambda Invoke API emulator, to try the real Lambda path without AWS.
//!
//! ```sh
//! cargo run --example lambda-emulator -- --port 9001 --latency-ms 20
//! AWS_ENDPOINT_URL_LAMBDA=http://127.0.0.1:9001 AWS_REGION=us-east-1 \
//!   AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_EC2_METADATA_DISABLED=true \
//!   TRANSLATION_FUNCTION=translation cargo run --release
//! ```

#[path = "../tests/support/emulator.rs"]
mod emulator;

use std::time::Duration;

use clap::Parser;

#[derive(Parser)]
#[command(about = "A Lambda Invoke API emulator answering with the demo model")]
struct Args {
    /// Address to listen on (loopback only by default).
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    #[arg(long, default_value_t = 9001)]
    port: u16,
    /// Added latency per invocation, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Added latency per input of an invocation, in milliseconds (fractions
    /// allowed): a model's time grows with its batch.
    #[arg(long, default_value_t = 0.0)]
    per_input_ms: f64,
    /// A function error for any input containing this text.
    #[arg(long)]
    poison: Option<String>,
    /// Throttle this many invocations first (HTTP 429).
    #[arg(long, default_value_t = 0)]
    throttle_first: usize,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let behavior = emulator::Behavior {
        latency: Duration::from_millis(args.latency_ms),
        per_input: Duration::from_secs_f64(args.per_input_ms / 1e3),
        poison: args.poison,
        throttle_next: args.throttle_first,
        forget_calls: true,
        ..Default::default()
    };
    let emu = emulator::Emulator::start_on((args.host, args.port).into(), behavior).await;
    println!("lambda emulator listening on {} (AWS_ENDPOINT_URL_LAMBDA={})", emu.addr, emu.url());
    let _ = tokio::signal::ctrl_c().await;
    println!("{} invocations, at most {} at once", emu.call_count(), emu.max_in_flight());
}
