//! Request heads: parse with httparse, then validate what RFC 9112 asks a server to check.
//!
//! Parsing never allocates: fields are slices of the connection's read buffer, and only the
//! headers the server acts on are kept. An incomplete head is `Parsed::Partial`, never an
//! error, so a connection can feed bytes as they arrive.

use super::conditional::Conditions;
use super::status::Status;
use super::syntax::{is_sub_delim, is_tchar, is_unreserved, trim};

/// Longest request line we accept. Real browsers stay well below 8 KiB; longer lines are
/// almost always scanners or abuse, and nginx uses the same default.
pub const MAX_REQUEST_LINE: usize = 8 * 1024;

/// Largest request head (request line plus fields). Bounds the read buffer every connection
/// may hold while a head is incomplete.
pub const MAX_HEAD: usize = 16 * 1024;

/// Most header fields in one request. Keeps httparse's field array on the stack small
/// enough to zero per request; browsers send about 15.
pub const MAX_FIELDS: usize = 100;

/// The request methods we know. Unknown tokens are `Method::Unknown` (501).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Options,
    Post,
    Put,
    Delete,
    Patch,
    Trace,
    Connect,
    Unknown,
}

impl Method {
    fn from_token(token: &str) -> Method {
        // Methods are case-sensitive (RFC 9110 §9.1).
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "OPTIONS" => Method::Options,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "TRACE" => Method::Trace,
            "CONNECT" => Method::Connect,
            _ => Method::Unknown,
        }
    }
}

/// The protocol versions we speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// How the request announces its body (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    None,
    /// `Content-Length: n` with n > 0.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// What the client asked for the connection after this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    KeepAlive,
    Close,
}

/// A complete, syntactically valid request head. Slices borrow the read buffer.
#[derive(Debug, Clone, Copy)]
pub struct Request<'b> {
    pub method: Method,
    /// The method token as sent, for logs.
    pub method_token: &'b str,
    pub target: &'b str,
    pub version: Version,
    pub persistence: Persistence,
    pub body: BodyFraming,
    pub conditions: Conditions<'b>,
    pub range: Option<&'b [u8]>,
    pub if_range: Option<&'b [u8]>,
    /// `Accept-Encoding`; see [`crate::http::encoding::choose`].
    pub accept_encoding: Option<&'b [u8]>,
    pub expect_continue: bool,
    /// `User-Agent` and `Referer`, for the log.
    pub user_agent: Option<&'b [u8]>,
    pub referer: Option<&'b [u8]>,
    /// Bytes of the buffer this head occupied.
    pub head_len: usize,
}

/// The result of looking at the front of a read buffer.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "lives on the stack for one call; boxing would allocate per request"
)]
pub enum Parsed<'b> {
    /// More bytes are needed.
    Partial,
    /// One request head.
    Complete(Request<'b>),
}

/// Why a request head was refused. Each variant has one status and one fixed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    Malformed,
    RequestLineTooLong,
    HeadTooLarge,
    TooManyFields,
    UnsupportedVersion,
    MissingHost,
    DuplicateHost,
    InvalidHost,
    InvalidContentLength,
    LengthWithTransferEncoding,
    TransferEncodingOnHttp10,
    InvalidTransferEncoding,
    UnknownTransferCoding,
    /// The body is larger than we read (see `body::MAX_BODY`).
    BodyTooLarge,
    /// The chunked framing of the body is broken.
    MalformedBody,
}

impl RequestError {
    /// The status that answers this error.
    pub const fn status(self) -> Status {
        match self {
            RequestError::RequestLineTooLong => Status::UriTooLong,
            RequestError::HeadTooLarge | RequestError::TooManyFields => {
                Status::HeaderFieldsTooLarge
            }
            RequestError::UnsupportedVersion => Status::VersionNotSupported,
            RequestError::UnknownTransferCoding => Status::NotImplemented,
            RequestError::BodyTooLarge => Status::ContentTooLarge,
            _ => Status::BadRequest,
        }
    }

    /// A short description for the log.
    pub const fn message(self) -> &'static str {
        match self {
            RequestError::Malformed => "malformed request head",
            RequestError::RequestLineTooLong => "request line too long",
            RequestError::HeadTooLarge => "request head too large",
            RequestError::TooManyFields => "too many header fields",
            RequestError::UnsupportedVersion => "unsupported HTTP version",
            RequestError::MissingHost => "missing Host",
            RequestError::DuplicateHost => "more than one Host",
            RequestError::InvalidHost => "invalid Host",
            RequestError::InvalidContentLength => "invalid Content-Length",
            RequestError::LengthWithTransferEncoding => "Content-Length with Transfer-Encoding",
            RequestError::TransferEncodingOnHttp10 => "Transfer-Encoding in HTTP/1.0",
            RequestError::InvalidTransferEncoding => "invalid Transfer-Encoding",
            RequestError::UnknownTransferCoding => "unknown transfer coding",
            RequestError::BodyTooLarge => "request body too large",
            RequestError::MalformedBody => "malformed chunked body",
        }
    }
}

/// Parses the request head at the front of `buf`.
pub fn parse(buf: &[u8]) -> Result<Parsed<'_>, RequestError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut req = httparse::Request::new(&mut fields);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            check_partial(buf)?;
            return Ok(Parsed::Partial);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(RequestError::TooManyFields),
        Err(httparse::Error::Version) => return Err(oversized(buf).unwrap_or(version_error(buf))),
        Err(_) => return Err(oversized(buf).unwrap_or(RequestError::Malformed)),
    };
    // Strictly less, so that a complete head always leaves room in the read buffer for
    // at least one byte of its body.
    if head_len >= MAX_HEAD {
        return Err(RequestError::HeadTooLarge);
    }
    if request_line_len(buf).is_none_or(|len| len > MAX_REQUEST_LINE) {
        return Err(RequestError::RequestLineTooLong);
    }
    let (Some(method_token), Some(target), Some(minor)) = (req.method, req.path, req.version)
    else {
        return Err(RequestError::Malformed);
    };
    let version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    let mut request = Request {
        method: Method::from_token(method_token),
        method_token,
        target,
        version,
        persistence: match version {
            Version::Http10 => Persistence::Close,
            Version::Http11 => Persistence::KeepAlive,
        },
        body: BodyFraming::None,
        conditions: Conditions::default(),
        range: None,
        if_range: None,
        accept_encoding: None,
        expect_continue: false,
        user_agent: None,
        referer: None,
        head_len,
    };
    let mut hosts = 0usize;
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding: Option<&[u8]> = None;
    for field in req.headers.iter() {
        let name = field.name;
        let value = trim(field.value);
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
            if !valid_host(value) {
                return Err(RequestError::InvalidHost);
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(|&b| b == b',').map(trim) {
                if token.eq_ignore_ascii_case(b"close") {
                    request.persistence = Persistence::Close;
                } else if token.eq_ignore_ascii_case(b"keep-alive")
                    && request.version == Version::Http10
                {
                    request.persistence = Persistence::KeepAlive;
                }
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            // Repeated or listed values are allowed only when they agree (RFC 9112 §6.3).
            for item in value.split(|&b| b == b',').map(trim) {
                let length = parse_length(item).ok_or(RequestError::InvalidContentLength)?;
                if content_length.is_some_and(|seen| seen != length) {
                    return Err(RequestError::InvalidContentLength);
                }
                content_length = Some(length);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if transfer_encoding.is_some() {
                // Two fields form one list; only a lone `chunked` is accepted anyway.
                return Err(RequestError::UnknownTransferCoding);
            }
            transfer_encoding = Some(value);
        } else if name.eq_ignore_ascii_case("if-none-match") {
            request.conditions.if_none_match = Some(value);
        } else if name.eq_ignore_ascii_case("if-modified-since") {
            request.conditions.if_modified_since = Some(value);
        } else if name.eq_ignore_ascii_case("if-match") {
            request.conditions.if_match = Some(value);
        } else if name.eq_ignore_ascii_case("if-unmodified-since") {
            request.conditions.if_unmodified_since = Some(value);
        } else if name.eq_ignore_ascii_case("range") {
            request.range = Some(value);
        } else if name.eq_ignore_ascii_case("if-range") {
            request.if_range = Some(value);
        } else if name.eq_ignore_ascii_case("accept-encoding") {
            // Two fields form one list, which would have to be joined to be read; an empty
            // list asks for the identity coding, which is always acceptable.
            request.accept_encoding = match request.accept_encoding {
                None => Some(value),
                Some(_) => Some(b""),
            };
        } else if name.eq_ignore_ascii_case("user-agent") {
            request.user_agent = Some(value);
        } else if name.eq_ignore_ascii_case("referer") {
            request.referer = Some(value);
        } else if name.eq_ignore_ascii_case("expect") && value.eq_ignore_ascii_case(b"100-continue")
        {
            request.expect_continue = true;
        }
    }
    match (hosts, version) {
        (0, Version::Http11) => return Err(RequestError::MissingHost),
        (2.., _) => return Err(RequestError::DuplicateHost),
        _ => {}
    }
    request.body = match (transfer_encoding, content_length) {
        (Some(_), Some(_)) => return Err(RequestError::LengthWithTransferEncoding),
        (Some(_), None) if version == Version::Http10 => {
            return Err(RequestError::TransferEncodingOnHttp10);
        }
        (Some(codings), None) => transfer_framing(codings)?,
        (None, Some(0) | None) => BodyFraming::None,
        (None, Some(length)) => BodyFraming::Length(length),
    };
    Ok(Parsed::Complete(request))
}

/// Refuses a partial head that has already outgrown a limit.
fn check_partial(buf: &[u8]) -> Result<(), RequestError> {
    match oversized(buf) {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Which limit, if any, an unfinished or unparsable head has passed.
fn oversized(buf: &[u8]) -> Option<RequestError> {
    match request_line_len(buf) {
        None if unfinished_line_len(buf) > MAX_REQUEST_LINE => {
            Some(RequestError::RequestLineTooLong)
        }
        Some(len) if len > MAX_REQUEST_LINE => Some(RequestError::RequestLineTooLong),
        _ if buf.len() >= MAX_HEAD => Some(RequestError::HeadTooLarge),
        _ => None,
    }
}

/// Length of the first non-empty line, without its line ending, if it has ended.
fn request_line_len(buf: &[u8]) -> Option<usize> {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let line = &buf[start..];
    let end = line.iter().position(|&b| b == b'\n')?;
    Some(if end > 0 && line[end - 1] == b'\r' {
        end - 1
    } else {
        end
    })
}

/// Length so far of a first non-empty line that has not ended. Empty lines before it do
/// not count, nor does a final CR, which may be the start of its CRLF: the same line
/// counts the same whether or not its line ending has arrived.
fn unfinished_line_len(buf: &[u8]) -> usize {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let line = &buf[start..];
    line.len() - usize::from(line.ends_with(b"\r"))
}

/// httparse reports any bad version token the same way; only a well-formed `HTTP/x.y` that
/// we do not speak earns 505, anything else is a malformed request line.
fn version_error(buf: &[u8]) -> RequestError {
    let line_end = request_line_len(buf).unwrap_or(buf.len().min(MAX_REQUEST_LINE));
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(0);
    let line = &buf[start..(start + line_end).min(buf.len())];
    let version = line.rsplit(|&b| b == b' ').next().unwrap_or(b"");
    match version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            RequestError::UnsupportedVersion
        }
        [b'H', b'T', b'T', b'P', b'/', major] if major.is_ascii_digit() => {
            RequestError::UnsupportedVersion
        }
        _ => RequestError::Malformed,
    }
}

/// The framing of a body sent with `Transfer-Encoding` (RFC 9112 §6.1).
fn transfer_framing(codings: &[u8]) -> Result<BodyFraming, RequestError> {
    let mut items = codings.split(|&b| b == b',').map(trim);
    let last = items
        .next_back()
        .ok_or(RequestError::InvalidTransferEncoding)?;
    if items.next().is_some() {
        // A coding applied before chunked (gzip, …) would have to be decoded to discard
        // the body safely; we implement none of them.
        return Err(RequestError::UnknownTransferCoding);
    }
    if last.eq_ignore_ascii_case(b"chunked") {
        Ok(BodyFraming::Chunked)
    } else if last.is_empty() || !last.iter().all(|&b| is_tchar(b)) {
        Err(RequestError::InvalidTransferEncoding)
    } else {
        Err(RequestError::UnknownTransferCoding)
    }
}

/// A decimal Content-Length: digits only, no sign, no overflow.
fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
    })
}

/// `Host = uri-host [ ":" port ]`, checked by character class (RFC 9110 §7.2, RFC 3986).
/// An empty value is allowed: a client must send one when the target has no authority.
fn valid_host(value: &[u8]) -> bool {
    let (host, port) = match value.first() {
        Some(b'[') => match value.iter().position(|&b| b == b']') {
            Some(close) => {
                let literal = &value[1..close];
                let ok = !literal.is_empty()
                    && literal
                        .iter()
                        .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
                if !ok {
                    return false;
                }
                match &value[close + 1..] {
                    [] => return true,
                    [b':', port @ ..] => (&value[..0], port),
                    _ => return false,
                }
            }
            None => return false,
        },
        _ => match value.iter().rposition(|&b| b == b':') {
            Some(colon) => (&value[..colon], &value[colon + 1..]),
            None => (value, &value[value.len()..]),
        },
    };
    let host_ok = host
        .iter()
        .all(|&b| is_unreserved(b) || is_sub_delim(b) || b == b'%');
    let port_ok = port.len() <= 5 && port.iter().all(u8::is_ascii_digit);
    host_ok && port_ok && !(value.last() == Some(&b':') && host.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(raw: &str) -> Request<'_> {
        match parse(raw.as_bytes()) {
            Ok(Parsed::Complete(req)) => req,
            other => panic!("{raw:?} gave {other:?}"),
        }
    }

    fn refused(raw: &[u8]) -> RequestError {
        match parse(raw) {
            Err(error) => error,
            other => panic!("{:?} gave {other:?}", String::from_utf8_lossy(raw)),
        }
    }

    const VALID: [&str; 6] = [
        "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "HEAD /index.html HTTP/1.1\r\nHost: localhost:8080\r\nAccept: */*\r\n\r\n",
        "GET /a%20b HTTP/1.0\r\n\r\n",
        "GET http://localhost/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
        "GET / HTTP/1.1\nHost: x\n\n",
    ];

    #[test]
    fn every_valid_head_stays_partial_until_its_last_byte() {
        for raw in VALID {
            let bytes = raw.as_bytes();
            for end in 0..bytes.len() {
                match parse(&bytes[..end]) {
                    Ok(Parsed::Partial) => {}
                    other => panic!("{raw:?} cut at {end} gave {other:?}"),
                }
            }
            assert_eq!(complete(raw).head_len, bytes.len(), "{raw:?}");
        }
    }

    /// A request line of exactly the limit is read, however its bytes arrive: cut before
    /// its CR, between CR and LF, or after a few empty lines. One byte more is 414 at every
    /// cut past the limit. The fuzzer found the CR case: the CR was counted as part of
    /// the line until the LF came.
    #[test]
    fn the_request_line_limit_is_the_same_at_every_cut() {
        let line_at = |len: usize| {
            let fixed = "GET / HTTP/1.1".len();
            format!("GET /{} HTTP/1.1", "a".repeat(len - fixed))
        };
        let table = [
            (String::new(), "\r\n", MAX_REQUEST_LINE, true),
            (String::new(), "\n", MAX_REQUEST_LINE, true),
            ("\r\n\r\n".to_string(), "\r\n", MAX_REQUEST_LINE, true),
            (String::new(), "\r\n", MAX_REQUEST_LINE + 1, false),
            ("\n".to_string(), "\n", MAX_REQUEST_LINE + 1, false),
        ];
        for (before, ending, len, fits) in table {
            let raw = format!("{before}{}{ending}Host: a\r\n\r\n", line_at(len));
            let bytes = raw.as_bytes();
            let line_end = before.len() + len;
            for cut in line_end - 1..=line_end + ending.len() {
                let got = parse(&bytes[..cut]);
                let refused = matches!(got, Err(RequestError::RequestLineTooLong));
                let over = !fits && cut > before.len() + MAX_REQUEST_LINE;
                assert_eq!(
                    refused, over,
                    "{len} bytes after {before:?}, cut at {cut}: {got:?}"
                );
            }
            match parse(bytes) {
                Ok(Parsed::Complete(_)) => assert!(fits, "{len} bytes read"),
                Err(RequestError::RequestLineTooLong) => assert!(!fits, "{len} bytes refused"),
                other => panic!("{len} bytes after {before:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn fields_are_read() {
        let req = complete(
            "GET /x?y HTTP/1.1\r\nHost: a\r\nIf-None-Match: \"1\"\r\nRange: bytes=0-1\r\n\r\n",
        );
        assert_eq!(req.method, Method::Get);
        assert_eq!(req.target, "/x?y");
        assert_eq!(req.version, Version::Http11);
        assert_eq!(req.persistence, Persistence::KeepAlive);
        assert_eq!(req.conditions.if_none_match, Some(&b"\"1\""[..]));
        assert_eq!(req.range, Some(&b"bytes=0-1"[..]));
        assert_eq!(req.body, BodyFraming::None);
    }

    #[test]
    fn persistence_follows_version_and_connection() {
        let table = [
            ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", Persistence::KeepAlive),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                Persistence::Close,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nConnection: x, Close\r\n\r\n",
                Persistence::Close,
            ),
            ("GET / HTTP/1.0\r\n\r\n", Persistence::Close),
            (
                "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                Persistence::KeepAlive,
            ),
            (
                "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
                Persistence::KeepAlive,
            ),
        ];
        for (raw, want) in table {
            assert_eq!(complete(raw).persistence, want, "{raw:?}");
        }
    }

    #[test]
    fn methods_are_classified() {
        let table = [
            ("GET", Method::Get),
            ("HEAD", Method::Head),
            ("OPTIONS", Method::Options),
            ("POST", Method::Post),
            ("DELETE", Method::Delete),
            ("CONNECT", Method::Connect),
            ("get", Method::Unknown),
            ("BREW", Method::Unknown),
        ];
        for (token, want) in table {
            let raw = format!("{token} / HTTP/1.1\r\nHost: a\r\n\r\n");
            assert_eq!(complete(&raw).method, want, "{token}");
        }
    }

    #[test]
    fn body_framing() {
        let table = [
            ("Content-Length: 0\r\n", BodyFraming::None),
            ("Content-Length: 12\r\n", BodyFraming::Length(12)),
            ("Content-Length: 5, 5\r\n", BodyFraming::Length(5)),
            (
                "Content-Length: 5\r\nContent-Length: 5\r\n",
                BodyFraming::Length(5),
            ),
            ("Transfer-Encoding: chunked\r\n", BodyFraming::Chunked),
            ("Transfer-Encoding: Chunked\r\n", BodyFraming::Chunked),
        ];
        for (fields, want) in table {
            let raw = format!("POST / HTTP/1.1\r\nHost: a\r\n{fields}\r\n");
            assert_eq!(complete(&raw).body, want, "{fields:?}");
        }
    }

    #[test]
    fn bad_heads_are_refused_with_their_status() {
        let long_target = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(9000));
        let long_field = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
            "b".repeat(17000)
        );
        let many_fields = format!(
            "GET / HTTP/1.1\r\nHost: a\r\n{}\r\n",
            "X: y\r\n".repeat(101)
        );
        let unfinished_line = "GET /".to_string() + &"c".repeat(9000);
        let table: Vec<(&[u8], RequestError)> = vec![
            (b"GET / HTTP/1.1\r\n\r\n", RequestError::MissingHost),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", RequestError::DuplicateHost),
            (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", RequestError::InvalidHost),
            (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", RequestError::InvalidHost),
            (b"GET / HTTP/1.1\r\nHost: a:80x\r\n\r\n", RequestError::InvalidHost),
            (b"GET / HTTP/1.1\r\nHost: [zz]\r\n\r\n", RequestError::InvalidHost),
            (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", RequestError::UnsupportedVersion),
            (b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", RequestError::UnsupportedVersion),
            (b"GET / HTTP/3\r\nHost: a\r\n\r\n", RequestError::UnsupportedVersion),
            (b"GET / FOO/1.1\r\nHost: a\r\n\r\n", RequestError::Malformed),
            (b"GET /\r\n\r\n", RequestError::Malformed),
            (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", RequestError::Malformed),
            (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", RequestError::Malformed),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", RequestError::Malformed),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX\x7f: y\r\n\r\n", RequestError::Malformed),
            (b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", RequestError::Malformed),
            (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", RequestError::Malformed),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", RequestError::InvalidContentLength),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\n", RequestError::InvalidContentLength),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", RequestError::InvalidContentLength),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", RequestError::LengthWithTransferEncoding),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", RequestError::TransferEncodingOnHttp10),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", RequestError::UnknownTransferCoding),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", RequestError::UnknownTransferCoding),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, x y\r\n\r\n", RequestError::UnknownTransferCoding),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"x\"\r\n\r\n", RequestError::InvalidTransferEncoding),
            (long_target.as_bytes(), RequestError::RequestLineTooLong),
            (unfinished_line.as_bytes(), RequestError::RequestLineTooLong),
            (long_field.as_bytes(), RequestError::HeadTooLarge),
            (many_fields.as_bytes(), RequestError::TooManyFields),
        ];
        for (raw, want) in table {
            assert_eq!(refused(raw), want, "{:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn errors_map_to_statuses() {
        let table = [
            (RequestError::Malformed, Status::BadRequest),
            (RequestError::RequestLineTooLong, Status::UriTooLong),
            (RequestError::HeadTooLarge, Status::HeaderFieldsTooLarge),
            (RequestError::TooManyFields, Status::HeaderFieldsTooLarge),
            (
                RequestError::UnsupportedVersion,
                Status::VersionNotSupported,
            ),
            (RequestError::UnknownTransferCoding, Status::NotImplemented),
            (RequestError::MissingHost, Status::BadRequest),
        ];
        for (error, status) in table {
            assert_eq!(error.status(), status, "{error:?}");
            assert!(!error.message().is_empty());
        }
    }

    #[test]
    fn valid_hosts() {
        let table: [(&[u8], bool); 12] = [
            (b"localhost", true),
            (b"localhost:8080", true),
            (b"127.0.0.1:80", true),
            (b"[::1]", true),
            (b"[::1]:8080", true),
            (b"", true),
            (b"a b", false),
            (b"a/b", false),
            (b"a:123456", false),
            (b"[::1", false),
            (b"[::1]x", false),
            (b"a@b", false),
        ];
        for (host, ok) in table {
            assert_eq!(valid_host(host), ok, "{:?}", String::from_utf8_lossy(host));
        }
    }
}
