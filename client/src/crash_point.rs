//! Deterministic crash points for the kill sweep (`tests/tests/kill_sweep.rs`).
//!
//! The install path calls [`reached`] at every step a crash could interrupt: each chunk
//! downloaded, decrypted, patched, written to a slot or read back, and every state
//! transition. When the environment variable `OTA_TEST_KILL_AT=N` is set, the process sends
//! itself `SIGKILL` at the N-th point (counting from 1), so a test can interrupt a run at
//! every one of those points in turn and check that the device still boots a complete,
//! signed image. Unset (as on every real device), a point costs one relaxed atomic load.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable naming the point to die at.
pub const KILL_AT_ENV: &str = "OTA_TEST_KILL_AT";

static TARGET: OnceLock<Option<u64>> = OnceLock::new();
static COUNT: AtomicU64 = AtomicU64::new(0);

/// One crash point, labelled by the phase it is in (`download`, `slot-write`, ...).
pub fn reached(label: &'static str) {
    let Some(at) = *TARGET.get_or_init(|| {
        std::env::var(KILL_AT_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
    }) else {
        return;
    };
    let n = COUNT.fetch_add(1, Ordering::Relaxed) + 1;
    if n == at {
        eprintln!("ota-client: crash point {n} ({label}): killing myself with SIGKILL");
        // SIGKILL, not abort or exit: no destructor, no buffered write, no atexit runs,
        // exactly what an OOM kill or a watchdog does to the process. The crate forbids
        // unsafe code, so the signal comes from kill(1); we never return from the wait.
        let pid = std::process::id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status();
        // kill(1) missing: die without cleanup anyway.
        std::process::abort();
    }
}
