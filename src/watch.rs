//! Changes on disk, told by the kernel, so that cached files need no `stat` per request.
//!
//! The cache ([`crate::cache`]) may answer from a file it read earlier only while that file
//! is unchanged. Checking with `fstatat` on every request costs a path walk, and under load
//! two workers walking the same path make its dentry's cache lines travel between CPUs:
//! measured here, skipping the check served 5-18% more small-file requests. Instead, every
//! directory on the way to a cached file is watched with inotify, and any change in one of
//! them (a write, a rename, a deletion, a chmod) moves a shared [generation](Watch::generation)
//! on. An entry checked at the current generation needs no `stat`; any other is checked
//! with `stat` once, as before, and marked with the generation read before that check.
//!
//! # Why nothing stale is served
//! The kernel queues an inotify event before the change's system call returns, in every
//! inotify instance watching the directory. Each pool worker owns one instance
//! ([`Watcher`]) and drains it after it has received request bytes and before it answers
//! from the cache ([`Watcher::generation`]). A request sent after a change completed
//! therefore finds that change's event queued in the worker's own instance, and the
//! generation moved on, whichever thread read the bytes. No lock or shared write is on
//! this path: the check is one `read` of the worker's own descriptor.
//!
//! Watches are added, in every instance, before a file is read for the cache, and the
//! file's identity is checked again through its path once they are in place, so that a
//! change racing the first read is either seen by that check or raises an event.
//!
//! # What it does not see
//! inotify reports changes made through system calls on this machine. Writes through a
//! shared memory mapping, and changes made by another machine on a network file system,
//! raise no event; [`Watch::new`] turns watching off for network and FUSE file systems.
//! A path with a symbolic link in it is never trusted to watching: such files are
//! checked with `stat` on every request.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};

/// What a watch reports: every change to a name in the directory or to what it names,
/// and to the directory itself. Reads and opens (ours included) are not changes.
const CHANGES: WatchFlags = WatchFlags::MODIFY
    .union(WatchFlags::ATTRIB)
    .union(WatchFlags::CLOSE_WRITE)
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::CREATE)
    .union(WatchFlags::DELETE)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF)
    .union(WatchFlags::ONLYDIR);

/// Most inotify instances one server takes, one per worker: the kernel grants each user
/// 128 by default (`fs.inotify.max_user_instances`), shared with the user's other programs.
/// Workers beyond it check with `stat`.
pub const MAX_INSTANCES: usize = 32;

/// Bytes read from an instance at a time: room for about a hundred events with names,
/// more than a burst of changes to a static site usually makes.
const EVENT_BUFFER: usize = 4096;

/// `statfs` magic numbers of file systems whose changes inotify may never report: network
/// file systems (another machine's writes) and FUSE (whatever the daemon does).
const UNWATCHABLE: [i64; 7] = [
    0x6969,                 // NFS
    0xFF53_4D42,            // CIFS
    0xFE53_4D42,            // SMB2
    0x6573_5546,            // FUSE
    0x0102_1997,            // 9P
    0x00C3_6400,            // Ceph
    0x0BD0_0BD0_u32 as i64, // Lustre
];

/// The watches shared by one document root's workers.
#[derive(Debug)]
pub struct Watch {
    /// One inotify instance per worker, fixed at start so that every watch reaches all.
    instances: Vec<Arc<OwnedFd>>,
    /// How to name a directory under the root to `inotify_add_watch`, which takes a path:
    /// through `/proc/self/fd`, so that it resolves through the root's own descriptor even
    /// if the root has been moved.
    root_path: PathBuf,
    /// Directories (relative to the root, `""` for the root) watched in every instance.
    watched: Mutex<HashSet<Box<[u8]>>>,
    /// Moves on with every change seen; see the module documentation.
    generation: AtomicU64,
}

impl Watch {
    /// Watching for `workers` threads of the root open as `root`; no instances at all (so
    /// every check is a `stat`) where the root's file system cannot be trusted to report
    /// changes, or where the kernel refuses an instance.
    pub fn new(root: &impl AsFd, workers: usize) -> Watch {
        // `f_type`'s width differs between architectures.
        #[allow(clippy::unnecessary_cast)]
        let watchable =
            rustix::fs::fstatfs(root).is_ok_and(|fs| !UNWATCHABLE.contains(&(fs.f_type as i64)));
        let wanted = if watchable {
            workers.min(MAX_INSTANCES)
        } else {
            0
        };
        // Workers beyond what the kernel grants check with `stat`.
        let instances = (0..wanted)
            .map_while(|_| inotify::init(CreateFlags::NONBLOCK | CreateFlags::CLOEXEC).ok())
            .map(Arc::new)
            .collect();
        Watch {
            instances,
            root_path: PathBuf::from(format!("/proc/self/fd/{}", root.as_fd().as_raw_fd())),
            watched: Mutex::new(HashSet::new()),
            generation: AtomicU64::new(0),
        }
    }

    /// No watching: every check is a `stat` (the thread-per-connection model, and tests).
    pub fn none() -> Watch {
        Watch {
            instances: Vec::new(),
            root_path: PathBuf::new(),
            watched: Mutex::new(HashSet::new()),
            generation: AtomicU64::new(0),
        }
    }

    /// The reader of worker `index`'s instance, if it has one.
    pub fn watcher(self: &Arc<Watch>, index: usize) -> Option<Watcher> {
        let instance = Arc::clone(self.instances.get(index)?);
        Some(Watcher {
            watch: Arc::clone(self),
            instance,
            unsynced: true,
        })
    }

    /// The current generation, for an entry about to be checked with `stat`.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Watches every directory on the way to the file at `path` (relative, without
    /// symbolic links), root first, in every instance. False if any could not be watched
    /// (no instances, or the kernel's limit on watches): the file must then be checked
    /// with `stat` on every request.
    pub fn directories_of(&self, path: &[u8]) -> bool {
        if self.instances.is_empty() {
            return false;
        }
        let mut watched = self.watched_set();
        let mut end = Some(0);
        while let Some(len) = end {
            let dir = &path[..len];
            if !watched.contains(dir) {
                let full = self.root_path.join(OsStr::from_bytes(dir));
                let added = self
                    .instances
                    .iter()
                    .all(|instance| inotify::add_watch(&**instance, &full, CHANGES).is_ok());
                if !added {
                    return false;
                }
                watched.insert(dir.into());
            }
            // The next directory down: up to the next `/` after this one.
            let from = if len == 0 { 0 } else { len + 1 };
            end = path[from..]
                .iter()
                .position(|&b| b == b'/')
                .map(|at| from + at);
        }
        true
    }

    /// A change was seen: no entry checked before now may be trusted without `stat`.
    fn changed(&self, lost_watches: bool) {
        if lost_watches {
            // A watched directory went away, or events were dropped: watch anew whatever
            // is cached again.
            self.watched_set().clear();
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn watched_set(&self) -> MutexGuard<'_, HashSet<Box<[u8]>>> {
        // Every change to the set is a single insert or clear, so a panic elsewhere while
        // it was held cannot have left it inconsistent.
        self.watched
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One worker's inotify instance.
#[derive(Debug)]
pub struct Watcher {
    watch: Arc<Watch>,
    instance: Arc<OwnedFd>,
    /// Request bytes arrived since the instance was last drained.
    unsynced: bool,
}

impl Watcher {
    /// Request bytes have arrived: the next answer from the cache must drain the instance
    /// first.
    pub fn received(&mut self) {
        self.unsynced = true;
    }

    /// The generation an entry must carry to be served without `stat`, after draining
    /// this worker's instance if request bytes arrived since it was last drained.
    pub fn generation(&mut self) -> u64 {
        if self.unsynced {
            self.unsynced = false;
            self.drain();
        }
        self.watch.generation()
    }

    fn drain(&mut self) {
        let mut buffer = [MaybeUninit::<u8>::uninit(); EVENT_BUFFER];
        let mut reader = inotify::Reader::new(&*self.instance, &mut buffer);
        let (mut changed, mut lost) = (false, false);
        loop {
            match reader.next() {
                Ok(event) => {
                    changed = true;
                    lost |= event
                        .events()
                        .intersects(ReadFlags::IGNORED | ReadFlags::QUEUE_OVERFLOW);
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => break,
                // The instance cannot be read: nothing it holds may be trusted.
                Err(_) => {
                    (changed, lost) = (true, true);
                    break;
                }
            }
        }
        if changed {
            self.watch.changed(lost);
        }
    }
}
