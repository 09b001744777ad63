//! The fuzz targets' seed corpus, replayed on stable Rust: every file in
//! `fuzz/seeds/<target>/` goes through the same `poolhttpd::fuzz` function the cargo-fuzz
//! target calls, so the invariants hold for every seed and every minimized finding kept
//! there, in every `cargo test`. A missing or empty directory fails: a replay of nothing
//! would pass without checking.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use poolhttpd::fuzz::{self, Traps};

use crate::support::manifest_dir;

/// Runs `check` on every file of `fuzz/seeds/<target>/`, and fails naming each file whose
/// check panicked.
fn replay(target: &str, check: impl Fn(&[u8])) {
    let dir = manifest_dir().join("fuzz/seeds").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| entry.expect("read the seed directory").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: no seeds", dir.display());
    let failed: Vec<String> = files
        .iter()
        .filter(|file| {
            let data = std::fs::read(file).expect("read a seed");
            catch_unwind(AssertUnwindSafe(|| check(&data))).is_err()
        })
        .map(|file| file.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} {target} seeds broke an invariant (each panic is printed above):\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}

#[test]
fn head_seeds() {
    replay("head", fuzz::head);
}

#[test]
fn chunked_seeds() {
    replay("chunked", fuzz::chunked);
}

#[test]
fn conditions_seeds() {
    replay("conditions", fuzz::conditions);
}

#[test]
fn target_seeds() {
    let top = tempfile::tempdir().expect("temporary directory");
    let traps = Traps::new(top.path()).expect("build the trap tree");
    replay("target", |data| fuzz::target(&traps, data));
}
