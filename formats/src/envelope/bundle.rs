//! One slip file per release instead of one per device: the slip bundle.
//!
//! `<target>.slipbundle` holds every device's slip of one target as fixed-size records sorted
//! by recipient id, after a header. Recipient ids are SHA-256 prefixes, so they spread evenly:
//! records are grouped into `2^block_bits` blocks by the top `block_bits` bits of the id, and
//! the signed metadata carries the index ([`SlipBundleIndex`]): where each block starts. A
//! device takes its block from its own id, fetches that block with one HTTP Range request,
//! and finds its record in it; a bundle of a million slips is one file on a CDN, served from
//! its cache, instead of a million files that each miss it.
//!
//! Layout (`formats/ENVELOPE.md`):
//! `"OTASLPB\n" || version (1) || payload id (16) || u32be(records) || u16be(len(target)) ||
//! target || records`, each record `recipient id (16) || enc (32) || wrapped key (48)`.
//!
//! The bundle is not hashed in the metadata (a device reads one block of it): like a slip
//! file, a record opens only with the device's key and for the target and payload it was made
//! for. What the device checks of the block it gets: its exact length, that every record in it
//! belongs to the block and that they are sorted (a lying index or a swapped file is refused
//! by name, [`EnvelopeError::SlipBundle`]).

use super::error::{EnvelopeError, Result};
use super::header::PayloadId;
use super::recipient::RecipientId;
use super::slip::{KeySlip, SlipBinding, ENC_LEN, WRAPPED_KEY_LEN};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// Magic bytes at the start of a slip bundle.
pub const BUNDLE_MAGIC: [u8; 8] = *b"OTASLPB\n";
/// Version byte of the bundle layout.
pub const BUNDLE_VERSION: u8 = 1;
/// Bytes of one record: recipient id, enc, wrapped key.
pub const RECORD_LEN: usize = 16 + ENC_LEN + WRAPPED_KEY_LEN;
/// Suffix of a target's slip bundle (`<target>.slipbundle`).
pub const BUNDLE_SUFFIX: &str = ".slipbundle";
/// Most index bits: 2^12 blocks, a 16 KiB index.
pub const MAX_BLOCK_BITS: u8 = 12;
/// Largest block a device fetches: past this the index is refused (a lying index could
/// otherwise make it download the whole bundle).
pub const MAX_BLOCK_LEN: u64 = 1 << 20;

/// Path of the slip bundle of `target`, beside it: `<target>.slipbundle`.
pub fn bundle_path(target: &str) -> String {
    format!("{target}{BUNDLE_SUFFIX}")
}

/// Block of `id` with `bits` index bits: its top `bits` bits.
pub fn block_of(id: &RecipientId, bits: u8) -> usize {
    let top = u32::from_be_bytes([id.0[0], id.0[1], id.0[2], id.0[3]]);
    if bits == 0 {
        0
    } else {
        (top >> (32 - u32::from(bits))) as usize
    }
}

/// Index bits for a bundle of `records`: blocks of about `target_block` records, at most
/// [`MAX_BLOCK_BITS`] bits.
pub fn block_bits_for(records: u64, target_block: u64) -> u8 {
    let mut bits = 0u8;
    while bits < MAX_BLOCK_BITS && (records >> bits) > target_block.max(1) {
        bits += 1;
    }
    bits
}

/// The bundle header for `binding` and `records` records.
pub fn bundle_header(binding: &SlipBinding, records: u32) -> Result<Vec<u8>> {
    let name = binding.target.as_bytes();
    let len = u16::try_from(name.len())
        .map_err(|_| EnvelopeError::MalformedSlip("target name longer than 65535 bytes".into()))?;
    let mut out = Vec::with_capacity(8 + 1 + 16 + 4 + 2 + name.len());
    out.extend_from_slice(&BUNDLE_MAGIC);
    out.push(BUNDLE_VERSION);
    out.extend_from_slice(&binding.payload_id.0);
    out.extend_from_slice(&records.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(name);
    Ok(out)
}

/// The record of `slip` in a bundle.
pub fn bundle_record(slip: &KeySlip) -> [u8; RECORD_LEN] {
    let mut r = [0u8; RECORD_LEN];
    r[..16].copy_from_slice(&slip.recipient.0);
    r[16..16 + ENC_LEN].copy_from_slice(&slip.enc);
    r[16 + ENC_LEN..].copy_from_slice(&slip.wrapped_key);
    r
}

/// Recipient id of a record.
pub fn record_id(record: &[u8]) -> RecipientId {
    let mut id = [0u8; 16];
    id.copy_from_slice(&record[..16]);
    RecipientId(id)
}

/// What the signed metadata says about a target's slip bundle
/// (`custom.ota.encryption.slip_bundle`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlipBundleIndex {
    /// Number of records.
    pub records: u64,
    /// Byte offset of the first record (the header's length).
    pub records_at: u64,
    /// Index bits: the bundle has `2^block_bits` blocks.
    pub block_bits: u8,
    /// Base64 of `2^block_bits` u32be: the number of the first record of each block.
    pub block_starts: String,
}

impl SlipBundleIndex {
    /// The index of a bundle whose records start at `records_at`, from the first record
    /// number of each block.
    pub fn new(records: u64, records_at: u64, block_bits: u8, starts: &[u32]) -> Self {
        let mut raw = Vec::with_capacity(starts.len() * 4);
        for s in starts {
            raw.extend_from_slice(&s.to_be_bytes());
        }
        Self {
            records,
            records_at,
            block_bits,
            block_starts: STANDARD.encode(raw),
        }
    }

    fn bad(why: impl Into<String>) -> EnvelopeError {
        EnvelopeError::SlipBundle(why.into())
    }

    /// Size of the whole bundle file: header and records.
    pub fn file_len(&self) -> Result<u64> {
        self.records
            .checked_mul(RECORD_LEN as u64)
            .and_then(|r| r.checked_add(self.records_at))
            .ok_or_else(|| Self::bad("bundle size overflows"))
    }

    /// The block of `id`: its number, byte offset and length in the bundle. A block larger
    /// than [`MAX_BLOCK_LEN`] or out of order is refused.
    pub fn block_for(&self, id: &RecipientId) -> Result<(usize, u64, u64)> {
        if self.block_bits > MAX_BLOCK_BITS {
            return Err(Self::bad(format!(
                "index of {} bits (at most {MAX_BLOCK_BITS})",
                self.block_bits
            )));
        }
        let blocks = 1usize << self.block_bits;
        let raw = STANDARD
            .decode(self.block_starts.as_bytes())
            .map_err(|e| Self::bad(format!("index is not base64: {e}")))?;
        if raw.len() != blocks * 4 {
            return Err(Self::bad(format!(
                "index has {} bytes, {blocks} blocks need {}",
                raw.len(),
                blocks * 4
            )));
        }
        let start = |k: usize| -> u64 {
            if k == blocks {
                self.records
            } else {
                u64::from(u32::from_be_bytes([
                    raw[4 * k],
                    raw[4 * k + 1],
                    raw[4 * k + 2],
                    raw[4 * k + 3],
                ]))
            }
        };
        let k = block_of(id, self.block_bits);
        let (first, end) = (start(k), start(k + 1));
        if first > end || end > self.records {
            return Err(Self::bad(format!(
                "block {k} runs from record {first} to {end} of {}",
                self.records
            )));
        }
        let len = (end - first) * RECORD_LEN as u64;
        if len > MAX_BLOCK_LEN {
            return Err(Self::bad(format!(
                "block {k} is {len} bytes, more than the {MAX_BLOCK_LEN} a device fetches"
            )));
        }
        let offset = first
            .checked_mul(RECORD_LEN as u64)
            .and_then(|o| o.checked_add(self.records_at))
            .ok_or_else(|| Self::bad("block offset overflows"))?;
        Ok((k, offset, len))
    }

    /// Find `id`'s slip in `block`, the bytes fetched for [`SlipBundleIndex::block_for`].
    ///
    /// `Ok(None)`: the block is what the index promised and `id` is not in it (the release is
    /// not for this device). Refused: a block of another length than promised (truncated or
    /// oversized answer), records of another block, records out of order or repeated. The
    /// slip is returned bound to `binding` (from the signed metadata); opening it checks that.
    pub fn find(
        &self,
        id: &RecipientId,
        block: &[u8],
        binding: &SlipBinding,
    ) -> Result<Option<KeySlip>> {
        let (k, _, len) = self.block_for(id)?;
        if block.len() as u64 != len {
            return Err(Self::bad(format!(
                "block {k} is {} bytes, the index says {len}",
                block.len()
            )));
        }
        let mut previous: Option<RecipientId> = None;
        let mut found = None;
        for record in block.chunks_exact(RECORD_LEN) {
            let rid = record_id(record);
            if block_of(&rid, self.block_bits) != k {
                return Err(Self::bad(format!(
                    "record {rid} is not of block {k}: the index does not match the bundle"
                )));
            }
            if previous.is_some_and(|p| p >= rid) {
                return Err(Self::bad(format!(
                    "records not sorted or repeated at {rid}"
                )));
            }
            previous = Some(rid);
            if rid == *id {
                let mut enc = [0u8; ENC_LEN];
                enc.copy_from_slice(&record[16..16 + ENC_LEN]);
                let mut wrapped_key = [0u8; WRAPPED_KEY_LEN];
                wrapped_key.copy_from_slice(&record[16 + ENC_LEN..]);
                found = Some(KeySlip {
                    recipient: rid,
                    target: binding.target.clone(),
                    payload_id: binding.payload_id,
                    enc,
                    wrapped_key,
                });
            }
        }
        Ok(found)
    }
}

/// Reads a bundle header: `(payload id, records, header length, target)`.
pub fn read_bundle_header(bytes: &[u8]) -> Result<(PayloadId, u32, usize, String)> {
    let bad = |why: &str| EnvelopeError::SlipBundle(why.to_string());
    if bytes.len() < 31 || bytes[..8] != BUNDLE_MAGIC {
        return Err(bad("not a slip bundle (bad magic bytes)"));
    }
    if bytes[8] != BUNDLE_VERSION {
        return Err(bad("unsupported slip bundle version"));
    }
    let mut payload = [0u8; 16];
    payload.copy_from_slice(&bytes[9..25]);
    let records = u32::from_be_bytes([bytes[25], bytes[26], bytes[27], bytes[28]]);
    let len = usize::from(u16::from_be_bytes([bytes[29], bytes[30]]));
    let name = bytes
        .get(31..31 + len)
        .ok_or_else(|| bad("header shorter than its target name"))?;
    let target = std::str::from_utf8(name)
        .map_err(|_| bad("target name is not UTF-8"))?
        .to_string();
    Ok((PayloadId(payload), records, 31 + len, target))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{unwrap_key, DataKey, RecipientSecretKey, SlipSealer};

    /// A bundle of `n` devices' slips as the signer writes it, and its index.
    fn bundle(
        n: usize,
        bits: u8,
        binding: &SlipBinding,
        key: &DataKey,
    ) -> (Vec<RecipientSecretKey>, Vec<u8>, SlipBundleIndex) {
        let sealer = SlipSealer::new(key, binding).unwrap();
        let devices: Vec<_> = (0..n).map(|_| RecipientSecretKey::generate()).collect();
        let mut records: Vec<_> = devices
            .iter()
            .map(|d| bundle_record(&sealer.seal(d.public_key()).unwrap()))
            .collect();
        records.sort();
        let mut out = bundle_header(binding, n as u32).unwrap();
        let at = out.len() as u64;
        let mut starts = vec![0u32; 1 << bits];
        for (i, r) in records.iter().enumerate().rev() {
            starts[block_of(&record_id(r), bits)] = i as u32;
        }
        // Empty blocks start where the next one does.
        let mut next = n as u32;
        for k in (0..starts.len()).rev() {
            if !records.iter().any(|r| block_of(&record_id(r), bits) == k) {
                starts[k] = next;
            }
            next = starts[k];
        }
        for r in &records {
            out.extend_from_slice(r);
        }
        (
            devices,
            out,
            SlipBundleIndex::new(n as u64, at, bits, &starts),
        )
    }

    fn fetch(bytes: &[u8], index: &SlipBundleIndex, id: &RecipientId) -> Vec<u8> {
        let (_, at, len) = index.block_for(id).unwrap();
        bytes[at as usize..(at + len) as usize].to_vec()
    }

    #[test]
    fn every_device_finds_its_slip_in_one_block_and_opens_it() {
        let key = DataKey::generate();
        let binding = SlipBinding::new("fw-1.0.0.img.zst", PayloadId([3; 16]));
        let (devices, bytes, index) = bundle(300, 4, &binding, &key);
        let (payload, records, at, target) = read_bundle_header(&bytes).unwrap();
        assert_eq!(
            (payload, records, at as u64, target.as_str()),
            (
                binding.payload_id,
                300,
                index.records_at,
                "fw-1.0.0.img.zst"
            )
        );
        for d in &devices {
            let block = fetch(&bytes, &index, &d.id());
            assert!(block.len() < bytes.len() / 4, "one block, not the bundle");
            let slip = index.find(&d.id(), &block, &binding).unwrap().unwrap();
            let got = unwrap_key(&slip, d, &binding).unwrap();
            assert_eq!(got.expose_secret(), key.expose_secret());
            // The same record claimed for another payload does not open.
            let other = SlipBinding::new("fw-1.0.0.img.zst", PayloadId([4; 16]));
            let moved = index.find(&d.id(), &block, &other).unwrap().unwrap();
            assert!(matches!(
                unwrap_key(&moved, d, &other),
                Err(EnvelopeError::SlipDoesNotOpen)
            ));
        }
        // A device the release is not for: its block holds no record of it.
        let stranger = RecipientSecretKey::generate();
        let block = fetch(&bytes, &index, &stranger.id());
        assert!(index
            .find(&stranger.id(), &block, &binding)
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_lying_index_and_wrong_sized_blocks_are_refused_by_name() {
        let binding = SlipBinding::new("fw-1.0.0.img.zst", PayloadId([3; 16]));
        let (devices, bytes, index) = bundle(200, 3, &binding, &DataKey::generate());
        // The device in the smallest block (keys are random): some other block is at least as
        // long, which the "another block's records" case below needs.
        let d = devices
            .iter()
            .min_by_key(|d| index.block_for(&d.id()).unwrap().2)
            .unwrap();
        let block = fetch(&bytes, &index, &d.id());
        let refused = |r: Result<Option<KeySlip>>| match r {
            Err(EnvelopeError::SlipBundle(why)) => why,
            other => panic!("not refused: {other:?}"),
        };
        // Truncated and oversized answers.
        refused(index.find(&d.id(), &block[..block.len() - 1], &binding));
        let mut longer = block.clone();
        longer.extend_from_slice(&[0; RECORD_LEN]);
        refused(index.find(&d.id(), &longer, &binding));
        // An index whose block starts point at another block's records.
        let k = block_of(&d.id(), 3);
        let (_, _, len) = index.block_for(&d.id()).unwrap();
        let other = (0..devices.len())
            .map(|i| &devices[i])
            .find(|o| block_of(&o.id(), 3) != k && index.block_for(&o.id()).unwrap().2 >= len)
            .unwrap();
        let wrong = fetch(&bytes, &index, &other.id());
        let why = refused(index.find(&d.id(), &wrong[..len as usize], &binding));
        assert!(why.contains("not of block"), "{why}");
        // Out of order records.
        let mut swapped = block.clone();
        swapped[..RECORD_LEN].copy_from_slice(&block[RECORD_LEN..2 * RECORD_LEN]);
        swapped[RECORD_LEN..2 * RECORD_LEN].copy_from_slice(&block[..RECORD_LEN]);
        let why = refused(index.find(&d.id(), &swapped, &binding));
        assert!(why.contains("not sorted"), "{why}");
        // Index fields out of range: too many bits, wrong length, a block past the end, one
        // larger than a device fetches.
        let mut bad = index.clone();
        bad.block_bits = MAX_BLOCK_BITS + 1;
        assert!(matches!(
            bad.block_for(&d.id()),
            Err(EnvelopeError::SlipBundle(_))
        ));
        let mut bad = index.clone();
        bad.block_starts = STANDARD.encode([0u8; 12]);
        assert!(matches!(
            bad.block_for(&d.id()),
            Err(EnvelopeError::SlipBundle(_))
        ));
        let mut bad = index.clone();
        bad.records = 1;
        assert!(matches!(
            bad.block_for(&devices[199].id()),
            Err(EnvelopeError::SlipBundle(_))
        ));
        let huge = SlipBundleIndex::new(1 << 30, 40, 0, &[0]);
        assert!(matches!(
            huge.block_for(&d.id()),
            Err(EnvelopeError::SlipBundle(_))
        ));
    }

    #[test]
    fn block_bits_keep_blocks_near_the_target_size() {
        assert_eq!(block_bits_for(0, 2048), 0);
        assert_eq!(block_bits_for(2048, 2048), 0);
        assert_eq!(block_bits_for(1_000_000, 2048), 9);
        assert_eq!(block_bits_for(u64::from(u32::MAX), 2048), MAX_BLOCK_BITS);
        let id = RecipientId([0xff; 16]);
        assert_eq!(block_of(&id, 0), 0);
        assert_eq!(block_of(&id, 12), 4095);
    }
}
