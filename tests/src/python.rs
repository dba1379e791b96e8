//! Locating the Python interpreter with python-tuf installed (set by `.ci/run` as `OTA_PYTHON`).
use std::path::PathBuf;

/// The interpreter, or `None` (with a message) when interop tests must be skipped locally.
/// Under CI (`CI` set) a missing interpreter is a failure, never a silent skip.
pub fn python_tuf() -> Option<PathBuf> {
    match std::env::var_os("OTA_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None if std::env::var_os("CI").is_some() => {
            panic!("OTA_PYTHON is not set under CI: .ci/run must create the python-tuf venv")
        }
        None => {
            eprintln!("SKIPPED: set OTA_PYTHON to a python with `tuf` installed (see .ci/run)");
            None
        }
    }
}

/// Path of a script in `tests/python/`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(name)
}
