//! Log lines from the runtime's worker threads, written to stderr in batches.
//!
//! Every request logs one access line. Written one by one, that was a `write` system call per
//! request: 7.5% of the server's CPU serving `timestamp.json` over TLS (perf). A worker thread
//! now collects its lines and writes them when it runs out of work (the runtime's park hook), when
//! 8 KiB have gathered, or when the oldest line has waited 50 ms, whichever comes first; so
//! an idle server's log is current, and a busy one writes a few lines per system call. Threads
//! that never park as workers (the main thread, the blocking pool) write every line at once.
//! A batch is written with one `write_all`, and every line is complete, so lines from different
//! threads never interleave mid-line.

use std::cell::RefCell;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// Flush when this much is waiting.
const MAX_BATCH: usize = 8 * 1024;
/// Flush at the next line once the oldest waiting line is this old.
const MAX_DELAY: Duration = Duration::from_millis(50);

/// A worker thread's waiting lines.
struct Batch {
    buf: Vec<u8>,
    oldest: Option<Instant>,
}

thread_local! {
    /// `Some` on threads that batch (runtime workers, from their first park on).
    static BATCH: RefCell<Option<Batch>> = const { RefCell::new(None) };
}

/// The runtime's `on_thread_park` hook: writes this worker's waiting lines (it is about to
/// sleep) and makes it batch from now on. Only worker threads park, so only they batch.
pub fn on_park() {
    BATCH.with(|b| {
        let mut b = b.borrow_mut();
        match b.as_mut() {
            Some(batch) => flush(batch),
            None => {
                *b = Some(Batch {
                    buf: Vec::with_capacity(MAX_BATCH * 2),
                    oldest: None,
                })
            }
        }
    });
}

/// The runtime's `on_thread_stop` hook: writes what this thread still holds.
pub fn on_stop() {
    BATCH.with(|b| {
        if let Some(batch) = b.borrow_mut().as_mut() {
            flush(batch);
        }
    });
}

fn flush(batch: &mut Batch) {
    if !batch.buf.is_empty() {
        // Nothing sensible to do if stderr is gone; the lines are dropped like unbatched ones.
        let _ = io::stderr().lock().write_all(&batch.buf);
        batch.buf.clear();
    }
    batch.oldest = None;
}

/// `MakeWriter` for the subscriber: stderr, batched on worker threads.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchedStderr;

impl<'a> MakeWriter<'a> for BatchedStderr {
    type Writer = BatchedStderr;

    fn make_writer(&'a self) -> Self::Writer {
        BatchedStderr
    }
}

impl Write for BatchedStderr {
    /// Takes one formatted event (the subscriber writes each with a single `write_all`).
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let batched = BATCH.with(|b| {
            let mut b = b.borrow_mut();
            let Some(batch) = b.as_mut() else {
                return false;
            };
            let now = Instant::now();
            batch.buf.extend_from_slice(line);
            let oldest = *batch.oldest.get_or_insert(now);
            if batch.buf.len() >= MAX_BATCH || now.duration_since(oldest) >= MAX_DELAY {
                flush(batch);
            }
            true
        });
        if !batched {
            io::stderr().lock().write_all(line)?;
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_wait_only_on_threads_that_parked() {
        std::thread::spawn(|| {
            let mut w = BatchedStderr;
            w.write_all(b"unbatched line\n").unwrap();
            assert!(BATCH.with(|b| b.borrow().is_none()));
            on_park();
            w.write_all(b"batched line\n").unwrap();
            let held = BATCH.with(|b| b.borrow().as_ref().map(|b| b.buf.len()));
            assert_eq!(held, Some(13));
            on_park();
            let held = BATCH.with(|b| b.borrow().as_ref().map(|b| b.buf.len()));
            assert_eq!(held, Some(0));
        })
        .join()
        .unwrap();
    }
}
