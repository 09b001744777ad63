//! What to answer for one request: method, target, file, and the response head and body.
//!
//! Shared by both threading models. A reply is written straight into the connection's
//! output buffer; a body too large to copy is returned as a file to stream after it.

use std::fs::File;
use std::sync::Arc;
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_encode};

use crate::cache::{CachedFile, Contents};
use crate::files::{self, DocRoot, Lookup, OpenError, PathScratch};
use crate::http::Status;
use crate::http::conditional::{self, ETag, Precondition, RangeAnswer, Ranges};
use crate::http::date::DateCache;
use crate::http::encoding::{self, Coding};
use crate::http::multipart::Multipart;
use crate::http::request::{Method, Persistence, Request, RequestError, Version};
use crate::http::response::{ContentRange, Fate, Head};
use crate::listing;
use crate::log::{Actor, Log};
use crate::pages::ErrorPages;
use crate::stats::Stats;
use crate::watch::Watcher;

/// Requests served on one connection before it is closed, so that one client cannot keep
/// a connection (and its slot) forever; nginx's `keepalive_requests` default is 1000.
pub const MAX_REQUESTS_PER_CONN: u32 = 1000;

/// Everything read-only that every thread shares.
#[derive(Debug)]
pub struct Site {
    pub root: DocRoot,
    pub pages: ErrorPages,
    pub keep_alive: Duration,
    pub log: Log,
    /// Debug builds under test: [`FAULT_TARGET`] panics (`main` sets it from the environment).
    pub fault_injection: bool,
    /// What `--stats` counts; `None` without it.
    pub stats: Option<Stats>,
    /// `--max-age`: how long clients may reuse a file's response without asking again.
    pub max_age: Option<u32>,
    /// `--list-dirs`: a directory without an index is listed (see [`crate::listing`])
    /// instead of refused.
    pub list_dirs: bool,
}

/// The target that panics a worker when fault injection is on.
pub const FAULT_TARGET: &str = "/__poolhttpd/panic";

/// One thread's reusable state for answering: its name in the log, its date cache, its
/// scratch buffers and its log line.
#[derive(Debug)]
pub struct Workspace {
    pub actor: Actor,
    pub date: DateCache,
    scratch: PathScratch,
    index: Vec<u8>,
    location: Vec<u8>,
    /// A media type made for one response (a multipart body's, with its boundary).
    media: String,
    pub line: String,
    /// This thread's view of changes on disk, if it watches (see [`crate::watch`]).
    pub watcher: Option<Watcher>,
}

impl Workspace {
    /// A fresh workspace for the thread `actor`.
    pub fn new(actor: Actor) -> Workspace {
        Workspace {
            actor,
            date: DateCache::new(),
            scratch: PathScratch::default(),
            index: Vec::new(),
            location: Vec::new(),
            media: String::new(),
            line: String::new(),
            watcher: None,
        }
    }

    /// The same, for a thread that watches for changes on disk with `watcher`.
    pub fn watching(mut self, watcher: Option<Watcher>) -> Workspace {
        self.watcher = watcher;
        self
    }
}

/// A body still to be sent after the head in the output buffer: bytes `offset..end` of
/// an open file, by `sendfile` (bodies of at most [`crate::cache::BYTES_MAX`] bytes are
/// copied behind their head instead); then, for a `multipart/byteranges` body, the rest of
/// its parts.
#[derive(Debug)]
pub struct Body {
    pub file: Arc<File>,
    pub offset: u64,
    pub end: u64,
    pub more: Option<Box<MoreParts>>,
}

/// The parts of a multipart body after the first: for each, the framing written before it
/// and its range of the file; and the closing framing after the last.
#[derive(Debug)]
pub struct MoreParts {
    pub parts: std::vec::IntoIter<(Vec<u8>, u64, u64)>,
    pub close: Vec<u8>,
}

/// What answering one request left for the connection to do.
#[derive(Debug)]
pub struct Answer {
    pub status: Status,
    /// Body bytes the response carries: copied behind the head, or in `body`.
    pub body_len: u64,
    /// How much of the body was appended behind the head; the rest is in `body`.
    pub copied: u64,
    pub fate: Fate,
    pub body: Option<Body>,
}

impl Answer {
    fn bare(status: Status, fate: Fate) -> Answer {
        Answer::copied(status, 0, fate)
    }

    /// A body of `len` bytes, all appended behind the head.
    pub(crate) fn copied(status: Status, len: u64, fate: Fate) -> Answer {
        Answer {
            status,
            body_len: len,
            copied: len,
            fate,
            body: None,
        }
    }
}

/// Answers one complete request: appends the head (and any small body) to `out`.
/// `served` counts requests answered before this one on the connection.
pub fn answer(
    req: &Request<'_>,
    site: &Site,
    ws: &mut Workspace,
    out: &mut Vec<u8>,
    served: u32,
) -> Answer {
    if cfg!(debug_assertions) && site.fault_injection && req.target == FAULT_TARGET {
        panic!("fault injection: {FAULT_TARGET}");
    }
    let keep = req.persistence == Persistence::KeepAlive && served + 1 < MAX_REQUESTS_PER_CONN;
    let fate = if keep {
        // Only an HTTP/1.0 client keeps the connection by asking, and only it is told for
        // how long (see [`Fate::KeepAlive`]).
        let announce = (req.version == Version::Http10).then_some(site.keep_alive);
        Fate::KeepAlive { announce }
    } else {
        Fate::Close
    };
    match req.method {
        Method::Get | Method::Head => serve(req, site, ws, out, fate),
        Method::Options => {
            let mut head = Head::new(Status::NoContent, fate);
            head.allow = true;
            head.write_to(out, ws.date.now());
            Answer::bare(Status::NoContent, fate)
        }
        Method::Unknown => error(Status::NotImplemented, false, site, ws, out, fate),
        _ => error(Status::MethodNotAllowed, false, site, ws, out, fate),
    }
}

/// Answers a request head we refused to parse. The connection closes after it.
pub fn refuse(error: RequestError, site: &Site, ws: &mut Workspace, out: &mut Vec<u8>) -> Answer {
    self::error(error.status(), false, site, ws, out, Fate::Close)
}

/// Answers a request that did not arrive in time. The connection closes after it.
pub fn time_out(site: &Site, ws: &mut Workspace, out: &mut Vec<u8>) -> Answer {
    error(Status::RequestTimeout, false, site, ws, out, Fate::Close)
}

/// Answers 500 in place of a response whose handling panicked. The connection closes.
pub fn fail(site: &Site, ws: &mut Workspace, out: &mut Vec<u8>) -> Answer {
    error(
        Status::InternalServerError,
        false,
        site,
        ws,
        out,
        Fate::Close,
    )
}

/// GET and HEAD: the file, a redirect, or the error that stands in for them.
fn serve(
    req: &Request<'_>,
    site: &Site,
    ws: &mut Workspace,
    out: &mut Vec<u8>,
    fate: Fate,
) -> Answer {
    let head_only = req.method == Method::Head;
    let safe = match files::resolve_target(req.target, &mut ws.scratch) {
        Ok(safe) => safe,
        Err(refusal) => return error(refusal.status(), head_only, site, ws, out, fate),
    };
    let found = site.root.lookup(&safe, &mut ws.index, ws.watcher.as_mut());
    match found {
        Ok(Lookup::File(file)) => send_file(req, &file, site, ws, out, fate),
        Ok(Lookup::Redirect) => {
            ws.location.clear();
            ws.location.push(b'/');
            percent_encode_path(safe.relative, &mut ws.location);
            ws.location.push(b'/');
            let mut head = Head::new(Status::MovedPermanently, fate);
            head.location = Some(&ws.location);
            head.write_to(out, ws.date.now());
            Answer::bare(Status::MovedPermanently, fate)
        }
        Err(OpenError::NoIndex) if site.list_dirs => {
            // Copied out of the scratch buffer that `ws` owns, for the listing to use `ws`.
            let relative = safe.relative.to_vec();
            listing::answer(req, &relative, site, ws, out, fate)
        }
        Err(refusal) => error(refusal.status(), head_only, site, ws, out, fate),
    }
}

/// A found file: preconditions, then the whole file, one range of it, or 304/412/416.
fn send_file(
    req: &Request<'_>,
    file: &CachedFile,
    site: &Site,
    ws: &mut Workspace,
    out: &mut Vec<u8>,
    fate: Fate,
) -> Answer {
    let head_only = req.method == Method::Head;
    // A precompressed copy the client accepts is the representation sent: its bytes, its
    // validators, and the file's type (RFC 9110 §8.4).
    let vary = file.has_variants();
    let coding = if vary {
        let available = file.variants.each_ref().map(Option::is_some);
        encoding::choose(req.accept_encoding, available)
    } else {
        None
    };
    let content_type = file.content_type;
    let file = coding
        .and_then(|coding| file.variants[coding.index()].as_deref())
        .unwrap_or(file);
    let (len, modified) = (file.len(), file.modified);
    let etag = ETag::new(modified, len).with_coding(coding);
    let last_modified = conditional::http_date(modified);
    // What every response about this file says besides its status.
    let about = |status: Status| {
        let mut head = Head::new(status, fate);
        head.vary = vary;
        head
    };
    match conditional::evaluate(&req.conditions, &etag, modified) {
        Precondition::Proceed => {}
        Precondition::NotModified => {
            let mut head = about(Status::NotModified);
            head.etag = Some(etag.as_bytes());
            head.last_modified = Some(&last_modified);
            head.max_age = site.max_age;
            head.write_to(out, ws.date.now());
            return Answer::bare(Status::NotModified, fate);
        }
        Precondition::Failed => {
            let head = about(Status::PreconditionFailed);
            return page(head, head_only, site, ws, out);
        }
    }
    // Range applies to GET, and so to HEAD, which answers as GET would (RFC 9110 §9.3.2,
    // §14.2), and only while If-Range still holds.
    let range = match req.range {
        Some(value)
            if req
                .if_range
                .is_none_or(|v| conditional::if_range_holds(v, &etag, modified)) =>
        {
            conditional::range(value, len)
        }
        _ => RangeAnswer::Whole,
    };
    let ranges = match range {
        RangeAnswer::Whole => None,
        RangeAnswer::Parts(ranges) => Some(ranges),
        RangeAnswer::Unsatisfiable => {
            let mut head = about(Status::RangeNotSatisfiable);
            head.content_range = Some(ContentRange::Unsatisfied { len });
            return page(head, head_only, site, ws, out);
        }
    };
    let mut head = about(Status::Ok);
    head.content_type = Some(content_type);
    head.content_encoding = coding.map(Coding::token);
    head.content_length = len;
    head.etag = Some(etag.as_bytes());
    head.last_modified = Some(&last_modified);
    head.accept_ranges = true;
    head.max_age = site.max_age;
    match ranges.as_ref().map(Ranges::as_slice) {
        None => {}
        Some(&[(start, end)]) => {
            head.status = Status::PartialContent;
            head.content_length = end - start;
            head.content_range = Some(ContentRange::Part { start, end, len });
        }
        Some(several) => {
            let multipart = Multipart::new(content_type, len);
            let body_len = multipart.body_len(several);
            // Framing that would cost more than the whole file: the whole file it is.
            if body_len < len {
                ws.media.clear();
                ws.media.push_str("multipart/byteranges; boundary=");
                ws.media.push_str(multipart.boundary());
                head.status = Status::PartialContent;
                head.content_type = Some(&ws.media);
                head.content_length = body_len;
                head.write_to(out, ws.date.now());
                if head_only {
                    return Answer::bare(Status::PartialContent, fate);
                }
                let mark = out.len();
                let body = multipart_body(file, &multipart, several, out);
                return Answer {
                    status: Status::PartialContent,
                    body_len,
                    copied: (out.len() - mark) as u64,
                    fate,
                    body,
                };
            }
        }
    }
    let (status, (start, end)) = match (head.status, ranges) {
        (Status::PartialContent, Some(ranges)) => (head.status, ranges.as_slice()[0]),
        _ => (Status::Ok, (0, len)),
    };
    if status == Status::Ok {
        // The file is sent whole after all: say nothing of a range.
        head.content_range = None;
        head.content_length = len;
    }
    head.write_to(out, ws.date.now());
    let bytes = end - start;
    if head_only || bytes == 0 {
        return Answer::bare(status, fate);
    }
    let body = match &file.contents {
        // In memory, so both ends are within a slice's length.
        Contents::Bytes(bytes) => {
            out.extend_from_slice(&bytes[start as usize..end as usize]);
            None
        }
        Contents::Open(open) => Some(Body {
            file: Arc::clone(open),
            offset: start,
            end,
            more: None,
        }),
    };
    Answer {
        status,
        body_len: bytes,
        copied: if body.is_some() { 0 } else { bytes },
        fate,
        body,
    }
}

/// A `multipart/byteranges` body of `ranges`: copied behind the head for a file in memory;
/// otherwise the first part's framing behind the head and the parts sent from the file.
fn multipart_body(
    file: &CachedFile,
    multipart: &Multipart<'_>,
    ranges: &[(u64, u64)],
    out: &mut Vec<u8>,
) -> Option<Body> {
    match &file.contents {
        // In memory, so every range is within a slice's length.
        Contents::Bytes(bytes) => {
            for (index, &(start, end)) in ranges.iter().enumerate() {
                multipart.part_head(index == 0, (start, end), out);
                out.extend_from_slice(&bytes[start as usize..end as usize]);
            }
            multipart.close(out);
            None
        }
        Contents::Open(open) => {
            let mut parts = ranges.iter().enumerate().map(|(index, &range)| {
                let mut framing = Vec::new();
                multipart.part_head(index == 0, range, &mut framing);
                (framing, range.0, range.1)
            });
            let (first, start, end) = parts.next()?;
            out.extend_from_slice(&first);
            let mut close = Vec::new();
            multipart.close(&mut close);
            Some(Body {
                file: Arc::clone(open),
                offset: start,
                end,
                more: Some(Box::new(MoreParts {
                    parts: parts.collect::<Vec<_>>().into_iter(),
                    close,
                })),
            })
        }
    }
}

/// An error page, or just its head for HEAD.
pub(crate) fn error(
    status: Status,
    head_only: bool,
    site: &Site,
    ws: &mut Workspace,
    out: &mut Vec<u8>,
    fate: Fate,
) -> Answer {
    let mut head = Head::new(status, fate);
    head.allow = status == Status::MethodNotAllowed;
    page(head, head_only, site, ws, out)
}

/// The error page of `head`'s status behind `head`, or just the head for HEAD.
fn page(
    mut head: Head<'_>,
    head_only: bool,
    site: &Site,
    ws: &mut Workspace,
    out: &mut Vec<u8>,
) -> Answer {
    let (status, fate) = (head.status, head.fate);
    let page = site.pages.get(status);
    head.content_type = Some("text/html");
    head.content_length = page.len() as u64;
    head.write_to(out, ws.date.now());
    if head_only {
        return Answer::bare(status, fate);
    }
    out.extend_from_slice(page);
    Answer::copied(status, page.len() as u64, fate)
}

/// Bytes left as they are in a redirect's path: RFC 3986 `pchar` (unreserved,
/// sub-delims, `:` and `@`) and `/`; everything else is percent-encoded.
const PATH_BYTES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    .remove(b':')
    .remove(b'@')
    .remove(b'/');

/// Appends `path` with every byte outside RFC 3986 `pchar` and `/` percent-encoded.
fn percent_encode_path(path: &[u8], out: &mut Vec<u8>) {
    out.extend(percent_encode(path, PATH_BYTES).flat_map(str::bytes));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_paths_are_encoded() {
        let table: [(&[u8], &str); 7] = [
            (b"dir", "dir"),
            (b"a/b c", "a/b%20c"),
            (b"caf\xc3\xa9", "caf%C3%A9"),
            (b"q?#%", "q%3F%23%25"),
            (b"x\r\ny", "x%0D%0Ay"),
            (b"a:b@c!$&'()*+,;=~._-", "a:b@c!$&'()*+,;=~._-"),
            (
                b"[x]<y>\"z\" ^`{|}",
                "%5Bx%5D%3Cy%3E%22z%22%20%5E%60%7B%7C%7D",
            ),
        ];
        for (path, want) in table {
            let mut out = Vec::new();
            percent_encode_path(path, &mut out);
            assert_eq!(out, want.as_bytes());
        }
    }
}
