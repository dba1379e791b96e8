//! Entity tags: generation from file metadata and the comparisons RFC 9110 §8.8.3 defines.
//!
//! The tag is derived from inode, size and modification time (nanosecond resolution), not from
//! the content. That makes it free to compute for multi-gigabyte targets. It is a strong validator
//! under the assumption every repository writer follows (write a new file, then rename): any
//! change gives a new inode or mtime. A writer that rewrites a file in place with the same size
//! and then resets its mtime to the old value would go unnoticed; such writers are not supported.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

/// Strong entity tag (including quotes) for the file described by `meta`.
pub fn for_metadata(meta: &Metadata) -> String {
    format!(
        "\"{:x}-{:x}-{:x}.{:x}\"",
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec()
    )
}

/// One parsed entity tag.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EntityTag<'a> {
    weak: bool,
    /// The quoted string including its quotes.
    opaque: &'a str,
}

/// Parses a comma-separated list of entity tags; `None` on any syntax error.
fn parse_list(value: &str) -> Option<Vec<EntityTag<'_>>> {
    let mut tags = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return Some(tags);
        }
        let (weak, after) = match rest.strip_prefix("W/") {
            Some(after) => (true, after),
            None => (false, rest),
        };
        let inner = after.strip_prefix('"')?;
        let close = inner.find('"')?;
        tags.push(EntityTag {
            weak,
            opaque: &after[..close + 2],
        });
        rest = &inner[close + 1..];
        if !(rest.is_empty() || rest.starts_with([' ', '\t', ','])) {
            return None;
        }
    }
}

/// `If-None-Match` evaluation: true when the client's copy is current (answer 304).
/// Uses the weak comparison, as RFC 9110 §13.1.2 requires.
pub fn none_match_hits(header: &str, current: &str) -> bool {
    if header.trim() == "*" {
        return true;
    }
    parse_list(header).is_some_and(|tags| tags.iter().any(|t| t.opaque == current))
}

/// `If-Range` with an entity tag: true when the range may be served. Uses the strong comparison,
/// so weak tags never match (RFC 9110 §13.1.5). A date in `If-Range` is treated as a mismatch,
/// which makes the server send the full body: always correct, merely less efficient.
pub fn if_range_matches(header: &str, current: &str) -> bool {
    match parse_list(header.trim()).as_deref() {
        Some([tag]) => !tag.weak && tag.opaque == current,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_is_quoted_and_changes_with_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"one").unwrap();
        let a = for_metadata(&std::fs::metadata(&path).unwrap());
        assert!(a.starts_with('"') && a.ends_with('"') && a.len() > 2);
        assert_eq!(a, for_metadata(&std::fs::metadata(&path).unwrap()));
        // Replace by rename, as repository writers do: new inode, new tag.
        let tmp = dir.path().join("f.tmp");
        std::fs::write(&tmp, b"two").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        let b = for_metadata(&std::fs::metadata(&path).unwrap());
        assert_ne!(a, b);
    }

    #[test]
    fn if_none_match_uses_weak_comparison() {
        let cur = "\"abc\"";
        assert!(none_match_hits("\"abc\"", cur));
        assert!(none_match_hits("W/\"abc\"", cur));
        assert!(none_match_hits("\"x\", W/\"y\",\"abc\"", cur));
        assert!(none_match_hits(" * ", cur));
        assert!(!none_match_hits("\"abcd\"", cur));
        assert!(!none_match_hits("abc", cur));
        assert!(!none_match_hits("\"abc", cur));
        assert!(!none_match_hits("", cur));
    }

    #[test]
    fn if_range_uses_strong_comparison() {
        let cur = "\"abc\"";
        assert!(if_range_matches("\"abc\"", cur));
        assert!(!if_range_matches("W/\"abc\"", cur));
        assert!(!if_range_matches("\"other\"", cur));
        assert!(!if_range_matches("Sat, 01 Jan 2000 00:00:00 GMT", cur));
        assert!(!if_range_matches("\"abc\", \"abc\"", cur));
    }
}
