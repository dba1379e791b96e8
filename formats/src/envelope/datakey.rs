//! The per-target symmetric data key.

use rand_core::{OsRng, RngCore};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of a data key in bytes.
pub const DATA_KEY_LEN: usize = 32;

/// The random key that encrypts one target's payload. A fresh one is drawn for every target;
/// it only ever leaves memory wrapped in a [`KeySlip`](super::KeySlip).
///
/// The bytes are wiped when the key is dropped, and `Debug` never prints them.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DataKey([u8; DATA_KEY_LEN]);

impl DataKey {
    /// Draws a fresh key from the operating system's random generator.
    pub fn generate() -> Self {
        let mut key = [0u8; DATA_KEY_LEN];
        OsRng.fill_bytes(&mut key);
        Self(key)
    }

    /// Wraps known key bytes (test vectors, or a key just unwrapped from a slip).
    pub fn from_bytes(bytes: [u8; DATA_KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The secret key bytes. Keep their use short-lived.
    pub fn expose_secret(&self) -> &[u8; DATA_KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}
