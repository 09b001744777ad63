//! The original server's demonstrated scenarios, one test each, plus the headers every
//! response carries and the log line that names the worker.

use std::time::{Duration, SystemTime};

use crate::support::{Response, Server, big_file, chmod, demo_root, error_page, manifest_dir};

fn site_file(path: &str) -> Vec<u8> {
    std::fs::read(manifest_dir().join("scu").join(path)).expect("demo file")
}

fn media_type(response: &Response) -> &str {
    let value = response.header("content-type").expect("Content-Type");
    value.split(';').next().unwrap_or_default().trim()
}

/// Checks a 200 whose body is the demo file `path`, with the given media type.
fn serves(server: &Server, target: &str, path: &str, media: &str) -> Response {
    let response = server.client().get(target);
    assert_eq!(response.status, 200, "{target}");
    assert_eq!(media_type(&response), media, "{target}");
    assert!(
        response.body == site_file(path),
        "{target}: body differs from scu/{path}"
    );
    response
}

fn root_serves_index_html() {
    let root = demo_root();
    let server = Server::start(root.path(), &[]);
    let response = serves(&server, "/", "index.html", "text/html");
    assert_eq!(
        response.header("content-type"),
        Some("text/html; charset=utf-8")
    );
}

fn index_html_by_name() {
    let root = demo_root();
    let server = Server::start(root.path(), &[]);
    serves(&server, "/index.html", "index.html", "text/html");
}

fn image_page_and_every_image_it_references() {
    let root = demo_root();
    let server = Server::start(root.path(), &[]);
    let page = serves(&server, "/image.html", "image.html", "text/html").text();
    let sources: Vec<&str> = page
        .split("src=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(sources.contains(&"traverse.jpg"), "{sources:?}");
    assert!(sources.contains(&"brother.jpg"), "{sources:?}");
    let mut client = server.client();
    for source in sources {
        let response = client.get(&format!("/{source}"));
        assert_eq!(response.status, 200, "{source}");
        assert!(media_type(&response).starts_with("image/"), "{source}");
        assert!(response.body == site_file(source), "{source}");
    }
}

fn every_asset_of_the_home_page_is_served() {
    let root = demo_root();
    let server = Server::start(root.path(), &[]);
    let page = String::from_utf8(site_file("index.html")).expect("UTF-8 page");
    let mut client = server.client();
    let mut checked = 0;
    for attribute in ["src=\"", "href=\""] {
        for rest in page.split(attribute).skip(1) {
            let Some(url) = rest.split('"').next() else {
                continue;
            };
            if !url.starts_with('/') || url.starts_with("//") || url.len() == 1 {
                continue;
            }
            let path = url.split(['?', '#']).next().unwrap_or(url);
            if !manifest_dir().join("scu").join(&path[1..]).is_file() {
                continue;
            }
            let response = client.get(url);
            assert_eq!(response.status, 200, "{url}");
            assert!(response.body == site_file(&path[1..]), "{url}");
            checked += 1;
        }
    }
    assert!(
        checked >= 4,
        "the home page should pull its own CSS, JS and images"
    );
}

fn traverse_jpg_is_a_jpeg() {
    let root = demo_root();
    let server = Server::start(root.path(), &[]);
    let response = serves(&server, "/traverse.jpg", "traverse.jpg", "image/jpeg");
    assert_eq!(&response.body[..3], b"\xff\xd8\xff");
}

fn gif_gif_is_an_animated_gif_over_a_megabyte() {
    let root = demo_root();
    let server = Server::start(root.path(), &[]);
    let response = serves(&server, "/gif.gif", "gif.gif", "image/gif");
    assert!(response.body.starts_with(b"GIF89a"));
    assert!(
        response.body.len() >= 1_000_000,
        "{} bytes",
        response.body.len()
    );
}

fn png_png_is_a_png() {
    let root = demo_root();
    let server = Server::start(root.path(), &[]);
    let response = serves(&server, "/png.png", "png.png", "image/png");
    assert!(response.body.starts_with(b"\x89PNG\r\n\x1a\n"));
}

fn favicon_is_an_icon() {
    let root = demo_root();
    let server = Server::start(root.path(), &[]);
    let response = server.client().get("/favicon.ico");
    assert_eq!(response.status, 200);
    let media = media_type(&response);
    assert!(
        media == "image/x-icon" || media == "image/vnd.microsoft.icon",
        "{media}"
    );
    assert!(response.body.starts_with(b"\0\0\x01\0"));
}

fn file_txt_is_plain_text() {
    let root = demo_root();
    let server = Server::start(root.path(), &[]);
    let response = serves(&server, "/file.txt", "file.txt", "text/plain");
    assert_eq!(response.text(), "This is my text file.\n");
    assert_eq!(response.header("content-length"), Some("22"));
}

fn missing_file_is_404_with_the_404_page() {
    let root = demo_root();
    let server = Server::start(root.path(), &[]);
    let response = server.client().get("/filenotfound.txt");
    assert_eq!(
        (response.status, response.reason.as_str()),
        (404, "Not Found")
    );
    assert_eq!(media_type(&response), "text/html");
    assert!(response.body == error_page(404));
}

fn malformed_request_is_400_with_the_400_page() {
    let root = demo_root();
    let server = Server::start(root.path(), &[]);
    let mut client = server.client();
    client.send(b"THIS IS NOT HTTP\r\n\r\n");
    let response = client.response();
    assert_eq!(
        (response.status, response.reason.as_str()),
        (400, "Bad Request")
    );
    assert!(response.body == error_page(400));
    assert_eq!(response.header("connection"), Some("close"));
    client.expect_close(Duration::from_secs(5));
    // The server keeps serving others.
    assert_eq!(server.client().get("/file.txt").status, 200);
}

fn missing_host_on_http11_is_400() {
    let root = demo_root();
    let server = Server::start(root.path(), &[]);
    let mut client = server.client();
    client.send(b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(client.response().status, 400);
}

fn file_not_world_readable_is_403_with_the_403_page() {
    let root = demo_root();
    chmod(&root.path().join("robots.txt"), 0o400);
    let server = Server::start(root.path(), &[]);
    let response = server.client().get("/robots.txt");
    assert_eq!(
        (response.status, response.reason.as_str()),
        (403, "Forbidden")
    );
    assert!(response.body == error_page(403));
    // World-readable again: served, whoever runs the server.
    chmod(&root.path().join("robots.txt"), 0o644);
    assert_eq!(server.client().get("/robots.txt").status, 200);
}

fn other_methods_are_405_with_allow() {
    let root = demo_root();
    let server = Server::start(root.path(), &[]);
    let mut client = server.client();
    for method in ["DELETE", "PUT", "TRACE"] {
        client.send(format!("{method} /file.txt HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
        let response = client.response();
        assert_eq!(response.status, 405, "{method}");
        assert_eq!(
            response.header("allow"),
            Some("GET, HEAD, OPTIONS"),
            "{method}"
        );
        assert!(response.body == error_page(405), "{method}");
    }
}

fn head_sends_the_headers_of_get_and_no_body() {
    let root = demo_root();
    let server = Server::start(root.path(), &[]);
    let mut client = server.client();
    client.send(b"HEAD /traverse.jpg HTTP/1.1\r\nHost: a\r\n\r\n");
    let head = client.head_response();
    assert_eq!(head.status, 200);
    let length = site_file("traverse.jpg").len().to_string();
    assert_eq!(head.header("content-length"), Some(length.as_str()));
    assert_eq!(media_type(&head), "image/jpeg");
    // The next response starts right where the head ended: no body was sent.
    assert_eq!(client.get("/file.txt").text(), "This is my text file.\n");
}

fn directory_without_slash_redirects_and_with_slash_serves_its_index() {
    let root = demo_root();
    std::fs::create_dir(root.path().join("news")).expect("mkdir");
    std::fs::write(root.path().join("news/index.html"), "<p>news</p>").expect("write");
    let server = Server::start(root.path(), &[]);
    let mut client = server.client();
    let response = client.get("/news");
    assert_eq!(response.status, 301);
    assert_eq!(response.header("location"), Some("/news/"));
    let response = client.get("/news/");
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "<p>news</p>")
    );
}

fn every_response_has_type_length_date_and_server() {
    let root = demo_root();
    chmod(&root.path().join("robots.txt"), 0o400);
    let server = Server::start(root.path(), &[]);
    let mut client = server.client();
    for target in ["/", "/file.txt", "/gif.gif", "/nope", "/robots.txt", "/%zz"] {
        let response = client.get(target);
        assert_eq!(response.version, "HTTP/1.1", "{target}");
        for name in ["content-type", "content-length", "date", "server"] {
            assert_eq!(response.count(name), 1, "{target}: {name}");
        }
        let length: usize = response
            .header("content-length")
            .unwrap_or("")
            .parse()
            .expect("length");
        assert_eq!(length, response.body.len(), "{target}");
        let date = response.header("date").unwrap_or_default();
        let when = httpdate::parse_http_date(date).expect("IMF-fixdate");
        let skew = SystemTime::now()
            .duration_since(when)
            .unwrap_or_else(|e| e.duration());
        assert!(skew < Duration::from_secs(60), "{target}: Date {date}");
        assert!(
            response
                .header("server")
                .unwrap_or_default()
                .starts_with("poolhttpd/")
        );
        if response.status == 400 {
            client = server.client();
        }
    }
}

/// A log line without its leading timestamp, which must be the local time to the
/// millisecond: `2026-11-27 21:05:03.123 `.
fn unstamped(line: &str) -> &str {
    crate::support::split_stamp(line).1
}

/// The log tells what left and how it ended. A download the client resets after 64 KiB is
/// logged once, with the bytes written before the reset out of the full length and
/// `(reset)`; a request that never finishes arriving is logged as a 408, and a body over
/// the limit as a 413 that says what was refused.
fn the_log_tells_what_was_sent_and_how_it_ended() {
    // More than loopback's send and receive buffers can hold together (a few MiB each), so
    // the reset always comes before the last byte is written.
    const BIG: usize = 32 << 20;
    let root = demo_root();
    big_file(&root.path().join("big.bin"), BIG);
    let server = Server::start(root.path(), &["--header-timeout", "1"]);

    let mut client = server.client();
    let reset_port = client.local_port();
    client.send(b"GET /big.bin HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(client.head_response().status, 200);
    client.read_body(64 * 1024);
    // Closing with unread bytes in the receive buffer sends a reset, not a FIN.
    drop(client);
    let line = server
        .wait_for_log(|l| l.contains(&format!(":{reset_port} \"GET /big.bin HTTP/1.1\" 200 ")))
        .expect("the reset download is logged");
    let line = unstamped(&line);
    assert!(line.ends_with(" (reset)"), "{line}");
    // `… 200 SENT/LENGTH TIME (reset)`
    let (sent, length) = line
        .split(" 200 ")
        .nth(1)
        .and_then(|rest| rest.split_once('/'))
        .and_then(|(sent, rest)| Some((sent.parse::<usize>().ok()?, rest.split(' ').next()?)))
        .unwrap_or_else(|| panic!("no sent/length in {line:?}"));
    assert_eq!(length, BIG.to_string(), "{line}");
    assert!((64 * 1024..BIG).contains(&sent), "{line}");

    let mut client = server.client();
    let timeout_port = client.local_port();
    client.send(b"GET /file.txt HTT");
    assert_eq!(client.response().status, 408);
    let line = server
        .wait_for_log(|l| l.contains(&format!(":{timeout_port} \"")) && l.contains("\" 408 "))
        .expect("the 408 is logged");
    assert!(unstamped(&line).starts_with('['), "{line}");

    let mut client = server.client();
    let large_port = client.local_port();
    client.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9999999999\r\n\r\n");
    assert_eq!(client.response().status, 413);
    server
        .wait_for_log(|l| l.contains(&format!(":{large_port} \"- request body too large\" 413 ")))
        .expect("the 413 is logged");
}

fn the_log_names_the_worker_that_served_each_request() {
    let root = demo_root();
    let server = Server::start(root.path(), &["--workers", "2"]);
    let mut client = server.client();
    client.get("/file.txt");
    let local = client.local_port();
    let line = server
        .wait_for_log(|l| l.contains("\"GET /file.txt HTTP/1.1\" 200 22 "))
        .expect("request log line");
    let open = server
        .wait_for_log(|l| l.contains(&format!(":{local} open")))
        .expect("connection open line");
    let (line, open) = (unstamped(&line), unstamped(&open));
    // `[worker N]` in the pool; `[thread conn-N]` when each connection has its own thread.
    let actor = line.split(']').next().unwrap_or_default();
    let number = |prefix: &str| -> u64 {
        actor
            .strip_prefix(prefix)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix:?} in {line:?}"))
    };
    if crate::support::model() == "pool" {
        assert!(number("[worker ") < 2, "{line}");
        assert!(open.starts_with("[poll] conn "), "{open}");
    } else {
        let conn = number("[thread conn-");
        assert!(
            open.starts_with(&format!("[accept] conn {conn} ")),
            "{open}"
        );
    }
    assert!(line.contains(&format!("127.0.0.1:{local} ")), "{line}");
    assert!(line.ends_with("ms"), "{line}");
}

fn quiet_prints_the_banner_and_nothing_else() {
    let root = demo_root();
    let server = Server::start(root.path(), &["--quiet"]);
    server.client().get("/file.txt");
    server.client().get("/nope");
    // A request line would have arrived by the time a later response does.
    server.client().get("/index.html");
    let printed = server.stop();
    assert_eq!(printed.len(), 4, "{printed:?}");
    assert!(printed[2].starts_with("Access Server at "), "{printed:?}");
    assert!(printed[3].starts_with("Serving "), "{printed:?}");
}

fn banner_names_the_directory_and_the_bound_port() {
    let root = demo_root();
    let server = Server::start(root.path(), &[]);
    let port = server.port;
    assert_ne!(port, 0);
    assert_eq!(
        server.banner,
        [
            format!(
                "Using directory {} and port {port} for server.",
                root.path().display()
            ),
            "Starting Server...".to_string(),
            format!("Access Server at http://localhost:{port}/"),
        ]
    );
}

crate::both_models!(
    root_serves_index_html,
    index_html_by_name,
    image_page_and_every_image_it_references,
    every_asset_of_the_home_page_is_served,
    traverse_jpg_is_a_jpeg,
    gif_gif_is_an_animated_gif_over_a_megabyte,
    png_png_is_a_png,
    favicon_is_an_icon,
    file_txt_is_plain_text,
    missing_file_is_404_with_the_404_page,
    malformed_request_is_400_with_the_400_page,
    missing_host_on_http11_is_400,
    file_not_world_readable_is_403_with_the_403_page,
    other_methods_are_405_with_allow,
    head_sends_the_headers_of_get_and_no_body,
    directory_without_slash_redirects_and_with_slash_serves_its_index,
    every_response_has_type_length_date_and_server,
    the_log_names_the_worker_that_served_each_request,
    the_log_tells_what_was_sent_and_how_it_ended,
    quiet_prints_the_banner_and_nothing_else,
    banner_names_the_directory_and_the_bound_port,
);
