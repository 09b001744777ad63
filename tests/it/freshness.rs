//! Files kept by the server's cache are never served stale: a change on disk shows on the
//! very next request, on the same keep-alive connection or a new one.

use std::path::Path;

use crate::support::{Client, Server, chmod, settle};

/// A response's status and body, shown briefly when a comparison fails.
#[derive(PartialEq)]
struct Got(u16, Vec<u8>);

impl std::fmt::Debug for Got {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let start = String::from_utf8_lossy(&self.1[..self.1.len().min(16)]);
        write!(f, "{} with {} bytes: {start:?}…", self.0, self.1.len())
    }
}

fn body(client: &mut Client, target: &str) -> Got {
    let response = client.get(target);
    Got(response.status, response.body)
}

/// A change, and what `GET /d/NAME` gives right after it.
type Change = (&'static str, fn(&Path), u16, &'static [u8]);

fn every_change_shows_on_the_very_next_request() {
    let big = |fill: u8| vec![fill; 100_000];
    let changes: [Change; 6] = [
        (
            "rewritten",
            |d| std::fs::write(d.join("d/small.txt"), "second version").expect("write"),
            200,
            b"second version",
        ),
        (
            "renamed over",
            |d| {
                std::fs::write(d.join("d/next.tmp"), "third").expect("write");
                chmod(&d.join("d/next.tmp"), 0o644);
                std::fs::rename(d.join("d/next.tmp"), d.join("d/small.txt")).expect("rename");
            },
            200,
            b"third",
        ),
        (
            "made private",
            |d| chmod(&d.join("d/small.txt"), 0o600),
            403,
            b"",
        ),
        (
            "made public",
            |d| chmod(&d.join("d/small.txt"), 0o644),
            200,
            b"third",
        ),
        (
            "deleted",
            |d| std::fs::remove_file(d.join("d/small.txt")).expect("delete"),
            404,
            b"",
        ),
        (
            "directory renamed",
            |d| std::fs::rename(d.join("d"), d.join("e")).expect("rename"),
            404,
            b"",
        ),
    ];
    let root = tempfile::tempdir().expect("root");
    let dir = root.path();
    std::fs::create_dir(dir.join("d")).expect("d");
    std::fs::write(dir.join("d/small.txt"), "first").expect("write");
    std::fs::write(dir.join("d/large.bin"), big(b'1')).expect("write");
    for name in ["d/small.txt", "d/large.bin"] {
        chmod(&dir.join(name), 0o644);
    }
    settle(dir, &["d/small.txt", "d/large.bin"]);
    let server = Server::start(dir, &["--quiet"]);
    let mut kept = server.client();
    // Served, then served again from the cache.
    for _ in 0..3 {
        assert_eq!(body(&mut kept, "/d/small.txt"), Got(200, b"first".to_vec()));
        assert_eq!(body(&mut kept, "/d/large.bin"), Got(200, big(b'1')));
    }
    // A large file rewritten in place, then replaced.
    std::fs::write(dir.join("d/large.bin"), big(b'2')).expect("write");
    assert_eq!(body(&mut kept, "/d/large.bin"), Got(200, big(b'2')));
    std::fs::write(dir.join("d/large.tmp"), big(b'3')).expect("write");
    chmod(&dir.join("d/large.tmp"), 0o644);
    std::fs::rename(dir.join("d/large.tmp"), dir.join("d/large.bin")).expect("rename");
    assert_eq!(
        body(&mut server.client(), "/d/large.bin"),
        Got(200, big(b'3'))
    );
    for (what, change, status, bytes) in changes {
        change(dir);
        let want = Got(
            status,
            if status == 200 {
                bytes.to_vec()
            } else {
                crate::support::error_page(status)
            },
        );
        assert_eq!(
            body(&mut kept, "/d/small.txt"),
            want,
            "{what}, same connection"
        );
        assert_eq!(
            body(&mut server.client(), "/d/small.txt"),
            want,
            "{what}, new connection"
        );
    }
}

/// Regression: a small file that shrank between the server's `stat` and its read was
/// answered 500. A writer cuts a file short and fills it again while a client asks for it;
/// every answer is a 200 with some consistent version of it.
fn a_small_file_changing_under_requests_is_never_an_error() {
    use std::os::unix::fs::FileExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};
    const FULL: usize = 12_000;
    let root = tempfile::tempdir().expect("root");
    let path = root.path().join("changing.txt");
    std::fs::write(&path, [b'a'; FULL]).expect("write");
    chmod(&path, 0o644);
    let server = Server::start(root.path(), &["--quiet"]);
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, path) = (stop.clone(), path.clone());
        std::thread::spawn(move || {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .expect("open");
            let until = Instant::now() + Duration::from_secs(20);
            while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                file.set_len(10).expect("cut");
                file.write_all_at(&[b'a'; FULL], 0).expect("fill");
            }
        })
    };
    let mut client = server.client();
    let until = Instant::now() + Duration::from_secs(3);
    let mut asked = 0;
    while asked < 3000 && Instant::now() < until {
        // A connection serves at most 1000 requests.
        if asked % 500 == 499 {
            client = server.client();
        }
        let response = client.get("/changing.txt");
        asked += 1;
        assert_eq!(response.status, 200, "request {asked}");
        assert!(
            response.body.len() <= FULL && response.body.iter().all(|&b| b == b'a'),
            "request {asked}: {} bytes",
            response.body.len()
        );
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
}

crate::both_models!(
    every_change_shows_on_the_very_next_request,
    a_small_file_changing_under_requests_is_never_an_error,
);
