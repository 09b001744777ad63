//! Request bodies, read only to be discarded, so that the next request on the connection
//! starts where this one ends (RFC 9112 §6, §7.1).
//!
//! The chunked decoder is strict: every line ends in CRLF, sizes are hex without sign or
//! spaces, and extensions and trailers are skipped but checked for control characters. A
//! lenient decoder is how request smuggling starts.

use super::request::BodyFraming;

/// Largest body we read and discard. A static-file server has no use for a body; this is
/// room for a client that sends a small one anyway, while anything larger gets 413.
pub const MAX_BODY: u64 = 1024 * 1024;

/// Bytes of chunk framing (size lines, extensions, trailers) allowed besides the data, so
/// that a stream of empty extensions cannot keep a connection busy forever.
pub const MAX_FRAMING: u64 = 64 * 1024;

/// Hex digits in a chunk size; 15 already exceed any body we accept.
const MAX_SIZE_DIGITS: u8 = 15;

/// Why a body cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// More than [`MAX_BODY`] bytes of data, or [`MAX_FRAMING`] of framing.
    TooLarge,
    /// Chunked framing that breaks the grammar.
    Malformed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunked {
    /// Reading a chunk size; `digits` so far.
    Size {
        value: u64,
        digits: u8,
    },
    /// Skipping a chunk extension.
    Extension {
        size: u64,
    },
    /// After the CR that ends a size line.
    SizeLf {
        size: u64,
    },
    /// Inside chunk data.
    Data {
        left: u64,
    },
    /// After chunk data: CR, then LF.
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer field line.
    TrailerLine,
    TrailerLineLf,
    /// After the CR of the final empty line.
    EndLf,
    Done,
}

/// Reads a body announced by its framing, counting against the limits.
#[derive(Debug, Clone, Copy)]
pub struct BodyReader(Reader);

#[derive(Debug, Clone, Copy)]
enum Reader {
    Length {
        left: u64,
    },
    Chunked {
        state: Chunked,
        data: u64,
        framing: u64,
    },
}

impl BodyReader {
    /// A reader for `framing`; a `Content-Length` over the limit is refused at once.
    pub fn new(framing: BodyFraming) -> Result<BodyReader, BodyError> {
        match framing {
            BodyFraming::None => Ok(BodyReader(Reader::Length { left: 0 })),
            BodyFraming::Length(len) if len > MAX_BODY => Err(BodyError::TooLarge),
            BodyFraming::Length(len) => Ok(BodyReader(Reader::Length { left: len })),
            BodyFraming::Chunked => Ok(BodyReader(Reader::Chunked {
                state: Chunked::Size {
                    value: 0,
                    digits: 0,
                },
                data: 0,
                framing: 0,
            })),
        }
    }

    /// Consumes body bytes from the front of `input`. Returns how many belonged to the body
    /// and whether the body is now complete; bytes after a complete body are not touched.
    pub fn consume(&mut self, input: &[u8]) -> Result<(usize, bool), BodyError> {
        match &mut self.0 {
            Reader::Length { left } => {
                let take = (*left).min(input.len() as u64);
                *left -= take;
                // `take` is at most input.len(), so it fits in usize.
                Ok((take as usize, *left == 0))
            }
            Reader::Chunked {
                state,
                data,
                framing,
            } => {
                let mut used = 0;
                while used < input.len() && *state != Chunked::Done {
                    if let Chunked::Data { left } = *state {
                        let take = left.min((input.len() - used) as u64);
                        used += take as usize;
                        *data += take;
                        *state = if take == left {
                            Chunked::DataCr
                        } else {
                            Chunked::Data { left: left - take }
                        };
                        continue;
                    }
                    *state = step(*state, input[used])?;
                    used += 1;
                    *framing += 1;
                    if *framing > MAX_FRAMING {
                        return Err(BodyError::TooLarge);
                    }
                    if let Chunked::Data { left } = *state
                        && *data + left > MAX_BODY
                    {
                        return Err(BodyError::TooLarge);
                    }
                }
                Ok((used, *state == Chunked::Done))
            }
        }
    }
}

/// One byte of chunked framing.
fn step(state: Chunked, byte: u8) -> Result<Chunked, BodyError> {
    use Chunked::*;
    let next = match (state, byte) {
        (Size { value, digits }, _) if byte.is_ascii_hexdigit() => {
            if digits == MAX_SIZE_DIGITS {
                return Err(BodyError::TooLarge);
            }
            let digit = u64::from(char::from(byte).to_digit(16).unwrap_or(0));
            Size {
                value: value << 4 | digit,
                digits: digits + 1,
            }
        }
        (Size { value, digits }, b';' | b' ' | b'\t') if digits > 0 => Extension { size: value },
        (Size { value, digits }, b'\r') if digits > 0 => SizeLf { size: value },
        (Extension { size }, b'\r') => SizeLf { size },
        (Extension { size }, _) if is_field_byte(byte) => Extension { size },
        (SizeLf { size: 0 }, b'\n') => TrailerStart,
        (SizeLf { size }, b'\n') => Data { left: size },
        (DataCr, b'\r') => DataLf,
        (DataLf, b'\n') => Size {
            value: 0,
            digits: 0,
        },
        (TrailerStart, b'\r') => EndLf,
        (TrailerStart | TrailerLine, _) if is_field_byte(byte) => TrailerLine,
        (TrailerLine, b'\r') => TrailerLineLf,
        (TrailerLineLf, b'\n') => TrailerStart,
        (EndLf, b'\n') => Done,
        _ => return Err(BodyError::Malformed),
    };
    Ok(next)
}

/// Bytes allowed inside an extension or a trailer line: visible ASCII, space, tab and
/// obs-text; never a control character or a bare LF.
fn is_field_byte(byte: u8) -> bool {
    byte == b'\t' || (b' '..=b'~').contains(&byte) || byte >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `consume` answers: bytes used and whether the body is complete.
    type Consumed = Result<(usize, bool), BodyError>;

    /// Feeds `input` whole and one byte at a time; both must agree.
    fn read(framing: BodyFraming, input: &[u8]) -> Consumed {
        let mut whole = BodyReader::new(framing)?;
        let at_once = whole.consume(input);
        let mut bytewise = BodyReader::new(framing)?;
        let mut used = 0;
        let mut one_by_one = Ok((0, false));
        for byte in input.chunks(1) {
            match bytewise.consume(byte) {
                Ok((n, done)) => {
                    used += n;
                    one_by_one = Ok((used, done));
                    if done {
                        break;
                    }
                }
                Err(err) => {
                    one_by_one = Err(err);
                    break;
                }
            }
        }
        assert_eq!(at_once, one_by_one, "{:?}", String::from_utf8_lossy(input));
        at_once
    }

    #[test]
    fn content_length_bodies() {
        assert_eq!(read(BodyFraming::Length(5), b"helloGET"), Ok((5, true)));
        assert_eq!(read(BodyFraming::Length(5), b"hel"), Ok((3, false)));
        assert_eq!(
            BodyReader::new(BodyFraming::Length(MAX_BODY + 1)).err(),
            Some(BodyError::TooLarge)
        );
    }

    #[test]
    fn chunked_bodies() {
        let chunked = BodyFraming::Chunked;
        let table: [(&[u8], Consumed); 14] = [
            (b"0\r\n\r\n", Ok((5, true))),
            (b"5\r\nhello\r\n0\r\n\r\nGET", Ok((15, true))),
            (b"5;name=value\r\nhello\r\n0\r\n\r\n", Ok((26, true))),
            (
                b"A\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n",
                Ok((34, true)),
            ),
            (b"000\r\n\r\n", Ok((7, true))),
            (b"5\r\nhel", Ok((6, false))),
            (b"5\nhello\r\n0\r\n\r\n", Err(BodyError::Malformed)),
            (b"5\r\nhello\n0\r\n\r\n", Err(BodyError::Malformed)),
            (b"5\r\nhelloX\r\n", Err(BodyError::Malformed)),
            (b"-5\r\nhello\r\n", Err(BodyError::Malformed)),
            (b"\r\n", Err(BodyError::Malformed)),
            (b"0x5\r\nhello\r\n", Err(BodyError::Malformed)),
            (b"5;a\x01\r\nhello\r\n", Err(BodyError::Malformed)),
            (b"fffffffffffffffff\r\n", Err(BodyError::TooLarge)),
        ];
        for (input, want) in table {
            assert_eq!(
                read(chunked, input),
                want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn chunked_limits() {
        let over = format!("{:x}\r\n", MAX_BODY + 1);
        assert_eq!(
            read(BodyFraming::Chunked, over.as_bytes()),
            Err(BodyError::TooLarge)
        );
        let endless = "1;".to_string() + &"x".repeat(MAX_FRAMING as usize);
        assert_eq!(
            read(BodyFraming::Chunked, endless.as_bytes()),
            Err(BodyError::TooLarge)
        );
    }
}
