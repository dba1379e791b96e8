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

/// Length and sha256 of a byte stream, computed as it passes.
///
/// ```
/// let m = ota_formats::hash::measure(&b"abc"[..]).unwrap();
/// assert_eq!(m.length, 3);
/// assert_eq!(m.sha256_hex(), ota_formats::hash::sha256_hex(b"abc"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Sha256Counter {
    hasher: Sha256,
    length: u64,
}

/// What a [`Sha256Counter`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measured {
    /// Bytes seen.
    pub length: u64,
    /// Their sha256.
    pub sha256: [u8; 32],
}

impl Measured {
    /// The sha256 as lower-case hex.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }

    /// Whether this is exactly `length` bytes with sha256 `sha256_hex` (any case).
    pub fn matches(&self, length: u64, sha256_hex: &str) -> bool {
        self.length == length && self.sha256_hex().eq_ignore_ascii_case(sha256_hex)
    }
}

impl Sha256Counter {
    /// Nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
        self.length += data.len() as u64;
    }

    /// Bytes seen so far.
    pub fn length(&self) -> u64 {
        self.length
    }

    /// The length and digest.
    pub fn finish(self) -> Measured {
        Measured {
            length: self.length,
            sha256: self.hasher.finalize().into(),
        }
    }
}

/// Read `reader` to its end in chunks (retrying interrupted reads), passing each chunk to
/// `each`; returns the number of bytes read. The one read loop of the streaming checks.
pub fn read_chunks<R: std::io::Read>(
    mut reader: R,
    mut each: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total += n as u64;
        each(&buf[..n])?;
    }
}

/// Length and sha256 of everything `reader` yields.
pub fn measure<R: std::io::Read>(reader: R) -> std::io::Result<Measured> {
    let mut c = Sha256Counter::new();
    read_chunks(reader, |b| {
        c.update(b);
        Ok(())
    })?;
    Ok(c.finish())
}

/// A writer that measures (length, sha256) what passes through it to `inner`.
#[derive(Debug)]
pub struct HashingWriter<W> {
    inner: W,
    counter: Sha256Counter,
}

impl<W: std::io::Write> HashingWriter<W> {
    /// Wrap `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            counter: Sha256Counter::new(),
        }
    }

    /// The inner writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The inner writer and what was written to it.
    pub fn finish(self) -> (W, Measured) {
        (self.inner, self.counter.finish())
    }
}

impl<W: std::io::Write> std::io::Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.counter.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl StreamVerifier {
    /// Feed everything `reader` yields; `Ok(Err(..))` is a mismatch (too long), `Err` a read
    /// failure. Call [`StreamVerifier::finish`] afterwards for the length and hashes.
    pub fn update_from<R: std::io::Read>(&mut self, reader: R) -> std::io::Result<Result<()>> {
        let mut mismatch = None;
        let read = read_chunks(reader, |b| match self.update(b) {
            Ok(()) => Ok(()),
            Err(e) => {
                mismatch = Some(e);
                Err(std::io::Error::other("length exceeded"))
            }
        });
        match (mismatch, read) {
            (Some(e), _) => Ok(Err(e)),
            (None, Ok(_)) => Ok(Ok(())),
            (None, Err(e)) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn measure_writer_and_reader_agree() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let m = measure(&data[..]).unwrap();
        assert_eq!(m.length, data.len() as u64);
        assert_eq!(m.sha256_hex(), sha256_hex(&data));
        assert!(m.matches(data.len() as u64, &sha256_hex(&data).to_uppercase()));
        assert!(!m.matches(data.len() as u64 - 1, &sha256_hex(&data)));
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(&data).unwrap();
        let (out, mw) = w.finish();
        assert_eq!(out, data);
        assert_eq!(mw, m);
    }

    #[test]
    fn update_from_reports_overflow_and_mismatch() {
        let mut hashes = Hashes::new();
        hashes.insert("sha256".into(), sha256_hex(b"abc"));
        let mut v = StreamVerifier::new(&hashes, 3).unwrap();
        assert!(v.update_from(&b"abc"[..]).unwrap().is_ok());
        v.finish().unwrap();
        let mut v = StreamVerifier::new(&hashes, 3).unwrap();
        assert!(matches!(
            v.update_from(&b"abcd"[..]).unwrap(),
            Err(Error::LengthMismatch { .. })
        ));
        let mut v = StreamVerifier::new(&hashes, 3).unwrap();
        assert!(v.update_from(&b"abd"[..]).unwrap().is_ok());
        assert!(matches!(v.finish(), Err(Error::HashMismatch { .. })));
    }
}
