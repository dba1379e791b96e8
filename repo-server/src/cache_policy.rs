//! `Cache-Control` per kind of file, so a CDN in front of the server caches what is safe to cache.
//!
//! TUF's consistent snapshots make every versioned file name refer to exactly one content, so
//! those may be cached "forever". The entry points a client polls (`timestamp.json`) and the root
//! chain (probed for `N+1.root.json` until a 404, where a cached 404 or stale root would hide a
//! key rotation) must never be cached.

use crate::resolve::{RequestPath, Tree};

/// Versioned, content-addressed files: one year, never revalidated.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Never store: timestamp, root chain, errors.
pub const NO_STORE: &str = "no-store";
/// Unversioned files other than the above (e.g. `snapshot.json` without a version prefix, or
/// target files without a hash prefix): a short lifetime bounds how stale a CDN copy can be.
pub const SHORT: &str = "public, max-age=60";

/// The `Cache-Control` value for a successful response serving `req`.
pub fn for_path(req: &RequestPath) -> &'static str {
    let name = req.file_name();
    match req.tree {
        Tree::Metadata => metadata_policy(name),
        Tree::Targets if is_hash_prefixed(name) => IMMUTABLE,
        Tree::Targets => SHORT,
    }
}

fn metadata_policy(name: &str) -> &'static str {
    let Some(stem) = name.strip_suffix(".json") else {
        return SHORT;
    };
    let (version, role) = match stem.split_once('.') {
        Some((v, role)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
            (Some(v), role)
        }
        _ => (None, stem),
    };
    match (version, role) {
        (_, "root" | "timestamp") => NO_STORE,
        (Some(_), _) => IMMUTABLE,
        (None, _) => SHORT,
    }
}

/// `<hex digest>.<name>` with a SHA-256 (64) or SHA-512 (128) lowercase hex prefix.
fn is_hash_prefixed(name: &str) -> bool {
    match name.split_once('.') {
        Some((hex, rest)) => {
            (hex.len() == 64 || hex.len() == 128)
                && !rest.is_empty()
                && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::parse;

    fn policy(path: &str) -> &'static str {
        for_path(&parse(path).unwrap())
    }

    #[test]
    fn metadata_policies() {
        assert_eq!(policy("/metadata/timestamp.json"), NO_STORE);
        assert_eq!(policy("/metadata/root.json"), NO_STORE);
        assert_eq!(policy("/metadata/1.root.json"), NO_STORE);
        assert_eq!(policy("/metadata/12.root.json"), NO_STORE);
        assert_eq!(policy("/metadata/3.snapshot.json"), IMMUTABLE);
        assert_eq!(policy("/metadata/5.targets.json"), IMMUTABLE);
        assert_eq!(policy("/metadata/4.role%252Fname.json"), IMMUTABLE);
        assert_eq!(policy("/metadata/snapshot.json"), SHORT);
        assert_eq!(policy("/metadata/targets.json"), SHORT);
        assert_eq!(policy("/metadata/x.root.json"), SHORT);
        assert_eq!(policy("/metadata/notes.txt"), SHORT);
    }

    #[test]
    fn target_policies() {
        let h = "a".repeat(64);
        assert_eq!(policy(&format!("/targets/{h}.fw.bin")), IMMUTABLE);
        assert_eq!(policy(&format!("/targets/dir/{h}.fw.bin")), IMMUTABLE);
        assert_eq!(
            policy(&format!("/targets/{}.fw.bin", "b".repeat(128))),
            IMMUTABLE
        );
        assert_eq!(
            policy(&format!("/targets/{}.fw.bin", "A".repeat(64))),
            SHORT
        );
        assert_eq!(
            policy(&format!("/targets/{}.fw.bin", "a".repeat(63))),
            SHORT
        );
        assert_eq!(policy(&format!("/targets/{h}.")), SHORT);
        assert_eq!(policy("/targets/fw.bin"), SHORT);
    }
}
