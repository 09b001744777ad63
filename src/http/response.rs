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
    /// Kept open for the next request, for at most this long while idle.
    KeepAlive(Duration),
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
    pub fate: Fate,
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
        if self.allow {
            out.extend_from_slice(b"Allow: ");
            out.extend_from_slice(ALLOW.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        match self.fate {
            Fate::KeepAlive(idle) => {
                let _ = write!(
                    out,
                    "Connection: keep-alive\r\nKeep-Alive: timeout={}\r\n",
                    idle.as_secs().max(1)
                );
            }
            Fate::Close => out.extend_from_slice(b"Connection: close\r\n"),
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// Text types are served as UTF-8 (the document root is ours to describe); others as they are.
fn needs_charset(media: &str) -> bool {
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
        let mut head = Head::new(Status::Ok, Fate::KeepAlive(Duration::from_secs(3)));
        head.content_type = Some("text/html");
        head.content_length = 41049;
        assert_eq!(
            written(head),
            format!(
                "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nServer: {SERVER}\r\n\
                 Content-Type: text/html; charset=utf-8\r\nContent-Length: 41049\r\n\
                 Connection: keep-alive\r\nKeep-Alive: timeout=3\r\n\r\n"
            )
        );
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
        let table: [(Head<'_>, &[&str], &[&str]); 3] = [
            (
                redirect,
                &[
                    "HTTP/1.1 301 Moved Permanently\r\n",
                    "\r\nLocation: /dir/\r\n",
                    "\r\nContent-Length: 0\r\n",
                ],
                &["Content-Type"],
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
