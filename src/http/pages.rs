//! The server-rendered pages. Every page works without JavaScript; `app.js`
//! only makes the translate page faster (no reload) and friendlier.
//! (Just over 500 lines, kept whole: the four pages share one `Shell`, one
//! results view and one error page, and read best side by side.)

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::assets;
use super::depict;
use super::error::ApiError;
use super::heatmap::Heatmap;
use crate::config::InputFormat;
use crate::inference::tokenize::Tokens;
use crate::translate::{TranslateInput, TranslationView};

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

fn options(max: u32, selected: u32) -> Vec<Opt> {
    (1..=max).map(|value| Opt { value, selected: value == selected }).collect()
}

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage<'a> {
    shell: Shell,
    intro: &'a str,
    examples: &'a [String],
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

pub struct Item {
    pub rank: usize,
    pub text: String,
    pub score: String,
    pub percent: String,
    pub bar: String,
    /// SMILES mode: `reactants>>product`, ready to paste into other tools.
    pub reaction: Option<String>,
    /// Folded duplicates: the model's ranks this result stands for.
    pub merged: Option<String>,
    /// SMILES mode: the drawing of the canonical form, when it is a molecule.
    pub structure: Option<Structure>,
    /// SMILES mode: the prediction is not a molecule.
    pub invalid: bool,
    /// The prediction is the expected product.
    pub correct: bool,
    pub heatmap: Option<Heatmap>,
}

/// A probability for people: three significant digits as a percentage, so
/// small ones stay distinct (`0.0312%`, not `0.0%`); below 0.01% in scientific
/// notation (`1.2e-5`). `static/app.js` has the same rule.
pub fn probability_text(p: f64) -> String {
    let pct = p * 100.0;
    if pct.is_nan() || pct <= 0.0 {
        return "0%".into();
    }
    if pct >= 10.0 {
        format!("{pct:.1}%")
    } else if pct >= 1.0 {
        format!("{pct:.2}%")
    } else if pct >= 0.01 {
        let decimals = (2 - pct.log10().floor() as i32) as usize;
        format!("{pct:.decimals$}%")
    } else {
        let mut exponent = p.log10().floor() as i32;
        let mut mantissa = p / 10f64.powi(exponent);
        if mantissa >= 9.95 {
            mantissa /= 10.0;
            exponent += 1;
        }
        format!("{mantissa:.1}e{exponent}")
    }
}

/// A structure drawing on the page: the image's URL and its SMILES.
pub struct Structure {
    pub url: String,
    pub smiles: String,
}

impl Structure {
    fn of(smiles: &str) -> Self {
        Structure { url: depict::url(smiles), smiles: smiles.to_string() }
    }
}

#[derive(Template)]
#[template(path = "results.html")]
pub struct ResultsFragment {
    count: usize,
    beam: u32,
    /// The query of a link that asks for these results again (`GET /?…&run=1`).
    share: String,
    /// Answered from the result cache.
    cached: bool,
    elapsed: String,
    source: Tokens,
    /// Up to 60 tokens show as chips; more as one line of text, so a long
    /// input does not become thousands of elements.
    source_count: usize,
    input: Option<Structure>,
    target: Option<Structure>,
    /// The target was given and no prediction is it.
    target_missed: bool,
    /// Why there are no heatmaps, when attention was left out.
    attention_omitted: Option<String>,
    items: Vec<Item>,
}

impl ResultsFragment {
    /// `asked` is the request as given: its text, target, beam, top-k and
    /// folding go into the share link.
    pub fn new(view: TranslationView, asked: &TranslateInput, beam: u32) -> Self {
        let mut share = vec![("text", view.input.clone()), ("beam", beam.to_string())];
        if let Some(n) = asked.n_best {
            share.push(("n_best", n.to_string()));
        }
        if let Some(t) = asked.target.as_ref().filter(|t| !t.trim().is_empty()) {
            share.push(("target", t.clone()));
        }
        if asked.fold_duplicates == Some(true) {
            share.push(("fold", "1".into()));
        }
        share.push(("run", "1".into()));
        let share = serde_urlencoded::to_string(&share).unwrap_or_default();
        let correct_rank = view.target.as_ref().and_then(|t| t.correct_rank);
        let sources: Vec<&str> = view.tokens.iter().collect();
        let items = view
            .predictions
            .into_iter()
            .map(|p| {
                let targets: Vec<&str> = p.tokens.iter().collect();
                let heatmap = p.attention.as_ref().and_then(|m| Heatmap::new(&sources, &targets, m));
                Item {
                    rank: p.rank,
                    text: p.text,
                    score: format!("{:.4}", p.score),
                    percent: probability_text(p.probability),
                    reaction: match (&view.canonical, &p.canonical) {
                        (Some(input), Some(Some(product))) => Some(format!("{input}>>{product}")),
                        _ => None,
                    },
                    bar: format!("{:.2}", (p.probability * 100.0).max(0.5)),
                    merged: p
                        .merged_ranks
                        .as_ref()
                        .map(|r| r.iter().map(|x| format!("#{x}")).collect::<Vec<_>>().join(" + ")),
                    invalid: matches!(p.canonical, Some(None)),
                    structure: p.canonical.flatten().as_deref().map(Structure::of),
                    correct: correct_rank == Some(p.rank),
                    heatmap,
                }
            })
            .collect::<Vec<_>>();
        let elapsed = if view.elapsed_ms >= 1000.0 {
            format!("{:.1} s", view.elapsed_ms / 1000.0)
        } else {
            format!("{:.0} ms", view.elapsed_ms.max(1.0))
        };
        let target = view.target.as_ref().and_then(|t| t.canonical.as_deref()).map(Structure::of);
        ResultsFragment {
            count: items.len(),
            beam,
            share,
            cached: view.cached,
            elapsed,
            source_count: view.tokens.len(),
            source: view.tokens,
            input: view.canonical.as_deref().map(Structure::of),
            target_missed: view.target.is_some() && correct_rank.is_none(),
            attention_omitted: view.attention_omitted.then(|| {
                "this answer has more attention weights than this server shows at once; ask for fewer results \
                 or a shorter input to see them"
                    .to_string()
            }),
            target,
            items,
        }
    }
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
}

/// `GET /`: the empty form; prefilled from `?text=` (and `beam`, `n_best`,
/// `target`); with `&run=1` translated at once and rendered with its results,
/// no JavaScript needed.
pub async fn index(
    State(state): State<Arc<AppState>>,
    super::extract::ApiQuery(q): super::extract::ApiQuery<Prefill>,
) -> Response {
    if q.run.as_deref() == Some("1") {
        let form =
            FormInput { text: q.text, target: q.target, fold: q.fold, beam: q.beam, n_best: q.n_best, example: None };
        return translate_and_render(&state, form).await;
    }
    // A visit (not a translation, which calls the function anyway) warms it.
    state.warm_on_visit();
    let c = &state.config;
    let number = |s: Option<String>| s.and_then(|v| v.trim().parse::<u32>().ok());
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
    form: Result<super::extract::StrictForm<FormInput>, ApiError>,
) -> Response {
    let c = &state.config;
    let form = match form {
        Ok(super::extract::StrictForm(f)) => f,
        Err(error) => {
            let mut page = index_page(&state, String::new(), c.default_beam, c.default_n_best);
            page.error = Some(super::error::sentence(&error.message));
            return (error.status, render(&page)).into_response();
        }
    };
    let text = form.example.or(form.text).unwrap_or_default();
    let mut query = vec![("text", text)];
    for (name, value) in [("target", form.target), ("beam", form.beam), ("n_best", form.n_best), ("fold", form.fold)] {
        if let Some(v) = value.filter(|v| !v.trim().is_empty()) {
            query.push((name, v));
        }
    }
    query.push(("run", "1".into()));
    let query = serde_urlencoded::to_string(&query).unwrap_or_default();
    axum::response::Redirect::to(&format!("/?{query}")).into_response()
}

/// Translates a form's fields and renders the page with the results (or the
/// error): the no-JavaScript path of `POST /` and of `GET /?...&run=1`.
async fn translate_and_render(state: &Arc<AppState>, form: FormInput) -> Response {
    let c = &state.config;
    let text = form.example.or(form.text).unwrap_or_default();
    // The same rules as the API: a number that is not one is an error, not
    // a silent default.
    let number = |what: &str, s: Option<String>| -> Result<Option<u32>, ApiError> {
        Ok(crate::translate::request::whole_number_text(what, s.as_deref().unwrap_or(""))?)
    };
    let (beam, n_best) = match (number("the beam width", form.beam), number("the number of results", form.n_best)) {
        (Ok(b), Ok(n)) => (b, n),
        (Err(e), _) | (_, Err(e)) => {
            let mut page = index_page(state, text, c.default_beam, c.default_n_best);
            page.error = Some(super::error::sentence(&e.message));
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
    match state.service.predict(input, &super::error::caller()).await.map_err(ApiError::from) {
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
    let Some(detail) = response.extensions().get::<super::error::ErrorDetail>().cloned() else {
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
        message: super::error::sentence(&detail.public),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_probabilities_keep_their_digits() {
        let shown: Vec<String> =
            [0.942, 0.0314, 0.00312, 0.00024, 0.000156, 0.000012, 0.0000999, 1.0, 0.0].map(probability_text).into();
        assert_eq!(shown, ["94.2%", "3.14%", "0.312%", "0.0240%", "0.0156%", "1.2e-5", "1.0e-4", "100.0%", "0%"]);
    }
}
