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

use crate::cache::{CACHE_FILE_MAX, CachedFile, FileCache, Validators};
use crate::http::Status;

/// The file served for a directory.
pub const INDEX_FILE: &str = "index.html";

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

fn percent_decode(input: &[u8], out: &mut Vec<u8>) -> Result<(), TargetError> {
    out.clear();
    let mut rest = input;
    while let Some((&byte, tail)) = rest.split_first() {
        let decoded = if byte == b'%' {
            let (hi, lo) = match tail {
                [hi, lo, ..] => (hex_value(*hi), hex_value(*lo)),
                _ => (None, None),
            };
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(TargetError::BadEscape);
            };
            rest = &tail[2..];
            hi << 4 | lo
        } else {
            rest = tail;
            byte
        };
        if decoded == 0 {
            return Err(TargetError::Nul);
        }
        out.push(decoded);
    }
    Ok(())
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Why an open under the root failed; each maps to one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Nothing at that path (ENOENT, ENOTDIR, ENAMETOOLONG).
    NotFound,
    /// Exists but may not be served: outside the root through a symlink, not a regular
    /// file, not world-readable, EACCES, or a directory without an index.
    Forbidden,
    /// Anything else the file system said.
    Io,
}

impl OpenError {
    /// The status that answers this error.
    pub const fn status(self) -> Status {
        match self {
            OpenError::NotFound => Status::NotFound,
            OpenError::Forbidden => Status::Forbidden,
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

/// A regular file, open and allowed to be served.
#[derive(Debug)]
pub struct ServedFile {
    pub file: File,
    pub len: u64,
    pub modified: SystemTime,
    /// Guessed from the served name's extension (the index file's for a directory).
    pub content_type: &'static str,
}

/// The outcome of looking up a safe path.
#[derive(Debug)]
pub enum Lookup {
    /// A file to send from its descriptor (larger than [`CACHE_FILE_MAX`]).
    File(ServedFile),
    /// A small file's contents, from the cache or just read.
    Cached(Arc<CachedFile>),
    /// A directory named without its trailing slash.
    Redirect,
}

/// How long after its last change a file is kept out of the cache. File times come from a
/// clock that ticks every few milliseconds, so a change made within the same tick as our
/// read would leave the times (and so the cache's validators) as they were; a file
/// unchanged for this long will get a later time from any change.
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

/// The document root, held open so that every lookup resolves beneath it.
#[derive(Debug)]
pub struct DocRoot {
    dir: File,
    path: PathBuf,
    /// Set when the kernel lacks `openat2`; lookups then check canonical paths instead.
    no_openat2: AtomicBool,
    /// Small files' contents, with the window within which a changed file is not kept.
    cache: Option<(FileCache, Duration)>,
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
        })
    }

    /// Keeps small files in memory (see [`crate::cache`]); a file changed less than
    /// `racy_window` ago is served but not kept.
    pub fn with_cache(mut self, racy_window: Duration) -> DocRoot {
        self.cache = Some((FileCache::new(), racy_window));
        self
    }

    /// Opens what a safe path names. `scratch` names a directory's index.
    ///
    /// The type and permissions are checked with `fstatat` before anything is opened, so a
    /// FIFO, socket or device is never opened for reading. Only a regular, world-readable
    /// file is then opened with `openat2(RESOLVE_BENEATH)`, the kernel's own guarantee that
    /// the path stays under the root, and checked again through the open descriptor (the
    /// path may have changed in between). Refusals that `fstatat` alone would answer with a
    /// different status for paths outside the root (a missing file behind an outward
    /// symlink, a directory to redirect to) are confirmed beneath the root first, so the
    /// answers reveal nothing about what lies outside.
    pub fn lookup(&self, safe: &SafePath<'_>, scratch: &mut Vec<u8>) -> Result<Lookup, OpenError> {
        let mut path = safe.relative;
        let mut meta = self.stat(path)?;
        if meta.kind == FileType::Directory {
            self.confirm_beneath(path)?;
            if !safe.dir_form {
                return Ok(Lookup::Redirect);
            }
            scratch.clear();
            if !path.is_empty() {
                scratch.extend_from_slice(path);
                scratch.push(b'/');
            }
            scratch.extend_from_slice(INDEX_FILE.as_bytes());
            path = scratch;
            meta = self.stat(path).map_err(|err| match err {
                // Without an index (and without listing) a directory is not served.
                OpenError::NotFound => OpenError::Forbidden,
                other => other,
            })?;
        }
        meta.servable()?;
        if let Some((cache, _)) = &self.cache
            && let Some(hit) = cache.get(path, &meta.validators)
        {
            return Ok(Lookup::Cached(hit));
        }
        let file = self.open_beneath(path)?;
        let meta = Meta::of(&file)?;
        meta.servable()?;
        let content_type = content_type_of(path);
        if meta.len > CACHE_FILE_MAX {
            return Ok(Lookup::File(ServedFile {
                file,
                len: meta.len,
                modified: meta.modified,
                content_type,
            }));
        }
        // Bounded by CACHE_FILE_MAX, so the cast cannot truncate.
        let mut bytes = vec![0; meta.len as usize];
        // A file that shrank since fstat fails here: nothing has been promised yet.
        file.read_exact_at(&mut bytes, 0)
            .map_err(|_| OpenError::Io)?;
        let contents = CachedFile {
            validators: meta.validators,
            bytes: bytes.into_boxed_slice(),
            modified: meta.modified,
            content_type,
        };
        let settled = |racy: &Duration| {
            meta.changed
                .checked_add(*racy)
                .is_some_and(|quiet_since| quiet_since <= SystemTime::now())
        };
        Ok(Lookup::Cached(match &self.cache {
            Some((cache, racy)) if settled(racy) => cache.insert(path, contents),
            _ => Arc::new(contents),
        }))
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

    fn open_beneath(&self, relative: &[u8]) -> Result<File, OpenError> {
        // O_NONBLOCK: should the path have become a FIFO since it was checked, opening it
        // must still not wait for a writer.
        self.open_with(
            relative,
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        )
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

    fn cached_lookup(root: &DocRoot, target: &str) -> Result<Arc<CachedFile>, OpenError> {
        let mut scratch = PathScratch::default();
        let safe = resolve_target(target, &mut scratch).map_err(|_| OpenError::Io)?;
        match root.lookup(&safe, &mut Vec::new())? {
            Lookup::Cached(contents) => Ok(contents),
            other => panic!("{target}: {other:?}"),
        }
    }

    fn write_mode(path: &Path, bytes: &[u8], mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, bytes).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn the_cache_serves_the_current_version_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        write_mode(&path, b"first", 0o644);
        let root = DocRoot::open(dir.path())
            .unwrap()
            .with_cache(Duration::ZERO);
        let first = cached_lookup(&root, "/a.txt").unwrap();
        let again = cached_lookup(&root, "/a.txt").unwrap();
        assert!(
            Arc::ptr_eq(&first, &again),
            "the second lookup should be a hit"
        );
        // Rewritten in place, longer.
        write_mode(&path, b"second!", 0o644);
        assert_eq!(
            &cached_lookup(&root, "/a.txt").unwrap().bytes[..],
            b"second!"
        );
        // Replaced by another file of the same length (a new inode).
        let other = dir.path().join("b.tmp");
        write_mode(&other, b"third!!", 0o644);
        std::fs::rename(&other, &path).unwrap();
        assert_eq!(
            &cached_lookup(&root, "/a.txt").unwrap().bytes[..],
            b"third!!"
        );
        // Permissions are checked on every request, hit or not.
        write_mode(&path, b"third!!", 0o600);
        assert_eq!(
            cached_lookup(&root, "/a.txt").err(),
            Some(OpenError::Forbidden)
        );
    }

    #[test]
    fn a_recently_changed_file_is_served_but_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        write_mode(&dir.path().join("a.txt"), b"fresh", 0o644);
        let root = DocRoot::open(dir.path())
            .unwrap()
            .with_cache(Duration::from_secs(3600));
        let first = cached_lookup(&root, "/a.txt").unwrap();
        let again = cached_lookup(&root, "/a.txt").unwrap();
        assert_eq!(&again.bytes[..], b"fresh");
        assert!(
            !Arc::ptr_eq(&first, &again),
            "a file within the racy window was kept"
        );
    }
}
