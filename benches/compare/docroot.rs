//! The generated document root every server is measured with, and what of each file a
//! response must match.

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

use testkit::files;

/// The small file's body: exactly 23 bytes.
const SMALL_BODY: &[u8] = b"A small file: 23 bytes\n";
const _: () = assert!(SMALL_BODY.len() == 23);
/// The HTML page's size: a typical article.
const PAGE_LEN: usize = 41_000;
/// The large file's size, and its generator's seed (any non-zero value).
const BIG_LEN: usize = 2 * 1024 * 1024;
const BIG_SEED: u64 = 0x5EED_CAFE_F00D_D00D;
/// Bytes compared at each end of the large file; its length is checked exactly. Comparing
/// all of it would make the client, not the server, the bottleneck.
const ENDS_CHECKED: usize = 64;

/// A file of the generated document root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum File {
    Small,
    Page,
    Big,
}

impl File {
    const ALL: [File; 3] = [File::Small, File::Page, File::Big];

    pub fn name(self) -> &'static str {
        match self {
            File::Small => "small.txt",
            File::Page => "page.html",
            File::Big => "big.bin",
        }
    }
}

/// A generated file and what of it a response must match.
pub struct Expected {
    bytes: Vec<u8>,
    /// Ranges of the body compared byte for byte; the length is always checked.
    checked: Vec<Range<usize>>,
}

impl Expected {
    fn whole(bytes: Vec<u8>) -> Expected {
        let checked = std::iter::once(0..bytes.len()).collect();
        Expected { bytes, checked }
    }

    /// Checks only the first and last `n` bytes.
    fn ends(bytes: Vec<u8>, n: usize) -> Expected {
        let len = bytes.len();
        let checked = vec![0..n.min(len), len.saturating_sub(n)..len];
        Expected { bytes, checked }
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether `chunk`, found at `offset` in the body, matches wherever it is checked.
    pub fn matches(&self, offset: usize, chunk: &[u8]) -> bool {
        let end = offset + chunk.len();
        end <= self.len()
            && self.checked.iter().all(|range| {
                let (from, to) = (range.start.max(offset), range.end.min(end));
                from >= to || chunk[from - offset..to - offset] == self.bytes[from..to]
            })
    }
}

/// The files every server is measured with, written under `target/bench/root`.
pub struct DocRoot {
    pub dir: PathBuf,
    small: Expected,
    page: Expected,
    big: Expected,
}

impl DocRoot {
    pub fn generate(dir: &Path) -> DocRoot {
        let failed = |err: std::io::Error| panic!("cannot write {}: {err}", dir.display());
        fs::create_dir_all(dir).unwrap_or_else(failed);
        // poolhttpd serves only world-readable files, whatever the umask says.
        files::set_mode(dir, 0o755).unwrap_or_else(failed);
        let root = DocRoot {
            dir: dir.to_path_buf(),
            small: Expected::whole(SMALL_BODY.to_vec()),
            page: Expected::whole(page_html()),
            big: Expected::ends(files::pseudo_random(BIG_LEN, BIG_SEED), ENDS_CHECKED),
        };
        for file in File::ALL {
            let bytes = &root.expected(file).bytes;
            files::write(&dir.join(file.name()), bytes, 0o644).unwrap_or_else(failed);
        }
        root
    }

    pub fn expected(&self, file: File) -> &Expected {
        match file {
            File::Small => &self.small,
            File::Page => &self.page,
            File::Big => &self.big,
        }
    }
}

/// An HTML page of exactly [`PAGE_LEN`] bytes.
fn page_html() -> Vec<u8> {
    const HEAD: &str = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
                        <title>poolhttpd benchmark page</title>\n</head>\n<body>\n<main>\n\
                        <h1>Benchmark page</h1>\n";
    const FOOT: &str = "</main>\n</body>\n</html>\n";
    let mut page = String::from(HEAD);
    for n in 1.. {
        let paragraph = format!(
            "<p>Paragraph {n}. A page of about forty kilobytes, like a typical article, \
             served again and again from the page cache.</p>\n"
        );
        if page.len() + paragraph.len() + FOOT.len() > PAGE_LEN {
            break;
        }
        page.push_str(&paragraph);
    }
    // Newlines between elements mean nothing in HTML: they pad the page to its exact size.
    page.push_str(&"\n".repeat(PAGE_LEN - page.len() - FOOT.len()));
    page.push_str(FOOT);
    assert_eq!(page.len(), PAGE_LEN);
    page.into_bytes()
}
