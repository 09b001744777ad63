//! Response status codes: the closed set this server can answer with.
//!
//! A status is a type rather than a `u16` so that every code we send has a reason phrase,
//! an error page and a known effect on the connection, checked by the compiler.

use std::fmt;

/// Every status poolhttpd sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// 200: the representation follows.
    Ok,
    /// 204: used for `OPTIONS`.
    NoContent,
    /// 206: one byte range of the representation follows.
    PartialContent,
    /// 301: a directory was named without its trailing slash.
    MovedPermanently,
    /// 304: the client's cached copy is current.
    NotModified,
    /// 400: the request is malformed or tries to leave the document root.
    BadRequest,
    /// 403: the file exists but may not be served.
    Forbidden,
    /// 404: nothing to serve at that path.
    NotFound,
    /// 405: a known method other than GET, HEAD and OPTIONS.
    MethodNotAllowed,
    /// 408: the request head did not arrive in time.
    RequestTimeout,
    /// 412: an `If-Match` or `If-Unmodified-Since` condition is false.
    PreconditionFailed,
    /// 413: the request body is larger than we are willing to discard.
    ContentTooLarge,
    /// 414: the request line is longer than our limit.
    UriTooLong,
    /// 416: the requested range lies outside the file.
    RangeNotSatisfiable,
    /// 431: the request head is larger than our limit.
    HeaderFieldsTooLarge,
    /// 500: an unexpected failure on our side.
    InternalServerError,
    /// 501: a method or transfer coding we do not know.
    NotImplemented,
    /// 505: an HTTP version other than 1.0 and 1.1.
    VersionNotSupported,
}

impl Status {
    /// Every variant, for tables and for loading error pages.
    pub const ALL: [Status; 18] = [
        Status::Ok,
        Status::NoContent,
        Status::PartialContent,
        Status::MovedPermanently,
        Status::NotModified,
        Status::BadRequest,
        Status::Forbidden,
        Status::NotFound,
        Status::MethodNotAllowed,
        Status::RequestTimeout,
        Status::PreconditionFailed,
        Status::ContentTooLarge,
        Status::UriTooLong,
        Status::RangeNotSatisfiable,
        Status::HeaderFieldsTooLarge,
        Status::InternalServerError,
        Status::NotImplemented,
        Status::VersionNotSupported,
    ];

    /// The three-digit code.
    pub const fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::NoContent => 204,
            Status::PartialContent => 206,
            Status::MovedPermanently => 301,
            Status::NotModified => 304,
            Status::BadRequest => 400,
            Status::Forbidden => 403,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::RequestTimeout => 408,
            Status::PreconditionFailed => 412,
            Status::ContentTooLarge => 413,
            Status::UriTooLong => 414,
            Status::RangeNotSatisfiable => 416,
            Status::HeaderFieldsTooLarge => 431,
            Status::InternalServerError => 500,
            Status::NotImplemented => 501,
            Status::VersionNotSupported => 505,
        }
    }

    /// The reason phrase of RFC 9110.
    pub const fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::NoContent => "No Content",
            Status::PartialContent => "Partial Content",
            Status::MovedPermanently => "Moved Permanently",
            Status::NotModified => "Not Modified",
            Status::BadRequest => "Bad Request",
            Status::Forbidden => "Forbidden",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::RequestTimeout => "Request Timeout",
            Status::PreconditionFailed => "Precondition Failed",
            Status::ContentTooLarge => "Content Too Large",
            Status::UriTooLong => "URI Too Long",
            Status::RangeNotSatisfiable => "Range Not Satisfiable",
            Status::HeaderFieldsTooLarge => "Request Header Fields Too Large",
            Status::InternalServerError => "Internal Server Error",
            Status::NotImplemented => "Not Implemented",
            Status::VersionNotSupported => "HTTP Version Not Supported",
        }
    }

    /// True for 4xx and 5xx: the body is an error page.
    pub const fn is_error(self) -> bool {
        self.code() >= 400
    }

    /// True where RFC 9110 forbids a body (204, 304).
    pub const fn forbids_body(self) -> bool {
        matches!(self, Status::NoContent | Status::NotModified)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.reason())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_in_their_class() {
        let mut seen = std::collections::HashSet::new();
        for status in Status::ALL {
            assert!(seen.insert(status.code()), "{status:?} repeats a code");
            assert!((200..600).contains(&status.code()));
            assert_eq!(status.is_error(), status.code() >= 400);
            assert!(!status.reason().is_empty());
        }
    }

    #[test]
    fn display_is_the_status_line_tail() {
        let table = [
            (Status::Ok, "200 OK"),
            (Status::NotFound, "404 Not Found"),
            (
                Status::HeaderFieldsTooLarge,
                "431 Request Header Fields Too Large",
            ),
            (
                Status::VersionNotSupported,
                "505 HTTP Version Not Supported",
            ),
        ];
        for (status, text) in table {
            assert_eq!(status.to_string(), text);
        }
    }
}
