//! The resolver and the lookup, called directly as library functions (no server process):
//! hostile targets against a tree full of traps, friendly targets that must still be
//! served, and a property test that no combination of path pieces reads outside the root.
//!
//! Expected statuses follow the documented rules: bad form, bad escape, NUL and climbing
//! above the root → 400; dot-files (but a first `.well-known`) and missing paths → 404;
//! anything outside the root, not a regular file, not world-readable, or a directory
//! without an index → 403.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::symlink;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use poolhttpd::cache::{CachedFile, Contents};
use poolhttpd::files::{DocRoot, Lookup, PathScratch, resolve_target};
use proptest::prelude::*;
use proptest::test_runner::Config;

use crate::support::chmod;

/// Written outside the root only: finding it in any answer means the root leaked.
const SECRET: &str = "TOP-SECRET-resolver-9d27e1";
/// The start of `/etc/passwd`, reachable only through a symlink that leads out.
const PASSWD: &str = "root:";

const BAD_REQUEST: u16 = 400;
const FORBIDDEN: u16 = 403;
const NOT_FOUND: u16 = 404;

/// A temporary tree and what must outlive the test that uses it.
struct Tree {
    top: tempfile::TempDir,
    /// Kept open so that `root/sock` is a live socket while the test runs.
    _socket: UnixListener,
}

impl Tree {
    fn root_path(&self) -> PathBuf {
        self.top.path().join("root")
    }

    fn doc_root(&self) -> DocRoot {
        DocRoot::open(&self.root_path()).expect("open the document root")
    }
}

/// Writes `contents` with an explicit mode, so the umask cannot make a servable file
/// unservable (or the reverse).
fn write(path: &Path, contents: &str, mode: u32) {
    std::fs::write(path, contents).expect("write");
    chmod(path, mode);
}

/// Builds `top/{secret.txt, outside/secret.txt}` and `top/root/`, the document root, with
/// every kind of trap in it.
fn tree() -> Tree {
    let top = tempfile::tempdir().expect("temporary directory");
    let outside = top.path().join("outside");
    let root = top.path().join("root");
    for dir in ["a/b", "noindex", ".well-known", ".git"] {
        std::fs::create_dir_all(root.join(dir)).expect("mkdir");
    }
    std::fs::create_dir_all(&outside).expect("mkdir");
    // Outside files are larger than the cache takes, so that a lookup that ever reached one
    // would hand back an open descriptor for the property test to trace; the small
    // `/etc/passwd` behind a symlink covers the in-memory path.
    let secret = format!("{SECRET}\n{}", "padding ".repeat(10_000));
    write(&top.path().join("secret.txt"), &secret, 0o644);
    write(&outside.join("secret.txt"), &secret, 0o644);
    write(&outside.join("index.html"), &secret, 0o644);

    write(&root.join("index.html"), "home", 0o644);
    write(&root.join("a/b/inside.txt"), "inside", 0o644);
    write(&root.join("noindex/file.txt"), "listed nowhere", 0o644);
    write(&root.join(".well-known/x.txt"), "well known", 0o644);
    write(&root.join(".git/config"), "git config", 0o644);
    write(&root.join(".env"), "env", 0o644);
    // Root reads these anyway; the world-readable bit alone decides.
    write(&root.join("private.txt"), "private", 0o600);
    write(&root.join("group.txt"), "group", 0o640);
    write(&root.join("with space.txt"), "spaced", 0o644);
    write(&root.join("café.txt"), "coffee", 0o644);

    let fifo = Command::new("mkfifo")
        .arg(root.join("pipe"))
        .status()
        .expect("run mkfifo");
    assert!(fifo.success(), "mkfifo failed");
    let socket = UnixListener::bind(root.join("sock")).expect("bind a unix socket");

    let links: [(&Path, &str); 14] = [
        (Path::new("/dev/null"), "null"),
        (&outside.join("secret.txt"), "out-file"),
        (&outside, "out-dir"),
        (Path::new("../outside/secret.txt"), "out-rel-file"),
        (Path::new("../outside"), "out-rel-dir"),
        (Path::new("../secret.txt"), "out-top"),
        (Path::new("/nonexistent-poolhttpd"), "out-dangling"),
        (Path::new("/etc/passwd"), "passwd"),
        (Path::new("loop2"), "loop1"),
        (Path::new("loop1"), "loop2"),
        (Path::new("a/b/inside.txt"), "in-link"),
        (Path::new("a"), "in-dir"),
        (Path::new("pipe"), "pipe-link"),
        (Path::new("sock"), "sock-link"),
    ];
    for (target, name) in links {
        symlink(target, root.join(name)).expect("symlink");
    }
    Tree {
        top,
        _socket: socket,
    }
}

/// Both steps, as the handler runs them (with the first worker's watcher, if the root
/// watches); errors become their status code.
fn lookup(root: &DocRoot, target: &str) -> Result<Lookup, u16> {
    let mut scratch = PathScratch::default();
    let safe = resolve_target(target, &mut scratch).map_err(|err| err.status().code())?;
    let mut index = Vec::new();
    root.lookup(&safe, &mut index, root.watcher(0).as_mut())
        .map_err(|err| err.status().code())
}

/// A found file's bytes.
fn body_of(file: &CachedFile) -> Vec<u8> {
    match &file.contents {
        Contents::Bytes(bytes) => bytes.to_vec(),
        Contents::Open(open) => {
            let mut body = Vec::new();
            (&**open).read_to_end(&mut body).expect("read the file");
            body
        }
    }
}

/// `("file", body)` or `("redirect", [])`, or the refusal's status.
fn resolve(root: &DocRoot, target: &str) -> Result<(String, Vec<u8>), u16> {
    match lookup(root, target)? {
        Lookup::File(file) => Ok(("file".to_string(), body_of(&file))),
        Lookup::Redirect => Ok(("redirect".to_string(), Vec::new())),
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// Every row's outcome, described for a failure message.
fn describe(got: &Result<(String, Vec<u8>), u16>) -> String {
    match got {
        Ok((kind, body)) => format!("{kind} {:?}", String::from_utf8_lossy(body)),
        Err(status) => status.to_string(),
    }
}

/// Each row against the plain root, then twice against one that caches files and checks
/// them with `stat`, then twice against one that watches them (no racy window, so each
/// second pass is served from the cache, the watched one without `stat`).
fn five_passes<'t, T>(
    plain: &'t DocRoot,
    cached: &'t DocRoot,
    watched: &'t DocRoot,
    table: &'t [T],
) -> impl Iterator<Item = (&'t DocRoot, &'t T)> {
    let pass = move |root: &'t DocRoot| table.iter().map(move |row| (root, row));
    let twice = move |root: &'t DocRoot| pass(root).chain(pass(root));
    pass(plain).chain(twice(cached)).chain(twice(watched))
}

#[test]
fn hostile_paths_table() {
    let tree = tree();
    let root = tree.doc_root();
    let long_segment = format!("/{}", "x".repeat(300));
    let long_path = format!("/{}", "x/".repeat(2100));
    let long_climb = format!("/a/{}etc/passwd", "../".repeat(1000));
    let table: Vec<(&str, u16)> = vec![
        // Plain and encoded `..`: climbing above the root is refused before any lookup.
        ("/..", BAD_REQUEST),
        ("/../secret.txt", BAD_REQUEST),
        ("/../outside/secret.txt", BAD_REQUEST),
        ("/../../../../../../etc/passwd", BAD_REQUEST),
        ("/a/b/../../../secret.txt", BAD_REQUEST),
        ("/./../secret.txt", BAD_REQUEST),
        ("//../secret.txt", BAD_REQUEST),
        ("/%2e%2e/secret.txt", BAD_REQUEST),
        ("/%2E%2E/secret.txt", BAD_REQUEST),
        ("/%2e%2E/secret.txt", BAD_REQUEST),
        ("/.%2e/secret.txt", BAD_REQUEST),
        ("/%2e./secret.txt", BAD_REQUEST),
        ("/..%2fsecret.txt", BAD_REQUEST),
        ("/..%2Fsecret.txt", BAD_REQUEST),
        ("/%2e%2e%2f%2e%2e%2fetc%2fpasswd", BAD_REQUEST),
        ("/a/%2e%2e/%2e%2e/secret.txt", BAD_REQUEST),
        ("/a/..%2f..%2fsecret.txt", BAD_REQUEST),
        ("/index.html/../../secret.txt", BAD_REQUEST),
        // Lexically `in-dir/..` is the root, whatever the link points at.
        ("/in-dir/../../secret.txt", BAD_REQUEST),
        (&long_climb, BAD_REQUEST),
        // Absolute-form: the authority is dropped, the path judged as any other.
        ("http://h/../secret.txt", BAD_REQUEST),
        ("http://h/%2e%2e/%2e%2e/etc/passwd", BAD_REQUEST),
        ("https://h/a/../../secret.txt", BAD_REQUEST),
        ("HTTP://h:80/%2E%2E/secret.txt", BAD_REQUEST),
        // `..` as the authority is only a host name: `/secret.txt` is not in the root.
        ("http://../secret.txt", NOT_FOUND),
        // Decoded once only: these are ordinary names that do not exist, or dot-names.
        ("/%252e%252e/secret.txt", NOT_FOUND),
        ("/..%252fsecret.txt", NOT_FOUND),
        ("/%c0%ae%c0%ae/secret.txt", NOT_FOUND),
        ("/%c0%af../secret.txt", NOT_FOUND),
        ("/%c0%ae%c0%ae%c0%afetc%c0%afpasswd", NOT_FOUND),
        ("/%20../secret.txt", NOT_FOUND),
        // Backslashes and odd dots are not separators nor `..`; they start dot-names.
        ("/..\\secret.txt", NOT_FOUND),
        ("/..%5csecret.txt", NOT_FOUND),
        ("/..%5c..%5csecret.txt", NOT_FOUND),
        ("/..;/secret.txt", NOT_FOUND),
        ("/....//secret.txt", NOT_FOUND),
        ("/.../secret.txt", NOT_FOUND),
        // NUL anywhere in the path, raw or encoded.
        ("/%00", BAD_REQUEST),
        ("/%00../secret.txt", BAD_REQUEST),
        ("/..%00/secret.txt", BAD_REQUEST),
        ("/index.html%00", BAD_REQUEST),
        ("/index.html%00.txt", BAD_REQUEST),
        ("/a/%00/b", BAD_REQUEST),
        ("/.%00./secret.txt", BAD_REQUEST),
        ("/a\0b", BAD_REQUEST),
        // The query is cut before decoding, so its NUL never matters.
        ("/secret.txt?x=%00", NOT_FOUND),
        // Bad escapes.
        ("/%", BAD_REQUEST),
        ("/%2", BAD_REQUEST),
        ("/%zz", BAD_REQUEST),
        ("/%%2e%2e/secret.txt", BAD_REQUEST),
        ("/%u002e%u002e/secret.txt", BAD_REQUEST),
        // Dot-files, plain and encoded.
        ("/.git/config", NOT_FOUND),
        ("/.git/", NOT_FOUND),
        ("/%2egit/config", NOT_FOUND),
        ("/%2Egit%2fconfig", NOT_FOUND),
        ("/.env", NOT_FOUND),
        ("/%2eenv", NOT_FOUND),
        ("/a/.env", NOT_FOUND),
        ("/in-dir/../.env", NOT_FOUND),
        ("http://h/.git/config", NOT_FOUND),
        // `.well-known` is served only as the first segment, and hides nothing beneath it.
        ("/a/.well-known/x.txt", NOT_FOUND),
        ("/.well-known/../.git/config", NOT_FOUND),
        ("/.well-known%2f..%2f.git%2fconfig", NOT_FOUND),
        ("/.well-known/.hidden", NOT_FOUND),
        ("/.WELL-KNOWN/x.txt", NOT_FOUND),
        ("/.well-known./x.txt", NOT_FOUND),
        // Symlinks that lead out, to files, directories and nowhere.
        ("/out-file", FORBIDDEN),
        ("/out-dir", FORBIDDEN),
        ("/out-dir/", FORBIDDEN),
        ("/out-dir/secret.txt", FORBIDDEN),
        ("/out-dir/missing.txt", FORBIDDEN),
        ("/out-rel-file", FORBIDDEN),
        ("/out-rel-dir/secret.txt", FORBIDDEN),
        ("/out-rel-dir/", FORBIDDEN),
        ("/out-top", FORBIDDEN),
        ("/out-dangling", FORBIDDEN),
        ("/passwd", FORBIDDEN),
        ("http://h/out-dir/secret.txt", FORBIDDEN),
        // Not regular files: FIFO, socket, device, and symlinks to them.
        ("/pipe", FORBIDDEN),
        ("/pipe-link", FORBIDDEN),
        ("/sock", FORBIDDEN),
        ("/sock-link", FORBIDDEN),
        ("/null", FORBIDDEN),
        // A symlink loop never resolves to anything servable.
        ("/loop1", FORBIDDEN),
        ("/loop2/x", FORBIDDEN),
        // Not world-readable, though the tests run as root.
        ("/private.txt", FORBIDDEN),
        ("/group.txt", FORBIDDEN),
        // Directories without an index.
        ("/noindex/", FORBIDDEN),
        ("/a/b/", FORBIDDEN),
        // A file used as a directory, names the kernel refuses, paths that are not there.
        ("/index.html/x", NOT_FOUND),
        ("/in-link/x", NOT_FOUND),
        ("//etc/passwd", NOT_FOUND),
        ("/proc/self/root/etc/passwd", NOT_FOUND),
        (&long_segment, NOT_FOUND),
        (&long_path, NOT_FOUND),
        // Neither origin-form nor absolute-form.
        ("*", BAD_REQUEST),
        ("", BAD_REQUEST),
        ("index.html", BAD_REQUEST),
        ("../secret.txt", BAD_REQUEST),
        ("..", BAD_REQUEST),
        ("%2e%2e/secret.txt", BAD_REQUEST),
        ("\\..\\secret.txt", BAD_REQUEST),
        ("ftp://h/secret.txt", BAD_REQUEST),
        ("file:///etc/passwd", BAD_REQUEST),
        ("http://", BAD_REQUEST),
    ];
    let cached = tree.doc_root().with_cache(Duration::ZERO);
    let watched = tree.doc_root().with_watched_cache(Duration::ZERO, 1);
    let runs: Vec<_> = five_passes(&root, &cached, &watched, &table).collect();
    let mut failures = Vec::new();
    for &(root, (target, want)) in &runs {
        let got = resolve(root, target);
        // Checked first and separately: a leak is worse than a wrong status.
        if let Ok((_, body)) = &got {
            assert!(!contains(body, SECRET), "{target}: served the secret");
            assert!(!contains(body, PASSWD), "{target}: served /etc/passwd");
        }
        if got != Err(*want) {
            failures.push(format!("{target:?}: want {want}, got {}", describe(&got)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} lookups differ:\n{}",
        failures.len(),
        runs.len(),
        failures.join("\n")
    );
}

/// A device inside the root is refused for not being a regular file, and never opened
/// (reading `zero` would not end). The hostile table's `/null` is a link leading out of
/// its root, refused for that before its type matters; `mknod` may be refused to the
/// tests, so here the root is `/dev` itself.
#[test]
fn devices_inside_the_root_are_forbidden() {
    let plain = DocRoot::open(Path::new("/dev")).expect("open /dev");
    let cached = DocRoot::open(Path::new("/dev"))
        .expect("open /dev")
        .with_cache(Duration::ZERO);
    let watched = DocRoot::open(Path::new("/dev"))
        .expect("open /dev")
        .with_watched_cache(Duration::ZERO, 1);
    let table = ["/null", "/zero", "/urandom"];
    for (root, target) in five_passes(&plain, &cached, &watched, &table) {
        let got = resolve(root, target);
        assert_eq!(got, Err(FORBIDDEN), "/dev{target}: {}", describe(&got));
    }
}

#[test]
fn friendly_paths_table() {
    let tree = tree();
    let root = tree.doc_root();
    let file = |body: &str| Ok(("file".to_string(), body.as_bytes().to_vec()));
    let redirect = || Ok(("redirect".to_string(), Vec::new()));
    let table = [
        ("/", file("home")),
        ("/index.html", file("home")),
        ("/a/b/inside.txt", file("inside")),
        ("/a/b/../b/inside.txt", file("inside")),
        ("/./a/./b/./inside.txt", file("inside")),
        ("//a//b//inside.txt", file("inside")),
        ("/%61/b/inside.txt", file("inside")),
        // `%2f` is a separator once decoded.
        ("/a%2fb%2Finside.txt", file("inside")),
        ("/caf%C3%A9.txt", file("coffee")),
        ("/caf%c3%a9.txt", file("coffee")),
        ("/café.txt", file("coffee")),
        ("/with%20space.txt", file("spaced")),
        ("/.well-known/x.txt", file("well known")),
        ("/%2ewell-known/x.txt", file("well known")),
        // Symlinks that stay inside the root are followed.
        ("/in-link", file("inside")),
        ("/in-dir/b/inside.txt", file("inside")),
        ("/in-dir", redirect()),
        // Directories: no slash → redirect; slash → the index, or 403 without one.
        ("/a", redirect()),
        ("/noindex", redirect()),
        ("/a/", Err(FORBIDDEN)),
        ("/a/b/..", Err(FORBIDDEN)),
        // `..` that stays inside the root, ending on the root itself.
        ("/a/..", file("home")),
        // Absolute-form, query strings and fragments.
        ("http://example.com/a/b/inside.txt", file("inside")),
        ("HTTPS://h:8443/index.html?x=1#f", file("home")),
        ("http://h", file("home")),
        ("http://h?q=1", file("home")),
        ("/a/b/inside.txt?../../secret.txt", file("inside")),
        ("/a/b/inside.txt#/../../secret.txt", file("inside")),
    ];
    let cached = tree.doc_root().with_cache(Duration::ZERO);
    let watched = tree.doc_root().with_watched_cache(Duration::ZERO, 1);
    let runs: Vec<_> = five_passes(&root, &cached, &watched, &table).collect();
    let mut failures = Vec::new();
    for &(root, (target, want)) in &runs {
        let got = resolve(root, target);
        if got != *want {
            let want = describe(want);
            failures.push(format!("{target:?}: want {want}, got {}", describe(&got)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} lookups differ:\n{}",
        failures.len(),
        runs.len(),
        failures.join("\n")
    );
    // The passes over the caching roots test the cache only if it serves them: a file
    // looked up again is the entry kept the first time, where the plain root opens it anew.
    let file = |root: &DocRoot, target: &str| match lookup(root, target) {
        Ok(Lookup::File(file)) => file,
        other => panic!("{target}: not a file: {other:?}"),
    };
    let files = table
        .iter()
        .filter(|(_, want)| matches!(want, Ok((kind, _)) if kind == "file"));
    for (target, _) in files {
        let kept = |root: &DocRoot| Arc::ptr_eq(&file(root, target), &file(root, target));
        assert!(!kept(&root), "{target}: the plain root kept a file");
        assert!(kept(&cached), "{target}: not served from the cache");
        assert!(
            kept(&watched),
            "{target}: not served from the watched cache"
        );
    }
}

/// Pieces that, concatenated, make traversal attempts, dot-names, bad escapes and names
/// of the links that lead out.
const PIECES: &[&str] = &[
    "/",
    "..",
    ".",
    "%2e",
    "%2E",
    "%2f",
    "%2F",
    "%5c",
    "\\",
    "a",
    "b",
    "%00",
    "%",
    "%2",
    "outside",
    "secret.txt",
    "out-dir",
    "out-file",
    "out-rel-dir",
    "in-link",
    "in-dir",
    "passwd",
    "index.html",
    ".well-known",
    "?",
    "#",
    ";",
    "%252e",
    "%c0%ae",
    "//",
];

fn target_strategy() -> impl Strategy<Value = String> {
    // Bare pieces mostly make relative targets (400) and `http://h` + piece mostly a host
    // name (the root), so half the cases get a leading `/` to reach the file system.
    let prefix = prop::sample::select(&["", "/", "http://h", "http://h/"][..]);
    let pieces = prop::collection::vec(prop::sample::select(PIECES), 1..12);
    (prefix, pieces).prop_map(|(prefix, pieces)| format!("{prefix}{}", pieces.concat()))
}

/// One tree for all cases; the closure form of `proptest!` runs inside this test, so the
/// tree is built once and removed at the end.
#[test]
fn no_piece_combination_leaves_the_root() {
    let tree = tree();
    let root = tree.doc_root();
    let canonical_root = tree
        .root_path()
        .canonicalize()
        .expect("canonicalize the root");
    let (root, canonical_root) = (&root, canonical_root.as_path());
    proptest!(Config::with_cases(2000), move |(target in target_strategy())| {
        let mut scratch = PathScratch::default();
        if let Ok(safe) = resolve_target(&target, &mut scratch) {
            let relative = safe.relative;
            prop_assert!(relative.first() != Some(&b'/'), "{target:?}: leading slash");
            if !relative.is_empty() {
                for segment in relative.split(|&b| b == b'/') {
                    prop_assert!(
                        !matches!(segment, b"" | b"." | b".."),
                        "{target:?}: segment {:?} in {:?}",
                        String::from_utf8_lossy(segment),
                        String::from_utf8_lossy(relative),
                    );
                }
            }
        }
        if let Ok(Lookup::File(file)) = lookup(root, &target) {
            if let Contents::Open(open) = &file.contents {
                // Where the kernel says the descriptor is, not where the path said.
                let fd_link = format!("/proc/self/fd/{}", open.as_raw_fd());
                let real = std::fs::read_link(&fd_link).expect("read the descriptor's link");
                prop_assert!(
                    real.starts_with(canonical_root),
                    "{target:?} opened {}",
                    real.display()
                );
            }
            let body = body_of(&file);
            prop_assert!(!contains(&body, SECRET), "{target:?}: served the secret");
            prop_assert!(!contains(&body, PASSWD), "{target:?}: served /etc/passwd");
        }
    });
}
