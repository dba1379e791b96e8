//! Key schedule of a payload: the data key is never used directly. HKDF-SHA256 with the
//! payload id as salt derives one key for the header MAC and one for the chunk AEAD, so a
//! data key accidentally reused for two payloads still gives unrelated chunk keys.

use super::error::{EnvelopeError, Result};
use super::{DataKey, PayloadId};
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// HKDF `info` for the header MAC key.
pub const INFO_HEADER_MAC: &[u8] = b"ota-envelope v1 header mac";
/// HKDF `info` for the chunk AEAD key.
pub const INFO_PAYLOAD_KEY: &[u8] = b"ota-envelope v1 payload key";

/// The two keys derived for one payload; wiped on drop.
pub(crate) struct PayloadKeys {
    mac_key: Zeroizing<[u8; 32]>,
    aead_key: Zeroizing<[u8; 32]>,
}

impl PayloadKeys {
    pub(crate) fn derive(data_key: &DataKey, payload_id: &PayloadId) -> Result<Self> {
        let hk = Hkdf::<Sha256>::new(Some(&payload_id.0), data_key.expose_secret());
        let mut mac_key = Zeroizing::new([0u8; 32]);
        let mut aead_key = Zeroizing::new([0u8; 32]);
        hk.expand(INFO_HEADER_MAC, &mut mac_key[..])
            .map_err(|_| EnvelopeError::Crypto("HKDF expand"))?;
        hk.expand(INFO_PAYLOAD_KEY, &mut aead_key[..])
            .map_err(|_| EnvelopeError::Crypto("HKDF expand"))?;
        Ok(Self { mac_key, aead_key })
    }

    /// The chunk AEAD keyed with the payload key (the cipher wipes its key copy on drop).
    pub(crate) fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(&(*self.aead_key).into())
    }

    fn mac(&self) -> Result<Hmac<Sha256>> {
        <Hmac<Sha256> as Mac>::new_from_slice(&self.mac_key[..])
            .map_err(|_| EnvelopeError::Crypto("HMAC key"))
    }

    pub(crate) fn header_mac(&self, signed: &[u8]) -> Result<[u8; 32]> {
        let mut mac = self.mac()?;
        mac.update(signed);
        Ok(mac.finalize().into_bytes().into())
    }

    pub(crate) fn verify_header_mac(&self, signed: &[u8], tag: &[u8]) -> Result<()> {
        let mut mac = self.mac()?;
        mac.update(signed);
        // Constant-time comparison inside `hmac`.
        mac.verify_slice(tag)
            .map_err(|_| EnvelopeError::HeaderNotAuthentic)
    }
}
