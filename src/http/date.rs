//! The `Date` header value, formatted at most once per second per thread.
//!
//! Formatting an IMF-fixdate costs far more than reading the clock, and its value changes
//! once a second, so each worker keeps the last one it made.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate such as `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const HTTP_DATE_LEN: usize = 29;

/// One thread's cached `Date` value.
#[derive(Debug)]
pub struct DateCache {
    second: u64,
    text: [u8; HTTP_DATE_LEN],
}

impl Default for DateCache {
    fn default() -> Self {
        Self::new()
    }
}

impl DateCache {
    /// A cache that formats on first use.
    pub fn new() -> Self {
        DateCache {
            second: u64::MAX,
            text: [b' '; HTTP_DATE_LEN],
        }
    }

    /// The current date as an IMF-fixdate.
    pub fn now(&mut self) -> &[u8] {
        self.at(SystemTime::now())
    }

    /// The date of `when`, reformatted only if its second differs from the cached one.
    pub fn at(&mut self, when: SystemTime) -> &[u8] {
        let second = when
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        if second != self.second {
            let formatted = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(second));
            // IMF-fixdate has a fixed width for every year this server will see (1970–9999).
            if formatted.len() == HTTP_DATE_LEN {
                self.text.copy_from_slice(formatted.as_bytes());
                self.second = second;
            }
        }
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_imf_fixdate() {
        let table = [
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"),
            (1_675_822_501, "Wed, 08 Feb 2023 02:15:01 GMT"),
        ];
        let mut cache = DateCache::new();
        for (secs, text) in table {
            let when = UNIX_EPOCH + Duration::from_secs(secs);
            assert_eq!(cache.at(when), text.as_bytes());
        }
    }

    #[test]
    fn same_second_reuses_the_text() {
        let mut cache = DateCache::new();
        let base = UNIX_EPOCH + Duration::from_secs(784_111_777);
        let first = cache.at(base).to_vec();
        assert_eq!(cache.at(base + Duration::from_millis(999)), &first[..]);
        assert_ne!(cache.at(base + Duration::from_secs(1)), &first[..]);
    }
}
