//! Fuzzes `poolhttpd::fuzz::chunked`; the invariants are documented there.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| poolhttpd::fuzz::chunked(data));
