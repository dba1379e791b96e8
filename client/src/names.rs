//! How role names and target paths become file names and URL paths.
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC};

/// Everything except `[A-Za-z0-9_.~-]`, like Python's `urllib.parse.quote(s, safe="")`.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~');

/// Characters that cannot appear raw in a URL path (`/` is kept as the separator).
const URL_PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Percent-encode `name` into a single harmless path segment: role names in metadata URLs and
/// cache file names, target paths as flat file names in a download directory.
pub fn encode_segment(name: &str) -> String {
    utf8_percent_encode(name, SEGMENT).to_string()
}

/// Encode a target path for a URL, keeping `/` and every character legal in a URL path.
pub fn encode_url_path(path: &str) -> String {
    utf8_percent_encode(path, URL_PATH).to_string()
}

/// The file name of metadata for `role`: `[<version>.]<encoded role>.json`.
pub fn metadata_file(role: &str, version: Option<u64>) -> String {
    match version {
        Some(v) => format!("{v}.{}.json", encode_segment(role)),
        None => format!("{}.json", encode_segment(role)),
    }
}

/// The download path of a target: with consistent snapshots the file name gets the hash
/// prefix (`dir/<hex>.name`, as the specification says), otherwise the path as is.
pub fn target_url_path(path: &str, hash_prefix: Option<&str>) -> String {
    let full = match hash_prefix {
        Some(h) => match path.rsplit_once('/') {
            Some((dir, base)) => format!("{dir}/{h}.{base}"),
            None => format!("{h}.{path}"),
        },
        None => path.to_string(),
    };
    encode_url_path(&full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_python_quote_without_safe_chars() {
        assert_eq!(encode_segment("targets"), "targets");
        assert_eq!(encode_segment("/delegatedrole"), "%2Fdelegatedrole");
        assert_eq!(encode_segment("../delegatedrole"), "..%2Fdelegatedrole");
        assert_eq!(encode_segment("?"), "%3F");
        assert_eq!(encode_segment("#"), "%23");
        assert_eq!(encode_segment("a b_c-d~e"), "a%20b_c-d~e");
    }

    #[test]
    fn metadata_and_target_names() {
        assert_eq!(metadata_file("root", Some(2)), "2.root.json");
        assert_eq!(metadata_file("?", None), "%3F.json");
        assert_eq!(target_url_path("a/b/c.txt", Some("ab12")), "a/b/ab12.c.txt");
        assert_eq!(target_url_path("c.txt", Some("ab12")), "ab12.c.txt");
        assert_eq!(target_url_path("dir/a b?.txt", None), "dir/a%20b%3F.txt");
    }
}
