//! Character classes and small pieces of syntax shared by the request parser and the
//! header evaluators, so that neither depends on the other for them.

/// RFC 3986 `unreserved`: letters, digits, `-`, `.`, `_`, `~`.
pub fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 `sub-delims`.
pub fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// RFC 9110 token characters.
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// Strips optional whitespace (SP and HTAB) from both ends.
pub fn trim(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_and_trimming() {
        let table: [(u8, bool, bool, bool); 8] = [
            // byte, unreserved, sub-delim, tchar
            (b'a', true, false, true),
            (b'~', true, false, true),
            (b'!', false, true, true),
            (b'(', false, true, false),
            (b'^', false, false, true),
            (b'/', false, false, false),
            (b' ', false, false, false),
            (0x80, false, false, false),
        ];
        for (byte, unreserved, sub_delim, tchar) in table {
            assert_eq!(is_unreserved(byte), unreserved, "{byte:#x}");
            assert_eq!(is_sub_delim(byte), sub_delim, "{byte:#x}");
            assert_eq!(is_tchar(byte), tchar, "{byte:#x}");
        }
        for (raw, want) in [(" \tx y\t ", "x y"), ("", ""), ("  ", ""), ("a", "a")] {
            assert_eq!(trim(raw.as_bytes()), want.as_bytes(), "{raw:?}");
        }
    }
}
