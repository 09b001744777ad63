//! Files for a document root: deterministic contents, written with the mode a test needs.
//! poolhttpd serves only world-readable files, so the mode is always given, whatever the
//! umask says.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// `len` bytes from a xorshift64 generator started at `seed` (any value but 0):
/// deterministic, so that every run and every server serves the same file, and
/// incompressible, so that corruption anywhere in it shows.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    assert_ne!(seed, 0, "xorshift stays at 0 forever");
    let mut state = seed;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// Writes `bytes` to `path` with `mode`, leaving a file that already holds exactly these
/// bytes untouched (rewriting it would only disturb a server that is serving it).
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    if fs::read(path).ok().as_deref() != Some(bytes) {
        fs::write(path, bytes)?;
    }
    set_mode(path, mode)
}

/// Sets the permission bits of a file or directory.
pub fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_random_is_deterministic_and_exact_in_length() {
        let a = pseudo_random(1001, 7);
        assert_eq!(a.len(), 1001);
        assert_eq!(a, pseudo_random(1001, 7));
        assert_ne!(a, pseudo_random(1001, 8));
        // A prefix of a longer run: the length only cuts the same sequence.
        assert_eq!(a[..100], pseudo_random(100, 7)[..]);
    }

    #[test]
    fn write_leaves_the_mode_asked_for() {
        let dir = std::env::temp_dir().join(format!("testkit-files-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("f");
        write(&path, b"abc", 0o640).expect("write");
        write(&path, b"abc", 0o644).expect("same bytes, new mode");
        let meta = fs::metadata(&path).expect("metadata");
        assert_eq!(meta.permissions().mode() & 0o777, 0o644);
        assert_eq!(fs::read(&path).expect("read"), b"abc");
        fs::remove_dir_all(&dir).expect("clean up");
    }
}
