//! Encrypted payload streams: round trips of many sizes, and refusal with the specific error
//! of every kind of damage, with no plaintext from an unauthenticated chunk reaching the writer.

use ota_formats::envelope::*;
use std::io::{Read, Write};

const CS: u32 = 1024;

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_be_bytes()[0])
        .collect()
}

fn seal(plain: &[u8], chunk_size: u32) -> (DataKey, Vec<u8>, PayloadInfo) {
    let key = DataKey::generate();
    let mut sealed = Vec::new();
    let params = EncryptParams::new(plain.len() as u64).with_chunk_size(chunk_size);
    let info = encrypt_stream(plain, &mut sealed, &key, &params).unwrap();
    (key, sealed, info)
}

/// Decrypts into a Vec, returning the outcome and everything the writer received.
fn open(sealed: &[u8], key: &DataKey) -> (Result<u64>, Vec<u8>) {
    let mut out = Vec::new();
    let res = decrypt_stream(sealed, &mut out, key);
    (res, out)
}

/// Byte offset of chunk `i` in a sealed payload with chunk size `cs`.
fn chunk_at(i: usize, cs: u32) -> usize {
    HEADER_LEN + i * (cs as usize + TAG_LEN)
}

#[test]
fn round_trips_all_sizes_around_chunk_boundaries() {
    for cs in [CS, DEFAULT_CHUNK_SIZE] {
        let c = cs as usize;
        for len in [0, 1, c - 1, c, c + 1, 2 * c, 3 * c + 7] {
            let plain = pattern(len);
            let (key, sealed, info) = seal(&plain, cs);
            assert_eq!(info.plaintext_len, len as u64);
            assert_eq!(info.chunk_size, cs);
            assert_eq!(info.ciphertext_len, sealed.len() as u64, "len {len}");
            let chunks = len.div_ceil(c).max(1);
            assert_eq!(sealed.len(), HEADER_LEN + len + chunks * TAG_LEN);
            let (res, out) = open(&sealed, &key);
            assert_eq!(res.unwrap(), len as u64, "len {len} cs {cs}");
            assert_eq!(out, plain, "len {len} cs {cs}");
        }
    }
}

#[test]
fn round_trips_several_mib_through_real_files() {
    let dir = tempfile::tempdir().unwrap();
    let plain = pattern(5 * 1024 * 1024 + 123);
    let plain_path = dir.path().join("image.zst");
    let sealed_path = dir.path().join("image.zst.enc");
    let out_path = dir.path().join("image.zst.tmp");
    std::fs::write(&plain_path, &plain).unwrap();

    let key = DataKey::generate();
    let params = EncryptParams::new(plain.len() as u64);
    let info = encrypt_stream(
        std::fs::File::open(&plain_path).unwrap(),
        std::io::BufWriter::new(std::fs::File::create(&sealed_path).unwrap()),
        &key,
        &params,
    )
    .unwrap();
    assert_eq!(
        std::fs::metadata(&sealed_path).unwrap().len(),
        info.ciphertext_len
    );
    let header = read_header(std::fs::File::open(&sealed_path).unwrap()).unwrap();
    assert_eq!(header.payload_id, info.payload_id);
    assert_eq!(header.chunk_count(), plain.len().div_ceil(65536) as u64);

    let mut out = std::fs::File::create(&out_path).unwrap();
    let meta = EncryptionInfo::new(&info);
    let n = decrypt_stream_checked(
        std::io::BufReader::new(std::fs::File::open(&sealed_path).unwrap()),
        &mut out,
        &key,
        &meta,
    )
    .unwrap();
    out.sync_all().unwrap();
    assert_eq!(n, plain.len() as u64);
    assert_eq!(std::fs::read(&out_path).unwrap(), plain);
}

#[test]
fn ciphertext_hides_plaintext_and_is_fresh_each_time() {
    let plain = vec![0u8; 3000];
    let key = DataKey::generate();
    let params = EncryptParams::new(3000).with_chunk_size(CS);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let ia = encrypt_stream(&plain[..], &mut a, &key, &params).unwrap();
    let ib = encrypt_stream(&plain[..], &mut b, &key, &params).unwrap();
    assert_ne!(ia.payload_id, ib.payload_id);
    assert_ne!(a[HEADER_LEN..], b[HEADER_LEN..]);
    assert!(!a[HEADER_LEN..]
        .windows(64)
        .any(|w| w.iter().all(|&x| x == 0)));
}

#[test]
fn flipped_bit_in_first_middle_last_chunk_is_tampering_and_nothing_unauthenticated_is_written() {
    let plain = pattern(5 * CS as usize + 100); // 6 chunks, last one short
    let (key, sealed, _) = seal(&plain, CS);
    for (chunk, offset_in_chunk) in [
        (0usize, 0usize),
        (0, 17),
        (2, 500),
        (4, 1030),
        (5, 0),
        (5, 115),
    ] {
        let mut bad = sealed.clone();
        bad[chunk_at(chunk, CS) + offset_in_chunk] ^= 0x04;
        let (res, out) = open(&bad, &key);
        match res {
            Err(EnvelopeError::TamperedChunk { index }) => assert_eq!(index, chunk as u64),
            other => panic!("chunk {chunk}: expected TamperedChunk, got {other:?}"),
        }
        // Exactly the chunks before the damaged one, and they are the true plaintext.
        assert_eq!(out, plain[..chunk * CS as usize], "chunk {chunk}");
    }
}

#[test]
fn every_flipped_header_bit_is_refused_before_any_output() {
    let plain = pattern(3 * CS as usize);
    let (key, sealed, _) = seal(&plain, CS);
    for byte in 0..HEADER_LEN {
        for bit in 0..8 {
            let mut bad = sealed.clone();
            bad[byte] ^= 1 << bit;
            let (res, out) = open(&bad, &key);
            assert!(
                out.is_empty(),
                "byte {byte} bit {bit}: writer got plaintext"
            );
            let err = res.expect_err("tampered header accepted");
            let ok = match byte {
                0..=7 => matches!(err, EnvelopeError::BadMagic),
                8 => matches!(err, EnvelopeError::UnsupportedVersion(_)),
                9 | 10 => matches!(err, EnvelopeError::UnsupportedAlgorithm { .. }),
                11 | 47 => matches!(err, EnvelopeError::BadHeader(_)),
                // Chunk size and length: out of range, or in range and then not authentic.
                12..=23 => matches!(
                    err,
                    EnvelopeError::BadHeader(_) | EnvelopeError::HeaderNotAuthentic
                ),
                _ => matches!(err, EnvelopeError::HeaderNotAuthentic),
            };
            assert!(ok, "byte {byte} bit {bit}: unexpected {err:?}");
        }
    }
}

#[test]
fn wrong_data_key_is_refused_at_the_header() {
    let plain = pattern(2000);
    let (_, sealed, _) = seal(&plain, CS);
    let (res, out) = open(&sealed, &DataKey::generate());
    assert!(
        matches!(res, Err(EnvelopeError::HeaderNotAuthentic)),
        "{res:?}"
    );
    assert!(out.is_empty());
}

#[test]
fn cut_off_last_chunk_is_truncation() {
    for len in [4 * CS as usize, 4 * CS as usize + 10] {
        let plain = pattern(len);
        let (key, sealed, _) = seal(&plain, CS);
        let chunks = len.div_ceil(CS as usize);
        let cut = &sealed[..chunk_at(chunks - 1, CS)];
        let (res, out) = open(cut, &key);
        match res {
            Err(EnvelopeError::Truncated { expected, got }) => {
                assert_eq!(expected, sealed.len() as u64);
                assert_eq!(got, cut.len() as u64);
            }
            other => panic!("expected Truncated, got {other:?}"),
        }
        assert_eq!(out, plain[..(chunks - 1) * CS as usize]);

        // Cut in the middle of the last chunk, and one byte short.
        for keep in [sealed.len() - 1, chunk_at(chunks - 1, CS) + 5] {
            let (res, out) = open(&sealed[..keep], &key);
            assert!(
                matches!(res, Err(EnvelopeError::Truncated { .. })),
                "{res:?}"
            );
            assert_eq!(out, plain[..(chunks - 1) * CS as usize]);
        }
    }
}

#[test]
fn header_only_or_partial_header_is_truncation_and_junk_is_bad_magic() {
    let (key, sealed, _) = seal(&pattern(10), CS);
    let (res, out) = open(&sealed[..HEADER_LEN], &key);
    assert!(
        matches!(res, Err(EnvelopeError::Truncated { .. })),
        "{res:?}"
    );
    assert!(out.is_empty());
    let (res, _) = open(&sealed[..30], &key);
    assert!(
        matches!(res, Err(EnvelopeError::Truncated { got: 30, .. })),
        "{res:?}"
    );
    let (res, _) = open(b"", &key);
    assert!(matches!(res, Err(EnvelopeError::BadMagic)), "{res:?}");
    let (res, _) = open(&pattern(500), &key);
    assert!(matches!(res, Err(EnvelopeError::BadMagic)), "{res:?}");
    assert!(matches!(
        read_header(&b"PK\x03\x04"[..]),
        Err(EnvelopeError::BadMagic)
    ));
}

#[test]
fn swapped_chunks_are_reported_as_reordered() {
    let c = CS as usize + TAG_LEN;
    let plain = pattern(5 * CS as usize + 9);
    let (key, sealed, _) = seal(&plain, CS);
    let mut bad = sealed.clone();
    let (a, b) = (chunk_at(1, CS), chunk_at(3, CS));
    let chunk1 = sealed[a..a + c].to_vec();
    bad.copy_within(b..b + c, a);
    bad[b..b + c].copy_from_slice(&chunk1);
    let (res, out) = open(&bad, &key);
    match res {
        Err(EnvelopeError::ReorderedChunks {
            position,
            belongs_at,
        }) => assert_eq!((position, belongs_at), (1, 3)),
        other => panic!("expected ReorderedChunks, got {other:?}"),
    }
    assert_eq!(out, plain[..CS as usize]);

    // A full last chunk moved to the front is found too (its last-chunk flag differs).
    let plain = pattern(3 * CS as usize);
    let (key, sealed, _) = seal(&plain, CS);
    let mut bad = sealed.clone();
    let (first, last) = (chunk_at(0, CS), chunk_at(2, CS));
    let chunk0 = sealed[first..first + c].to_vec();
    bad.copy_within(last..last + c, first);
    bad[last..last + c].copy_from_slice(&chunk0);
    let (res, out) = open(&bad, &key);
    assert!(
        matches!(
            res,
            Err(EnvelopeError::ReorderedChunks {
                position: 0,
                belongs_at: 2
            })
        ),
        "{res:?}"
    );
    assert!(out.is_empty());
}

#[test]
fn duplicated_chunk_is_reported_as_reordered() {
    let c = CS as usize + TAG_LEN;
    let plain = pattern(4 * CS as usize);
    let (key, sealed, _) = seal(&plain, CS);
    let mut bad = sealed.clone();
    // Replace chunk 2 with a copy of chunk 1 (replay within the stream).
    bad.copy_within(chunk_at(1, CS)..chunk_at(1, CS) + c, chunk_at(2, CS));
    let (res, out) = open(&bad, &key);
    assert!(
        matches!(
            res,
            Err(EnvelopeError::ReorderedChunks {
                position: 2,
                belongs_at: 1
            })
        ),
        "{res:?}"
    );
    assert_eq!(out, plain[..2 * CS as usize]);
}

#[test]
fn trailing_garbage_is_refused_before_the_last_chunk_is_released() {
    for len in [0, 3 * CS as usize, 3 * CS as usize + 50] {
        let plain = pattern(len);
        let (key, sealed, _) = seal(&plain, CS);
        let chunks = len.div_ceil(CS as usize).max(1);
        for garbage in [&b"x"[..], &[0u8; 5000][..]] {
            let mut bad = sealed.clone();
            bad.extend_from_slice(garbage);
            let (res, out) = open(&bad, &key);
            assert!(matches!(res, Err(EnvelopeError::TrailingData)), "{res:?}");
            assert_eq!(out, plain[..(chunks - 1) * CS as usize]);
        }
        // A whole valid chunk appended again is trailing data too.
        let mut bad = sealed.clone();
        bad.extend_from_slice(&sealed[chunk_at(0, CS)..]);
        let (res, _) = open(&bad, &key);
        assert!(matches!(res, Err(EnvelopeError::TrailingData)), "{res:?}");
    }
}

#[test]
fn chunks_spliced_from_another_payload_under_the_same_key_do_not_authenticate() {
    // Even if a data key were misused for two payloads, the derived keys and the header as
    // associated data keep their chunks apart.
    let key = DataKey::generate();
    let plain = pattern(3 * CS as usize);
    let params = EncryptParams::new(plain.len() as u64).with_chunk_size(CS);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    encrypt_stream(&plain[..], &mut a, &key, &params).unwrap();
    encrypt_stream(&plain[..], &mut b, &key, &params).unwrap();
    let mut bad = a.clone();
    let at = chunk_at(1, CS);
    bad[at..at + CS as usize + TAG_LEN].copy_from_slice(&b[at..at + CS as usize + TAG_LEN]);
    let (res, out) = open(&bad, &key);
    assert!(
        matches!(res, Err(EnvelopeError::TamperedChunk { index: 1 })),
        "{res:?}"
    );
    assert_eq!(out, plain[..CS as usize]);
}

#[test]
fn checked_decryption_refuses_a_header_other_than_the_signed_one() {
    let plain = pattern(2500);
    let (key, sealed, info) = seal(&plain, CS);
    let mut meta = EncryptionInfo::new(&info);
    meta.plaintext_length += 1;
    let mut out = Vec::new();
    let res = decrypt_stream_checked(&sealed[..], &mut out, &key, &meta);
    assert!(
        matches!(
            res,
            Err(EnvelopeError::HeaderMismatch {
                field: "plaintext length",
                ..
            })
        ),
        "{res:?}"
    );
    let mut meta = EncryptionInfo::new(&info);
    meta.payload_id = PayloadId([7; 16]);
    let res = decrypt_stream_checked(&sealed[..], &mut out, &key, &meta);
    assert!(
        matches!(
            res,
            Err(EnvelopeError::HeaderMismatch {
                field: "payload id",
                ..
            })
        ),
        "{res:?}"
    );
    assert!(out.is_empty());
}

/// A reader that hands out at most 3 bytes per call and is interrupted every other call.
struct Dribble<'a>(&'a [u8], bool);

impl Read for Dribble<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.1 = !self.1;
        if self.1 {
            return Err(std::io::ErrorKind::Interrupted.into());
        }
        let n = buf.len().min(3).min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[test]
fn short_reads_and_interruptions_are_handled() {
    let plain = pattern(2 * CS as usize + 5);
    let key = DataKey::generate();
    let params = EncryptParams::new(plain.len() as u64).with_chunk_size(CS);
    let mut sealed = Vec::new();
    encrypt_stream(Dribble(&plain, false), &mut sealed, &key, &params).unwrap();
    let mut out = Vec::new();
    decrypt_stream(Dribble(&sealed, false), &mut out, &key).unwrap();
    assert_eq!(out, plain);
}

#[test]
fn encryption_refuses_a_reader_of_another_length_and_bad_chunk_sizes() {
    let key = DataKey::generate();
    let plain = pattern(100);
    let res = encrypt_stream(&plain[..], std::io::sink(), &key, &EncryptParams::new(101));
    assert!(
        matches!(
            res,
            Err(EnvelopeError::LengthMismatch {
                declared: 101,
                actual: 100
            })
        ),
        "{res:?}"
    );
    let res = encrypt_stream(&plain[..], std::io::sink(), &key, &EncryptParams::new(99));
    assert!(
        matches!(res, Err(EnvelopeError::LengthMismatch { declared: 99, .. })),
        "{res:?}"
    );
    for bad in [0, MIN_CHUNK_SIZE - 1, MAX_CHUNK_SIZE + 1] {
        let params = EncryptParams::new(100).with_chunk_size(bad);
        let res = encrypt_stream(&plain[..], std::io::sink(), &key, &params);
        assert!(
            matches!(res, Err(EnvelopeError::InvalidParams(_))),
            "{res:?}"
        );
    }
}

/// A writer that fails: decryption reports the I/O error rather than success.
struct Broken;

impl Write for Broken {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("disk full"))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn writer_errors_are_reported() {
    let (key, sealed, _) = seal(&pattern(10), CS);
    let res = decrypt_stream(&sealed[..], Broken, &key);
    assert!(matches!(res, Err(EnvelopeError::Io(_))), "{res:?}");
}
