//! The static files, embedded at build time from `images/http/static/`
//! (see `build.rs`), and how a URL path finds one.

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// URL path, e.g. `/index.html`.
    pub path: &'static str,
    pub media_type: &'static str,
    pub body: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The file a request path names (`/` is `/index.html`); the query string
/// is ignored.
pub fn find(path: &str) -> Option<&'static Asset> {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let path = if path == "/" { "/index.html" } else { path };
    ASSETS.iter().find(|asset| asset.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_the_index_page() {
        let index = find("/").unwrap();
        assert_eq!(index.path, "/index.html");
        assert!(index.media_type.starts_with("text/html"));
        assert!(
            core::str::from_utf8(index.body)
                .unwrap()
                .contains("Rootstock")
        );
        assert_eq!(find("/?lang=en").unwrap().path, "/index.html");
    }

    #[test]
    fn unknown_paths_find_nothing() {
        assert!(find("/nope").is_none());
        assert!(find("/../Cargo.toml").is_none());
        assert!(find("").is_none());
    }

    #[test]
    fn every_static_file_is_embedded() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/static");
        let on_disk = std::fs::read_dir(dir).unwrap().count();
        assert_eq!(ASSETS.len(), on_disk);
        let hello = find("/hello.txt").unwrap();
        assert_eq!(
            hello.body,
            std::fs::read(format!("{dir}/hello.txt")).unwrap()
        );
    }
}
