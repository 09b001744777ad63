//! Terminal logging: one line per request and per connection opened or closed, each naming
//! the thread that did the work.
//!
//! Each thread formats into its own buffer and hands the finished line to stdout in a single
//! write, so a slow terminal holds a worker for at most one line and lines never interleave.

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

/// Who did the work a line describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The mio poll thread.
    Poll,
    /// Worker `n` of the fixed pool.
    Worker(usize),
    /// The accepting thread of the thread-per-connection model.
    Accept,
    /// The thread of connection `n` in the thread-per-connection model.
    Thread(u64),
    /// The thread that waits for SIGINT and SIGTERM in the thread-per-connection model.
    Signals,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Poll => f.write_str("[poll]"),
            Actor::Worker(n) => write!(f, "[worker {n}]"),
            Actor::Accept => f.write_str("[accept]"),
            Actor::Thread(n) => write!(f, "[thread conn-{n}]"),
            Actor::Signals => f.write_str("[signals]"),
        }
    }
}

/// Where log lines go, and whether they go at all.
#[derive(Debug, Clone, Copy)]
pub struct Log {
    quiet: bool,
}

impl Log {
    /// A log that prints unless `quiet`.
    pub fn new(quiet: bool) -> Log {
        Log { quiet }
    }

    /// True when lines are printed; lets callers skip formatting.
    pub fn enabled(&self) -> bool {
        !self.quiet
    }

    /// Prints the line in `buf` (without newline) and clears `buf`.
    pub fn emit(&self, buf: &mut String) {
        if !self.quiet {
            buf.push('\n');
            // A closed or broken stdout must not take the server down with it.
            let _ = std::io::stdout().lock().write_all(buf.as_bytes());
        }
        buf.clear();
    }

    /// One response, once its last byte is written:
    /// `[worker 2] 127.0.0.1:53412 "GET /index.html HTTP/1.1" 200 41049 0.21ms`; or once the
    /// connection ended before that, with the body bytes that left, of how many, and why:
    /// `[worker 2] 127.0.0.1:53412 "GET /gif.gif HTTP/1.1" 200 65536/1539977 3.10ms (reset)`.
    /// `took` runs from the request's first byte to the response's last.
    #[allow(clippy::too_many_arguments)]
    pub fn request(
        &self,
        buf: &mut String,
        actor: Actor,
        peer: SocketAddr,
        request_line: RequestLine<'_>,
        status: u16,
        sent: u64,
        ended: Option<(u64, impl fmt::Display)>,
        took: Duration,
    ) {
        if self.quiet {
            return;
        }
        let response = Response {
            status,
            sent,
            ended,
            took,
        };
        let _ = write!(buf, "{actor} {peer} \"{request_line}\" {response}");
        self.emit(buf);
    }

    /// A line about a thread itself: `[poll] accept paused: …`.
    pub fn note(&self, buf: &mut String, actor: Actor, what: fmt::Arguments<'_>) {
        if self.quiet {
            return;
        }
        let _ = write!(buf, "{actor} {what}");
        self.emit(buf);
    }

    /// A connection event: `[poll] conn 7 127.0.0.1:53412 open`.
    pub fn conn(
        &self,
        buf: &mut String,
        actor: Actor,
        id: u64,
        peer: SocketAddr,
        what: fmt::Arguments<'_>,
    ) {
        if self.quiet {
            return;
        }
        let _ = write!(buf, "{actor} conn {id} {peer} {what}");
        self.emit(buf);
    }
}

impl Log {
    /// A connection closing: `[poll] conn 7 127.0.0.1:53412 closed (idle timeout) after 2 requests`.
    pub fn closed(
        &self,
        buf: &mut String,
        actor: Actor,
        id: u64,
        peer: SocketAddr,
        reason: impl fmt::Display,
        served: u32,
    ) {
        let noun = if served == 1 { "request" } else { "requests" };
        self.conn(
            buf,
            actor,
            id,
            peer,
            format_args!("closed ({reason}) after {served} {noun}"),
        );
    }
}

/// The part of a request's line after the request line: status, bytes, time, and how it
/// ended if it ended early.
struct Response<W> {
    status: u16,
    sent: u64,
    ended: Option<(u64, W)>,
    took: Duration,
}

impl<W: fmt::Display> fmt::Display for Response<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.took.as_secs_f64() * 1000.0;
        write!(f, "{} {}", self.status, self.sent)?;
        match &self.ended {
            None => write!(f, " {millis:.2}ms"),
            Some((of, why)) => write!(f, "/{of} {millis:.2}ms ({why})"),
        }
    }
}

/// A request line as logged, with anything unprintable escaped so that a request cannot
/// write control sequences to the terminal.
#[derive(Debug, Clone, Copy)]
pub enum RequestLine<'a> {
    /// A request's method, target and version, as sent.
    Request {
        method: &'a str,
        target: &'a str,
        version: &'a str,
    },
    /// Something refused before it was a request: `- what`.
    Refused(&'a str),
    /// A line formatted (and escaped) earlier, when the response was made.
    Escaped(&'a str),
}

impl fmt::Display for RequestLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestLine::Request {
                method,
                target,
                version,
            } => {
                escaped(f, method)?;
                f.write_char(' ')?;
                escaped(f, target)?;
                f.write_char(' ')?;
                f.write_str(version)
            }
            RequestLine::Refused(what) => {
                f.write_str("- ")?;
                escaped(f, what)
            }
            RequestLine::Escaped(line) => f.write_str(line),
        }
    }
}

fn escaped(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    for byte in text.bytes() {
        if (byte.is_ascii_graphic() || byte == b' ') && byte != b'"' && byte != b'\\' {
            f.write_char(char::from(byte))?;
        } else {
            write!(f, "\\x{byte:02x}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_are_escaped() {
        let request = |method, target, version| RequestLine::Request {
            method,
            target,
            version,
        };
        let table = [
            (
                request("GET", "/index.html", "HTTP/1.1"),
                "GET /index.html HTTP/1.1",
            ),
            (request("GET", "/a\"b", "HTTP/1.0"), "GET /a\\x22b HTTP/1.0"),
            (
                request("GET", "/\u{1b}[2J", "HTTP/1.1"),
                "GET /\\x1b[2J HTTP/1.1",
            ),
            (request("GET", "/é", "HTTP/1.1"), "GET /\\xc3\\xa9 HTTP/1.1"),
            (RequestLine::Refused("timed out"), "- timed out"),
            (request("GET", "/a\tb", "HTTP/1.1"), "GET /a\\x09b HTTP/1.1"),
            (RequestLine::Escaped("GET / HTTP/1.1"), "GET / HTTP/1.1"),
        ];
        for (line, want) in table {
            assert_eq!(line.to_string(), want);
        }
    }

    #[test]
    fn responses_say_what_left_and_how_they_ended() {
        let took = Duration::from_micros(3210);
        let table = [
            (None, 41049, "200 41049 3.21ms"),
            (
                Some((1539977, "reset")),
                65536,
                "200 65536/1539977 3.21ms (reset)",
            ),
            (
                Some((10, "send timeout")),
                0,
                "200 0/10 3.21ms (send timeout)",
            ),
        ];
        for (ended, sent, want) in table {
            let response = Response {
                status: 200,
                sent,
                ended,
                took,
            };
            assert_eq!(response.to_string(), want);
        }
    }

    #[test]
    fn actors_name_their_thread() {
        assert_eq!(Actor::Worker(2).to_string(), "[worker 2]");
        assert_eq!(Actor::Poll.to_string(), "[poll]");
        assert_eq!(Actor::Thread(12).to_string(), "[thread conn-12]");
    }
}
