//! `--list-dirs`: a directory without `index.html` is listed as an HTML page, showing
//! exactly what the server would serve; without the flag it stays 403.

use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use percent_encoding::{NON_ALPHANUMERIC, percent_decode, percent_encode};

use crate::support::{Client, Response, STEP, Server, chmod, error_page, settle};

const LIST: &[&str] = &["--list-dirs"];

/// Writes `contents` with an explicit mode, whatever the umask says.
fn write(path: &Path, contents: &[u8], mode: u32) {
    testkit::files::write(path, contents, mode).expect("write");
}

fn mkdir(path: &Path, mode: u32) {
    std::fs::create_dir_all(path).expect("mkdir");
    chmod(path, mode);
}

/// One row of a listing: the link as written, and the name as shown (still escaped).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    href: String,
    shown: String,
}

impl Row {
    /// The bytes the link names, percent-decoded.
    fn target(&self) -> Vec<u8> {
        percent_decode(self.href.as_bytes()).collect()
    }
}

/// The rows of a listing's table, in order, the parent link included.
fn rows(page: &str) -> Vec<Row> {
    let Some(start) = page.find("<tbody>") else {
        panic!("no table body in {page}");
    };
    let end = page.find("</tbody>").expect("end of table body");
    let mut rows = Vec::new();
    let mut rest = &page[start..end];
    while let Some(at) = rest.find("<a href=\"") {
        rest = &rest[at + 9..];
        let quote = rest.find('"').expect("closing quote");
        let href = rest[..quote].to_string();
        let text_start = rest.find('>').expect("end of a") + 1;
        let text_end = rest.find("</a>").expect("</a>");
        rows.push(Row {
            href,
            shown: rest[text_start..text_end].to_string(),
        });
        rest = &rest[text_end..];
    }
    rows
}

/// The links of a listing, parent link left out.
fn hrefs(page: &str) -> Vec<String> {
    rows(page)
        .into_iter()
        .map(|row| row.href)
        .filter(|href| href != "../")
        .collect()
}

/// A listing, checked for what every listing response carries.
fn listing(client: &mut Client, target: &str) -> Response {
    let response = client.get(target);
    assert_eq!(response.status, 200, "{target}: {}", response.text());
    assert_eq!(
        response.header("content-type"),
        Some("text/html; charset=utf-8"),
        "{target}"
    );
    assert_eq!(
        response.header("content-length"),
        Some(response.body.len().to_string().as_str()),
        "{target}"
    );
    assert!(response.header("etag").is_some(), "{target}: no ETag");
    assert!(
        response.header("last-modified").is_some(),
        "{target}: no Last-Modified"
    );
    assert_eq!(response.count("transfer-encoding"), 0, "{target}");
    // A listing is answered whole; it does not offer ranges.
    assert_eq!(response.count("accept-ranges"), 0, "{target}");
    let page = response.text();
    assert!(page.starts_with("<!DOCTYPE html>"), "{target}: {page}");
    assert!(page.contains("<meta charset=\"utf-8\">"), "{target}");
    assert!(page.contains("<th>Name</th><th>Size</th>"), "{target}");
    response
}

fn without_the_flag_a_directory_without_index_is_403() {
    let root = tempfile::tempdir().expect("root");
    mkdir(&root.path().join("bare"), 0o755);
    write(&root.path().join("bare/a.txt"), b"a", 0o644);
    mkdir(&root.path().join("indexed"), 0o755);
    write(&root.path().join("indexed/index.html"), b"the index", 0o644);
    let off = Server::start(root.path(), &[]);
    for target in ["/bare/", "/bare/?x=1", "/"] {
        let response = off.client().get(target);
        assert_eq!(
            (response.status, response.body),
            (403, error_page(403)),
            "{target}"
        );
    }
    // With the flag, a directory with an index still serves it.
    let on = Server::start(root.path(), LIST);
    let response = on.client().get("/indexed/");
    assert_eq!(
        (response.status, response.text()),
        (200, "the index".into())
    );
    assert_eq!(on.client().get("/bare/").status, 200);
}

fn a_listing_shows_directories_first_then_files_by_name_with_size_and_time() {
    let root = tempfile::tempdir().expect("root");
    let d = root.path().join("d");
    mkdir(&d, 0o755);
    write(&d.join("b.txt"), &[b'b'; 1536], 0o644);
    write(&d.join("A.txt"), b"a", 0o644);
    write(&d.join("c.bin"), &[0; 3 << 20], 0o644);
    write(&d.join("empty"), b"", 0o644);
    mkdir(&d.join("zeta"), 0o755);
    mkdir(&d.join("Alpha"), 0o755);
    write(&d.join("Alpha/index.html"), b"alpha", 0o644);
    write(&d.join(".hidden"), b"h", 0o644);
    mkdir(&d.join(".git"), 0o755);
    mkdir(&root.path().join(".well-known"), 0o755);
    write(&root.path().join("top.txt"), b"top", 0o644);
    // A known time, so the page's can be checked.
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    std::fs::File::options()
        .write(true)
        .open(d.join("A.txt"))
        .and_then(|file| file.set_modified(when))
        .expect("set the time");
    let server = Server::start(root.path(), LIST);
    let mut client = server.client();

    let page = listing(&mut client, "/d/").text();
    assert!(page.contains("<title>Index of /d/</title>"), "{page}");
    assert!(page.contains("<h1>Index of /d/</h1>"), "{page}");
    let shown: Vec<String> = rows(&page).into_iter().map(|row| row.shown).collect();
    assert_eq!(
        shown,
        ["../", "Alpha/", "zeta/", "A.txt", "b.txt", "c.bin", "empty"],
        "{page}"
    );
    assert_eq!(
        hrefs(&page),
        ["Alpha/", "zeta/", "A.txt", "b.txt", "c.bin", "empty"]
    );
    for cell in [
        "<td title=\"1 byte\">1 B</td>",
        "<td title=\"1536 bytes\">1.5 KiB</td>",
        "<td title=\"3145728 bytes\">3.0 MiB</td>",
        "<td title=\"0 bytes\">0 B</td>",
        "<time datetime=\"2023-11-14T22:13:20Z\">2023-11-14 22:13</time>",
    ] {
        assert!(page.contains(cell), "no {cell} in {page}");
    }
    assert!(!page.contains("cut short"), "{page}");

    // The root has no parent link, and hides `.well-known` as it hides every dot-file.
    let page = listing(&mut client, "/").text();
    assert!(page.contains("<title>Index of /</title>"), "{page}");
    assert_eq!(hrefs(&page), ["d/", "top.txt"]);
    assert!(rows(&page).iter().all(|row| row.href != "../"), "{page}");
}

fn names_are_escaped_in_text_and_encoded_in_links() {
    let root = tempfile::tempdir().expect("root");
    let d = root.path().join("d");
    mkdir(&d, 0o755);
    // Each name with the text the page must show for it.
    let names: [(&[u8], &str); 9] = [
        (b"a&b <i>.txt", "a&amp;b &lt;i&gt;.txt"),
        (
            b"\"quoted\" 'single'",
            "&quot;quoted&quot; &#39;single&#39;",
        ),
        (b"50% off?#frag", "50% off?#frag"),
        (b"x:y", "x:y"),
        ("café ☕".as_bytes(), "café ☕"),
        (b"bad\xff\xfe.bin", "bad\u{fffd}\u{fffd}.bin"),
        (b"line\nbreak", "line\u{240a}break"),
        (b"%41", "%41"),
        (b"back\\slash", "back\\slash"),
    ];
    for (index, (name, _)) in names.iter().enumerate() {
        let path = d.join(std::ffi::OsStr::from_bytes(name));
        write(&path, format!("file {index}").as_bytes(), 0o644);
    }
    let server = Server::start(root.path(), LIST);
    let mut client = server.client();
    let page = listing(&mut client, "/d/").text();
    let rows: Vec<Row> = rows(&page)
        .into_iter()
        .filter(|row| row.href != "../")
        .collect();
    assert_eq!(rows.len(), names.len(), "{page}");
    for (index, (name, shown)) in names.iter().enumerate() {
        let Some(row) = rows.iter().find(|row| row.target() == *name) else {
            panic!("no link to {name:?} in {page}");
        };
        assert_eq!(row.shown, *shown, "{name:?}");
        // Only unreserved characters and escapes: nothing a browser could misread.
        assert!(
            row.href
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)),
            "{:?}",
            row.href
        );
        // The link, resolved against the listing's URL, serves the file.
        let response = client.get(&format!("/d/{}", row.href));
        assert_eq!(
            (response.status, response.text()),
            (200, format!("file {index}")),
            "{name:?} via {}",
            row.href
        );
    }
}

/// Every kind of thing a directory can hold that the server refuses, and some it serves,
/// for a listing and for the requests that follow its links.
fn trap_tree(top: &Path) -> UnixListener {
    let root = top.join("root");
    let d = root.join("d");
    let outside = top.join("outside");
    mkdir(&outside, 0o755);
    write(&outside.join("secret.txt"), b"secret", 0o644);
    mkdir(&d, 0o755);
    write(&d.join("file.txt"), b"file", 0o644);
    write(&d.join("private.txt"), b"private", 0o600);
    write(&d.join("group.txt"), b"group", 0o640);
    write(&d.join("exec-only"), b"x", 0o711);
    write(&d.join(".dotfile"), b"dot", 0o644);
    mkdir(&d.join(".dotdir"), 0o755);
    // A directory serves its index, whatever its own mode; one without is listed only if
    // world-readable.
    for (dir, mode, index) in [
        ("with-index", 0o755, Some(0o644)),
        ("with-index-unreadable-dir", 0o711, Some(0o644)),
        ("without-index", 0o755, None),
        ("without-index-unreadable", 0o711, None),
        ("with-private-index", 0o755, Some(0o600)),
    ] {
        mkdir(&d.join(dir), mode);
        if let Some(index_mode) = index {
            write(&d.join(dir).join("index.html"), b"index", index_mode);
        }
    }
    mkdir(&d.join("index-is-a-dir/index.html"), 0o755);
    let fifo = Command::new("mkfifo")
        .arg(d.join("fifo"))
        .status()
        .expect("run mkfifo");
    assert!(fifo.success(), "mkfifo failed");
    let socket = UnixListener::bind(d.join("socket")).expect("bind a unix socket");
    let links: [(&Path, &str); 12] = [
        (Path::new("file.txt"), "link-in-file"),
        (Path::new("without-index"), "link-in-dir"),
        (Path::new("private.txt"), "link-private"),
        (Path::new("../../outside/secret.txt"), "link-out-file"),
        (Path::new("../../outside"), "link-out-dir"),
        (&outside.join("secret.txt"), "link-absolute-out"),
        (&d.join("file.txt"), "link-absolute-in"),
        (Path::new("/etc/passwd"), "link-passwd"),
        (Path::new("/dev/null"), "link-null"),
        (Path::new("missing"), "link-dangling"),
        (Path::new("fifo"), "link-fifo"),
        (Path::new("loop"), "loop"),
    ];
    for (target, name) in links {
        symlink(target, d.join(name)).expect("symlink");
    }
    socket
}

fn nothing_is_listed_that_the_server_would_refuse() {
    let top = tempfile::tempdir().expect("top");
    let _socket = trap_tree(top.path());
    let d = top.path().join("root/d");
    let server = Server::start(&top.path().join("root"), LIST);
    let mut client = server.client();
    let page = listing(&mut client, "/d/").text();
    let listed: BTreeSet<String> = hrefs(&page).into_iter().collect();
    let want: BTreeSet<String> = [
        "file.txt",
        "link-in-file",
        "with-index/",
        "with-index-unreadable-dir/",
        "without-index/",
        "link-in-dir/",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(listed, want, "{page}");
    // Listed exactly when served: ask for every entry of the directory by name, spelled
    // with every byte but letters and digits escaped.
    let listed: BTreeSet<Vec<u8>> = rows(&page)
        .iter()
        .filter(|row| row.href != "../")
        .map(Row::target)
        .collect();
    for entry in std::fs::read_dir(&d).expect("read d") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        let is_dir = std::fs::metadata(entry.path()).is_ok_and(|meta| meta.is_dir());
        let mut key = name.as_bytes().to_vec();
        let mut href = percent_encode(name.as_bytes(), NON_ALPHANUMERIC).to_string();
        if is_dir {
            key.push(b'/');
            href.push('/');
        }
        let status = client.get(&format!("/d/{href}")).status;
        assert_eq!(
            status == 200,
            listed.contains(&key),
            "{name:?} ({href}) answered {status}"
        );
    }
}

fn validators_and_head_work_as_for_files() {
    let root = tempfile::tempdir().expect("root");
    let d = root.path().join("d");
    mkdir(&d, 0o755);
    write(&d.join("a.txt"), b"a", 0o644);
    write(&d.join("b.txt"), b"b", 0o644);
    let server = Server::start(root.path(), LIST);
    let mut client = server.client();
    let first = listing(&mut client, "/d/");
    let etag = first.header("etag").expect("ETag").to_string();
    let last_modified = first.header("last-modified").expect("LM").to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong: {etag}"
    );
    // The same page again, the same validators.
    let again = listing(&mut client, "/d/");
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("etag"), Some(etag.as_str()));

    // HEAD: the same head, no body.
    client.send(b"HEAD /d/ HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let head = client.head_response();
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    for field in ["content-type", "content-length", "etag", "last-modified"] {
        assert_eq!(head.header(field), first.header(field), "{field}");
    }

    let ask = |client: &mut Client, fields: &str, method: &str| {
        client.send(format!("{method} /d/ HTTP/1.1\r\nHost: localhost\r\n{fields}\r\n").as_bytes());
        if method == "HEAD" {
            client.head_response()
        } else {
            client.response()
        }
    };
    let table = [
        (format!("If-None-Match: {etag}\r\n"), "GET", 304),
        (format!("If-None-Match: W/{etag}\r\n"), "GET", 304),
        (format!("If-None-Match: \"other\", {etag}\r\n"), "HEAD", 304),
        ("If-None-Match: *\r\n".to_string(), "GET", 304),
        ("If-None-Match: \"other\"\r\n".to_string(), "GET", 200),
        (
            format!("If-Modified-Since: {last_modified}\r\n"),
            "GET",
            304,
        ),
        (
            "If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT\r\n".to_string(),
            "GET",
            200,
        ),
        // If-None-Match wins over If-Modified-Since.
        (
            format!("If-None-Match: \"other\"\r\nIf-Modified-Since: {last_modified}\r\n"),
            "GET",
            200,
        ),
        (format!("If-Match: {etag}\r\n"), "GET", 200),
        ("If-Match: \"other\"\r\n".to_string(), "GET", 412),
        (
            "If-Unmodified-Since: Sat, 01 Jan 2000 00:00:00 GMT\r\n".to_string(),
            "GET",
            412,
        ),
        // Ranges are not offered: the whole page.
        ("Range: bytes=0-9\r\n".to_string(), "GET", 200),
    ];
    for (fields, method, status) in &table {
        let response = ask(&mut client, fields, method);
        assert_eq!(response.status, *status, "{method} {fields:?}");
        match status {
            304 => {
                assert!(response.body.is_empty());
                assert_eq!(response.header("etag"), Some(etag.as_str()), "{fields:?}");
                assert_eq!(
                    response.header("last-modified"),
                    Some(last_modified.as_str())
                );
            }
            200 if *method == "GET" => assert_eq!(response.body, first.body, "{fields:?}"),
            412 => assert_eq!(response.body, error_page(412)),
            _ => {}
        }
    }

    // Changes the directory's own time does not show still change the tag: a file grows,
    // a file turns private. Each time the old tag no longer matches.
    let not_modified = |client: &mut Client, etag: &str| {
        ask(client, &format!("If-None-Match: {etag}\r\n"), "GET").status == 304
    };
    let mut tags = vec![etag.clone()];
    write(&d.join("a.txt"), b"aaaa", 0o644);
    assert!(!not_modified(&mut client, &etag), "a file grew");
    tags.push(
        listing(&mut client, "/d/")
            .header("etag")
            .expect("ETag")
            .to_string(),
    );
    chmod(&d.join("b.txt"), 0o600);
    let page = listing(&mut client, "/d/");
    assert_eq!(hrefs(&page.text()), ["a.txt"]);
    tags.push(page.header("etag").expect("ETag").to_string());
    let distinct: BTreeSet<&String> = tags.iter().collect();
    assert_eq!(distinct.len(), tags.len(), "{tags:?}");

    // If-Modified-Since alone sees such a change too, once the clock has moved past the
    // second the last page was dated. File times come from a clock that may lag the system
    // clock by a scheduler tick, hence the margin.
    let dated = page.header("last-modified").expect("LM").to_string();
    let since = httpdate::parse_http_date(&dated).expect("an HTTP date");
    let next_second = since + Duration::from_millis(1100);
    let ticked = testkit::until(STEP, || SystemTime::now() >= next_second);
    assert!(ticked, "clock does not advance");
    let fields = format!("If-Modified-Since: {dated}\r\n");
    assert_eq!(ask(&mut client, &fields, "GET").status, 304);
    chmod(&d.join("b.txt"), 0o644);
    let response = ask(&mut client, &fields, "GET");
    assert_eq!(response.status, 200, "made public again");
    assert_eq!(hrefs(&response.text()), ["a.txt", "b.txt"]);
}

fn the_query_is_ignored_and_a_bare_name_redirects() {
    let root = tempfile::tempdir().expect("root");
    mkdir(&root.path().join("d"), 0o755);
    write(&root.path().join("d/a.txt"), b"a", 0o644);
    let server = Server::start(root.path(), LIST);
    let mut client = server.client();
    let plain = listing(&mut client, "/d/");
    for target in ["/d/?C=M;O=A", "/d/?", "/d/#top", "/d/./", "/d/x/../"] {
        let response = listing(&mut client, target);
        assert_eq!(response.body, plain.body, "{target}");
        assert_eq!(response.header("etag"), plain.header("etag"), "{target}");
    }
    let response = client.get("/d");
    assert_eq!(response.status, 301);
    assert_eq!(response.header("location"), Some("/d/"));
}

fn a_listing_keeps_the_connection_and_is_logged() {
    let root = tempfile::tempdir().expect("root");
    mkdir(&root.path().join("d"), 0o755);
    write(&root.path().join("d/a.txt"), b"a", 0o644);
    let server = Server::start(root.path(), LIST);
    let mut client = server.client();
    // Pipelined: both answered, in order, on the one connection.
    client.send(b"GET /d/ HTTP/1.1\r\nHost: localhost\r\n\r\nGET /d/a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let page = client.response();
    assert_eq!(page.status, 200);
    assert!(!page.close);
    assert_eq!(page.header("connection"), Some("keep-alive"));
    let file = client.response();
    assert_eq!((file.status, file.text()), (200, "a".to_string()));
    let line = format!("\"GET /d/ HTTP/1.1\" 200 {} ", page.body.len());
    assert!(
        server.wait_for_log(|l| l.contains(&line)).is_some(),
        "no log line with {line}"
    );
    // HTTP/1.0 without keep-alive: the listing, then the close.
    client.send(b"GET /d/ HTTP/1.0\r\n\r\n");
    let last = client.response();
    assert_eq!((last.status, last.body), (200, page.body));
    assert!(last.close);
    client.expect_close(STEP);
}

fn a_directory_too_large_to_list_is_cut_short_and_says_so() {
    let root = tempfile::tempdir().expect("root");
    let d = root.path().join("d");
    mkdir(&d, 0o755);
    let count = poolhttpd::listing::MAX_ENTRIES + 1;
    for n in 0..count {
        write(&d.join(format!("f{n:05}")), b"", 0o644);
    }
    let server = Server::start(root.path(), LIST);
    let page = listing(&mut server.client(), "/d/").text();
    let links = hrefs(&page);
    assert_eq!(links.len(), poolhttpd::listing::MAX_ENTRIES);
    assert_eq!(links.first().map(String::as_str), Some("f00000"));
    assert_eq!(
        links.last().cloned(),
        Some(format!("f{:05}", poolhttpd::listing::MAX_ENTRIES - 1))
    );
    let said = format!(
        "This listing is cut short: it shows {} entries",
        poolhttpd::listing::MAX_ENTRIES
    );
    assert!(page.contains(&said), "no word of truncation");
}

fn an_unreadable_directory_without_index_stays_403() {
    let root = tempfile::tempdir().expect("root");
    mkdir(&root.path().join("closed"), 0o711);
    write(&root.path().join("closed/a.txt"), b"a", 0o644);
    let server = Server::start(root.path(), LIST);
    let response = server.client().get("/closed/");
    assert_eq!((response.status, response.body), (403, error_page(403)));
    // Its files are still served by name, as without listings.
    assert_eq!(server.client().get("/closed/a.txt").status, 200);
}

/// The server keeps a directory's index in its cache: removing it must show the listing
/// on the very next request, and putting it back the index again.
fn an_index_removed_or_restored_shows_on_the_next_request() {
    let root = tempfile::tempdir().expect("root");
    let d = root.path().join("d");
    mkdir(&d, 0o755);
    write(&d.join("index.html"), b"the index", 0o644);
    write(&d.join("a.txt"), b"a", 0o644);
    settle(root.path(), &["d/index.html", "d/a.txt"]);
    let server = Server::start(root.path(), LIST);
    let mut client = server.client();
    // Served, then served again from the cache.
    for _ in 0..3 {
        assert_eq!(client.get("/d/").text(), "the index");
    }
    std::fs::rename(d.join("index.html"), root.path().join("index.old")).expect("rename");
    let page = listing(&mut client, "/d/").text();
    assert_eq!(hrefs(&page), ["a.txt"]);
    assert_eq!(
        hrefs(&listing(&mut server.client(), "/d/").text()),
        ["a.txt"]
    );
    std::fs::rename(root.path().join("index.old"), d.join("index.html")).expect("rename");
    assert_eq!(client.get("/d/").text(), "the index");
    assert_eq!(server.client().get("/d/").text(), "the index");
}

crate::both_models!(
    without_the_flag_a_directory_without_index_is_403,
    a_listing_shows_directories_first_then_files_by_name_with_size_and_time,
    names_are_escaped_in_text_and_encoded_in_links,
    nothing_is_listed_that_the_server_would_refuse,
    validators_and_head_work_as_for_files,
    the_query_is_ignored_and_a_bare_name_redirects,
    a_listing_keeps_the_connection_and_is_logged,
    a_directory_too_large_to_list_is_cut_short_and_says_so,
    an_unreadable_directory_without_index_stays_403,
    an_index_removed_or_restored_shows_on_the_next_request,
);
