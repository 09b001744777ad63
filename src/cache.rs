//! Files kept ready to serve, shared by every thread: small files' bytes, and larger
//! files' open descriptors.
//!
//! Serving a small file costs more in system calls (open, stat, read, close) than in
//! bytes, so files up to [`BYTES_MAX`] are kept in memory and copied behind their response
//! head. Larger files are kept open and sent with `sendfile` from the page cache, which
//! spares a copy on the way out and gives the receiver the same warm pages every time.
//!
//! An entry is used only while the file is the one it was made from. Either the
//! directories on its way are watched ([`crate::watch`]) and no change has been seen since
//! the entry was last checked, or it is checked with one `fstatat`: its identity and times
//! must be exactly those it was made under. Any write, rename or replacement changes the
//! change time (`ctime`) or the inode, and a chmod changes the ctime, so stale bytes are
//! never served.
//!
//! The cache is the one shared, mutable structure besides the channels: a fixed number of
//! shards, each behind its own lock held only to look up or insert, so threads rarely meet.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

/// Largest file whose bytes are kept. Bodies this small are copied behind their head, so
/// that a response leaves in one write (and pipelined ones in one write together); above
/// it, `sendfile` from a kept descriptor costs less than copying.
pub const BYTES_MAX: u64 = 16 * 1024;

/// Memory the kept bytes may take in all. A demo site or a typical static site fits many
/// times over; a larger site keeps its most recently added files.
pub const CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Most descriptors the cache may hold open, as nginx's `open_file_cache max` bounds its
/// own. Below [`CACHE_SHARE`] times this the budget is a share of the descriptor limit
/// instead ([`descriptor_budget`]), so that a low limit is left to connections.
pub const CACHE_DESCRIPTORS: usize = 256;

/// The cache may hold one descriptor in this many of the process's limit: open files only
/// spare a few system calls per response, and a connection refused costs a client. An
/// eighth keeps 32 of 256 and 128 of 1,024, and the full [`CACHE_DESCRIPTORS`] from 2,048.
pub const CACHE_SHARE: u64 = 8;

/// Descriptors the cache may hold open under a limit of `descriptors` (`None`: no limit),
/// counted against that limit before connections are (see `server::FdBudget`).
pub fn descriptor_budget(descriptors: Option<u64>) -> usize {
    let share = descriptors.map_or(u64::MAX, |limit| limit / CACHE_SHARE);
    usize::try_from(share).map_or(CACHE_DESCRIPTORS, |share| share.min(CACHE_DESCRIPTORS))
}

/// Locks the cache is split over, so that threads serving different files rarely wait for
/// each other.
const SHARDS: usize = 16;

/// [`CachedFile::checked`] of an entry that must be checked with `stat` every time.
const UNWATCHED: u64 = u64::MAX;

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

/// A file's body as kept.
#[derive(Debug)]
pub enum Contents {
    /// The whole file, at most [`BYTES_MAX`] bytes.
    Bytes(Box<[u8]>),
    /// The file, open for `sendfile`, which never moves its offset: any number of
    /// responses may send from it at once.
    Open(Arc<File>),
}

/// A file's precompressed copies (`NAME.br`, `NAME.gz`), in the order of
/// [`Coding::ALL`](crate::http::encoding::Coding::ALL); `None` where there is none to serve.
pub type Variants = [Option<Arc<CachedFile>>; 2];

/// One file and what a response needs to say about it.
#[derive(Debug)]
pub struct CachedFile {
    pub validators: Validators,
    pub modified: SystemTime,
    pub content_type: &'static str,
    pub contents: Contents,
    /// Its precompressed copies, looked for with it and trusted exactly as long as it is:
    /// they live in its directory, so any change to them is a change the checks see.
    pub variants: Variants,
    /// No symbolic link lay on the file's path when it was opened, so watching its
    /// directories sees every change to it (see [`crate::watch`]).
    pub watchable: bool,
    /// The watch generation at which the file was last known to be this version, or
    /// [`UNWATCHED`].
    checked: AtomicU64,
}

impl CachedFile {
    /// An entry that is checked with `stat` until [`CachedFile::checked_at`] says more.
    pub fn new(
        validators: Validators,
        modified: SystemTime,
        content_type: &'static str,
        contents: Contents,
        watchable: bool,
    ) -> CachedFile {
        CachedFile {
            validators,
            modified,
            content_type,
            contents,
            variants: [None, None],
            watchable,
            checked: AtomicU64::new(UNWATCHED),
        }
    }

    /// The entry with its precompressed copies.
    pub fn with_variants(mut self, variants: Variants) -> CachedFile {
        self.variants = variants;
        self
    }

    /// Whether any precompressed copy is served in its place: then every response about
    /// it varies with `Accept-Encoding`.
    pub fn has_variants(&self) -> bool {
        self.variants.iter().any(Option::is_some)
    }

    /// What identifies each precompressed copy, to compare with what is on disk now.
    pub fn variant_validators(&self) -> [Option<Validators>; 2] {
        self.variants
            .each_ref()
            .map(|variant| variant.as_ref().map(|v| v.validators))
    }

    /// The file's length.
    pub fn len(&self) -> u64 {
        self.validators.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.validators.len == 0
    }

    /// Whether the file is known to be unchanged at watch generation `generation`.
    pub fn current_at(&self, generation: u64) -> bool {
        generation != UNWATCHED && self.checked.load(Ordering::SeqCst) == generation
    }

    /// The file was found to be this version, with its directories watched, by a check
    /// that began at `generation`.
    pub fn checked_at(&self, generation: u64) {
        self.checked.store(generation, Ordering::SeqCst);
    }

    /// Memory the entry takes from the byte budget, its copies' included.
    fn bytes(&self) -> usize {
        let own = match &self.contents {
            Contents::Bytes(bytes) => bytes.len(),
            Contents::Open(_) => 0,
        };
        own + self
            .variants
            .iter()
            .flatten()
            .map(|v| v.bytes())
            .sum::<usize>()
    }

    /// Descriptors the entry takes from the descriptor budget, its copies' included.
    fn descriptors(&self) -> usize {
        let own = usize::from(matches!(self.contents, Contents::Open(_)));
        own + self
            .variants
            .iter()
            .flatten()
            .map(|v| v.descriptors())
            .sum::<usize>()
    }
}

/// The shared cache, keyed by the path a request named.
#[derive(Debug)]
pub struct FileCache {
    shards: Vec<Mutex<Shard>>,
    /// Descriptors each shard may hold open: its share of the cache's budget.
    shard_descriptors: usize,
}

#[derive(Debug, Default)]
struct Shard {
    files: HashMap<Box<[u8]>, Arc<CachedFile>>,
    bytes: usize,
    descriptors: usize,
}

impl Default for FileCache {
    fn default() -> Self {
        FileCache::new()
    }
}

impl FileCache {
    /// An empty cache that may hold [`CACHE_DESCRIPTORS`] open.
    pub fn new() -> FileCache {
        FileCache::with_descriptors(CACHE_DESCRIPTORS)
    }

    /// An empty cache that may hold up to `descriptors` open (at most
    /// [`CACHE_DESCRIPTORS`]); fewer than one per shard keeps none open.
    pub fn with_descriptors(descriptors: usize) -> FileCache {
        FileCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            shard_descriptors: descriptors.min(CACHE_DESCRIPTORS) / SHARDS,
        }
    }

    /// The entry for `key`, whatever version it holds.
    pub fn get(&self, key: &[u8]) -> Option<Arc<CachedFile>> {
        self.shard(key).files.get(key).cloned()
    }

    /// Keeps `file` for `key`, replacing any older entry, and returns it. A file that
    /// would not fit its shard's share of the budgets is returned without being kept.
    pub fn insert(&self, key: &[u8], file: CachedFile) -> Arc<CachedFile> {
        let file = Arc::new(file);
        let size = file.bytes() + key.len();
        let (byte_budget, descriptor_budget) = (CACHE_BYTES / SHARDS, self.shard_descriptors);
        if size > byte_budget || file.descriptors() > descriptor_budget {
            return file;
        }
        let mut shard = self.shard(key);
        if let Some(old) = shard.files.remove(key) {
            shard.forget(key, &old);
        }
        // Over budget: drop whatever the map yields first. Files are re-read or reopened
        // cheaply, so a cleverer policy would not pay for its bookkeeping.
        while shard.bytes + size > byte_budget
            || shard.descriptors + file.descriptors() > descriptor_budget
        {
            let Some(victim) = shard.files.keys().next().cloned() else {
                break;
            };
            if let Some(old) = shard.files.remove(&victim) {
                shard.forget(&victim, &old);
            }
        }
        shard.bytes += size;
        shard.descriptors += file.descriptors();
        shard.files.insert(key.into(), Arc::clone(&file));
        file
    }

    fn shard(&self, key: &[u8]) -> MutexGuard<'_, Shard> {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let index = (hasher.finish() % SHARDS as u64) as usize;
        // A poisoned shard only means a thread panicked while holding it; every change to a
        // shard leaves it consistent, so its contents are still good.
        self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Shard {
    /// Takes a removed entry out of the budgets. Its descriptor closes when the last
    /// response sending from it lets go.
    fn forget(&mut self, key: &[u8], old: &CachedFile) {
        self.bytes -= old.bytes() + key.len();
        self.descriptors -= old.descriptors();
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
        let contents = Contents::Bytes(bytes.into());
        CachedFile::new(
            validators(ino, bytes.len() as u64),
            UNIX_EPOCH,
            "text/plain",
            contents,
            true,
        )
    }

    #[test]
    fn a_newer_version_replaces_the_older() {
        let cache = FileCache::new();
        cache.insert(b"a.txt", file(7, b"old"));
        cache.insert(b"a.txt", file(9, b"newer"));
        let kept = cache.get(b"a.txt").map(|f| f.validators);
        assert_eq!(kept, Some(validators(9, 5)));
        assert!(cache.get(b"b.txt").is_none());
    }

    #[test]
    fn only_the_generation_it_was_checked_at_is_current() {
        let entry = file(1, b"x");
        assert!(!entry.current_at(0), "a new entry is checked with stat");
        entry.checked_at(4);
        let table = [(3, false), (4, true), (5, false), (UNWATCHED, false)];
        for (generation, current) in table {
            assert_eq!(entry.current_at(generation), current, "{generation}");
        }
    }

    #[test]
    fn the_budgets_hold() {
        let cache = FileCache::new();
        let big = vec![0u8; BYTES_MAX as usize];
        for n in 0..(2 * CACHE_BYTES as u64 / BYTES_MAX) {
            cache.insert(format!("f{n}").as_bytes(), file(n, &big));
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("open"), b"x").unwrap();
        for n in 0..2 * CACHE_DESCRIPTORS {
            let open = Arc::new(File::open(dir.path().join("open")).unwrap());
            let entry =
                CachedFile::new(validators(0, 1), UNIX_EPOCH, "", Contents::Open(open), true);
            cache.insert(format!("d{n}").as_bytes(), entry);
        }
        let (bytes, descriptors) = cache.shards.iter().fold((0, 0), |(b, d), shard| {
            let shard = shard.lock().unwrap();
            (b + shard.bytes, d + shard.descriptors)
        });
        assert!(bytes <= CACHE_BYTES, "{bytes} bytes held");
        assert!(bytes > CACHE_BYTES / 2, "{bytes} bytes held");
        assert!(descriptors <= CACHE_DESCRIPTORS, "{descriptors} held");
        assert!(descriptors > CACHE_DESCRIPTORS / 2, "{descriptors} held");
    }

    /// Regression (issue 12): the cache's 256 descriptors were reserved whatever the
    /// limit, which at a limit of 256 left no room for connections.
    #[test]
    fn the_descriptor_budget_follows_the_limit() {
        let table = [
            (Some(64), 8),
            (Some(256), 32),
            (Some(1024), 128),
            (Some(2048), CACHE_DESCRIPTORS),
            (Some(20_000), CACHE_DESCRIPTORS),
            (None, CACHE_DESCRIPTORS),
        ];
        for (limit, budget) in table {
            assert_eq!(descriptor_budget(limit), budget, "limit {limit:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("open"), b"x").unwrap();
        let cache = FileCache::with_descriptors(32);
        for n in 0..256 {
            let open = Arc::new(File::open(dir.path().join("open")).unwrap());
            let entry =
                CachedFile::new(validators(0, 1), UNIX_EPOCH, "", Contents::Open(open), true);
            cache.insert(format!("d{n}").as_bytes(), entry);
        }
        let held: usize = cache
            .shards
            .iter()
            .map(|s| s.lock().unwrap().descriptors)
            .sum();
        assert!(held <= 32, "{held} held");
        assert!(held > 16, "{held} held");
    }
}
