//! Making many key slips fast: the HPKE sender side of [`super::wrap_key`] (RFC 9180, mode
//! base, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305, one seal at sequence 0)
//! with *ring*'s X25519, which is about twice as fast as the `hpke` crate's, and with the
//! parts that depend only on the binding (`psk_id_hash`, `info_hash`, the key schedule
//! context) computed once per release instead of once per slip.
//!
//! The output is an ordinary slip: [`super::unwrap_key`] (the `hpke` crate) opens it, which
//! the tests check, so the device side and the two implementations check each other.

use super::error::{EnvelopeError, Result};
use super::recipient::RecipientPublicKey;
use super::slip::{KeySlip, SlipBinding, ENC_LEN, WRAPPED_KEY_LEN};
use super::{DataKey, DATA_KEY_LEN};
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use hkdf::{Hkdf, HkdfExtract};
use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, X25519};
use ring::rand::SystemRandom;
use sha2::Sha256;
use zeroize::Zeroizing;

/// `"HPKE-v1"`, the label prefix of every labeled HKDF call.
const HPKE_V1: &[u8] = b"HPKE-v1";
/// suite id of the KEM: `"KEM" || I2OSP(0x0020, 2)` (DHKEM(X25519, HKDF-SHA256)).
const KEM_SUITE: &[u8] = b"KEM\x00\x20";
/// suite id of the whole suite: `"HPKE" || kem 0x0020 || kdf 0x0001 || aead 0x0003`.
const HPKE_SUITE: &[u8] = b"HPKE\x00\x20\x00\x01\x00\x03";
/// HPKE mode base.
const MODE_BASE: u8 = 0;
const NONCE_LEN: usize = 12;

/// Maps any failure of a primitive to [`EnvelopeError::Crypto`] naming it.
fn crypto<E>(what: &'static str) -> impl FnOnce(E) -> EnvelopeError {
    move |_| EnvelopeError::Crypto(what)
}

/// `LabeledExtract(salt, label, ikm)` of RFC 9180 section 4.
fn labeled_extract(suite: &[u8], salt: &[u8], label: &[u8], ikm: &[u8]) -> Hkdf<Sha256> {
    let mut ex = HkdfExtract::<Sha256>::new(Some(salt));
    for part in [HPKE_V1, suite, label, ikm] {
        ex.input_ikm(part);
    }
    ex.finalize().1
}

/// `LabeledExtract` returning the pseudorandom key itself.
fn labeled_extract_prk(suite: &[u8], salt: &[u8], label: &[u8], ikm: &[u8]) -> [u8; 32] {
    let mut ex = HkdfExtract::<Sha256>::new(Some(salt));
    for part in [HPKE_V1, suite, label, ikm] {
        ex.input_ikm(part);
    }
    ex.finalize().0.into()
}

/// `LabeledExpand(prk, label, info, L)` of RFC 9180 section 4, `L = out.len()`.
fn labeled_expand(
    prk: &Hkdf<Sha256>,
    suite: &[u8],
    label: &[u8],
    info: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let len = u16::try_from(out.len())
        .map_err(|_| EnvelopeError::Crypto("HPKE expand length"))?
        .to_be_bytes();
    prk.expand_multi_info(&[&len, HPKE_V1, suite, label, info], out)
        .map_err(|_| EnvelopeError::Crypto("HPKE expand"))
}

/// Wraps one data key for many recipients, all bound to one target and payload.
///
/// Cheap to share between threads (`&SlipSealer` is `Sync`); each [`SlipSealer::seal`] draws
/// a fresh ephemeral key, as HPKE requires.
pub struct SlipSealer {
    key: DataKey,
    binding: SlipBinding,
    /// `mode || psk_id_hash || info_hash`, the same for every slip of the binding.
    context: Vec<u8>,
    rng: SystemRandom,
}

impl std::fmt::Debug for SlipSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlipSealer")
            .field("binding", &self.binding)
            .finish_non_exhaustive()
    }
}

impl SlipSealer {
    /// A sealer of `key` for slips bound to `binding`.
    pub fn new(key: &DataKey, binding: &SlipBinding) -> Result<Self> {
        let info = binding.hpke_info()?;
        let psk_id_hash = labeled_extract_prk(HPKE_SUITE, b"", b"psk_id_hash", b"");
        let info_hash = labeled_extract_prk(HPKE_SUITE, b"", b"info_hash", &info);
        let mut context = Vec::with_capacity(1 + 64);
        context.push(MODE_BASE);
        context.extend_from_slice(&psk_id_hash);
        context.extend_from_slice(&info_hash);
        Ok(Self {
            key: DataKey::from_bytes(*key.expose_secret()),
            binding: binding.clone(),
            context,
            rng: SystemRandom::new(),
        })
    }

    /// The binding every slip of this sealer carries.
    pub fn binding(&self) -> &SlipBinding {
        &self.binding
    }

    /// Seal the data key for `recipient`: `(enc, wrapped key)`, the two secret-dependent
    /// fields of a slip.
    pub fn seal_raw(
        &self,
        recipient: &RecipientPublicKey,
    ) -> Result<([u8; ENC_LEN], [u8; WRAPPED_KEY_LEN])> {
        // Encap (RFC 9180 4.1): ephemeral key, DH with the recipient's key.
        let ephemeral =
            EphemeralPrivateKey::generate(&X25519, &self.rng).map_err(crypto("X25519 keygen"))?;
        let public = ephemeral
            .compute_public_key()
            .map_err(crypto("X25519 public key"))?;
        let mut enc = [0u8; ENC_LEN];
        enc.copy_from_slice(public.as_ref());
        let receiver = recipient.to_bytes();
        let peer = UnparsedPublicKey::new(&X25519, &receiver[..]);
        let dh = agreement::agree_ephemeral(ephemeral, &peer, |dh| {
            let mut out = Zeroizing::new([0u8; 32]);
            out.copy_from_slice(dh);
            out
        })
        .map_err(crypto("X25519"))?;
        if dh.iter().all(|&b| b == 0) {
            // A low-order recipient key: HPKE (and the `hpke` crate) refuse it.
            return Err(EnvelopeError::Crypto("HPKE seal"));
        }
        // ExtractAndExpand(dh, enc || pkRm).
        let mut kem_context = [0u8; 2 * ENC_LEN];
        kem_context[..ENC_LEN].copy_from_slice(&enc);
        kem_context[ENC_LEN..].copy_from_slice(&receiver);
        let eae_prk = labeled_extract(KEM_SUITE, b"", b"eae_prk", &dh[..]);
        let mut shared = Zeroizing::new([0u8; 32]);
        labeled_expand(
            &eae_prk,
            KEM_SUITE,
            b"shared_secret",
            &kem_context,
            &mut shared[..],
        )?;
        // Key schedule, mode base, no PSK.
        let secret = labeled_extract(HPKE_SUITE, &shared[..], b"secret", b"");
        let mut key = Zeroizing::new([0u8; 32]);
        labeled_expand(&secret, HPKE_SUITE, b"key", &self.context, &mut key[..])?;
        let mut nonce = [0u8; NONCE_LEN];
        labeled_expand(
            &secret,
            HPKE_SUITE,
            b"base_nonce",
            &self.context,
            &mut nonce,
        )?;
        // Seal at sequence 0: the nonce is the base nonce; empty associated data.
        let mut wrapped = [0u8; WRAPPED_KEY_LEN];
        wrapped[..DATA_KEY_LEN].copy_from_slice(self.key.expose_secret());
        let aead = ChaCha20Poly1305::new(&(*key).into());
        let tag = aead
            .encrypt_in_place_detached(&nonce.into(), b"", &mut wrapped[..DATA_KEY_LEN])
            .map_err(crypto("ChaCha20-Poly1305 seal"))?;
        wrapped[DATA_KEY_LEN..].copy_from_slice(&tag);
        Ok((enc, wrapped))
    }

    /// The slip of the data key for `recipient`.
    pub fn seal(&self, recipient: &RecipientPublicKey) -> Result<KeySlip> {
        let (enc, wrapped_key) = self.seal_raw(recipient)?;
        Ok(KeySlip {
            recipient: recipient.id(),
            target: self.binding.target.clone(),
            payload_id: self.binding.payload_id,
            enc,
            wrapped_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{unwrap_key, PayloadId, RecipientSecretKey};

    #[test]
    fn slips_sealed_here_open_with_the_hpke_crate_and_only_for_their_binding() {
        let key = DataKey::generate();
        let binding = SlipBinding::new("fw-1.0.0.img.zst", PayloadId([9; 16]));
        let sealer = SlipSealer::new(&key, &binding).unwrap();
        let devices: Vec<_> = (0..16).map(|_| RecipientSecretKey::generate()).collect();
        let mut encs = std::collections::BTreeSet::new();
        for device in &devices {
            let slip = sealer.seal(device.public_key()).unwrap();
            assert_eq!(slip.recipient, device.id());
            assert!(encs.insert(slip.enc), "a fresh ephemeral key per slip");
            let got = unwrap_key(&slip, device, &binding).unwrap();
            assert_eq!(got.expose_secret(), key.expose_secret());
            // The same slip claimed for another payload, or opened by another device.
            let other = SlipBinding::new("fw-1.0.0.img.zst", PayloadId([8; 16]));
            let mut moved = slip.clone();
            moved.payload_id = other.payload_id;
            assert!(matches!(
                unwrap_key(&moved, device, &other),
                Err(EnvelopeError::SlipDoesNotOpen)
            ));
            let mut stolen = slip.clone();
            stolen.recipient = devices[0].id();
            if device.id() != devices[0].id() {
                assert!(matches!(
                    unwrap_key(&stolen, &devices[0], &binding),
                    Err(EnvelopeError::SlipDoesNotOpen)
                ));
            }
        }
    }

    #[test]
    fn a_low_order_recipient_key_is_refused_not_sealed() {
        let sealer = SlipSealer::new(
            &DataKey::generate(),
            &SlipBinding::new("t", PayloadId([1; 16])),
        )
        .unwrap();
        // u = 0 is a point of small order: the shared secret would be all zeros.
        let zero = RecipientPublicKey::from_bytes(&[0u8; 32]).unwrap();
        assert!(matches!(sealer.seal(&zero), Err(EnvelopeError::Crypto(_))));
    }
}
