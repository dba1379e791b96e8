//! Power-cut simulation, after CrashMonkey and ALICE: record every durable-write operation a
//! run makes, then compute, for every prefix of that sequence, what a power cut at that
//! point leaves on disk: data not yet fsync'd is dropped, and a created or renamed name
//! persists only once its directory was fsync'd.
//!
//! SIGKILL keeps the page cache (everything written survives); a power cut does not. The
//! model here is the strict one (nothing unsynced survives), which is the case a file system
//! may legally produce and the one that bricks devices.
//!
//! ```
//! use ota_client::storage::crash_sim::{Recorder, Snapshot};
//! use ota_client::storage::Storage;
//! let dir = tempfile::tempdir().unwrap();
//! let state = dir.path().join("state.json");
//! let rec = Recorder::new();
//! let before = Snapshot::read(&[state.clone()]).unwrap();
//! rec.replace(&state, b"{}", 0o644).unwrap();
//! let ops = rec.ops();
//! // Cut before the directory fsync: the new name is not durable yet.
//! assert_eq!(before.after_crash(&ops[..ops.len() - 1]).get(&state), None);
//! assert_eq!(before.after_crash(&ops).get(&state), Some(&b"{}"[..]));
//! ```
use super::{OsStorage, SlotFile, Storage};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// One recorded operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A new, empty file appeared under this name (not yet durable).
    Create(PathBuf),
    /// Bytes written at an offset of the file now named so.
    Write {
        /// The file.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// What.
        data: Vec<u8>,
    },
    /// The file was cut (or extended) to this length.
    SetLen(PathBuf, u64),
    /// fsync of the file's data.
    Sync(PathBuf),
    /// Rename (replacing the destination).
    Rename(PathBuf, PathBuf),
    /// fsync of a directory: its names become durable.
    SyncDir(PathBuf),
}

/// A [`Storage`] that performs every operation on the real file system and records it.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    ops: Arc<Mutex<Vec<Op>>>,
}

impl Recorder {
    /// An empty recording.
    pub fn new() -> Self {
        Recorder::default()
    }

    /// The operations so far.
    pub fn ops(&self) -> Vec<Op> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Op>> {
        self.ops.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, op: Op) {
        self.lock().push(op);
    }
}

impl Storage for Recorder {
    fn open_slot(&self, path: &Path) -> io::Result<Box<dyn SlotFile>> {
        let inner = OsStorage.open_slot(path)?;
        Ok(Box::new(RecordedSlot {
            inner,
            path: path.to_path_buf(),
            offset: 0,
            rec: self.clone(),
        }))
    }

    fn replace(&self, path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
        OsStorage.replace(path, bytes, mode)?;
        // What ota_fs::atomic::replace does, in order, under a name of its own.
        let dir = ota_fs::atomic::parent(path)?.to_path_buf();
        let n = self.lock().len();
        let tmp = dir.join(format!("{}sim-{n}", ota_fs::atomic::TEMP_PREFIX));
        self.push(Op::Create(tmp.clone()));
        self.push(Op::Write {
            path: tmp.clone(),
            offset: 0,
            data: bytes.to_vec(),
        });
        self.push(Op::Sync(tmp.clone()));
        self.push(Op::Rename(tmp, path.to_path_buf()));
        self.push(Op::SyncDir(dir));
        Ok(())
    }
}

struct RecordedSlot {
    inner: Box<dyn SlotFile>,
    path: PathBuf,
    offset: u64,
    rec: Recorder,
}

impl SlotFile for RecordedSlot {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)?;
        self.rec.push(Op::Write {
            path: self.path.clone(),
            offset: self.offset,
            data: buf.to_vec(),
        });
        self.offset += buf.len() as u64;
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.inner.truncate(len)?;
        self.rec.push(Op::SetLen(self.path.clone(), len));
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.inner.sync()?;
        self.rec.push(Op::Sync(self.path.clone()));
        Ok(())
    }
}

/// The content of a set of files (absent files are absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    files: BTreeMap<PathBuf, Vec<u8>>,
}

#[derive(Debug, Clone, Default)]
struct Inode {
    durable: Vec<u8>,
    volatile: Vec<u8>,
}

impl Snapshot {
    /// Read `paths` from disk (the state before a recorded run).
    pub fn read(paths: &[PathBuf]) -> io::Result<Self> {
        let mut files = BTreeMap::new();
        for p in paths {
            match std::fs::read(p) {
                Ok(b) => {
                    files.insert(p.clone(), b);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Snapshot { files })
    }

    /// The content of `path`, if it exists.
    pub fn get(&self, path: &Path) -> Option<&[u8]> {
        self.files.get(path).map(Vec::as_slice)
    }

    /// Every file, by path.
    pub fn files(&self) -> &BTreeMap<PathBuf, Vec<u8>> {
        &self.files
    }

    /// What survives a power cut after `ops` ran on top of this state.
    pub fn after_crash(&self, ops: &[Op]) -> Snapshot {
        let mut fs = Model::default();
        for (path, bytes) in &self.files {
            let i = fs.new_inode(bytes.clone());
            fs.durable.insert(path.clone(), i);
            fs.volatile.insert(path.clone(), i);
        }
        for op in ops {
            fs.apply(op);
        }
        let files = fs
            .durable
            .iter()
            .map(|(p, i)| (p.clone(), fs.inodes[*i].durable.clone()))
            .collect();
        Snapshot { files }
    }

    /// Make the disk look like this snapshot for `paths`: write each file that exists here,
    /// delete each of `paths` that does not. Also deletes temp files left in their
    /// directories by the recorded run, and writes the snapshot's own temp files.
    pub fn restore(&self, paths: &[PathBuf]) -> io::Result<()> {
        let mut dirs: Vec<&Path> = paths.iter().filter_map(|p| p.parent()).collect();
        dirs.sort();
        dirs.dedup();
        for dir in dirs {
            for entry in std::fs::read_dir(dir)? {
                let entry = entry?;
                if entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(ota_fs::atomic::TEMP_PREFIX)
                {
                    std::fs::remove_file(entry.path())?;
                }
            }
        }
        for p in paths {
            if !self.files.contains_key(p) {
                match std::fs::remove_file(p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        for (p, bytes) in &self.files {
            std::fs::write(p, bytes)?;
        }
        Ok(())
    }
}

/// Names and inodes, each with what is durable and what is only in the page cache.
#[derive(Debug, Default)]
struct Model {
    inodes: Vec<Inode>,
    durable: BTreeMap<PathBuf, usize>,
    volatile: BTreeMap<PathBuf, usize>,
}

impl Model {
    fn new_inode(&mut self, content: Vec<u8>) -> usize {
        self.inodes.push(Inode {
            durable: content.clone(),
            volatile: content,
        });
        self.inodes.len() - 1
    }

    /// The inode now named `path`; a name written without a recorded create starts empty.
    fn inode(&mut self, path: &Path) -> usize {
        match self.volatile.get(path) {
            Some(i) => *i,
            None => {
                let i = self.new_inode(Vec::new());
                self.volatile.insert(path.to_path_buf(), i);
                i
            }
        }
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Create(p) => {
                let i = self.new_inode(Vec::new());
                self.volatile.insert(p.clone(), i);
            }
            Op::Write { path, offset, data } => {
                let i = self.inode(path);
                let node = &mut self.inodes[i].volatile;
                let start = usize::try_from(*offset).unwrap_or(usize::MAX);
                let end = start.saturating_add(data.len());
                if node.len() < end {
                    node.resize(end, 0);
                }
                node[start..end].copy_from_slice(data);
            }
            Op::SetLen(path, len) => {
                let i = self.inode(path);
                let len = usize::try_from(*len).unwrap_or(usize::MAX);
                self.inodes[i].volatile.resize(len, 0);
            }
            Op::Sync(path) => {
                let i = self.inode(path);
                self.inodes[i].durable = self.inodes[i].volatile.clone();
            }
            Op::Rename(from, to) => {
                if let Some(i) = self.volatile.remove(from) {
                    self.volatile.insert(to.clone(), i);
                }
            }
            Op::SyncDir(dir) => {
                let in_dir = |p: &PathBuf| p.parent() == Some(dir.as_path());
                self.durable.retain(|p, _| !in_dir(p));
                for (p, i) in &self.volatile {
                    if in_dir(p) {
                        self.durable.insert(p.clone(), *i);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from("/d").join(s)
    }

    fn write(path: &str, offset: u64, data: &[u8]) -> Op {
        Op::Write {
            path: p(path),
            offset,
            data: data.to_vec(),
        }
    }

    #[test]
    fn unsynced_slot_writes_are_lost_synced_ones_kept() {
        let base = Snapshot {
            files: [(p("slot"), b"old!".to_vec())].into(),
        };
        let ops = [
            write("slot", 0, b"ne"),
            Op::Sync(p("slot")),
            write("slot", 2, b"w!"),
        ];
        let at = |k: usize| {
            base.after_crash(&ops[..k])
                .get(&p("slot"))
                .map(<[u8]>::to_vec)
        };
        assert_eq!(at(1).as_deref(), Some(&b"old!"[..]));
        assert_eq!(at(2).as_deref(), Some(&b"ned!"[..]));
        assert_eq!(
            at(3).as_deref(),
            Some(&b"ned!"[..]),
            "unsynced tail dropped"
        );
    }

    #[test]
    fn rename_is_durable_only_after_the_directory_fsync() {
        let base = Snapshot {
            files: [(p("state"), b"old".to_vec())].into(),
        };
        let ops = vec![
            Op::Create(p(".tmp")),
            write(".tmp", 0, b"new"),
            Op::Sync(p(".tmp")),
            Op::Rename(p(".tmp"), p("state")),
            Op::SyncDir(PathBuf::from("/d")),
        ];
        for k in 0..ops.len() {
            let s = base.after_crash(&ops[..k]);
            assert_eq!(s.get(&p("state")), Some(&b"old"[..]), "prefix {k}");
            assert_eq!(s.get(&p(".tmp")), None, "prefix {k}");
        }
        let s = base.after_crash(&ops);
        assert_eq!(s.get(&p("state")), Some(&b"new"[..]));
        assert_eq!(s.files().len(), 1);
    }

    #[test]
    fn a_rename_of_unsynced_data_persists_the_empty_file() {
        // The classic ext4 zero-length file: rename without fsync of the data.
        let base = Snapshot::default();
        let ops = vec![
            Op::Create(p(".tmp")),
            write(".tmp", 0, b"data"),
            Op::Rename(p(".tmp"), p("f")),
            Op::SyncDir(PathBuf::from("/d")),
        ];
        assert_eq!(base.after_crash(&ops).get(&p("f")), Some(&b""[..]));
    }
}
