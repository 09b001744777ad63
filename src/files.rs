//! Request target → open file under the document root, with every refusal.
//!
//! The lookup is one sequence, each step with one status:
//! 1. **decode**: strip an absolute-form prefix, the query and fragment; percent-decode
//!    (bad escape or NUL → 400);
//! 2. **make safe**: split into segments, apply `.` and `..` (climbing above the root → 400),
//!    refuse dot-files (404; `/.well-known/` stays served);
//! 3. **open** beneath the root with `openat2(RESOLVE_BENEATH)`, so the kernel itself refuses
//!    any path or symlink that leads outside (403), without following magic links;
//! 4. **stat** the open descriptor: directories redirect to their slash form or serve their
//!    `index.html`; anything but a regular, world-readable file → 403.
//!
//! The decoded path never meets string concatenation with the root: it is only ever
//! resolved relative to the root's descriptor.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};

use crate::cache::{BYTES_MAX, CachedFile, Contents, FileCache, Validators, Variants};
use crate::http::Status;
use crate::http::encoding::Coding;
use crate::watch::{Watch, Watcher};

/// The file served for a directory.
pub const INDEX_FILE: &str = "index.html";

/// How files are opened for reading. O_NONBLOCK: should the path have become a FIFO since
/// it was checked, opening it must still not wait for a writer.
const READ: OFlags = OFlags::RDONLY
    .union(OFlags::NONBLOCK)
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOCTTY);

/// The one dot-directory that is served: RFC 8615 well-known URIs.
const WELL_KNOWN: &[u8] = b".well-known";

/// Reusable buffers for decoding and normalising a target, owned by one thread so that a
/// lookup allocates nothing once they have grown.
#[derive(Debug, Default)]
pub struct PathScratch {
    decoded: Vec<u8>,
    path: Vec<u8>,
}

/// A target made safe: a relative path of normal segments joined by `/`.
#[derive(Debug, PartialEq, Eq)]
pub struct SafePath<'s> {
    /// Empty for the root itself.
    pub relative: &'s [u8],
    /// The target named a directory (ends in `/`, `.` or `..`), so no redirect is due.
    pub dir_form: bool,
}

/// Why a target was refused before the file system was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetError {
    /// Neither origin-form nor absolute-form.
    BadForm,
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// A decoded NUL byte.
    Nul,
    /// `..` would climb above the root.
    Escapes,
    /// A dot-file or dot-directory.
    Hidden,
}

impl TargetError {
    /// The status that answers this refusal.
    pub const fn status(self) -> Status {
        match self {
            TargetError::Hidden => Status::NotFound,
            _ => Status::BadRequest,
        }
    }
}

/// Decodes and normalises a request target into `scratch`.
pub fn resolve_target<'s>(
    target: &str,
    scratch: &'s mut PathScratch,
) -> Result<SafePath<'s>, TargetError> {
    let path = origin_path(target.as_bytes())?;
    let path = match path.iter().position(|&b| b == b'?' || b == b'#') {
        Some(end) => &path[..end],
        None => path,
    };
    percent_decode(path, &mut scratch.decoded)?;
    let out = &mut scratch.path;
    out.clear();
    let mut dir_form = true;
    for segment in scratch.decoded.split(|&b| b == b'/') {
        match segment {
            b"" | b"." => dir_form = true,
            b".." => {
                if out.is_empty() {
                    return Err(TargetError::Escapes);
                }
                let cut = out.iter().rposition(|&b| b == b'/').unwrap_or(0);
                out.truncate(cut);
                dir_form = true;
            }
            _ => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(segment);
                dir_form = false;
            }
        }
    }
    // Checked after `..` is applied, so `/a/../.x` is judged by what it names.
    for (index, segment) in out.split(|&b| b == b'/').enumerate() {
        if segment.first() == Some(&b'.') && !(index == 0 && segment == WELL_KNOWN) {
            return Err(TargetError::Hidden);
        }
    }
    Ok(SafePath {
        relative: out,
        dir_form,
    })
}

/// The path part of an origin-form or absolute-form target (RFC 9112 §3.2).
fn origin_path(target: &[u8]) -> Result<&[u8], TargetError> {
    if target.first() == Some(&b'/') {
        return Ok(target);
    }
    let rest = strip_prefix_ignore_case(target, b"http://")
        .or_else(|| strip_prefix_ignore_case(target, b"https://"))
        .ok_or(TargetError::BadForm)?;
    match rest.iter().position(|&b| matches!(b, b'/' | b'?' | b'#')) {
        Some(0) | None if rest.is_empty() => Err(TargetError::BadForm),
        Some(start) if rest[start] == b'/' => Ok(&rest[start..]),
        _ => Ok(b"/"),
    }
}

fn strip_prefix_ignore_case<'a>(bytes: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = bytes.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &bytes[prefix.len()..])
}

/// Percent-decodes `input` into `out`, refusing what a lenient decoder would pass through:
/// a `%` not followed by two hex digits, and any escape that decodes to NUL.
fn percent_decode(input: &[u8], out: &mut Vec<u8>) -> Result<(), TargetError> {
    let malformed = input.iter().enumerate().any(|(at, &byte)| {
        byte == b'%'
            && !input
                .get(at + 1..at + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if malformed {
        return Err(TargetError::BadEscape);
    }
    out.clear();
    out.extend(percent_encoding::percent_decode(input));
    if out.contains(&0) {
        return Err(TargetError::Nul);
    }
    Ok(())
}

/// Why an open under the root failed; each maps to one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Nothing at that path (ENOENT, ENOTDIR, ENAMETOOLONG).
    NotFound,
    /// Exists but may not be served: outside the root through a symlink, not a regular
    /// file, not world-readable, EACCES.
    Forbidden,
    /// A directory without an index: 403, unless listings are on (see [`crate::listing`]).
    NoIndex,
    /// Anything else the file system said.
    Io,
}

impl OpenError {
    /// The status that answers this error.
    pub const fn status(self) -> Status {
        match self {
            OpenError::NotFound => Status::NotFound,
            OpenError::Forbidden | OpenError::NoIndex => Status::Forbidden,
            OpenError::Io => Status::InternalServerError,
        }
    }

    fn from_errno(err: rustix::io::Errno) -> OpenError {
        use rustix::io::Errno;
        match err {
            Errno::NOENT | Errno::NOTDIR | Errno::NAMETOOLONG => OpenError::NotFound,
            // EXDEV: RESOLVE_BENEATH refused a path leading outside; ELOOP: a symlink loop
            // or a magic link; ENXIO: a socket; EAGAIN: RESOLVE_CACHED and friends.
            Errno::ACCESS | Errno::PERM | Errno::XDEV | Errno::LOOP | Errno::NXIO => {
                OpenError::Forbidden
            }
            _ => OpenError::Io,
        }
    }
}

/// The outcome of looking up a safe path.
#[derive(Debug)]
pub enum Lookup {
    /// A regular file allowed to be served: from the cache, or opened just now.
    File(Arc<CachedFile>),
    /// A directory named without its trailing slash.
    Redirect,
}

/// How long after its last change a file is kept out of the cache. File times come from a
/// clock that ticks every few milliseconds, so a change made within the same tick as our
/// read would leave the times (and so the cache's validators) as they were; a file
/// unchanged for this long will get a later time from any change.
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

/// The cache of a root, with what decides when its entries may be trusted.
#[derive(Debug)]
struct Cache {
    files: FileCache,
    /// A file changed less than this long ago is served but not kept.
    racy_window: Duration,
    watch: Arc<Watch>,
}

/// The document root, held open so that every lookup resolves beneath it.
#[derive(Debug)]
pub struct DocRoot {
    dir: File,
    path: PathBuf,
    /// Set when the kernel lacks `openat2`; lookups then check canonical paths instead.
    no_openat2: AtomicBool,
    cache: Option<Cache>,
    /// Whether `NAME.br` and `NAME.gz` are looked for beside each file served.
    precompressed: bool,
}

impl DocRoot {
    /// Opens the root directory.
    pub fn open(path: &Path) -> io::Result<DocRoot> {
        let dir = File::open(path)?;
        if !dir.metadata()?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            ));
        }
        Ok(DocRoot {
            dir,
            path: path.canonicalize()?,
            no_openat2: AtomicBool::new(false),
            cache: None,
            precompressed: false,
        })
    }

    /// Looks for each file's precompressed copies (`NAME.br`, `NAME.gz`), kept and
    /// trusted with it, so that a request may be answered with one of them.
    pub fn with_precompressed(mut self, on: bool) -> DocRoot {
        self.precompressed = on;
        self
    }

    /// Keeps files ready to serve (see [`crate::cache`]), each checked with `stat` before
    /// it is used; a file changed less than `racy_window` ago is served but not kept.
    pub fn with_cache(self, racy_window: Duration) -> DocRoot {
        self.with_watched_cache(racy_window, 0)
    }

    /// Like [`DocRoot::with_cache`], and watches the directories of cached files for
    /// `watchers` threads (see [`crate::watch`]), whose lookups then need no `stat` for
    /// files unchanged since they were last checked.
    pub fn with_watched_cache(mut self, racy_window: Duration, watchers: usize) -> DocRoot {
        let watch = if watchers == 0 {
            Watch::none()
        } else {
            Watch::new(&self.dir, watchers)
        };
        self.cache = Some(Cache {
            files: FileCache::new(),
            racy_window,
            watch: Arc::new(watch),
        });
        self
    }

    /// Lets the cache hold at most `descriptors` files open (see
    /// [`crate::cache::descriptor_budget`]); nothing changes for a root without a cache.
    pub fn with_cache_descriptors(mut self, descriptors: usize) -> DocRoot {
        if let Some(cache) = &mut self.cache {
            cache.files = FileCache::with_descriptors(descriptors);
        }
        self
    }

    /// The change watcher of thread `index` (below the count given to
    /// [`DocRoot::with_watched_cache`]), if watching is on for it.
    pub fn watcher(&self, index: usize) -> Option<Watcher> {
        self.cache.as_ref()?.watch.watcher(index)
    }

    /// Opens what a safe path names. `scratch` holds the cache key and names a directory's
    /// index; `watcher` is the calling thread's, if it has one.
    ///
    /// A cached file known to be unchanged since it was last checked is served at once
    /// (see [`crate::watch`]). Otherwise the type and permissions are checked with
    /// `fstatat` before anything is opened, so a FIFO, socket or device is never opened for
    /// reading. Only a regular, world-readable file is then opened with
    /// `openat2(RESOLVE_BENEATH)`, the kernel's own guarantee that the path stays under the
    /// root, and checked again through the open descriptor (the path may have changed in
    /// between). Refusals that `fstatat` alone would answer with a different status for
    /// paths outside the root (a missing file behind an outward symlink, a directory to
    /// redirect to) are confirmed beneath the root first, so the answers reveal nothing
    /// about what lies outside.
    pub fn lookup(
        &self,
        safe: &SafePath<'_>,
        scratch: &mut Vec<u8>,
        watcher: Option<&mut Watcher>,
    ) -> Result<Lookup, OpenError> {
        // The cache key is the path as the request named it, a directory with its slash;
        // a directory's index follows it in `scratch`.
        scratch.clear();
        scratch.extend_from_slice(safe.relative);
        if safe.dir_form && !safe.relative.is_empty() {
            scratch.push(b'/');
        }
        let key_len = scratch.len();
        if let (Some(cache), Some(watcher)) = (&self.cache, watcher)
            && let Some(hit) = cache.files.get(scratch)
            && hit.current_at(watcher.generation())
        {
            return Ok(Lookup::File(hit));
        }
        // Read before anything is checked: a change after it moves the generation on.
        let generation = self.cache.as_ref().map(|cache| cache.watch.generation());
        let cached = self
            .cache
            .as_ref()
            .and_then(|cache| cache.files.get(scratch));
        // Watches go in place before the checks, so that whatever the checks miss raises
        // an event (only for files already known to have no symlink on their way).
        let watched = match (&self.cache, &cached) {
            (Some(cache), Some(hit)) if hit.watchable => cache.watch.directories_of(scratch),
            _ => false,
        };
        let mut meta = self.stat(safe.relative)?;
        let served_is_index = meta.kind == FileType::Directory;
        if served_is_index {
            self.confirm_beneath(safe.relative)?;
            if !safe.dir_form {
                return Ok(Lookup::Redirect);
            }
            scratch.extend_from_slice(INDEX_FILE.as_bytes());
            meta = self.stat(scratch).map_err(|err| match err {
                // Without an index a directory is not served, unless it is listed.
                OpenError::NotFound => OpenError::NoIndex,
                other => other,
            })?;
        }
        meta.servable()?;
        let served: &[u8] = if served_is_index {
            scratch
        } else {
            safe.relative
        };
        if let Some(hit) = cached
            && hit.validators == meta.validators
            && (!self.precompressed || hit.variant_validators() == self.variants_now(served))
        {
            if let (true, Some(generation)) = (watched, generation) {
                hit.checked_at(generation);
            }
            return Ok(Lookup::File(hit));
        }
        self.open_fresh(&scratch[..key_len], served, generation)
            .map(Lookup::File)
    }

    /// Opens the file at `served` and keeps it under `key` if it has been quiet long
    /// enough; `generation` was read before any check of this lookup.
    fn open_fresh(
        &self,
        key: &[u8],
        served: &[u8],
        generation: Option<u64>,
    ) -> Result<Arc<CachedFile>, OpenError> {
        let plain = self.open_without_symlinks(served, READ)?;
        let watchable = plain.is_some();
        let file = match plain {
            Some(file) => file,
            None => self.open_with(served, READ)?,
        };
        let mut meta = Meta::of(&file)?;
        meta.servable()?;
        // Watches in place, the path must still name this very file: a change before that
        // is seen here, any later one raises an event.
        let watched = watchable
            && self
                .cache
                .as_ref()
                .is_some_and(|cache| cache.watch.directories_of(key))
            && self.same_file(served, &meta.validators);
        let (contents, mut complete) = contents_of(file, &mut meta)?;
        // The copies are looked for once the watches are in place, like the file itself.
        let mut variants: Variants = [None, None];
        let (mut watchable, mut watched) = (watchable, watched);
        // Kept only once the file and every copy have been quiet long enough.
        let mut changed = meta.changed;
        if self.precompressed {
            for coding in Coding::ALL {
                let path = variant_path(served, coding);
                let variant = match self.open_variant(&path) {
                    Ok(Some(variant)) => variant,
                    Ok(None) => continue,
                    // Whether this copy exists is unknown: answered without it this once,
                    // the entry is neither kept nor trusted, so the next request looks again.
                    Err(_) => {
                        (complete, watched) = (false, false);
                        continue;
                    }
                };
                complete &= variant.complete;
                changed = changed.max(variant.meta.changed);
                watchable &= variant.watchable;
                // Short-circuited: `same_file` costs a descriptor and a system call.
                watched =
                    watched && variant.watchable && self.same_file(&path, &variant.meta.validators);
                variants[coding.index()] = Some(Arc::new(CachedFile::new(
                    variant.meta.validators,
                    variant.meta.modified,
                    content_type_of(served),
                    variant.contents,
                    variant.watchable,
                )));
            }
        }
        let entry = CachedFile::new(
            meta.validators,
            meta.modified,
            content_type_of(served),
            contents,
            watchable,
        )
        .with_variants(variants);
        if let (true, Some(generation)) = (watched, generation) {
            entry.checked_at(generation);
        }
        let settled = |racy: Duration| {
            changed
                .checked_add(racy)
                .is_some_and(|quiet_since| quiet_since <= SystemTime::now())
        };
        Ok(match &self.cache {
            Some(cache) if complete && settled(cache.racy_window) => cache.files.insert(key, entry),
            _ => Arc::new(entry),
        })
    }

    /// What identifies each precompressed copy of `served` on disk now: `None` for one
    /// that is missing or would not be served. A plain `fstatat`: only compared with what
    /// an entry holds, never answered with.
    fn variants_now(&self, served: &[u8]) -> [Option<Validators>; 2] {
        Coding::ALL.map(|coding| {
            let path = variant_path(served, coding);
            rustix::fs::statat(&self.dir, as_path(&path), AtFlags::empty())
                .ok()
                .map(|stat| Meta::from_stat(&stat))
                .filter(|meta| meta.servable().is_ok())
                .map(|meta| meta.validators)
        })
    }

    /// Opens a precompressed copy at `relative` if it is servable as any file is: checked
    /// with `fstatat` before it is opened, opened beneath the root, checked again.
    /// `Ok(None)`: there is no such copy, or it would not be served. `Err`: the file
    /// system failed (out of descriptors, an I/O error), which says nothing of the copy.
    fn open_variant(&self, relative: &[u8]) -> Result<Option<Variant>, OpenError> {
        match self.try_open_variant(relative) {
            Ok(variant) => Ok(Some(variant)),
            Err(OpenError::NotFound | OpenError::Forbidden | OpenError::NoIndex) => Ok(None),
            Err(OpenError::Io) => Err(OpenError::Io),
        }
    }

    fn try_open_variant(&self, relative: &[u8]) -> Result<Variant, OpenError> {
        self.stat(relative)?.servable()?;
        let plain = self.open_without_symlinks(relative, READ)?;
        let watchable = plain.is_some();
        let file = match plain {
            Some(file) => file,
            None => self.open_with(relative, READ)?,
        };
        let mut meta = Meta::of(&file)?;
        meta.servable()?;
        let (contents, complete) = contents_of(file, &mut meta)?;
        Ok(Variant {
            meta,
            contents,
            complete,
            watchable,
        })
    }

    /// Whether `relative`, resolved now without symbolic links, is the file `validators`
    /// describe.
    fn same_file(&self, relative: &[u8], validators: &Validators) -> bool {
        let flags = OFlags::PATH | OFlags::CLOEXEC;
        match self.open_without_symlinks(relative, flags) {
            Ok(Some(file)) => Meta::of(&file).is_ok_and(|meta| meta.validators == *validators),
            _ => false,
        }
    }

    /// `fstatat` beneath the root's descriptor, following symlinks. An error is confirmed
    /// with a beneath-only resolution, so that a path leaving the root is always 403.
    fn stat(&self, relative: &[u8]) -> Result<Meta, OpenError> {
        match rustix::fs::statat(&self.dir, as_path(relative), AtFlags::empty()) {
            Ok(stat) => Ok(Meta::from_stat(&stat)),
            Err(err) => {
                self.confirm_beneath(relative)?;
                Err(OpenError::from_errno(err))
            }
        }
    }

    /// Succeeds when `relative` resolves without leaving the root; opens nothing for
    /// reading (`O_PATH`).
    fn confirm_beneath(&self, relative: &[u8]) -> Result<(), OpenError> {
        let flags = OFlags::PATH | OFlags::CLOEXEC;
        match self.open_with(relative, flags) {
            Ok(_) | Err(OpenError::NotFound) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Opens `relative` beneath the root if no symbolic link lies on its way: `None` if one
    /// does, or if the kernel lacks `openat2` (which alone can tell).
    fn open_without_symlinks(
        &self,
        relative: &[u8],
        flags: OFlags,
    ) -> Result<Option<File>, OpenError> {
        if self.no_openat2.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS;
        match rustix::fs::openat2(&self.dir, as_path(relative), flags, Mode::empty(), resolve) {
            Ok(fd) => Ok(Some(File::from(fd))),
            Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOSYS) => Ok(None),
            Err(err) => Err(OpenError::from_errno(err)),
        }
    }

    fn open_with(&self, relative: &[u8], flags: OFlags) -> Result<File, OpenError> {
        let relative = as_path(relative);
        if !self.no_openat2.load(Ordering::Relaxed) {
            let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
            match rustix::fs::openat2(&self.dir, relative, flags, Mode::empty(), resolve) {
                Ok(fd) => return Ok(File::from(fd)),
                Err(rustix::io::Errno::NOSYS) => self.no_openat2.store(true, Ordering::Relaxed),
                Err(err) => return Err(OpenError::from_errno(err)),
            }
        }
        self.open_checked(relative, flags)
    }

    /// The fallback for kernels before 5.6: resolve every symlink, then insist the result
    /// still lies under the canonical root.
    fn open_checked(&self, relative: &Path, flags: OFlags) -> Result<File, OpenError> {
        let full = self.path.join(relative);
        let real = full.canonicalize().map_err(|err| io_error(&err))?;
        if !real.starts_with(&self.path) {
            return Err(OpenError::Forbidden);
        }
        rustix::fs::open(&real, flags, Mode::empty())
            .map(File::from)
            .map_err(OpenError::from_errno)
    }
}

/// A relative path for the `*at` calls; the root itself is `.`.
fn as_path(relative: &[u8]) -> &Path {
    if relative.is_empty() {
        Path::new(".")
    } else {
        Path::new(OsStr::from_bytes(relative))
    }
}

fn io_error(err: &io::Error) -> OpenError {
    match err.raw_os_error() {
        Some(code) => OpenError::from_errno(rustix::io::Errno::from_raw_os_error(code)),
        None => OpenError::Io,
    }
}

/// A precompressed copy as opened.
struct Variant {
    meta: Meta,
    contents: Contents,
    /// Read whole, as its `stat` described it (see [`read_small`]).
    complete: bool,
    watchable: bool,
}

/// `served` with the suffix of `coding`'s copies.
fn variant_path(served: &[u8], coding: Coding) -> Vec<u8> {
    let suffix = coding.suffix();
    let mut path = Vec::with_capacity(served.len() + suffix.len());
    path.extend_from_slice(served);
    path.extend_from_slice(suffix);
    path
}

/// What is kept of an open file: its bytes if small (see [`read_small`] for the bool),
/// else the descriptor.
fn contents_of(file: File, meta: &mut Meta) -> Result<(Contents, bool), OpenError> {
    if meta.len <= BYTES_MAX {
        let (bytes, complete) = read_small(&file, meta)?;
        Ok((Contents::Bytes(bytes), complete))
    } else {
        Ok((Contents::Open(Arc::new(file)), true))
    }
}

/// Reads a small file whole. A file that shrank since `meta` was taken is read to its
/// end and `meta` says what was read, so it is served as it now is, never as an error;
/// the bool is false then, and the bytes are not kept (the file is still changing). A file
/// that grew is read to the length `meta` describes, as it was.
fn read_small(file: &File, meta: &mut Meta) -> Result<(Box<[u8]>, bool), OpenError> {
    // Bounded by BYTES_MAX, so the cast cannot truncate.
    let mut bytes = vec![0; meta.len as usize];
    let mut got = 0;
    while got < bytes.len() {
        match file.read_at(&mut bytes[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(OpenError::Io),
        }
    }
    if got == bytes.len() {
        return Ok((bytes.into_boxed_slice(), true));
    }
    let now = Meta::of(file)?;
    meta.modified = now.modified;
    meta.changed = now.changed;
    meta.validators = Validators {
        len: got as u64,
        ..now.validators
    };
    meta.len = got as u64;
    bytes.truncate(got);
    Ok((bytes.into_boxed_slice(), false))
}

/// What one `stat` tells us.
struct Meta {
    kind: FileType,
    mode: u32,
    len: u64,
    modified: SystemTime,
    /// The change time (`ctime`): any write, chmod, rename or link moves it.
    changed: SystemTime,
    validators: Validators,
}

impl Meta {
    fn of(file: &File) -> Result<Meta, OpenError> {
        rustix::fs::fstat(file)
            .map(|stat| Meta::from_stat(&stat))
            .map_err(OpenError::from_errno)
    }

    fn from_stat(stat: &rustix::fs::Stat) -> Meta {
        Meta {
            kind: FileType::from_raw_mode(stat.st_mode),
            mode: stat.st_mode,
            len: u64::try_from(stat.st_size).unwrap_or(0),
            modified: system_time(stat.st_mtime, stat.st_mtime_nsec),
            changed: system_time(stat.st_ctime, stat.st_ctime_nsec),
            validators: Validators::of(stat),
        }
    }

    /// Only regular files that anyone on the machine may read are served (thttpd's rule),
    /// so the answer does not depend on which user runs the server (root reads everything).
    fn servable(&self) -> Result<(), OpenError> {
        if self.kind == FileType::RegularFile && self.mode & 0o004 != 0 {
            Ok(())
        } else {
            Err(OpenError::Forbidden)
        }
    }
}

/// A `stat` time as a `SystemTime`; times before 1970 read as 1970.
fn system_time(secs: i64, nanos: impl TryInto<u32>) -> SystemTime {
    let secs = u64::try_from(secs).unwrap_or(0);
    let nanos = nanos.try_into().unwrap_or(0).min(999_999_999);
    UNIX_EPOCH + Duration::new(secs, nanos)
}

/// The media type for a file name, from its extension.
pub fn content_type_of(name: &[u8]) -> &'static str {
    let file_name = match name.iter().rposition(|&b| b == b'/') {
        Some(slash) => &name[slash + 1..],
        None => name,
    };
    let extension = file_name
        .iter()
        .rposition(|&b| b == b'.')
        .filter(|&dot| dot > 0)
        .and_then(|dot| std::str::from_utf8(&file_name[dot + 1..]).ok());
    let guessed = extension.and_then(|ext| mime_guess::from_ext(ext).first_raw());
    match guessed {
        // RFC 9239 made text/javascript the one registered type for scripts.
        Some("application/javascript") => "text/javascript",
        Some(media) => media,
        None => "application/octet-stream",
    }
}

/// What a path would be served as, as [`DocRoot::probe`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// A regular, world-readable file.
    File,
    /// A directory that serves its index, or is listed.
    Directory,
}

/// What [`DocRoot::probe`] learnt of one path, whether or not it may be served.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    /// How the path would be served, or why it would not.
    pub served: Result<Served, OpenError>,
    /// The length of what the path names (after symlinks), in bytes.
    pub len: u64,
    /// Its modification time.
    pub modified: SystemTime,
    /// The latest change time (`ctime`) of everything looked at: what the path names and,
    /// for a directory, its index. A chmod that makes either unservable moves it. The
    /// epoch when nothing could be looked at.
    pub changed: SystemTime,
}

/// A directory opened for listing its entries.
#[derive(Debug)]
pub struct ListedDir {
    pub dir: File,
    pub modified: SystemTime,
    /// The change time (`ctime`): moves when an entry is added, removed or renamed.
    pub changed: SystemTime,
}

/// Directory listings (see [`crate::listing`]): the same refusals as a lookup, asked of
/// each entry without opening any of them for reading.
impl DocRoot {
    /// What `relative` would be served as by a server that lists directories: resolved
    /// beneath the root as [`DocRoot::lookup`] resolves it (symlinks followed while they
    /// stay inside), then judged by the same rules: a regular, world-readable file; a
    /// directory whose index is such a file, or that has no index and may be listed.
    /// Nothing is opened for reading (`O_PATH`), so a FIFO or device is never opened.
    /// `scratch` holds a directory's index path.
    pub fn probe(&self, relative: &[u8], scratch: &mut Vec<u8>) -> Probe {
        let meta = match self.meta_beneath(relative) {
            Ok(meta) => meta,
            Err(err) => {
                return Probe {
                    served: Err(err),
                    len: 0,
                    modified: UNIX_EPOCH,
                    changed: UNIX_EPOCH,
                };
            }
        };
        let mut probe = Probe {
            served: Ok(Served::File),
            len: meta.len,
            modified: meta.modified,
            changed: meta.changed,
        };
        probe.served = if meta.kind == FileType::Directory {
            scratch.clear();
            scratch.extend_from_slice(relative);
            scratch.push(b'/');
            scratch.extend_from_slice(INDEX_FILE.as_bytes());
            match self.meta_beneath(scratch) {
                Ok(index) => {
                    probe.changed = probe.changed.max(index.changed);
                    index.servable().map(|()| Served::Directory)
                }
                Err(OpenError::NotFound) => meta.listable().map(|()| Served::Directory),
                Err(err) => Err(err),
            }
        } else {
            meta.servable().map(|()| Served::File)
        };
        probe
    }

    /// Opens the directory `relative` (beneath the root) for reading its entries, if it may
    /// be listed.
    pub fn open_listing(&self, relative: &[u8]) -> Result<ListedDir, OpenError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let dir = self.open_with(relative, flags)?;
        let meta = Meta::of(&dir)?;
        meta.listable()?;
        Ok(ListedDir {
            dir,
            modified: meta.modified,
            changed: meta.changed,
        })
    }

    /// `fstat` of what `relative` names, resolved as [`DocRoot::open_with`] resolves it;
    /// opens nothing for reading (`O_PATH`).
    fn meta_beneath(&self, relative: &[u8]) -> Result<Meta, OpenError> {
        let file = self.open_with(relative, OFlags::PATH | OFlags::CLOEXEC)?;
        Meta::of(&file)
    }
}

impl Meta {
    /// Only directories that anyone on the machine may read are listed: thttpd's rule, the
    /// directory's counterpart of [`Meta::servable`].
    fn listable(&self) -> Result<(), OpenError> {
        if self.kind == FileType::Directory && self.mode & 0o004 != 0 {
            Ok(())
        } else {
            Err(OpenError::Forbidden)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(target: &str) -> Result<(String, bool), TargetError> {
        let mut scratch = PathScratch::default();
        resolve_target(target, &mut scratch).map(|safe| {
            (
                String::from_utf8_lossy(safe.relative).into_owned(),
                safe.dir_form,
            )
        })
    }

    /// A small file read after its `stat`: as it is at the read, never an error, and kept
    /// only when it did not shrink meanwhile.
    #[test]
    fn small_files_that_change_between_stat_and_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let table: [(&str, u64, usize, bool); 3] = [
            ("unchanged", 100, 100, true),
            ("shrank", 40, 40, false),
            ("emptied", 0, 0, false),
        ];
        for (name, now, served, complete) in table {
            std::fs::write(&path, [b'a'; 100]).unwrap();
            let file = File::open(&path).unwrap();
            let mut meta = Meta::of(&file).unwrap();
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(now))
                .unwrap();
            let (bytes, whole) = read_small(&file, &mut meta).unwrap();
            assert_eq!((bytes.len(), whole), (served, complete), "{name}");
            assert_eq!(meta.len, served as u64, "{name}");
            assert_eq!(meta.validators.len, served as u64, "{name}");
        }
        // One that grew is read as its stat described it.
        std::fs::write(&path, [b'a'; 100]).unwrap();
        let file = File::open(&path).unwrap();
        let mut meta = Meta::of(&file).unwrap();
        std::fs::write(&path, [b'b'; 300]).unwrap();
        let (bytes, whole) = read_small(&file, &mut meta).unwrap();
        assert_eq!((&bytes[..], whole), (&[b'b'; 100][..], true));
    }

    #[test]
    fn targets_that_resolve() {
        let table = [
            ("/", "", true),
            ("/index.html", "index.html", false),
            ("/a/b/c.txt", "a/b/c.txt", false),
            ("/a/", "a", true),
            ("/a", "a", false),
            ("//a//b", "a/b", false),
            ("/a/./b", "a/b", false),
            ("/a/b/..", "a", true),
            ("/a/b/../c", "a/c", false),
            ("/a/.", "a", true),
            ("/a%20b", "a b", false),
            ("/%41%42%43", "ABC", false),
            ("/caf%C3%A9", "café", false),
            ("/x?y=1", "x", false),
            ("/x#frag", "x", false),
            ("/x?a=../../etc", "x", false),
            ("/%3Fq", "?q", false),
            ("/.well-known/a", ".well-known/a", false),
            ("/a/%2e%2e/b", "b", false),
            ("/a%2fb", "a/b", false),
            ("http://localhost/a/b", "a/b", false),
            ("HTTP://localhost:8080/", "", true),
            ("http://localhost", "", true),
            ("http://localhost?q", "", true),
            ("https://h/x", "x", false),
            ("/a\\b", "a\\b", false),
            ("/%2e", "", true),
            (
                "/%c0%ae%c0%ae/x",
                "\u{fffd}\u{fffd}\u{fffd}\u{fffd}/x",
                false,
            ),
        ];
        for (target, path, dir_form) in table {
            assert_eq!(
                resolve(target),
                Ok((path.to_string(), dir_form)),
                "{target}"
            );
        }
    }

    #[test]
    fn hostile_targets_are_refused() {
        use TargetError::*;
        let table = [
            ("/..", Escapes),
            ("/../", Escapes),
            ("/../etc/passwd", Escapes),
            ("/a/../../etc/passwd", Escapes),
            ("/%2e%2e/etc/passwd", Escapes),
            ("/%2E%2E/%2E%2E/etc/passwd", Escapes),
            ("/..%2fetc%2fpasswd", Escapes),
            ("/%2e%2e%2f%2e%2e%2fetc%2fpasswd", Escapes),
            ("/a/b/../../../x", Escapes),
            ("/./../x", Escapes),
            ("http://h/../x", Escapes),
            ("/%00", Nul),
            ("/index.html%00.txt", Nul),
            ("/%", BadEscape),
            ("/%2", BadEscape),
            ("/%zz", BadEscape),
            ("/%%32%65", BadEscape),
            ("/%u002e", BadEscape),
            ("/.git/config", Hidden),
            ("/.env", Hidden),
            ("/a/.htaccess", Hidden),
            ("/.%2e/x", Escapes),
            ("/a/.well-known/x", Hidden),
            ("/.well-known/.secret", Hidden),
            ("/...", Hidden),
            ("/...a", Hidden),
            ("*", BadForm),
            ("index.html", BadForm),
            ("ftp://h/x", BadForm),
            ("http://", BadForm),
            ("../etc/passwd", BadForm),
            ("", BadForm),
        ];
        for (target, want) in table {
            assert_eq!(resolve(target), Err(want), "{target}");
        }
    }

    /// A root with a cache: checked with `stat` (no watcher), or watched.
    fn cached_root(dir: &Path, watched: bool) -> (DocRoot, Option<Watcher>) {
        let root = DocRoot::open(dir).unwrap();
        if watched {
            let root = root.with_watched_cache(Duration::ZERO, 1);
            let watcher = root.watcher(0);
            assert!(watcher.is_some(), "no inotify instance");
            (root, watcher)
        } else {
            (root.with_cache(Duration::ZERO), None)
        }
    }

    /// Looks `target` up as a request that just arrived would: the file, or `None` for a
    /// redirect.
    fn cached_lookup(
        root: &DocRoot,
        watcher: &mut Option<Watcher>,
        target: &str,
    ) -> Result<Option<Arc<CachedFile>>, OpenError> {
        let mut scratch = PathScratch::default();
        let safe = resolve_target(target, &mut scratch).map_err(|_| OpenError::Io)?;
        if let Some(watcher) = watcher {
            watcher.received();
        }
        match root.lookup(&safe, &mut Vec::new(), watcher.as_mut())? {
            Lookup::File(file) => Ok(Some(file)),
            Lookup::Redirect => Ok(None),
        }
    }

    /// A found file's bytes.
    fn contents(file: &CachedFile) -> Vec<u8> {
        match &file.contents {
            Contents::Bytes(bytes) => bytes.to_vec(),
            Contents::Open(open) => {
                let mut bytes = vec![0; file.len() as usize];
                open.read_exact_at(&mut bytes, 0).unwrap();
                bytes
            }
        }
    }

    fn write_mode(path: &Path, bytes: &[u8], mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, bytes).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// What a lookup should find after a change.
    #[derive(Debug, PartialEq)]
    enum Found {
        Bytes(Vec<u8>),
        Error(OpenError),
        Redirect,
    }

    /// Every kind of change to a cached file shows on the very next lookup, whether the
    /// cache checks with `stat` or watches, for kept bytes and kept descriptors alike, and
    /// through a symbolic link.
    #[test]
    fn a_change_on_disk_shows_on_the_next_lookup() {
        // A change, given how to make the file's contents for a word.
        type Change = fn(&Path, &dyn Fn(&str) -> Vec<u8>);
        let write = |d: &Path, bytes: Vec<u8>| write_mode(&d.join("d/a.txt"), &bytes, 0o644);
        let changes: [(&str, Change, Option<&str>); 7] = [
            (
                "rewritten",
                |d, of| write_mode(&d.join("d/a.txt"), &of("second!"), 0o644),
                Some("second!"),
            ),
            (
                "renamed over",
                |d, of| {
                    write_mode(&d.join("d/b.tmp"), &of("third"), 0o644);
                    std::fs::rename(d.join("d/b.tmp"), d.join("d/a.txt")).unwrap();
                },
                Some("third"),
            ),
            (
                "made private",
                |d, of| write_mode(&d.join("d/a.txt"), &of("first"), 0o600),
                None,
            ),
            (
                "deleted",
                |d, _| std::fs::remove_file(d.join("d/a.txt")).unwrap(),
                None,
            ),
            (
                "truncated",
                |d, _| write_mode(&d.join("d/a.txt"), b"", 0o644),
                Some(""),
            ),
            (
                "its directory replaced",
                |d, of| {
                    std::fs::rename(d.join("d"), d.join("old")).unwrap();
                    std::fs::create_dir(d.join("d")).unwrap();
                    write_mode(&d.join("d/a.txt"), &of("fourth"), 0o644);
                },
                Some("fourth"),
            ),
            (
                "replaced by a directory",
                |d, _| {
                    std::fs::remove_file(d.join("d/a.txt")).unwrap();
                    std::fs::create_dir(d.join("d/a.txt")).unwrap();
                },
                None,
            ),
        ];
        for watched in [false, true] {
            for large in [false, true] {
                // Small contents are kept as bytes, large ones as an open descriptor.
                let of = move |word: &str| {
                    let mut bytes = word.as_bytes().to_vec();
                    if large && !bytes.is_empty() {
                        bytes.resize(BYTES_MAX as usize + 1000, b'.');
                    }
                    bytes
                };
                for via_link in [false, true] {
                    for (what, change, then) in &changes {
                        let dir = tempfile::tempdir().unwrap();
                        std::fs::create_dir(dir.path().join("d")).unwrap();
                        write(dir.path(), of("first"));
                        std::os::unix::fs::symlink("d", dir.path().join("link")).unwrap();
                        let target = if via_link { "/link/a.txt" } else { "/d/a.txt" };
                        let (root, mut watcher) = cached_root(dir.path(), watched);
                        let mut find = || match cached_lookup(&root, &mut watcher, target) {
                            Ok(Some(file)) => Found::Bytes(contents(&file)),
                            Ok(None) => Found::Redirect,
                            Err(err) => Found::Error(err),
                        };
                        let case =
                            format!("{what} (watched {watched}, large {large}, link {via_link})");
                        // Kept, then checked once more, so that a watched entry is trusted.
                        for _ in 0..3 {
                            assert_eq!(find(), Found::Bytes(of("first")), "{case}");
                        }
                        change(dir.path(), &of);
                        let want = match (then, *what) {
                            (Some(word), _) => Found::Bytes(of(word)),
                            (None, "made private") => Found::Error(OpenError::Forbidden),
                            (None, "deleted") => Found::Error(OpenError::NotFound),
                            (None, _) => Found::Redirect,
                        };
                        assert_eq!(find(), want, "{case}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_recently_changed_file_is_served_but_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        write_mode(&dir.path().join("a.txt"), b"fresh", 0o644);
        let root = DocRoot::open(dir.path())
            .unwrap()
            .with_cache(Duration::from_secs(3600));
        let found = || cached_lookup(&root, &mut None, "/a.txt").unwrap().unwrap();
        let (first, again) = (found(), found());
        assert_eq!(contents(&again), b"fresh");
        assert!(
            !Arc::ptr_eq(&first, &again),
            "a file within the racy window was kept"
        );
    }

    #[test]
    fn an_unchanged_file_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        write_mode(&dir.path().join("a.txt"), b"kept", 0o644);
        for watched in [false, true] {
            let (root, mut watcher) = cached_root(dir.path(), watched);
            let mut found = || {
                cached_lookup(&root, &mut watcher, "/a.txt")
                    .unwrap()
                    .unwrap()
            };
            let (first, again) = (found(), found());
            assert!(Arc::ptr_eq(&first, &again), "watched {watched}: not kept");
        }
    }
}
