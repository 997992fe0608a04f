//! The server-rendered pages. Every page works without JavaScript; the
//! scripts (`static/*.js`) only make them faster and friendlier.
//!
//! - this file: the frame every page shares (`Shell`, `render`) and the two
//!   plain pages (about, batch);
//! - `form`: the translate page, its form and its checks;
//! - `results`: the results view (the page's and the API's HTML fragment);
//! - `errors`: the error page a browser gets instead of JSON.

mod errors;
mod form;
mod results;

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

pub use errors::html_errors;
pub use form::{index, index_post};

pub use results::ResultsFragment;

use super::AppState;
use super::assets;
use crate::config::InputFormat;

/// What every page's frame needs.
pub struct Shell {
    pub title: String,
    pub demo: bool,
    pub active: &'static str,
    pub version: &'static str,
    pub version_label: &'static str,
}

impl Shell {
    pub fn new(state: &AppState, active: &'static str) -> Self {
        Shell {
            title: state.site.title.clone(),
            demo: state.service.translator.backend() == "demo",
            active,
            version: assets::version(),
            version_label: env!("CARGO_PKG_VERSION"),
        }
    }
}

pub struct Opt {
    pub value: u32,
    pub selected: bool,
}

pub(super) fn options(max: u32, selected: u32) -> Vec<Opt> {
    (1..=max).map(|value| Opt { value, selected: value == selected }).collect()
}

#[derive(Template)]
#[template(path = "about.html")]
struct AboutPage<'a> {
    shell: Shell,
    description: &'a str,
    smiles: bool,
    tokenizer: &'static str,
    max_chars: usize,
    max_beam: u32,
    max_batch: usize,
}

/// Renders a template, or a plain 500 (logged) if the template fails.
pub fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered").into_response()
        }
    }
}

/// `GET /about`.
pub async fn about(State(state): State<Arc<AppState>>) -> Response {
    state.warm_on_visit();
    let c = &state.config;
    render(&AboutPage {
        shell: Shell::new(&state, "about"),
        description: &state.site.about,
        smiles: c.input_format == InputFormat::Smiles,
        tokenizer: state.service.reading.tokenizer.name(),
        max_chars: c.max_input_chars,
        max_beam: c.max_beam,
        max_batch: c.max_batch_inputs,
    })
}

#[derive(Template)]
#[template(path = "editor.html")]
struct EditorPage {
    version: &'static str,
}

/// The molecule editor's own policy: JSME is compiled by GWT, whose loader
/// runs inline script and `eval`, so this page (and only this one) allows
/// them. It holds nothing from a request, loads scripts from this origin
/// only, may fetch nothing (`connect-src 'none'`), submit nothing, and be
/// framed only by this origin's pages.
const EDITOR_CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'none'; object-src 'none'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'self'";

/// `GET /editor`: the molecule editor, shown in a frame of the translate page
/// when a chemist chooses to draw (and loaded only then).
pub async fn editor() -> Response {
    let mut response = render(&EditorPage { version: crate::http::assets::version() });
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(EDITOR_CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("SAMEORIGIN"));
    response
}

#[derive(Template)]
#[template(path = "batch.html")]
struct BatchPage {
    shell: Shell,
    smiles: bool,
    max_batch_text: String,
    max_chars_text: String,
    beam_options: Vec<Opt>,
    n_best_options: Vec<Opt>,
}

/// `GET /batch`: upload a file; without JavaScript the form downloads the CSV.
pub async fn batch(State(state): State<Arc<AppState>>) -> Response {
    state.warm_on_visit();
    let c = &state.config;
    render(&BatchPage {
        shell: Shell::new(&state, "batch"),
        smiles: c.input_format == InputFormat::Smiles,
        max_batch_text: crate::translate::words::thousands(c.max_batch_inputs),
        max_chars_text: crate::translate::words::thousands(c.max_input_chars),
        beam_options: options(c.max_beam, c.default_beam),
        n_best_options: options(c.max_beam, c.default_n_best),
    })
}
