//! The one reader of HTTP/1.1 responses, strict where a lenient client would hide a server's
//! mistake: a status line and fields that httparse accepts, every line ended by CRLF, the
//! body framed by exactly one plain decimal `Content-Length` (a `Transfer-Encoding` is an
//! error), and limits on the head. It is fed bytes as they arrive, in any pieces, and says
//! how many it used, so the same reader serves the blocking test client and the bench's
//! non-blocking load generator, which checks bodies as they pass without keeping them.

use std::fmt;
use std::ops::Range;

/// The longest head accepted: poolhttpd's are about 300 bytes, nginx's fewer.
pub const MAX_HEAD: usize = 16 * 1024;
/// The most fields a head may have: poolhttpd sends about ten.
pub const MAX_FIELDS: usize = 64;

/// Why bytes are not a correct response. One fixed message each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseError {
    /// The status line or a field is malformed (httparse's verdict, or not `HTTP/`).
    Syntax,
    /// A line ends with a bare LF, or a CR stands without an LF.
    LineEnding,
    /// The head is longer than [`MAX_HEAD`].
    HeadTooLarge,
    /// The head has more than [`MAX_FIELDS`] fields.
    TooManyFields,
    /// A `Transfer-Encoding` field: this reader accepts `Content-Length` framing only.
    TransferEncoding,
    /// `Content-Length` repeated, or not a plain decimal number.
    BadContentLength,
    /// A response that has a body gives no `Content-Length`.
    NoContentLength,
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResponseError::Syntax => "malformed head",
            ResponseError::LineEnding => "line not ended by CRLF",
            ResponseError::HeadTooLarge => "head too large",
            ResponseError::TooManyFields => "too many fields",
            ResponseError::TransferEncoding => "Transfer-Encoding instead of Content-Length",
            ResponseError::BadContentLength => "bad Content-Length",
            ResponseError::NoContentLength => "no Content-Length",
        })
    }
}

impl std::error::Error for ResponseError {}

/// What the request asked for, which decides whether the response carries a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The body `Content-Length` announces (none for 1xx, 204 and 304).
    Body,
    /// The head alone: the answer to `HEAD`, or a head whose body the caller reads itself.
    HeadOnly,
}

/// A parsed response head. Its text is kept, so that fields cost nothing until asked for.
#[derive(Debug, Clone, Default)]
pub struct Head {
    raw: Vec<u8>,
    /// The `1` of `HTTP/1.1`.
    pub minor_version: u8,
    pub status: u16,
    reason: Range<usize>,
    fields: Vec<(Range<usize>, Range<usize>)>,
    /// The body's length, if the head gives one.
    pub content_length: Option<u64>,
    /// Whether the server ends the connection after this response: `Connection: close`, or
    /// HTTP/1.0 without `keep-alive`.
    pub close: bool,
}

impl Head {
    /// The head's length in bytes, up to and including the empty line.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether no head has been parsed into this one yet.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// `HTTP/1.1` or `HTTP/1.0`.
    pub fn version(&self) -> String {
        format!("HTTP/1.{}", self.minor_version)
    }

    /// The reason phrase, as sent.
    pub fn reason(&self) -> String {
        String::from_utf8_lossy(&self.raw[self.reason.clone()]).into_owned()
    }

    /// Every field as (name, value), in order, with surrounding white space taken off the
    /// value; non-UTF-8 bytes are replaced.
    pub fn fields(&self) -> Vec<(String, String)> {
        let text = |range: &Range<usize>| String::from_utf8_lossy(&self.raw[range.clone()]);
        self.fields
            .iter()
            .map(|(name, value)| (text(name).into_owned(), text(value).trim().to_string()))
            .collect()
    }
}

/// What one call of [`ResponseReader::feed`] did with its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fed {
    /// Bytes of the input that belong to this response; the rest is the next one's.
    pub used: usize,
    /// Where in the input this call's body bytes are.
    pub body: Range<usize>,
    /// Whether the head was completed by this call (check it once, then).
    pub head_done: bool,
    /// Whether the response is now complete.
    pub complete: bool,
}

/// Where the reader is in the current response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Body { remaining: u64 },
    Complete,
}

/// Reads one response at a time. [`ResponseReader::reset`] starts the next, keeping the
/// buffers, so that a connection's reader allocates nothing once warm.
#[derive(Debug)]
pub struct ResponseReader {
    expect: Expect,
    state: State,
    /// The head so far while it is incomplete; then the parsed head.
    head: Head,
}

impl ResponseReader {
    pub fn new(expect: Expect) -> ResponseReader {
        ResponseReader {
            expect,
            state: State::Head,
            head: Head::default(),
        }
    }

    /// Starts on the next response.
    pub fn reset(&mut self, expect: Expect) {
        self.expect = expect;
        self.state = State::Head;
        self.head.raw.clear();
        self.head.fields.clear();
    }

    /// The head, once it is complete.
    pub fn head(&self) -> Option<&Head> {
        (self.state != State::Head).then_some(&self.head)
    }

    /// Whether the response is complete.
    pub fn is_complete(&self) -> bool {
        self.state == State::Complete
    }

    /// Takes the next bytes. Incomplete input is not an error: `complete` stays false and
    /// every byte is used. Once complete, nothing more is used until [`reset`].
    ///
    /// [`reset`]: ResponseReader::reset
    pub fn feed(&mut self, input: &[u8]) -> Result<Fed, ResponseError> {
        let mut fed = Fed {
            used: 0,
            body: 0..0,
            head_done: false,
            complete: false,
        };
        if self.state == State::Head {
            match self.feed_head(input)? {
                None => {
                    fed.used = input.len();
                    return Ok(fed);
                }
                Some(used) => {
                    fed.used = used;
                    fed.head_done = true;
                }
            }
        }
        if let State::Body { remaining } = self.state {
            let take = usize::try_from(remaining)
                .unwrap_or(usize::MAX)
                .min(input.len() - fed.used);
            fed.body = fed.used..fed.used + take;
            fed.used += take;
            self.state = match remaining - take as u64 {
                0 => State::Complete,
                remaining => State::Body { remaining },
            };
        }
        fed.complete = self.state == State::Complete;
        Ok(fed)
    }

    /// Adds `input` to the head; once the head is complete, parses it, moves to its body and
    /// returns how much of `input` the head took.
    fn feed_head(&mut self, input: &[u8]) -> Result<Option<usize>, ResponseError> {
        // Never more than one byte past the limit is looked at: enough to know it is
        // exceeded. Only the head's own bytes are kept; body bytes are the caller's.
        let room = (MAX_HEAD + 1).saturating_sub(self.head.raw.len());
        let window = &input[..input.len().min(room)];
        let end = head_end(&self.head.raw, window)?;
        self.head
            .raw
            .extend_from_slice(&window[..end.unwrap_or(window.len())]);
        if self.head.raw.len() > MAX_HEAD {
            return Err(ResponseError::HeadTooLarge);
        }
        let Some(end) = end else {
            return Ok(None);
        };
        self.parse_head()?;
        let length = match (self.expect, self.head.status) {
            (Expect::HeadOnly, _) | (_, 100..=199 | 204 | 304) => 0,
            _ => self
                .head
                .content_length
                .ok_or(ResponseError::NoContentLength)?,
        };
        self.state = match length {
            0 => State::Complete,
            remaining => State::Body { remaining },
        };
        Ok(Some(end))
    }

    /// Fills in the head's fields from its complete text.
    fn parse_head(&mut self) -> Result<(), ResponseError> {
        let head = &mut self.head;
        let raw = head.raw.as_slice();
        let mut parsed = [httparse::EMPTY_HEADER; MAX_FIELDS];
        let mut response = httparse::Response::new(&mut parsed);
        response.parse(raw).map_err(|err| match err {
            httparse::Error::TooManyHeaders => ResponseError::TooManyFields,
            _ => ResponseError::Syntax,
        })?;
        let offset = |part: &[u8]| {
            let start = part.as_ptr() as usize - raw.as_ptr() as usize;
            start..start + part.len()
        };
        head.minor_version = response.version.ok_or(ResponseError::Syntax)?;
        head.status = response.code.ok_or(ResponseError::Syntax)?;
        head.reason = offset(response.reason.unwrap_or_default().as_bytes());
        head.content_length = None;
        // HTTP/1.0 closes unless it says otherwise.
        head.close = head.minor_version == 0;
        for field in response.headers.iter() {
            head.fields
                .push((offset(field.name.as_bytes()), offset(field.value)));
            if field.name.eq_ignore_ascii_case("content-length") {
                if head.content_length.is_some() {
                    return Err(ResponseError::BadContentLength);
                }
                head.content_length = Some(decimal(field.value)?);
            } else if field.name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(ResponseError::TransferEncoding);
            } else if field.name.eq_ignore_ascii_case("connection") {
                for token in field.value.split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        head.close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        head.close = false;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Where the head ends in `new`, which follows `earlier` (head bytes already looked at,
/// which held no end), checking the line endings on the way: every LF after a CR, every CR
/// before an LF. `Some(n)`: the first `n` bytes of `new` end the head.
fn head_end(earlier: &[u8], new: &[u8]) -> Result<Option<usize>, ResponseError> {
    const START: &[u8] = b"HTTP/";
    let start = earlier.iter().chain(new).take(START.len());
    if !start.zip(START).all(|(got, want)| got == want) {
        return Err(ResponseError::Syntax);
    }
    // The last four bytes seen, for the CR LF CR LF that ends the head.
    let mut last = [0u8; 4];
    for (slot, &byte) in last.iter_mut().rev().zip(earlier.iter().rev()) {
        *slot = byte;
    }
    for (at, &byte) in new.iter().enumerate() {
        let after_cr = last[3] == b'\r';
        if (byte == b'\n') != after_cr {
            return Err(ResponseError::LineEnding);
        }
        last = [last[1], last[2], last[3], byte];
        if &last == b"\r\n\r\n" {
            return Ok(Some(at + 1));
        }
    }
    Ok(None)
}

/// A `Content-Length` value: ASCII digits only, no sign, no list.
fn decimal(value: &[u8]) -> Result<u64, ResponseError> {
    let text = std::str::from_utf8(value).map_err(|_| ResponseError::BadContentLength)?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ResponseError::BadContentLength);
    }
    text.parse().map_err(|_| ResponseError::BadContentLength)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello";

    /// Feeds `bytes` in pieces of `size`; returns the body and whether it completed.
    fn feed_in_pieces(bytes: &[u8], size: usize) -> Result<(Vec<u8>, Head), ResponseError> {
        let mut reader = ResponseReader::new(Expect::Body);
        let mut body = Vec::new();
        for (n, piece) in bytes.chunks(size).enumerate() {
            let fed = reader.feed(piece)?;
            body.extend_from_slice(&piece[fed.body.clone()]);
            let last = (n + 1) * size >= bytes.len();
            assert_eq!(fed.complete, last, "complete only at the end");
            assert_eq!(fed.used, piece.len());
        }
        Ok((body, reader.head().expect("head").clone()))
    }

    #[test]
    fn any_split_gives_the_same_response() {
        for size in 1..=OK.len() {
            let (body, head) = feed_in_pieces(OK, size).expect("valid");
            assert_eq!(body, b"hello", "pieces of {size}");
            assert_eq!((head.status, head.reason().as_str()), (200, "OK"));
            assert_eq!((head.content_length, head.close), (Some(5), false));
            assert_eq!(head.len(), OK.len() - 5);
            assert_eq!(head.fields()[1], ("Connection".into(), "keep-alive".into()));
        }
    }

    #[test]
    fn bytes_after_the_end_are_left_for_the_next_response() {
        let mut two = OK.to_vec();
        two.extend_from_slice(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        let mut reader = ResponseReader::new(Expect::Body);
        let fed = reader.feed(&two).expect("first");
        assert!(fed.complete && fed.head_done);
        assert_eq!((fed.used, &two[fed.body]), (OK.len(), &b"hello"[..]));
        assert_eq!(reader.feed(b"more").expect("after the end").used, 0);
        reader.reset(Expect::Body);
        let fed = reader.feed(&two[OK.len()..]).expect("second");
        assert!(fed.complete);
        assert_eq!(reader.head().map(|head| head.status), Some(404));
    }

    #[test]
    fn bodiless_responses_end_with_their_head() {
        for (status, expect) in [
            ("200 OK", Expect::HeadOnly),
            ("204 No Content", Expect::Body),
            ("304 Not Modified", Expect::Body),
            ("100 Continue", Expect::Body),
        ] {
            let text = format!("HTTP/1.1 {status}\r\nContent-Length: 9\r\n\r\n");
            let mut reader = ResponseReader::new(expect);
            let fed = reader.feed(text.as_bytes()).expect(status);
            assert!(fed.complete, "{status}");
        }
    }

    #[test]
    fn http10_closes_unless_kept_alive() {
        let close = |text: &str| {
            let mut reader = ResponseReader::new(Expect::HeadOnly);
            reader.feed(text.as_bytes()).expect("valid");
            reader.head().expect("head").close
        };
        assert!(close("HTTP/1.0 200 OK\r\n\r\n"));
        assert!(!close("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n"));
        assert!(!close("HTTP/1.1 200 OK\r\n\r\n"));
        assert!(close("HTTP/1.1 200 OK\r\nConnection: x, close\r\n\r\n"));
    }

    #[test]
    fn refusals_table() {
        let too_long = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        let too_many = format!(
            "HTTP/1.1 200 OK\r\n{}\r\n",
            "X: 1\r\n".repeat(MAX_FIELDS + 1)
        );
        let table: [(&str, ResponseError); 12] = [
            (
                "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
                ResponseError::LineEnding,
            ),
            (
                "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
                ResponseError::LineEnding,
            ),
            ("HTTP/1.1 200 OK\r\n\n", ResponseError::LineEnding),
            ("\r\nHTTP/1.1 200 OK\r\n\r\n", ResponseError::Syntax),
            ("HTTX/1.1 200 OK\r\n\r\n", ResponseError::Syntax),
            ("HTTP/1.1 2000 OK\r\n\r\n", ResponseError::Syntax),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                ResponseError::TransferEncoding,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
                ResponseError::BadContentLength,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n",
                ResponseError::BadContentLength,
            ),
            ("HTTP/1.1 200 OK\r\n\r\n", ResponseError::NoContentLength),
            (&too_long, ResponseError::HeadTooLarge),
            (&too_many, ResponseError::TooManyFields),
        ];
        for (text, want) in table {
            // Whole, and a byte at a time: the verdict does not depend on the pieces.
            for size in [text.len(), 1] {
                let got = feed_in_pieces(text.as_bytes(), size).map(|_| ());
                assert_eq!(got, Err(want), "{text:?} in pieces of {size}");
            }
        }
    }
}
