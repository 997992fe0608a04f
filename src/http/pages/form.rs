//! The translate page: the form (prefilled from a link), its checks in the
//! words of its own labels, and the no-JavaScript path that translates and
//! renders the results on the server.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::results::ResultsFragment;
use super::{Opt, Shell, options, render};
use crate::config::InputFormat;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::translate::TranslateInput;
use crate::translate::request::whole_number_text;

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage<'a> {
    shell: Shell,
    intro: &'a str,
    examples: &'a [crate::config::Example],
    input_kind: &'static str,
    smiles: bool,
    text: String,
    target: String,
    fold: bool,
    chars: usize,
    max_chars: usize,
    beam_options: Vec<Opt>,
    n_best_options: Vec<Opt>,
    results: Option<String>,
    error: Option<String>,
}

fn index_page(state: &AppState, text: String, beam: u32, n_best: u32) -> IndexPage<'_> {
    let c = &state.config;
    let smiles = c.input_format == InputFormat::Smiles;
    IndexPage {
        shell: Shell::new(state, "translate"),
        intro: &state.site.intro,
        examples: &c.examples,
        input_kind: if smiles {
            "all reactants and reagents as SMILES, separated by '.'"
        } else {
            "the text to translate"
        },
        smiles,
        chars: text.chars().count(),
        text,
        target: String::new(),
        fold: false,
        max_chars: c.max_input_chars,
        beam_options: options(c.max_beam, beam),
        n_best_options: options(c.max_beam, n_best),
        results: None,
        error: None,
    }
}

/// `GET /` and `POST /` take the same fields: a link can carry a whole request.
#[derive(Deserialize, Default)]
pub struct Prefill {
    text: Option<String>,
    target: Option<String>,
    beam: Option<String>,
    n_best: Option<String>,
    fold: Option<String>,
    /// Translate at once (a link from a batch row or a shared result).
    run: Option<String>,
    /// With `run=1`: `sdf` answers with the predictions as an SDF download.
    format: Option<String>,
}

/// `GET /`: the empty form; prefilled from `?text=` (and `beam`, `n_best`,
/// `target`); with `&run=1` translated at once and rendered with its results,
/// no JavaScript needed.
pub async fn index(
    State(state): State<Arc<AppState>>,
    crate::http::extract::ApiQuery(q): crate::http::extract::ApiQuery<Prefill>,
) -> Response {
    if q.run.as_deref() == Some("1") {
        let form =
            FormInput { text: q.text, target: q.target, fold: q.fold, beam: q.beam, n_best: q.n_best, example: None };
        return match q.format.as_deref() {
            None | Some("html") => translate_and_render(&state, form).await,
            Some("sdf") => translate_to_sdf(&state, form).await.unwrap_or_else(IntoResponse::into_response),
            Some(other) => {
                ApiError::invalid_input(format!("unknown format '{other}' (use html or sdf)")).into_response()
            }
        };
    }
    // A visit (not a translation, which calls the function anyway) warms it.
    state.warm_on_visit();
    let c = &state.config;
    // A prefill only chooses what the form shows: a number that is not one
    // shows the default (translating it, with `run=1`, says why).
    let number = |s: Option<String>| whole_number_text("", &s.unwrap_or_default()).ok().flatten();
    let mut page = index_page(
        &state,
        q.text.unwrap_or_default(),
        number(q.beam).unwrap_or(c.default_beam),
        number(q.n_best).unwrap_or(c.default_n_best),
    );
    page.target = q.target.unwrap_or_default();
    render(&page)
}

#[derive(Deserialize, Default)]
pub struct FormInput {
    text: Option<String>,
    target: Option<String>,
    /// The "fold predictions that are the same molecule" box was ticked.
    fold: Option<String>,
    beam: Option<String>,
    n_best: Option<String>,
    /// An example button was pressed: translate that example.
    example: Option<String>,
}

/// The form's beam and top-k checked as the API checks them, in the words of
/// the form's own labels.
fn choices_error(max_beam: u32, beam: u32, n_best: Option<u32>) -> Option<String> {
    if !(1..=max_beam).contains(&beam) {
        return Some(format!("Choose a beam width from 1 to {max_beam}."));
    }
    match n_best {
        Some(0) => Some("Choose at least one result.".into()),
        Some(n) if n > beam => Some(format!(
            "The number of results ({n}) cannot exceed the beam width ({beam}): choose fewer results or a wider beam."
        )),
        _ => None,
    }
}

/// `POST /`, the form of browsers without JavaScript: answered with a redirect
/// to `GET /?…&run=1` (post/redirect/get), so the results page is a plain
/// address that can be reloaded, bookmarked and shared without resubmitting.
pub async fn index_post(
    State(state): State<Arc<AppState>>,
    form: Result<crate::http::extract::StrictForm<FormInput>, ApiError>,
) -> Response {
    let c = &state.config;
    let form = match form {
        Ok(crate::http::extract::StrictForm(f)) => f,
        Err(error) => {
            let mut page = index_page(&state, String::new(), c.default_beam, c.default_n_best);
            page.error = Some(crate::http::error::sentence(&error.message));
            return (error.status, render(&page)).into_response();
        }
    };
    let mut text = form.example.or(form.text).unwrap_or_default();
    let mut target = form.target;
    // A MOL block or an RXN file pasted without JavaScript: read here, so the
    // address (and the results) hold its SMILES.
    if state.config.input_format == InputFormat::Smiles && crate::chem::blocks::is_block(&text) {
        let block = text.clone();
        let read = state
            .chemistry
            .run(crate::http::error::client(), crate::chem::pool::Admission::FailFast, move || {
                crate::chem::blocks::read(&block)
            })
            .await;
        match read {
            Ok(Ok(crate::chem::blocks::Structure::Molecule(smiles))) => text = smiles,
            Ok(Ok(crate::chem::blocks::Structure::Reaction { reactants, agents, products })) => {
                text = if agents.is_empty() { reactants } else { format!("{reactants}.{agents}") };
                if !products.is_empty() {
                    target = Some(products);
                }
            }
            Ok(Err(e)) => {
                let mut page = index_page(&state, text, c.default_beam, c.default_n_best);
                page.error = Some(crate::http::error::sentence(&e.0));
                return (StatusCode::BAD_REQUEST, render(&page)).into_response();
            }
            Err(_) => {
                let mut page = index_page(&state, text, c.default_beam, c.default_n_best);
                page.error = Some("The server is busy reading structures; try again in a moment.".into());
                return (StatusCode::SERVICE_UNAVAILABLE, render(&page)).into_response();
            }
        }
    }
    let mut query = vec![("text", text)];
    for (name, value) in [("target", target), ("beam", form.beam), ("n_best", form.n_best), ("fold", form.fold)] {
        if let Some(v) = value.filter(|v| !v.trim().is_empty()) {
            query.push((name, v));
        }
    }
    query.push(("run", "1".into()));
    let query = serde_urlencoded::to_string(&query).unwrap_or_default();
    // The page opens at the form's buttons: the error or the results' heading
    // is right below them, not a screen further down.
    axum::response::Redirect::to(&format!("/?{query}#outcome")).into_response()
}

/// The download of a results page (`/?…&run=1&format=sdf`): its predictions
/// as SDF records; an error is the page's error, in words.
async fn translate_to_sdf(state: &Arc<AppState>, form: FormInput) -> Result<Response, ApiError> {
    if state.config.input_format != InputFormat::Smiles {
        return Err(ApiError::invalid_input("SDF holds molecules: this server translates text"));
    }
    let number = |what: &str, s: Option<String>| -> Result<Option<u32>, ApiError> {
        Ok(whole_number_text(what, s.as_deref().unwrap_or(""))?)
    };
    let input = TranslateInput {
        text: form.text.unwrap_or_default(),
        beam: number("the beam width", form.beam)?,
        n_best: number("the number of results", form.n_best)?,
        // As the page asks: the answer the page just showed is cached.
        attention: Some(true),
        target: form.target.filter(|t| !t.trim().is_empty()),
        fold_duplicates: Some(form.fold.is_some()),
        cache: None,
    };
    let caller = crate::http::error::caller();
    let (view, _) = state.service.predict(input, &caller).await?;
    Ok(crate::http::api::sdf_response(state.service.sdf(view, &caller).await?))
}

/// Translates a form's fields and renders the page with the results (or the
/// error): the no-JavaScript path of `POST /` and of `GET /?...&run=1`.
async fn translate_and_render(state: &Arc<AppState>, form: FormInput) -> Response {
    let c = &state.config;
    let text = form.example.or(form.text).unwrap_or_default();
    // The same rules as the API: a number that is not one is an error, not
    // a silent default.
    let number = |what: &str, s: Option<String>| -> Result<Option<u32>, ApiError> {
        Ok(whole_number_text(what, s.as_deref().unwrap_or(""))?)
    };
    let (beam, n_best) = match (number("the beam width", form.beam), number("the number of results", form.n_best)) {
        (Ok(b), Ok(n)) => (b, n),
        (Err(e), _) | (_, Err(e)) => {
            let mut page = index_page(state, text, c.default_beam, c.default_n_best);
            page.error = Some(crate::http::error::sentence(&e.message));
            return (e.status, render(&page)).into_response();
        }
    };
    let mut page = index_page(state, text.clone(), beam.unwrap_or(c.default_beam), n_best.unwrap_or(c.default_n_best));
    let target = form.target.filter(|t| !t.trim().is_empty());
    page.target = target.clone().unwrap_or_default();
    page.fold = form.fold.is_some();
    let input = TranslateInput {
        text,
        beam: beam.or(Some(c.default_beam)),
        n_best,
        attention: Some(true),
        target,
        fold_duplicates: Some(page.fold),
        cache: None,
    };
    let beam = beam.unwrap_or(c.default_beam);
    if let Some(words) = choices_error(c.max_beam, beam, n_best)
        .or_else(|| page.text.trim().is_empty().then(|| "Type something to translate first.".to_string()))
    {
        page.error = Some(words);
        return (StatusCode::BAD_REQUEST, render(&page)).into_response();
    }
    let asked = input.clone();
    match state.service.predict(input, &crate::http::error::caller()).await.map_err(ApiError::from) {
        Ok((view, _)) => {
            let fragment = ResultsFragment::new(view, &asked, beam);
            match fragment.render() {
                Ok(html) => page.results = Some(html),
                Err(e) => {
                    tracing::error!(error = %e, "results failed to render");
                    page.error = Some("the results could not be shown".into());
                }
            }
            render(&page)
        }
        Err(e) => {
            page.error = Some(e.for_people());
            (e.status, render(&page)).into_response()
        }
    }
}
