//! Attempts to read outside the document root, encoded and not. None may return a byte of
//! what lies outside.

use std::os::unix::fs::symlink;

use crate::support::Server;

const SECRET: &str = "TOP-SECRET-5f1c0a";

/// A temporary tree: `outside/secret.txt` beside `root/`, with symlinks inside the root
/// that lead out (and one that stays in).
fn tree() -> tempfile::TempDir {
    let top = tempfile::tempdir().expect("temporary directory");
    let root = top.path().join("root");
    let outside = top.path().join("outside");
    std::fs::create_dir_all(root.join("a/b")).expect("mkdir");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::fs::write(outside.join("secret.txt"), SECRET).expect("write");
    std::fs::write(top.path().join("secret.txt"), SECRET).expect("write");
    std::fs::write(root.join("index.html"), "home").expect("write");
    std::fs::write(root.join("a/b/inside.txt"), "inside").expect("write");
    symlink(&outside, root.join("out-dir")).expect("symlink");
    symlink(outside.join("secret.txt"), root.join("out-file")).expect("symlink");
    symlink("../outside/secret.txt", root.join("out-relative")).expect("symlink");
    symlink("/etc/passwd", root.join("passwd")).expect("symlink");
    symlink("a/b/inside.txt", root.join("in-link")).expect("symlink");
    top
}

fn no_target_reads_outside_the_root() {
    let top = tree();
    let server = Server::start(&top.path().join("root"), &[]);
    let attempts = [
        "/../secret.txt",
        "/../outside/secret.txt",
        "/../../../../../../../etc/passwd",
        "/a/../../secret.txt",
        "/a/b/../../../secret.txt",
        "/./../secret.txt",
        "//../secret.txt",
        "/..//secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/.%2e/secret.txt",
        "/%2e./secret.txt",
        "/..%2fsecret.txt",
        "/..%2Fsecret.txt",
        "/%2e%2e%2fsecret.txt",
        "/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/a/%2e%2e/%2e%2e/secret.txt",
        "/%252e%252e/secret.txt",
        "/..%252fsecret.txt",
        "/%c0%ae%c0%ae/secret.txt",
        "/%c0%af../secret.txt",
        "/..\\secret.txt",
        "/..%5csecret.txt",
        "/..;/secret.txt",
        "/....//secret.txt",
        "/%00../secret.txt",
        "/secret.txt%00.html",
        "/out-dir/secret.txt",
        "/out-file",
        "/out-relative",
        "/passwd",
        "/out-dir/",
        "http://localhost/../secret.txt",
        "http://localhost/%2e%2e/secret.txt",
        "../secret.txt",
        "secret.txt",
        "/%2e%2e",
        "/..",
    ];
    let mut client = server.client();
    for target in attempts {
        client.send(format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
        let response = client.response();
        assert!(
            matches!(response.status, 400 | 403 | 404),
            "{target} gave {}",
            response.status
        );
        let text = response.text();
        assert!(!text.contains(SECRET), "{target} leaked the secret");
        assert!(!text.contains("root:"), "{target} leaked /etc/passwd");
        if response.header("connection") == Some("close") {
            client = server.client();
        }
    }
}

fn symlinks_out_of_the_root_are_403_and_inside_are_served() {
    let top = tree();
    let server = Server::start(&top.path().join("root"), &[]);
    let mut client = server.client();
    for target in [
        "/out-file",
        "/out-relative",
        "/out-dir/secret.txt",
        "/passwd",
    ] {
        assert_eq!(client.get(target).status, 403, "{target}");
    }
    let response = client.get("/in-link");
    assert_eq!((response.status, response.text().as_str()), (200, "inside"));
}

fn climbing_above_the_root_is_400() {
    let top = tree();
    let server = Server::start(&top.path().join("root"), &[]);
    for target in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/a/../../secret.txt",
        "/..%2fsecret.txt",
    ] {
        assert_eq!(server.client().get(target).status, 400, "{target}");
    }
    // Climbing that stays inside is fine.
    let response = server.client().get("/a/b/../b/./inside.txt");
    assert_eq!((response.status, response.text().as_str()), (200, "inside"));
}

crate::both_models!(
    no_target_reads_outside_the_root,
    symlinks_out_of_the_root_are_403_and_inside_are_served,
    climbing_above_the_root_is_400,
);
