//! Recipient keys (X25519, as HPKE DHKEM(X25519, HKDF-SHA256) keys), their ids and text form.
//!
//! Text form: a prefix (`otapub1` or `otasec1`) followed by unpadded URL-safe base64 of the
//! 32 key bytes and a 4-byte checksum (the first 4 bytes of sha256(prefix || key)), so a
//! mistyped or truncated key is reported as such instead of silently being another key.

use super::error::{EnvelopeError, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, Serializable};
use rand_core::OsRng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;
use zeroize::Zeroizing;

/// Prefix of a recipient public key in text form.
pub const PUBLIC_KEY_PREFIX: &str = "otapub1";
/// Prefix of a recipient secret key in text form.
pub const SECRET_KEY_PREFIX: &str = "otasec1";
const KEY_LEN: usize = 32;
const CHECKSUM_LEN: usize = 4;

type HpkePublic = <X25519HkdfSha256 as Kem>::PublicKey;
type HpkeSecret = <X25519HkdfSha256 as Kem>::PrivateKey;

/// Short, stable identifier of a recipient key: the first 16 bytes of sha256 of the 32-byte
/// X25519 public key, written as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecipientId(pub [u8; 16]);

impl RecipientId {
    /// Id of a raw X25519 public key.
    pub fn of_public_bytes(public: &[u8; KEY_LEN]) -> Self {
        let digest = Sha256::digest(public);
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        Self(id)
    }
}

impl fmt::Display for RecipientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for RecipientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecipientId({self})")
    }
}

impl FromStr for RecipientId {
    type Err = EnvelopeError;
    fn from_str(s: &str) -> Result<Self> {
        let bytes = hex::decode(s)
            .map_err(|e| EnvelopeError::MalformedSlip(format!("recipient id {s:?}: {e}")))?;
        let id: [u8; 16] = bytes.try_into().map_err(|_| {
            EnvelopeError::MalformedSlip(format!("recipient id {s:?} is not 32 hex digits"))
        })?;
        Ok(Self(id))
    }
}

impl Serialize for RecipientId {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for RecipientId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A device's (or device group's) public encryption key: slips are wrapped to it.
#[derive(Clone, PartialEq, Eq)]
pub struct RecipientPublicKey {
    key: HpkePublic,
    bytes: [u8; KEY_LEN],
}

impl RecipientPublicKey {
    /// Reads a raw 32-byte X25519 public key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let arr: [u8; KEY_LEN] = bytes.try_into().map_err(|_| {
            EnvelopeError::BadKeyText(format!("public key must be 32 bytes, got {}", bytes.len()))
        })?;
        let key = HpkePublic::from_bytes(&arr)
            .map_err(|e| EnvelopeError::BadKeyText(format!("invalid X25519 public key: {e}")))?;
        Ok(Self { key, bytes: arr })
    }

    /// The raw 32 key bytes.
    pub fn to_bytes(&self) -> [u8; KEY_LEN] {
        self.bytes
    }

    /// The key's short id (see [`RecipientId`]).
    pub fn id(&self) -> RecipientId {
        RecipientId::of_public_bytes(&self.bytes)
    }

    /// Text form `otapub1…`.
    pub fn to_text(&self) -> String {
        encode_text(PUBLIC_KEY_PREFIX, &self.bytes)
    }

    /// Reads the text form `otapub1…`.
    pub fn from_text(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.starts_with(SECRET_KEY_PREFIX) {
            return Err(EnvelopeError::BadKeyText(format!(
                "this is a secret key ({SECRET_KEY_PREFIX}…), expected a public key \
                 ({PUBLIC_KEY_PREFIX}…); keep the secret key on the device"
            )));
        }
        let bytes = decode_text(PUBLIC_KEY_PREFIX, text)?;
        Self::from_bytes(&bytes[..])
    }

    pub(crate) fn hpke(&self) -> &HpkePublic {
        &self.key
    }
}

impl fmt::Display for RecipientPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl fmt::Debug for RecipientPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecipientPublicKey({})", self.id())
    }
}

impl FromStr for RecipientPublicKey {
    type Err = EnvelopeError;
    fn from_str(s: &str) -> Result<Self> {
        Self::from_text(s)
    }
}

impl Serialize for RecipientPublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_text())
    }
}

impl<'de> Deserialize<'de> for RecipientPublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::from_text(&s).map_err(serde::de::Error::custom)
    }
}

/// A device's secret decryption key. Wiped on drop (the underlying X25519 scalar zeroizes
/// itself); `Debug` prints only the recipient id.
#[derive(Clone)]
pub struct RecipientSecretKey {
    key: HpkeSecret,
    public: RecipientPublicKey,
}

impl RecipientSecretKey {
    /// Generates a fresh key pair from the operating system's random generator.
    pub fn generate() -> Self {
        let (key, _) = X25519HkdfSha256::gen_keypair(&mut OsRng);
        Self::from_hpke(key)
    }

    fn from_hpke(key: HpkeSecret) -> Self {
        let pk = X25519HkdfSha256::sk_to_pk(&key);
        let mut bytes = [0u8; KEY_LEN];
        bytes.copy_from_slice(&pk.to_bytes());
        Self {
            key,
            public: RecipientPublicKey { key: pk, bytes },
        }
    }

    /// Reads a raw 32-byte X25519 secret key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != KEY_LEN {
            return Err(EnvelopeError::BadKeyText(format!(
                "secret key must be 32 bytes, got {}",
                bytes.len()
            )));
        }
        let key = HpkeSecret::from_bytes(bytes)
            .map_err(|e| EnvelopeError::BadKeyText(format!("invalid X25519 secret key: {e}")))?;
        Ok(Self::from_hpke(key))
    }

    /// The matching public key.
    pub fn public_key(&self) -> &RecipientPublicKey {
        &self.public
    }

    /// The id of the matching public key.
    pub fn id(&self) -> RecipientId {
        self.public.id()
    }

    /// Text form `otasec1…`, in a buffer wiped on drop. Store it in a file only readable by
    /// the device's update agent.
    pub fn to_text(&self) -> Zeroizing<String> {
        let bytes = Zeroizing::new(self.key.to_bytes());
        Zeroizing::new(encode_text(SECRET_KEY_PREFIX, &bytes))
    }

    /// Reads the text form `otasec1…`.
    pub fn from_text(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.starts_with(PUBLIC_KEY_PREFIX) {
            return Err(EnvelopeError::BadKeyText(format!(
                "this is a public key ({PUBLIC_KEY_PREFIX}…), expected a secret key \
                 ({SECRET_KEY_PREFIX}…)"
            )));
        }
        let bytes = decode_text(SECRET_KEY_PREFIX, text)?;
        Self::from_bytes(&bytes[..])
    }

    pub(crate) fn hpke(&self) -> &HpkeSecret {
        &self.key
    }
}

impl fmt::Debug for RecipientSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecipientSecretKey({}, <redacted>)", self.id())
    }
}

fn checksum(prefix: &str, key: &[u8]) -> [u8; CHECKSUM_LEN] {
    let digest = Sha256::new()
        .chain_update(prefix.as_bytes())
        .chain_update(key)
        .finalize();
    let mut sum = [0u8; CHECKSUM_LEN];
    sum.copy_from_slice(&digest[..CHECKSUM_LEN]);
    sum
}

fn encode_text(prefix: &str, key: &[u8]) -> String {
    let mut raw = Zeroizing::new(Vec::with_capacity(KEY_LEN + CHECKSUM_LEN));
    raw.extend_from_slice(key);
    raw.extend_from_slice(&checksum(prefix, key));
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(&raw[..]))
}

fn decode_text(prefix: &str, text: &str) -> Result<Zeroizing<Vec<u8>>> {
    let body = text.strip_prefix(prefix).ok_or_else(|| {
        EnvelopeError::BadKeyText(format!("expected text starting with {prefix:?}"))
    })?;
    let raw = Zeroizing::new(URL_SAFE_NO_PAD.decode(body).map_err(|e| {
        EnvelopeError::BadKeyText(format!(
            "after {prefix:?}: not unpadded URL-safe base64 ({e})"
        ))
    })?);
    if raw.len() != KEY_LEN + CHECKSUM_LEN {
        return Err(EnvelopeError::BadKeyText(format!(
            "decodes to {} bytes, expected {} (key truncated or extended?)",
            raw.len(),
            KEY_LEN + CHECKSUM_LEN
        )));
    }
    let (key, sum) = raw.split_at(KEY_LEN);
    if checksum(prefix, key) != sum {
        return Err(EnvelopeError::BadKeyText(
            "checksum mismatch: the key text was mistyped or altered".into(),
        ));
    }
    Ok(Zeroizing::new(key.to_vec()))
}

/// Longest recipient (device or group) name, in bytes.
pub const MAX_RECIPIENT_NAME_LEN: usize = 64;

/// Whether `name` is a valid device or group name: 1 to [`MAX_RECIPIENT_NAME_LEN`] ASCII
/// letters, digits, `.`, `_`, `-`, starting with a letter or digit. The signer and the device
/// share this rule because a group name becomes a key file name on both sides.
///
/// ```
/// use ota_formats::envelope::is_valid_recipient_name;
/// assert!(is_valid_recipient_name("board-a.v2"));
/// assert!(!is_valid_recipient_name("../etc"));
/// ```
pub fn is_valid_recipient_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_RECIPIENT_NAME_LEN
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}
