//! The batch route's stream when the job fails.

use super::*;

/// A backend with a bug: it panics.
struct Panics;

impl crate::inference::Translator for Panics {
    fn invoke(
        &self,
        _: crate::inference::Request,
    ) -> crate::inference::BoxFuture<'_, Result<crate::inference::Invocation, crate::inference::InferenceError>> {
        Box::pin(async { panic!("a bug in the backend (on purpose, in a test)") })
    }

    fn warmup(
        &self,
        _: tokio::time::Instant,
    ) -> crate::inference::BoxFuture<'_, Result<(), crate::inference::InferenceError>> {
        Box::pin(async { Ok(()) })
    }

    fn backend(&self) -> &'static str {
        "demo"
    }
}

#[tokio::test]
async fn a_job_that_panics_ends_its_stream_with_a_line_that_says_so() {
    use tower::ServiceExt;
    let config = crate::config::Config::from_args(&[]).unwrap();
    let mut state = Arc::try_unwrap(crate::startup::app_state(config)).ok().expect("not shared yet");
    let stopping = state.stopping.subscribe();
    state.service =
        Arc::new(crate::translate::Service::new(Arc::new(Panics), &state.config, state.chemistry, stopping));
    let router = crate::http::router(Arc::new(state));
    for (format, want) in [
        ("ndjson", r#"{"type":"error","error":{"code":"internal_error","#),
        ("csv", r#","error: the batch stopped on a server fault"#),
    ] {
        let req = axum::http::Request::post(format!("/api/v1/translate/batch?format={format}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(axum::body::Body::from(r#"{"inputs": ["CCO", "CCN"]}"#))
            .unwrap();
        let response = router.clone().oneshot(req).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        let last = text.lines().last().unwrap_or("");
        assert!(last.starts_with(want) || last.contains(want), "{format}: the last line says why: {text}");
    }
}
