//! The server-rendered pages without a browser: the no-JavaScript form path,
//! escaping, security headers and embedded assets.

use serde_json::json;

use crate::emulator::{Behavior, Emulator, Fault};
use crate::helpers::server;

const XSS: [&str; 2] = ["<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>"];

#[tokio::test]
async fn the_form_posts_and_renders_ranked_results_with_heatmaps() {
    let s = server().spawn();
    // Post/redirect/get: the form's answer is an address that translates.
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let form = [("text", "CC(=O)O"), ("beam", "3"), ("n_best", "2")];
    let r = no_redirects.post(s.url("/")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/?text=CC%28%3DO%29O&beam=3&n_best=2&run=1#outcome");
    let r = s.client.post(s.url("/")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert_eq!(html.matches("<li class=\"prediction").count(), 2);
    assert!(html.contains("<code class=\"pred-text\">CC(=O)O</code>"));
    assert_eq!(html.matches("<svg class=\"heatmap\"").count(), 2);
    assert_eq!(html.matches("<image class=\"grid\"").count(), 2, "each map's grid is one image");
    assert!(html.contains("<details class=\"values\">"), "a small map's values as a table");
    assert!(html.contains("Result token 1 “C” looked most at input token"), "the text alternative");
    assert!(html.contains("What is this plot?"));
    assert!(html.contains("Demo backend"), "the demo notice shows");
    // the selectors keep what was chosen
    assert!(html.contains("<option value=\"3\" selected>3</option>"));
}

#[tokio::test]
async fn an_example_button_translates_that_example_without_javascript() {
    let s = server().spawn();
    let r = s.client.post(s.url("/")).form(&[("text", ""), ("example", "N#Cc1ccccc1"), ("beam", "5"), ("n_best", "5")]);
    let html = r.send().await.unwrap().text().await.unwrap();
    assert!(html.contains("<code class=\"pred-text\">N#Cc1ccccc1</code>"), "{html}");
}

#[tokio::test]
async fn form_errors_render_inline_with_the_status() {
    let s = server().spawn();
    let r = s.client.post(s.url("/")).form(&[("text", "CCO"), ("beam", "2"), ("n_best", "3")]).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let html = r.text().await.unwrap();
    let words = "The number of results (3) cannot exceed the beam width (2): choose fewer results or a wider beam.";
    assert!(html.contains(&format!("role=\"alert\">{words}</div>")), "{html}");
    assert!(html.contains("<textarea"), "the page, not a bare error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_model_says_busy_with_the_wait_in_plain_words() {
    let emu = Emulator::start(Behavior { fault: Fault::ThrottleAlways, ..Default::default() }).await;
    let s = server().lambda(&emu).env("LAMBDA_TIMEOUT", "2s").spawn();
    let r = s.client.post(s.url("/")).form(&[("text", "CCO")]).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let html = r.text().await.unwrap();
    assert!(html.contains("The model is busy. Try again in 2 s."), "{html}");
    assert!(!html.contains("Demo backend"));
}

/// The translate page's script asks the API for HTML and shows its error words
/// as they are: the same words as the page without a script, from one place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_script_gets_the_same_words_from_the_api() {
    let emu = Emulator::start(Behavior { fault: Fault::ThrottleAlways, ..Default::default() }).await;
    let s = server().lambda(&emu).env("LAMBDA_TIMEOUT", "2s").spawn();
    let html = |body: serde_json::Value| {
        s.client.post(s.url("/api/v1/translate")).header("accept", "text/html").json(&body).send()
    };
    let r = html(serde_json::json!({"text": "CCO"})).await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "2");
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert_eq!(r.text().await.unwrap(), "The model is busy. Try again in 2 s.");
    // An input error: its own message, as a sentence.
    let r = html(serde_json::json!({"text": "CCO", "beam": 2, "n_best": 3})).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.text().await.unwrap(), "n_best must be between 1 and the beam width (2), got 3.");
    // Programs still get JSON.
    let r = s.client.post(s.url("/api/v1/translate")).json(&serde_json::json!({"text": "CCO"})).send().await.unwrap();
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error"]["code"], "lambda_throttled");
}

#[tokio::test]
async fn user_and_model_text_is_escaped_everywhere() {
    let s = server().env("TOKENIZER", "whitespace").spawn();
    for input in XSS {
        let html = s.client.post(s.url("/")).form(&[("text", input)]).send().await.unwrap().text().await.unwrap();
        assert!(!html.contains("<script>alert"), "{input}");
        assert!(!html.contains("<img src=x"), "{input}");
        assert!(html.contains("&#60;") || html.contains("&lt;"), "escaped, still visible");
        // the prefilled link path too
        let url = format!("{}?text={}", s.url("/"), urlencode(input));
        let page = s.client.get(url).send().await.unwrap().text().await.unwrap();
        assert!(!page.contains("<script>alert") && !page.contains("<img src=x"));
    }
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

#[tokio::test]
async fn every_page_carries_the_security_headers() {
    let s = server().spawn();
    for path in ["/", "/about", "/api/v1/config", "/static/app.css", "/nope"] {
        let r = s.client.get(s.url(path)).send().await.unwrap();
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{path}");
        assert!(csp.contains("frame-ancestors 'none'"));
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "no-referrer");
    }
}

#[tokio::test]
async fn pages_reference_only_embedded_assets_which_are_cached_and_gzipped() {
    let s = server().spawn();
    let html = s.client.get(s.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(!html.contains("http://") && !html.contains("https://"), "no external requests");
    assert!(!html.contains("<script>") && !html.contains("style=\""), "no inline script or style");
    for asset in ["/static/app.css", "/static/common.js", "/static/translate.js", "/static/favicon.svg"] {
        assert!(html.contains(asset));
        let r = s.client.get(s.url(asset)).header("accept-encoding", "gzip").send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["cache-control"].to_str().unwrap().contains("immutable"));
        assert_eq!(r.headers()["content-encoding"], "gzip");
    }
    assert_eq!(s.client.get(s.url("/static/nope.js")).send().await.unwrap().status(), 404);
    let batch = s.client.get(s.url("/batch")).send().await.unwrap().text().await.unwrap();
    assert!(batch.contains("/static/batch.js") && !batch.contains("/static/translate.js"), "each page its own script");
}

#[tokio::test]
async fn the_api_returns_the_results_fragment_for_html_clients() {
    let s = server().spawn();
    let r = s
        .client
        .post(s.url("/api/v1/translate"))
        .header("accept", "text/html")
        .json(&json!({"text": "CCO", "beam": 2, "n_best": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = r.text().await.unwrap();
    assert!(html.contains("class=\"predictions\"") && !html.contains("<html"));
}

#[tokio::test]
async fn the_about_page_explains_the_system() {
    let s = server().spawn();
    let r = s.client.get(s.url("/about")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    for needle in ["Beam width", "heatmap", "exp(score)", "Lambda"] {
        assert!(html.contains(needle), "{needle}");
    }
}

/// WCAG 1.4.11: focus rings and the borders of controls at least 3:1 against
/// the page and the cards, in both themes (axe-core checks the text; it does
/// not check these).
#[test]
fn focus_rings_and_control_borders_have_three_to_one_contrast_in_both_themes() {
    let css = include_str!("../../static/app.css");
    let dark_at = css.find("@media (prefers-color-scheme: dark)").unwrap();
    let var = |block: &str, name: &str| -> [f64; 3] {
        let at = block.find(&format!("--{name}: #")).unwrap_or_else(|| panic!("--{name}"));
        let hex = &block[at + name.len() + 5..at + name.len() + 11];
        let c = |i: usize| f64::from(u8::from_str_radix(&hex[i..i + 2], 16).unwrap()) / 255.0;
        [c(0), c(2), c(4)]
    };
    let luminance = |[r, g, b]: [f64; 3]| {
        let f = |c: f64| if c <= 0.03928 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) };
        0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b)
    };
    let ratio = |a: [f64; 3], b: [f64; 3]| {
        let (x, y) = (luminance(a), luminance(b));
        (x.max(y) + 0.05) / (x.min(y) + 0.05)
    };
    for (theme, block) in [("light", &css[..dark_at]), ("dark", &css[dark_at..])] {
        for fg in ["focus", "control"] {
            for bg in ["bg", "card"] {
                let r = ratio(var(block, fg), var(block, bg));
                assert!(r >= 3.0, "{theme}: --{fg} on --{bg} is {r:.2}:1");
            }
        }
    }
}
