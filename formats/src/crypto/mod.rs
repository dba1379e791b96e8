//! Keys, signatures and threshold verification.
//!
//! Public keys are written the way TUF tools write them: `ed25519` with a hex public key,
//! `ecdsa-sha2-nistp256` and `rsassa-pss-sha256` with PEM SubjectPublicKeyInfo. We sign with
//! ed25519 and ECDSA P-256; RSA is verified so repositories made by other tools load.

mod ecdsa;
mod key;
mod signature;
mod signer;
mod threshold;

pub use ecdsa::{signer_from_key_file, EcdsaP256Signer};
pub use key::{Key, KeyVal};
pub use signature::Signature;
pub use signer::{Ed25519Signer, KeyFileError, Signer};
pub use threshold::{verify_threshold, KeySource};
