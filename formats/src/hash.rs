//! Hashes (sha256, sha512) and length checks of downloaded bytes.
//!
//! ```
//! use ota_formats::hash::{Hashes, StreamVerifier};
//! let mut hashes = Hashes::new();
//! hashes.insert("sha256".into(), ota_formats::hash::sha256_hex(b"abc"));
//! let mut v = StreamVerifier::new(&hashes, 3).unwrap();
//! v.update(b"abc");
//! v.finish().unwrap();
//! ```
use crate::{Error, Result};
use sha2::{Digest, Sha256, Sha512};
use std::collections::BTreeMap;

/// Algorithm name → hex digest, as in TUF `hashes` objects.
pub type Hashes = BTreeMap<String, String>;

/// Hex sha256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Hex sha512 of `data`.
pub fn sha512_hex(data: &[u8]) -> String {
    hex::encode(Sha512::digest(data))
}

enum Algo {
    Sha256(Sha256),
    Sha512(Sha512),
}

/// Checks a byte stream against an expected length and every supported listed hash.
///
/// Unknown algorithms are skipped, but at least one listed algorithm must be supported:
/// a target whose only hash is unknown cannot be verified and is refused.
pub struct StreamVerifier {
    algos: Vec<(String, String, Algo)>,
    expected_len: u64,
    seen: u64,
}

impl StreamVerifier {
    /// Prepare to check a stream of `expected_len` bytes against `hashes`.
    pub fn new(hashes: &Hashes, expected_len: u64) -> Result<Self> {
        let mut algos = Vec::new();
        for (name, hexdigest) in hashes {
            let algo = match name.as_str() {
                "sha256" => Algo::Sha256(Sha256::new()),
                "sha512" => Algo::Sha512(Sha512::new()),
                _ => continue,
            };
            algos.push((name.clone(), hexdigest.to_ascii_lowercase(), algo));
        }
        if algos.is_empty() {
            return Err(Error::NoSupportedHash(hashes.keys().cloned().collect()));
        }
        Ok(StreamVerifier {
            algos,
            expected_len,
            seen: 0,
        })
    }

    /// Feed bytes. Fails as soon as more than the expected length arrived.
    pub fn update(&mut self, data: &[u8]) -> Result<()> {
        self.seen += data.len() as u64;
        if self.seen > self.expected_len {
            return Err(Error::LengthMismatch {
                expected: self.expected_len,
                actual: self.seen,
            });
        }
        for (_, _, a) in &mut self.algos {
            match a {
                Algo::Sha256(h) => h.update(data),
                Algo::Sha512(h) => h.update(data),
            }
        }
        Ok(())
    }

    /// Bytes fed so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Check the length and every hash.
    pub fn finish(self) -> Result<()> {
        if self.seen != self.expected_len {
            return Err(Error::LengthMismatch {
                expected: self.expected_len,
                actual: self.seen,
            });
        }
        for (name, expected, a) in self.algos {
            let actual = match a {
                Algo::Sha256(h) => hex::encode(h.finalize()),
                Algo::Sha512(h) => hex::encode(h.finalize()),
            };
            if actual != expected {
                return Err(Error::HashMismatch {
                    algorithm: name,
                    expected,
                    actual,
                });
            }
        }
        Ok(())
    }
}

/// Check a complete buffer against a length and hashes.
pub fn verify_bytes(data: &[u8], hashes: &Hashes, expected_len: u64) -> Result<()> {
    let mut v = StreamVerifier::new(hashes, expected_len)?;
    v.update(data)?;
    v.finish()
}
