//! Plain HTTP/1.1 for the test's own checks beside the browser.

use std::io::{Read, Write};

/// A request; answers the status, the headers and the body.
pub fn exchange(port: u16, head: &str, body: &str) -> (u16, Vec<(String, String)>, String) {
    let Ok(mut tcp) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, Vec::new(), String::new());
    };
    write!(
        tcp,
        "{head}Host: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    if tcp.read_to_string(&mut answer).is_err() || answer.len() < 12 {
        return (0, Vec::new(), String::new());
    }
    let status = answer[9..12].parse().unwrap_or(0);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

/// `GET path`, with a session cookie if given.
pub fn get_page(port: u16, path: &str, cookie: Option<&str>) -> (u16, String) {
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    let (status, _, body) = exchange(port, &format!("GET {path} HTTP/1.1\r\n{cookie}"), "");
    (status, body)
}

/// `GET path` with a bearer key, as JSON (`null` when it is not).
pub fn get_json(port: u16, path: &str, key: &str) -> serde_json::Value {
    let (_, _, body) = exchange(
        port,
        &format!("GET {path} HTTP/1.1\r\nAuthorization: Bearer {key}\r\n"),
        "",
    );
    serde_json::from_str(&body).unwrap_or(serde_json::Value::Null)
}

/// A form `POST`, with a session cookie if given.
pub fn form_post(
    port: u16,
    path: &str,
    form: &str,
    cookie: Option<&str>,
) -> (u16, Vec<(String, String)>, String) {
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    exchange(
        port,
        &format!(
            "POST {path} HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n{cookie}"
        ),
        form,
    )
}

/// `GET path` with a session cookie: the status, the headers and the body.
pub fn get_full(port: u16, path: &str, cookie: &str) -> (u16, Vec<(String, String)>, String) {
    exchange(
        port,
        &format!("GET {path} HTTP/1.1\r\nCookie: {cookie}\r\n"),
        "",
    )
}

/// The value of header `name`, if there is one.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}
