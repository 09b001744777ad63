//! HTTP/1.1 as RFC 9110 and 9112 ask: validators, ranges, methods, versions, bodies, header
//! syntax, targets, connection management, limits and deadlines. Each test sends raw bytes
//! and checks status, headers and body.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::{Response, Server, demo_root};

const FILE_TXT: &str = "This is my text file.\n";

/// Sends `raw` on a fresh connection and reads one response.
fn exchange(server: &Server, raw: &str) -> Response {
    let mut client = server.client();
    client.send(raw.as_bytes());
    if raw.starts_with("HEAD ") {
        client.head_response()
    } else {
        client.response()
    }
}

fn get_with(server: &Server, target: &str, fields: &str) -> Response {
    exchange(
        server,
        &format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n{fields}\r\n"),
    )
}

fn started() -> (tempfile::TempDir, Server) {
    let root = demo_root();
    let server = Server::start(root.path(), &[]);
    (root, server)
}

// ----- validators -----

fn etag_is_strong_and_last_modified_is_the_files_time() {
    let (root, server) = started();
    let response = server.client().get("/file.txt");
    let etag = response.header("etag").expect("ETag");
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
        "{etag}"
    );
    let modified = std::fs::metadata(root.path().join("file.txt"))
        .and_then(|m| m.modified())
        .expect("mtime");
    let secs = modified
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let last_modified = response.header("last-modified").expect("Last-Modified");
    let parsed = httpdate::parse_http_date(last_modified).expect("IMF-fixdate");
    assert_eq!(parsed, UNIX_EPOCH + Duration::from_secs(secs));
    // Same file, same tag; a changed file, a new tag.
    assert_eq!(server.client().get("/file.txt").header("etag"), Some(etag));
    std::fs::write(root.path().join("file.txt"), "changed, longer text\n").expect("write");
    assert_ne!(server.client().get("/file.txt").header("etag"), Some(etag));
}

fn if_none_match_gives_304_with_validators_and_no_body() {
    let (_root, server) = started();
    let etag = server
        .client()
        .get("/file.txt")
        .header("etag")
        .expect("ETag")
        .to_string();
    let table = [
        (etag.clone(), 304),
        (format!("W/{etag}"), 304),
        (format!("\"nope\", {etag}"), 304),
        ("*".to_string(), 304),
        ("\"nope\"".to_string(), 200),
        ("W/\"nope\"".to_string(), 200),
    ];
    for (value, status) in table {
        let mut client = server.client();
        client.send(
            format!("GET /file.txt HTTP/1.1\r\nHost: a\r\nIf-None-Match: {value}\r\n\r\n")
                .as_bytes(),
        );
        let response = client.response();
        assert_eq!(response.status, status, "If-None-Match: {value}");
        if status == 304 {
            assert_eq!(response.header("etag"), Some(etag.as_str()));
            assert!(response.header("last-modified").is_some());
            assert!(response.header("date").is_some());
            assert_eq!(response.header("content-length"), None);
            // No body was sent: the next response follows immediately.
            assert_eq!(client.get("/file.txt").text(), FILE_TXT);
        }
    }
}

fn if_modified_since_and_its_precedence() {
    let (_root, server) = started();
    let first = server.client().get("/file.txt");
    let last_modified = first
        .header("last-modified")
        .expect("Last-Modified")
        .to_string();
    let modified = httpdate::parse_http_date(&last_modified).expect("date");
    let earlier = httpdate::fmt_http_date(modified - Duration::from_secs(60));
    let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(60));
    let table = [
        (format!("If-Modified-Since: {last_modified}\r\n"), 304),
        (format!("If-Modified-Since: {later}\r\n"), 304),
        (format!("If-Modified-Since: {earlier}\r\n"), 200),
        ("If-Modified-Since: yesterday\r\n".to_string(), 200),
        // If-None-Match decides when present, even against a matching date.
        (
            format!("If-None-Match: \"nope\"\r\nIf-Modified-Since: {later}\r\n"),
            200,
        ),
    ];
    for (fields, status) in table {
        assert_eq!(
            get_with(&server, "/file.txt", &fields).status,
            status,
            "{fields}"
        );
    }
    let head = exchange(
        &server,
        &format!(
            "HEAD /file.txt HTTP/1.1\r\nHost: a\r\nIf-Modified-Since: {last_modified}\r\n\r\n"
        ),
    );
    assert_eq!(head.status, 304);
}

fn if_match_and_if_unmodified_since_give_412() {
    let (_root, server) = started();
    let first = server.client().get("/file.txt");
    let etag = first.header("etag").expect("ETag").to_string();
    let last_modified = first.header("last-modified").expect("date").to_string();
    let table = [
        (format!("If-Match: {etag}\r\n"), 200),
        ("If-Match: *\r\n".to_string(), 200),
        ("If-Match: \"nope\"\r\n".to_string(), 412),
        (format!("If-Match: W/{etag}\r\n"), 412),
        (format!("If-Unmodified-Since: {last_modified}\r\n"), 200),
        (
            "If-Unmodified-Since: Thu, 01 Jan 1998 00:00:00 GMT\r\n".to_string(),
            412,
        ),
    ];
    for (fields, status) in table {
        assert_eq!(
            get_with(&server, "/file.txt", &fields).status,
            status,
            "{fields}"
        );
    }
}

// ----- ranges -----

fn single_byte_ranges_give_206() {
    let (_root, server) = started();
    assert_eq!(
        server.client().get("/file.txt").header("accept-ranges"),
        Some("bytes")
    );
    let table = [
        ("bytes=0-4", "This ", "bytes 0-4/22"),
        ("bytes=17-", "ile.\n", "bytes 17-21/22"),
        ("bytes=-6", "file.\n", "bytes 16-21/22"),
        ("bytes=16-1000", "file.\n", "bytes 16-21/22"),
        ("bytes=21-21", "\n", "bytes 21-21/22"),
    ];
    for (range, body, content_range) in table {
        let response = get_with(&server, "/file.txt", &format!("Range: {range}\r\n"));
        assert_eq!(response.status, 206, "{range}");
        assert_eq!(response.text(), body, "{range}");
        assert_eq!(
            response.header("content-range"),
            Some(content_range),
            "{range}"
        );
        assert_eq!(
            response.header("content-length"),
            Some(body.len().to_string().as_str())
        );
    }
}

fn unsatisfiable_ranges_give_416_with_the_length() {
    let (_root, server) = started();
    for range in ["bytes=22-", "bytes=100-200", "bytes=-0"] {
        let response = get_with(&server, "/file.txt", &format!("Range: {range}\r\n"));
        assert_eq!(response.status, 416, "{range}");
        assert_eq!(
            response.header("content-range"),
            Some("bytes */22"),
            "{range}"
        );
    }
}

fn ranges_that_are_ignored_give_the_whole_file() {
    let (_root, server) = started();
    for range in ["bytes=0-1,4-5", "bytes=5-2", "lines=1-2", "bytes=x-y"] {
        let response = get_with(&server, "/file.txt", &format!("Range: {range}\r\n"));
        assert_eq!(
            (response.status, response.text().as_str()),
            (200, FILE_TXT),
            "{range}"
        );
    }
}

fn a_range_of_a_large_file_is_exact() {
    let (root, server) = started();
    let whole = std::fs::read(root.path().join("gif.gif")).expect("gif");
    let (start, last) = (100_000usize, 1_199_999usize);
    let response = get_with(
        &server,
        "/gif.gif",
        &format!("Range: bytes={start}-{last}\r\n"),
    );
    assert_eq!(response.status, 206);
    let content_range = format!("bytes {start}-{last}/{}", whole.len());
    assert_eq!(
        response.header("content-range"),
        Some(content_range.as_str())
    );
    assert!(response.body == whole[start..=last], "range bytes differ");
}

fn a_range_of_a_small_file_beyond_the_copy_limit_is_exact() {
    // index.html is small enough to be read into memory and large enough that its body
    // leaves in a vectored write beside the head rather than copied behind it.
    let (root, server) = started();
    let whole = std::fs::read(root.path().join("index.html")).expect("index");
    let (start, last) = (100usize, 20_099usize);
    let response = get_with(
        &server,
        "/index.html",
        &format!("Range: bytes={start}-{last}\r\n"),
    );
    assert_eq!(response.status, 206);
    assert!(response.body == whole[start..=last], "range bytes differ");
    let mut client = server.client();
    for _ in 0..3 {
        assert!(
            client.get("/index.html").body == whole,
            "whole page differs"
        );
    }
}

fn if_range_applies_the_range_only_while_it_holds() {
    let (_root, server) = started();
    let first = server.client().get("/file.txt");
    let etag = first.header("etag").expect("ETag").to_string();
    let last_modified = first.header("last-modified").expect("date").to_string();
    let table = [
        (etag.clone(), 206),
        (last_modified, 206),
        (format!("W/{etag}"), 200),
        ("\"nope\"".to_string(), 200),
        ("Thu, 01 Jan 1998 00:00:00 GMT".to_string(), 200),
    ];
    for (value, status) in table {
        let fields = format!("Range: bytes=0-3\r\nIf-Range: {value}\r\n");
        let response = get_with(&server, "/file.txt", &fields);
        assert_eq!(response.status, status, "If-Range: {value}");
        let body = if status == 206 { "This" } else { FILE_TXT };
        assert_eq!(response.text(), body, "If-Range: {value}");
    }
}

// ----- methods and versions -----

fn options_gives_204_with_allow() {
    let (_root, server) = started();
    for target in ["*", "/file.txt", "/"] {
        let response = exchange(
            &server,
            &format!("OPTIONS {target} HTTP/1.1\r\nHost: a\r\n\r\n"),
        );
        assert_eq!(response.status, 204, "{target}");
        assert_eq!(response.header("allow"), Some("GET, HEAD, OPTIONS"));
        assert_eq!(response.header("content-length"), None);
    }
}

fn known_methods_give_405_and_unknown_give_501() {
    let (_root, server) = started();
    for method in ["POST", "PUT", "DELETE", "PATCH", "TRACE", "CONNECT"] {
        let response = exchange(
            &server,
            &format!("{method} /file.txt HTTP/1.1\r\nHost: a\r\n\r\n"),
        );
        assert_eq!(response.status, 405, "{method}");
        assert_eq!(
            response.header("allow"),
            Some("GET, HEAD, OPTIONS"),
            "{method}"
        );
    }
    for method in ["BREW", "get", "PROPFIND"] {
        let response = exchange(
            &server,
            &format!("{method} /file.txt HTTP/1.1\r\nHost: a\r\n\r\n"),
        );
        assert_eq!(response.status, 501, "{method}");
    }
}

fn versions_other_than_1_0_and_1_1_give_505() {
    let (_root, server) = started();
    for version in ["HTTP/2.0", "HTTP/1.2", "HTTP/0.9", "HTTP/3.0"] {
        let response = exchange(
            &server,
            &format!("GET /file.txt {version}\r\nHost: a\r\n\r\n"),
        );
        assert_eq!(response.status, 505, "{version}");
        assert_eq!(response.version, "HTTP/1.1");
    }
    let response = exchange(&server, "GET /file.txt HTTP/1.0\r\n\r\n");
    assert_eq!(
        (response.status, response.version.as_str()),
        (200, "HTTP/1.1")
    );
}

// ----- request bodies -----

fn a_body_is_discarded_and_the_next_request_parses() {
    let (_root, server) = started();
    let mut client = server.client();
    client.send(b"POST /file.txt HTTP/1.1\r\nHost: a\r\nContent-Length: 26\r\n\r\nGET /secret HTTP/1.1\r\n\r\nXX");
    client.send(b"GET /file.txt HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(client.response().status, 405);
    assert_eq!(client.response().text(), FILE_TXT);
}

fn a_chunked_body_is_discarded_and_the_next_request_parses() {
    let (_root, server) = started();
    let mut client = server.client();
    client.send(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;ext=1\r\nhello\r\n19\r\nGET /nope HTTP/1.1\r\nHost:\r\n0\r\nTrailer: x\r\n\r\n\
          GET /file.txt HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    assert_eq!(client.response().status, 405);
    assert_eq!(client.response().text(), FILE_TXT);
}

fn a_body_sent_a_byte_at_a_time_is_still_discarded() {
    let (_root, server) = started();
    let mut client = server.client();
    let request =
        b"PUT /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
                    GET /file.txt HTTP/1.1\r\nHost: a\r\n\r\n";
    for byte in request.chunks(1) {
        client.send(byte);
    }
    assert_eq!(client.response().status, 405);
    assert_eq!(client.response().text(), FILE_TXT);
}

fn bodies_over_a_mebibyte_give_413_and_close() {
    let (_root, server) = started();
    let mut client = server.client();
    client.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048577\r\n\r\n");
    let response = client.response();
    assert_eq!(
        (response.status, response.header("connection")),
        (413, Some("close"))
    );
    client.expect_close(Duration::from_secs(5));

    // Chunked: the limit is found while reading, and the answer must still arrive even
    // though the client has more body in flight when the server gives up.
    let mut client = server.client();
    client.send(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "x".repeat(64 * 1024));
    for _ in 0..24 {
        if !client.try_send(chunk.as_bytes()) {
            break;
        }
    }
    let response = client.response();
    assert_eq!(
        (response.status, response.header("connection")),
        (413, Some("close"))
    );
}

fn expect_100_continue_is_answered_before_the_body() {
    let (_root, server) = started();
    let mut client = server.client();
    client.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    let interim = client.head_response();
    assert_eq!((interim.status, interim.reason.as_str()), (100, "Continue"));
    client.send(b"hello");
    assert_eq!(client.response().status, 405);
    assert_eq!(client.get("/file.txt").text(), FILE_TXT);
    // Too large: the final answer comes instead of 100 Continue.
    let mut client = server.client();
    client.send(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9999999\r\nExpect: 100-continue\r\n\r\n",
    );
    assert_eq!(client.response().status, 413);
}

fn ambiguous_framing_gives_400_or_501_and_closes() {
    let (_root, server) = started();
    let table = [
        ("Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", 400),
        ("Content-Length: 3\r\nContent-Length: 4\r\n", 400),
        ("Content-Length: 3, 4\r\n", 400),
        ("Content-Length: +3\r\n", 400),
        ("Content-Length: 0x3\r\n", 400),
        ("Content-Length: \r\n", 400),
        ("Transfer-Encoding: gzip\r\n", 501),
        ("Transfer-Encoding: gzip, chunked\r\n", 501),
        (
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            501,
        ),
    ];
    for (fields, status) in table {
        let mut client = server.client();
        client.send(format!("POST / HTTP/1.1\r\nHost: a\r\n{fields}\r\nabc").as_bytes());
        let response = client.response();
        assert_eq!(response.status, status, "{fields}");
        assert_eq!(response.header("connection"), Some("close"), "{fields}");
        client.expect_close(Duration::from_secs(5));
    }
    let response = exchange(
        &server,
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert_eq!(response.status, 400);
    let mut client = server.client();
    client.send(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    assert_eq!(client.response().status, 400);
    client.expect_close(Duration::from_secs(5));
}

// ----- header syntax and targets -----

fn bad_header_syntax_gives_400() {
    let (_root, server) = started();
    let table = [
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a@b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX-A\x01: b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x07c\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX(A): b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n folded\r\n\r\n",
        "GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
    ];
    for raw in table {
        let response = exchange(&server, raw);
        assert_eq!(response.status, 400, "{raw:?}");
    }
}

fn target_forms() {
    let (_root, server) = started();
    let table = [
        ("http://localhost/file.txt", 200),
        ("HTTP://LOCALHOST:8080/file.txt", 200),
        ("/file.txt?x=1&y=../../etc", 200),
        ("/file%2Etxt", 200),
        ("/file.txt%", 400),
        ("/file.txt%0", 400),
        ("/file%zztxt", 400),
        ("/file.txt%00", 400),
        ("*", 400),
        ("file.txt", 400),
    ];
    for (target, status) in table {
        let response = get_with(&server, target, "");
        assert_eq!(response.status, status, "{target}");
        if status == 200 {
            assert_eq!(response.text(), FILE_TXT, "{target}");
        }
    }
}

// ----- connection management -----

fn a_connection_serves_at_most_1000_requests() {
    let (_root, server) = started();
    let mut client = server.client();
    let request = "HEAD /file.txt HTTP/1.1\r\nHost: a\r\n\r\n".repeat(1001);
    client.send(request.as_bytes());
    for n in 1..=1000 {
        let response = client.head_response();
        assert_eq!(response.status, 200, "request {n}");
        let fate = if n < 1000 { "keep-alive" } else { "close" };
        assert_eq!(response.header("connection"), Some(fate), "request {n}");
    }
    client.expect_close(Duration::from_secs(5));
}

fn closing_with_unread_input_lingers_instead_of_resetting() {
    let (_root, server) = started();
    let mut client = server.client();
    let mut burst = b"GET /file.txt HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".to_vec();
    burst.extend(b"GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n".repeat(2000));
    client.send(&burst);
    assert_eq!(client.response().text(), FILE_TXT);
    client.shutdown_write();
    client.expect_clean_close(Duration::from_secs(5));

    let mut client = server.client();
    client.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999\r\n\r\n");
    let body = vec![b'x'; 512 * 1024];
    client.send(&body);
    assert_eq!(client.response().status, 413);
    client.shutdown_write();
    client.expect_clean_close(Duration::from_secs(5));
}

// ----- limits and deadlines -----

fn oversized_heads_give_414_and_431() {
    let (_root, server) = started();
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(8 * 1024));
    assert_eq!(exchange(&server, &long_target).status, 414);
    let big_field = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "b".repeat(16 * 1024)
    );
    assert_eq!(exchange(&server, &big_field).status, 431);
    let many = format!(
        "GET / HTTP/1.1\r\nHost: a\r\n{}\r\n",
        "X-Many: 1\r\n".repeat(100)
    );
    assert_eq!(exchange(&server, &many).status, 431);
    // Just inside the limits is served.
    let fields = "X-Many: 1\r\n".repeat(98);
    assert_eq!(get_with(&server, "/file.txt", &fields).status, 200);
    let target = format!("/file.txt?{}", "q".repeat(8 * 1024 - 30));
    assert_eq!(get_with(&server, &target, "").status, 200);
}

fn a_dribbling_head_is_cut_off_with_408() {
    let root = demo_root();
    let server = Server::start(root.path(), &["--header-timeout", "1"]);
    let mut client = server.client();
    let started = Instant::now();
    client.send(b"GET /file.txt HTTP/1.1\r\n");
    // One header line every 150 ms: progress, but never the end of the head.
    let mut line = 0;
    let response = loop {
        if let Some(response) = client.response_within(Duration::from_millis(150)) {
            break response;
        }
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "no 408 after {:?}",
            started.elapsed()
        );
        if !client.try_send(format!("X-Slow-{line}: 1\r\n").as_bytes()) {
            panic!("connection closed without a response");
        }
        line += 1;
    };
    let waited = started.elapsed();
    assert_eq!(response.status, 408);
    assert!(waited >= Duration::from_millis(800), "408 after {waited:?}");
    assert!(
        waited <= Duration::from_millis(3000),
        "408 after {waited:?}"
    );
}

fn an_unfinished_head_gets_408_then_close() {
    let root = demo_root();
    let server = Server::start(
        root.path(),
        &["--header-timeout", "0.5", "--keep-alive", "5"],
    );
    let mut client = server.client();
    client.send(b"GET /file.txt HTTP/1.1\r\nHost: a\r\n");
    let response = client.response();
    assert_eq!(
        (response.status, response.header("connection")),
        (408, Some("close"))
    );
    client.expect_close(Duration::from_secs(5));
}

// ----- path safety -----

fn dot_files_are_hidden_but_well_known_is_served() {
    let (root, server) = started();
    std::fs::write(root.path().join(".env"), "SECRET=1").expect("write");
    std::fs::create_dir_all(root.path().join(".git")).expect("mkdir");
    std::fs::write(root.path().join(".git/config"), "[core]").expect("write");
    std::fs::create_dir_all(root.path().join(".well-known")).expect("mkdir");
    std::fs::write(root.path().join(".well-known/security.txt"), "Contact: x").expect("write");
    for target in [
        "/.env",
        "/.git/config",
        "/.git/",
        "/%2egit/config",
        "/media/../.env",
    ] {
        assert_eq!(server.client().get(target).status, 404, "{target}");
    }
    let response = server.client().get("/.well-known/security.txt");
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "Contact: x")
    );
}

fn fifos_sockets_and_devices_are_403_without_hanging() {
    let (root, server) = started();
    let fifo = root.path().join("pipe");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    let _socket = std::os::unix::net::UnixListener::bind(root.path().join("socket")).expect("bind");
    let mut client = server.client();
    for target in ["/pipe", "/socket"] {
        assert_eq!(client.get(target).status, 403, "{target}");
    }
    // The workers are all still free.
    assert_eq!(client.get("/file.txt").text(), FILE_TXT);
    // Devices: `mknod` may be refused (a container without CAP_MKNOD, or not root), so
    // serve `/dev` itself, where they exist everywhere. Reading `zero` would never end.
    let dev = Server::start(std::path::Path::new("/dev"), &[]);
    let mut client = dev.client();
    for target in ["/null", "/zero", "/urandom"] {
        assert_eq!(client.get(target).status, 403, "/dev{target}");
    }
    // Still answering on the same connection: nothing was left reading a device.
    assert_eq!(client.get("/no-such-device").status, 404);
}

fn directory_redirects_are_never_protocol_relative() {
    let (root, server) = started();
    std::fs::create_dir(root.path().join("evil.com")).expect("mkdir");
    for target in [
        "//evil.com",
        "/%2fevil.com",
        "///evil.com",
        "/./evil.com",
        "http://a//evil.com",
    ] {
        let response = server.client().get(target);
        assert_eq!(response.status, 301, "{target}");
        assert_eq!(response.header("location"), Some("/evil.com/"), "{target}");
    }
}

crate::both_models!(
    a_refused_oversized_head_is_lingered_over_not_reset,
    a_slow_body_that_keeps_coming_is_not_timed_out,
    a_range_of_a_small_file_beyond_the_copy_limit_is_exact,
    etag_is_strong_and_last_modified_is_the_files_time,
    if_none_match_gives_304_with_validators_and_no_body,
    if_modified_since_and_its_precedence,
    if_match_and_if_unmodified_since_give_412,
    single_byte_ranges_give_206,
    unsatisfiable_ranges_give_416_with_the_length,
    ranges_that_are_ignored_give_the_whole_file,
    a_range_of_a_large_file_is_exact,
    if_range_applies_the_range_only_while_it_holds,
    options_gives_204_with_allow,
    known_methods_give_405_and_unknown_give_501,
    versions_other_than_1_0_and_1_1_give_505,
    a_body_is_discarded_and_the_next_request_parses,
    a_chunked_body_is_discarded_and_the_next_request_parses,
    a_body_sent_a_byte_at_a_time_is_still_discarded,
    bodies_over_a_mebibyte_give_413_and_close,
    expect_100_continue_is_answered_before_the_body,
    ambiguous_framing_gives_400_or_501_and_closes,
    bad_header_syntax_gives_400,
    target_forms,
    a_connection_serves_at_most_1000_requests,
    closing_with_unread_input_lingers_instead_of_resetting,
    oversized_heads_give_414_and_431,
    a_dribbling_head_is_cut_off_with_408,
    an_unfinished_head_gets_408_then_close,
    dot_files_are_hidden_but_well_known_is_served,
    fifos_sockets_and_devices_are_403_without_hanging,
    directory_redirects_are_never_protocol_relative,
);

/// Regression: with the read buffer full of a refused head, lingering read into no room,
/// took that for the end of the stream and reset the connection.
fn a_refused_oversized_head_is_lingered_over_not_reset() {
    let (_root, server) = started();
    let mut client = server.client();
    let head = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "b".repeat(20 * 1024)
    );
    client.send(head.as_bytes());
    assert_eq!(client.response().status, 431);
    client.shutdown_write();
    client.expect_clean_close(Duration::from_secs(5));
}

/// Regression: a body still arriving was cut off with 408 once the head timeout had passed
/// since the head's first byte, although the head had long been complete.
fn a_slow_body_that_keeps_coming_is_not_timed_out() {
    let root = demo_root();
    let server = Server::start(root.path(), &["--header-timeout", "1"]);
    let mut client = server.client();
    client.send(b"POST /file.txt HTTP/1.1\r\nHost: a\r\nContent-Length: 2000\r\n\r\n");
    // 100 bytes every 100 ms: 2 s in all, twice the timeout, and each gap far enough inside
    // it that a busy machine holding this thread a while does not make it a real stall.
    for _ in 0..20 {
        std::thread::park_timeout(Duration::from_millis(100));
        assert!(
            client.try_send(&[b'x'; 100]),
            "connection closed during the body"
        );
    }
    assert_eq!(client.response().status, 405);
    assert_eq!(client.get("/file.txt").text(), FILE_TXT);
}
