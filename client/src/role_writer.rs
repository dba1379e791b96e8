//! Delegated targets roles are written to the metadata directory on a thread of their own, so
//! a cold refresh verifies the next role while the last one is being written (a new file costs
//! an inode allocation and a rename; hundreds of roles made that a third of a cold refresh).
//! At most [`QUEUED`] roles wait, so memory stays bounded; a write that fails is logged, not
//! fatal: these files are a cache the snapshot pins, fetched again when missing or damaged.
//! Root, timestamp and snapshot never go through here: they are stored durably, in order.
use crate::metadata_cache::MetadataCache;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// Roles waiting to be written before `store` waits for the writer.
const QUEUED: usize = 4;

enum Job {
    Store(String, Vec<u8>),
    Flush(mpsc::Sender<()>),
}

/// The writer thread, started on the first role stored and joined when dropped.
#[derive(Default)]
pub(crate) struct RoleWriter {
    running: Option<(mpsc::SyncSender<Job>, JoinHandle<()>)>,
}

impl RoleWriter {
    /// Write `bytes` (verified) as `role`'s file, in the background when a thread can be had.
    pub(crate) fn store(&mut self, cache: &MetadataCache, role: &str, bytes: Vec<u8>) {
        if self.running.is_none() {
            self.running = start(cache.clone());
        }
        let job = Job::Store(role.to_string(), bytes);
        let job = match &self.running {
            Some((tx, _)) => match tx.send(job) {
                Ok(()) => return,
                Err(mpsc::SendError(job)) => job,
            },
            None => job,
        };
        // No writer thread: write here.
        if let Job::Store(role, bytes) = job {
            write(cache, &role, &bytes);
        }
    }

    /// Wait until every role stored so far is written.
    pub(crate) fn flush(&mut self) {
        if let Some((tx, _)) = &self.running {
            let (done_tx, done_rx) = mpsc::channel();
            if tx.send(Job::Flush(done_tx)).is_ok() {
                let _ = done_rx.recv();
            }
        }
    }
}

impl Drop for RoleWriter {
    fn drop(&mut self) {
        if let Some((tx, thread)) = self.running.take() {
            drop(tx);
            let _ = thread.join();
        }
    }
}

fn start(cache: MetadataCache) -> Option<(mpsc::SyncSender<Job>, JoinHandle<()>)> {
    let (tx, rx) = mpsc::sync_channel::<Job>(QUEUED);
    let thread = std::thread::Builder::new()
        .name("ota-metadata-writer".into())
        .spawn(move || {
            for job in rx {
                match job {
                    Job::Store(role, bytes) => write(&cache, &role, &bytes),
                    Job::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
    match thread {
        Ok(handle) => Some((tx, handle)),
        Err(e) => {
            tracing::debug!("no metadata writer thread ({e}): roles are written in line");
            None
        }
    }
}

fn write(cache: &MetadataCache, role: &str, bytes: &[u8]) {
    if let Err(e) = cache.store(role, bytes) {
        tracing::warn!("could not cache {role} (it will be fetched again): {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_roles_are_on_disk_after_a_flush_and_after_the_writer_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let cache = MetadataCache::open(dir.path()).unwrap();
        let mut writer = RoleWriter::default();
        for i in 0..20 {
            writer.store(&cache, &format!("role-{i}"), format!("{i}").into_bytes());
        }
        writer.flush();
        assert_eq!(cache.load("role-19").unwrap().unwrap(), b"19");
        writer.store(&cache, "last", b"x".to_vec());
        drop(writer);
        assert_eq!(cache.load("last").unwrap().unwrap(), b"x");
        assert_eq!(cache.load("role-7").unwrap().unwrap(), b"7");
    }

    #[test]
    fn a_failed_write_is_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let cache = MetadataCache::open(dir.path().join("m")).unwrap();
        std::fs::remove_dir(dir.path().join("m")).unwrap();
        let mut writer = RoleWriter::default();
        writer.store(&cache, "role", b"x".to_vec());
        writer.flush();
        assert!(cache.load("role").unwrap().is_none());
    }
}
