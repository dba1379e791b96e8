use super::{Key, Signature};
use crate::{Error, Result};
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{
    EncodePrivateKey, KeypairBytes, PrivateKeyInfo, SecretDocument, ALGORITHM_OID,
};
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

    /// Load a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`), version 1 (RFC 8410,
    /// as OpenSSL writes) or version 2 (with the public key, as ota-sign wrote before).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self> {
        Self::from_key_file(pem.as_bytes()).map_err(|e| Error::SigningKey(format!("the key {e}")))
    }

    /// Load the contents of a key file, telling what the file holds when it is not an
    /// Ed25519 PKCS#8 PEM key (see [`KeyFileError`]).
    pub fn from_key_file(bytes: &[u8]) -> std::result::Result<Self, KeyFileError> {
        // Binary data (a DER file, a random file) has no PEM armour to look for.
        let text = std::str::from_utf8(bytes).map_err(|_| KeyFileError::Binary)?;
        let (label, block) = pem_block(text).ok_or(KeyFileError::NotPem)?;
        if label != "PRIVATE KEY" {
            return Err(KeyFileError::OtherPem {
                label: label.to_string(),
            });
        }
        let (_, doc) = SecretDocument::from_pem(block)
            .map_err(|e| KeyFileError::Malformed(format!("bad PEM encoding: {e}")))?;
        let info = PrivateKeyInfo::try_from(doc.as_bytes())
            .map_err(|e| KeyFileError::Malformed(format!("bad PKCS#8 structure: {e}")))?;
        if info.algorithm.oid != ALGORITHM_OID {
            let curve = info
                .algorithm
                .parameters_oid()
                .ok()
                .map(|oid| oid.to_string());
            return Err(KeyFileError::Algorithm {
                oid: info.algorithm.oid.to_string(),
                curve,
            });
        }
        let pair = KeypairBytes::try_from(info)
            .map_err(|e| KeyFileError::Malformed(format!("bad Ed25519 key: {e}")))?;
        let key = ed25519_dalek::SigningKey::from_bytes(&pair.secret_key);
        // Version 2 embeds the public key; one that does not match means a damaged file.
        if let Some(public) = &pair.public_key {
            if public.to_bytes() != key.verifying_key().to_bytes() {
                return Err(KeyFileError::PublicKeyMismatch);
            }
        }
        Ok(Ed25519Signer { key })
    }

    /// Encode as PKCS#8 version 1 PEM (RFC 8410: no embedded public key), the form OpenSSL,
    /// python `cryptography` and most other tools read. The string holds secret material:
    /// write it with 0600 permissions.
    pub fn to_pkcs8_pem(&self) -> Result<String> {
        let pair = KeypairBytes {
            secret_key: self.key.to_bytes(),
            public_key: None,
        };
        let pem = pair
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| Error::SigningKey(format!("cannot encode key: {e}")))?;
        Ok(pem.to_string())
    }
}

/// Why a key file's contents are not a usable Ed25519 key. Each message is a predicate meant
/// to follow the file's name ("key file FILE {message}") and says what was found and what is
/// expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileError {
    /// Binary data, not PEM text.
    #[error("is not a PEM private key: it holds binary data (expected the text form -----BEGIN PRIVATE KEY----- with an Ed25519 key)")]
    Binary,
    /// Text without a PEM block.
    #[error("is not a PEM private key (expected -----BEGIN PRIVATE KEY----- with an Ed25519 key)")]
    NotPem,
    /// A PEM block of another kind (an RSA or EC key in their own formats, a public key, a
    /// certificate, an encrypted key).
    #[error("holds {} (-----BEGIN {label}-----); ota-sign signs with unencrypted Ed25519 keys in PKCS#8 PEM (-----BEGIN PRIVATE KEY-----)", describe_label(label))]
    OtherPem {
        /// The PEM label found.
        label: String,
    },
    /// A PKCS#8 key of another algorithm.
    #[error("holds {} (OID {oid}{}); ota-sign signs with Ed25519 keys (OID 1.3.101.112)", describe_oid(oid), curve.as_deref().map(|c| format!(", curve {}", describe_curve(c))).unwrap_or_default())]
    Algorithm {
        /// The key's algorithm OID.
        oid: String,
        /// The curve OID of an EC key.
        curve: Option<String>,
    },
    /// A PKCS#8 PEM block that does not decode.
    #[error("holds a malformed PKCS#8 private key ({0})")]
    Malformed(String),
    /// A version 2 key whose public key is not the private key's.
    #[error("holds an Ed25519 key whose embedded public key does not belong to its private key (a damaged file)")]
    PublicKeyMismatch,
}

/// The first PEM block of `text`: its label and the text from `-----BEGIN` to the end of
/// the matching `-----END` line (text around it, such as comments, is ignored).
fn pem_block(text: &str) -> Option<(&str, &str)> {
    const BEGIN: &str = "-----BEGIN ";
    let start = text.find(BEGIN)?;
    let after = &text[start + BEGIN.len()..];
    let label = &after[..after.find("-----")?];
    if label.contains('\n') {
        return None;
    }
    let end_marker = format!("-----END {label}-----");
    let end = start + text[start..].find(&end_marker)? + end_marker.len();
    Some((label, &text[start..end]))
}

fn describe_label(label: &str) -> &'static str {
    match label {
        "RSA PRIVATE KEY" => "an RSA private key in PKCS#1 form",
        "EC PRIVATE KEY" => "an EC private key in SEC 1 form",
        "DSA PRIVATE KEY" => "a DSA private key",
        "OPENSSH PRIVATE KEY" => "an OpenSSH private key",
        "ENCRYPTED PRIVATE KEY" => "an encrypted (password-protected) private key",
        "PUBLIC KEY" | "RSA PUBLIC KEY" => "a public key, not a private key",
        "CERTIFICATE" => "a certificate, not a private key",
        _ => "a PEM block of another kind",
    }
}

fn describe_oid(oid: &str) -> &'static str {
    match oid {
        "1.2.840.113549.1.1.1" => "an RSA key",
        "1.2.840.113549.1.1.10" => "an RSA-PSS key",
        "1.2.840.10045.2.1" => "an EC key",
        "1.2.840.10040.4.1" => "a DSA key",
        "1.3.101.113" => "an Ed448 key",
        "1.3.101.110" => "an X25519 key",
        "1.3.101.111" => "an X448 key",
        _ => "a key of another algorithm",
    }
}

fn describe_curve(oid: &str) -> String {
    let name = match oid {
        "1.2.840.10045.3.1.7" => "P-256",
        "1.3.132.0.34" => "P-384",
        "1.3.132.0.35" => "P-521",
        "1.3.132.0.10" => "secp256k1",
        _ => return oid.to_string(),
    };
    format!("{name} {oid}")
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

#[cfg(test)]
mod tests {
    use super::*;
    // The full pkcs8 crate (ed25519-dalek re-exports only part of it).
    use p256::pkcs8::der::asn1::{AnyRef, ObjectIdentifier};
    use p256::pkcs8::der::pem::PemLabel;
    use p256::pkcs8::AlgorithmIdentifierRef;

    fn pkcs8_pem(oid: &str, parameters: Option<AnyRef<'_>>, private_key: &[u8]) -> String {
        let info = PrivateKeyInfo {
            algorithm: AlgorithmIdentifierRef {
                oid: ObjectIdentifier::new_unwrap(oid),
                parameters,
            },
            private_key,
            public_key: None,
        };
        SecretDocument::encode_msg(&info)
            .unwrap()
            .to_pem(PrivateKeyInfo::PEM_LABEL, LineEnding::LF)
            .unwrap()
            .to_string()
    }

    #[test]
    fn keys_are_written_as_pkcs8_v1_and_v2_still_loads() {
        let k = Ed25519Signer::generate();
        let pem = k.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
        let (_, doc) = SecretDocument::from_pem(&pem).unwrap();
        let info = PrivateKeyInfo::try_from(doc.as_bytes()).unwrap();
        assert!(
            info.public_key.is_none(),
            "version 1: no embedded public key"
        );
        // The RFC 8410 example size: 48 bytes of DER.
        assert_eq!(doc.as_bytes().len(), 48);
        let back = Ed25519Signer::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(back.key_id().unwrap(), k.key_id().unwrap());

        // Version 2, with the public key, as earlier versions wrote it.
        let v2 = KeypairBytes {
            secret_key: k.key.to_bytes(),
            public_key: Some(ed25519_dalek::pkcs8::PublicKeyBytes(
                k.key.verifying_key().to_bytes(),
            )),
        }
        .to_pkcs8_pem(LineEnding::LF)
        .unwrap();
        let back = Ed25519Signer::from_pkcs8_pem(&v2).unwrap();
        assert_eq!(back.key_id().unwrap(), k.key_id().unwrap());

        // Version 2 with another key's public key is a damaged file.
        let other = Ed25519Signer::generate();
        let bad = KeypairBytes {
            secret_key: k.key.to_bytes(),
            public_key: Some(ed25519_dalek::pkcs8::PublicKeyBytes(
                other.key.verifying_key().to_bytes(),
            )),
        }
        .to_pkcs8_pem(LineEnding::LF)
        .unwrap();
        assert_eq!(
            Ed25519Signer::from_key_file(bad.as_bytes()).unwrap_err(),
            KeyFileError::PublicKeyMismatch
        );

        // Comments around the block are ignored.
        let commented = format!("# role: root\n{pem}\n# end\n");
        assert!(Ed25519Signer::from_key_file(commented.as_bytes()).is_ok());
    }

    #[test]
    fn other_files_are_described_as_what_they_are() {
        let msg = |bytes: &[u8]| Ed25519Signer::from_key_file(bytes).unwrap_err().to_string();
        for garbage in [&b""[..], b"hello\0world\n", b"not a key at all"] {
            assert_eq!(
                msg(garbage),
                "is not a PEM private key (expected -----BEGIN PRIVATE KEY----- with an Ed25519 key)"
            );
        }
        assert!(msg(&[0x30, 0x82, 0xff, 0xfe, 0x00]).contains("binary data"));

        let rsa = pkcs8_pem("1.2.840.113549.1.1.1", Some(AnyRef::NULL), b"\x30\x00");
        assert_eq!(
            msg(rsa.as_bytes()),
            "holds an RSA key (OID 1.2.840.113549.1.1.1); ota-sign signs with Ed25519 keys (OID 1.3.101.112)"
        );
        let p256 = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
        let ec = pkcs8_pem("1.2.840.10045.2.1", Some(AnyRef::from(&p256)), b"\x30\x00");
        assert!(
            msg(ec.as_bytes()).starts_with(
                "holds an EC key (OID 1.2.840.10045.2.1, curve P-256 1.2.840.10045.3.1.7)"
            ),
            "{}",
            msg(ec.as_bytes())
        );

        let pkcs1 = "-----BEGIN RSA PRIVATE KEY-----\nMAA=\n-----END RSA PRIVATE KEY-----\n";
        assert!(msg(pkcs1.as_bytes()).starts_with(
            "holds an RSA private key in PKCS#1 form (-----BEGIN RSA PRIVATE KEY-----)"
        ));
        let enc =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert!(msg(enc.as_bytes()).contains("encrypted"));

        let broken = "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n";
        assert!(msg(broken.as_bytes()).starts_with("holds a malformed PKCS#8 private key"));
    }
}
