//! Building and running the application: bind the sockets, wire the backend,
//! serve until shutdown, drain, stop. Tests use the same path with port 0.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::Config;
use crate::http::{self, AppState};
use crate::inference::keep_warm;
use crate::inference::lambda::{LambdaBackend, Preflight};
use crate::telemetry::Metrics;

pub struct Application {
    listener: TcpListener,
    metrics_listener: TcpListener,
    state: Arc<AppState>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    addr: SocketAddr,
    source: io::Error,
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr).await.map_err(|source| BindError { addr, source })
}

impl Application {
    /// Binds both listeners and wires the backend. Never waits on AWS.
    pub async fn build(config: Config) -> Result<Self, BindError> {
        let listener = bind(config.listen_addr).await?;
        let metrics_listener = bind(config.metrics_addr).await?;
        Ok(Self { listener, metrics_listener, state: app_state(config) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves; then readiness turns 503 at once, the
    /// server keeps serving for `SHUTDOWN_GRACE` (so the load balancer can
    /// deregister the pod), stops accepting, and returns when requests in flight
    /// have finished.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> io::Result<()> {
        let Self { listener, metrics_listener, state } = self;
        spawn_preflight(&state);
        tokio::spawn(http::auth::reload(state.clone()));
        let stop_rx = state.stopping.subscribe();
        let stopping = state.clone();
        let (draining_tx, draining_rx) = watch::channel(false);
        let ready = state.ready.clone();
        let grace = state.config.shutdown_grace;
        let c = &state.config;
        if !c.lambda_warmup_interval.is_zero() {
            tokio::spawn(keep_warm::run(
                state.service.translator.clone(),
                c.lambda_warmup_interval,
                c.lambda_warmup_concurrency,
                keep_warm::PING_TIMEOUT.min(c.lambda_timeout),
                state.metrics.clone(),
                draining_rx,
            ));
        }
        tokio::spawn(async move {
            shutdown.await;
            ready.store(false, Ordering::SeqCst);
            let _ = draining_tx.send(true);
            tracing::info!(
                grace_s = grace.as_secs_f64(),
                "shutting down: readiness is 503, draining (send the signal again to stop at once)"
            );
            tokio::time::sleep(grace).await;
            tracing::info!("no longer accepting connections; finishing requests in flight");
            stopping.stopping.send_replace(true);
        });
        let app = http::router(state.clone());
        let metrics_app = http::metrics::router(state.metrics.clone());
        let c = &state.config;
        let limits = http::server::Limits {
            header_read_timeout: c.header_read_timeout,
            idle_timeout: c.idle_timeout,
            max_connections: c.max_connections,
            // The longest interactive request; then whatever is open is dropped.
            drain_limit: c.lambda_timeout + http::REQUEST_TIMEOUT_HEADROOM,
        };
        // The metrics listener gets the same bounds (its own connection gauge
        // would count scrapes; it is off the balancer).
        let unused = prometheus::IntGauge::new("metrics_connections_open", "not registered").expect("valid name");
        // The metrics listener stays up until the main one has drained, so a
        // draining pod is still scraped (and `up` does not fire at every
        // scale-down); then it stops at once.
        let (metrics_stop_tx, metrics_stop_rx) = watch::channel(false);
        let serve_http = async {
            let served =
                http::server::serve(listener, app, limits, stop_rx, state.metrics.connections_open.clone()).await;
            let _ = metrics_stop_tx.send(true);
            served
        };
        let metrics_limits = http::server::Limits { drain_limit: std::time::Duration::from_secs(1), ..limits };
        let serve_metrics = http::server::serve(metrics_listener, metrics_app, metrics_limits, metrics_stop_rx, unused);
        let (a, b) = tokio::join!(serve_http, serve_metrics);
        tracing::info!("stopped");
        a.and(b)
    }
}

/// Everything the handlers share, wired from the settings: the core's
/// service on its backend, metrics, the pages' identity. Never waits on AWS.
pub fn app_state(config: Config) -> Arc<AppState> {
    let metrics = Metrics::new();
    let chemistry = crate::chem::pool::pool();
    let (queued, running, memo) =
        (metrics.chemistry_queued.clone(), metrics.chemistry_running.clone(), metrics.chemistry_memo_bytes.clone());
    metrics.on_render(move || {
        queued.set(chemistry.queued() as i64);
        running.set(chemistry.running() as i64);
        memo.set(crate::chem::memo_bytes() as i64);
    });
    let warmth = Arc::new(keep_warm::OnVisit::new(config.lambda_warm_on_visit));
    let translator = crate::backend::translator(&config, &metrics, warmth.clone());
    let stopping = watch::channel(false).0;
    let service = crate::translate::Service::new(translator.clone(), &config, chemistry, stopping.subscribe());
    Arc::new(AppState {
        service: Arc::new(service),
        access: crate::http::auth::Access::new(&config, &metrics),
        site: crate::http::site::Site::new(&config),
        rate_limiter: config
            .rate_limit
            .map(|limit| crate::http::ratelimit::Limiter::new(limit, config.trusted_proxies.0.clone())),
        warmth,
        config: Arc::new(config),
        metrics,
        ready: Arc::new(AtomicBool::new(true)),
        stopping,
        preflight: std::sync::Mutex::new(None),
        openapi: std::sync::OnceLock::new(),
        chemistry,
        batches: Default::default(),
    })
}

/// Resolves on the first SIGTERM or SIGINT. A second one exits at once.
pub async fn shutdown_signal() {
    first_signal().await;
    tokio::spawn(async {
        first_signal().await;
        eprintln!("second signal: exiting without draining");
        crate::telemetry::log_buffer::flush();
        std::process::exit(130);
    });
}

async fn first_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// `translation-front serve`: exit 0 after a clean shutdown, 2 when a listener
/// cannot be bound.
pub async fn serve(config: Config) -> ExitCode {
    ExitCode::from(serve_status(config).await)
}

/// [`serve`]'s exit status, for [`exit_now`].
pub async fn serve_status(config: Config) -> u8 {
    let backend = config.backend_name();
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    tracing::info!(
        addr = %app.local_addr(),
        metrics_addr = %app.metrics_addr(),
        backend,
        "listening on http://{}",
        app.local_addr()
    );
    match app.run_until(shutdown_signal()).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: server failed: {e}");
            1
        }
    }
}

#[allow(unsafe_code)]
unsafe extern "C" {
    /// POSIX `_exit`: ends the process without running `atexit` handlers.
    fn _exit(status: i32) -> !;
}

/// Ends the server's process once its output is flushed, without running the
/// C++ libraries' static destructors: a chemistry thread may still be inside
/// RDKit (a job whose client left; RDKit cannot be stopped mid-call), and
/// destroying RDKit's tables under it crashed the process at exit (a segfault
/// in a chemistry thread, seen as an exit by signal instead of 0). Every
/// response has been sent and every log line written before this.
pub fn exit_now(status: u8) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` takes any status and never returns; nothing after it
    // runs, so no Rust invariant can be observed broken.
    #[allow(unsafe_code)]
    unsafe {
        _exit(i32::from(status))
    }
}

/// `translation-front warmup`: `LAMBDA_WARMUP_CONCURRENCY` concurrent pings; exit
/// 0 when all were confirmed, 1 when any was not, 2 when no function is set.
pub async fn warmup(config: Config) -> ExitCode {
    let Some(function) = config.translation_function.as_deref() else {
        eprintln!("error: TRANSLATION_FUNCTION is not set: there is no Lambda to warm up");
        return ExitCode::from(2);
    };
    let backend = LambdaBackend::new(crate::backend::lambda_settings(&config, function), Metrics::new());
    let started = Instant::now();
    let deadline = started + config.lambda_timeout;
    let n = config.lambda_warmup_concurrency;
    let failures = keep_warm::ping_round(&backend, n, deadline).await;
    let elapsed_ms = started.elapsed().as_millis();
    if failures.is_empty() {
        println!("warmup: {n}/{n} pings to {function} confirmed in {elapsed_ms} ms");
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "error: warmup: {} of {n} pings to {function} failed in {elapsed_ms} ms; first error: {}",
            failures.len(),
            failures[0]
        );
        ExitCode::FAILURE
    }
}

/// `translation-front check`: the preflight, in plain words; one exit code per
/// outcome (see [`Preflight::exit_code`]).
pub async fn check(config: Config, max_replicas: u32) -> ExitCode {
    let Some(function) = config.translation_function.as_deref() else {
        eprintln!("error: TRANSLATION_FUNCTION is not set: there is no Lambda to check");
        return ExitCode::from(2);
    };
    let backend = LambdaBackend::new(crate::backend::lambda_settings(&config, function), Metrics::new());
    let (outcome, message) = backend.preflight(Instant::now() + PREFLIGHT_TIMEOUT).await;
    if outcome == Preflight::Ok {
        println!("ok: {message}");
    } else {
        eprintln!("error: {}: {message}", outcome.name());
        return ExitCode::from(outcome.exit_code());
    }
    let fleet = max_replicas.saturating_mul(config.max_inflight_invocations as u32);
    match backend.capacity(Instant::now() + PREFLIGHT_TIMEOUT).await {
        Ok(capacity) => match capacity.assess(fleet) {
            (true, words) => println!("ok: capacity: {words}"),
            (false, words) => eprintln!("warning: capacity: {words}"),
        },
        Err(why) => eprintln!("warning: capacity not known: {why}"),
    }
    ExitCode::from(outcome.exit_code())
}

/// The server's own preflight, in the background at start: logged, and shown
/// (the outcome only) in `/api/v1/config`. Never delays readiness.
fn spawn_preflight(state: &Arc<AppState>) {
    let Some(function) = state.config.translation_function.clone() else {
        return;
    };
    let state = state.clone();
    tokio::spawn(async move {
        let backend = LambdaBackend::new(crate::backend::lambda_settings(&state.config, &function), Metrics::new());
        let (outcome, message) = backend.preflight(Instant::now() + PREFLIGHT_TIMEOUT).await;
        if outcome == Preflight::Ok {
            tracing::info!(outcome = outcome.name(), "preflight: {message}");
        } else {
            tracing::warn!(outcome = outcome.name(), "preflight failed: {message}");
        }
        *state.preflight.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(outcome.name());
    });
}

/// How long a preflight may take.
const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(15);

/// `translation-front healthcheck`: GET /healthz on the local listener; exit 0 on
/// 200. For `HEALTHCHECK` in images that have no shell or curl.
pub async fn healthcheck(config: Config) -> ExitCode {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut addr = config.listen_addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let check = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        Ok::<bool, io::Error>(head.starts_with(b"HTTP/1.1 200"))
    };
    match tokio::time::timeout(Duration::from_secs(3), check).await {
        Ok(Ok(true)) => ExitCode::SUCCESS,
        Ok(Ok(false)) => {
            eprintln!("error: {addr} answered /healthz with a failure status");
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            eprintln!("error: cannot reach {addr}: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("error: {addr} did not answer /healthz within 3 s");
            ExitCode::FAILURE
        }
    }
}
