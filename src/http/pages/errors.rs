//! The error page: a browser that navigates to a page and meets an error
//! reads it in words, with the request id for a support ticket.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::{Shell, render};
use crate::http::AppState;

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    shell: Shell,
    title: &'static str,
    message: String,
    request_id: Option<&'a str>,
}

/// Middleware: a browser that navigates to a page and meets an error gets a
/// readable page, not JSON; programs (and every `/api/` path) keep the JSON.
/// Status and headers (`Allow`, `Retry-After`) stay as they were.
pub async fn html_errors(
    State(state): State<Arc<AppState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let wants_html = !req.uri().path().starts_with("/api/")
        && req
            .headers()
            .get(axum::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"));
    let response = next.run(req).await;
    if !wants_html {
        return response;
    }
    let Some(detail) = response.extensions().get::<crate::http::error::ErrorDetail>().cloned() else {
        return response;
    };
    let status = response.status();
    let title = match status.as_u16() {
        404 => "Page not found",
        405 => "Not a way to use this page",
        408 => "The request took too long",
        413 => "Too large",
        429 => "Too many requests",
        400..=499 => "That request could not be read",
        _ => "Something went wrong",
    };
    let page = ErrorPage {
        shell: Shell::new(&state, ""),
        title,
        message: crate::http::error::sentence(&detail.public),
        request_id: detail.request_id.as_deref(),
    };
    let (mut parts, _) = response.into_parts();
    let html = render(&page);
    // The JSON body may have been compressed on its way out; the page is not.
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.headers.remove(axum::http::header::CONTENT_ENCODING);
    parts
        .headers
        .insert(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static("text/html; charset=utf-8"));
    Response::from_parts(parts, html.into_body())
}
