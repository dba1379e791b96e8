//! A download progress bar on stderr, shown only when stderr is a terminal: a transport
//! wrapper that counts the bytes of each target as they stream in.
use indicatif::ProgressBar;
use ota_client::transport::{FetchStream, RangedFetch, Transport, TransportError, Validator};
use ota_client::UpdaterConfig;
use std::io::{IsTerminal, Read};

/// Files smaller than this finish too fast for a bar to be useful.
const MIN_LEN_FOR_BAR: u64 = 256 * 1024;

struct ProgressTransport {
    inner: Box<dyn Transport>,
}

struct ProgressReader {
    inner: FetchStream,
    bar: ProgressBar,
}

impl Read for ProgressReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 {
            self.bar.finish_and_clear();
        } else {
            self.bar.inc(n as u64);
        }
        Ok(n)
    }
}

impl Transport for ProgressTransport {
    fn fetch(&self, relative: &str, max_len: u64) -> Result<FetchStream, TransportError> {
        let stream = self.inner.fetch(relative, max_len)?;
        if max_len < MIN_LEN_FOR_BAR {
            return Ok(stream);
        }
        let bar = ota_cli::progress::bytes_bar(max_len, "downloading");
        Ok(Box::new(ProgressReader { inner: stream, bar }))
    }

    fn fetch_range(
        &self,
        relative: &str,
        offset: u64,
        validator: Option<&Validator>,
        max_len: u64,
    ) -> Result<RangedFetch, TransportError> {
        // Forwarded, so that resuming works with the bar on; the bar starts where the
        // transfer resumes.
        let mut ranged = self
            .inner
            .fetch_range(relative, offset, validator, max_len)?;
        if max_len >= MIN_LEN_FOR_BAR {
            let bar = ota_cli::progress::bytes_bar(max_len, "downloading");
            bar.set_position(ranged.offset);
            ranged.stream = Box::new(ProgressReader {
                inner: ranged.stream,
                bar,
            });
        }
        Ok(ranged)
    }

    fn location(&self, relative: &str) -> String {
        self.inner.location(relative)
    }
}

/// Show download progress of targets when stderr is a terminal (and not with `--json`).
pub fn attach(config: &mut UpdaterConfig, enabled: bool) {
    if !enabled || !std::io::stderr().is_terminal() {
        return;
    }
    let inner = std::mem::replace(
        &mut config.targets,
        Box::new(ota_client::transport::DirTransport::new("")),
    );
    config.targets = Box::new(ProgressTransport { inner });
}
