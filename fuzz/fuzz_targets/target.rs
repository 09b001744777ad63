//! Fuzzes `poolhttpd::fuzz::target`; the invariants are documented there.
#![no_main]

use std::sync::LazyLock;

use poolhttpd::fuzz::Traps;

/// One trap tree per fuzzing process. libFuzzer ends the process without dropping
/// statics, so the tree stays in the temporary directory (a few dozen KiB).
static TRAPS: LazyLock<(tempfile::TempDir, Traps)> = LazyLock::new(|| {
    let top = tempfile::Builder::new()
        .prefix("poolhttpd-fuzz-target-")
        .tempdir()
        .expect("a temporary directory");
    let traps = Traps::new(top.path()).expect("build the trap tree");
    (top, traps)
});

libfuzzer_sys::fuzz_target!(|data: &[u8]| poolhttpd::fuzz::target(&TRAPS.1, data));
