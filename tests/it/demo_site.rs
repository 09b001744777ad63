//! The demo site holds together: starting from the front page, every page it links to is
//! served, every file those pages name (`href`, `src`, and a form's `action`) is served, and
//! every `#anchor` among those links names an element of the page it points into.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::support::{Client, Server, demo_root};

/// Requests the crawl may make, redirects included; a site that needs more has a loop.
const MAX_FETCHES: usize = 500;

/// How many 301s in a row one link may take before it counts as a loop.
const MAX_REDIRECTS: usize = 3;

/// Links that are meant to fail, and how: the front page's way to show the 404 page.
const DELIBERATE: &[(&str, u16)] = &[("/no-such-page.html", 404)];

/// One start tag: its name and attributes, names lower-cased, values with `&amp;` decoded.
struct Tag {
    name: String,
    attributes: Vec<(String, String)>,
}

impl Tag {
    fn get(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The start tags of `html`, skipping comments, end tags, declarations, and the text of
/// `script` and `style` elements. Enough for pages this project writes, not a full parser.
fn tags(html: &str) -> Vec<Tag> {
    let bytes = html.as_bytes();
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(open) = html[at..].find('<').map(|i| at + i) {
        let rest = &html[open..];
        if rest.starts_with("<!--") {
            at = rest.find("-->").map_or(html.len(), |i| open + i + 3);
            continue;
        }
        if !bytes.get(open + 1).is_some_and(u8::is_ascii_alphabetic) {
            at = rest.find('>').map_or(html.len(), |i| open + i + 1);
            continue;
        }
        let mut i = open + 1;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'-') {
            i += 1;
        }
        let name = html[open + 1..i].to_ascii_lowercase();
        let mut attributes = Vec::new();
        loop {
            while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
                i += 1;
            }
            if i >= bytes.len() || bytes[i] == b'>' {
                i += 1;
                break;
            }
            let start = i;
            while i < bytes.len() && !b" \t\r\n=>/".contains(&bytes[i]) {
                i += 1;
            }
            let attribute = html[start..i].to_ascii_lowercase();
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            let mut value = String::new();
            if bytes.get(i) == Some(&b'=') {
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                // A quoted value ends at its closing quote (skipped), a bare one at a space
                // or the tag's end.
                let (from, to, next) = match bytes.get(i) {
                    Some(&quote @ (b'"' | b'\'')) => {
                        let end = html[i + 1..]
                            .find(quote as char)
                            .map_or(html.len(), |j| i + 1 + j);
                        (i + 1, end, end + 1)
                    }
                    _ => {
                        let end = html[i..]
                            .find(|c: char| c.is_ascii_whitespace() || c == '>')
                            .map_or(html.len(), |j| i + j);
                        (i, end, end)
                    }
                };
                value = html[from..to].replace("&amp;", "&");
                i = next;
            }
            attributes.push((attribute, value));
        }
        if name == "script" || name == "style" {
            let end = format!("</{name}");
            i = html[i.min(html.len())..]
                .to_ascii_lowercase()
                .find(&end)
                .map_or(html.len(), |j| i + j);
        }
        at = i.min(html.len());
        found.push(Tag { name, attributes });
    }
    found
}

/// Where a link in the page at `base` leads on this site: a path without query or
/// fragment, and the fragment. `None` for links elsewhere (other hosts, `mailto:`, `tel:`).
fn resolve(base: &str, link: &str) -> Option<(String, Option<String>)> {
    let link = link.trim();
    let (rest, fragment) = match link.split_once('#') {
        Some((rest, fragment)) => (rest, Some(fragment.to_string())),
        None => (link, None),
    };
    let rest = rest.split('?').next().unwrap_or_default();
    let scheme = rest
        .split_once(':')
        .filter(|(scheme, _)| {
            scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        })
        .map(|(scheme, after)| (scheme.to_ascii_lowercase(), after));
    let path = match scheme {
        Some((scheme, after)) if scheme == "http" || scheme == "https" => this_host(after)?,
        Some(_) => return None,
        None if rest.starts_with("//") => this_host(rest)?,
        None if rest.is_empty() => base.to_string(),
        None if rest.starts_with('/') => rest.to_string(),
        None => format!("{}{rest}", &base[..=base.rfind('/').unwrap_or(0)]),
    };
    Some((normalize(&path), fragment))
}

/// The path of `//host/path` if the host is this server's, loopback.
fn this_host(after_scheme: &str) -> Option<String> {
    let authority_and_path = after_scheme.strip_prefix("//")?;
    let (authority, path) = match authority_and_path.find('/') {
        Some(i) => authority_and_path.split_at(i),
        None => (authority_and_path, "/"),
    };
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host);
    ["localhost", "127.0.0.1", "[::1]"]
        .contains(&host)
        .then(|| path.to_string())
}

/// `path` without `.` and `..` segments.
fn normalize(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    for (n, part) in parts.iter().enumerate() {
        match *part {
            "." => {}
            ".." => {
                segments.pop();
            }
            _ => segments.push(part),
        }
        // A trailing `.` or `..` still names a directory.
        if n + 1 == parts.len() && (*part == "." || *part == "..") {
            segments.push("");
        }
    }
    format!("/{}", segments.join("/"))
}

/// What the crawl found.
#[derive(Default)]
struct Crawl {
    /// Requests made.
    fetches: usize,
    /// Every path a link leads to, with the first page that links to it.
    linked_from: BTreeMap<String, String>,
    /// The path each linked path was finally served at, after redirects.
    served_at: BTreeMap<String, String>,
    /// The HTML pages, by the path they were served at, with the ids (and `<a name>`s)
    /// they hold.
    pages: BTreeMap<String, BTreeSet<String>>,
    /// Links with a fragment: the page they are on, the path, the fragment.
    anchors: BTreeSet<(String, String, String)>,
    /// The deliberate failures met, with the status each got.
    deliberate: BTreeMap<String, u16>,
    /// Everything wrong.
    failures: Vec<String>,
}

impl Crawl {
    /// Fetches `path`, following 301s to the slash form. The path it was served at and its
    /// body if it answered 200 as HTML; `None` otherwise (failures recorded).
    fn fetch(&mut self, server: &Server, path: &str) -> Option<(String, String)> {
        let from = self.linked_from[path].clone();
        let mut at = path.to_string();
        for _ in 0..=MAX_REDIRECTS {
            self.fetches += 1;
            assert!(
                self.fetches <= MAX_FETCHES,
                "the crawl took more than {MAX_FETCHES} requests"
            );
            let response = Client::connect(server.port).get(&at);
            if let Some(&(_, status)) = DELIBERATE.iter().find(|(p, _)| *p == at) {
                if response.status != status {
                    self.failures.push(format!(
                        "{at} (linked from {from}) answered {}, not the {status} it demonstrates",
                        response.status
                    ));
                }
                self.deliberate.insert(at, response.status);
                return None;
            }
            match response.status {
                200 => {
                    self.served_at.insert(path.to_string(), at.clone());
                    let html = response
                        .header("content-type")
                        .is_some_and(|t| t.starts_with("text/html"));
                    return html.then(|| (at, response.text()));
                }
                301 => {
                    let location = response.header("location").unwrap_or_default();
                    let slash_form = format!("{at}/");
                    if location != slash_form {
                        self.failures.push(format!(
                            "{at} (linked from {from}) redirects to {location:?}, not {slash_form}"
                        ));
                        return None;
                    }
                    at = slash_form;
                }
                status => {
                    self.failures
                        .push(format!("{at} (linked from {from}) answered {status}"));
                    return None;
                }
            }
        }
        self.failures.push(format!(
            "{path} (linked from {from}) redirects more than {MAX_REDIRECTS} times"
        ));
        None
    }

    /// Crawls the site from `/`.
    fn run(server: &Server) -> Crawl {
        let mut crawl = Crawl::default();
        let mut queue = VecDeque::from(["/".to_string()]);
        crawl
            .linked_from
            .insert("/".to_string(), "(the start)".to_string());
        while let Some(path) = queue.pop_front() {
            let Some((page, html)) = crawl.fetch(server, &path) else {
                continue;
            };
            if crawl.pages.contains_key(&page) {
                continue;
            }
            let mut ids = BTreeSet::new();
            for tag in tags(&html) {
                if let Some(id) = tag.get("id") {
                    ids.insert(id.to_string());
                }
                if tag.name == "a"
                    && let Some(name) = tag.get("name")
                {
                    ids.insert(name.to_string());
                }
                for attribute in ["href", "src", "action"] {
                    let Some(link) = tag.get(attribute) else {
                        continue;
                    };
                    let Some((target, fragment)) = resolve(&page, link) else {
                        continue;
                    };
                    if let Some(fragment) = fragment.filter(|f| !f.is_empty()) {
                        crawl
                            .anchors
                            .insert((page.clone(), target.clone(), fragment));
                    }
                    if !crawl.linked_from.contains_key(&target) {
                        crawl.linked_from.insert(target.clone(), page.clone());
                        queue.push_back(target);
                    }
                }
            }
            crawl.pages.insert(page, ids);
        }
        crawl
    }

    /// Records each anchor that names no element of the page it points into.
    fn check_anchors(&mut self) {
        for (page, target, fragment) in std::mem::take(&mut self.anchors) {
            if self.deliberate.contains_key(&target) {
                continue;
            }
            let Some(served) = self.served_at.get(&target) else {
                continue; // its fetch failed, and says so
            };
            match self.pages.get(served) {
                Some(ids) if ids.contains(&fragment) => {}
                Some(_) => self.failures.push(format!(
                    "{page} links to {target}#{fragment}, but {served} has no id {fragment:?}"
                )),
                None => self.failures.push(format!(
                    "{page} links to {target}#{fragment}, but {served} is not an HTML page"
                )),
            }
        }
    }
}

fn every_link_of_the_demo_site_leads_somewhere() {
    let root = demo_root();
    let server = Server::start(root.path(), &[]);
    let mut crawl = Crawl::run(&server);
    crawl.check_anchors();
    assert!(
        crawl.failures.is_empty(),
        "{} broken links:\n{}",
        crawl.failures.len(),
        crawl.failures.join("\n")
    );
    for (path, status) in DELIBERATE {
        assert_eq!(
            crawl.deliberate.get(*path),
            Some(status),
            "{path} should be linked, and answer {status}"
        );
    }
    assert!(
        crawl.pages.len() > 1,
        "the front page should lead to other pages: {:?}",
        crawl.pages.keys()
    );
}

#[test]
fn the_crawler_reads_links_as_a_browser_would() {
    let found = tags(concat!(
        "<!-- <a href=\"/commented\"> --><!DOCTYPE html><A HREF='/upper' id=x>",
        "<script>if (a<b) { x = \"<a href='/script'>\"; }</script>",
        "<img src=pic.png alt=\"a > b\"><a name=\"top\" href=\"q?a=1&amp;b=2#f\"></a>"
    ));
    let links: Vec<_> = found
        .iter()
        .flat_map(|t| ["href", "src"].map(|a| t.get(a)))
        .flatten()
        .collect();
    assert_eq!(links, ["/upper", "pic.png", "q?a=1&b=2#f"]);
    assert_eq!(found[0].get("id"), Some("x"));
    assert_eq!(found.last().and_then(|t| t.get("name")), Some("top"));

    let at = |link| resolve("/news/index.html", link);
    let path = |p: &str, f: Option<&str>| Some((p.to_string(), f.map(str::to_string)));
    assert_eq!(at("#events"), path("/news/index.html", Some("events")));
    assert_eq!(at("../about/#facts"), path("/about/", Some("facts")));
    assert_eq!(at("pic.jpg?x=1"), path("/news/pic.jpg", None));
    assert_eq!(at("/a/./b/../c"), path("/a/c", None));
    assert_eq!(at("http://localhost:8080/x"), path("/x", None));
    assert_eq!(at("https://example.org/x"), None);
    assert_eq!(at("//example.org/x"), None);
    assert_eq!(at("mailto:someone@example.org"), None);
    assert_eq!(at("tel:+15550100100"), None);
}

both_models!(every_link_of_the_demo_site_leads_somewhere);
