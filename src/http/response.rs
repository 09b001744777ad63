//! Response heads, written straight into a connection's output buffer.

use std::io::Write;
use std::time::Duration;

use super::status::Status;

/// The `Server` header value.
pub const SERVER: &str = concat!("poolhttpd/", env!("CARGO_PKG_VERSION"));

/// The methods this server implements, for `Allow`.
pub const ALLOW: &str = "GET, HEAD, OPTIONS";

/// What happens to the connection after this response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Kept open for the next request. `announce` is the idle timeout, told in a
    /// `Keep-Alive` header only to an HTTP/1.0 client that asked to keep the connection:
    /// HTTP/1.1 does not define the header (RFC 9112 §9.3 makes persistence the default),
    /// and reviewers of 1.1 responses flag it as deprecated.
    KeepAlive { announce: Option<Duration> },
    /// Closed once the response is sent.
    Close,
}

/// Everything a response head says besides `Date` and `Server`.
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    pub status: Status,
    pub content_type: Option<&'a str>,
    /// The representation's length; not sent where the status forbids a body.
    pub content_length: u64,
    pub location: Option<&'a [u8]>,
    pub allow: bool,
    pub etag: Option<&'a [u8]>,
    pub last_modified: Option<&'a [u8]>,
    /// Says `Accept-Ranges: bytes` (on responses about a file).
    pub accept_ranges: bool,
    pub content_range: Option<ContentRange>,
    /// `Content-Encoding`: a precompressed copy is sent.
    pub content_encoding: Option<&'static str>,
    /// `Vary: Accept-Encoding`: the file has precompressed copies, so what is sent
    /// depends on that field.
    pub vary: bool,
    /// `Cache-Control: public, max-age=N` (`--max-age`).
    pub max_age: Option<u32>,
    pub fate: Fate,
}

/// The `Content-Range` of a 206 or 416.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentRange {
    /// `bytes start-last/len`, with `end` exclusive.
    Part { start: u64, end: u64, len: u64 },
    /// `bytes */len`.
    Unsatisfied { len: u64 },
}

impl<'a> Head<'a> {
    /// A head with only a status and a fate.
    pub fn new(status: Status, fate: Fate) -> Head<'a> {
        Head {
            status,
            content_type: None,
            content_length: 0,
            location: None,
            allow: false,
            etag: None,
            last_modified: None,
            accept_ranges: false,
            content_range: None,
            content_encoding: None,
            vary: false,
            max_age: None,
            fate,
        }
    }

    /// Appends the head, ending with the blank line, to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>, date: &[u8]) {
        // Writing into a Vec cannot fail; the Results below are always Ok.
        let _ = write!(
            out,
            "HTTP/1.1 {} {}\r\n",
            self.status.code(),
            self.status.reason()
        );
        out.extend_from_slice(b"Date: ");
        out.extend_from_slice(date);
        out.extend_from_slice(b"\r\nServer: ");
        out.extend_from_slice(SERVER.as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(media) = self.content_type {
            out.extend_from_slice(b"Content-Type: ");
            out.extend_from_slice(media.as_bytes());
            if needs_charset(media) {
                out.extend_from_slice(b"; charset=utf-8");
            }
            out.extend_from_slice(b"\r\n");
        }
        if !self.status.forbids_body() {
            let _ = write!(out, "Content-Length: {}\r\n", self.content_length);
        }
        if let Some(location) = self.location {
            out.extend_from_slice(b"Location: ");
            out.extend_from_slice(location);
            out.extend_from_slice(b"\r\n");
        }
        if let Some(coding) = self.content_encoding {
            out.extend_from_slice(b"Content-Encoding: ");
            out.extend_from_slice(coding.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if self.vary {
            out.extend_from_slice(b"Vary: Accept-Encoding\r\n");
        }
        if let Some(seconds) = self.max_age {
            let _ = write!(out, "Cache-Control: public, max-age={seconds}\r\n");
        }
        if let Some(etag) = self.etag {
            out.extend_from_slice(b"ETag: ");
            out.extend_from_slice(etag);
            out.extend_from_slice(b"\r\n");
        }
        if let Some(date) = self.last_modified {
            out.extend_from_slice(b"Last-Modified: ");
            out.extend_from_slice(date);
            out.extend_from_slice(b"\r\n");
        }
        if self.accept_ranges {
            out.extend_from_slice(b"Accept-Ranges: bytes\r\n");
        }
        match self.content_range {
            Some(ContentRange::Part { start, end, len }) => {
                let _ = write!(out, "Content-Range: bytes {start}-{}/{len}\r\n", end - 1);
            }
            Some(ContentRange::Unsatisfied { len }) => {
                let _ = write!(out, "Content-Range: bytes */{len}\r\n");
            }
            None => {}
        }
        if self.allow {
            out.extend_from_slice(b"Allow: ");
            out.extend_from_slice(ALLOW.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        match self.fate {
            Fate::KeepAlive { announce } => {
                out.extend_from_slice(b"Connection: keep-alive\r\n");
                if let Some(idle) = announce {
                    let _ = write!(out, "Keep-Alive: timeout={}\r\n", idle.as_secs().max(1));
                }
            }
            Fate::Close => out.extend_from_slice(b"Connection: close\r\n"),
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// Text types are served as UTF-8 (the document root is ours to describe); others as they are.
pub fn needs_charset(media: &str) -> bool {
    (media.starts_with("text/") || media == "application/json" || media == "image/svg+xml")
        && !media.contains(';')
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &[u8] = b"Sun, 06 Nov 1994 08:49:37 GMT";

    fn written(head: Head<'_>) -> String {
        let mut out = Vec::new();
        head.write_to(&mut out, DATE);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn ok_with_a_text_type() {
        let mut head = Head::new(Status::Ok, Fate::KeepAlive { announce: None });
        head.content_type = Some("text/html");
        head.content_length = 41049;
        assert_eq!(
            written(head),
            format!(
                "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nServer: {SERVER}\r\n\
                 Content-Type: text/html; charset=utf-8\r\nContent-Length: 41049\r\n\
                 Connection: keep-alive\r\n\r\n"
            )
        );
        head.fate = Fate::KeepAlive {
            announce: Some(Duration::from_millis(3500)),
        };
        assert!(written(head).ends_with("Connection: keep-alive\r\nKeep-Alive: timeout=3\r\n\r\n"));
    }

    #[test]
    fn table_of_heads() {
        let mut redirect = Head::new(Status::MovedPermanently, Fate::Close);
        redirect.location = Some(b"/dir/");
        let mut options = Head::new(Status::NoContent, Fate::Close);
        options.allow = true;
        let mut image = Head::new(Status::Ok, Fate::Close);
        image.content_type = Some("image/png");
        image.content_length = 7;
        let mut partial = Head::new(Status::PartialContent, Fate::Close);
        partial.content_length = 4;
        partial.content_range = Some(ContentRange::Part {
            start: 2,
            end: 6,
            len: 10,
        });
        partial.etag = Some(b"\"a-b-c\"");
        partial.last_modified = Some(DATE);
        partial.accept_ranges = true;
        let mut unsatisfied = Head::new(Status::RangeNotSatisfiable, Fate::Close);
        unsatisfied.content_range = Some(ContentRange::Unsatisfied { len: 10 });
        let mut not_modified = Head::new(Status::NotModified, Fate::Close);
        not_modified.etag = Some(b"\"a-b-c\"");
        not_modified.vary = true;
        not_modified.max_age = Some(600);
        let mut encoded = Head::new(Status::Ok, Fate::Close);
        encoded.content_type = Some("text/css");
        encoded.content_encoding = Some("br");
        encoded.vary = true;
        let table: [(Head<'_>, &[&str], &[&str]); 7] = [
            (
                redirect,
                &[
                    "HTTP/1.1 301 Moved Permanently\r\n",
                    "\r\nLocation: /dir/\r\n",
                    "\r\nContent-Length: 0\r\n",
                ],
                &["Content-Type", "Vary", "Cache-Control", "Content-Encoding"],
            ),
            (
                options,
                &[
                    "HTTP/1.1 204 No Content\r\n",
                    "\r\nAllow: GET, HEAD, OPTIONS\r\n",
                    "\r\nConnection: close\r\n",
                ],
                &["Content-Length", "Keep-Alive"],
            ),
            (
                image,
                &[
                    "\r\nContent-Type: image/png\r\n",
                    "\r\nContent-Length: 7\r\n",
                ],
                &["charset"],
            ),
            (
                partial,
                &[
                    "HTTP/1.1 206 Partial Content\r\n",
                    "\r\nContent-Range: bytes 2-5/10\r\n",
                    "\r\nContent-Length: 4\r\n",
                    "\r\nETag: \"a-b-c\"\r\n",
                    "\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n",
                    "\r\nAccept-Ranges: bytes\r\n",
                ],
                &[],
            ),
            (unsatisfied, &["\r\nContent-Range: bytes */10\r\n"], &[]),
            (
                not_modified,
                &[
                    "HTTP/1.1 304 Not Modified\r\n",
                    "\r\nETag: \"a-b-c\"\r\n",
                    "\r\nVary: Accept-Encoding\r\n",
                    "\r\nCache-Control: public, max-age=600\r\n",
                ],
                &["Content-Length", "Content-Type", "Content-Encoding"],
            ),
            (
                encoded,
                &[
                    "\r\nContent-Type: text/css; charset=utf-8\r\n",
                    "\r\nContent-Encoding: br\r\n",
                    "\r\nVary: Accept-Encoding\r\n",
                ],
                &["Cache-Control"],
            ),
        ];
        for (head, present, absent) in table {
            let text = written(head);
            assert!(text.ends_with("\r\n\r\n"), "{text}");
            for want in present {
                assert!(text.contains(want), "{want:?} missing from {text}");
            }
            for unwanted in absent {
                assert!(!text.contains(unwanted), "{unwanted:?} found in {text}");
            }
        }
    }
}
