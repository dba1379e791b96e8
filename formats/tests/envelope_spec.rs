//! ENVELOPE.md is the format: these tests decrypt a payload and open a slip following the
//! document alone, with the primitive crates (hkdf, hmac, chacha20poly1305, hpke), so the code
//! and the specification cannot drift apart.

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use hpke::{Deserializable, Kem, OpModeR, Serializable};
use ota_formats::envelope::*;
use sha2::{Digest, Sha256};

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b.try_into().unwrap())
}

fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b.try_into().unwrap())
}

/// An independent reader written from ENVELOPE.md.
fn spec_decrypt(file: &[u8], data_key: &[u8; 32]) -> Vec<u8> {
    let header = &file[..80];
    assert_eq!(&header[..8], b"OTAENV\r\n");
    assert_eq!(header[8..12], [1, 1, 1, 0]);
    assert_eq!(header[47], 0);
    let c = be32(&header[12..16]) as usize;
    let l = be64(&header[16..24]) as usize;
    let payload_id = &header[24..40];
    let prefix = &header[40..47];

    let hk = Hkdf::<Sha256>::new(Some(payload_id), data_key);
    let (mut mac_key, mut payload_key) = ([0u8; 32], [0u8; 32]);
    hk.expand(b"ota-envelope v1 header mac", &mut mac_key)
        .unwrap();
    hk.expand(b"ota-envelope v1 payload key", &mut payload_key)
        .unwrap();
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&mac_key).unwrap();
    mac.update(&header[..48]);
    mac.verify_slice(&header[48..80]).unwrap();

    let n = l.div_ceil(c).max(1);
    assert_eq!(file.len(), 80 + l + 16 * n, "file length formula");
    let aead = ChaCha20Poly1305::new(&payload_key.into());
    let mut out = Vec::new();
    let mut at = 80;
    for i in 0..n {
        let plain_len = if i + 1 == n { l - i * c } else { c };
        let mut nonce = [0u8; 12];
        nonce[..7].copy_from_slice(prefix);
        nonce[7..11].copy_from_slice(&(i as u32).to_be_bytes());
        nonce[11] = u8::from(i + 1 == n);
        let mut chunk = file[at..at + plain_len + 16].to_vec();
        aead.decrypt_in_place(&nonce.into(), header, &mut chunk)
            .unwrap_or_else(|_| panic!("chunk {i} per spec"));
        out.extend_from_slice(&chunk);
        at += plain_len + 16;
    }
    out
}

#[test]
fn payload_follows_the_documented_layout() {
    let key = DataKey::generate();
    for (len, cs) in [
        (0usize, 64u32),
        (1, 64),
        (64, 64),
        (65, 64),
        (10_000, 1000),
        (200_000, 65536),
    ] {
        let plain: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
        let mut sealed = Vec::new();
        let params = EncryptParams::new(len as u64).with_chunk_size(cs);
        let info = encrypt_stream(&plain[..], &mut sealed, &key, &params).unwrap();
        assert_eq!(&sealed[24..40], &info.payload_id.0);
        assert_eq!(
            spec_decrypt(&sealed, key.expose_secret()),
            plain,
            "len {len}"
        );
    }
}

#[test]
fn last_chunk_carries_the_last_flag_and_others_do_not() {
    let key = DataKey::generate();
    let plain = vec![9u8; 300];
    let mut sealed = Vec::new();
    let params = EncryptParams::new(300).with_chunk_size(128);
    encrypt_stream(&plain[..], &mut sealed, &key, &params).unwrap();
    let header = &sealed[..80];
    let hk = Hkdf::<Sha256>::new(Some(&header[24..40]), key.expose_secret());
    let mut payload_key = [0u8; 32];
    hk.expand(b"ota-envelope v1 payload key", &mut payload_key)
        .unwrap();
    let aead = ChaCha20Poly1305::new(&payload_key.into());
    let opens = |i: usize, at: usize, len: usize, flag: u8| {
        let mut nonce = [0u8; 12];
        nonce[..7].copy_from_slice(&header[40..47]);
        nonce[7..11].copy_from_slice(&(i as u32).to_be_bytes());
        nonce[11] = flag;
        let mut chunk = sealed[at..at + len].to_vec();
        aead.decrypt_in_place(&nonce.into(), header, &mut chunk)
            .is_ok()
    };
    // Chunks: 128, 128, 44 plaintext bytes.
    assert!(opens(0, 80, 144, 0) && !opens(0, 80, 144, 1));
    assert!(opens(1, 224, 144, 0) && !opens(1, 224, 144, 1));
    assert!(opens(2, 368, 60, 1) && !opens(2, 368, 60, 0));
}

#[test]
fn key_slip_opens_per_the_documented_hpke_parameters() {
    type KemT = hpke::kem::X25519HkdfSha256;
    let device = RecipientSecretKey::generate();
    let key = DataKey::generate();
    let payload_id = PayloadId([0xA5; 16]);
    let target = "fw/board-a-2.1.bin";
    let slip = wrap_key(
        &key,
        device.public_key(),
        &SlipBinding::new(target, payload_id),
    )
    .unwrap();

    let pk_bytes = device.public_key().to_bytes();
    assert_eq!(slip.recipient.0[..], Sha256::digest(pk_bytes)[..16]);

    let mut info = b"ota-envelope v1 key slip".to_vec();
    info.push(0);
    info.extend_from_slice(&(target.len() as u32).to_be_bytes());
    info.extend_from_slice(target.as_bytes());
    info.extend_from_slice(&payload_id.0);

    // The secret key travels through its documented text form.
    let text = device.to_text();
    let raw = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        &text["otasec1".len()..],
    )
    .unwrap();
    assert_eq!(raw.len(), 36);
    let sum = Sha256::new()
        .chain_update(b"otasec1")
        .chain_update(&raw[..32])
        .finalize();
    assert_eq!(raw[32..], sum[..4]);
    let sk = <KemT as Kem>::PrivateKey::from_bytes(&raw[..32]).unwrap();
    assert_eq!(KemT::sk_to_pk(&sk).to_bytes()[..], pk_bytes[..]);

    let enc = <KemT as Kem>::EncappedKey::from_bytes(&slip.enc).unwrap();
    let opened =
        hpke::single_shot_open::<hpke::aead::ChaCha20Poly1305, hpke::kdf::HkdfSha256, KemT>(
            &OpModeR::Base,
            &sk,
            &enc,
            &info,
            &slip.wrapped_key,
            b"",
        )
        .unwrap();
    assert_eq!(opened[..], key.expose_secret()[..]);

    // The binary slip layout.
    let bytes = slip.to_bytes().unwrap();
    assert_eq!(&bytes[..9], b"OTASLIP\n\x01");
    assert_eq!(&bytes[9..25], &slip.recipient.0);
    assert_eq!(&bytes[25..41], &payload_id.0);
    assert_eq!(&bytes[41..73], &slip.enc);
    assert_eq!(&bytes[73..121], &slip.wrapped_key);
    assert_eq!(&bytes[121..123], &(target.len() as u16).to_be_bytes());
    assert_eq!(&bytes[123..], target.as_bytes());
}
