//! Small files, kept in memory and shared by every thread.
//!
//! Serving a small file costs more in system calls (open, stat, read, close) than in
//! bytes. The cache keeps the contents of files up to [`CACHE_FILE_MAX`] bytes, keyed by
//! their path under the root; each request still checks the file with one `fstatat`, and
//! uses the cached bytes only while the file's identity and times are exactly those the
//! bytes were read under. Any write, rename or replacement changes the change time
//! (`ctime`) or the inode, so stale bytes are never served. Permissions are checked on
//! every request from that same `fstatat`.
//!
//! The cache is the one shared, mutable structure besides the channels: a fixed number of
//! shards, each behind its own lock held only to look up or insert, so threads rarely meet.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

/// Largest file kept. Above it, `sendfile` from the page cache beats a copy from ours.
pub const CACHE_FILE_MAX: u64 = 64 * 1024;

/// Memory the cache may hold in all. A demo site or a typical static site fits many times
/// over; a larger site keeps its most recently added files.
pub const CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Locks the cache is split over, so that threads serving different files rarely wait for
/// each other.
const SHARDS: usize = 16;

/// What identifies one version of a file: if any of these differ, the bytes may too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validators {
    pub dev: u64,
    pub ino: u64,
    pub len: u64,
    pub mtime: (i64, u64),
    pub ctime: (i64, u64),
}

impl Validators {
    /// From a `stat` result.
    pub fn of(stat: &rustix::fs::Stat) -> Validators {
        Validators {
            dev: stat.st_dev,
            ino: stat.st_ino,
            len: u64::try_from(stat.st_size).unwrap_or(0),
            mtime: (stat.st_mtime, stat.st_mtime_nsec),
            ctime: (stat.st_ctime, stat.st_ctime_nsec),
        }
    }
}

/// One file's contents and what a response needs to say about them.
#[derive(Debug)]
pub struct CachedFile {
    pub validators: Validators,
    pub bytes: Box<[u8]>,
    pub modified: SystemTime,
    pub content_type: &'static str,
}

/// The shared cache of small files.
#[derive(Debug)]
pub struct FileCache {
    shards: Vec<Mutex<Shard>>,
}

#[derive(Debug, Default)]
struct Shard {
    files: HashMap<Box<[u8]>, Arc<CachedFile>>,
    bytes: usize,
}

impl Default for FileCache {
    fn default() -> Self {
        FileCache::new()
    }
}

impl FileCache {
    /// An empty cache.
    pub fn new() -> FileCache {
        FileCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
        }
    }

    /// The cached contents of `path`, if they were read under exactly `validators`.
    pub fn get(&self, path: &[u8], validators: &Validators) -> Option<Arc<CachedFile>> {
        let shard = self.shard(path);
        let found = shard.files.get(path)?;
        (found.validators == *validators).then(|| Arc::clone(found))
    }

    /// Keeps `file` as the contents of `path`, replacing any older version, and returns it.
    pub fn insert(&self, path: &[u8], file: CachedFile) -> Arc<CachedFile> {
        let file = Arc::new(file);
        let size = file.bytes.len() + path.len();
        let budget = CACHE_BYTES / SHARDS;
        if size > budget {
            return file;
        }
        let mut shard = self.shard(path);
        if let Some(old) = shard.files.remove(path) {
            shard.bytes -= old.bytes.len() + path.len();
        }
        // Over budget: drop whatever the map yields first. Files are small and re-read
        // cheaply, so a cleverer policy would not pay for its bookkeeping.
        while shard.bytes + size > budget {
            let Some(victim) = shard.files.keys().next().cloned() else {
                break;
            };
            if let Some(old) = shard.files.remove(&victim) {
                shard.bytes -= old.bytes.len() + victim.len();
            }
        }
        shard.bytes += size;
        shard.files.insert(path.into(), Arc::clone(&file));
        file
    }

    fn shard(&self, path: &[u8]) -> MutexGuard<'_, Shard> {
        let mut hasher = DefaultHasher::new();
        path.hash(&mut hasher);
        let index = (hasher.finish() % SHARDS as u64) as usize;
        // A poisoned shard only means a thread panicked while holding it; every change to a
        // shard leaves it consistent, so its contents are still good.
        self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn validators(ino: u64, len: u64) -> Validators {
        Validators {
            dev: 1,
            ino,
            len,
            mtime: (100, 5),
            ctime: (100, 5),
        }
    }

    fn file(ino: u64, bytes: &[u8]) -> CachedFile {
        CachedFile {
            validators: validators(ino, bytes.len() as u64),
            bytes: bytes.into(),
            modified: UNIX_EPOCH,
            content_type: "text/plain",
        }
    }

    #[test]
    fn a_hit_needs_the_same_version() {
        let cache = FileCache::new();
        cache.insert(b"a.txt", file(7, b"hello"));
        let same = validators(7, 5);
        assert_eq!(
            cache.get(b"a.txt", &same).map(|f| f.bytes.clone()),
            Some(b"hello"[..].into())
        );
        let changes = [
            Validators { ino: 8, ..same },
            Validators { len: 6, ..same },
            Validators {
                mtime: (100, 6),
                ..same
            },
            Validators {
                ctime: (101, 5),
                ..same
            },
            Validators { dev: 2, ..same },
        ];
        for changed in changes {
            assert!(cache.get(b"a.txt", &changed).is_none(), "{changed:?}");
        }
        assert!(cache.get(b"b.txt", &same).is_none());
    }

    #[test]
    fn a_newer_version_replaces_the_older() {
        let cache = FileCache::new();
        cache.insert(b"a.txt", file(7, b"old"));
        cache.insert(b"a.txt", file(9, b"newer"));
        assert!(cache.get(b"a.txt", &validators(7, 3)).is_none());
        assert!(cache.get(b"a.txt", &validators(9, 5)).is_some());
    }

    #[test]
    fn the_budget_holds() {
        let cache = FileCache::new();
        let big = vec![0u8; CACHE_FILE_MAX as usize];
        for n in 0..(2 * CACHE_BYTES as u64 / CACHE_FILE_MAX) {
            cache.insert(format!("f{n}").as_bytes(), file(n, &big));
        }
        let held: usize = cache
            .shards
            .iter()
            .map(|shard| shard.lock().map(|s| s.bytes).unwrap_or(0))
            .sum();
        assert!(held <= CACHE_BYTES, "{held} bytes held");
        assert!(held > CACHE_BYTES / 2, "{held} bytes held");
    }
}
