//! ECDSA P-256 signing (`ecdsa-sha2-nistp256`), as TUF tools list such keys: keytype `ecdsa`,
//! the public key as PEM SubjectPublicKeyInfo, signatures DER-encoded in hex.
//!
//! Devices sign their status reports with the P-256 identity key of their TLS certificate;
//! the same type lets a role key be ECDSA.
use super::{Ed25519Signer, Key, KeyFileError, KeyVal, Signature, Signer};
use crate::{Error, Result};
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::Map;

/// An ECDSA P-256 private key.
pub struct EcdsaP256Signer {
    key: p256::ecdsa::SigningKey,
    public: Key,
}

impl std::fmt::Debug for EcdsaP256Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print private key material.
        f.debug_struct("EcdsaP256Signer")
            .field("public", &self.public.keyval.public)
            .finish()
    }
}

impl EcdsaP256Signer {
    /// A new random key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        Self::from_key(p256::ecdsa::SigningKey::random(&mut rand_core::OsRng))
    }

    /// Load a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`), as OpenSSL, rcgen and
    /// `ota-client enroll` write P-256 keys.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self> {
        let key = p256::ecdsa::SigningKey::from_pkcs8_pem(pem)
            .map_err(|e| Error::SigningKey(format!("not a P-256 PKCS#8 PEM private key: {e}")))?;
        Ok(Self::from_key(key))
    }

    /// Encode as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), the form
    /// [`EcdsaP256Signer::from_pkcs8_pem`] and OpenSSL read. The string holds secret material:
    /// write it with 0600 permissions.
    pub fn to_pkcs8_pem(&self) -> Result<String> {
        use p256::pkcs8::EncodePrivateKey;
        let pem = self
            .key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| Error::SigningKey(format!("cannot encode key: {e}")))?;
        Ok(pem.to_string())
    }

    fn from_key(key: p256::ecdsa::SigningKey) -> Self {
        let public = p256_public_key(key.verifying_key());
        EcdsaP256Signer { key, public }
    }
}

/// OID of an elliptic-curve public key (id-ecPublicKey) in a PKCS#8 key.
const EC_PUBLIC_KEY_OID: &str = "1.2.840.10045.2.1";
/// OID of the P-256 curve (prime256v1).
const P256_OID: &str = "1.2.840.10045.3.1.7";

/// The signer of a PKCS#8 PEM private key file (`-----BEGIN PRIVATE KEY-----`): Ed25519, or
/// ECDSA P-256. The errors say what the file holds instead (see [`KeyFileError`]).
pub fn signer_from_key_file(
    bytes: &[u8],
) -> std::result::Result<Box<dyn Signer + Send + Sync>, KeyFileError> {
    match Ed25519Signer::from_key_file(bytes) {
        Ok(s) => Ok(Box::new(s)),
        Err(KeyFileError::Algorithm { oid, curve })
            if oid == EC_PUBLIC_KEY_OID && curve.as_deref() == Some(P256_OID) =>
        {
            let text = std::str::from_utf8(bytes).map_err(|_| KeyFileError::Binary)?;
            let key = EcdsaP256Signer::from_pkcs8_pem(text.trim())
                .map_err(|e| KeyFileError::Malformed(e.to_string()))?;
            Ok(Box::new(key))
        }
        Err(e) => Err(e),
    }
}

/// The TUF listing of a P-256 public key.
fn p256_public_key(vk: &p256::ecdsa::VerifyingKey) -> Key {
    // Encoding a valid point as SPKI PEM cannot fail; an empty string would only make every
    // verification fail, never pass.
    let pem = vk.to_public_key_pem(LineEnding::LF).unwrap_or_default();
    Key {
        keytype: "ecdsa".into(),
        scheme: "ecdsa-sha2-nistp256".into(),
        keyval: KeyVal {
            public: pem,
            extra: Map::new(),
        },
        extra: Map::new(),
    }
}

impl Key {
    /// The TUF listing of a P-256 public key given as DER SubjectPublicKeyInfo (the
    /// `subjectPublicKeyInfo` of an X.509 certificate).
    pub fn ecdsa_p256_from_spki_der(spki: &[u8]) -> Result<Self> {
        use p256::pkcs8::DecodePublicKey;
        let vk =
            p256::ecdsa::VerifyingKey::from_public_key_der(spki).map_err(|e| Error::BadKey {
                keyid: "(certificate key)".into(),
                reason: format!("not a P-256 public key: {e}"),
            })?;
        Ok(p256_public_key(&vk))
    }
}

impl Key {
    /// The TUF listing of a public key given as PEM SubjectPublicKeyInfo
    /// (`-----BEGIN PUBLIC KEY-----`, as `openssl pkey -pubout` writes it): ECDSA P-256 or
    /// Ed25519.
    pub fn from_spki_pem(pem: &str) -> Result<Self> {
        use p256::pkcs8::DecodePublicKey;
        let bad = |reason: String| Error::BadKey {
            keyid: "(public key file)".into(),
            reason,
        };
        if let Ok(vk) = p256::ecdsa::VerifyingKey::from_public_key_pem(pem) {
            return Ok(p256_public_key(&vk));
        }
        match ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
            Ok(vk) => Ok(Key::ed25519(vk.as_bytes())),
            Err(e) => Err(bad(format!(
                "not a P-256 or Ed25519 public key in PEM SubjectPublicKeyInfo form: {e}"
            ))),
        }
    }
}

impl Signer for EcdsaP256Signer {
    fn public_key(&self) -> Key {
        self.public.clone()
    }

    fn sign(&self, msg: &[u8]) -> Result<Signature> {
        let sig: p256::ecdsa::DerSignature = self.key.sign(msg);
        Ok(Signature {
            keyid: self.key_id()?,
            sig: hex::encode(sig.as_bytes()),
            extra: Map::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::pkcs8::EncodePrivateKey;

    #[test]
    fn signatures_verify_with_the_listed_key_and_only_over_the_message() {
        let signer = EcdsaP256Signer::generate();
        let sig = signer.sign(b"message").unwrap();
        let key = signer.public_key();
        let raw = hex::decode(&sig.sig).unwrap();
        assert!(key.verify(&sig.keyid, b"message", &raw).unwrap());
        assert!(!key.verify(&sig.keyid, b"messagf", &raw).unwrap());
        let other = EcdsaP256Signer::generate().public_key();
        assert!(!other.verify(&sig.keyid, b"message", &raw).unwrap());
    }

    #[test]
    fn pem_round_trip_and_spki_listing_agree() {
        let sk = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
        let pem = sk.to_pkcs8_pem(LineEnding::LF).unwrap();
        let signer = EcdsaP256Signer::from_pkcs8_pem(&pem).unwrap();
        let spki = sk.verifying_key().to_public_key_der().unwrap();
        let listed = Key::ecdsa_p256_from_spki_der(spki.as_bytes()).unwrap();
        assert_eq!(listed, signer.public_key());
        assert_eq!(listed.key_id().unwrap(), signer.key_id().unwrap());
        assert!(EcdsaP256Signer::from_pkcs8_pem("not a key").is_err());
        let again = EcdsaP256Signer::from_pkcs8_pem(&signer.to_pkcs8_pem().unwrap()).unwrap();
        assert_eq!(again.public_key(), signer.public_key());
        let spki_pem = sk
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        assert_eq!(Key::from_spki_pem(&spki_pem).unwrap(), signer.public_key());
        let ed = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let ed_pem = ed
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        assert_eq!(
            Key::from_spki_pem(&ed_pem).unwrap(),
            Key::ed25519(ed.verifying_key().as_bytes())
        );
        assert!(
            Key::from_spki_pem(&pem).is_err(),
            "a private key is not a public key"
        );
        assert!(Key::from_spki_pem("junk").is_err());
        let from_file = signer_from_key_file(pem.as_bytes()).unwrap();
        assert_eq!(from_file.public_key(), signer.public_key());
        let ed = Ed25519Signer::from_seed(&[3; 32]);
        let ed_file = signer_from_key_file(ed.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
        assert_eq!(ed_file.public_key(), ed.public_key());
        // A P-384 key (openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384): an EC
        // key on another curve is described, not taken for P-256.
        let p384 = "-----BEGIN PRIVATE KEY-----
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDACauYg9wJ+37weOlic
l1hQwoVTo0PSZPtlhj/Wlu2+UtIgWCGLDEdQr0UZiE+LfqOhZANiAAQxoj2/sHN7
/9E46wS7q/sESC5wYAkGX3X1MdZVuQOrZscpiBuGe/AweOc3u9656lmFNGE7OOpo
UtuUmXWEvSMVjpui9fvTlFJKt6ZPpwGJyPjaZkY/bZlg2iQnnR65UaY=
-----END PRIVATE KEY-----
";
        assert!(matches!(
            signer_from_key_file(p384.as_bytes()),
            Err(KeyFileError::Algorithm { curve: Some(c), .. }) if c == "1.3.132.0.34"
        ));
        assert!(Key::ecdsa_p256_from_spki_der(b"junk").is_err());
    }
}
