//! Fuzzing entry points: one function per parser that meets a client's bytes, each taking
//! arbitrary input and asserting what must hold for every input, so that a panic is a
//! finding.
//!
//! The cargo-fuzz targets in `fuzz/` and the stable test that replays their seed corpus
//! (`tests/it/fuzz_corpus.rs`) both call these, so one definition of each invariant serves
//! both. The module is public only because `http` is private to the crate; it is not part
//! of the server's interface.

use std::ffi::OsStr;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::cache::{CachedFile, Contents};
use crate::files::{DocRoot, INDEX_FILE, Lookup, PathScratch, SafePath, resolve_target};
use crate::http::Status;
use crate::http::body::{BodyError, BodyReader, MAX_BODY, MAX_FRAMING};
use crate::http::conditional::{
    Conditions, ETag, MAX_RANGES, Precondition, RangeAnswer, evaluate, http_date, if_range_holds,
    range,
};
use crate::http::request::{
    BodyFraming, MAX_FIELDS, MAX_HEAD, MAX_REQUEST_LINE, Parsed, RequestError, parse,
};
use crate::watch::Watcher;

/// Inputs up to this long are split at every point; longer ones at sampled points, so that
/// one input costs milliseconds, not seconds.
const SPLIT_EVERYWHERE_UP_TO: usize = 512;

/// Sampled split points for a longer input.
const SAMPLED_SPLITS: usize = 48;

/// Request-head parsing, as a connection feeds it: the whole input, then every prefix of
/// it (the bytes that had arrived after some read).
///
/// Must hold: no prefix is ever parsed differently from how the whole is, so that what
/// the server answers never depends on how the client's bytes were split into reads. A
/// head stays `Partial` until its last byte and is then the same head, however many more
/// bytes follow; a refusal stays a refusal as bytes arrive. `Partial` never holds more
/// than [`MAX_HEAD`] bytes, and a complete head respects every limit.
pub fn head(data: &[u8]) {
    let whole = head_outcome(data);
    let mut points = split_points(data, &[MAX_REQUEST_LINE, MAX_HEAD]);
    if let HeadOutcome::Complete { len, .. } = whole {
        points.extend([len.saturating_sub(1), len, len + 1]);
        points.retain(|&point| point <= data.len());
    }
    points.sort_unstable();
    points.dedup();
    let mut refused_at: Option<(usize, RequestError)> = None;
    for &point in &points {
        let prefix = &data[..point];
        let outcome = head_outcome(prefix);
        let shown = || excerpt(prefix);
        if let Some((at, error)) = refused_at {
            assert!(
                matches!(outcome, HeadOutcome::Refused(later) if class(later) == class(error)),
                "refused as {error:?} after {at} bytes, then {outcome:?} after {point}: {}",
                shown()
            );
        }
        match (&whole, &outcome) {
            (HeadOutcome::Complete { len, .. }, HeadOutcome::Partial) if point < *len => {}
            (HeadOutcome::Complete { len, .. }, HeadOutcome::Complete { len: got, .. })
                if point >= *len && got == len => {}
            (HeadOutcome::Complete { .. }, _) => {
                panic!(
                    "whole: {whole:?}; first {point} bytes: {outcome:?}: {}",
                    shown()
                )
            }
            (HeadOutcome::Refused(_), HeadOutcome::Partial) => {}
            (HeadOutcome::Refused(error), HeadOutcome::Refused(got)) => {
                assert_eq!(
                    class(*got),
                    class(*error),
                    "whole: {error:?}; first {point} bytes: {got:?}: {}",
                    shown()
                );
                refused_at.get_or_insert((point, *got));
            }
            (HeadOutcome::Refused(_), _) | (HeadOutcome::Partial, _) => {
                assert!(
                    matches!(outcome, HeadOutcome::Partial),
                    "whole: {whole:?}; first {point} bytes: {outcome:?}: {}",
                    shown()
                );
            }
        }
    }
    // The fields of a complete head are the same whatever follows it.
    if let HeadOutcome::Complete { len, fields } = &whole {
        match head_outcome(&data[..*len]) {
            HeadOutcome::Complete { fields: alone, .. } => assert_eq!(&alone, fields),
            other => panic!("the head alone gave {other:?}"),
        }
    }
}

/// What of a refusal must not depend on how the bytes were split into reads. Its status,
/// except among the refusals made when httparse finds an error: those depend on how much
/// of the head was there when it did, a known issue of `request::parse`. A malformed
/// request line that is also too long is 400 when its first bytes arrive alone and 414
/// when all of it arrives at once (`fuzz/seeds/head/bad-byte-then-long-line-400-or-414`),
/// and `version_error` reads an unfinished request line as if it had ended (`GET /
/// HTTP/1.2` is 505, `GET / HTTP/1.2\r` is 400, the whole head 505 again). Classifying
/// by the shortest prefix httparse refuses would make them agree.
fn class(error: RequestError) -> Status {
    match error {
        RequestError::Malformed
        | RequestError::UnsupportedVersion
        | RequestError::RequestLineTooLong
        | RequestError::HeadTooLarge
        | RequestError::TooManyFields => Status::BadRequest,
        other => other.status(),
    }
}

/// What parsing a head said, in a form that can be compared across buffers.
#[derive(Debug, PartialEq, Eq)]
enum HeadOutcome {
    Partial,
    /// The head's length, and everything parsed from it, as text.
    Complete {
        len: usize,
        fields: String,
    },
    Refused(RequestError),
}

/// Parses `buf` and checks the limits and slices of what came out.
fn head_outcome(buf: &[u8]) -> HeadOutcome {
    match parse(buf) {
        Ok(Parsed::Partial) => {
            assert!(buf.len() < MAX_HEAD, "Partial with {} bytes", buf.len());
            HeadOutcome::Partial
        }
        Ok(Parsed::Complete(request)) => {
            let len = request.head_len;
            assert!(len <= buf.len() && len < MAX_HEAD, "head_len {len}");
            let head = &buf[..len];
            // Leading empty lines are skipped, as RFC 9112 §2.2 allows.
            let start = head
                .iter()
                .position(|&b| b != b'\r' && b != b'\n')
                .unwrap_or(len);
            let lines = head[start..].split(|&b| b == b'\n').collect::<Vec<_>>();
            // The request line, the fields, the empty line, and the nothing after it.
            let request_line = lines[0].strip_suffix(b"\r").unwrap_or(lines[0]);
            assert!(request_line.len() <= MAX_REQUEST_LINE);
            assert!(lines.len() >= 3 && lines.len() - 3 <= MAX_FIELDS);
            let within = |slice: &[u8]| {
                let range = head.as_ptr_range();
                slice.is_empty()
                    || (range.start <= slice.as_ptr() && slice.as_ptr_range().end <= range.end)
            };
            let slices = [
                Some(request.method_token.as_bytes()),
                Some(request.target.as_bytes()),
                request.range,
                request.if_range,
                request.user_agent,
                request.referer,
                request.conditions.if_match,
                request.conditions.if_none_match,
                request.conditions.if_modified_since,
                request.conditions.if_unmodified_since,
            ];
            assert!(slices.into_iter().flatten().all(within), "{request:?}");
            assert!(!request.target.is_empty());
            assert_ne!(request.body, BodyFraming::Length(0));
            HeadOutcome::Complete {
                len,
                fields: format!("{request:?}"),
            }
        }
        Err(error) => HeadOutcome::Refused(error),
    }
}

/// The chunked body decoder, fed the whole input at once, one byte at a time, in two
/// pieces split at every point, and in pseudo-random pieces.
///
/// Must hold: every way of feeding gives the same outcome (bytes consumed, whether the
/// body is complete, or the same error); a call never consumes more than it is given, and
/// an unfinished body consumes all of it. A body is complete exactly when the input starts
/// with a well-formed chunked body, checked by a separate, slice-based reading of the
/// grammar, within [`MAX_BODY`] of data and [`MAX_FRAMING`] of framing.
pub fn chunked(data: &[u8]) {
    let whole = feed_chunked(data, &[]);
    let bytewise: Vec<usize> = (1..data.len()).collect();
    let mut splits: Vec<Vec<usize>> = vec![bytewise];
    splits.extend(split_points(data, &[]).into_iter().map(|point| vec![point]));
    let mut random = Random::of(data);
    for _ in 0..4 {
        let mut cuts: Vec<usize> = (0..random.below(16))
            .map(|_| random.below(data.len() + 1))
            .collect();
        cuts.sort_unstable();
        splits.push(cuts);
    }
    for cuts in &splits {
        let split = feed_chunked(data, cuts);
        assert_eq!(split, whole, "cut at {cuts:?}: {}", excerpt(data));
    }
    let text = || excerpt(data);
    match chunked_reference(data) {
        Some(body) if body.data > MAX_BODY || body.len as u64 - body.data > MAX_FRAMING => {
            assert_eq!(whole, Err(BodyError::TooLarge), "{body:?}: {}", text());
        }
        Some(body) => assert_eq!(whole, Ok((body.len, true)), "{body:?}: {}", text()),
        None => assert!(
            !matches!(whole, Ok((_, true))),
            "{whole:?}, but the grammar refuses {}",
            text()
        ),
    }
}

/// Feeds `data` to a chunked reader in pieces cut at `cuts` (ascending, may repeat).
fn feed_chunked(data: &[u8], cuts: &[usize]) -> Result<(usize, bool), BodyError> {
    let mut reader = BodyReader::new(BodyFraming::Chunked)?;
    let mut used = 0;
    let mut start = 0;
    for end in cuts.iter().copied().chain([data.len()]) {
        let piece = &data[start..end];
        start = end;
        let (took, done) = reader.consume(piece)?;
        assert!(took <= piece.len(), "took {took} of {}", piece.len());
        assert!(done || took == piece.len(), "unfinished yet left bytes");
        used += took;
        if done {
            return Ok((used, true));
        }
    }
    Ok((used, false))
}

/// A complete chunked body at the front of some input, as the reference reading found it.
#[derive(Debug)]
struct ChunkedBody {
    /// Bytes of the body, framing included.
    len: usize,
    /// Bytes of chunk data.
    data: u64,
}

/// RFC 9112 §7.1 as this server reads it, on a whole slice: `size [ext] CRLF data CRLF`
/// until a zero size, then trailer lines and an empty line. Sizes are 1 to 15 hex digits;
/// an extension starts with `;`, SP or HTAB and, like a trailer line, holds no control
/// byte but HTAB.
fn chunked_reference(input: &[u8]) -> Option<ChunkedBody> {
    let field_byte = |b: &u8| *b == b'\t' || (b' '..=b'~').contains(b) || *b >= 0x80;
    let line_at = |at: usize| -> Option<&[u8]> {
        let rest = input.get(at..)?;
        let end = rest.windows(2).position(|pair| pair == b"\r\n")?;
        Some(&rest[..end])
    };
    let (mut at, mut data) = (0usize, 0u64);
    loop {
        let line = line_at(at)?;
        let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        let extension = &line[digits..];
        if !(1..=15).contains(&digits)
            || !(extension.is_empty()
                || matches!(extension[0], b';' | b' ' | b'\t') && extension.iter().all(field_byte))
        {
            return None;
        }
        let size = u64::from_str_radix(std::str::from_utf8(&line[..digits]).ok()?, 16).ok()?;
        at += line.len() + 2;
        if size == 0 {
            break;
        }
        data += size;
        if data > MAX_BODY {
            // The rest cannot be checked without a body this large; report the size alone.
            return Some(ChunkedBody { len: at, data });
        }
        let end = at + size as usize;
        if input.get(end..end + 2)? != b"\r\n" {
            return None;
        }
        at = end + 2;
    }
    loop {
        let line = line_at(at)?;
        at += line.len() + 2;
        if line.is_empty() {
            return Some(ChunkedBody { len: at, data });
        }
        if !line.iter().all(field_byte) {
            return None;
        }
    }
}

/// Validators, preconditions and ranges. The input is text, one item per line:
///
/// ```text
/// file length, decimal
/// modification time: seconds since the epoch, decimal, optionally `.nanoseconds`
/// Range
/// If-Range
/// If-Match
/// If-Unmodified-Since
/// If-None-Match
/// If-Modified-Since
/// ```
///
/// An empty or missing line is an absent field; `{etag}` and `{date}` in a value stand for
/// the file's `ETag` and `Last-Modified`, so that matching values stay reachable.
///
/// Must hold: a satisfiable range lies within the file; the ETag is one well-formed
/// strong tag; `Last-Modified` reads back as the modification time's second; the file's
/// own validators satisfy every condition that names them; a weak tag never satisfies
/// If-Range; the precedence of RFC 9110 §13.2.2 (If-Match over If-Unmodified-Since,
/// If-None-Match over If-Modified-Since, a failed precondition over a fresh copy).
pub fn conditions(data: &[u8]) {
    let mut lines = data.split(|&b| b == b'\n');
    let len = decimal(lines.next().unwrap_or_default());
    let modified = modification_time(lines.next().unwrap_or_default());
    let etag = ETag::new(modified, len);
    let tag = etag.as_bytes();
    let last_modified = http_date(modified);
    let fields: Vec<Option<Vec<u8>>> = lines
        .take(6)
        .map(|line| (!line.is_empty()).then(|| substitute(line, tag, &last_modified)))
        .collect();
    let field = |index: usize| fields.get(index).and_then(|value| value.as_deref());

    // The file's own validators.
    let inner = &tag[1..tag.len() - 1];
    assert!(tag.len() >= 2 && tag.starts_with(b"\"") && tag.ends_with(b"\""));
    assert!(inner.iter().all(|&b| b > b' ' && b != b'"' && b != 0x7f));
    let secs = since_epoch(modified).as_secs();
    let second = UNIX_EPOCH + Duration::from_secs(secs);
    let last_second = UNIX_EPOCH + Duration::from_secs(LAST_DATE_SECS);
    let date_text = std::str::from_utf8(&last_modified).expect("Last-Modified is ASCII");
    let written = httpdate::parse_http_date(date_text).expect("Last-Modified parses");
    assert_eq!(
        written,
        second.min(last_second),
        "Last-Modified of {modified:?}"
    );
    let weak = [b"W/", tag].concat();
    assert!(if_range_holds(tag, &etag, modified));
    assert!(!if_range_holds(&weak, &etag, modified));
    let only = |conditions: Conditions<'_>| evaluate(&conditions, &etag, modified);
    let mut own = vec![
        (Conditions::default(), Precondition::Proceed),
        (
            Conditions {
                if_match: Some(tag),
                ..Default::default()
            },
            Precondition::Proceed,
        ),
        (
            Conditions {
                if_match: Some(&weak),
                ..Default::default()
            },
            Precondition::Failed,
        ),
        (
            Conditions {
                if_none_match: Some(&weak),
                ..Default::default()
            },
            Precondition::NotModified,
        ),
    ];
    // Past the year 9999 Last-Modified is not the file's time, and validates nothing.
    if secs <= LAST_DATE_SECS {
        assert!(if_range_holds(&last_modified, &etag, modified));
        own.extend([
            (
                Conditions {
                    if_unmodified_since: Some(&last_modified[..]),
                    ..Default::default()
                },
                Precondition::Proceed,
            ),
            (
                Conditions {
                    if_modified_since: Some(&last_modified[..]),
                    ..Default::default()
                },
                Precondition::NotModified,
            ),
        ]);
    }
    for (conditions, want) in own {
        assert_eq!(only(conditions), want, "{conditions:?} for {etag:?}");
    }

    // The request's fields.
    if let Some(value) = field(0) {
        check_range(value, len);
    }
    if let Some(value) = field(1)
        && if_range_holds(value, &etag, modified)
    {
        let trimmed = value.trim_ascii();
        assert!(
            !trimmed.starts_with(b"W/"),
            "weak If-Range held: {trimmed:?}"
        );
    }
    let conditions = Conditions {
        if_match: field(2),
        if_unmodified_since: field(3),
        if_none_match: field(4),
        if_modified_since: field(5),
    };
    let got = only(conditions);
    let failing = only(Conditions {
        if_none_match: None,
        if_modified_since: None,
        ..conditions
    });
    let caching = only(Conditions {
        if_match: None,
        if_unmodified_since: None,
        ..conditions
    });
    let want = match failing {
        Precondition::Failed => Precondition::Failed,
        _ => caching,
    };
    assert_eq!(got, want, "{conditions:?}");
    assert_ne!(failing, Precondition::NotModified);
    assert_ne!(caching, Precondition::Failed);
    if conditions.if_match.is_some() {
        let without = Conditions {
            if_unmodified_since: None,
            ..conditions
        };
        assert_eq!(
            only(without),
            got,
            "If-Unmodified-Since counted beside If-Match"
        );
    }
    if conditions.if_none_match.is_some() {
        let without = Conditions {
            if_modified_since: None,
            ..conditions
        };
        assert_eq!(
            only(without),
            got,
            "If-Modified-Since counted beside If-None-Match"
        );
    }
}

/// Seconds from the epoch to the last second an IMF-fixdate can write,
/// 9999-12-31 23:59:59.
const LAST_DATE_SECS: u64 = 253_402_300_799;

/// What a `Range` value may answer for a file of `len` bytes. The one place to change when
/// the range API does.
fn check_range(value: &[u8], len: u64) {
    match range(value, len) {
        RangeAnswer::Parts(ranges) => {
            let parts = ranges.as_slice();
            assert!(
                !parts.is_empty() && parts.len() <= MAX_RANGES,
                "{} parts for {value:?}",
                parts.len()
            );
            let mut sent = 0u64;
            for (i, &(start, end)) in parts.iter().enumerate() {
                assert!(
                    start < end && end <= len,
                    "{start}..{end} of {len} for {value:?}"
                );
                // Merged parts neither overlap nor touch, so none can be sent twice.
                for &(other_start, other_end) in &parts[..i] {
                    assert!(
                        end < other_start || other_end < start,
                        "{start}..{end} meets {other_start}..{other_end} for {value:?}"
                    );
                }
                sent += end - start;
            }
            assert!(sent <= len, "{sent} bytes of {len} for {value:?}");
        }
        RangeAnswer::Whole | RangeAnswer::Unsatisfiable => {}
    }
}

/// A decimal number at the front of `text`, saturating; no digits read as 0.
fn decimal(text: &[u8]) -> u64 {
    text.iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0u64, |acc, &d| {
            acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
        })
}

/// `secs[.nanos]`, limited to what `stat` can report (seconds up to `i64::MAX`).
fn modification_time(text: &[u8]) -> SystemTime {
    let mut parts = text.splitn(2, |&b| b == b'.');
    let secs = decimal(parts.next().unwrap_or_default()).min(i64::MAX as u64);
    let nanos = decimal(parts.next().unwrap_or_default()) % 1_000_000_000;
    // Both bounded above, so the sum is representable.
    UNIX_EPOCH + Duration::new(secs, nanos as u32)
}

fn since_epoch(when: SystemTime) -> Duration {
    when.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO)
}

/// `line` with `{etag}` and `{date}` replaced by `tag` and `date`.
fn substitute(line: &[u8], tag: &[u8], date: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    let mut rest = line;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix(b"{etag}") {
            out.extend_from_slice(tag);
            rest = after;
        } else if let Some(after) = rest.strip_prefix(b"{date}") {
            out.extend_from_slice(date);
            rest = after;
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}

/// Written only outside the trap tree's root: finding it in any answer means the root
/// leaked.
const SECRET: &[u8] = b"TOP-SECRET-fuzz-3b8e52";

/// A document root full of traps, with secrets beside it: symlinks that lead out (to files,
/// directories, nowhere, each other), dot-files, a FIFO, a private file, a directory
/// without an index, and files small enough to be cached as bytes and large enough to be
/// kept open. Build one per process; the lookups share it.
pub struct Traps {
    /// The root, canonical.
    root: PathBuf,
    plain: DocRoot,
    /// Caches files, checked with `stat`, with no racy window, so repeats are served from
    /// the cache.
    cached: DocRoot,
    /// Caches and watches, like a pool worker.
    watched: DocRoot,
    watcher: Mutex<Option<Watcher>>,
}

impl Traps {
    /// Builds the tree in `top`, an empty directory that outlives the `Traps`: the root is
    /// `top/root`, the secrets lie in `top` and `top/outside`.
    pub fn new(top: &Path) -> io::Result<Traps> {
        let root = top.join("root");
        let outside = top.join("outside");
        for dir in ["a/b", "noindex", ".well-known", ".git"] {
            std::fs::create_dir_all(root.join(dir))?;
        }
        std::fs::create_dir_all(&outside)?;
        // Larger than the cache keeps as bytes, so that a leak would also take the path
        // of an open descriptor.
        let secret = [SECRET, &b"\n".repeat(20_000)].concat();
        let big_inside = b"inside, and large\n".repeat(1_000);
        let files: [(&Path, &[u8], u32); 12] = [
            (&top.join("secret.txt"), &secret, 0o644),
            (&outside.join("secret.txt"), &secret, 0o644),
            (&outside.join(INDEX_FILE), &secret, 0o644),
            (&root.join(INDEX_FILE), b"home", 0o644),
            (&root.join("a/b/inside.txt"), b"inside", 0o644),
            (&root.join("a/big.txt"), &big_inside, 0o644),
            (&root.join("noindex/file.txt"), b"listed nowhere", 0o644),
            (&root.join(".well-known/x.txt"), b"well known", 0o644),
            (&root.join(".git/config"), b"git config", 0o644),
            (&root.join(".env"), b"env", 0o644),
            (&root.join("private.txt"), b"private", 0o600),
            (&root.join("caf\u{e9} 1.txt"), b"coffee", 0o644),
        ];
        for (path, contents, mode) in files {
            std::fs::write(path, contents)?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        }
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("pipe"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )?;
        let links: [(&Path, &str); 13] = [
            (&outside.join("secret.txt"), "out-file"),
            (&outside, "out-dir"),
            (Path::new("../outside/secret.txt"), "out-rel-file"),
            (Path::new("../outside"), "out-rel-dir"),
            (Path::new("../secret.txt"), "out-top"),
            (Path::new("/nonexistent-poolhttpd-fuzz"), "out-dangling"),
            (Path::new("/etc/passwd"), "passwd"),
            (Path::new("loop2"), "loop1"),
            (Path::new("loop1"), "loop2"),
            (Path::new("a/b/inside.txt"), "in-link"),
            (Path::new("a"), "in-dir"),
            (Path::new("../../out-dir"), "a/b/up-out"),
            (Path::new("pipe"), "pipe-link"),
        ];
        for (target, name) in links {
            symlink(target, root.join(name))?;
        }
        let watched = DocRoot::open(&root)?.with_watched_cache(Duration::ZERO, 1);
        let watcher = Mutex::new(watched.watcher(0));
        Ok(Traps {
            root: root.canonicalize()?,
            plain: DocRoot::open(&root)?,
            cached: DocRoot::open(&root)?.with_cache(Duration::ZERO),
            watched,
            watcher,
        })
    }
}

/// Target → path resolution and the lookup beneath a root of [`Traps`].
///
/// Must hold: a resolved path is relative, with no empty, `.` or `..` segment, no NUL, and
/// no dot-segment but a first `.well-known`; resolving it again gives itself. No lookup,
/// plain, cached or watched, first time or again, finds a file outside the root or a
/// secret's bytes, and any file found is the file that path names inside the root.
pub fn target(traps: &Traps, data: &[u8]) {
    let target = String::from_utf8_lossy(data);
    let mut scratch = PathScratch::default();
    let Ok(safe) = resolve_target(&target, &mut scratch) else {
        return;
    };
    check_safe(&target, &safe);
    let mut again = PathScratch::default();
    let respelled = respell(&safe);
    match resolve_target(&respelled, &mut again) {
        Ok(same) => assert_eq!(same, safe, "{target:?} respelled as {respelled:?}"),
        Err(err) => panic!("{target:?} respelled as {respelled:?}: {err:?}"),
    }
    let mut watcher = traps.watcher.lock().unwrap_or_else(|err| err.into_inner());
    for _ in 0..2 {
        check_lookup(traps, &traps.plain, &safe, None);
        check_lookup(traps, &traps.cached, &safe, None);
        if let Some(watcher) = watcher.as_mut() {
            watcher.received();
        }
        check_lookup(traps, &traps.watched, &safe, watcher.as_mut());
    }
}

fn check_safe(target: &str, safe: &SafePath<'_>) {
    let relative = safe.relative;
    let shown = String::from_utf8_lossy(relative);
    assert!(
        relative.len() <= target.len(),
        "{target:?} grew into {shown:?}"
    );
    assert!(!relative.contains(&0), "{target:?}: NUL in {shown:?}");
    if relative.is_empty() {
        assert!(safe.dir_form, "{target:?}: the root without its slash");
        return;
    }
    for (index, segment) in relative.split(|&b| b == b'/').enumerate() {
        let dot_name = segment.first() == Some(&b'.');
        let well_known = index == 0 && segment == b".well-known";
        assert!(
            !segment.is_empty() && (!dot_name || well_known),
            "{target:?}: segment {:?} in {shown:?}",
            String::from_utf8_lossy(segment)
        );
    }
}

/// An origin-form target that names `safe` again: every byte but unreserved ones and `/`
/// percent-encoded, and a trailing slash for the directory form.
fn respell(safe: &SafePath<'_>) -> String {
    let mut out = String::from("/");
    for &b in safe.relative {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if safe.dir_form && !safe.relative.is_empty() {
        out.push('/');
    }
    out
}

fn check_lookup(traps: &Traps, root: &DocRoot, safe: &SafePath<'_>, watcher: Option<&mut Watcher>) {
    let shown = String::from_utf8_lossy(safe.relative);
    let named = traps.root.join(OsStr::from_bytes(safe.relative));
    match root.lookup(safe, &mut Vec::new(), watcher) {
        Ok(Lookup::File(file)) => {
            if let Contents::Open(open) = &file.contents {
                // Where the kernel says the descriptor is, not where the path said.
                let link = format!("/proc/self/fd/{}", open.as_raw_fd());
                let real = std::fs::read_link(link).expect("read the descriptor's link");
                assert!(real.starts_with(&traps.root), "{shown:?} opened {real:?}");
            }
            let body = body_of(&file);
            let leaked = body.windows(SECRET.len()).any(|window| window == SECRET);
            assert!(!leaked, "{shown:?}: served a secret");
            let path = if named.is_dir() {
                named.join(INDEX_FILE)
            } else {
                named
            };
            let real = path.canonicalize().expect("a served file has a path");
            assert!(real.starts_with(&traps.root), "{shown:?} served {real:?}");
            let want = std::fs::read(&real).expect("read the named file");
            assert!(
                body == want,
                "{shown:?}: served other bytes than {real:?} holds"
            );
        }
        Ok(Lookup::Redirect) => {
            assert!(!safe.dir_form, "{shown:?}: redirect for the directory form");
            let real = named.canonicalize().expect("a redirect names a directory");
            assert!(
                real.is_dir() && real.starts_with(&traps.root),
                "{shown:?}: {real:?}"
            );
        }
        Err(_) => {}
    }
}

fn body_of(file: &CachedFile) -> Vec<u8> {
    match &file.contents {
        Contents::Bytes(bytes) => bytes.to_vec(),
        Contents::Open(open) => {
            let mut body = vec![0; usize::try_from(file.len()).expect("a small file")];
            open.read_exact_at(&mut body, 0)
                .expect("read the open file");
            body
        }
    }
}

/// `bytes` for a failure message: their length and, escaped, the first and last few.
fn excerpt(bytes: &[u8]) -> String {
    const EDGE: usize = 100;
    let text = |part: &[u8]| format!("{:?}", String::from_utf8_lossy(part));
    if bytes.len() <= 2 * EDGE {
        format!("{} bytes, {}", bytes.len(), text(bytes))
    } else {
        let (head, tail) = (&bytes[..EDGE], &bytes[bytes.len() - EDGE..]);
        format!("{} bytes, {} … {}", bytes.len(), text(head), text(tail))
    }
}

/// Split points for `data`: all of them for a short input; for a longer one, both ends,
/// each side of every line end among the first few, each side of `limits`, and a
/// pseudo-random sample. Always ascending, without repeats, within `0..=data.len()`.
fn split_points(data: &[u8], limits: &[usize]) -> Vec<usize> {
    let len = data.len();
    if len <= SPLIT_EVERYWHERE_UP_TO {
        return (0..=len).collect();
    }
    let mut points = vec![0, 1, len - 1, len];
    let line_ends = data.iter().enumerate().filter(|&(_, &b)| b == b'\n');
    for (at, _) in line_ends.take(64) {
        points.extend([at, at + 1]);
    }
    for &limit in limits {
        points.extend([limit - 1, limit, limit + 1]);
    }
    let mut random = Random::of(data);
    points.extend((0..SAMPLED_SPLITS).map(|_| random.below(len + 1)));
    points.retain(|&point| point <= len);
    points.sort_unstable();
    points.dedup();
    points
}

/// A small generator seeded by the input, so a finding replays exactly.
struct Random(u64);

impl Random {
    fn of(data: &[u8]) -> Random {
        // FNV-1a.
        let hash = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |hash, &b| {
            (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        Random(hash | 1)
    }

    /// A number below `bound` (which must not be 0).
    fn below(&mut self, bound: usize) -> usize {
        // xorshift64.
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % bound as u64) as usize
    }
}
