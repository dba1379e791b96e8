//! Small files (all metadata, key slips) kept in memory and revalidated by one `lstat` per
//! request.
//!
//! Profiling showed a `timestamp.json` request spending most of its time in the blocking pool
//! (thread wake-ups) and in path resolution (two `canonicalize` calls, 9 `readlink`s). A hit here
//! costs one `lstat` on the runtime thread instead.
//!
//! Why a hit is never stale: an entry is only stored when the requested path itself (not a
//! symlink) names the regular file that was opened safely by [`crate::resolve::open`], with the
//! same device, inode, size, mtime and ctime before and after the content was read. A hit needs
//! the path's `lstat` to match all of these again. Publishing renames a new file over the old one
//! (new inode), and any write, `chmod` or link change updates ctime, so the changed file misses
//! and goes through `resolve::open` and its symlink and boundary checks again.

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use hyper::header::HeaderValue;

use crate::etag;

/// Files up to this size are cached (and read whole when opened).
pub(crate) const SMALL_FILE: u64 = 64 * 1024;

/// Upper bound of cached content; reaching it empties the cache (simple, and a repository's
/// hot set of metadata is far smaller).
const MAX_BYTES: usize = 32 * 1024 * 1024;

/// Bookkeeping charged per entry besides its content, so many empty files are bounded too.
const ENTRY_OVERHEAD: usize = 256;

/// Identity and version of a file: what must be unchanged for a cached copy to be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(m: &Metadata) -> Self {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// What the response headers say about a file, computed once per version of it.
#[derive(Debug, Clone)]
pub(crate) struct Validators {
    /// File size.
    pub(crate) len: u64,
    /// Strong ETag (with quotes), as text for comparisons.
    pub(crate) etag: String,
    /// The same, ready to be sent.
    pub(crate) etag_value: Option<HeaderValue>,
    /// `Last-Modified`, if the file system gives a time.
    pub(crate) last_modified: Option<HeaderValue>,
    /// mtime in seconds, for `If-Modified-Since`.
    pub(crate) mtime_secs: i64,
}

impl Validators {
    pub(crate) fn of(meta: &Metadata) -> Self {
        let tag = etag::for_metadata(meta);
        Validators {
            len: meta.len(),
            etag_value: HeaderValue::from_str(&tag).ok(),
            etag: tag,
            last_modified: meta
                .modified()
                .ok()
                .and_then(|m| HeaderValue::from_str(&httpdate::fmt_http_date(m)).ok()),
            mtime_secs: meta.mtime(),
        }
    }
}

/// A cached file.
#[derive(Debug)]
pub(crate) struct Cached {
    stamp: Stamp,
    /// Header values for this version.
    pub(crate) validators: Validators,
    /// The whole content.
    pub(crate) body: Bytes,
}

#[derive(Debug, Default)]
struct Map {
    entries: HashMap<String, Arc<Cached>>,
    bytes: usize,
}

/// The cache, keyed by the request's tree and decoded segments (see
/// [`crate::resolve::RequestPath::key`]).
#[derive(Debug, Default)]
pub(crate) struct FileCache {
    map: Mutex<Map>,
}

impl FileCache {
    fn lock(&self) -> MutexGuard<'_, Map> {
        // Every update leaves the map consistent, so a poisoned lock is still usable.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached copy of `key` if `path` (its file on disk) is still exactly that file. Costs
    /// one `lstat` when the key is cached, nothing otherwise.
    pub(crate) fn lookup(&self, key: &str, path: &Path) -> Option<Arc<Cached>> {
        let cached = Arc::clone(self.lock().entries.get(key)?);
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_file() && Stamp::of(&m) == cached.stamp => Some(cached),
            _ => {
                let mut map = self.lock();
                // Only drop the entry we checked; another request may have stored a newer one.
                if map
                    .entries
                    .get(key)
                    .is_some_and(|e| Arc::ptr_eq(e, &cached))
                {
                    map.entries.remove(key);
                    map.bytes -= cached.body.len() + ENTRY_OVERHEAD;
                }
                None
            }
        }
    }

    /// Stores `body`, read from the open file whose `fstat` (taken before reading) is `opened`,
    /// if `path` still names that very file: not a symlink to it, and not changed since.
    /// Blocking (one `lstat`).
    pub(crate) fn insert(&self, key: String, path: &Path, opened: &Metadata, body: Bytes) {
        let stamp = Stamp::of(opened);
        let same = std::fs::symlink_metadata(path)
            .is_ok_and(|m| m.file_type().is_file() && Stamp::of(&m) == stamp);
        if !same || body.len() as u64 != stamp.len || stamp.len > SMALL_FILE {
            return;
        }
        let entry = Arc::new(Cached {
            stamp,
            validators: Validators::of(opened),
            body,
        });
        let cost = entry.body.len() + ENTRY_OVERHEAD;
        let mut map = self.lock();
        if map.bytes + cost > MAX_BYTES {
            map.entries.clear();
            map.bytes = 0;
        }
        if let Some(old) = map.entries.insert(key, entry) {
            map.bytes -= old.body.len() + ENTRY_OVERHEAD;
        }
        map.bytes += cost;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(cache: &FileCache, path: &Path) {
        let meta = std::fs::metadata(path).unwrap();
        let body = Bytes::from(std::fs::read(path).unwrap());
        cache.insert("k".into(), path, &meta, body);
    }

    #[test]
    fn hit_until_replaced_by_rename_or_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("timestamp.json");
        std::fs::write(&path, b"one").unwrap();
        let cache = FileCache::default();
        assert!(cache.lookup("k", &path).is_none());
        load(&cache, &path);
        assert_eq!(&cache.lookup("k", &path).unwrap().body[..], b"one");

        let tmp = dir.path().join("new");
        std::fs::write(&tmp, b"two").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert!(cache.lookup("k", &path).is_none(), "renamed over: miss");

        load(&cache, &path);
        assert!(cache.lookup("k", &path).is_some());
        // Same inode and size, rewritten in place: ctime moves, so it is a miss.
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(&path, b"TWO").unwrap();
        assert!(cache.lookup("k", &path).is_none(), "rewritten: miss");
        assert_eq!(cache.lock().bytes, 0);
    }

    #[test]
    fn a_symlink_is_never_cached() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.json");
        std::fs::write(&real, b"x").unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let cache = FileCache::default();
        let meta = std::fs::metadata(&real).unwrap();
        cache.insert("k".into(), &link, &meta, Bytes::from_static(b"x"));
        assert!(cache.lookup("k", &link).is_none());
        assert!(cache.lookup("k", &real).is_none());
    }

    #[test]
    fn content_of_the_wrong_length_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").unwrap();
        let cache = FileCache::default();
        let meta = std::fs::metadata(&path).unwrap();
        cache.insert("k".into(), &path, &meta, Bytes::from_static(b"ab"));
        assert!(cache.lookup("k", &path).is_none());
    }
}
