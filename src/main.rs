use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use translation_front::cli::{Cli, Command, KeyCommand};
use translation_front::{startup, telemetry};

fn main() -> ExitCode {
    translation_front::memory::tune_allocator();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => e.exit(),
        Err(e) => {
            // One clear line, not clap's usage block.
            eprintln!("{}", e.to_string().lines().next().unwrap_or("error: invalid arguments"));
            return ExitCode::from(2);
        }
    };
    // Making a key needs no settings at all.
    if let Some(Command::Key(KeyCommand::New { name })) = &cli.command {
        return translation_front::cli::key_new(name);
    }
    // The load generator is only an HTTP client: the server's settings are not its own.
    let config = match &cli.command {
        Some(Command::Loadtest(_)) => cli.config,
        _ => match cli.config.finish() {
            Ok(config) => config,
            Err(message) => {
                eprintln!("error: {message}");
                return ExitCode::from(2);
            }
        },
    };
    match cli.command {
        Some(Command::Translate(_)) => telemetry::init_for_cli(config.log_format),
        _ => telemetry::init(config.log_format),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if matches!(cli.command, None | Some(Command::Serve)) {
        let status = runtime.block_on(startup::serve_status(config));
        telemetry::log_buffer::flush();
        startup::exit_now(status);
    }
    let code = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => startup::serve(config).await,
            Command::Warmup => startup::warmup(config).await,
            Command::Healthcheck => startup::healthcheck(config).await,
            Command::Check { max_replicas } => startup::check(config, max_replicas).await,
            Command::Loadtest(args) => translation_front::loadtest::run(*args).await,
            Command::Translate(args) => translation_front::offline::run(config, args).await,
            Command::Key(KeyCommand::New { name }) => translation_front::cli::key_new(&name),
        }
    });
    telemetry::log_buffer::flush();
    code
}
