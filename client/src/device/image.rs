//! The signed facts an installer may act on. A [`VerifiedImage`] is made only from a verified
//! target's signed `custom.ota` (by [`super::Candidate`]), so no code outside this crate can
//! hand an installer an image description it chose itself; and [`Encryption`] is the typed
//! `custom.ota.encryption`, parsed once where the target is chosen.
use crate::VerifiedTarget;
use ota_formats::envelope::EncryptionInfo;
use ota_formats::target_meta::{ImageInfo, OtaTarget};
use ota_formats::version::Version;

/// The image a release installs: name, version, length and sha256, as signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedImage {
    name: String,
    version: Version,
    target: String,
    info: ImageInfo,
}

impl VerifiedImage {
    /// Only the verification path builds one, from a verified target's signed metadata.
    pub(super) fn signed(target: &VerifiedTarget, ota: &OtaTarget, version: &Version) -> Self {
        VerifiedImage {
            name: ota.name.clone(),
            version: version.clone(),
            target: target.path().to_string(),
            info: ota.image.clone(),
        }
    }

    /// Image name (`custom.ota.name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Version (`custom.ota.version`).
    pub fn version(&self) -> &Version {
        &self.version
    }

    /// The target path the image comes from.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Signed length in bytes.
    pub fn length(&self) -> u64 {
        self.info.length
    }

    /// Signed sha256, lower-case hex.
    pub fn sha256(&self) -> &str {
        &self.info.sha256
    }

    /// The signed `custom.ota.image` object.
    pub fn info(&self) -> &ImageInfo {
        &self.info
    }
}

/// A target's `custom.ota.encryption`, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encryption {
    /// Not encrypted.
    None,
    /// Encrypted with these parameters.
    Sealed(Box<EncryptionInfo>),
    /// Present but not understood: installing it is refused, naming this reason.
    Malformed(String),
}

impl Encryption {
    /// Parse `ota.encryption` once.
    pub(super) fn of(ota: &OtaTarget) -> Self {
        match &ota.encryption {
            None => Encryption::None,
            Some(v) => match serde_json::from_value::<EncryptionInfo>(v.clone()) {
                Ok(info) => Encryption::Sealed(Box::new(info)),
                Err(e) => Encryption::Malformed(format!("custom.ota.encryption: {e}")),
            },
        }
    }

    /// Whether the target is encrypted (well-formed or not).
    pub fn is_encrypted(&self) -> bool {
        !matches!(self, Encryption::None)
    }
}
