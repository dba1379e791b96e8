//! The plain environment file: `key=value` lines, replaced atomically.
//!
//! For tests and for boards whose boot loader reads a manifest. Other keys, comments (`#`)
//! and blank lines are kept as they are, in order; each boot variable is written where it
//! first appears (later duplicates are dropped, and a reader takes the last one), and a
//! missing one is appended. Whitespace around keys and values is ignored when reading.
use super::error::BootError;
use super::vars::{BootVars, NAMES};
use super::BootControl;
use crate::storage::Storage;
use ota_fs::{atomic, mode};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A boot environment kept in a `key=value` file.
#[derive(Debug, Clone)]
pub struct EnvFile {
    path: PathBuf,
    storage: Arc<dyn Storage>,
}

impl EnvFile {
    /// The environment in `path` (which [`EnvFile::create`] makes).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        EnvFile {
            path: path.into(),
            storage: crate::storage::os(),
        }
    }

    /// Replace the file through `storage` (a crash simulation records the write).
    pub fn with_storage(mut self, storage: Arc<dyn Storage>) -> Self {
        self.storage = storage;
        self
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Create the file holding the default variables unless it exists; true if created.
    /// An existing file is never replaced, even one created concurrently.
    pub fn create(&self) -> Result<bool, BootError> {
        if self.path.symlink_metadata().is_ok() {
            return Ok(false);
        }
        let mut text = Vec::new();
        for (k, v) in BootVars::default().to_pairs() {
            text.extend_from_slice(format!("{k}={v}\n").as_bytes());
        }
        match atomic::write_new(&self.path, &text, mode::PUBLIC_FILE) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(BootError::io(
                format!("creating {}", self.path.display()),
                e,
            )),
        }
    }

    fn load(&self) -> Result<Vec<u8>, BootError> {
        std::fs::read(&self.path).map_err(|e| match e.kind() {
            ErrorKind::NotFound => BootError::MissingEnv {
                path: self.path.clone(),
            },
            _ => BootError::io(format!("reading {}", self.path.display()), e),
        })
    }
}

impl BootControl for EnvFile {
    fn read(&self) -> Result<BootVars, BootError> {
        let text = self.load()?;
        let pairs: Vec<(String, String)> = lines(&text)
            .filter_map(key_value)
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect();
        BootVars::from_pairs(
            pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &self.describe(),
        )
    }

    fn write(&self, vars: &BootVars) -> Result<(), BootError> {
        vars.validate(&self.describe())?;
        let old = self.load()?;
        let new_pairs = vars.to_pairs();
        let mut written = [false; 4];
        let mut out = Vec::with_capacity(old.len() + 64);
        for line in lines(&old) {
            let ours =
                key_value(line).and_then(|(k, _)| NAMES.iter().position(|n| n.as_bytes() == k));
            match ours {
                Some(i) if written[i] => {}
                Some(i) => {
                    let (k, v) = &new_pairs[i];
                    out.extend_from_slice(format!("{k}={v}\n").as_bytes());
                    written[i] = true;
                }
                None => {
                    out.extend_from_slice(line);
                    out.push(b'\n');
                }
            }
        }
        for (i, (k, v)) in new_pairs.iter().enumerate() {
            if !written[i] {
                out.extend_from_slice(format!("{k}={v}\n").as_bytes());
            }
        }
        self.storage
            .replace(&self.path, &out, mode::PUBLIC_FILE)
            .map_err(|e| BootError::io(format!("writing {}", self.path.display()), e))
    }

    fn describe(&self) -> String {
        format!("env file {}", self.path.display())
    }
}

/// The lines of `text`, without their `\n` (a final newline does not start another line).
fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    text.split(|b| *b == b'\n')
        .filter(move |_| !text.is_empty())
}

/// `(key, value)` of a `key=value` line, trimmed; `None` for comments, blank lines and
/// lines without `=`.
fn key_value(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let line = line.trim_ascii();
    if line.first().is_none_or(|b| *b == b'#') {
        return None;
    }
    let eq = line.iter().position(|b| *b == b'=')?;
    Some((line[..eq].trim_ascii(), line[eq + 1..].trim_ascii()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::Slot;

    fn trial() -> BootVars {
        BootVars {
            ota_slot: Slot::B,
            upgrade_available: true,
            bootcount: 2,
            bootlimit: 5,
        }
    }

    #[test]
    fn create_writes_defaults_and_never_overwrites() {
        let d = tempfile::tempdir().unwrap();
        let env = EnvFile::new(d.path().join("boot.env"));
        assert!(env.create().unwrap());
        assert_eq!(
            std::fs::read_to_string(env.path()).unwrap(),
            "ota_slot=a\nupgrade_available=0\nbootcount=0\nbootlimit=3\n"
        );
        env.write(&trial()).unwrap();
        assert!(!env.create().unwrap());
        assert_eq!(env.read().unwrap(), trial());
    }

    #[test]
    fn round_trip() {
        let d = tempfile::tempdir().unwrap();
        let env = EnvFile::new(d.path().join("boot.env"));
        env.create().unwrap();
        assert_eq!(env.read().unwrap(), BootVars::default());
        env.write(&trial()).unwrap();
        assert_eq!(env.read().unwrap(), trial());
    }

    #[test]
    fn other_keys_comments_and_blank_lines_are_preserved_in_order() {
        let d = tempfile::tempdir().unwrap();
        let env = EnvFile::new(d.path().join("boot.env"));
        let before = "# board manifest\nkernel=zImage\n\n bootcount = 1 \nnot a pair\n\
                      bootcount=9\nroot=/dev/mmcblk0p2\r\nota_slot=a";
        std::fs::write(env.path(), before).unwrap();
        assert_eq!(env.read().unwrap().bootcount, 9, "the last duplicate wins");
        env.write(&trial()).unwrap();
        assert_eq!(
            std::fs::read_to_string(env.path()).unwrap(),
            "# board manifest\nkernel=zImage\n\nbootcount=2\nnot a pair\n\
             root=/dev/mmcblk0p2\r\nota_slot=b\nupgrade_available=1\nbootlimit=5\n"
        );
        assert_eq!(env.read().unwrap(), trial());
    }

    #[test]
    fn absent_variables_read_as_defaults() {
        let d = tempfile::tempdir().unwrap();
        let env = EnvFile::new(d.path().join("boot.env"));
        std::fs::write(env.path(), "").unwrap();
        assert_eq!(env.read().unwrap(), BootVars::default());
        std::fs::write(env.path(), "upgrade_available=1\n").unwrap();
        let v = env.read().unwrap();
        assert!(v.upgrade_available);
        assert_eq!((v.ota_slot, v.bootcount, v.bootlimit), (Slot::A, 0, 3));
    }

    #[test]
    fn garbage_is_refused_naming_the_variable_and_file() {
        let d = tempfile::tempdir().unwrap();
        let env = EnvFile::new(d.path().join("boot.env"));
        for (var, value) in [
            ("ota_slot", "c"),
            ("bootcount", "-1"),
            ("bootlimit", "0"),
            ("upgrade_available", "2"),
        ] {
            std::fs::write(env.path(), format!("ota_slot=a\n{var}={value}\n")).unwrap();
            let err = env.read().unwrap_err();
            assert!(
                matches!(&err, BootError::Garbage { var: v, value: got, .. } if *v == var && got == value),
                "{err:?}"
            );
            let msg = err.to_string();
            assert!(msg.contains(var) && msg.contains("boot.env"), "{msg}");
        }
    }

    #[test]
    fn missing_file_is_an_error_for_read_and_write() {
        let d = tempfile::tempdir().unwrap();
        let env = EnvFile::new(d.path().join("boot.env"));
        assert!(matches!(env.read(), Err(BootError::MissingEnv { .. })));
        assert!(matches!(
            env.write(&trial()),
            Err(BootError::MissingEnv { .. })
        ));
        assert!(!env.path().exists());
    }

    #[test]
    fn atomic_write_leaves_no_temp_file() {
        let d = tempfile::tempdir().unwrap();
        let env = EnvFile::new(d.path().join("boot.env"));
        env.create().unwrap();
        for _ in 0..3 {
            env.write(&trial()).unwrap();
        }
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["boot.env"]);
        assert_eq!(
            ota_fs::mode::of(env.path()).unwrap(),
            Some(mode::PUBLIC_FILE)
        );
    }

    /// Records replaces instead of writing.
    #[derive(Debug, Default)]
    struct Recorder(std::sync::Mutex<Vec<(PathBuf, Vec<u8>, u32)>>);

    impl Storage for Recorder {
        fn open_slot(&self, _: &Path) -> std::io::Result<Box<dyn crate::storage::SlotFile>> {
            Err(std::io::ErrorKind::Unsupported.into())
        }

        fn replace(&self, path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
            let mut calls = self.0.lock().unwrap();
            calls.push((path.to_path_buf(), bytes.to_vec(), mode));
            Ok(())
        }
    }

    #[test]
    fn a_write_is_one_replace_through_storage() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("boot.env");
        let recorder = Arc::new(Recorder::default());
        let env = EnvFile::new(&path).with_storage(recorder.clone());
        assert!(env.create().unwrap());
        env.write(&trial()).unwrap();
        let calls = recorder.0.lock().unwrap();
        assert_eq!(calls.len(), 1);
        let (p, bytes, mode) = &calls[0];
        assert_eq!((p, *mode), (&path, mode::PUBLIC_FILE));
        assert_eq!(
            String::from_utf8_lossy(bytes),
            "ota_slot=b\nupgrade_available=1\nbootcount=2\nbootlimit=5\n"
        );
        assert_eq!(
            env.read().unwrap(),
            BootVars::default(),
            "the file is untouched"
        );
    }

    #[test]
    fn invalid_values_are_not_written() {
        let d = tempfile::tempdir().unwrap();
        let env = EnvFile::new(d.path().join("boot.env"));
        env.create().unwrap();
        let bad = BootVars {
            bootlimit: 0,
            ..trial()
        };
        assert!(matches!(env.write(&bad), Err(BootError::Garbage { .. })));
        assert_eq!(env.read().unwrap(), BootVars::default());
    }
}
