//! The [`Signer`] of a key on a PKCS#11 token.
use super::{call_failed, describe, KeySourceError, Pkcs11Uri};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use ota_formats::crypto::{Key, Signature, Signer};
use p256::pkcs8::EncodePublicKey;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Mutex;

/// `CKA_EC_PARAMS` of P-256: the DER OID 1.2.840.10045.3.1.7 (prime256v1).
pub const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// `CKA_EC_PARAMS` of Ed25519 as RFC 8410's OID 1.3.101.112.
const ED25519_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
/// The same as the GnuPG OID 1.3.6.1.4.1.11591.15.1 (some tools write it).
const ED25519_GNU_OID: &[u8] = &[
    0x06, 0x09, 0x2b, 0x06, 0x01, 0x04, 0x01, 0xda, 0x47, 0x0f, 0x01,
];
/// The same as the PrintableString "edwards25519" (PKCS#11 3.0, as pkcs11-tool writes it).
const ED25519_NAME: &[u8] = b"\x13\x0cedwards25519";

/// Whether `CKA_EC_PARAMS` names Ed25519.
pub fn is_ed25519_params(params: &[u8]) -> bool {
    [ED25519_OID, ED25519_GNU_OID, ED25519_NAME].contains(&params)
}

/// `CKA_EC_PARAMS` in words, for messages.
pub fn describe_params(params: &[u8]) -> String {
    use p256::pkcs8::der::asn1::{ObjectIdentifier, PrintableStringRef};
    use p256::pkcs8::der::Decode;
    if params.is_empty() {
        return "no CKA_EC_PARAMS".into();
    }
    if let Ok(oid) = ObjectIdentifier::from_der(params) {
        let name = match oid.to_string().as_str() {
            "1.3.132.0.34" => " (P-384)",
            "1.3.132.0.35" => " (P-521)",
            "1.3.132.0.10" => " (secp256k1)",
            "1.3.101.113" => " (Ed448)",
            _ => "",
        };
        return format!("curve OID {oid}{name}");
    }
    if let Ok(s) = PrintableStringRef::from_der(params) {
        return format!("curve {:?}", s.as_str());
    }
    format!("CKA_EC_PARAMS {}", super::hex_id(params))
}

/// What a token key signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pkcs11Algorithm {
    /// Ed25519 (`CKM_EDDSA`), TUF scheme `ed25519`.
    Ed25519,
    /// ECDSA on P-256 over SHA-256 (`CKM_ECDSA`), TUF scheme `ecdsa-sha2-nistp256`.
    EcdsaP256,
}

/// A private key on a PKCS#11 token, signing in a logged-in session of its own.
pub struct Pkcs11Signer {
    session: Mutex<Session>,
    key: ObjectHandle,
    algorithm: Pkcs11Algorithm,
    public: Key,
    keyid: String,
    name: String,
}

impl std::fmt::Debug for Pkcs11Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Signer")
            .field("key", &self.name)
            .field("algorithm", &self.algorithm)
            .field("public", &self.public.keyval.public)
            .finish()
    }
}

/// The point inside `CKA_EC_POINT`: a DER OCTET STRING (as PKCS#11 specifies) or, from some
/// tokens, the raw point.
fn unwrap_point(raw: &[u8], expected_len: usize) -> Option<&[u8]> {
    match raw {
        [0x04, len, rest @ ..] if usize::from(*len) == rest.len() && rest.len() == expected_len => {
            Some(rest)
        }
        _ if raw.len() == expected_len => Some(raw),
        _ => None,
    }
}

impl Pkcs11Signer {
    /// The signer of the private key `key` found in `session` for `uri`.
    pub(super) fn new(
        session: Session,
        key: ObjectHandle,
        module: &Path,
        uri: &Pkcs11Uri,
    ) -> Result<Self, KeySourceError> {
        let name = uri.object_name();
        let algorithm = super::algorithm(&session, module, key, &name)?;
        let point = public_point(&session, module, key, &name)?;
        let bad = |reason: String| KeySourceError::PublicKey {
            object: name.clone(),
            reason,
        };
        let public = match algorithm {
            Pkcs11Algorithm::Ed25519 => {
                let p: [u8; 32] = unwrap_point(&point, 32)
                    .and_then(|p| p.try_into().ok())
                    .ok_or_else(|| {
                        bad(format!(
                            "CKA_EC_POINT of {} bytes is not an Ed25519 key",
                            point.len()
                        ))
                    })?;
                Key::ed25519(&p)
            }
            Pkcs11Algorithm::EcdsaP256 => {
                let p = unwrap_point(&point, 65).ok_or_else(|| {
                    bad(format!(
                        "CKA_EC_POINT of {} bytes is not an uncompressed P-256 point",
                        point.len()
                    ))
                })?;
                let pk = p256::PublicKey::from_sec1_bytes(p)
                    .map_err(|e| bad(format!("CKA_EC_POINT is not a P-256 point: {e}")))?;
                let spki = pk
                    .to_public_key_der()
                    .map_err(|e| bad(format!("cannot encode the public key: {e}")))?;
                Key::ecdsa_p256_from_spki_der(spki.as_bytes()).map_err(|e| bad(e.to_string()))?
            }
        };
        let keyid = public.key_id().map_err(|e| bad(e.to_string()))?;
        Ok(Pkcs11Signer {
            session: Mutex::new(session),
            key,
            algorithm,
            public,
            keyid,
            name: uri.to_string(),
        })
    }

    /// What the key signs with.
    pub fn algorithm(&self) -> Pkcs11Algorithm {
        self.algorithm
    }

    /// The raw signature of `msg` as the token returns it.
    fn sign_raw(&self, msg: &[u8]) -> Result<Vec<u8>, cryptoki::error::Error> {
        let session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        match self.algorithm {
            Pkcs11Algorithm::Ed25519 => {
                let mech = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
                session.sign(&mech, self.key, msg)
            }
            Pkcs11Algorithm::EcdsaP256 => {
                let digest = Sha256::digest(msg);
                session.sign(&Mechanism::Ecdsa, self.key, &digest)
            }
        }
    }
}

/// `CKA_EC_POINT` of the public key object with the private key's id (or label), or of the
/// private key itself where the token keeps it there.
fn public_point(
    session: &Session,
    module: &Path,
    key: ObjectHandle,
    name: &str,
) -> Result<Vec<u8>, KeySourceError> {
    let failed = call_failed(module, "C_GetAttributeValue");
    let attrs = session
        .get_attributes(
            key,
            &[
                AttributeType::Id,
                AttributeType::Label,
                AttributeType::EcPoint,
            ],
        )
        .map_err(&failed)?;
    let mut template = vec![Attribute::Class(ObjectClass::PUBLIC_KEY)];
    for a in attrs {
        match a {
            Attribute::EcPoint(p) if !p.is_empty() => return Ok(p),
            Attribute::Id(id) if !id.is_empty() => template.push(Attribute::Id(id)),
            Attribute::Label(l) if !l.is_empty() => template.push(Attribute::Label(l)),
            _ => {}
        }
    }
    let found = session
        .find_objects(&template)
        .map_err(call_failed(module, "C_FindObjects"))?;
    let Some(public) = found.first() else {
        return Err(KeySourceError::PublicKey {
            object: name.to_string(),
            reason: "the token has no public key object with its id and label (CKA_EC_POINT is needed to list the key in root.json)".into(),
        });
    };
    let attrs = session
        .get_attributes(*public, &[AttributeType::EcPoint])
        .map_err(&failed)?;
    attrs
        .into_iter()
        .find_map(|a| match a {
            Attribute::EcPoint(p) => Some(p),
            _ => None,
        })
        .ok_or_else(|| KeySourceError::PublicKey {
            object: name.to_string(),
            reason: "its public key object has no CKA_EC_POINT".into(),
        })
}

impl Signer for Pkcs11Signer {
    fn public_key(&self) -> Key {
        self.public.clone()
    }

    fn key_id(&self) -> ota_formats::Result<String> {
        Ok(self.keyid.clone())
    }

    fn sign(&self, msg: &[u8]) -> ota_formats::Result<Signature> {
        let fail = |reason: String| {
            ota_formats::Error::SigningKey(format!("PKCS#11 key {}: {reason}", self.name))
        };
        let raw = self
            .sign_raw(msg)
            .map_err(|e| fail(format!("C_Sign failed: {}", describe(&e))))?;
        let sig = match self.algorithm {
            Pkcs11Algorithm::Ed25519 => {
                if raw.len() != 64 {
                    return Err(fail(format!("an Ed25519 signature of {} bytes", raw.len())));
                }
                raw
            }
            Pkcs11Algorithm::EcdsaP256 => {
                // PKCS#11 returns r || s; TUF lists ECDSA signatures DER-encoded.
                let s = p256::ecdsa::Signature::from_slice(&raw)
                    .map_err(|e| fail(format!("not a P-256 signature r||s: {e}")))?;
                s.to_der().as_bytes().to_vec()
            }
        };
        Ok(Signature {
            keyid: self.keyid.clone(),
            sig: hex::encode(sig),
            extra: serde_json::Map::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_and_params_are_read_in_their_encodings() {
        let raw = [7u8; 32];
        let mut der = vec![0x04, 32];
        der.extend_from_slice(&raw);
        assert_eq!(unwrap_point(&der, 32), Some(&raw[..]));
        assert_eq!(unwrap_point(&raw, 32), Some(&raw[..]));
        assert_eq!(unwrap_point(&der[..20], 32), None);
        assert!(is_ed25519_params(ED25519_OID));
        assert!(is_ed25519_params(ED25519_NAME));
        assert!(is_ed25519_params(ED25519_GNU_OID));
        assert!(!is_ed25519_params(P256_PARAMS));
        assert_eq!(
            describe_params(&[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22]),
            "curve OID 1.3.132.0.34 (P-384)"
        );
        assert_eq!(
            describe_params(b"\x13\x0cedwards448xx"),
            "curve \"edwards448xx\""
        );
    }
}
