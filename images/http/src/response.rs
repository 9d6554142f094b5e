//! Responses: the status, the head (always with a correct
//! `Content-Length`), and the routing from a request to a body.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use crate::content;
use crate::request::{Method, Request};

/// The statuses this server sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    PayloadTooLarge,
    HeaderFieldsTooLarge,
    ServiceUnavailable,
    /// Any other status (100..=599), as an `http.request` graft chose it.
    Other(u16),
}

impl Status {
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::RequestTimeout => 408,
            Status::PayloadTooLarge => 413,
            Status::HeaderFieldsTooLarge => 431,
            Status::ServiceUnavailable => 503,
            Status::Other(code) => code,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadRequest => "Bad Request",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::RequestTimeout => "Request Timeout",
            Status::PayloadTooLarge => "Content Too Large",
            Status::HeaderFieldsTooLarge => "Request Header Fields Too Large",
            Status::ServiceUnavailable => "Service Unavailable",
            Status::Other(code) => match code {
                200 => "OK",
                204 => "No Content",
                301 => "Moved Permanently",
                302 => "Found",
                401 => "Unauthorized",
                403 => "Forbidden",
                410 => "Gone",
                418 => "I'm a teapot",
                429 => "Too Many Requests",
                451 => "Unavailable For Legal Reasons",
                500 => "Internal Server Error",
                _ => "Status",
            },
        }
    }
}

/// A response body.
#[derive(Debug, PartialEq, Eq)]
pub enum Body {
    Static(&'static [u8]),
    Owned(String),
}

impl Body {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Body::Static(bytes) => bytes,
            Body::Owned(text) => text.as_bytes(),
        }
    }
}

/// A complete response before serialisation.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub status: Status,
    pub media_type: &'static str,
    pub body: Body,
}

impl Response {
    /// A short plain-text error page for `status`.
    pub fn error(status: Status) -> Response {
        let mut text = String::new();
        let _ = writeln!(text, "{} {}", status.code(), status.reason());
        Response {
            status,
            media_type: "text/plain; charset=utf-8",
            body: Body::Owned(text),
        }
    }

    /// Writes the status line and header fields into `out` (cleared
    /// first). `send_body` is false for HEAD, whose `Content-Length` still
    /// gives the length a GET would get.
    pub fn write_head(&self, out: &mut Vec<u8>, keep_alive: bool) {
        out.clear();
        let mut head = Head(out);
        let _ = write!(
            head,
            "HTTP/1.1 {} {}\r\nServer: rootstock\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
            self.status.code(),
            self.status.reason(),
            self.media_type,
            self.body.bytes().len()
        );
        if self.status == Status::MethodNotAllowed {
            let _ = write!(head, "Allow: GET, HEAD\r\n");
        }
        let connection = if keep_alive { "keep-alive" } else { "close" };
        let _ = write!(head, "Connection: {connection}\r\n\r\n");
    }
}

struct Head<'a>(&'a mut Vec<u8>);

impl core::fmt::Write for Head<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// The response to a valid request; `stats_json` renders `/stats`.
pub fn route(request: &Request<'_>, stats_json: impl FnOnce() -> String) -> Response {
    let path = request.target.split(['?', '#']).next().unwrap_or("");
    if path == "/stats" {
        return Response {
            status: Status::Ok,
            media_type: "application/json",
            body: Body::Owned(stats_json()),
        };
    }
    match content::find(request.target) {
        Some(asset) => Response {
            status: Status::Ok,
            media_type: asset.media_type,
            body: Body::Static(asset.body),
        },
        None => Response::error(Status::NotFound),
    }
}

/// Whether the body is sent for this method.
pub fn sends_body(method: Method) -> bool {
    method == Method::Get
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn get(target: &str) -> Request<'_> {
        Request {
            method: Method::Get,
            target,
            keep_alive: true,
            head_len: 0,
            body_len: 0,
        }
    }

    #[test]
    fn content_length_is_the_body_length() {
        let response = route(&get("/hello.txt"), String::new);
        let mut head = Vec::new();
        response.write_head(&mut head, true);
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains(&format!(
            "Content-Length: {}\r\n",
            response.body.bytes().len()
        )));
        assert!(head.contains("Connection: keep-alive\r\n"));
        assert!(head.ends_with("\r\n\r\n"));
    }

    #[test]
    fn unknown_paths_are_404_and_stats_is_json() {
        assert_eq!(
            route(&get("/missing"), String::new).status,
            Status::NotFound
        );
        let stats = route(&get("/stats?pretty"), || "{\"requests\":1}".to_string());
        assert_eq!(stats.media_type, "application/json");
        assert_eq!(stats.body.bytes(), b"{\"requests\":1}");
    }

    #[test]
    fn error_pages_say_what_happened_and_405_lists_the_methods() {
        let response = Response::error(Status::MethodNotAllowed);
        assert_eq!(response.body.bytes(), b"405 Method Not Allowed\n");
        let mut head = Vec::new();
        response.write_head(&mut head, false);
        let head = String::from_utf8(head).unwrap();
        assert!(head.contains("Allow: GET, HEAD\r\n"));
        assert!(head.contains("Connection: close\r\n"));
    }
}
