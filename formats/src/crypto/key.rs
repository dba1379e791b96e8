use crate::{cjson, Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The `keyval` object of a TUF key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyVal {
    /// Public key: hex for ed25519, PEM for ecdsa and rsa.
    pub public: String,
    /// Unknown fields, kept so signatures over them verify.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A public key as listed in root or delegating targets metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    /// `ed25519`, `ecdsa`, `ecdsa-sha2-nistp256` or `rsa`.
    pub keytype: String,
    /// `ed25519`, `ecdsa-sha2-nistp256` or `rsassa-pss-sha256`.
    pub scheme: String,
    /// The public key value.
    pub keyval: KeyVal,
    /// Unknown fields, kept so signatures over them verify.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Key {
    /// An ed25519 public key from its 32 raw bytes.
    pub fn ed25519(public: &[u8; 32]) -> Self {
        Key {
            keytype: "ed25519".into(),
            scheme: "ed25519".into(),
            keyval: KeyVal {
                public: hex::encode(public),
                extra: Map::new(),
            },
            extra: Map::new(),
        }
    }

    /// The key id TUF tools derive: sha256 of the key's canonical JSON, in hex.
    ///
    /// Clients never recompute ids of listed keys (the listing's ids are authoritative);
    /// this is for tools that create keys.
    pub fn key_id(&self) -> Result<String> {
        Ok(hex::encode(Sha256::digest(cjson::to_vec(self)?)))
    }

    /// Check `sig` over `msg` with this key. `keyid` only names the key in errors.
    ///
    /// Returns `Ok(false)` for a well-formed key whose signature does not verify, and an
    /// error for a key we cannot use at all.
    pub fn verify(&self, keyid: &str, msg: &[u8], sig: &[u8]) -> Result<bool> {
        let bad = |reason: String| Error::BadKey {
            keyid: keyid.to_string(),
            reason,
        };
        match (self.keytype.as_str(), self.scheme.as_str()) {
            ("ed25519", "ed25519") => {
                let raw = hex::decode(&self.keyval.public)
                    .map_err(|e| bad(format!("public key is not hex: {e}")))?;
                let raw: [u8; 32] = raw
                    .try_into()
                    .map_err(|_| bad("ed25519 public key is not 32 bytes".into()))?;
                let vk = ed25519_dalek::VerifyingKey::from_bytes(&raw)
                    .map_err(|e| bad(format!("invalid ed25519 point: {e}")))?;
                let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else {
                    return Ok(false);
                };
                Ok(vk.verify_strict(msg, &sig).is_ok())
            }
            ("ecdsa" | "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256") => {
                use p256::ecdsa::signature::Verifier;
                use p256::pkcs8::DecodePublicKey;
                let vk = p256::ecdsa::VerifyingKey::from_public_key_pem(&self.keyval.public)
                    .map_err(|e| bad(format!("invalid P-256 PEM public key: {e}")))?;
                let Ok(sig) = p256::ecdsa::DerSignature::from_bytes(sig) else {
                    return Ok(false);
                };
                Ok(vk.verify(msg, &sig).is_ok())
            }
            ("rsa", "rsassa-pss-sha256") => {
                use rsa::pkcs8::DecodePublicKey;
                let pk = rsa::RsaPublicKey::from_public_key_pem(&self.keyval.public)
                    .map_err(|e| bad(format!("invalid RSA PEM public key: {e}")))?;
                let digest = Sha256::digest(msg);
                // Salt length 32 (the digest length), as securesystemslib and python-tuf sign.
                let scheme = rsa::Pss::new_with_salt::<Sha256>(32);
                Ok(pk.verify(scheme, &digest, sig).is_ok())
            }
            (t, s) => Err(bad(format!("unsupported keytype/scheme {t}/{s}"))),
        }
    }
}
