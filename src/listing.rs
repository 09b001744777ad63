//! Directory listings, for `--list-dirs`: a directory without `index.html` answered with
//! an HTML page of its entries instead of 403.
//!
//! A listing shows only what the server would serve: each entry is judged by
//! [`DocRoot::probe`], which applies the lookup's own refusals (symlinks only while they
//! stay under the root, regular world-readable files, directories that serve an index or
//! would be listed themselves), and dot-files are left out as requests for them are
//! refused. The page is built for each request, never cached, so it cannot go stale; its
//! `ETag` is the directory's time with a digest of the page, so that a client's copy stays
//! valid exactly as long as the page would read the same.

use std::cmp::Ordering;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_encode};

use crate::files::{DocRoot, OpenError, Served};
use crate::handler::{self, Answer, Site, Workspace};
use crate::http::Status;
use crate::http::conditional::{self, ETag, Precondition};
use crate::http::request::{Method, Request};
use crate::http::response::{Fate, Head};

/// Most entries one page lists. Ten thousand rows make a page of about 1.5 MB (with short
/// names) that a browser still renders in a moment; a directory larger than that is not
/// browsed by eye, and the page says it was cut short.
pub const MAX_ENTRIES: usize = 10_000;

/// Most directory entries read for one page. Each costs an `openat2` and an `fstat`, so
/// this bounds the time one request may hold a worker: about half a second for 100,000
/// entries in a release build on a small machine. A larger directory is listed from the
/// entries read so far, and the page says it was cut short.
pub const MAX_SCANNED: usize = 100_000;

/// The listing's media type; the response head adds `charset=utf-8`.
const MEDIA_TYPE: &str = "text/html";

/// Bytes left as they are in a link to an entry: RFC 3986 unreserved characters.
/// Everything else is percent-encoded, the bytes of a name that is not UTF-8 included, and
/// `:` too, since a relative link whose first segment holds a colon would read as a scheme.
const LINK_BYTES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// How much of a directory one page shows; the constants, or smaller for tests.
#[derive(Debug, Clone, Copy)]
struct Limits {
    entries: usize,
    scanned: usize,
}

const LIMITS: Limits = Limits {
    entries: MAX_ENTRIES,
    scanned: MAX_SCANNED,
};

/// One entry shown.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    name: Vec<u8>,
    kind: Served,
    len: u64,
    modified: SystemTime,
}

/// The entries of one directory, as the page shows them.
#[derive(Debug)]
pub struct Listing {
    /// The directory's path under the root, without slashes at either end.
    path: Vec<u8>,
    /// Directories first, then files, each by name.
    entries: Vec<Entry>,
    /// Some entries were left out to respect [`MAX_ENTRIES`] or [`MAX_SCANNED`].
    truncated: bool,
    /// The directory's own modification time.
    dir_modified: SystemTime,
    /// The latest modification or change among the directory and everything looked at for
    /// its entries, listed or not: what `Last-Modified` says.
    newest: SystemTime,
}

impl Listing {
    /// Reads the directory `relative` (beneath the root), if it may be listed.
    pub fn read(root: &DocRoot, relative: &[u8]) -> Result<Listing, OpenError> {
        Listing::read_within(root, relative, LIMITS)
    }

    fn read_within(root: &DocRoot, relative: &[u8], limits: Limits) -> Result<Listing, OpenError> {
        let opened = root.open_listing(relative)?;
        let dir_modified = opened.modified;
        let mut newest = opened.changed.max(dir_modified);
        let dir = rustix::fs::Dir::new(opened.dir).map_err(|_| OpenError::Io)?;
        let mut path = relative.to_vec();
        if !path.is_empty() {
            path.push(b'/');
        }
        let base = path.len();
        let mut scratch = Vec::new();
        let mut entries = Vec::new();
        let (mut scanned, mut truncated) = (0, false);
        for entry in dir {
            let entry = entry.map_err(|_| OpenError::Io)?;
            let name = entry.file_name().to_bytes();
            // Dot-files are left out, `.` and `..` with them: requests for them are refused,
            // all but `/.well-known/`, which is there for machines rather than browsing.
            if name.first() == Some(&b'.') {
                continue;
            }
            if scanned == limits.scanned {
                truncated = true;
                break;
            }
            scanned += 1;
            path.truncate(base);
            path.extend_from_slice(name);
            let probe = root.probe(&path, &mut scratch);
            newest = newest.max(probe.modified).max(probe.changed);
            let Ok(kind) = probe.served else {
                continue;
            };
            entries.push(Entry {
                name: name.to_vec(),
                kind,
                len: probe.len,
                modified: probe.modified,
            });
            // Kept to twice the limit, so memory stays bounded however large the directory.
            if entries.len() >= 2 * limits.entries {
                truncated |= keep_first(&mut entries, limits.entries);
            }
        }
        truncated |= keep_first(&mut entries, limits.entries);
        Ok(Listing {
            path: relative.to_vec(),
            entries,
            truncated,
            dir_modified,
            newest,
        })
    }

    /// The time `Last-Modified` gives: the newest change seen, but never later than now
    /// (RFC 9110 §8.8.2.1), should a file carry a time in the future.
    pub fn last_modified(&self) -> SystemTime {
        self.newest.min(SystemTime::now())
    }

    /// Appends the page to `out`.
    pub fn render(&self, out: &mut Vec<u8>) {
        let mut title = b"/".to_vec();
        if !self.path.is_empty() {
            title.extend_from_slice(&self.path);
            title.push(b'/');
        }
        out.extend_from_slice(b"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n");
        out.extend_from_slice(b"<meta charset=\"utf-8\">\n");
        out.extend_from_slice(
            b"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
        );
        out.extend_from_slice(b"<title>Index of ");
        push_text(&title, out);
        out.extend_from_slice(b"</title>\n<style>");
        out.extend_from_slice(STYLE.as_bytes());
        out.extend_from_slice(b"</style>\n</head>\n<body>\n<h1>Index of ");
        push_text(&title, out);
        out.extend_from_slice(b"</h1>\n<table>\n<thead><tr><th>Name</th><th>Size</th>");
        out.extend_from_slice(b"<th>Modified (UTC)</th></tr></thead>\n<tbody>\n");
        if !self.path.is_empty() {
            out.extend_from_slice(
                b"<tr><td><a href=\"../\">../</a></td><td>-</td><td></td></tr>\n",
            );
        }
        for entry in &self.entries {
            push_row(entry, out);
        }
        out.extend_from_slice(b"</tbody>\n</table>\n");
        if self.truncated {
            let _ = writeln!(
                out,
                "<p class=\"truncated\">This listing is cut short: it shows {} entries, \
                 and the directory holds more.</p>",
                self.entries.len()
            );
        }
        out.extend_from_slice(b"</body>\n</html>\n");
    }
}

/// Plain, and small enough to send with every page.
const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em}\
table{border-collapse:collapse}th,td{padding:.15em 1.2em .15em 0;text-align:left}\
td:nth-child(2){text-align:right;font-variant-numeric:tabular-nums}\
.truncated{font-style:italic}";

/// Sorts `entries` into listing order and keeps the first `limit`; says whether any went.
fn keep_first(entries: &mut Vec<Entry>, limit: usize) -> bool {
    entries.sort_unstable_by(listing_order);
    let cut = entries.len() > limit;
    entries.truncate(limit);
    cut
}

/// Directories first, then files; each by name, ignoring ASCII case, then by the exact
/// bytes, so the order is total and the page the same on every request.
fn listing_order(a: &Entry, b: &Entry) -> Ordering {
    let rank = |kind: Served| match kind {
        Served::Directory => 0,
        Served::File => 1,
    };
    // Folded byte by byte as they are compared, so that sorting allocates nothing.
    fn folded(name: &[u8]) -> impl Iterator<Item = u8> + '_ {
        name.iter().map(u8::to_ascii_lowercase)
    }
    rank(a.kind)
        .cmp(&rank(b.kind))
        .then_with(|| folded(&a.name).cmp(folded(&b.name)))
        .then_with(|| a.name.cmp(&b.name))
}

/// One table row: the link, the size (exact in its title), the time.
fn push_row(entry: &Entry, out: &mut Vec<u8>) {
    out.extend_from_slice(b"<tr><td><a href=\"");
    push_link(&entry.name, out);
    if entry.kind == Served::Directory {
        out.push(b'/');
    }
    out.extend_from_slice(b"\">");
    push_text(&entry.name, out);
    if entry.kind == Served::Directory {
        out.push(b'/');
    }
    out.extend_from_slice(b"</a></td>");
    match entry.kind {
        Served::Directory => out.extend_from_slice(b"<td>-</td>"),
        Served::File => {
            let unit = if entry.len == 1 { "byte" } else { "bytes" };
            let _ = write!(
                out,
                "<td title=\"{} {unit}\">{}</td>",
                entry.len,
                human_size(entry.len)
            );
        }
    }
    out.extend_from_slice(b"<td>");
    push_time(entry.modified, out);
    out.extend_from_slice(b"</td></tr>\n");
}

/// Appends `name` percent-encoded for a relative link; the result is ASCII letters, digits,
/// `-._~` and `%`, safe inside a quoted attribute as it is.
fn push_link(name: &[u8], out: &mut Vec<u8>) {
    out.extend(percent_encode(name, LINK_BYTES).flat_map(str::bytes));
}

/// Appends `bytes` as HTML text: invalid UTF-8 as U+FFFD, markup characters as references
/// (safe in text and in quoted attributes), and control characters, which HTML does not
/// allow, as their visible pictures (U+2400 onwards) or U+FFFD.
fn push_text(bytes: &[u8], out: &mut Vec<u8>) {
    let mut utf8 = [0; 4];
    for c in String::from_utf8_lossy(bytes).chars() {
        let escaped: &str = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            '"' => "&quot;",
            '\'' => "&#39;",
            '\u{0}'..='\u{1f}' => char::from_u32(0x2400 + c as u32)
                .unwrap_or(char::REPLACEMENT_CHARACTER)
                .encode_utf8(&mut utf8),
            '\u{7f}' => "\u{2421}",
            c if c.is_control() => "\u{fffd}",
            c => c.encode_utf8(&mut utf8),
        };
        out.extend_from_slice(escaped.as_bytes());
    }
}

/// Binary units: bytes as they are below 1 KiB; then one decimal below 10, whole numbers
/// above, moving to the next unit rather than showing 1024.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let bytes = u128::from(bytes);
    for (power, unit) in UNITS.iter().enumerate().skip(1) {
        let divisor = 1u128 << (10 * power);
        let whole = (bytes + divisor / 2) / divisor;
        if whole >= 1024 && power + 1 < UNITS.len() {
            continue;
        }
        let tenths = (bytes * 10 + divisor / 2) / divisor;
        return if tenths < 100 {
            format!("{}.{} {unit}", tenths / 10, tenths % 10)
        } else {
            format!("{whole} {unit}")
        };
    }
    // The last unit always answers above.
    format!("{bytes} B")
}

/// Appends a time as `<time>`: the exact second for machines, minutes for people, in UTC.
fn push_time(when: SystemTime, out: &mut Vec<u8>) {
    let secs = when
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    match i64::try_from(secs)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
    {
        Some(at) => {
            let _ = write!(
                out,
                "<time datetime=\"{}\">{}</time>",
                at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                at.strftime("%Y-%m-%d %H:%M")
            );
        }
        // Past the year 9999: nothing a person needs to read.
        None => out.push(b'-'),
    }
}

/// 64-bit FNV-1a: a digest of the page for its `ETag`, the same on every run and build.
fn digest(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(PRIME))
}

/// Answers GET or HEAD for the directory `relative`, which has no index, when listings
/// are on: the page, or 304 or 412 as its validators decide, or the error that stands in.
pub fn answer(
    req: &Request<'_>,
    relative: &[u8],
    site: &Site,
    ws: &mut Workspace,
    out: &mut Vec<u8>,
    fate: Fate,
) -> Answer {
    let head_only = req.method == Method::Head;
    let listing = match Listing::read(&site.root, relative) {
        Ok(listing) => listing,
        Err(refusal) => return handler::error(refusal.status(), head_only, site, ws, out, fate),
    };
    let mut page = Vec::new();
    listing.render(&mut page);
    let etag = ETag::listing(listing.dir_modified, digest(&page));
    let modified = listing.last_modified();
    let last_modified = conditional::http_date(modified);
    let mut head = Head::new(Status::Ok, fate);
    head.etag = Some(etag.as_bytes());
    head.last_modified = Some(&last_modified);
    match conditional::evaluate(&req.conditions, &etag, modified) {
        Precondition::Proceed => {}
        Precondition::NotModified => {
            head.status = Status::NotModified;
            head.write_to(out, ws.date.now());
            return Answer::copied(Status::NotModified, 0, fate);
        }
        Precondition::Failed => {
            return handler::error(Status::PreconditionFailed, head_only, site, ws, out, fate);
        }
    }
    // No Accept-Ranges: a listing is answered whole, as RFC 9110 §14.2 allows.
    head.content_type = Some(MEDIA_TYPE);
    head.content_length = page.len() as u64;
    head.write_to(out, ws.date.now());
    if head_only {
        return Answer::copied(Status::Ok, 0, fate);
    }
    out.extend_from_slice(&page);
    Answer::copied(Status::Ok, page.len() as u64, fate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(name: &[u8]) -> String {
        let mut out = Vec::new();
        push_text(name, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn link(name: &[u8]) -> String {
        let mut out = Vec::new();
        push_link(name, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn names_are_escaped_as_text() {
        let table: [(&[u8], &str); 9] = [
            (b"plain.txt", "plain.txt"),
            (b"a&b", "a&amp;b"),
            (b"<script>x</script>", "&lt;script&gt;x&lt;/script&gt;"),
            (b"\"q\" 'r'", "&quot;q&quot; &#39;r&#39;"),
            ("café ☕".as_bytes(), "café ☕"),
            (b"bad\xff\xfe.bin", "bad\u{fffd}\u{fffd}.bin"),
            (b"tab\there\nnl", "tab\u{2409}here\u{240a}nl"),
            (b"del\x7f", "del\u{2421}"),
            ("c1\u{85}".as_bytes(), "c1\u{fffd}"),
        ];
        for (name, want) in table {
            assert_eq!(text(name), want, "{name:?}");
        }
    }

    #[test]
    fn names_are_percent_encoded_in_links() {
        let table: [(&[u8], &str); 9] = [
            (b"plain-name_1.txt~", "plain-name_1.txt~"),
            (b"a b", "a%20b"),
            (b"50% off?#", "50%25%20off%3F%23"),
            (b"x:y", "x%3Ay"),
            (b"a&b\"c'<d>", "a%26b%22c%27%3Cd%3E"),
            ("café".as_bytes(), "caf%C3%A9"),
            (b"\xff\xfe", "%FF%FE"),
            (b"back\\slash", "back%5Cslash"),
            (b"semi;colon=1", "semi%3Bcolon%3D1"),
        ];
        for (name, want) in table {
            assert_eq!(link(name), want, "{name:?}");
        }
    }

    #[test]
    fn sizes_are_human_readable() {
        let table = [
            (0, "0 B"),
            (1, "1 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (1075, "1.0 KiB"),
            (1126, "1.1 KiB"),
            (1536, "1.5 KiB"),
            (10_188, "9.9 KiB"),
            (10_239, "10 KiB"),
            (10_240, "10 KiB"),
            (1_048_063, "1023 KiB"),
            (1_048_575, "1.0 MiB"),
            (1_048_576, "1.0 MiB"),
            (5 * 1024 * 1024 * 1024, "5.0 GiB"),
            (1 << 40, "1.0 TiB"),
            (u64::MAX, "16 EiB"),
        ];
        for (bytes, want) in table {
            assert_eq!(human_size(bytes), want, "{bytes}");
        }
    }

    #[test]
    fn times_are_utc() {
        let table = [
            (
                0,
                "<time datetime=\"1970-01-01T00:00:00Z\">1970-01-01 00:00</time>",
            ),
            (
                1_700_000_000,
                "<time datetime=\"2023-11-14T22:13:20Z\">2023-11-14 22:13</time>",
            ),
            (u64::MAX / 4, "-"),
        ];
        for (secs, want) in table {
            let mut out = Vec::new();
            push_time(UNIX_EPOCH + Duration::from_secs(secs), &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), want, "{secs}");
        }
    }

    fn entry(name: &str, kind: Served) -> Entry {
        Entry {
            name: name.as_bytes().to_vec(),
            kind,
            len: 0,
            modified: UNIX_EPOCH,
        }
    }

    #[test]
    fn directories_come_first_then_files_by_name() {
        use Served::{Directory as D, File as F};
        // Entries as read from the directory, and the names in the order shown.
        type Case = (&'static [(&'static str, Served)], &'static [&'static str]);
        let table: [Case; 4] = [
            (
                &[("b.txt", F), ("z", D), ("a.txt", F), ("m", D)],
                &["m", "z", "a.txt", "b.txt"],
            ),
            // Case is ignored first, then decides between names that differ only by it.
            (
                &[("b", F), ("B", F), ("a", F), ("C", F)],
                &["a", "B", "b", "C"],
            ),
            (
                &[("file10", F), ("file2", F), ("file1", F)],
                &["file1", "file10", "file2"],
            ),
            (&[("é", F), ("e", F), ("f", F)], &["e", "f", "é"]),
        ];
        for (given, want) in table {
            let mut entries: Vec<Entry> = given.iter().map(|&(n, k)| entry(n, k)).collect();
            entries.sort_by(listing_order);
            let names: Vec<String> = entries
                .iter()
                .map(|e| String::from_utf8_lossy(&e.name).into_owned())
                .collect();
            assert_eq!(names, want, "{given:?}");
        }
    }

    #[test]
    fn keeping_the_first_says_whether_any_went() {
        let mut entries: Vec<Entry> = ["c", "a", "b"]
            .iter()
            .map(|n| entry(n, Served::File))
            .collect();
        assert!(!keep_first(&mut entries, 3));
        assert!(keep_first(&mut entries, 2));
        let names: Vec<&[u8]> = entries.iter().map(|e| e.name.as_slice()).collect();
        assert_eq!(names, [b"a", b"b"]);
    }

    #[test]
    fn the_digest_is_fnv_1a() {
        // The published test vectors of FNV-1a, 64 bits.
        let table: [(&[u8], u64); 3] = [
            (b"", 0xcbf2_9ce4_8422_2325),
            (b"a", 0xaf63_dc4c_8601_ec8c),
            (b"foobar", 0x8594_4171_f739_67e8),
        ];
        for (bytes, want) in table {
            assert_eq!(digest(bytes), want, "{bytes:?}");
        }
    }

    fn write_mode(path: &std::path::Path, bytes: &[u8], mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, bytes).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn names(listing: &Listing) -> Vec<String> {
        listing
            .entries
            .iter()
            .map(|e| String::from_utf8_lossy(&e.name).into_owned())
            .collect()
    }

    /// Past either limit the first entries in listing order are kept, and the page says
    /// the listing was cut short.
    #[test]
    fn limits_cut_the_listing_short_and_say_so() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["e", "d", "c", "b", "a"] {
            write_mode(&dir.path().join(name), b"x", 0o644);
        }
        let root = DocRoot::open(dir.path()).unwrap();
        let table = [
            (
                Limits {
                    entries: 10,
                    scanned: 10,
                },
                5,
                false,
            ),
            (
                Limits {
                    entries: 5,
                    scanned: 5,
                },
                5,
                false,
            ),
            (
                Limits {
                    entries: 2,
                    scanned: 10,
                },
                2,
                true,
            ),
            // Pruned to the limit while reading, at twice the limit.
            (
                Limits {
                    entries: 1,
                    scanned: 10,
                },
                1,
                true,
            ),
            (
                Limits {
                    entries: 10,
                    scanned: 3,
                },
                3,
                true,
            ),
        ];
        for (limits, shown, truncated) in table {
            let listing = Listing::read_within(&root, b"", limits).unwrap();
            assert_eq!(
                (listing.entries.len(), listing.truncated),
                (shown, truncated),
                "{limits:?}"
            );
            if limits.scanned >= 5 {
                let want: Vec<String> = ["a", "b", "c", "d", "e"][..shown]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                assert_eq!(names(&listing), want, "{limits:?}");
            }
            let mut page = Vec::new();
            listing.render(&mut page);
            let said = String::from_utf8(page)
                .unwrap()
                .contains("class=\"truncated\"");
            assert_eq!(said, truncated, "{limits:?}");
        }
    }
}
