//! Precompressed copies (`NAME.br`, `NAME.gz`) sent in place of a file to clients that
//! accept them, and `--max-age`. The copies here hold marked bytes rather than real
//! compressed data: the server never looks inside them, and marked bytes show which one
//! was sent (`lint.rs` lints real ones).

use std::path::Path;

use crate::support::{Response, Server, chmod, settle};

/// The bytes of a file `NAME` and of its copies, each of its own length.
struct Trio {
    plain: Vec<u8>,
    br: Vec<u8>,
    gz: Vec<u8>,
}

/// `len` bytes starting with `mark`, then a pattern, so any range shows where it came from.
fn marked(mark: &str, len: usize) -> Vec<u8> {
    let mut bytes = mark.as_bytes().to_vec();
    bytes.extend((bytes.len()..len).map(|i| b"0123456789abcdef"[i % 16]));
    bytes
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("write");
    chmod(path, 0o644);
}

/// Writes `name` and both copies under `dir`: the copies a half and a third of its size.
fn trio(dir: &Path, name: &str, len: usize) -> Trio {
    let trio = Trio {
        plain: marked("PLAIN", len),
        br: marked("BROTLI", len / 3),
        gz: marked("GZIP", len / 2),
    };
    write(&dir.join(name), &trio.plain);
    write(&dir.join(format!("{name}.br")), &trio.br);
    write(&dir.join(format!("{name}.gz")), &trio.gz);
    trio
}

fn accepting(coding: &str) -> String {
    format!("Accept-Encoding: {coding}\r\n")
}

/// Asserts what any answer about a file with copies says, and returns its coding.
fn coding_of(response: &Response) -> Option<&str> {
    assert_eq!(response.header("vary"), Some("Accept-Encoding"));
    response.header("content-encoding")
}

fn copies_follow_accept_encoding() {
    let root = tempfile::tempdir().expect("root");
    let trio = trio(root.path(), "style.css", 3000);
    let server = Server::start(root.path(), &["--quiet"]);
    let table: [(&str, Option<&str>); 17] = [
        ("", None),
        ("gzip", Some("gzip")),
        ("br", Some("br")),
        ("gzip, br", Some("br")),
        ("gzip, deflate, br, zstd", Some("br")),
        ("br;q=0, gzip", Some("gzip")),
        ("br;q=0.5, gzip;q=0.8", Some("gzip")),
        ("br;q=0.8, gzip;q=0.8", Some("br")),
        ("gzip;q=0", None),
        ("GZIP;Q=1.000", Some("gzip")),
        ("x-gzip", Some("gzip")),
        ("*", Some("br")),
        ("*;q=0", None),
        ("*, br;q=0", Some("gzip")),
        ("identity;q=0.9, gzip;q=0.5", None),
        ("identity", None),
        ("deflate, compress", None),
    ];
    for (accept, want) in table {
        let fields = if accept.is_empty() {
            String::new()
        } else {
            accepting(accept)
        };
        let response = server.ask("GET", "/style.css", &fields);
        assert_eq!(response.status, 200, "{accept:?}");
        assert_eq!(coding_of(&response), want, "{accept:?}");
        assert_eq!(
            response.header("content-type"),
            Some("text/css; charset=utf-8"),
            "{accept:?}"
        );
        let body = match want {
            None => &trio.plain,
            Some("br") => &trio.br,
            Some(_) => &trio.gz,
        };
        assert_eq!(response.body, *body, "{accept:?}");
        assert_eq!(
            response.header("content-length"),
            Some(body.len().to_string().as_str()),
            "{accept:?}"
        );
    }
    // Without the header, or with one that names nothing we have, the file as it is.
    let mut client = server.client();
    client.send(b"GET /style.css HTTP/1.0\r\n\r\n");
    assert_eq!(client.response().body, trio.plain);
}

fn each_coding_has_its_own_validators_and_every_answer_says_vary() {
    let root = tempfile::tempdir().expect("root");
    trio(root.path(), "app.js", 2000);
    let server = Server::start(root.path(), &["--quiet"]);
    let tag = |accept: &str| {
        let response = server.ask("GET", "/app.js", &accepting(accept));
        response.header("etag").expect("etag").to_string()
    };
    let (plain, br, gz) = (tag("identity"), tag("br"), tag("gzip"));
    assert!(plain != br && br != gz && plain != gz, "{plain} {br} {gz}");
    for (accept, etag) in [("identity", &plain), ("br", &br), ("gzip", &gz)] {
        // Its own tag: 304, which says Vary too, and the same tag.
        let fields = format!("{}If-None-Match: {etag}\r\n", accepting(accept));
        let response = server.ask("GET", "/app.js", &fields);
        assert_eq!(response.status, 304, "{accept}");
        assert_eq!(response.header("vary"), Some("Accept-Encoding"));
        assert_eq!(response.header("etag"), Some(etag.as_str()));
        // Another coding's tag: that representation was not the one the client has.
        for other in [&plain, &br, &gz].into_iter().filter(|t| *t != etag) {
            let fields = format!("{}If-None-Match: {other}\r\n", accepting(accept));
            let response = server.ask("GET", "/app.js", &fields);
            assert_eq!(response.status, 200, "{accept} with {other}");
            assert_eq!(response.header("etag"), Some(etag.as_str()));
        }
        let fields = format!("{}If-Match: {etag}\r\n", accepting(accept));
        assert_eq!(server.ask("GET", "/app.js", &fields).status, 200);
    }
    // 412 and 416 are about the file too.
    let failed = server.ask("GET", "/app.js", "If-Match: \"nope\"\r\n");
    assert_eq!(failed.status, 412);
    assert_eq!(failed.header("vary"), Some("Accept-Encoding"));
    let unsatisfiable = server.ask(
        "GET",
        "/app.js",
        &format!("{}Range: bytes=5000-\r\n", accepting("gzip")),
    );
    assert_eq!(unsatisfiable.status, 416);
    assert_eq!(unsatisfiable.header("vary"), Some("Accept-Encoding"));
    assert_eq!(unsatisfiable.header("content-range"), Some("bytes */1000"));
}

fn ranges_and_head_apply_to_the_bytes_sent() {
    let root = tempfile::tempdir().expect("root");
    // One small enough to be kept in memory, one sent from its descriptor.
    let small = trio(root.path(), "small.txt", 3000);
    let large = trio(root.path(), "large.txt", 600_000);
    let server = Server::start(root.path(), &["--quiet"]);
    for (name, trio) in [("/small.txt", &small), ("/large.txt", &large)] {
        let gz_len = trio.gz.len();
        let one = server.ask(
            "GET",
            name,
            &format!("{}Range: bytes=1-4\r\n", accepting("gzip")),
        );
        assert_eq!(one.status, 206, "{name}");
        assert_eq!(coding_of(&one), Some("gzip"));
        let whole = format!("bytes 1-4/{gz_len}");
        assert_eq!(one.header("content-range"), Some(whole.as_str()));
        assert_eq!(one.body, trio.gz[1..5]);
        // A suffix is of the copy's length, not the file's.
        let tail = server.ask(
            "GET",
            name,
            &format!("{}Range: bytes=-3\r\n", accepting("br")),
        );
        assert_eq!(tail.body, trio.br[trio.br.len() - 3..], "{name}");
        let several = server.ask(
            "GET",
            name,
            &format!("{}Range: bytes=0-1,-2\r\n", accepting("br")),
        );
        assert_eq!(several.status, 206, "{name}");
        assert_eq!(coding_of(&several), Some("br"));
        let body = &several.body;
        let (head, tail) = (&trio.br[..2], &trio.br[trio.br.len() - 2..]);
        let first_part = body
            .windows(2 + 4)
            .any(|w| w[..4] == *b"\r\n\r\n" && w[4..] == *head);
        assert!(first_part, "{name}: no part with the copy's first bytes");
        let last_part = body
            .windows(2 + 4)
            .any(|w| w[..4] == *b"\r\n\r\n" && w[4..] == *tail);
        assert!(last_part, "{name}: no part with the copy's last bytes");
        // HEAD says what GET would send.
        let head = server.ask("HEAD", name, &accepting("gzip"));
        assert_eq!(head.status, 200);
        assert_eq!(coding_of(&head), Some("gzip"));
        let length = gz_len.to_string();
        assert_eq!(head.header("content-length"), Some(length.as_str()));
        let head = server.ask(
            "HEAD",
            name,
            &format!("{}Range: bytes=1-4\r\n", accepting("gzip")),
        );
        assert_eq!(head.status, 206);
        assert_eq!(head.header("content-range"), Some(whole.as_str()));
        assert!(head.body.is_empty());
        // If-Range with the plain file's tag does not hold for the gzip copy: all of it.
        let plain_tag = server
            .ask("HEAD", name, "")
            .header("etag")
            .expect("etag")
            .to_string();
        let fields = format!(
            "{}Range: bytes=1-4\r\nIf-Range: {plain_tag}\r\n",
            accepting("gzip")
        );
        let response = server.ask("GET", name, &fields);
        assert_eq!(response.status, 200, "{name}");
        assert_eq!(response.body, trio.gz);
    }
}

fn a_copy_is_used_only_where_it_could_be_served_itself() {
    let root = tempfile::tempdir().expect("root");
    let outside = tempfile::tempdir().expect("outside");
    write(&outside.path().join("secret.gz"), b"SECRET");
    let dir = root.path();
    let plain = b"PLAIN BYTES";
    for name in ["private", "folder", "outside", "fifo", "socket"] {
        write(&dir.join(format!("{name}.txt")), plain);
    }
    write(&dir.join("private.txt.gz"), b"PRIVATE");
    chmod(&dir.join("private.txt.gz"), 0o600);
    std::fs::create_dir(dir.join("folder.txt.gz")).expect("mkdir");
    std::os::unix::fs::symlink(outside.path().join("secret.gz"), dir.join("outside.txt.gz"))
        .expect("symlink");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.join("fifo.txt.gz"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .expect("mkfifo");
    let _socket =
        std::os::unix::net::UnixListener::bind(dir.join("socket.txt.gz")).expect("socket");
    chmod(&dir.join("socket.txt.gz"), 0o666);
    // A copy whose original is missing.
    write(&dir.join("orphan.txt.gz"), b"ORPHAN");
    let server = Server::start(dir, &["--quiet"]);
    for name in ["private", "folder", "outside", "fifo", "socket"] {
        let target = format!("/{name}.txt");
        let response = server.ask("GET", &target, &accepting("gzip, br"));
        assert_eq!(response.status, 200, "{name}");
        assert_eq!(response.header("content-encoding"), None, "{name}");
        assert_eq!(response.header("vary"), None, "{name}");
        assert_eq!(response.body, plain, "{name}");
    }
    let orphan = server.ask("GET", "/orphan.txt", &accepting("gzip"));
    assert_eq!(orphan.status, 404);
    // Asked for by its own name, a copy is a file like any other.
    let itself = server.ask("GET", "/orphan.txt.gz", &accepting("gzip"));
    assert_eq!(itself.status, 200);
    assert_eq!(itself.header("content-encoding"), None);
    assert_eq!(itself.header("content-type"), Some("application/gzip"));
    assert_eq!(itself.body, b"ORPHAN");
    // The server is still serving.
    assert_eq!(server.ask("GET", "/private.txt", "").status, 200);
}

fn copies_added_changed_or_removed_show_on_the_next_request() {
    let root = tempfile::tempdir().expect("root");
    let dir = root.path();
    write(&dir.join("page.html"), &marked("PLAIN", 2000));
    settle(dir, &["page.html"]);
    let server = Server::start(dir, &["--quiet"]);
    let gzip = accepting("gzip");
    let get = || server.ask("GET", "/page.html", &gzip);
    // Asked twice, so the file is kept by the cache before its copy appears.
    for _ in 0..2 {
        let response = get();
        assert_eq!(response.header("content-encoding"), None);
        assert_eq!(response.header("vary"), None);
    }
    let steps: [(&str, Option<Vec<u8>>); 3] = [
        ("added", Some(marked("GZIP ONE", 700))),
        ("changed", Some(marked("GZIP TWO", 900))),
        ("removed", None),
    ];
    for (what, copy) in steps {
        let path = dir.join("page.html.gz");
        match &copy {
            Some(bytes) => {
                write(&path, bytes);
                // Kept by the cache from now on, so that what follows checks an entry.
                settle(dir, &["page.html", "page.html.gz"]);
            }
            None => std::fs::remove_file(&path).expect("remove"),
        }
        let response = get();
        match &copy {
            Some(bytes) => {
                assert_eq!(coding_of(&response), Some("gzip"), "{what}");
                assert_eq!(response.body, *bytes, "{what}");
                // And once more, answered from the cache.
                assert_eq!(get().body, *bytes, "{what}, cached");
            }
            None => {
                assert_eq!(response.header("content-encoding"), None, "{what}");
                assert_eq!(response.body, marked("PLAIN", 2000), "{what}");
            }
        }
    }
}

fn no_precompressed_sends_the_file_itself() {
    let root = tempfile::tempdir().expect("root");
    let trio = trio(root.path(), "style.css", 3000);
    let server = Server::start(root.path(), &["--quiet", "--no-precompressed"]);
    let response = server.ask("GET", "/style.css", &accepting("br, gzip"));
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-encoding"), None);
    assert_eq!(response.header("vary"), None);
    assert_eq!(response.body, trio.plain);
    // The copies are still files of their own.
    let copy = server.ask("GET", "/style.css.br", "");
    assert_eq!((copy.status, copy.body), (200, trio.br));
}

fn max_age_is_on_the_answers_of_files() {
    let root = tempfile::tempdir().expect("root");
    let dir = root.path();
    trio(dir, "style.css", 3000);
    write(&dir.join("plain.txt"), &marked("PLAIN", 5000));
    std::fs::create_dir(dir.join("sub")).expect("mkdir");
    write(&dir.join("sub/index.html"), b"<p>sub</p>");
    std::fs::create_dir(dir.join("listed")).expect("mkdir");
    write(&dir.join("listed/a.txt"), b"a");
    let etag = |server: &Server| {
        let response = server.ask("GET", "/plain.txt", "");
        response.header("etag").expect("etag").to_string()
    };
    // A listing changes with its directory: revalidated by its ETag, never given an age.
    for (flags, want) in [
        (&["--max-age", "600"][..], Some("public, max-age=600")),
        (&["--max-age=0"][..], Some("public, max-age=0")),
        (&[][..], None),
    ] {
        let server = Server::start(dir, &[&["--quiet", "--list-dirs"][..], flags].concat());
        let tag = etag(&server);
        let table: [(&str, &str, String, u16, Option<&str>); 13] = [
            ("GET", "/plain.txt", String::new(), 200, want),
            ("HEAD", "/plain.txt", String::new(), 200, want),
            ("GET", "/style.css", accepting("gzip"), 200, want),
            ("GET", "/listed/", String::new(), 200, None),
            ("GET", "/nope", String::new(), 404, None),
            ("GET", "/sub/", String::new(), 200, want),
            (
                "GET",
                "/plain.txt",
                "Range: bytes=0-1\r\n".into(),
                206,
                want,
            ),
            (
                "GET",
                "/plain.txt",
                "Range: bytes=0-1,5-6\r\n".into(),
                206,
                want,
            ),
            (
                "GET",
                "/plain.txt",
                format!("If-None-Match: {tag}\r\n"),
                304,
                want,
            ),
            ("GET", "/plain.txt", "If-Match: \"x\"\r\n".into(), 412, None),
            (
                "GET",
                "/plain.txt",
                "Range: bytes=9000-\r\n".into(),
                416,
                None,
            ),
            ("GET", "/sub", String::new(), 301, None),
            ("DELETE", "/plain.txt", String::new(), 405, None),
        ];
        for (method, target, fields, status, cache_control) in table {
            let response = server.ask(method, target, &fields);
            let what = format!("{flags:?} {method} {target} {fields:?}");
            assert_eq!(response.status, status, "{what}");
            assert_eq!(response.header("cache-control"), cache_control, "{what}");
        }
    }
}

crate::both_models!(
    copies_follow_accept_encoding,
    each_coding_has_its_own_validators_and_every_answer_says_vary,
    ranges_and_head_apply_to_the_bytes_sent,
    a_copy_is_used_only_where_it_could_be_served_itself,
    copies_added_changed_or_removed_show_on_the_next_request,
    no_precompressed_sends_the_file_itself,
    max_age_is_on_the_answers_of_files,
);
