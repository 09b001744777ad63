//! The framing of a `multipart/byteranges` body (RFC 9110 §14.6): a part for each range,
//! each opened by the boundary and its own `Content-Type` and `Content-Range`, and the
//! closing boundary after the last.

use std::hash::BuildHasher;
use std::io::Write;

use super::response::needs_charset;

/// Bytes of a boundary: `poolhttpd-` and 16 hex digits.
const BOUNDARY_LEN: usize = 26;

/// How a multipart body of one representation is framed.
#[derive(Debug, Clone, Copy)]
pub struct Multipart<'a> {
    boundary: [u8; BOUNDARY_LEN],
    /// The representation's media type, repeated in every part.
    media: &'a str,
    /// The representation's length, for `Content-Range`.
    len: u64,
}

impl<'a> Multipart<'a> {
    /// Framing for ranges of a representation of `len` bytes of type `media`, with a
    /// boundary drawn afresh: one that the content could not have been written to contain.
    pub fn new(media: &'a str, len: u64) -> Multipart<'a> {
        let random = std::collections::hash_map::RandomState::new().hash_one(len);
        let mut boundary = [0u8; BOUNDARY_LEN];
        let _ = write!(&mut boundary[..], "poolhttpd-{random:016x}");
        Multipart {
            boundary,
            media,
            len,
        }
    }

    /// The boundary, as the `Content-Type` names it.
    pub fn boundary(&self) -> &str {
        // Written from ASCII alone just above.
        std::str::from_utf8(&self.boundary).unwrap_or("poolhttpd")
    }

    /// Appends what comes before the bytes of the part for `start..end` (end exclusive):
    /// the line break that ends the previous part unless `first`, the boundary, and the
    /// part's head.
    pub fn part_head(&self, first: bool, (start, end): (u64, u64), out: &mut Vec<u8>) {
        if !first {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"--");
        out.extend_from_slice(&self.boundary);
        out.extend_from_slice(b"\r\nContent-Type: ");
        out.extend_from_slice(self.media.as_bytes());
        if needs_charset(self.media) {
            out.extend_from_slice(b"; charset=utf-8");
        }
        let _ = write!(
            out,
            "\r\nContent-Range: bytes {start}-{}/{}\r\n\r\n",
            end - 1,
            self.len
        );
    }

    /// Appends what comes after the last part: its line break and the closing boundary.
    pub fn close(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"\r\n--");
        out.extend_from_slice(&self.boundary);
        out.extend_from_slice(b"--\r\n");
    }

    /// The whole body's length for these ranges.
    pub fn body_len(&self, ranges: &[(u64, u64)]) -> u64 {
        let mut framing = Vec::with_capacity(256);
        let mut len = 0;
        for (index, &range) in ranges.iter().enumerate() {
            framing.clear();
            self.part_head(index == 0, range, &mut framing);
            len += framing.len() as u64 + (range.1 - range.0);
        }
        framing.clear();
        self.close(&mut framing);
        len + framing.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_framed_as_rfc_9110_says() {
        let multipart = Multipart::new("text/plain", 10);
        let b = multipart.boundary().to_string();
        assert!(
            b.starts_with("poolhttpd-") && b.len() == BOUNDARY_LEN,
            "{b}"
        );
        let content = b"0123456789";
        let ranges = [(0, 1), (8, 10)];
        let mut body = Vec::new();
        for (index, &(start, end)) in ranges.iter().enumerate() {
            multipart.part_head(index == 0, (start, end), &mut body);
            body.extend_from_slice(&content[start as usize..end as usize]);
        }
        multipart.close(&mut body);
        let want = format!(
            "--{b}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 0-0/10\r\n\r\n0\
             \r\n--{b}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 8-9/10\r\n\r\n89\
             \r\n--{b}--\r\n"
        );
        assert_eq!(String::from_utf8(body.clone()).unwrap(), want);
        assert_eq!(multipart.body_len(&ranges), body.len() as u64);
        assert_ne!(
            Multipart::new("text/plain", 10).boundary(),
            b,
            "boundaries repeat"
        );
    }
}
