//! Every setting, as a flag with an environment fallback, validated once at start.
//!
//! This module imports only `chem` (to check SMILES examples at start) and the
//! `Tokenizer` type it names. A bad
//! setting is reported as one line and the process exits with status 2.
//! (Over 500 lines: one struct of 35 documented settings and their
//! cross-checks, plus its tests; split, the checks would lose sight of each other.)

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// Built-in examples in SMILES mode, used when `EXAMPLES_FILE` is not set: real
/// reaction mixtures (reactants and reagents) from the patent reaction data the
/// model was trained on, as the original app offered them.
/// Each with a name a chemist recognises it by (its reaction or its reagents).
pub const BUILTIN_REACTIONS: &[(&str, &str)] = &[
    ("1-Naphthol and triphenyl phosphite", "CCN.Oc1cccc2ccccc12.[Na+].[OH-].c1ccc(OP(Oc2ccccc2)Oc2ccccc2)cc1"),
    (
        "N-alkylation of azetidine with a mesylate",
        "C1CNC1.CS(=O)(=O)OCCC#Cc1ccc2c(-c3ccc(Br)cc3)nsc2c1.O=C([O-])[O-].[Na+].[Na+]",
    ),
    ("Hydrogenation of a dichlorothiophene", "CCN(CC)CC.CO.COC(=O)c1sc(Cl)c(Cl)c1NC(C)=O.[H][H]"),
    (
        "O-alkylation of a nitroquinolinol",
        "CC1CO1.CCCBr.CCCCCC.CCN(CC)CC.CN(C)P(=O)(N(C)C)N(C)C.COc1cc([N+](=O)[O-])c2ncccc2c1O.O",
    ),
    ("Enone reduction with LiEt3BH", "C1CCOC1.CCOC(=O)CCCCCOc1c(C=CC(=O)CCc2ccccc2)occc1=O.CC[BH-](CC)CC.[Li+]"),
    ("Sonogashira coupling", "C#Cc1ccccc1.CCN(CC)CC.CCN(CC)CCOc1cc(Cl)c(I)cc1Cl.[Cu]I.[Pd]"),
    ("4-Hydroxybenzophenone with HI and KI", "Cl.I.O.O=C(c1ccccc1)c1ccc(O)cc1.[I-].[K+].[NH4+].[OH-]"),
    ("THP-protected pyridine aldehyde", "O=Cc1cncc(Cl)c1COC1CCCCO1.OCc1c(Cl)cncc1Cl"),
];

/// An example the page offers: what it is called (when it has a name) and the
/// input it fills in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub name: Option<String>,
    pub text: String,
}

impl Example {
    /// A line of `EXAMPLES_FILE`: `name<TAB>input`, or the input alone.
    fn parse(line: &str) -> Self {
        match line.split_once('\t') {
            Some((name, text)) if !name.trim().is_empty() => {
                Example { name: Some(name.trim().to_string()), text: text.trim().to_string() }
            }
            Some((_, text)) => Example { name: None, text: text.trim().to_string() },
            None => Example { name: None, text: line.trim().to_string() },
        }
    }
}

/// Built-in examples in text mode.
pub const BUILTIN_EXAMPLES: &[&str] =
    &["CC(C)=O.OCC", "N#Cc1ccccc1", "CC(=O)Oc1ccccc1C(=O)O", "c1ccc2ccccc2c1", "CCN(CC)CC.Cl"];

/// What the model reads (`INPUT_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InputFormat {
    /// SMILES: inputs and targets canonicalized with RDKit (stereochemistry
    /// removed) before tokenizing; predictions canonicalized or marked invalid.
    Smiles,
    /// Plain text, tokenized as TOKENIZER says.
    Text,
}

impl InputFormat {
    pub fn name(self) -> &'static str {
        match self {
            InputFormat::Smiles => "smiles",
            InputFormat::Text => "text",
        }
    }
}

pub use crate::rate::{RateLimit, parse_rate_limit};

/// `ANONYMOUS_RATE`: callers without a key are refused, or limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnonymousRate {
    Refused,
    Limited(RateLimit),
}

/// The anonymous rate when API_KEYS_FILE is set and ANONYMOUS_RATE is not:
/// enough for colleagues on the pages, little for a script without a key.
pub const DEFAULT_ANONYMOUS_RATE: &str = "1/s burst 10";

/// `0` (refused) or a rate as `RATE_LIMIT` writes it.
pub fn parse_anonymous_rate(s: &str) -> Result<AnonymousRate, String> {
    match s.trim() {
        "0" => Ok(AnonymousRate::Refused),
        rate => parse_rate_limit(rate).map(AnonymousRate::Limited).map_err(|e| format!("{e}, or 0 to refuse")),
    }
}

/// `TRUSTED_PROXIES`: networks whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<ipnet::IpNet>);

/// Parses a comma-separated list of CIDRs (a bare address is a /32 or /128).
pub fn parse_cidrs(s: &str) -> Result<TrustedProxies, String> {
    s.split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| {
            c.parse::<ipnet::IpNet>()
                .or_else(|_| c.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("'{c}' is not a CIDR like 10.0.0.0/8 or an address"))
        })
        .collect::<Result<_, _>>()
        .map(TrustedProxies)
}

/// How log lines are written (`LOG_FORMAT`): telemetry's own type.
pub use crate::telemetry::LogFormat;

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address of the UI and API listener.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:8501", global = true)]
    pub listen_addr: SocketAddr,

    /// Address of the Prometheus metrics listener (keep it off the load balancer).
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:9090", global = true)]
    pub metrics_addr: SocketAddr,

    /// Lambda function name or ARN. Unset: the built-in demo backend.
    #[arg(long, env = "TRANSLATION_FUNCTION", global = true)]
    pub translation_function: Option<String>,

    /// Lambda alias or version to invoke.
    #[arg(long, env = "TRANSLATION_QUALIFIER", global = true)]
    pub translation_qualifier: Option<String>,

    /// What the inputs are: SMILES (canonicalized with RDKit first) or text.
    #[arg(long, env = "INPUT_FORMAT", value_enum, default_value = "smiles", global = true)]
    pub input_format: InputFormat,

    /// How input text is split into the tokens the model expects.
    #[arg(long, env = "TOKENIZER", value_enum, default_value = "chars", global = true)]
    pub tokenizer: crate::inference::tokenize::Tokenizer,

    /// Beam width used when a request gives none.
    #[arg(long, env = "DEFAULT_BEAM", default_value_t = 5, global = true)]
    pub default_beam: u32,

    /// Number of results (top-k) used when a request gives none.
    #[arg(long, env = "DEFAULT_N_BEST", default_value_t = 5, global = true)]
    pub default_n_best: u32,

    /// Largest beam width a request may ask for.
    #[arg(long, env = "MAX_BEAM", default_value_t = 10, global = true)]
    pub max_beam: u32,

    /// Longest input, in Unicode characters (code points).
    #[arg(long, env = "MAX_INPUT_CHARS", default_value_t = 2000, global = true)]
    pub max_input_chars: usize,

    /// Most inputs in one bulk request.
    #[arg(long, env = "MAX_BATCH_INPUTS", default_value_t = 10_000, global = true)]
    pub max_batch_inputs: usize,

    /// Largest request body (e.g. 5MiB, 512KiB, 1000000).
    #[arg(long, env = "MAX_BODY_BYTES", default_value = "5MiB", value_parser = parse_bytes, global = true)]
    pub max_body_bytes: usize,

    /// Deadline of one translation, retries included (e.g. 55s, 1500ms).
    #[arg(long, env = "LAMBDA_TIMEOUT", default_value = "55s", value_parser = parse_duration, global = true)]
    pub lambda_timeout: Duration,

    /// Deadline of one batch chunk, retries included: as long as the function's
    /// own timeout (120 s in its template), so a cold start plus a full chunk is
    /// not given up while the function keeps running and billing.
    #[arg(long, env = "LAMBDA_BATCH_TIMEOUT", default_value = "120s", value_parser = parse_duration, global = true)]
    pub lambda_batch_timeout: Duration,

    /// A page visit after the function has been idle this long sends one
    /// keep-warm ping in the background (at most one per pod per period; 0 = off).
    #[arg(long, env = "LAMBDA_WARM_ON_VISIT", default_value = "5m", value_parser = parse_duration, global = true)]
    pub lambda_warm_on_visit: Duration,

    /// SMILES mode: the most atoms in a molecule or mixture the service reads
    /// (counted before any parsing). Inputs and targets over it are 413
    /// too_large; predictions over it are returned as written, marked
    /// `not_canonicalized`. The model's training reactions are a few dozen
    /// atoms; RDKit's cost grows much faster than the atoms.
    #[arg(long, env = "MAX_ATOMS", default_value_t = crate::chem::DEFAULT_MAX_ATOMS, global = true)]
    pub max_atoms: usize,

    /// SMILES mode: the longest one chemistry job may spend in RDKit (a
    /// request's input, its predictions, a batch's slice of rows). Past it no
    /// further molecule is read: predictions come back as written, marked
    /// `not_canonicalized`. A single request whose chemistry waited this long
    /// for a thread is answered 503 overloaded.
    #[arg(long, env = "CHEMISTRY_BUDGET", default_value = "2s", value_parser = parse_duration, global = true)]
    pub chemistry_budget: Duration,

    /// Most attention weights in one response (input tokens x output tokens x
    /// results); above it the answer comes without attention, saying why.
    #[arg(long, env = "MAX_ATTENTION_CELLS", default_value_t = 100_000, global = true)]
    pub max_attention_cells: usize,

    /// Concurrent Lambda invocations per bulk request.
    #[arg(long, env = "LAMBDA_FAN_OUT", default_value_t = 4, global = true)]
    pub lambda_fan_out: usize,

    /// Lambda invocations in flight per pod; past it requests get 503 overloaded.
    #[arg(long, env = "MAX_INFLIGHT_INVOCATIONS", default_value_t = 64, global = true)]
    pub max_inflight_invocations: usize,

    /// Longest wait to group concurrent translations into one invocation, taken
    /// only when a partner is likely within it (0 = off).
    #[arg(long, env = "COALESCE_MAX_WAIT", default_value = "2ms", value_parser = parse_duration, global = true)]
    pub coalesce_max_wait: Duration,

    /// Result cache budget, in estimated bytes of answers held (0 = no cache).
    #[arg(long, env = "CACHE_MAX_BYTES", default_value = "32MiB", value_parser = parse_bytes, global = true)]
    pub cache_max_bytes: usize,

    /// How long an answer is served from the result cache (0 = no cache).
    #[arg(long, env = "CACHE_TTL", default_value = "1h", value_parser = parse_duration, global = true)]
    pub cache_ttl: Duration,

    /// Interval of the per-pod keep-warm pinger (0 = off; prefer one CronJob per cluster).
    #[arg(long, env = "LAMBDA_WARMUP_INTERVAL", default_value = "0", value_parser = parse_duration, global = true)]
    pub lambda_warmup_interval: Duration,

    /// Concurrent pings in one keep-warm round.
    #[arg(long, env = "LAMBDA_WARMUP_CONCURRENCY", default_value_t = 1, global = true)]
    pub lambda_warmup_concurrency: usize,

    /// File of example inputs, one per line, each `name<TAB>input` or the input
    /// alone (default: built-in examples).
    #[arg(long, env = "EXAMPLES_FILE", global = true)]
    pub examples_file: Option<PathBuf>,

    /// The product's name in the pages (default: "Reaction predictor" in SMILES
    /// mode, "Translator" in text mode).
    #[arg(long, env = "APP_TITLE", global = true)]
    pub app_title_setting: Option<String>,

    /// Markdown describing the model: its first paragraph opens the translate
    /// page, all of it the about page (default: built in, by INPUT_FORMAT).
    #[arg(long, env = "MODEL_DESCRIPTION_FILE", global = true)]
    pub model_description_file: Option<PathBuf>,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,

    /// A request head (request line and headers) must arrive within this
    /// (slowloris; also how long a new connection may stay silent).
    #[arg(long, env = "HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration, global = true)]
    pub header_read_timeout: Duration,

    /// A connection that moves no byte for this long is closed (longer than an
    /// AWS ALB's 60 s, so a balancer in front closes first).
    #[arg(long, env = "IDLE_TIMEOUT", default_value = "75s", value_parser = parse_duration, global = true)]
    pub idle_timeout: Duration,

    /// A batch whose client has read nothing for this long while its rows
    /// wait to be sent is stopped, giving back the invocation slots it holds
    /// (without it, a client that stops reading holds them until IDLE_TIMEOUT).
    #[arg(long, env = "BATCH_WRITE_STALL", default_value = "10s", value_parser = parse_duration, global = true)]
    pub batch_write_stall: Duration,

    /// Batches one client may run at once; past it `429 rate_limited` (a
    /// batch runs for minutes, so one client cannot take every bulk slot).
    #[arg(long, env = "MAX_BATCHES_PER_CLIENT", default_value_t = 4, global = true)]
    pub max_batches_per_client: usize,

    /// A request body must arrive within this of its head, however it trickles.
    #[arg(long, env = "BODY_READ_TIMEOUT", default_value = "60s", value_parser = parse_duration, global = true)]
    pub body_read_timeout: Duration,

    /// Open connections per pod; past it new connections wait in the backlog.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 4096, global = true)]
    pub max_connections: usize,

    /// Requests per client, e.g. 20/s, 600/m or '20/s burst 40' (unset: no limit).
    /// Health checks and static assets are never limited.
    #[arg(long, env = "RATE_LIMIT", value_parser = parse_rate_limit, global = true)]
    pub rate_limit: Option<RateLimit>,

    /// Proxies (CIDRs, comma separated) whose X-Forwarded-For names the client
    /// for the rate limit; from any other peer the header is ignored.
    #[arg(long, env = "TRUSTED_PROXIES", default_value = "", value_parser = parse_cidrs, global = true)]
    pub trusted_proxies: TrustedProxies,

    /// API keys: a TOML file of `[[key]]` entries (name, sha256 of the key,
    /// optional rate and daily_inputs), reloaded when it changes. Unset: no
    /// keys, every caller anonymous, as before. `translation-front key new`
    /// makes a key and its entry.
    #[arg(long, env = "API_KEYS_FILE", global = true)]
    pub api_keys_file: Option<PathBuf>,

    /// With API_KEYS_FILE: the rate of callers without a key, per client
    /// (e.g. '1/s burst 10'), or 0: translations need a key (pages still
    /// load). Unset: 1/s burst 10.
    #[arg(long, env = "ANONYMOUS_RATE", value_parser = parse_anonymous_rate, global = true)]
    pub anonymous_rate: Option<AnonymousRate>,

    /// Serve the MCP tool server at `/mcp` (Streamable HTTP, for LLM agents),
    /// behind the same keys and limits as the API.
    #[arg(long, env = "MCP_ENABLED", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub mcp_enabled: bool,

    /// The keys in force at start, read from `api_keys_file` by [`Config::finish`].
    #[arg(skip)]
    pub api_keys: Vec<crate::keys::Entry>,

    /// How long to keep serving after SIGTERM (readiness already 503) before stopping.
    #[arg(long, env = "SHUTDOWN_GRACE", default_value = "5s", value_parser = parse_duration, global = true)]
    pub shutdown_grace: Duration,

    /// Example inputs, loaded from `examples_file` by [`Config::finish`].
    #[arg(skip)]
    pub examples: Vec<Example>,

    /// The title shown, from `APP_TITLE` or the default ([`Config::finish`]).
    #[arg(skip)]
    pub app_title: String,

    /// The model's description (markdown), from `MODEL_DESCRIPTION_FILE` or built in.
    #[arg(skip)]
    pub model_description: String,
}

/// The built-in model descriptions, by input format.
const REACTIONS_DESCRIPTION: &str = include_str!("../templates/descriptions/reactions.md");
const TEXT_DESCRIPTION: &str = include_str!("../templates/descriptions/text.md");
/// A description file larger than this is a mistake (a wrong path), not prose.
const MAX_DESCRIPTION_BYTES: u64 = 64 * 1024;

/// The largest beam any deployment may allow: beyond it the model's cost explodes.
pub const BEAM_CEILING: u32 = 64;

impl Config {
    /// Parses flags alone (tests): the env fallbacks are reset, so a developer's
    /// own `export TRANSLATION_FUNCTION=...` (as the README suggests) changes nothing.
    #[cfg(test)]
    pub(crate) fn from_args(args: &[&str]) -> Result<Config, String> {
        use clap::{CommandFactory, FromArgMatches};
        let mut argv = vec!["translation-front"];
        argv.extend_from_slice(args);
        let command = crate::cli::Cli::command().mut_args(|a| a.env(None));
        let matches = command.try_get_matches_from(argv).map_err(|e| e.to_string())?;
        crate::cli::Cli::from_arg_matches(&matches).map_err(|e| e.to_string())?.config.finish()
    }

    /// Checks the settings against each other and loads the examples file.
    pub fn finish(mut self) -> Result<Self, String> {
        if self.translation_function.as_deref().is_some_and(|f| f.trim().is_empty()) {
            self.translation_function = None;
        }
        if self.translation_qualifier.as_deref().is_some_and(|q| q.trim().is_empty()) {
            self.translation_qualifier = None;
        }
        if !(1..=BEAM_CEILING).contains(&self.max_beam) {
            return Err(format!("MAX_BEAM must be between 1 and {BEAM_CEILING}, got {}", self.max_beam));
        }
        if !(1..=self.max_beam).contains(&self.default_beam) {
            return Err(format!(
                "DEFAULT_BEAM must be between 1 and MAX_BEAM ({}), got {}",
                self.max_beam, self.default_beam
            ));
        }
        if !(1..=self.default_beam).contains(&self.default_n_best) {
            return Err(format!(
                "DEFAULT_N_BEST must be between 1 and DEFAULT_BEAM ({}), got {}",
                self.default_beam, self.default_n_best
            ));
        }
        for (name, value) in [
            ("MAX_INPUT_CHARS", self.max_input_chars),
            ("MAX_BATCH_INPUTS", self.max_batch_inputs),
            ("MAX_BATCHES_PER_CLIENT", self.max_batches_per_client),
            ("LAMBDA_FAN_OUT", self.lambda_fan_out),
            ("MAX_INFLIGHT_INVOCATIONS", self.max_inflight_invocations),
            ("LAMBDA_WARMUP_CONCURRENCY", self.lambda_warmup_concurrency),
            ("MAX_CONNECTIONS", self.max_connections),
            ("MAX_ATTENTION_CELLS", self.max_attention_cells),
            ("MAX_ATOMS", self.max_atoms),
        ] {
            if value == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        if self.max_body_bytes < 1024 {
            return Err(format!("MAX_BODY_BYTES must be at least 1KiB, got {}", self.max_body_bytes));
        }
        if self.lambda_timeout.is_zero() {
            return Err("LAMBDA_TIMEOUT must be more than 0".into());
        }
        for (name, value) in [
            ("LAMBDA_BATCH_TIMEOUT", self.lambda_batch_timeout),
            ("HEADER_READ_TIMEOUT", self.header_read_timeout),
            ("IDLE_TIMEOUT", self.idle_timeout),
            ("BATCH_WRITE_STALL", self.batch_write_stall),
            ("BODY_READ_TIMEOUT", self.body_read_timeout),
            ("CHEMISTRY_BUDGET", self.chemistry_budget),
        ] {
            if value.is_zero() {
                return Err(format!("{name} must be more than 0"));
            }
        }
        let smiles = self.input_format == InputFormat::Smiles;
        self.app_title = match self.app_title_setting.as_deref().map(str::trim) {
            None | Some("") => if smiles { "Reaction predictor" } else { "Translator" }.to_string(),
            Some(t) if t.chars().count() > 80 || t.chars().any(char::is_control) => {
                return Err("APP_TITLE must be one line of at most 80 characters".into());
            }
            Some(t) => t.to_string(),
        };
        self.model_description = match &self.model_description_file {
            None => if smiles { REACTIONS_DESCRIPTION } else { TEXT_DESCRIPTION }.to_string(),
            Some(path) => {
                let size = std::fs::metadata(path)
                    .map_err(|e| format!("MODEL_DESCRIPTION_FILE {}: {e}", path.display()))?
                    .len();
                if size > MAX_DESCRIPTION_BYTES {
                    return Err(format!(
                        "MODEL_DESCRIPTION_FILE {} has {size} bytes; the limit is {MAX_DESCRIPTION_BYTES}",
                        path.display()
                    ));
                }
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("MODEL_DESCRIPTION_FILE {}: {e}", path.display()))?;
                if text.trim().is_empty() {
                    return Err(format!("MODEL_DESCRIPTION_FILE {} is empty", path.display()));
                }
                text
            }
        };
        if let Some(path) = &self.api_keys_file {
            let text = std::fs::read_to_string(path).map_err(|e| format!("API_KEYS_FILE {}: {e}", path.display()))?;
            self.api_keys = crate::keys::parse(&text).map_err(|e| format!("API_KEYS_FILE {}: {e}", path.display()))?;
            if self.anonymous_rate.is_none() {
                self.anonymous_rate = Some(parse_anonymous_rate(DEFAULT_ANONYMOUS_RATE).expect("a valid rate"));
            }
        } else if self.anonymous_rate.is_some() {
            return Err("ANONYMOUS_RATE is for callers without a key: it needs API_KEYS_FILE".into());
        }
        // RDKit's bound is the process's: set before the examples are read with it.
        crate::chem::set_max_atoms(self.max_atoms);
        crate::chem::set_budget(self.chemistry_budget);
        self.examples = match &self.examples_file {
            None if self.input_format == InputFormat::Smiles => BUILTIN_REACTIONS
                .iter()
                .map(|(name, text)| Example { name: Some(name.to_string()), text: text.to_string() })
                .collect(),
            None => BUILTIN_EXAMPLES.iter().map(|s| Example { name: None, text: s.to_string() }).collect(),
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|e| format!("EXAMPLES_FILE {}: {e}", path.display()))?;
                let examples: Vec<Example> =
                    text.lines().filter(|l| !l.trim().is_empty()).map(Example::parse).collect();
                if examples.is_empty() {
                    return Err(format!("EXAMPLES_FILE {} has no examples", path.display()));
                }
                if let Some(i) = examples.iter().position(|e| e.text.is_empty()) {
                    return Err(format!(
                        "EXAMPLES_FILE {} example {}: a name with no input after its tab",
                        path.display(),
                        i + 1
                    ));
                }
                if self.input_format == InputFormat::Smiles {
                    for (i, Example { text: e, .. }) in examples.iter().enumerate() {
                        if let Err(why) = crate::chem::prepare(e) {
                            return Err(format!(
                                "EXAMPLES_FILE {} example {}: '{e}' {why} (INPUT_FORMAT is smiles)",
                                path.display(),
                                i + 1
                            ));
                        }
                    }
                }
                examples
            }
        };
        Ok(self)
    }

    /// Name shown for the backend in `/api/v1/config` and the UI.
    pub fn backend_name(&self) -> &'static str {
        if self.translation_function.is_some() { "lambda" } else { "demo" }
    }
}

/// Parses `55s`, `1500ms`, `2m`, `1h 30m` (humantime), a bare number of seconds, or `0`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s).map_err(|e| format!("'{s}' is not a duration like 55s or 250ms ({e})"))
}

/// Parses a URL path for the load generator's page mode: `/`, `/about`,
/// `/healthz?x=1`.
pub fn parse_path(s: &str) -> Result<String, String> {
    if !s.starts_with('/') {
        return Err(format!("'{s}' is not a path: it must start with /"));
    }
    axum::http::uri::PathAndQuery::try_from(s)
        .map(|p| p.to_string())
        .map_err(|e| format!("'{s}' is not a valid URL path ({e})"))
}

/// Parses a byte size: `5242880`, `512KiB`, `5MiB`, `1MB`, `64kb`.
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: usize = digits.parse().map_err(|_| format!("'{s}' is not a size like 5MiB or 1048576"))?;
    let factor: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => {
            return Err(format!("'{s}' has an unknown unit (use B, KiB, MiB, KB, MB)"));
        }
    };
    n.checked_mul(factor).ok_or_else(|| format!("'{s}' is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        Config::from_args(args)
    }

    #[test]
    fn rate_limits_and_cidrs_parse_or_say_what_they_want() {
        assert_eq!(parse_rate_limit("20/s"), Ok(RateLimit { period: Duration::from_millis(50), burst: 20 }));
        assert_eq!(parse_rate_limit("600/m"), Ok(RateLimit { period: Duration::from_millis(100), burst: 10 }));
        assert_eq!(parse_rate_limit("20/s burst 40").unwrap().burst, 40);
        assert_eq!(parse_rate_limit("1/h").unwrap().burst, 1);
        for bad in ["", "20", "0/s", "20/day", "20/s burst", "20/s burst 0", "x/s"] {
            assert!(parse_rate_limit(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_cidrs("10.0.0.0/8, 192.168.1.1 ,").unwrap().0.len(), 2);
        assert!(parse_cidrs("").unwrap().0.is_empty());
        assert!(parse_cidrs("10.0.0/8").is_err());
    }

    #[test]
    fn durations_accept_units_bare_seconds_and_zero() {
        assert_eq!(parse_duration("55s"), Ok(Duration::from_secs(55)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn byte_sizes_accept_binary_and_decimal_units() {
        assert_eq!(parse_bytes("5MiB"), Ok(5 << 20));
        assert_eq!(parse_bytes("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_bytes("1MB"), Ok(1_000_000));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert!(parse_bytes("5 parsecs").is_err());
        assert!(parse_bytes("MiB").is_err());
    }

    #[test]
    fn load_generator_paths_must_be_absolute_url_paths() {
        assert_eq!(parse_path("/healthz").as_deref(), Ok("/healthz"));
        assert_eq!(parse_path("/about?x=1").as_deref(), Ok("/about?x=1"));
        assert!(parse_path("healthz").unwrap_err().contains("must start with /"));
        assert!(parse_path("/a b").unwrap_err().contains("not a valid URL path"));
    }

    #[test]
    fn defaults_are_valid_and_use_the_demo_backend() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.default_beam, 5);
        assert_eq!(c.max_body_bytes, 5 << 20);
        assert_eq!(c.lambda_timeout, Duration::from_secs(55));
        assert_eq!(c.backend_name(), "demo");
        assert_eq!(c.input_format, InputFormat::Smiles);
        assert_eq!(c.examples.len(), BUILTIN_REACTIONS.len());
        assert_eq!(parse(&["--input-format", "text"]).unwrap().examples.len(), BUILTIN_EXAMPLES.len());
    }

    #[test]
    fn smiles_examples_that_are_not_molecules_are_rejected_at_start() {
        let path = std::env::temp_dir().join(format!("tf-examples-{}.txt", std::process::id()));
        std::fs::write(&path, "CCO\nC1CC\n").unwrap();
        let file = path.to_str().unwrap();
        let err = parse(&["--examples-file", file]).unwrap_err();
        assert!(err.contains("example 2") && err.contains("C1CC"), "{err}");
        let texts = |c: Config| c.examples.into_iter().map(|e| e.text).collect::<Vec<_>>();
        assert_eq!(texts(parse(&["--examples-file", file, "--input-format", "text"]).unwrap()), ["CCO", "C1CC"]);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn examples_may_have_names_before_a_tab() {
        let path = std::env::temp_dir().join(format!("tf-named-{}.txt", std::process::id()));
        std::fs::write(&path, "Esterification\tCCO.CC(=O)O\r\nCCN\n\n\tCCCl\n").unwrap();
        let c = parse(&["--examples-file", path.to_str().unwrap()]).unwrap();
        let named: Vec<(Option<&str>, &str)> =
            c.examples.iter().map(|e| (e.name.as_deref(), e.text.as_str())).collect();
        assert_eq!(named, [(Some("Esterification"), "CCO.CC(=O)O"), (None, "CCN"), (None, "CCCl")]);
        std::fs::write(&path, "Nothing\t\n").unwrap();
        let err = parse(&["--examples-file", path.to_str().unwrap()]).unwrap_err();
        assert!(err.contains("no input after its tab"), "{err}");
        std::fs::remove_file(path).unwrap();
        assert!(parse(&[]).unwrap().examples.iter().all(|e| e.name.is_some()), "the built-in reactions are named");
    }

    #[test]
    fn n_best_above_beam_is_rejected_with_a_clear_message() {
        let err = parse(&["--default-beam", "3", "--default-n-best", "4"]).unwrap_err();
        assert!(err.contains("DEFAULT_N_BEST"), "{err}");
    }

    #[test]
    fn beam_above_max_is_rejected() {
        let err = parse(&["--default-beam", "12"]).unwrap_err();
        assert!(err.contains("DEFAULT_BEAM"), "{err}");
    }

    #[test]
    fn unparsable_duration_is_rejected() {
        let err = parse(&["--lambda-timeout", "forever"]).unwrap_err();
        assert!(err.contains("forever"), "{err}");
    }

    #[test]
    fn empty_function_name_means_demo() {
        let c = parse(&["--translation-function", " "]).unwrap();
        assert_eq!(c.backend_name(), "demo");
    }

    #[test]
    fn missing_examples_file_is_rejected() {
        let err = parse(&["--examples-file", "/nonexistent/examples.txt"]).unwrap_err();
        assert!(err.contains("EXAMPLES_FILE"), "{err}");
    }
}
