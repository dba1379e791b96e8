//! The hook installer: the verified image is streamed to an integrator command, for targets
//! this crate does not know (an MCU behind a serial line, a vendor flashing tool, a container
//! image store). The protocol, also in `client/README.md`:
//!
//! - `HOOK write`: the image on stdin; the hook must read it to the end and exit 0;
//! - `HOOK commit`: run only after every byte matched the signed length and sha256 and
//!   `write` exited 0: activate the image;
//! - `HOOK abort`: the stream was refused or failed; discard what `write` received.
//!
//! Each call gets `OTA_IMAGE_NAME`, `OTA_IMAGE_VERSION`, `OTA_IMAGE_LENGTH`,
//! `OTA_IMAGE_SHA256` and `OTA_TARGET` in its environment. Any non-zero exit is a failure.
use super::base::Base;
use super::error::{DeviceError, DeviceResult};
use super::image::VerifiedImage;
use super::install_target::{ImageWriter, InstallTarget};
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};

/// How long an aborted `write` may take to end after its stdin closed.
const WRITE_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Stream images to an integrator command.
#[derive(Debug, Clone)]
pub struct HookInstaller {
    command: PathBuf,
}

impl HookInstaller {
    /// Use the executable `command` (called with `write`, `commit` or `abort`).
    pub fn new(command: impl Into<PathBuf>) -> Self {
        HookInstaller {
            command: command.into(),
        }
    }

    fn call(&self, stage: &'static str, image: &VerifiedImage) -> Command {
        let mut c = Command::new(&self.command);
        c.arg(stage)
            .env("OTA_IMAGE_NAME", image.name())
            .env("OTA_IMAGE_VERSION", image.version().to_string())
            .env("OTA_IMAGE_LENGTH", image.length().to_string())
            .env("OTA_IMAGE_SHA256", image.sha256())
            .env("OTA_TARGET", image.target())
            .stdout(Stdio::null())
            // Inherited, not piped: a chatty hook could otherwise fill the pipe and stall
            // while the image is still being written to it.
            .stderr(Stdio::inherit());
        c
    }
}

fn hook_error(command: &std::path::Path, stage: &'static str, reason: String) -> DeviceError {
    DeviceError::Hook {
        command: command.to_path_buf(),
        stage,
        reason,
    }
}

/// Wait for `child`; a non-zero exit is an error (the hook's own messages went to stderr).
fn finish(command: &std::path::Path, stage: &'static str, mut child: Child) -> DeviceResult<()> {
    let status = child
        .wait()
        .map_err(|e| hook_error(command, stage, e.to_string()))?;
    if status.success() {
        return Ok(());
    }
    Err(hook_error(command, stage, format!("exited with {status}")))
}

impl InstallTarget for HookInstaller {
    fn describe(&self) -> String {
        format!("install hook {}", self.command.display())
    }

    fn check(&self, _image: &VerifiedImage) -> DeviceResult<()> {
        self.check_destination()
    }

    fn check_destination(&self) -> DeviceResult<()> {
        let meta = std::fs::metadata(&self.command)
            .map_err(|e| hook_error(&self.command, "check", e.to_string()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
                return Err(hook_error(
                    &self.command,
                    "check",
                    "is not an executable file".into(),
                ));
            }
        }
        #[cfg(not(unix))]
        let _ = meta;
        Ok(())
    }

    fn base(&self) -> Option<Base> {
        None
    }

    fn begin(&self, image: &VerifiedImage) -> DeviceResult<Box<dyn ImageWriter>> {
        let mut child = self
            .call("write", image)
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|e| hook_error(&self.command, "write", e.to_string()))?;
        let stdin = child.stdin.take();
        Ok(Box::new(HookWriter {
            hook: self.clone(),
            image: image.clone(),
            child: Some(child),
            stdin,
            settled: false,
        }))
    }
}

struct HookWriter {
    hook: HookInstaller,
    image: VerifiedImage,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    /// Committed, or already aborted: nothing to clean up on drop.
    settled: bool,
}

impl Write for HookWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.stdin {
            Some(s) => s.write(buf),
            None => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "hook stdin closed",
            )),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stdin.as_mut().map_or(Ok(()), |s| s.flush())
    }
}

impl ImageWriter for HookWriter {
    fn complete(mut self: Box<Self>, image: &VerifiedImage) -> DeviceResult<()> {
        drop(self.stdin.take()); // EOF for the hook
        if let Some(child) = self.child.take() {
            // On failure, dropping `self` runs `abort`.
            finish(&self.hook.command, "write", child)?;
        }
        let commit = self
            .hook
            .call("commit", image)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| hook_error(&self.hook.command, "commit", e.to_string()))?;
        finish(&self.hook.command, "commit", commit)?;
        self.settled = true;
        Ok(())
    }
}

impl Drop for HookWriter {
    /// Not committed: stop `write` if it still runs and tell the hook to discard the image.
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        self.settled = true;
        // EOF, then give `write` time to end on its own (it may be mid-way through what it
        // received); a hook that does not end is killed.
        drop(self.stdin.take());
        if let Some(mut child) = self.child.take() {
            let deadline = std::time::Instant::now() + WRITE_GRACE;
            while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let run = self
            .hook
            .call("abort", &self.image)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| hook_error(&self.hook.command, "abort", e.to_string()))
            .and_then(|c| finish(&self.hook.command, "abort", c));
        if let Err(e) = run {
            tracing::warn!("{e}");
        }
    }
}
