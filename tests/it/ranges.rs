//! Ranges beyond the single one: several in a `multipart/byteranges` body, HEAD answering
//! as GET would, and ends past the file clamped however large.

use std::path::Path;

use crate::support::{Response, Server, demo_root};

/// A file of `len` bytes of a fixed pattern, so that any range shows where it came from.
fn patterned(dir: &Path, name: &str, len: usize) -> Vec<u8> {
    let bytes: Vec<u8> = (0..len).map(|i| b"0123456789abcdef"[i % 16]).collect();
    std::fs::write(dir.join(name), &bytes).expect("write");
    crate::support::chmod(&dir.join(name), 0o644);
    bytes
}

/// The parts of a `multipart/byteranges` body: each part's `Content-Range` and bytes.
fn parts(response: &Response) -> Vec<(String, Vec<u8>)> {
    let media = response.header("content-type").expect("content-type");
    let boundary = media
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("not multipart: {media}"));
    let delimiter = format!("--{boundary}");
    let body = &response.body[..];
    let close = format!("\r\n--{boundary}--\r\n");
    assert!(body.ends_with(close.as_bytes()), "no closing boundary");
    let body = &body[..body.len() - close.len()];
    let mut parts = Vec::new();
    let mut rest = body;
    let mut first = true;
    while !rest.is_empty() {
        let opening = if first {
            delimiter.clone()
        } else {
            format!("\r\n{delimiter}")
        };
        first = false;
        assert!(
            rest.starts_with(opening.as_bytes()),
            "part without its boundary"
        );
        rest = &rest[opening.len()..];
        let head_end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("part head");
        let head = String::from_utf8_lossy(&rest[..head_end]).into_owned();
        rest = &rest[head_end + 4..];
        let content_range = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Range: "))
            .expect("part Content-Range")
            .to_string();
        assert!(head.contains("\r\nContent-Type: "), "{head}");
        // bytes A-B/LEN
        let (a, b) = content_range
            .strip_prefix("bytes ")
            .and_then(|r| r.split_once('/'))
            .and_then(|(r, _)| r.split_once('-'))
            .map(|(a, b)| (a.parse::<usize>().unwrap(), b.parse::<usize>().unwrap()))
            .expect("range numbers");
        let len = b - a + 1;
        parts.push((content_range, rest[..len].to_vec()));
        rest = &rest[len..];
    }
    parts
}

fn several_ranges_get_a_multipart_body() {
    let root = demo_root();
    // One kept in memory, one sent with sendfile from the cache's descriptor.
    let small = patterned(root.path(), "small.bin", 4000);
    let large = patterned(root.path(), "large.bin", 300_000);
    let server = Server::start(root.path(), &["--quiet"]);
    for (target, file) in [("/small.bin", &small), ("/large.bin", &large)] {
        let len = file.len();
        let table: [(&str, &[(usize, usize)]); 4] = [
            ("bytes=0-99,-100", &[(0, 99), (len - 100, len - 1)]),
            // Kept in the order asked.
            ("bytes=2000-2099,0-9", &[(2000, 2099), (0, 9)]),
            // Overlapping and adjacent ranges merged.
            ("bytes=0-9,5-19,20-29,1000-1099", &[(0, 29), (1000, 1099)]),
            // Unsatisfiable ones dropped.
            ("bytes=0-9,1000000-,100-109", &[(0, 9), (100, 109)]),
        ];
        for (range, want) in table {
            let response = server.ask("GET", target, &format!("Range: {range}\r\n"));
            assert_eq!(response.status, 206, "{target} {range}");
            assert_eq!(
                response.header("content-length"),
                Some(response.body.len().to_string().as_str()),
                "{target} {range}"
            );
            assert_eq!(response.header("content-range"), None, "{target} {range}");
            let got = parts(&response);
            assert_eq!(got.len(), want.len(), "{target} {range}");
            for ((content_range, bytes), &(a, b)) in got.iter().zip(want) {
                assert_eq!(
                    content_range,
                    &format!("bytes {a}-{b}/{len}"),
                    "{target} {range}"
                );
                assert!(
                    bytes[..] == file[a..=b],
                    "{target} {range}: part bytes differ"
                );
            }
            // HEAD says the same, without the body.
            let head = server.ask("HEAD", target, &format!("Range: {range}\r\n"));
            assert_eq!(head.status, 206, "HEAD {target} {range}");
            assert_eq!(
                head.header("content-length"),
                response.header("content-length"),
                "HEAD {target} {range}"
            );
            assert!(
                head.header("content-type")
                    .is_some_and(|t| t.starts_with("multipart/byteranges"))
            );
        }
    }
}

fn ranges_that_get_the_whole_file_or_416() {
    let root = demo_root();
    let large = patterned(root.path(), "large.bin", 300_000);
    let small = patterned(root.path(), "tiny.bin", 23);
    let server = Server::start(root.path(), &["--quiet"]);
    let seventeen: Vec<String> = (0..17)
        .map(|n| format!("{}-{}", n * 100, n * 100))
        .collect();
    let table = [
        ("/large.bin", format!("bytes={}", seventeen.join(",")), 200),
        // Framing would cost more than the 23 bytes themselves.
        ("/tiny.bin", "bytes=0-0,-1".to_string(), 200),
        ("/large.bin", "bytes=0-0,5-2".to_string(), 200),
        ("/large.bin", "bytes=400000-,500000-600000".to_string(), 416),
    ];
    for (target, range, status) in table {
        let response = server.ask("GET", target, &format!("Range: {range}\r\n"));
        assert_eq!(response.status, status, "{target} {range}");
        if status == 200 {
            let whole = if target == "/tiny.bin" {
                &small
            } else {
                &large
            };
            assert!(
                response.body == *whole,
                "{target} {range}: not the whole file"
            );
        } else {
            assert_eq!(response.header("content-range"), Some("bytes */300000"));
        }
    }
    // If-Range that no longer holds: the whole file, even for several ranges.
    let response = server.ask(
        "GET",
        "/large.bin",
        "Range: bytes=0-0,10-10\r\nIf-Range: \"stale\"\r\n",
    );
    assert_eq!((response.status, response.body.len()), (200, large.len()));
}

fn head_answers_ranges_as_get_does() {
    let root = demo_root();
    let server = Server::start(root.path(), &["--quiet"]);
    let table = [
        ("bytes=0-4", 206, Some("bytes 0-4/22"), "5"),
        ("bytes=30-", 416, Some("bytes */22"), ""),
        ("bytes=5-2", 200, None, "22"),
    ];
    for (range, status, content_range, length) in table {
        let get = server.ask("GET", "/file.txt", &format!("Range: {range}\r\n"));
        let head = server.ask("HEAD", "/file.txt", &format!("Range: {range}\r\n"));
        assert_eq!((head.status, get.status), (status, status), "{range}");
        assert_eq!(head.header("content-range"), content_range, "{range}");
        assert_eq!(
            head.header("content-range"),
            get.header("content-range"),
            "{range}"
        );
        assert_eq!(
            head.header("content-length"),
            get.header("content-length"),
            "{range}"
        );
        assert!(head.body.is_empty(), "{range}");
        if !length.is_empty() {
            assert_eq!(head.header("content-length"), Some(length), "{range}");
        }
    }
}

fn range_ends_beyond_the_file_are_clamped_however_large() {
    let root = demo_root();
    let server = Server::start(root.path(), &["--quiet"]);
    for range in [
        "bytes=0-18446744073709551615",
        "bytes=0-99999999999999999999999",
        "bytes=0-99999",
    ] {
        let response = server.ask("GET", "/file.txt", &format!("Range: {range}\r\n"));
        assert_eq!(response.status, 206, "{range}");
        assert_eq!(
            response.header("content-range"),
            Some("bytes 0-21/22"),
            "{range}"
        );
        assert_eq!(response.text(), "This is my text file.\n");
    }
    let response = server.ask(
        "GET",
        "/file.txt",
        "Range: bytes=99999999999999999999999-\r\n",
    );
    assert_eq!(response.status, 416);
}

crate::both_models!(
    several_ranges_get_a_multipart_body,
    ranges_that_get_the_whole_file_or_416,
    head_answers_ranges_as_get_does,
    range_ends_beyond_the_file_are_clamped_however_large,
);
