//! Error pages: the repository's `error/` pages, compiled into the binary so that an
//! installed server shows them anywhere; or pages read once at start from `--error-pages
//! DIR`, with the compiled-in page standing in for any file the directory lacks.

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
    /// Loads `dir/NNN.html` for every error status, compiled-in pages where a file is
    /// missing. `dir` of `None` gives the compiled-in pages only.
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

/// The pages of the repository's `error/`, compiled in.
const COMPILED_IN: [(u16, &[u8]); 13] = [
    (400, include_bytes!("../error/400.html")),
    (403, include_bytes!("../error/403.html")),
    (404, include_bytes!("../error/404.html")),
    (405, include_bytes!("../error/405.html")),
    (408, include_bytes!("../error/408.html")),
    (412, include_bytes!("../error/412.html")),
    (413, include_bytes!("../error/413.html")),
    (414, include_bytes!("../error/414.html")),
    (416, include_bytes!("../error/416.html")),
    (431, include_bytes!("../error/431.html")),
    (500, include_bytes!("../error/500.html")),
    (501, include_bytes!("../error/501.html")),
    (505, include_bytes!("../error/505.html")),
];

/// The compiled-in page for `status`, or a plain page naming it.
fn built_in(status: Status) -> Box<[u8]> {
    if let Some((_, page)) = COMPILED_IN.iter().find(|(code, _)| *code == status.code()) {
        return (*page).into();
    }
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
    fn files_override_compiled_in_pages() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("404.html"), "custom 404").unwrap();
        let pages = ErrorPages::load(Some(dir.path())).unwrap();
        assert_eq!(pages.get(Status::NotFound), b"custom 404");
        let repository = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("error");
        assert_eq!(
            pages.get(Status::Forbidden),
            std::fs::read(repository.join("403.html")).unwrap()
        );
    }

    #[test]
    fn every_error_status_has_the_repositorys_page_compiled_in() {
        let repository = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("error");
        let pages = ErrorPages::load(None).unwrap();
        for status in Status::ALL.into_iter().filter(|s| s.is_error()) {
            let file = repository.join(format!("{}.html", status.code()));
            let want = std::fs::read(&file).unwrap_or_else(|err| panic!("{file:?}: {err}"));
            assert_eq!(pages.get(status), want, "{status:?}");
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
