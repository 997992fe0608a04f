//! What the pages say the product is: its title and the model's description,
//! rendered from markdown once at start. The description's first paragraph
//! introduces the translate page; all of it opens `/about`.

use pulldown_cmark::{Event, Options, Parser, html};

use crate::config::Config;

pub struct Site {
    pub title: String,
    /// The description's first paragraph, as HTML.
    pub intro: String,
    /// The whole description, as HTML.
    pub about: String,
}

impl Site {
    pub fn new(config: &Config) -> Self {
        let markdown = config.model_description.as_str();
        let first = markdown.trim_start().split("\n\n").next().unwrap_or("");
        Site { title: config.app_title.clone(), intro: render(first), about: render(markdown) }
    }
}

/// Markdown to HTML. Raw HTML in the markdown is shown as text, never passed
/// through: the pages' Content-Security-Policy forbids inline script and style,
/// and an operator's file should not be able to break the page either.
pub fn render(markdown: &str) -> String {
    let parser = Parser::new_ext(markdown, Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES).map(|e| match e {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        other => other,
    });
    let mut out = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut out, parser);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_renders_and_raw_html_stays_text() {
        assert_eq!(render("**Predict** `CCO`"), "<p><strong>Predict</strong> <code>CCO</code></p>\n");
        let html = render("hi <script>alert(1)</script>\n\n<img src=x onerror=alert(1)>");
        assert!(!html.contains("<script") && !html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }
}
