//! Fuzzes `poolhttpd::fuzz::head`; the invariants are documented there.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| poolhttpd::fuzz::head(data));
