//! ota-client (work in progress).
