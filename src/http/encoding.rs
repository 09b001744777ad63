//! Content codings: which precompressed copy of a file a client's `Accept-Encoding` allows
//! (RFC 9110 §12.5.3).

use super::syntax::trim;

/// A content coding a file may be kept in beside itself, as `NAME.br` or `NAME.gz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Br,
    Gzip,
}

impl Coding {
    /// Every coding, best first: on equal weights, brotli's smaller files win.
    pub const ALL: [Coding; 2] = [Coding::Br, Coding::Gzip];

    /// The coding's name in `Content-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Gzip => "gzip",
        }
    }

    /// What the precompressed copy's name adds to the file's.
    pub fn suffix(self) -> &'static [u8] {
        match self {
            Coding::Br => b".br",
            Coding::Gzip => b".gz",
        }
    }

    /// The coding's place in [`Coding::ALL`].
    pub fn index(self) -> usize {
        match self {
            Coding::Br => 0,
            Coding::Gzip => 1,
        }
    }
}

/// A weight in thousandths, as `q=` gives it (RFC 9110 §12.4.2).
type Weight = u16;

const FULL: Weight = 1000;

/// Weights one `Accept-Encoding` gives, by name; `None` where it says nothing.
#[derive(Debug, Default)]
struct Weights {
    br: Option<Weight>,
    gzip: Option<Weight>,
    identity: Option<Weight>,
    any: Option<Weight>,
}

/// The coding to send, of those `available` (indexed as [`Coding::ALL`]), or `None` for
/// the file as it is. The highest weight wins; on a tie a coding beats the file as it is,
/// brotli beats gzip. The file as it is weighs only what `identity` or `*` say: a client
/// that names a coding at any weight prefers it to what it did not name. Without the
/// header, or with nothing acceptable, the file is sent as it is: the identity coding is
/// always an answer (RFC 9110 §12.5.3 lets a server send it even when excluded, rather
/// than 406).
pub fn choose(accept: Option<&[u8]>, available: [bool; 2]) -> Option<Coding> {
    let weights = weights(accept?);
    let identity = weights.identity.or(weights.any).unwrap_or(0);
    let mut best: Option<(Coding, Weight)> = None;
    for coding in Coding::ALL {
        if !available[coding.index()] {
            continue;
        }
        let named = match coding {
            Coding::Br => weights.br,
            Coding::Gzip => weights.gzip,
        };
        let weight = named.or(weights.any).unwrap_or(0);
        if weight > 0 && best.is_none_or(|(_, w)| weight > w) {
            best = Some((coding, weight));
        }
    }
    best.filter(|&(_, weight)| weight >= identity)
        .map(|(coding, _)| coding)
}

fn weights(value: &[u8]) -> Weights {
    let mut weights = Weights::default();
    for member in value.split(|&b| b == b',').map(trim) {
        let mut parts = member.split(|&b| b == b';').map(trim);
        let name = parts.next().unwrap_or_default();
        let mut weight = Some(FULL);
        for param in parts {
            weight = match param {
                [b'q' | b'Q', b'=', number @ ..] => weight.and(qvalue(number)),
                // `Accept-Encoding` defines no other parameter: a member with one is not
                // understood, and counts for nothing.
                _ => None,
            };
        }
        let Some(weight) = weight else {
            continue;
        };
        let slot = if name.eq_ignore_ascii_case(b"br") {
            &mut weights.br
        } else if name.eq_ignore_ascii_case(b"gzip") || name.eq_ignore_ascii_case(b"x-gzip") {
            &mut weights.gzip
        } else if name.eq_ignore_ascii_case(b"identity") {
            &mut weights.identity
        } else if name == b"*" {
            &mut weights.any
        } else {
            continue;
        };
        // Named twice: the lower weight, the more cautious reading.
        *slot = Some(slot.map_or(weight, |seen| seen.min(weight)));
    }
    weights
}

/// `0`, `0.5`, `1.000`, …: at most three decimals, never above 1.
fn qvalue(text: &[u8]) -> Option<Weight> {
    let (whole, fraction) = match text {
        [digit, b'.', fraction @ ..] => (*digit, fraction),
        [digit] => (*digit, &[][..]),
        _ => return None,
    };
    if fraction.len() > 3 || !fraction.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let thousandths = fraction
        .iter()
        .chain(std::iter::repeat(&b'0'))
        .take(3)
        .fold(0, |acc, &d| acc * 10 + Weight::from(d - b'0'));
    match whole {
        b'0' => Some(thousandths),
        b'1' if thousandths == 0 => Some(FULL),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: [bool; 2] = [true, true];
    const GZIP_ONLY: [bool; 2] = [false, true];
    const BR_ONLY: [bool; 2] = [true, false];
    const NEITHER: [bool; 2] = [false, false];

    #[test]
    fn codings_chosen() {
        use Coding::{Br, Gzip};
        #[rustfmt::skip]
        let table: [(Option<&str>, [bool; 2], Option<Coding>); 31] = [
            (None, BOTH, None),
            (Some(""), BOTH, None),
            (Some("identity"), BOTH, None),
            (Some("gzip"), BOTH, Some(Gzip)),
            (Some("br"), BOTH, Some(Br)),
            (Some("gzip, deflate, br, zstd"), BOTH, Some(Br)),
            (Some("gzip, deflate, br, zstd"), GZIP_ONLY, Some(Gzip)),
            (Some("gzip, deflate, br"), NEITHER, None),
            (Some("br"), GZIP_ONLY, None),
            (Some("GZIP"), BOTH, Some(Gzip)),
            (Some("x-gzip"), BOTH, Some(Gzip)),
            (Some("*"), BOTH, Some(Br)),
            (Some("*"), GZIP_ONLY, Some(Gzip)),
            // Weights decide; ties go to brotli, then to a coding over none.
            (Some("gzip;q=1, br;q=0.9"), BOTH, Some(Gzip)),
            (Some("gzip;q=0.5, br;q=0.5"), BOTH, Some(Br)),
            (Some("gzip ; q=0.8 , br ; Q=0.9"), BOTH, Some(Br)),
            (Some("gzip;q=0.5, identity;q=0.6"), BOTH, None),
            (Some("gzip;q=0.5, identity;q=0.5"), BOTH, Some(Gzip)),
            (Some("gzip;q=0.5"), BOTH, Some(Gzip)),
            (Some("*;q=0.3, gzip;q=0.2"), GZIP_ONLY, None),
            // q=0 excludes.
            (Some("br;q=0, gzip"), BOTH, Some(Gzip)),
            (Some("br;q=0"), BR_ONLY, None),
            (Some("*;q=0, gzip"), BOTH, Some(Gzip)),
            (Some("br, *;q=0"), BOTH, Some(Br)),
            (Some("gzip;q=0.000"), BOTH, None),
            (Some("gzip, gzip;q=0"), BOTH, None),
            (Some("*, br;q=0"), BOTH, Some(Gzip)),
            // Members we cannot read count for nothing.
            (Some("br;q=2, gzip;q=0.1"), BOTH, Some(Gzip)),
            (Some("br;q=0.5000, gzip;q=.5"), BOTH, None),
            (Some("br;level=9"), BOTH, None),
            (Some(",, ,br"), BOTH, Some(Br)),
        ];
        for (accept, available, want) in table {
            assert_eq!(
                choose(accept.map(str::as_bytes), available),
                want,
                "{accept:?} with {available:?}"
            );
        }
    }

    #[test]
    fn qvalues() {
        let table: [(&str, Option<Weight>); 12] = [
            ("0", Some(0)),
            ("1", Some(1000)),
            ("1.", Some(1000)),
            ("1.000", Some(1000)),
            ("0.5", Some(500)),
            ("0.05", Some(50)),
            ("0.123", Some(123)),
            ("1.001", None),
            ("0.1234", None),
            ("2", None),
            ("", None),
            ("0.x", None),
        ];
        for (text, want) in table {
            assert_eq!(qvalue(text.as_bytes()), want, "{text:?}");
        }
    }
}
