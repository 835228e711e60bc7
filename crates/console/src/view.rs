//! The page shell and the pieces every page uses.

use axum::response::Html;
use maud::{DOCTYPE, Markup, html};

use crate::Console;
use crate::backend::Query;
use crate::session::Session;

/// What the shell shows around a page's body.
#[derive(Debug, Default)]
pub struct Chrome {
    /// The logged-in key's name and whether it is an admin, and the CSRF token for logout.
    pub session: Option<(String, bool, String)>,
    /// The `/v1` queries this page shows, in the order it shows them.
    pub json: Vec<Query>,
    /// The navigation entry to mark as current.
    pub current: &'static str,
}

impl Chrome {
    pub fn of(console: &Console, session: &Session, current: &'static str, json: Query) -> Self {
        Self {
            session: Some((
                session.who.0.clone(),
                session.is_admin(),
                console.signer.csrf(session),
            )),
            json: vec![json],
            current,
        }
    }

    /// The page shows this query's answer too.
    pub fn and_json(mut self, query: Query) -> Self {
        self.json.push(query);
        self
    }
}

const NAV: [(&str, &str, &str); 4] = [
    ("overview", "/console", "Overview"),
    ("customers", "/console/customers", "Customers"),
    ("logs", "/console/logs", "Deliveries"),
    ("docs", "/docs", "API docs"),
];

/// A whole page.
pub fn layout(title: &str, chrome: &Chrome, body: Markup) -> Html<String> {
    Html(page(title, chrome, body).into_string())
}

fn page(title: &str, chrome: &Chrome, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Showpass console" }
                link rel="stylesheet" href="/console/console.css";
            }
            body {
                header.top {
                    a.brand href="/console" { "Showpass console" }
                    nav aria-label="Console" {
                        ul {
                            @for (id, href, label) in NAV {
                                li {
                                    @if id == chrome.current {
                                        a href=(href) aria-current="page" { (label) }
                                    } @else {
                                        a href=(href) { (label) }
                                    }
                                }
                            }
                        }
                    }
                    @if let Some((who, admin, csrf)) = &chrome.session {
                        form.logout method="post" action="/console/logout" {
                            span.who title="The key this session logged in with" {
                                (who) @if *admin { " · admin" } @else { " · read" }
                            }
                            input type="hidden" name="csrf" value=(csrf);
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main { (body) }
                @if let [q] = chrome.json.as_slice() {
                    footer {
                        "This page shows "
                        a href=(q.json_link()) { "the JSON" }
                        " of "
                        code { "GET " (q.uri()) }
                        " (with "
                        code { "Authorization: Bearer <key>" }
                        ")."
                    }
                } @else if !chrome.json.is_empty() {
                    footer {
                        "This page shows the JSON of these queries (each with "
                        code { "Authorization: Bearer <key>" }
                        "):"
                        ul.json {
                            @for q in &chrome.json {
                                li { a href=(q.json_link()) { code { "GET " (q.uri()) } } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// An error shown on a form, tied to its field.
pub fn form_error(error: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = error {
            p.error role="alert" id="form-error" { (e) }
        }
    }
}

/// A labelled text input.
pub fn text_field(name: &str, label: &str, value: Option<&str>, kind: &str, hint: &str) -> Markup {
    let id = format!("f-{name}");
    html! {
        div.field {
            label for=(id) { (label) }
            input id=(id) name=(name) type=(kind) value=[value] placeholder=(hint);
        }
    }
}

/// A labelled select of `options` (value, label), the first being "any".
pub fn select_field(
    name: &str,
    label: &str,
    value: Option<&str>,
    options: &[(&str, &str)],
) -> Markup {
    let id = format!("f-{name}");
    let value = value.unwrap_or("");
    html! {
        div.field {
            label for=(id) { (label) }
            select id=(id) name=(name) {
                @for (v, l) in options {
                    option value=(v) selected[*v == value] { (l) }
                }
            }
        }
    }
}

/// "Next page" for a list, when there is one, and "First page" when not on it.
pub fn pager(base: &str, query: &Query, next: Option<&str>, on_first: bool) -> Markup {
    let mut first = query.clone();
    first.params.retain(|(k, _)| *k != "cursor");
    let first_qs = serde_urlencoded::to_string(&first.params).unwrap_or_default();
    html! {
        nav.pager aria-label="Pages" {
            @if !on_first {
                a href={ (base) "?" (first_qs) } { "First page" }
            }
            @if let Some(c) = next {
                a rel="next" href={ (base) "?" (query.with_cursor(c)) } { "Next page" }
            } @else {
                span.muted { "No more pages" }
            }
        }
    }
}

/// A status word as a badge.
pub fn badge(word: &str) -> Markup {
    let class = match word {
        "accepted" | "applied" | "purchased" | "issued" | "ok" => "badge good",
        "rejected" | "failed" | "voided" | "refunded" | "attention" => "badge bad",
        "duplicate" | "skipped" | "pending" | "partially_refunded" | "transferred" => "badge warn",
        _ => "badge",
    };
    html! { span class=(class) { (word) } }
}
