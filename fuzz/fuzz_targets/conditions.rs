//! Fuzzes `poolhttpd::fuzz::conditions`; the invariants are documented there.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| poolhttpd::fuzz::conditions(data));
