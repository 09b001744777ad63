//! Validators, conditional requests and byte ranges (RFC 9110 §8.8, §13, §14).
//!
//! Everything here is a pure function of header bytes and a file's length and time, so the
//! rules can be tested as tables.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::date::HTTP_DATE_LEN;
use super::syntax::trim;

/// Longest entity-tag we make: a quote, three 16-digit hex numbers, two dashes, a quote.
const ETAG_MAX: usize = 2 + 3 * 16 + 2;

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

/// The answer to a `Range` header for a representation of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// No usable range: send the whole representation (200).
    Whole,
    /// Send bytes `start..end` (206). `end` is exclusive.
    Part { start: u64, end: u64 },
    /// 416, with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Interprets a `Range` header. We answer one range; a request for several gets the whole
/// representation (RFC 9110 §14.2 lets a server ignore Range), which costs the client no
/// more than a multipart body would and keeps every response a plain file.
pub fn range(value: &[u8], len: u64) -> RangeAnswer {
    let value = trim(value);
    let Some(unit_end) = value.iter().position(|&b| b == b'=') else {
        return RangeAnswer::Whole;
    };
    if !trim(&value[..unit_end]).eq_ignore_ascii_case(b"bytes") {
        return RangeAnswer::Whole;
    }
    let specs = &value[unit_end + 1..];
    let mut items = specs
        .split(|&b| b == b',')
        .map(trim)
        .filter(|s| !s.is_empty());
    let (Some(spec), None) = (items.next(), items.next()) else {
        return RangeAnswer::Whole;
    };
    let Some(dash) = spec.iter().position(|&b| b == b'-') else {
        return RangeAnswer::Whole;
    };
    let (first, last) = (&spec[..dash], &spec[dash + 1..]);
    match (number(first), number(last)) {
        // `-n`: the last n bytes.
        (None, Some(suffix)) if first.is_empty() => {
            if suffix == 0 || len == 0 {
                RangeAnswer::Unsatisfiable
            } else {
                RangeAnswer::Part {
                    start: len - suffix.min(len),
                    end: len,
                }
            }
        }
        // `a-`: from a to the end.
        (Some(start), None) if last.is_empty() => part(start, u64::MAX, len),
        // `a-b`, b clamped to the end.
        (Some(start), Some(end)) if start <= end => part(start, end, len),
        _ => RangeAnswer::Whole,
    }
}

fn part(start: u64, last: u64, len: u64) -> RangeAnswer {
    if start >= len {
        RangeAnswer::Unsatisfiable
    } else {
        RangeAnswer::Part {
            start,
            end: last.min(len - 1) + 1,
        }
    }
}

fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
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
        let table: [(&str, u64, RangeAnswer); 24] = [
            ("bytes=0-0", 10, Part { start: 0, end: 1 }),
            ("bytes=0-9", 10, Part { start: 0, end: 10 }),
            ("bytes=2-5", 10, Part { start: 2, end: 6 }),
            ("bytes=5-", 10, Part { start: 5, end: 10 }),
            ("bytes=5-100", 10, Part { start: 5, end: 10 }),
            ("bytes=-3", 10, Part { start: 7, end: 10 }),
            ("bytes=-30", 10, Part { start: 0, end: 10 }),
            ("Bytes = 1-2", 10, Part { start: 1, end: 3 }),
            ("bytes=1-2, ", 10, Part { start: 1, end: 3 }),
            ("bytes=10-", 10, Unsatisfiable),
            ("bytes=10-20", 10, Unsatisfiable),
            ("bytes=-0", 10, Unsatisfiable),
            ("bytes=0-", 0, Unsatisfiable),
            ("bytes=-1", 0, Unsatisfiable),
            ("bytes=5-2", 10, Whole),
            ("bytes=a-b", 10, Whole),
            ("bytes=-", 10, Whole),
            ("bytes=1", 10, Whole),
            ("bytes=0-1,3-4", 10, Whole),
            ("items=0-1", 10, Whole),
            ("bytes 0-1", 10, Whole),
            ("bytes=+1-2", 10, Whole),
            ("bytes=99999999999999999999-", 10, Whole),
            ("bytes=0-99999999999999999999", 10, Whole),
        ];
        for (value, len, want) in table {
            assert_eq!(range(value.as_bytes(), len), want, "{value} of {len}");
        }
    }
}
