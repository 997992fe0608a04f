//! `GET /api`: the OpenAPI document, read by people. Rendered by the server
//! from the same document programs read (no assets from another origin, no
//! JavaScript): each operation with its parameters, body fields and
//! constraints, and its responses.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use serde_json::Value;

use super::AppState;
use super::pages::{Shell, render};

#[derive(Template)]
#[template(path = "api.html")]
struct ApiPage {
    shell: Shell,
    version: String,
    operations: Vec<Operation>,
}

struct Operation {
    /// A request to copy and paste (curl), when there is one to show.
    example: Option<String>,
    anchor: String,
    method: String,
    path: String,
    summary: String,
    description: String,
    params: Vec<Field>,
    bodies: Vec<Body>,
    responses: Vec<Reply>,
}

struct Body {
    content_type: String,
    fields: Vec<Field>,
}

struct Field {
    name: String,
    kind: String,
    required: bool,
    rules: String,
    description: String,
}

struct Reply {
    status: String,
    description: String,
    content_types: String,
}

/// `components.schemas.X` for `{"$ref": "#/components/schemas/X"}`.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/components/schemas/")) {
        Some(name) => &doc["components"]["schemas"][name],
        None => schema,
    }
}

/// `integer`, `string`, `array of string`, a schema's name; "or null" dropped
/// (optional fields say so in their own column).
fn kind(schema: &Value) -> String {
    if let Some(name) = schema.get("$ref").and_then(Value::as_str) {
        return name.rsplit('/').next().unwrap_or(name).to_string();
    }
    if let Some(alternatives) = schema.get("oneOf").and_then(Value::as_array) {
        let kinds: Vec<String> = alternatives.iter().map(kind).filter(|k| k != "null").collect();
        return kinds.join(" or ");
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).filter(|t| *t != "null").collect(),
        _ => vec![],
    };
    match types.first() {
        Some(&"array") => format!("array of {}", kind(&schema["items"])),
        Some(t) => t.to_string(),
        None => "any".into(),
    }
}

/// The constraints a value must meet, in short words.
fn rules(schema: &Value) -> String {
    let mut out = Vec::new();
    let n = |k: &str| schema.get(k).filter(|v| v.is_number()).map(|v| v.to_string());
    match (n("minimum"), n("maximum")) {
        (Some(a), Some(b)) => out.push(format!("{a} to {b}")),
        (Some(a), None) => out.push(format!("at least {a}")),
        (None, Some(b)) => out.push(format!("at most {b}")),
        _ => {}
    }
    match (n("minLength"), n("maxLength")) {
        (Some(a), Some(b)) => out.push(format!("{a} to {b} characters")),
        (None, Some(b)) => out.push(format!("at most {b} characters")),
        (Some(a), None) => out.push(format!("at least {a} characters")),
        _ => {}
    }
    match (n("minItems"), n("maxItems")) {
        (Some(a), Some(b)) => out.push(format!("{a} to {b} items")),
        (None, Some(b)) => out.push(format!("at most {b} items")),
        _ => {}
    }
    if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
        out.push(format!("matches {p}"));
    }
    if let Some(m) = schema.get("contentMediaType").and_then(Value::as_str) {
        out.push(format!("a {m} file"));
    }
    out.join("; ")
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

/// The document's descriptions write code in backticks (Markdown): escaped
/// for HTML, with each `code` span as `<code>`. The template shows it as is.
fn inline_code(text: &str) -> String {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;");
    let mut out = String::with_capacity(escaped.len() + 16);
    let mut parts = escaped.split('`').peekable();
    let mut inside = false;
    while let Some(part) = parts.next() {
        out.push_str(part);
        if parts.peek().is_some() {
            out.push_str(if inside { "</code>" } else { "<code>" });
            inside = !inside;
        }
    }
    if inside {
        out.push_str("</code>");
    }
    out
}

/// A request to paste into a shell for the operations people try first, with
/// this server's own examples in it.
fn curl(method: &str, path: &str, base: &str, example: &str) -> Option<String> {
    let query = super::depict::escape(example);
    let json = serde_json::to_string(example).unwrap_or_default();
    Some(match (method, path) {
        ("POST", "/api/v1/translate") => format!(
            "curl -s {base}/api/v1/translate -H 'content-type: application/json' \\\n  -d '{{\"text\": {json}, \"beam\": 5, \"n_best\": 3}}'"
        ),
        ("POST", "/api/v1/translate/batch") => format!(
            "curl -sN {base}/api/v1/translate/batch -H 'content-type: application/json' \\\n  -d '{{\"inputs\": [{json}, {json}], \"n_best\": 2}}'"
        ),
        ("POST", "/api/v1/translate/batch/export") => {
            format!("curl -s '{base}/api/v1/translate/batch/export?format=csv' --data-binary @rows.ndjson -o rows.csv")
        }
        ("GET", "/api/v1/depict") => format!("curl -s '{base}/api/v1/depict?smiles={query}' -o drawing.svg"),
        ("GET", "/api/v1/structure") => {
            format!("curl -s '{base}/api/v1/structure?smiles={query}&format=mol' -o molecule.mol")
        }
        ("POST", "/api/v1/structure") => format!("curl -s {base}/api/v1/structure --data-binary @molecule.mol"),
        ("GET", _) if !path.contains('{') => format!("curl -s {base}{path}"),
        _ => return None,
    })
}

/// This server's address as the client reached it (the `Host` header when it
/// is a plain host name or address, else the default), for the examples.
fn base(headers: &axum::http::HeaderMap) -> String {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty() && h.len() <= 255 && h.chars().all(|c| c.is_ascii_alphanumeric() || ".:-[]".contains(c))
        })
        .unwrap_or("localhost:8501");
    let https = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()) == Some("https");
    format!("{}://{host}", if https { "https" } else { "http" })
}

fn fields(doc: &Value, schema: &Value) -> Vec<Field> {
    let schema = resolve(doc, schema);
    let required: Vec<&str> =
        schema["required"].as_array().map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let Some(properties) = schema["properties"].as_object() else {
        return Vec::new();
    };
    properties
        .iter()
        .map(|(name, p)| Field {
            name: name.clone(),
            kind: kind(p),
            required: required.contains(&name.as_str()),
            rules: rules(p),
            description: inline_code(&text(&p["description"])),
        })
        .collect()
}

fn operations(doc: &Value) -> Vec<Operation> {
    let mut out = Vec::new();
    let Some(paths) = doc["paths"].as_object() else {
        return out;
    };
    for (path, item) in paths {
        let Some(methods) = item.as_object() else { continue };
        for (method, op) in methods {
            let params = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| Field {
                            name: format!("{} ({})", text(&p["name"]), text(&p["in"])),
                            kind: kind(&p["schema"]),
                            required: p["required"] == true,
                            rules: rules(&p["schema"]),
                            description: inline_code(&text(&p["description"])),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let bodies = op["requestBody"]["content"]
                .as_object()
                .map(|c| {
                    c.iter()
                        .map(|(content_type, m)| Body {
                            content_type: content_type.clone(),
                            fields: fields(doc, &m["schema"]),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let responses = op["responses"]
                .as_object()
                .map(|rs| {
                    rs.iter()
                        .map(|(status, r)| Reply {
                            status: status.clone(),
                            description: inline_code(&text(&r["description"])),
                            content_types: r["content"]
                                .as_object()
                                .map(|c| c.keys().cloned().collect::<Vec<_>>().join(", "))
                                .unwrap_or_default(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(Operation {
                example: None,
                anchor: format!("{method}-{}", path.trim_matches('/').replace(['/', '.'], "-")),
                method: method.to_uppercase(),
                path: path.clone(),
                summary: text(&op["summary"]),
                description: inline_code(&text(&op["description"])),
                params,
                bodies,
                responses,
            });
        }
    }
    out
}

pub async fn api_page(State(state): State<Arc<AppState>>, headers: axum::http::HeaderMap) -> Response {
    let doc = state.openapi();
    let base = base(&headers);
    let example = state.config.examples.first().map_or("CCO", |e| e.text.as_str());
    let mut operations = operations(doc);
    for op in &mut operations {
        op.example = curl(&op.method, &op.path, &base, example);
    }
    render(&ApiPage { shell: Shell::new(&state, "api"), version: text(&doc["info"]["version"]), operations })
}
