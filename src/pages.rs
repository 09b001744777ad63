//! Error pages: read once at start from the error-pages directory, with a built-in page for
//! every status that has no file.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::Path;

use crate::http::Status;

/// Largest error page we load. An error page is a few hundred bytes; anything near this is
/// a mistake we would rather refuse at start than copy into every error response.
pub const MAX_PAGE_LEN: u64 = 64 * 1024;

/// The body for each error status.
#[derive(Debug)]
pub struct ErrorPages {
    pages: HashMap<Status, Box<[u8]>>,
}

impl ErrorPages {
    /// Loads `dir/NNN.html` for every error status, built-in pages where a file is missing.
    /// `dir` of `None`, or a missing directory, gives built-in pages only.
    pub fn load(dir: Option<&Path>) -> io::Result<ErrorPages> {
        let mut pages = HashMap::new();
        for status in Status::ALL.into_iter().filter(|s| s.is_error()) {
            let file = dir.map(|dir| dir.join(format!("{}.html", status.code())));
            let page = match file {
                Some(path) => match read_page(&path) {
                    Ok(bytes) => bytes,
                    Err(err) if err.kind() == io::ErrorKind::NotFound => built_in(status),
                    Err(err) => {
                        return Err(io::Error::new(
                            err.kind(),
                            format!("{}: {err}", path.display()),
                        ));
                    }
                },
                None => built_in(status),
            };
            pages.insert(status, page);
        }
        Ok(ErrorPages { pages })
    }

    /// The page for `status`.
    pub fn get(&self, status: Status) -> &[u8] {
        self.pages.get(&status).map_or(&[][..], |page| &page[..])
    }
}

fn read_page(path: &Path) -> io::Result<Box<[u8]>> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_PAGE_LEN + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_PAGE_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {MAX_PAGE_LEN} bytes"),
        ));
    }
    Ok(bytes.into_boxed_slice())
}

/// A plain page naming the status.
fn built_in(status: Status) -> Box<[u8]> {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{status}</title></head>\n\
         <body><h1>{status}</h1><hr><p>poolhttpd</p></body></html>\n"
    )
    .into_bytes()
    .into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_override_built_in_pages() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("404.html"), "custom 404").unwrap();
        let pages = ErrorPages::load(Some(dir.path())).unwrap();
        assert_eq!(pages.get(Status::NotFound), b"custom 404");
        let built = String::from_utf8(pages.get(Status::Forbidden).to_vec()).unwrap();
        assert!(built.contains("<title>403 Forbidden</title>"), "{built}");
        for status in Status::ALL.into_iter().filter(|s| s.is_error()) {
            assert!(!pages.get(status).is_empty(), "{status:?}");
        }
    }

    #[test]
    fn oversized_page_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let big = vec![b'x'; MAX_PAGE_LEN as usize + 1];
        std::fs::write(dir.path().join("500.html"), big).unwrap();
        assert!(ErrorPages::load(Some(dir.path())).is_err());
    }
}
