//! Terminal logging: one line per response and per connection opened or closed, each naming
//! the thread that did the work, in one of three formats.
//!
//! - `worker` (the default): a local timestamp to the millisecond, then the thread, the
//!   client, the request line, the status, the body bytes sent and the time taken; coloured
//!   by status class and by worker on a terminal.
//! - `combined`: exactly the NCSA combined format nginx writes by default, for goaccess and
//!   the like; request lines only on stdout, everything else on stderr.
//! - `json`: one object per response on stdout; everything else on stderr.
//!
//! Each thread formats into its own buffer and hands the finished line to the stream in a
//! single write, so a slow terminal holds a worker for at most one line and lines never
//! interleave. Control bytes, quotes and backslashes in request text are escaped as
//! `\xHH`, so that a request cannot write control sequences to the terminal.

use std::fmt::{self, Write as _};
use std::io::{IsTerminal, Write as _};
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

use jiff::tz::TimeZone;

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

/// How request lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Ours: timestamp, thread, client, request, status, bytes, time.
    Worker,
    /// NCSA combined, as nginx writes it by default.
    Combined,
    /// One JSON object per line.
    Json,
}

/// ANSI colours, for the worker format on a terminal.
mod colour {
    pub const RESET: &str = "\x1b[0m";
    pub const DIM: &str = "\x1b[2m";
    /// By status class: 2xx, 3xx, 4xx, 5xx.
    pub const SUCCESS: &str = "\x1b[32m";
    pub const REDIRECT: &str = "\x1b[36m";
    pub const CLIENT_ERROR: &str = "\x1b[33m";
    pub const SERVER_ERROR: &str = "\x1b[31m";
    /// One per worker, in turn, so that the spread over the pool shows at a glance.
    pub const THREADS: [&str; 6] = [
        "\x1b[34m", "\x1b[35m", "\x1b[36m", "\x1b[32m", "\x1b[33m", "\x1b[94m",
    ];
}

/// What a log line says of one request, kept with its response until the response is done.
/// Request text is copied only while the log is on.
#[derive(Debug, Default, Clone)]
pub struct Said {
    /// Method, target, user agent and referer, one after another; ranges into it below.
    text: Vec<u8>,
    method: Range<usize>,
    target: Range<usize>,
    user_agent: Option<Range<usize>>,
    referer: Option<Range<usize>>,
    version: &'static str,
    /// Set for something refused before it was a request: what it was.
    refused: Option<&'static str>,
}

impl Said {
    /// A request as sent.
    pub fn request(
        method: &str,
        target: &str,
        version: &'static str,
        user_agent: Option<&[u8]>,
        referer: Option<&[u8]>,
    ) -> Said {
        let mut said = Said {
            version,
            ..Said::default()
        };
        said.method = said.push(method.as_bytes());
        said.target = said.push(target.as_bytes());
        said.user_agent = user_agent.map(|agent| said.push(agent));
        said.referer = referer.map(|referer| said.push(referer));
        said
    }

    /// Something refused before it was a request (a malformed head, a timeout).
    pub fn refused(what: &'static str) -> Said {
        Said {
            refused: Some(what),
            ..Said::default()
        }
    }

    fn push(&mut self, bytes: &[u8]) -> Range<usize> {
        let start = self.text.len();
        self.text.extend_from_slice(bytes);
        start..self.text.len()
    }

    fn method(&self) -> &[u8] {
        &self.text[self.method.clone()]
    }

    fn target(&self) -> &[u8] {
        &self.text[self.target.clone()]
    }

    fn field(&self, range: &Option<Range<usize>>) -> Option<&[u8]> {
        range.as_ref().map(|range| &self.text[range.clone()])
    }

    /// The request line as logged: `GET / HTTP/1.1`, or `- what` for a refusal.
    fn line(&self) -> Escaped<'_> {
        Escaped(self)
    }
}

/// A request line, escaped.
struct Escaped<'a>(&'a Said);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let said = self.0;
        if let Some(what) = said.refused {
            f.write_str("- ")?;
            return escape(f, what.as_bytes());
        }
        escape(f, said.method())?;
        f.write_char(' ')?;
        escape(f, said.target())?;
        f.write_char(' ')?;
        f.write_str(said.version)
    }
}

/// One response, as the log tells it.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// The thread that answered.
    pub actor: Actor,
    /// The connection's number.
    pub conn: u64,
    pub peer: SocketAddr,
    pub said: &'a Said,
    pub status: u16,
    /// Body bytes written.
    pub sent: u64,
    /// For a response cut short: the body's length, and why it ended.
    pub ended: Option<(u64, &'a str)>,
    /// From the request's first byte to the response's last.
    pub took: Duration,
}

/// Where log lines go, whether they go at all, and how they look.
#[derive(Debug, Clone)]
pub struct Log {
    quiet: bool,
    format: Format,
    colour: bool,
    zone: TimeZone,
}

impl Log {
    /// A log in the worker format, without colour, that prints unless `quiet`.
    pub fn new(quiet: bool) -> Log {
        Log {
            quiet,
            format: Format::Worker,
            colour: false,
            zone: TimeZone::system(),
        }
    }

    /// The same log in `format`, coloured if `colour` (the worker format only).
    pub fn styled(self, format: Format, colour: bool) -> Log {
        Log {
            format,
            colour: colour && format == Format::Worker,
            ..self
        }
    }

    /// True when lines are printed; lets callers skip keeping what a line would say.
    pub fn enabled(&self) -> bool {
        !self.quiet
    }

    /// Prints the line in `buf` (without newline) to stdout, or to stderr, and clears `buf`.
    fn emit(&self, buf: &mut String, stderr: bool) {
        buf.push('\n');
        // A closed or broken stream must not take the server down with it.
        let _ = if stderr {
            std::io::stderr().lock().write_all(buf.as_bytes())
        } else {
            std::io::stdout().lock().write_all(buf.as_bytes())
        };
        buf.clear();
    }

    /// One response, once its last byte is written or the connection ended before that:
    /// `2026-11-27 21:05:03.123 [worker 2] 127.0.0.1:53412 "GET / HTTP/1.1" 200 26755
    /// 0.21ms`, or for a response cut short, `… 200 65536/1539977 3.10ms (reset)`.
    pub fn request(&self, buf: &mut String, entry: &Entry<'_>) {
        if self.quiet {
            return;
        }
        match self.format {
            Format::Worker => {
                self.stamp(buf);
                self.worker(buf, entry);
            }
            Format::Combined => self.combined(buf, entry),
            Format::Json => self.json(buf, entry),
        }
        self.emit(buf, false);
    }

    /// The worker format after its timestamp: thread, client, request line, and the
    /// status (coloured by class), bytes and time.
    fn worker(&self, buf: &mut String, entry: &Entry<'_>) {
        self.actor(buf, entry.actor);
        let _ = write!(buf, " {} \"{}\" ", entry.peer, entry.said.line());
        let (start, end) = match (self.colour, entry.status) {
            (false, _) => ("", ""),
            (true, 200..=299) => (colour::SUCCESS, colour::RESET),
            (true, 300..=399) => (colour::REDIRECT, colour::RESET),
            (true, 400..=499) => (colour::CLIENT_ERROR, colour::RESET),
            (true, _) => (colour::SERVER_ERROR, colour::RESET),
        };
        let response = Response {
            status: entry.status,
            sent: entry.sent,
            ended: entry.ended,
            took: entry.took,
        };
        let _ = write!(buf, "{start}{response}{end}");
    }

    /// `127.0.0.1 - - [27/Nov/2026:21:05:03 +0000] "GET / HTTP/1.1" 200 26755 "-" "curl/8.0"`
    fn combined(&self, buf: &mut String, entry: &Entry<'_>) {
        let now = jiff::Timestamp::now().to_zoned_datetime(self.zone.clone());
        let said = entry.said;
        let _ = write!(
            buf,
            "{} - - [{}] \"{}\" {} {} \"{}\" \"{}\"",
            entry.peer.ip(),
            now.strftime("%d/%b/%Y:%H:%M:%S %z"),
            said.line(),
            entry.status,
            entry.sent,
            Field(said.field(&said.referer)),
            Field(said.field(&said.user_agent)),
        );
    }

    /// One object: ts, worker (or thread), conn, peer, method, target, version, status,
    /// bytes, duration_us, user_agent; and `ended` for a response cut short.
    fn json(&self, buf: &mut String, entry: &Entry<'_>) {
        #[derive(serde::Serialize)]
        struct Line<'a> {
            ts: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            worker: Option<usize>,
            #[serde(skip_serializing_if = "Option::is_none")]
            thread: Option<u64>,
            conn: u64,
            peer: String,
            method: std::borrow::Cow<'a, str>,
            target: std::borrow::Cow<'a, str>,
            version: &'a str,
            status: u16,
            bytes: u64,
            duration_us: u128,
            user_agent: Option<std::borrow::Cow<'a, str>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            ended: Option<&'a str>,
        }
        let said = entry.said;
        let now = jiff::Timestamp::now().to_zoned_datetime(self.zone.clone());
        let (method, target) = match said.refused {
            Some(what) => ("-".into(), what.into()),
            None => (
                String::from_utf8_lossy(said.method()),
                String::from_utf8_lossy(said.target()),
            ),
        };
        let line = Line {
            ts: now.strftime("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string(),
            worker: match entry.actor {
                Actor::Worker(n) => Some(n),
                _ => None,
            },
            thread: match entry.actor {
                Actor::Thread(n) => Some(n),
                _ => None,
            },
            conn: entry.conn,
            peer: entry.peer.to_string(),
            method,
            target,
            version: said.version,
            status: entry.status,
            bytes: entry.sent,
            duration_us: entry.took.as_micros(),
            user_agent: said.field(&said.user_agent).map(String::from_utf8_lossy),
            ended: entry.ended.map(|(_, why)| why),
        };
        if let Ok(text) = serde_json::to_string(&line) {
            buf.push_str(&text);
        }
    }

    /// A line about a thread itself: `… [poll] accept paused: …`.
    pub fn note(&self, buf: &mut String, actor: Actor, what: fmt::Arguments<'_>) {
        if self.quiet {
            return;
        }
        self.stamp(buf);
        self.actor(buf, actor);
        let _ = write!(buf, " {what}");
        self.emit(buf, self.format != Format::Worker);
    }

    /// A line of live statistics, on stderr whatever the format, and even when quiet: it
    /// was asked for by itself.
    pub fn stats(&self, buf: &mut String, what: &str) {
        self.stamp(buf);
        let _ = write!(buf, "[stats] {what}");
        self.emit(buf, true);
    }

    /// A connection event: `… [poll] conn 7 127.0.0.1:53412 open`.
    pub fn conn(
        &self,
        buf: &mut String,
        actor: Actor,
        id: u64,
        peer: SocketAddr,
        what: fmt::Arguments<'_>,
    ) {
        self.note(buf, actor, format_args!("conn {id} {peer} {what}"));
    }

    /// A connection closing: `… conn 7 127.0.0.1:53412 closed (idle timeout) after 2 requests`.
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

    /// The local time to the millisecond, and a space.
    fn stamp(&self, buf: &mut String) {
        let now = jiff::Timestamp::now().to_zoned_datetime(self.zone.clone());
        let (start, end) = if self.colour {
            (colour::DIM, colour::RESET)
        } else {
            ("", "")
        };
        let _ = write!(
            buf,
            "{start}{}{end} ",
            now.strftime("%Y-%m-%d %H:%M:%S%.3f")
        );
    }

    /// The thread's name, in its colour.
    fn actor(&self, buf: &mut String, actor: Actor) {
        let tint = match actor {
            _ if !self.colour => "",
            Actor::Worker(n) => colour::THREADS[n % colour::THREADS.len()],
            Actor::Thread(n) => colour::THREADS[(n % colour::THREADS.len() as u64) as usize],
            Actor::Poll | Actor::Accept | Actor::Signals => colour::DIM,
        };
        let end = if tint.is_empty() { "" } else { colour::RESET };
        let _ = write!(buf, "{tint}{actor}{end}");
    }
}

/// After ^C: a terminal has echoed `^C` where its cursor was, so what is printed next
/// starts a line of its own.
pub fn after_interrupt() {
    let stdout = std::io::stdout();
    if stdout.is_terminal() {
        let _ = stdout.lock().write_all(b"\n");
    }
}

/// The part of a worker-format line after the request line: status, bytes, time, and how it
/// ended if it ended early.
struct Response<'a> {
    status: u16,
    sent: u64,
    ended: Option<(u64, &'a str)>,
    took: Duration,
}

impl fmt::Display for Response<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.took.as_secs_f64() * 1000.0;
        write!(f, "{} {}", self.status, self.sent)?;
        match self.ended {
            None => write!(f, " {millis:.2}ms"),
            Some((of, why)) => write!(f, "/{of} {millis:.2}ms ({why})"),
        }
    }
}

/// A request field in the combined format: escaped, or `-` when absent.
struct Field<'a>(Option<&'a [u8]>);

impl fmt::Display for Field<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(bytes) => escape(f, bytes),
            None => f.write_char('-'),
        }
    }
}

fn escape(f: &mut fmt::Formatter<'_>, text: &[u8]) -> fmt::Result {
    for &byte in text {
        if (byte.is_ascii_graphic() || byte == b' ') && byte != b'"' && byte != b'\\' {
            f.write_char(char::from(byte))?;
        } else {
            write!(f, "\\x{byte:02X}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(said: &'a Said, ended: Option<(u64, &'a str)>) -> Entry<'a> {
        Entry {
            actor: Actor::Worker(2),
            conn: 7,
            peer: "127.0.0.1:53412".parse().unwrap(),
            said,
            status: 200,
            sent: 26755,
            ended,
            took: Duration::from_micros(3210),
        }
    }

    /// A line as `request` writes it, without its timestamp and without printing it.
    fn line(log: &Log, entry: &Entry<'_>) -> String {
        let mut buf = String::new();
        match log.format {
            Format::Worker => log.worker(&mut buf, entry),
            Format::Combined => log.combined(&mut buf, entry),
            Format::Json => log.json(&mut buf, entry),
        }
        buf
    }

    #[test]
    fn request_lines_are_escaped() {
        let said = |method, target: &str| Said::request(method, target, "HTTP/1.1", None, None);
        let table = [
            (said("GET", "/index.html"), "GET /index.html HTTP/1.1"),
            (said("GET", "/a\"b"), "GET /a\\x22b HTTP/1.1"),
            (said("GET", "/\u{1b}[2J"), "GET /\\x1B[2J HTTP/1.1"),
            (said("GET", "/é"), "GET /\\xC3\\xA9 HTTP/1.1"),
            (said("GET", "/a\tb"), "GET /a\\x09b HTTP/1.1"),
            (said("GET", "/a\\b"), "GET /a\\x5Cb HTTP/1.1"),
            (Said::refused("request timed out"), "- request timed out"),
        ];
        for (said, want) in table {
            assert_eq!(said.line().to_string(), want);
        }
    }

    #[test]
    fn worker_lines_say_what_left_and_how_they_ended() {
        let log = Log::new(false);
        let said = Said::request("GET", "/big.bin", "HTTP/1.1", None, None);
        let table = [
            (
                None,
                "[worker 2] 127.0.0.1:53412 \"GET /big.bin HTTP/1.1\" 200 26755 3.21ms",
            ),
            (
                Some((1539977, "reset")),
                "[worker 2] 127.0.0.1:53412 \"GET /big.bin HTTP/1.1\" 200 26755/1539977 3.21ms (reset)",
            ),
        ];
        for (ended, want) in table {
            assert_eq!(line(&log, &entry(&said, ended)), want);
        }
    }

    #[test]
    fn combined_is_nginx_default_format() {
        let log = Log::new(false).styled(Format::Combined, true);
        let table = [
            (
                Said::request(
                    "GET",
                    "/",
                    "HTTP/1.1",
                    Some(b"curl/8.0"),
                    Some(b"http://a/\"x"),
                ),
                "\"GET / HTTP/1.1\" 200 26755 \"http://a/\\x22x\" \"curl/8.0\"",
            ),
            (
                Said::request("HEAD", "/x", "HTTP/1.0", None, None),
                "\"HEAD /x HTTP/1.0\" 200 26755 \"-\" \"-\"",
            ),
        ];
        for (said, tail) in table {
            let text = line(&log, &entry(&said, None));
            let (head, rest) = text.split_once(" [").expect("time");
            assert_eq!(head, "127.0.0.1 - -");
            let (time, rest) = rest.split_once("] ").expect("time end");
            // 27/Nov/2026:21:05:03 +0000
            assert_eq!(time.len(), 26, "{time}");
            assert_eq!(&time[2..3], "/", "{time}");
            assert_eq!(rest, tail);
            assert!(!text.contains('\x1b'), "colour in {text:?}");
        }
    }

    #[test]
    fn json_lines_carry_every_field() {
        let log = Log::new(false).styled(Format::Json, false);
        let said = Said::request("GET", "/a\u{1}", "HTTP/1.1", Some(b"agent \"x\""), None);
        let text = line(&log, &entry(&said, Some((30000, "reset"))));
        let value: serde_json::Value = serde_json::from_str(&text).expect("json");
        let want = [
            ("worker", serde_json::json!(2)),
            ("conn", serde_json::json!(7)),
            ("peer", serde_json::json!("127.0.0.1:53412")),
            ("method", serde_json::json!("GET")),
            ("target", serde_json::json!("/a\u{1}")),
            ("version", serde_json::json!("HTTP/1.1")),
            ("status", serde_json::json!(200)),
            ("bytes", serde_json::json!(26755)),
            ("duration_us", serde_json::json!(3210)),
            ("user_agent", serde_json::json!("agent \"x\"")),
            ("ended", serde_json::json!("reset")),
        ];
        for (key, value_want) in want {
            assert_eq!(value[key], value_want, "{key} in {text}");
        }
        assert!(
            value["ts"].as_str().is_some_and(|ts| ts.len() == 29),
            "{text}"
        );
        assert!(value.get("thread").is_none(), "{text}");
    }

    #[test]
    fn colour_marks_status_classes_and_workers() {
        let log = Log::new(false).styled(Format::Worker, true);
        let said = Said::request("GET", "/", "HTTP/1.1", None, None);
        let mut seen = std::collections::HashSet::new();
        for worker in 0..colour::THREADS.len() {
            let mut entry = entry(&said, None);
            entry.actor = Actor::Worker(worker);
            let text = line(&log, &entry);
            assert!(text.starts_with("\x1b["), "{text:?}");
            seen.insert(text[..5].to_string());
        }
        assert_eq!(seen.len(), colour::THREADS.len(), "workers share colours");
        let status = |code| {
            let mut entry = entry(&said, None);
            entry.status = code;
            let text = line(&log, &entry);
            let at = text.rfind("\" ").expect("request line") + 2;
            text[at..at + 5].to_string()
        };
        let classes = [200, 301, 404, 500].map(status);
        let distinct: std::collections::HashSet<_> = classes.iter().collect();
        assert_eq!(distinct.len(), 4, "{classes:?}");
        let plain = Log::new(false).styled(Format::Worker, false);
        assert!(!line(&plain, &entry(&said, None)).contains('\x1b'));
    }

    #[test]
    fn actors_name_their_thread() {
        assert_eq!(Actor::Worker(2).to_string(), "[worker 2]");
        assert_eq!(Actor::Poll.to_string(), "[poll]");
        assert_eq!(Actor::Thread(12).to_string(), "[thread conn-12]");
    }
}
