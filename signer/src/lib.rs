//! ota-signer (work in progress).
