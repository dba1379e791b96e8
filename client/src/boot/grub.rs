//! A GRUB environment block through `grub-editenv` (Debian `grub-common`).
//!
//! Reading is `grub-editenv FILE list`, writing one `grub-editenv FILE set k=v k=v k=v k=v`
//! call (the tool writes `FILE.new` and renames it over `FILE`). Both refuse a missing file
//! first, because `grub-editenv` would create one.
use super::error::BootError;
use super::tool::{listing_pairs, Tool};
use super::vars::BootVars;
use super::BootControl;
use ota_fs::{atomic, mode};
use std::ffi::{OsStr, OsString};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// A GRUB environment block file (such as `/boot/grub/grubenv`).
#[derive(Debug, Clone)]
pub struct GrubEnv {
    path: PathBuf,
    editenv: Tool,
}

impl GrubEnv {
    /// The environment block in `path`; `grub-editenv` is looked up on `PATH`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        GrubEnv {
            path: path.into(),
            editenv: Tool::new("grub-editenv"),
        }
    }

    /// The file as an argument that cannot be taken for an option.
    fn arg(&self) -> PathBuf {
        if self.path.as_os_str().as_encoded_bytes().starts_with(b"-") {
            Path::new(".").join(&self.path)
        } else {
            self.path.clone()
        }
    }

    /// Look `grub-editenv` up on `path` (a `PATH`-style list of directories) instead of the
    /// process's `PATH`.
    pub fn with_search_path(mut self, path: impl Into<OsString>) -> Self {
        self.editenv = self.editenv.with_search_path(path.into());
        self
    }

    /// The environment block file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Create the block holding the default variables unless the file exists; true if
    /// created. It is made with `grub-editenv create` and `set` in a temp dir, then published
    /// without replacing anything (an existing file, even one created concurrently, is kept).
    pub fn create(&self) -> Result<bool, BootError> {
        if self.path.symlink_metadata().is_ok() {
            return Ok(false);
        }
        let dir = tempfile::tempdir()
            .map_err(|e| BootError::io("creating a temp dir for grub-editenv", e))?;
        let fresh = GrubEnv {
            path: dir.path().join("grubenv"),
            editenv: self.editenv.clone(),
        };
        fresh
            .editenv
            .run([fresh.arg().as_os_str(), OsStr::new("create")])?;
        fresh.set(&BootVars::default())?;
        let bytes = std::fs::read(&fresh.path)
            .map_err(|e| BootError::io(format!("reading {}", fresh.path.display()), e))?;
        match atomic::write_new(&self.path, &bytes, mode::PUBLIC_FILE) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(BootError::io(
                format!("creating {}", self.path.display()),
                e,
            )),
        }
    }

    fn require_file(&self) -> Result<(), BootError> {
        match self.path.symlink_metadata() {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(BootError::MissingEnv {
                path: self.path.clone(),
            }),
            Err(e) => Err(BootError::io(format!("reading {}", self.path.display()), e)),
        }
    }

    fn set(&self, vars: &BootVars) -> Result<(), BootError> {
        let assignments: Vec<OsString> = vars
            .to_pairs()
            .iter()
            .map(|(k, v)| OsString::from(format!("{k}={v}")))
            .collect();
        let file = self.arg();
        let mut args = vec![file.as_os_str(), OsStr::new("set")];
        args.extend(assignments.iter().map(OsString::as_os_str));
        self.editenv.run(args).map(drop)
    }
}

impl BootControl for GrubEnv {
    fn read(&self) -> Result<BootVars, BootError> {
        self.require_file()?;
        let out = self
            .editenv
            .run([self.arg().as_os_str(), OsStr::new("list")])?;
        BootVars::from_pairs(listing_pairs(&out), &self.describe())
    }

    fn write(&self, vars: &BootVars) -> Result<(), BootError> {
        vars.validate(&self.describe())?;
        self.require_file()?;
        self.set(vars)
    }

    fn describe(&self) -> String {
        format!("GRUB environment block {}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_named_like_an_option_is_passed_as_a_path() {
        assert_eq!(GrubEnv::new("-grubenv").arg(), Path::new("./-grubenv"));
        assert_eq!(
            GrubEnv::new("/boot/grubenv").arg(),
            Path::new("/boot/grubenv")
        );
    }
}
