//! The backend the settings ask for, wired once: the Lambda client or the
//! demo, behind the pod-wide in-flight limit, the coalescer and the result
//! cache. Used by the server (`startup`) and the `translate` subcommand alike.

use std::sync::Arc;

use crate::config::Config;
use crate::inference::Translator;
use crate::inference::cache::Cached;
use crate::inference::coalesce::{Coalescer, Coalescing};
use crate::inference::demo::DemoBackend;
use crate::inference::keep_warm;
use crate::inference::lambda::{LambdaBackend, LambdaSettings};
use crate::inference::limit::Limited;
use crate::telemetry::Metrics;

/// The backend the settings ask for, behind the pod-wide in-flight limit,
/// (unless `COALESCE_MAX_WAIT` is 0) the coalescer and (unless `CACHE_TTL` or
/// `CACHE_MAX_BYTES` is 0) the result cache.
pub fn translator(config: &Config, metrics: &Metrics, activity: Arc<keep_warm::OnVisit>) -> Arc<dyn Translator> {
    let backend: Arc<dyn Translator> = match &config.translation_function {
        Some(function) => Arc::new(LambdaBackend::new(lambda_settings(config, function), metrics.clone())),
        None => Arc::new(DemoBackend),
    };
    let limited: Arc<dyn Translator> =
        Arc::new(Limited::new(backend, config.max_inflight_invocations, metrics.clone(), activity));
    metrics.invocations_limit.set(config.max_inflight_invocations as i64);
    let coalesced: Arc<dyn Translator> = if config.coalesce_max_wait.is_zero() {
        limited
    } else {
        Arc::new(Coalescing(Coalescer::new(limited, config.coalesce_max_wait, metrics.clone())))
    };
    if config.cache_max_bytes == 0 || config.cache_ttl.is_zero() {
        return coalesced;
    }
    let function = match (&config.translation_function, &config.translation_qualifier) {
        (Some(f), Some(q)) => format!("{f}:{q}"),
        (Some(f), None) => f.clone(),
        (None, _) => "demo".into(),
    };
    Arc::new(Cached::new(coalesced, config.cache_max_bytes as u64, config.cache_ttl, &function, metrics.clone()))
}

pub fn lambda_settings(config: &Config, function: &str) -> LambdaSettings {
    LambdaSettings {
        function: function.to_string(),
        qualifier: config.translation_qualifier.clone(),
        // The client's own timeouts allow the longest deadline; each call
        // keeps to its request's deadline (interactive or batch chunk).
        timeout: config.lambda_timeout.max(config.lambda_batch_timeout),
    }
}
