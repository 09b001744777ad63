//! Where requests go: a server's address, its `Host`, and the path prefix under which it
//! serves the generated root.

use std::net::SocketAddr;

use url::{Position, Url};

use crate::docroot::File;

/// A server's address and how to name paths on it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// The `Host` field.
    pub host: String,
    /// Path prefix from `--url`, without a trailing slash ("" for the root).
    pub prefix: String,
    /// As given with `--url`; `None` for a server the bench started.
    pub url: Option<String>,
}

impl Endpoint {
    /// One of the bench's own servers, bound to loopback.
    pub fn loopback(port: u16) -> Endpoint {
        Endpoint {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            host: "localhost".to_string(),
            prefix: String::new(),
            url: None,
        }
    }

    /// Reads `http://HOST[:PORT][/PREFIX]`: no user, query or fragment.
    pub fn from_url(text: &str) -> Result<Endpoint, String> {
        let bad = |why: &str| {
            format!("malformed --url {text:?}: {why} (the form is http://HOST:PORT[/PREFIX])")
        };
        let url = Url::parse(text).map_err(|err| bad(&err.to_string()))?;
        if url.scheme() != "http" {
            return Err(bad("only http:// URLs are supported"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("no user allowed"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("no query or fragment allowed"));
        }
        let addr = url
            .socket_addrs(|| None)
            .map_err(|err| bad(&format!("cannot resolve it: {err}")))?
            .into_iter()
            .next()
            .ok_or_else(|| bad("its host has no address"))?;
        Ok(Endpoint {
            addr,
            host: url[Position::BeforeHost..Position::AfterPort].to_string(),
            prefix: url.path().trim_end_matches('/').to_string(),
            url: Some(text.to_string()),
        })
    }

    /// The request for `file`, asking to close the connection after it if `close`.
    pub fn request(&self, file: File, close: bool) -> Vec<u8> {
        let connection = if close { "Connection: close\r\n" } else { "" };
        format!(
            "GET {}/{} HTTP/1.1\r\nHost: {}\r\n{connection}\r\n",
            self.prefix,
            file.name(),
            self.host
        )
        .into_bytes()
    }
}
