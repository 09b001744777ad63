//! Validators, conditional requests and byte ranges (RFC 9110 §8.8, §13, §14).
//!
//! Everything here is a pure function of header bytes and a file's length and time, so the
//! rules can be tested as tables.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::date::HTTP_DATE_LEN;
use super::encoding::Coding;
use super::syntax::trim;

/// Longest entity-tag we make: a quote, three 16-digit hex numbers, two dashes, the
/// longest coding suffix (`-gzip`), a quote.
const ETAG_MAX: usize = 2 + 3 * 16 + 2 + 5;

/// A strong entity-tag made from a file's modification time (to the nanosecond) and length.
/// Changing either changes the tag; serving the same file twice gives the same tag.
#[derive(Clone, Copy)]
pub struct ETag {
    bytes: [u8; ETAG_MAX],
    len: usize,
}

impl ETag {
    /// The tag for a file modified at `modified` with `len` bytes.
    pub fn new(modified: SystemTime, len: u64) -> ETag {
        let since = modified
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        let mut bytes = [0u8; ETAG_MAX];
        let mut cursor = std::io::Cursor::new(&mut bytes[..]);
        // The buffer fits the longest possible tag, so the write cannot fail.
        let _ = write!(
            cursor,
            "\"{:x}-{:x}-{:x}\"",
            since.as_secs(),
            since.subsec_nanos(),
            len
        );
        let len = cursor.position() as usize;
        ETag { bytes, len }
    }

    /// The tag of the file's copy in `coding`: each representation has its own tag (RFC
    /// 9110 §8.8.3), even when the copy's time and length equal the file's.
    pub fn with_coding(mut self, coding: Option<Coding>) -> ETag {
        let Some(coding) = coding else {
            return self;
        };
        // Before the closing quote; the buffer holds the longest suffix.
        let suffix = coding.token().as_bytes();
        let end = self.len - 1;
        self.bytes[end] = b'-';
        self.bytes[end + 1..end + 1 + suffix.len()].copy_from_slice(suffix);
        self.len = end + 1 + suffix.len() + 1;
        self.bytes[self.len - 1] = b'"';
        self
    }

    /// The tag for a directory listing: the directory's modification time, and a digest of
    /// the page in place of a length. The directory's time alone would miss a file inside
    /// that changes size or permissions; the digest changes with anything the page shows.
    pub fn listing(dir_modified: SystemTime, digest: u64) -> ETag {
        ETag::new(dir_modified, digest)
    }

    /// The tag with its quotes, as sent in `ETag`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl std::fmt::Debug for ETag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

/// An IMF-fixdate for `Last-Modified`, to the second. A time past the year 9999, which a
/// file system such as tmpfs can hold, has no four-digit year: it is written as the last
/// second that has one (httpdate panics on it).
pub fn http_date(when: SystemTime) -> [u8; HTTP_DATE_LEN] {
    let mut out = [b' '; HTTP_DATE_LEN];
    let mut cursor = std::io::Cursor::new(&mut out[..]);
    let when = when.min(UNIX_EPOCH + Duration::from_secs(253_402_300_799));
    let _ = write!(cursor, "{}", httpdate::HttpDate::from(when));
    out
}

/// What the preconditions of a GET or HEAD decide (RFC 9110 §13.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Serve the representation (perhaps a range of it).
    Proceed,
    /// 304: the client's copy is current.
    NotModified,
    /// 412: an `If-Match` or `If-Unmodified-Since` condition is false.
    Failed,
}

/// The conditional header fields of one request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Conditions<'a> {
    pub if_match: Option<&'a [u8]>,
    pub if_unmodified_since: Option<&'a [u8]>,
    pub if_none_match: Option<&'a [u8]>,
    pub if_modified_since: Option<&'a [u8]>,
}

/// Evaluates the preconditions in the order RFC 9110 §13.2.2 gives.
pub fn evaluate(conditions: &Conditions<'_>, etag: &ETag, modified: SystemTime) -> Precondition {
    let modified = to_second(modified);
    let failed = match (conditions.if_match, conditions.if_unmodified_since) {
        (Some(list), _) => !matches_any(list, etag, Comparison::Strong),
        (None, Some(date)) => parse_date(date).is_some_and(|date| modified > date),
        (None, None) => false,
    };
    if failed {
        return Precondition::Failed;
    }
    let fresh = match (conditions.if_none_match, conditions.if_modified_since) {
        (Some(list), _) => matches_any(list, etag, Comparison::Weak),
        (None, Some(date)) => parse_date(date).is_some_and(|date| modified <= date),
        (None, None) => false,
    };
    if fresh {
        return Precondition::NotModified;
    }
    Precondition::Proceed
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Strong,
    Weak,
}

/// Whether an `If-Match` / `If-None-Match` list names our tag (or is `*`). A malformed
/// member matches nothing.
fn matches_any(list: &[u8], etag: &ETag, comparison: Comparison) -> bool {
    let list = trim(list);
    if list == b"*" {
        return true;
    }
    let ours = etag.as_bytes();
    let mut rest = list;
    loop {
        rest = trim_list_separators(rest);
        if rest.is_empty() {
            return false;
        }
        let (weak, tagged) = match rest.strip_prefix(b"W/") {
            Some(after) => (true, after),
            None => (false, rest),
        };
        let Some(body) = tagged.strip_prefix(b"\"") else {
            return false;
        };
        let Some(close) = body.iter().position(|&b| b == b'"') else {
            return false;
        };
        let tag = &tagged[..close + 2];
        let matched = tag == ours && (comparison == Comparison::Weak || !weak);
        if matched {
            return true;
        }
        rest = &tagged[close + 2..];
    }
}

fn trim_list_separators(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b',', rest @ ..] = value {
        value = rest;
    }
    value
}

fn parse_date(value: &[u8]) -> Option<SystemTime> {
    let text = std::str::from_utf8(trim(value)).ok()?;
    httpdate::parse_http_date(text).ok()
}

fn to_second(when: SystemTime) -> SystemTime {
    let secs = when
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Whether an `If-Range` value still describes the representation, so that the range
/// applies (RFC 9110 §13.1.5): a strong match of the tag, or the exact `Last-Modified`.
pub fn if_range_holds(value: &[u8], etag: &ETag, modified: SystemTime) -> bool {
    let value = trim(value);
    if value.starts_with(b"\"") || value.starts_with(b"W/") {
        return value == etag.as_bytes();
    }
    parse_date(value) == Some(to_second(modified))
}

/// Most ranges answered together, after overlapping and adjacent ones are merged: more
/// get the whole representation. Sixteen covers every reader of PDFs and archives seen in
/// practice; a client asking for hundreds is scanning or attacking.
pub const MAX_RANGES: usize = 16;

/// Most range specs read from one `Range` header: beyond it the header is ignored, so that
/// merging stays a handful of comparisons.
const MAX_SPECS: usize = 64;

/// Satisfiable ranges, `start..end` (end exclusive), disjoint, in the order first asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ranges {
    parts: [(u64, u64); MAX_RANGES],
    count: usize,
}

impl Ranges {
    /// The ranges, in order.
    pub fn as_slice(&self) -> &[(u64, u64)] {
        &self.parts[..self.count]
    }
}

/// The answer to a `Range` header for a representation of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "lives on the stack for one request; boxing would allocate per range request"
)]
pub enum RangeAnswer {
    /// No usable range: send the whole representation (200).
    Whole,
    /// Send these ranges (206): one as is, several as `multipart/byteranges`.
    Parts(Ranges),
    /// 416, with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Interprets a `Range` header (RFC 9110 §14.2). Syntax we cannot read, or another unit,
/// is ignored (the whole representation). Ranges past the end are dropped, ends past the
/// end clamped; overlapping and adjacent ranges are merged, so that the parts never cover a
/// byte twice and never add up to more than the representation; 416 only when none is
/// satisfiable; more than [`MAX_RANGES`] after merging gets the whole representation.
pub fn range(value: &[u8], len: u64) -> RangeAnswer {
    let value = trim(value);
    let Some(unit_end) = value.iter().position(|&b| b == b'=') else {
        return RangeAnswer::Whole;
    };
    if !trim(&value[..unit_end]).eq_ignore_ascii_case(b"bytes") {
        return RangeAnswer::Whole;
    }
    let mut asked = [(0u64, 0u64); MAX_SPECS];
    let (mut specs, mut satisfiable) = (0, 0);
    for spec in value[unit_end + 1..]
        .split(|&b| b == b',')
        .map(trim)
        .filter(|s| !s.is_empty())
    {
        specs += 1;
        if specs > MAX_SPECS {
            return RangeAnswer::Whole;
        }
        match spec_range(spec, len) {
            Spec::Invalid => return RangeAnswer::Whole,
            Spec::Unsatisfiable => {}
            Spec::Range(start, end) => {
                asked[satisfiable] = (start, end);
                satisfiable += 1;
            }
        }
    }
    if specs == 0 {
        return RangeAnswer::Whole;
    }
    let merged = merge(&mut asked[..satisfiable]);
    match merged.len() {
        0 => RangeAnswer::Unsatisfiable,
        count if count > MAX_RANGES => RangeAnswer::Whole,
        count => {
            let mut parts = [(0, 0); MAX_RANGES];
            parts[..count].copy_from_slice(merged);
            RangeAnswer::Parts(Ranges { parts, count })
        }
    }
}

/// One range spec against a representation of `len` bytes.
enum Spec {
    Invalid,
    Unsatisfiable,
    Range(u64, u64),
}

fn spec_range(spec: &[u8], len: u64) -> Spec {
    let Some(dash) = spec.iter().position(|&b| b == b'-') else {
        return Spec::Invalid;
    };
    let (first, last) = (&spec[..dash], &spec[dash + 1..]);
    match (number(first), number(last)) {
        // `-n`: the last n bytes.
        (None, Some(suffix)) if first.is_empty() => {
            if suffix == 0 || len == 0 {
                Spec::Unsatisfiable
            } else {
                Spec::Range(len - suffix.min(len), len)
            }
        }
        // `a-`: from a to the end.
        (Some(start), None) if last.is_empty() => within(start, u64::MAX, len),
        // `a-b`, b clamped to the end.
        (Some(start), Some(last)) if start <= last => within(start, last, len),
        _ => Spec::Invalid,
    }
}

fn within(start: u64, last: u64, len: u64) -> Spec {
    if start >= len {
        Spec::Unsatisfiable
    } else {
        Spec::Range(start, last.min(len - 1) + 1)
    }
}

/// Merges overlapping and adjacent ranges in place, each group of touching ranges into
/// one, and returns the merged ones in the order their earliest member was asked. Sorting
/// keeps this O(n log n) however the specs are arranged.
fn merge(ranges: &mut [(u64, u64)]) -> &[(u64, u64)] {
    let mut order = [(0u64, 0u64, 0usize); MAX_SPECS];
    let order = &mut order[..ranges.len()];
    for (slot, (index, &(start, end))) in order.iter_mut().zip(ranges.iter().enumerate()) {
        *slot = (start, end, index);
    }
    order.sort_unstable();
    let mut count = 0usize;
    for index in 0..order.len() {
        let (start, end, asked) = order[index];
        match count.checked_sub(1).map(|last| &mut order[last]) {
            Some(group) if start <= group.1 => {
                group.1 = group.1.max(end);
                group.2 = group.2.min(asked);
            }
            _ => {
                order[count] = (start, end, asked);
                count += 1;
            }
        }
    }
    let groups = &mut order[..count];
    groups.sort_unstable_by_key(|&(_, _, asked)| asked);
    for (slot, &(start, end, _)) in ranges.iter_mut().zip(groups.iter()) {
        *slot = (start, end);
    }
    &ranges[..count]
}

/// A decimal number; more digits than a `u64` holds read as `u64::MAX`, which is past the
/// end of any representation (so a huge last-byte-pos is clamped, a huge first-byte-pos
/// unsatisfiable, a huge suffix the whole).
fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u64, |acc, &d| {
        acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    #[test]
    fn etags_are_strong_and_change_with_time_and_length() {
        let tag = ETag::new(at(784_111_777, 5), 41049);
        assert_eq!(tag.as_bytes(), b"\"2ebc98a1-5-a059\"");
        assert_eq!(tag.with_coding(None).as_bytes(), tag.as_bytes());
        assert_eq!(
            tag.with_coding(Some(Coding::Br)).as_bytes(),
            b"\"2ebc98a1-5-a059-br\""
        );
        let longest = ETag::new(at(u64::MAX >> 2, 999_999_999), u64::MAX);
        assert_eq!(
            longest.with_coding(Some(Coding::Gzip)).as_bytes(),
            b"\"3fffffffffffffff-3b9ac9ff-ffffffffffffffff-gzip\""
        );
        assert_ne!(
            tag.as_bytes(),
            ETag::new(at(784_111_777, 6), 41049).as_bytes()
        );
        assert_ne!(
            tag.as_bytes(),
            ETag::new(at(784_111_777, 5), 41048).as_bytes()
        );
        let widest = ETag::new(at(u64::MAX >> 2, 999_999_999), u64::MAX);
        assert!(widest.as_bytes().ends_with(b"\""));
    }

    #[test]
    fn last_modified_is_an_imf_fixdate() {
        assert_eq!(
            &http_date(at(784_111_777, 123)),
            b"Sun, 06 Nov 1994 08:49:37 GMT"
        );
    }

    #[test]
    fn preconditions() {
        let modified = at(784_111_777, 500);
        let tag = ETag::new(modified, 10);
        let ours = String::from_utf8(tag.as_bytes().to_vec()).unwrap();
        let weak = format!("W/{ours}");
        let list = format!("\"x\", {weak} ,\"y\"");
        let same = "Sun, 06 Nov 1994 08:49:37 GMT";
        let later = "Sun, 06 Nov 1994 08:49:38 GMT";
        let earlier = "Sun, 06 Nov 1994 08:49:36 GMT";
        use Precondition::*;
        let table: Vec<(Conditions<'_>, Precondition)> = vec![
            (Conditions::default(), Proceed),
            (
                Conditions {
                    if_none_match: Some(ours.as_bytes()),
                    ..Default::default()
                },
                NotModified,
            ),
            (
                Conditions {
                    if_none_match: Some(weak.as_bytes()),
                    ..Default::default()
                },
                NotModified,
            ),
            (
                Conditions {
                    if_none_match: Some(list.as_bytes()),
                    ..Default::default()
                },
                NotModified,
            ),
            (
                Conditions {
                    if_none_match: Some(b"*"),
                    ..Default::default()
                },
                NotModified,
            ),
            (
                Conditions {
                    if_none_match: Some(b"\"other\""),
                    ..Default::default()
                },
                Proceed,
            ),
            (
                Conditions {
                    if_none_match: Some(b"garbage"),
                    ..Default::default()
                },
                Proceed,
            ),
            (
                Conditions {
                    if_modified_since: Some(same.as_bytes()),
                    ..Default::default()
                },
                NotModified,
            ),
            (
                Conditions {
                    if_modified_since: Some(later.as_bytes()),
                    ..Default::default()
                },
                NotModified,
            ),
            (
                Conditions {
                    if_modified_since: Some(earlier.as_bytes()),
                    ..Default::default()
                },
                Proceed,
            ),
            (
                Conditions {
                    if_modified_since: Some(b"not a date"),
                    ..Default::default()
                },
                Proceed,
            ),
            // If-None-Match wins over If-Modified-Since.
            (
                Conditions {
                    if_none_match: Some(b"\"other\""),
                    if_modified_since: Some(later.as_bytes()),
                    ..Default::default()
                },
                Proceed,
            ),
            (
                Conditions {
                    if_match: Some(ours.as_bytes()),
                    ..Default::default()
                },
                Proceed,
            ),
            (
                Conditions {
                    if_match: Some(b"*"),
                    ..Default::default()
                },
                Proceed,
            ),
            (
                Conditions {
                    if_match: Some(weak.as_bytes()),
                    ..Default::default()
                },
                Failed,
            ),
            (
                Conditions {
                    if_match: Some(b"\"other\""),
                    ..Default::default()
                },
                Failed,
            ),
            (
                Conditions {
                    if_unmodified_since: Some(earlier.as_bytes()),
                    ..Default::default()
                },
                Failed,
            ),
            (
                Conditions {
                    if_unmodified_since: Some(same.as_bytes()),
                    ..Default::default()
                },
                Proceed,
            ),
        ];
        for (conditions, want) in table {
            assert_eq!(
                evaluate(&conditions, &tag, modified),
                want,
                "{conditions:?}"
            );
        }
    }

    #[test]
    fn if_range() {
        let modified = at(784_111_777, 500);
        let tag = ETag::new(modified, 10);
        let ours = String::from_utf8(tag.as_bytes().to_vec()).unwrap();
        let table = [
            (ours.clone(), true),
            (format!("W/{ours}"), false),
            ("\"other\"".to_string(), false),
            ("Sun, 06 Nov 1994 08:49:37 GMT".to_string(), true),
            ("Sun, 06 Nov 1994 08:49:38 GMT".to_string(), false),
            ("yesterday".to_string(), false),
        ];
        for (value, holds) in table {
            assert_eq!(
                if_range_holds(value.as_bytes(), &tag, modified),
                holds,
                "{value}"
            );
        }
    }

    #[test]
    fn ranges() {
        use RangeAnswer::*;
        let parts = |list: &[(u64, u64)]| {
            let mut ranges = Ranges {
                parts: [(0, 0); MAX_RANGES],
                count: list.len(),
            };
            ranges.parts[..list.len()].copy_from_slice(list);
            Parts(ranges)
        };
        let many = (0..17)
            .map(|n| format!("{}-{}", n * 2, n * 2))
            .collect::<Vec<_>>()
            .join(",");
        let sixteen = (0..16)
            .map(|n| format!("{}-{}", n * 2, n * 2))
            .collect::<Vec<_>>()
            .join(",");
        let sixteen_parts: Vec<(u64, u64)> = (0..16).map(|n| (n * 2, n * 2 + 1)).collect();
        let specs_65 = vec!["0-0"; 65].join(",");
        let table: Vec<(String, u64, RangeAnswer)> = vec![
            ("bytes=0-0".into(), 10, parts(&[(0, 1)])),
            ("bytes=0-9".into(), 10, parts(&[(0, 10)])),
            ("bytes=2-5".into(), 10, parts(&[(2, 6)])),
            ("bytes=5-".into(), 10, parts(&[(5, 10)])),
            ("bytes=5-100".into(), 10, parts(&[(5, 10)])),
            ("bytes=-3".into(), 10, parts(&[(7, 10)])),
            ("bytes=-30".into(), 10, parts(&[(0, 10)])),
            ("Bytes = 1-2".into(), 10, parts(&[(1, 3)])),
            ("bytes=1-2, ".into(), 10, parts(&[(1, 3)])),
            // Huge numbers: an end is clamped, a start is past the end, a suffix is all.
            ("bytes=0-18446744073709551615".into(), 23, parts(&[(0, 23)])),
            ("bytes=0-99999999999999999999".into(), 10, parts(&[(0, 10)])),
            ("bytes=99999999999999999999-".into(), 10, Unsatisfiable),
            ("bytes=-99999999999999999999".into(), 10, parts(&[(0, 10)])),
            // Several: kept in the order asked, overlapping and adjacent ones merged.
            ("bytes=0-0,-1".into(), 10, parts(&[(0, 1), (9, 10)])),
            (
                "bytes=6-7,0-1,3-4".into(),
                10,
                parts(&[(6, 8), (0, 2), (3, 5)]),
            ),
            ("bytes=0-4,2-6".into(), 10, parts(&[(0, 7)])),
            ("bytes=0-1,2-3".into(), 10, parts(&[(0, 4)])),
            ("bytes=4-5,0-1,1-4".into(), 10, parts(&[(0, 6)])),
            ("bytes=0-,0-,0-".into(), 10, parts(&[(0, 10)])),
            (
                "bytes=8-9,4-5,0-1,1-4".into(),
                10,
                parts(&[(8, 10), (0, 6)]),
            ),
            ("bytes=20-30,2-3".into(), 10, parts(&[(2, 4)])),
            (format!("bytes={sixteen}"), 100, parts(&sixteen_parts)),
            (format!("bytes={many}"), 100, Whole),
            (format!("bytes={specs_65}"), 100, Whole),
            ("bytes=10-".into(), 10, Unsatisfiable),
            ("bytes=10-20".into(), 10, Unsatisfiable),
            ("bytes=10-20,30-".into(), 10, Unsatisfiable),
            ("bytes=-0".into(), 10, Unsatisfiable),
            ("bytes=0-".into(), 0, Unsatisfiable),
            ("bytes=-1".into(), 0, Unsatisfiable),
            ("bytes=5-2".into(), 10, Whole),
            ("bytes=0-1,5-2".into(), 10, Whole),
            ("bytes=a-b".into(), 10, Whole),
            ("bytes=-".into(), 10, Whole),
            ("bytes=1".into(), 10, Whole),
            ("bytes=".into(), 10, Whole),
            ("items=0-1".into(), 10, Whole),
            ("bytes 0-1".into(), 10, Whole),
            ("bytes=+1-2".into(), 10, Whole),
        ];
        for (value, len, want) in table {
            assert_eq!(range(value.as_bytes(), len), want, "{value} of {len}");
        }
    }

    #[test]
    fn merged_ranges_never_overlap_or_cover_more_than_the_representation() {
        // A little generator, so that the property runs over many shapes without a crate.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        for _ in 0..2000 {
            let len = next(50);
            let specs: Vec<String> = (0..1 + next(20))
                .map(|_| match next(3) {
                    0 => format!("{}-{}", next(60), 60 + next(10)),
                    1 => format!("{}-", next(60)),
                    _ => format!("-{}", next(60)),
                })
                .collect();
            let header = format!("bytes={}", specs.join(","));
            if let RangeAnswer::Parts(ranges) = range(header.as_bytes(), len) {
                let list = ranges.as_slice();
                let covered: u64 = list.iter().map(|(start, end)| end - start).sum();
                assert!(covered <= len, "{header} of {len}: {list:?}");
                for (i, a) in list.iter().enumerate() {
                    assert!(a.0 < a.1 && a.1 <= len, "{header} of {len}: {list:?}");
                    for b in &list[i + 1..] {
                        assert!(a.1 < b.0 || b.1 < a.0, "{header} of {len}: {list:?}");
                    }
                }
            }
        }
    }
}
