//! Running a boot-environment tool (`fw_printenv`, `fw_setenv`, `grub-editenv`).
use super::error::BootError;
use std::ffi::{OsStr, OsString};
use std::io::ErrorKind;
use std::process::{Command, Stdio};

/// A program looked up on `PATH` (the process's, or one given for this tool only).
#[derive(Debug, Clone)]
pub(crate) struct Tool {
    name: &'static str,
    search_path: Option<OsString>,
}

impl Tool {
    /// `name`, looked up on the process's `PATH`.
    pub(crate) fn new(name: &'static str) -> Self {
        Tool {
            name,
            search_path: None,
        }
    }

    /// Look the program up on `path` instead (it is also the program's `PATH`).
    pub(crate) fn with_search_path(mut self, path: OsString) -> Self {
        self.search_path = Some(path);
        self
    }

    /// The program name.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// Run with `args`; its standard output if it exits successfully.
    pub(crate) fn run<I, S>(&self, args: I) -> Result<String, BootError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(self.name);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(path) = &self.search_path {
            cmd.env("PATH", path);
        }
        let out = cmd.output().map_err(|e| match e.kind() {
            ErrorKind::NotFound => BootError::ToolMissing {
                tool: self.name.to_string(),
            },
            _ => BootError::io(format!("running {}", self.name), e),
        })?;
        if !out.status.success() {
            return Err(BootError::ToolFailed {
                tool: self.name.to_string(),
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// `name=value` lines (lines without `=` are skipped), as `fw_printenv` and
/// `grub-editenv list` print them.
pub(crate) fn listing_pairs(out: &str) -> impl Iterator<Item = (&str, &str)> {
    out.lines().filter_map(|l| l.split_once('='))
}
