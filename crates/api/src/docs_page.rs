//! `/docs`: the API reference as one server-rendered page, drawn from the OpenAPI document.
//!
//! It loads nothing from elsewhere and runs no script (its Content-Security-Policy is
//! `default-src 'self'`), so it reads the same in a private network as on the internet.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use serde_json::Value;

/// Everything from here, nothing inline, no framing.
const CSP: &str = "default-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

const CSS: &str = include_str!("docs.css");

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The page for `doc`, rendered once at start-up.
pub(crate) fn render(doc: &Value) -> String {
    let info = &doc["info"];
    let title = info["title"].as_str().unwrap_or("API");
    let tags = tags(doc);
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · reference" }
                link rel="stylesheet" href="/docs/docs.css";
            }
            body {
                nav aria-label="Contents" {
                    p.brand { (title) " " span.version { (info["version"].as_str().unwrap_or("")) } }
                    p { a href="/openapi.json" { "openapi.json" } " · " a href="/console" { "console" } }
                    @for (tag, _, ops) in &tags {
                        h2 { a href={ "#tag-" (tag) } { (tag) } }
                        ul.ops {
                            @for (path, method, op) in ops {
                                li { a href={ "#" (anchor(method, path)) } {
                                    span class={ "method " (method) } { (method.to_uppercase()) }
                                    " " (path)
                                    @if let Some(s) = op["summary"].as_str() { span.sr { " " (s) } }
                                } }
                            }
                        }
                    }
                    h2 { a href="#schemas" { "schemas" } }
                    ul.ops {
                        @for name in schema_names(doc) {
                            li { a href={ "#schema-" (name) } { (name) } }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (prose(info["description"].as_str().unwrap_or("")))
                    p { "The machine-readable document is " a href="/openapi.json" { code { "/openapi.json" } } " (OpenAPI " (doc["openapi"].as_str().unwrap_or("")) ")." }
                    @for (tag, description, ops) in &tags {
                        section.tag id={ "tag-" (tag) } {
                            h2 { (tag) }
                            @if let Some(d) = description { p { (d) } }
                            @for (path, method, op) in ops {
                                (operation(path, method, op))
                            }
                        }
                    }
                    section id="schemas" {
                        h2 { "Schemas" }
                        @for name in schema_names(doc) {
                            (schema_section(name, &doc["components"]["schemas"][name]))
                        }
                    }
                }
            }
        }
    };
    page.into_string()
}

/// An operation: its path, its method and its OpenAPI object.
type Operation = (String, String, Value);
/// A tag: its name, its description and its operations.
type Tag = (String, Option<String>, Vec<Operation>);

/// The tags in the document's order, each with its description and its operations; an
/// operation without a tag goes under "other".
fn tags(doc: &Value) -> Vec<Tag> {
    let mut out: Vec<Tag> = doc["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let name = t["name"].as_str()?.to_owned();
            Some((
                name,
                t["description"].as_str().map(str::to_owned),
                Vec::new(),
            ))
        })
        .collect();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let tag = op["tags"][0].as_str().unwrap_or("other");
            let i = match out.iter().position(|(t, _, _)| t == tag) {
                Some(i) => i,
                None => {
                    out.push((tag.to_owned(), None, Vec::new()));
                    out.len() - 1
                }
            };
            out[i].2.push((path.clone(), method.to_owned(), op.clone()));
        }
    }
    out.retain(|(_, _, ops)| !ops.is_empty());
    out
}

fn schema_names(doc: &Value) -> Vec<&str> {
    doc["components"]["schemas"]
        .as_object()
        .map(|s| s.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

fn anchor(method: &str, path: &str) -> String {
    let slug: String = path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("op-{method}{slug}")
}

/// Paragraphs split at blank lines; `code` spans kept as code.
fn prose(text: &str) -> Markup {
    html! {
        @for para in text.split("\n\n").filter(|p| !p.trim().is_empty()) {
            p { (inline(para)) }
        }
    }
}

/// Text with its `code` spans, escaped.
fn inline(text: &str) -> Markup {
    html! {
        @for (i, part) in text.split('`').enumerate() {
            @if i % 2 == 1 { code { (part) } } @else { (part) }
        }
    }
}

fn operation(path: &str, method: &str, op: &Value) -> Markup {
    let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
    html! {
        article.operation id=(anchor(method, path)) {
            h3 {
                span class={ "method " (method) } { (method.to_uppercase()) }
                " " code.path { (path) }
            }
            @if let Some(s) = op["summary"].as_str() { p.summary { (inline(s)) } }
            @if let Some(d) = op["description"].as_str() { (prose(d)) }
            p.auth {
                @if secured { "Needs " code { "Authorization: Bearer <key>" } "." }
                @else { "Open: no key needed." }
            }
            @if let Some(params) = op["parameters"].as_array().filter(|p| !p.is_empty()) {
                h4 { "Parameters" }
                div.scroll { table {
                    thead { tr { th scope="col" { "name" } th scope="col" { "in" } th scope="col" { "type" } th scope="col" { "description" } } }
                    tbody {
                        @for p in params {
                            tr {
                                th scope="row" {
                                    code { (p["name"].as_str().unwrap_or("")) }
                                    @if p["required"] == true { " " span.required { "required" } }
                                }
                                td { (p["in"].as_str().unwrap_or("")) }
                                td { (type_of(&p["schema"])) (constraints(&p["schema"])) }
                                td { (inline(p["description"].as_str().unwrap_or(""))) }
                            }
                        }
                    }
                } }
            }
            @if let Some(body) = op["requestBody"].as_object() {
                h4 { "Request body" }
                (content(body.get("content").unwrap_or(&Value::Null)))
            }
            h4 { "Responses" }
            div.scroll { table {
                thead { tr { th scope="col" { "status" } th scope="col" { "description" } th scope="col" { "body" } } }
                tbody {
                    @for (status, r) in op["responses"].as_object().into_iter().flatten() {
                        tr {
                            th scope="row" { (status) }
                            td { (inline(r["description"].as_str().unwrap_or(""))) }
                            td { (content(&r["content"])) }
                        }
                    }
                }
            } }
        }
    }
}

/// Each media type and the schema of its body.
fn content(content: &Value) -> Markup {
    html! {
        @for (media, body) in content.as_object().into_iter().flatten() {
            div { code { (media) } ": " (type_of(&body["schema"])) }
        }
    }
}

/// A schema's type, briefly: a link for a reference, `array of …`, `a | b`, an enum's values.
fn type_of(s: &Value) -> Markup {
    if let Some(r) = s["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap_or(r);
        return html! { a href={ "#schema-" (name) } { (name) } };
    }
    for combinator in ["allOf", "oneOf", "anyOf"] {
        if let Some(parts) = s[combinator].as_array() {
            let sep = if combinator == "allOf" { " & " } else { " | " };
            return html! {
                @for (i, part) in parts.iter().enumerate() {
                    @if i > 0 { (sep) }
                    (type_of(part))
                }
            };
        }
    }
    if let Some(values) = s["enum"].as_array() {
        return html! {
            "one of "
            @for (i, v) in values.iter().enumerate() {
                @if i > 0 { ", " }
                code { (v.as_str().map_or_else(|| v.to_string(), str::to_owned)) }
            }
        };
    }
    let types: Vec<&str> = match &s["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    html! {
        @if types.is_empty() { "any" }
        @for (i, t) in types.iter().enumerate() {
            @if i > 0 { " | " }
            @if *t == "array" { "array of " (type_of(&s["items"])) } @else { (t) }
        }
        @if let Some(f) = s["format"].as_str() { " (" (f) ")" }
    }
}

/// Bounds on a value: lengths, ranges, a pattern, a default.
fn constraints(s: &Value) -> Markup {
    let mut notes = Vec::new();
    for (key, label) in [
        ("minimum", "min"),
        ("maximum", "max"),
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("default", "default"),
    ] {
        if let Some(v) = s.get(key) {
            notes.push(format!("{label} {v}"));
        }
    }
    html! {
        @if !notes.is_empty() { span.constraints { " · " (notes.join(", ")) } }
        @if let Some(p) = s["pattern"].as_str() { span.constraints { " · pattern " code { (p) } } }
    }
}

fn schema_section(name: &str, s: &Value) -> Markup {
    html! {
        article.schema id={ "schema-" (name) } {
            h3 { code { (name) } }
            @if let Some(d) = s["description"].as_str() { (prose(d)) }
            (schema_body(s))
        }
    }
}

/// An object's properties as a table; `allOf` as its parts; anything else as its type.
fn schema_body(s: &Value) -> Markup {
    if let Some(parts) = s["allOf"].as_array() {
        return html! {
            @for part in parts {
                @if part.get("$ref").is_some() { p { "Everything in " (type_of(part)) ", and:" } }
                @else { (schema_body(part)) }
            }
        };
    }
    let Some(props) = s["properties"].as_object() else {
        return html! { p { "Type: " (type_of(s)) (constraints(s)) } };
    };
    let required: Vec<&str> = s["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    html! {
        div.scroll { table {
            thead { tr { th scope="col" { "field" } th scope="col" { "type" } th scope="col" { "description" } } }
            tbody {
                @for (field, p) in props {
                    tr {
                        th scope="row" {
                            code { (field) }
                            @if required.contains(&field.as_str()) { " " span.required { "required" } }
                        }
                        td { (type_of(p)) (constraints(p)) }
                        td { (inline(p["description"].as_str().unwrap_or(""))) }
                    }
                }
            }
        } }
    }
}

/// The rendered page, with headers that keep it self-contained.
pub(crate) fn page(body: bytes::Bytes) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

pub(crate) fn stylesheet() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/css; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        CSS,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_and_schema_has_its_section_and_text_is_escaped() {
        let doc = serde_json::to_value(crate::openapi::openapi()).unwrap();
        let page = render(&doc);
        assert!(page.contains("id=\"op-get-v1-sales-summary\""));
        assert!(page.contains("id=\"schema-Problem\""));
        assert!(!page.contains("<script"), "no script");
        assert!(!page.contains("https://"), "nothing from elsewhere");
        let hostile = serde_json::json!({"info": {"title": "<script>x</script>"}, "paths": {}});
        assert!(!render(&hostile).contains("<script>x"));
    }
}
