//! `translation-front translate`: bulk translation from the command line, with
//! no server. The same path as `POST /api/v1/translate/batch` (checks, SMILES
//! canonicalization, chunking by beam, fan-out, the Lambda client, CSV), with a
//! progress bar on the terminal and the accuracy at the end.
//!
//! Exit codes: 0 every row translated; 1 some rows failed (they are in the CSV
//! with their error); 2 the files or settings are unusable.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use clap::{Args, ValueEnum};

use crate::config::Config;
use crate::translate::Service;
use crate::translate::batch::{self, BatchInput, Format, Job, Summary};

/// `translation-front translate`: the batch route from the command line.
#[derive(Debug, Clone, Args)]
pub struct TranslateArgs {
    /// Inputs, one per line (SMILES mode: reaction mixtures).
    #[arg(long)]
    pub source: PathBuf,
    /// Expected outputs, one per line, same order: top-k accuracy at the end.
    #[arg(long)]
    pub targets: Option<PathBuf>,
    /// Where to write the CSV (default: standard output).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Beam width (default: DEFAULT_BEAM).
    #[arg(long)]
    pub beam: Option<u32>,
    /// Results per input (default: DEFAULT_N_BEST).
    #[arg(long)]
    pub n_best: Option<u32>,
    /// CSV columns: `standard` (as the API's CSV) or `classic` (the original
    /// app's ID,Sources,Prediction_Tokens,Scores,Predictions,Targets,Correct).
    #[arg(long, value_enum, default_value = "standard")]
    pub columns: Columns,
    /// Fold predictions that are the same molecule (SMILES mode).
    #[arg(long, default_value_t = false)]
    pub fold_duplicates: bool,
    /// No progress bar.
    #[arg(long, default_value_t = false)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Columns {
    Standard,
    Classic,
}

pub async fn run(config: Config, args: TranslateArgs) -> ExitCode {
    let read = |path: &std::path::Path, what: &str| -> Result<Vec<String>, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
        batch::lines(&bytes, what).map_err(|e| format!("{}: {}", path.display(), e.message))
    };
    let input = match (|| {
        let inputs = read(&args.source, "source")?;
        let targets = args.targets.as_deref().map(|t| read(t, "targets")).transpose()?;
        Ok::<_, String>(BatchInput {
            inputs,
            targets,
            beam: args.beam,
            n_best: args.n_best,
            attention: false,
            fold_duplicates: args.fold_duplicates,
            bypass_cache: false,
            resume_from: 0,
        })
    })() {
        Ok(input) => input,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut out: Box<dyn Write + Send> = match &args.out {
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
        Some(path) => match std::fs::File::create(path) {
            Ok(f) => Box::new(std::io::BufWriter::new(f)),
            Err(e) => {
                eprintln!("error: --out {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
    };
    let total = input.inputs.len();
    let format = match args.columns {
        Columns::Standard => Format::Csv,
        Columns::Classic => Format::ClassicCsv,
    };
    let backend = config.backend_name();
    let metrics = crate::telemetry::Metrics::new();
    let warmth = Arc::new(crate::inference::keep_warm::OnVisit::new(config.lambda_warm_on_visit));
    let translator = crate::backend::translator(&config, &metrics, warmth);
    // Nothing tells a command-line job to stop but the end of its input (or ^C).
    let never_stopping = watch::channel(false).1;
    let service = Arc::new(Service::new(translator, &config, crate::chem::pool::pool(), never_stopping));
    if backend == "demo" && !args.quiet {
        eprintln!("note: TRANSLATION_FUNCTION is not set: the built-in demo backend answers, not the model");
    }
    let (tx, mut rx) = mpsc::channel(8);
    let (progress_tx, progress_rx) = watch::channel(0usize);
    let job = tokio::spawn(async move {
        let job = Job::new(&service, input, Default::default()).await?;
        Ok::<_, crate::translate::Error>(job.run(service, format, tx, Some(progress_tx)).await)
    });
    let bar = (!args.quiet).then(|| tokio::spawn(progress_bar(progress_rx, total)));
    let mut write_error = None;
    while let Some(chunk) = rx.recv().await {
        if let Err(e) = out.write_all(&chunk) {
            write_error = Some(e);
            break;
        }
    }
    drop(rx);
    let flushed = out.flush();
    let result = job.await;
    // The bar ends by itself: at the last row, or when the job drops its sender.
    if let Some(bar) = bar {
        let _ = bar.await;
    }
    if let Some(e) = write_error.or(flushed.err()) {
        eprintln!("\nerror: cannot write the CSV: {e}");
        return ExitCode::FAILURE;
    }
    match result {
        Ok(Ok(Some(summary))) => {
            eprintln!("{}", report(&summary));
            if summary.failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Ok(Ok(None)) => {
            eprintln!("\nerror: the output closed before the end");
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            eprintln!("error: {}", e.message);
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: the job failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The closing lines: counts and accuracy.
fn report(s: &Summary) -> String {
    let mut text = format!("{} rows: {} translated, {} failed", s.total, s.total - s.failed, s.failed);
    if let Some(accuracy) = &s.top_k_accuracy {
        let parts: Vec<String> =
            accuracy.iter().enumerate().map(|(k, a)| format!("top-{} {:.1}%", k + 1, a * 100.0)).collect();
        text.push_str(&format!("\naccuracy over {} rows with a target: {}", s.evaluated, parts.join(", ")));
    }
    if s.targets_invalid > 0 {
        text.push_str(&format!("\n{} targets could not be compared (not molecules)", s.targets_invalid));
    }
    text
}

/// Redraws one line on a terminal; elsewhere (a log, CI) a line per 10%.
async fn progress_bar(mut done: watch::Receiver<usize>, total: usize) {
    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut last_tenth = 0;
    loop {
        let n = *done.borrow_and_update();
        let fraction = if total == 0 { 1.0 } else { n as f64 / total as f64 };
        let elapsed = started.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 { n as f64 / elapsed } else { 0.0 };
        let eta = if n > 0 && rate > 0.0 {
            format!(" · about {} s left", ((total - n) as f64 / rate).ceil())
        } else {
            String::new()
        };
        if tty {
            let filled = (fraction * 30.0).round() as usize;
            eprint!(
                "\r[{}{}] {n}/{total} rows {:5.1}% · {rate:.1} rows/s{eta}   ",
                "#".repeat(filled),
                " ".repeat(30 - filled),
                fraction * 100.0
            );
            if n == total {
                eprintln!();
            }
        } else if (fraction * 10.0) as usize > last_tenth || n == total {
            last_tenth = (fraction * 10.0) as usize;
            eprintln!("{n}/{total} rows ({:.0}%)", fraction * 100.0);
        }
        if n >= total || done.changed().await.is_err() {
            return;
        }
        // At most ten redraws a second.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
