use super::RoleType;
use crate::crypto::{verify_threshold, KeySource, Signature, Signer};
use crate::{cjson, Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A metadata file as received: the raw `signed` value and the signatures over it.
#[derive(Debug, Clone, Deserialize)]
pub struct RawMetadata {
    /// The `signed` object exactly as received (unknown fields included).
    pub signed: Value,
    /// The `signatures` list.
    pub signatures: Vec<Signature>,
}

impl RawMetadata {
    /// Parse the envelope of a metadata file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| Error::malformed("metadata envelope", e))
    }

    /// The `_type` of the signed part, if present.
    pub fn role_type(&self) -> Option<&str> {
        self.signed.get("_type").and_then(Value::as_str)
    }

    /// Canonical JSON of the raw `signed` value: the bytes signatures cover.
    pub fn canonical_signed(&self) -> Result<Vec<u8>> {
        cjson::value_to_vec(&self.signed)
    }

    /// Parse the signed part as role `T`, checking `_type`, `spec_version` and role rules.
    pub fn parse<T: RoleType>(&self) -> Result<T> {
        match self.role_type() {
            Some(t) if t == T::TYPE => {}
            found => {
                return Err(Error::WrongType {
                    expected: T::TYPE.into(),
                    found: found.unwrap_or("(none)").into(),
                })
            }
        }
        // Deserialised from a reference: the tree is not copied first.
        checked(T::deserialize(&self.signed))
    }

    /// Verify that `threshold` of `keyids` (looked up in `keys`) signed this metadata.
    pub fn verify(
        &self,
        role: &str,
        keys: &dyn KeySource,
        keyids: &[String],
        threshold: u64,
    ) -> Result<()> {
        let msg = self.canonical_signed()?;
        verify_threshold(role, &msg, &self.signatures, keys, keyids, threshold)
    }
}

/// A metadata file as received, borrowed from its bytes: the `signed` part as text, its
/// canonical form and the signatures. What verification needs, found in one pass over the
/// bytes with no JSON value tree; the role is then parsed from the text directly.
///
/// ```
/// use ota_formats::metadata::RawEnvelope;
/// let file = br#"{"signatures": [], "signed": {"b": 1, "a": [true]}}"#;
/// let envelope = RawEnvelope::from_bytes(file).unwrap();
/// assert_eq!(envelope.canonical_signed(), br#"{"a":[true],"b":1}"#);
/// ```
#[derive(Debug)]
pub struct RawEnvelope<'a> {
    signed: &'a str,
    canonical: Vec<u8>,
    /// The `signatures` list.
    pub signatures: Vec<Signature>,
}

impl<'a> RawEnvelope<'a> {
    /// Split a metadata file into its `signed` text (with its canonical form) and signatures.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self> {
        let envelope = cjson::envelope(bytes)?;
        let signatures = serde_json::from_slice(&bytes[envelope.signatures])
            .map_err(|e| Error::malformed("metadata signatures", e))?;
        // The spans are of text that was just checked as UTF-8 JSON.
        let signed = std::str::from_utf8(&bytes[envelope.signed])
            .map_err(|e| Error::malformed("metadata envelope", e))?;
        Ok(RawEnvelope {
            signed,
            canonical: envelope.canonical_signed,
            signatures,
        })
    }

    /// Canonical JSON of the `signed` part as received: the bytes signatures cover.
    pub fn canonical_signed(&self) -> &[u8] {
        &self.canonical
    }

    /// Give up the envelope, keeping the canonical bytes of its `signed` part.
    pub fn into_canonical_signed(self) -> Vec<u8> {
        self.canonical
    }

    /// Parse the signed part as role `T`, checking `_type`, `spec_version` and role rules.
    pub fn parse<T: RoleType>(&self) -> Result<T> {
        let text = self.signed;
        match serde_json::from_str::<T>(text) {
            Ok(parsed) => checked(Ok(parsed)),
            Err(e) => {
                // Name a wrong `_type` as such rather than as whatever field failed first.
                let found = serde_json::from_str::<TypeOnly>(text)
                    .ok()
                    .and_then(|t| t.type_);
                match found {
                    Some(found) if found != T::TYPE => Err(Error::WrongType {
                        expected: T::TYPE.into(),
                        found,
                    }),
                    _ => checked(Err(e)),
                }
            }
        }
    }
}

/// The `_type` field alone.
#[derive(Deserialize)]
struct TypeOnly {
    #[serde(rename = "_type")]
    type_: Option<String>,
}

/// The checks every parsed role goes through, whichever way it was parsed.
fn checked<T: RoleType>(parsed: serde_json::Result<T>) -> Result<T> {
    let parsed = parsed.map_err(|e| Error::malformed(format!("{} metadata", T::TYPE), e))?;
    super::common::check_common(T::TYPE, parsed.version(), parsed.spec_version())?;
    parsed.validate()?;
    Ok(parsed)
}

/// A typed role with its signatures: what builders produce and tools write.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Signed<T> {
    /// The signed role.
    pub signed: T,
    /// Signatures over the canonical JSON of `signed`.
    pub signatures: Vec<Signature>,
}

impl<T: RoleType> Signed<T> {
    /// Sign `signed` with each of `keys`.
    pub fn sign(signed: T, keys: &[&dyn Signer]) -> Result<Self> {
        let mut s = Signed {
            signed,
            signatures: Vec::new(),
        };
        for k in keys {
            s.add_signature(*k)?;
        }
        Ok(s)
    }

    /// Add (or replace) the signature of one key, e.g. for threshold signing on separate machines.
    pub fn add_signature(&mut self, key: &dyn Signer) -> Result<()> {
        let msg = cjson::to_vec(&self.signed)?;
        let sig = key.sign(&msg)?;
        self.signatures.retain(|s| s.keyid != sig.keyid);
        self.signatures.push(sig);
        Ok(())
    }

    /// The file bytes: pretty JSON (signatures cover the canonical form, not this layout).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut v = serde_json::to_vec_pretty(self).map_err(|e| Error::Canonical(e.to_string()))?;
        v.push(b'\n');
        Ok(v)
    }

    /// Parse a file we trust the shape of (our own repository), without verifying signatures.
    pub fn from_bytes_unverified(bytes: &[u8]) -> Result<Self> {
        let raw = RawMetadata::from_bytes(bytes)?;
        Ok(Signed {
            signed: raw.parse()?,
            signatures: raw.signatures,
        })
    }
}
