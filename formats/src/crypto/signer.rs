use super::{Key, Signature};
use crate::{Error, Result};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use serde_json::Map;

/// Something that can sign metadata: a key file today, an HSM handle tomorrow.
pub trait Signer {
    /// The public key, as it is listed in metadata.
    fn public_key(&self) -> Key;
    /// The key id under which the public key is listed.
    fn key_id(&self) -> Result<String> {
        self.public_key().key_id()
    }
    /// Sign `msg` (canonical JSON of a `signed` value).
    fn sign(&self, msg: &[u8]) -> Result<Signature>;
}

/// An ed25519 private key.
pub struct Ed25519Signer {
    key: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for Ed25519Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print private key material.
        f.debug_struct("Ed25519Signer")
            .field("public", &hex::encode(self.key.verifying_key().as_bytes()))
            .finish()
    }
}

impl Ed25519Signer {
    /// A new random key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        Ed25519Signer {
            key: ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng),
        }
    }

    /// A key from its 32-byte seed (deterministic keys for tests and fixtures).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Ed25519Signer {
            key: ed25519_dalek::SigningKey::from_bytes(seed),
        }
    }

    /// Load a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self> {
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
            .map_err(|e| Error::SigningKey(format!("not an ed25519 PKCS#8 PEM key: {e}")))?;
        Ok(Ed25519Signer { key })
    }

    /// Encode as PKCS#8 PEM. The string holds secret material: write it with 0600 permissions.
    pub fn to_pkcs8_pem(&self) -> Result<String> {
        let pem = self
            .key
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map_err(|e| Error::SigningKey(format!("cannot encode key: {e}")))?;
        Ok(pem.to_string())
    }
}

impl Signer for Ed25519Signer {
    fn public_key(&self) -> Key {
        Key::ed25519(self.key.verifying_key().as_bytes())
    }

    fn sign(&self, msg: &[u8]) -> Result<Signature> {
        use ed25519_dalek::Signer as _;
        Ok(Signature {
            keyid: self.key_id()?,
            sig: hex::encode(self.key.sign(msg).to_bytes()),
            extra: Map::new(),
        })
    }
}
