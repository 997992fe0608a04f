//! The product's core: one translation and a batch of them, with no HTTP.
//!
//! A [`Service`] holds what a translation needs (the translator, how texts are
//! read, the limits, the chemistry threads); every door uses it the same way:
//! the JSON API, the page, the batch route and the `translate` subcommand.
//! Failures are the core's own [`Error`], given an HTTP status in one place
//! (`http::error`).
//!
//! - `request`: the request's fields, the one parser of beam and n_best, the
//!   checks, and the input's preparation (canonical SMILES, tokens);
//! - `view`: the n-best list as shown (one `view` and one `finish` for single
//!   translations and batch rows);
//! - `batch/`: the bulk job (chunks, fan-out, the stream) and its encoders;
//! - `words`: numbers in words for people; `json`: how answers are written;
//! - this file: the `Service` and one translation (`predict`).

pub mod atom_map;
pub mod batch;
pub mod error;
pub mod json;
pub mod request;
pub mod view;
pub mod words;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

pub use error::{Error, ErrorCode};
pub use request::{Prepared, TranslateInput};
pub use view::{PredictionView, TargetView, TranslationView};

use crate::chem;
use crate::chem::pool::{self, ClientKey, Pool, PoolError};
use crate::config::{Config, InputFormat};
use crate::inference::tokenize::Tokenizer;
use crate::inference::{Admission, CacheUse, Params, Request, Translator};

/// Said when an input's stereochemistry was removed (the model reads
/// molecules without it).
pub const STEREO_REMOVED: &str = "Stereochemistry (@, /, \\) was removed from the input: the model reads molecules \
    without it, so its predictions carry none from the input.";

/// How texts are read and predictions shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    pub tokenizer: Tokenizer,
    pub format: InputFormat,
}

/// The bounds a translation keeps to (from the settings of the same names).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_input_chars: usize,
    pub default_beam: u32,
    pub max_beam: u32,
    pub default_n_best: u32,
    pub max_attention_cells: usize,
    pub max_batch_inputs: usize,
    /// The deadline of one translation's invocation.
    pub lambda_timeout: Duration,
    /// The deadline of each batch chunk's invocation.
    pub lambda_batch_timeout: Duration,
    /// Chunks of one batch in flight at once.
    pub lambda_fan_out: usize,
    /// A batch whose reader takes nothing for this long stops.
    pub batch_write_stall: Duration,
}

impl Limits {
    pub fn from_config(c: &Config) -> Self {
        Limits {
            max_input_chars: c.max_input_chars,
            default_beam: c.default_beam,
            max_beam: c.max_beam,
            default_n_best: c.default_n_best,
            max_attention_cells: c.max_attention_cells,
            max_batch_inputs: c.max_batch_inputs,
            lambda_timeout: c.lambda_timeout,
            lambda_batch_timeout: c.lambda_batch_timeout,
            lambda_fan_out: c.lambda_fan_out.max(1),
            batch_write_stall: c.batch_write_stall,
        }
    }
}

/// The settings' defaults (for tests).
#[cfg(test)]
impl Default for Limits {
    fn default() -> Self {
        Limits::from_config(&Config::from_args(&[]).expect("the defaults are valid settings"))
    }
}

/// Who asks: their chemistry takes turns with other clients' (`chem::pool`),
/// and their request id goes with the invocation to the function's log.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub client: ClientKey,
    pub request_id: Option<String>,
}

/// Everything a translation needs, shared by every request; no per-user state.
pub struct Service {
    pub translator: Arc<dyn Translator>,
    pub reading: Reading,
    pub limits: Limits,
    /// The chemistry threads every RDKit call runs on.
    pub chemistry: &'static Pool,
    /// Turns true when the server stops taking work: running batches end
    /// with an `interrupted` line.
    pub stopping: watch::Receiver<bool>,
}

impl Service {
    pub fn new(
        translator: Arc<dyn Translator>,
        config: &Config,
        chemistry: &'static Pool,
        stopping: watch::Receiver<bool>,
    ) -> Self {
        let reading = Reading { tokenizer: config.tokenizer, format: config.input_format };
        Service { translator, reading, limits: Limits::from_config(config), chemistry, stopping }
    }

    /// Runs `f` now when it is cheap (text mode, or RDKit's answers
    /// remembered), else on the chemistry threads at the caller's turn: the
    /// async workers keep serving, and no thread is made for the occasion.
    /// When the pool's queue is full the caller is told the server is busy.
    async fn chemistry<T: Send + 'static>(
        &self,
        caller: &Caller,
        cheap: bool,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        if cheap {
            return Ok(f());
        }
        self.chemistry.run(caller.client, pool::Admission::FailFast, f).await.map_err(|e| match e {
            PoolError::Busy => {
                Error::busy("the server has too much chemistry waiting; try again shortly", Duration::from_secs(1))
            }
            PoolError::Failed => Error::internal("the chemistry of this request failed"),
        })
    }

    /// One SMILES in its canonical form ([`request::canonical`]), on the
    /// chemistry threads at the caller's turn unless RDKit's answer is
    /// remembered.
    pub async fn canonical(&self, text: &str, caller: &Caller) -> Result<String, Error> {
        let (limits, owned) = (self.limits.clone(), text.to_string());
        let cheap = chem::prepared_already(text);
        self.chemistry(caller, cheap, move || request::canonical(&limits, &owned, "SMILES")).await?
    }

    /// A translation's predictions as SDF records (2D coordinates are RDKit
    /// work: on the chemistry threads at the caller's turn).
    pub async fn sdf(&self, view: TranslationView, caller: &Caller) -> Result<Vec<u8>, Error> {
        self.chemistry(caller, false, move || batch::view_sdf(&view)).await
    }

    /// Checks, translates one text and builds its view. Also returns the
    /// Lambda request id, for the log.
    pub async fn predict(
        &self,
        input: TranslateInput,
        caller: &Caller,
    ) -> Result<(TranslationView, Option<String>), Error> {
        let started = Instant::now();
        let (reading, limits) = (self.reading, &self.limits);
        let mut params = request::params(limits, input.beam, input.n_best, input.attention.unwrap_or(true))?;
        let target = input.target.as_deref().filter(|t| !t.trim().is_empty());
        let texts: Vec<&str> = std::iter::once(input.text.as_str()).chain(target).collect();
        let cheap = request::preparation_is_cheap(reading, &texts);
        let (job_limits, text, job_target) = (limits.clone(), input.text.clone(), target.map(String::from));
        let (prepared, target_prepared) = self
            .chemistry(caller, cheap, move || {
                let prepared = request::prepare(reading, &job_limits, &text, "text")?;
                let target = job_target.map(|t| request::prepare(reading, &job_limits, &t, "target")).transpose()?;
                Ok::<_, Error>((prepared, target))
            })
            .await??;
        // The output's length is unknown before the answer: estimate it as the
        // input's (products are rarely longer than their reactants), and do not
        // even ask for attention that would not fit.
        let source_tokens = crate::inference::tokenize::split_tokens(&prepared.tokenized).len();
        let mut omitted = None;
        if params.attention {
            omitted = view::attention_over_budget(
                source_tokens * source_tokens * params.n_best as usize,
                limits.max_attention_cells,
            );
            params.attention = omitted.is_none();
        }
        // When every result's attention would not fit but one result's would,
        // result 1's is asked for beside the answer (the same beam gives the
        // same best result): a long input still gets its first map.
        let first_only =
            omitted.is_some() && params.n_best > 1 && source_tokens * source_tokens <= limits.max_attention_cells;
        let request = |params: Params| Request {
            inputs: vec![prepared.tokenized.clone()],
            params,
            deadline: started + limits.lambda_timeout,
            admission: Admission::FailFast,
            cache: if input.cache == Some(false) { CacheUse::Bypass } else { CacheUse::Use },
            request_ids: caller.request_id.iter().cloned().collect(),
        };
        let (invocation, first) = if first_only {
            let one = Params { n_best: 1, attention: true, ..params };
            let (all, first) =
                tokio::join!(self.translator.invoke(request(params)), self.translator.invoke(request(one)));
            (all, first.ok())
        } else {
            (self.translator.invoke(request(params)).await, None)
        };
        let invocation = invocation?;
        let cached = invocation.was_cached(0);
        let mut hypotheses = invocation.results.into_iter().next().unwrap_or_default();
        let first = first.and_then(|f| f.results.into_iter().next()).and_then(|h| h.into_iter().next());
        let mut first_attached = false;
        if let (Some(first), Some(top)) = (first, hypotheses.first_mut())
            && first.tokens == top.tokens
            && first.attention.as_ref().is_some_and(|m| m.rows() * m.cols() <= limits.max_attention_cells)
        {
            top.attention = first.attention;
            first_attached = top.attention.is_some();
        }
        let cheap = view::view_is_cheap(reading, &hypotheses);
        let text = input.text;
        let mut view =
            self.chemistry(caller, cheap, move || view::view(reading, text, prepared, hypotheses, started)).await?;
        if reading.format == InputFormat::Smiles && chem::has_stereo(&view.input) {
            view.notices.push(STEREO_REMOVED.to_string());
        }
        view.attention_omitted = omitted.is_some();
        view.attention_omitted_reason = match omitted {
            Some(why) if first_attached => Some(format!("only result 1 has attention: {why}")),
            other => other,
        };
        view.cached = cached;
        let key = target.zip(target_prepared.as_ref()).map(|(t, p)| view::target_key(reading.tokenizer, t, p));
        let fold = input.fold_duplicates == Some(true);
        let correct_rank = view::finish(reading.tokenizer, &mut view, limits.max_attention_cells, fold, key.as_deref());
        if let (Some(text), Some(prepared)) = (target, target_prepared) {
            view.target = Some(TargetView { text: text.to_string(), canonical: prepared.canonical, correct_rank });
        }
        Ok((view, invocation.request_id))
    }
}

#[cfg(test)]
mod tests;
