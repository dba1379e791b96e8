//! ota-repo-server (work in progress).
