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

    /// `[worker 2] 127.0.0.1:53412 "GET /index.html HTTP/1.1" 200 41049 0.21ms`
    #[allow(clippy::too_many_arguments)]
    pub fn request(
        &self,
        buf: &mut String,
        actor: Actor,
        peer: SocketAddr,
        request_line: RequestLine<'_>,
        status: u16,
        bytes: u64,
        took: Duration,
    ) {
        if self.quiet {
            return;
        }
        let millis = took.as_secs_f64() * 1000.0;
        let _ = write!(
            buf,
            "{actor} {peer} \"{request_line}\" {status} {bytes} {millis:.2}ms"
        );
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

/// A request line as logged: the method, target and version, with anything unprintable
/// escaped so that a request cannot write control sequences to the terminal.
#[derive(Debug, Clone, Copy)]
pub struct RequestLine<'a> {
    pub method: &'a str,
    pub target: &'a str,
    pub version: &'a str,
}

impl fmt::Display for RequestLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        escaped(f, self.method)?;
        f.write_char(' ')?;
        escaped(f, self.target)?;
        if !self.version.is_empty() {
            f.write_char(' ')?;
            f.write_str(self.version)?;
        }
        Ok(())
    }
}

fn escaped(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    for byte in text.bytes() {
        if byte.is_ascii_graphic() && byte != b'"' && byte != b'\\' {
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
        let table = [
            (
                ("GET", "/index.html", "HTTP/1.1"),
                "GET /index.html HTTP/1.1",
            ),
            (("GET", "/a\"b", "HTTP/1.0"), "GET /a\\x22b HTTP/1.0"),
            (("GET", "/\u{1b}[2J", "HTTP/1.1"), "GET /\\x1b[2J HTTP/1.1"),
            (("GET", "/é", "HTTP/1.1"), "GET /\\xc3\\xa9 HTTP/1.1"),
            (("-", "-", ""), "- -"),
        ];
        for ((method, target, version), want) in table {
            let line = RequestLine {
                method,
                target,
                version,
            };
            assert_eq!(line.to_string(), want);
        }
    }

    #[test]
    fn actors_name_their_thread() {
        assert_eq!(Actor::Worker(2).to_string(), "[worker 2]");
        assert_eq!(Actor::Poll.to_string(), "[poll]");
        assert_eq!(Actor::Thread(12).to_string(), "[thread conn-12]");
    }
}
