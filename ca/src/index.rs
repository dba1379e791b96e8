//! `index.json`: the record of every certificate the CA issued, one JSON array.
//!
//! It is the CA's memory: the CRL is built from it, `issue` checks it for a device that
//! already has a valid certificate, `list` shows it. It is replaced atomically, and only while
//! the CA lock is held, so concurrent runs never lose each other's entries.
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// File name of the index in the CA directory.
pub const INDEX_FILE: &str = "index.json";

/// Cap on the size of `index.json` read back: about half a million entries.
const INDEX_LIMIT: u64 = 256 << 20;

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A device's client-authentication certificate (`issue`).
    Device,
    /// A server's TLS certificate (`issue-server`).
    Server,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Device => "device",
            Kind::Server => "server",
        })
    }
}

/// The state of a certificate at some time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Not revoked and not expired.
    Valid,
    /// Past its notAfter (and not revoked).
    Expired,
    /// Revoked (whether or not it has expired since).
    Revoked,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Valid => "valid",
            State::Expired => "expired",
            State::Revoked => "revoked",
        })
    }
}

/// Why a certificate was revoked (RFC 5280 CRLReason). `certificateHold` and `removeFromCRL`
/// are left out on purpose: this CA never un-revokes, and the CA-level reasons do not apply
/// to the leaf certificates it issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Reason {
    /// No reason given (left out of the CRL entry, as RFC 5280 asks).
    Unspecified,
    /// The device's or server's private key is (or may be) known to someone else.
    KeyCompromise,
    /// The subject changed owner or organisation.
    AffiliationChanged,
    /// Replaced by a newer certificate (e.g. after `issue --replace`).
    Superseded,
    /// The device or server is decommissioned.
    CessationOfOperation,
    /// The subject may no longer use the certificate.
    PrivilegeWithdrawn,
}

impl Reason {
    /// The accepted names, as written in `index.json` and on the command line.
    pub const NAMES: [&'static str; 6] = [
        "unspecified",
        "keyCompromise",
        "affiliationChanged",
        "superseded",
        "cessationOfOperation",
        "privilegeWithdrawn",
    ];

    const ALL: [Reason; 6] = [
        Reason::Unspecified,
        Reason::KeyCompromise,
        Reason::AffiliationChanged,
        Reason::Superseded,
        Reason::CessationOfOperation,
        Reason::PrivilegeWithdrawn,
    ];

    /// The name, as in [`Reason::NAMES`].
    pub fn name(self) -> &'static str {
        match self {
            Reason::Unspecified => "unspecified",
            Reason::KeyCompromise => "keyCompromise",
            Reason::AffiliationChanged => "affiliationChanged",
            Reason::Superseded => "superseded",
            Reason::CessationOfOperation => "cessationOfOperation",
            Reason::PrivilegeWithdrawn => "privilegeWithdrawn",
        }
    }

    pub(crate) fn to_rcgen(self) -> rcgen::RevocationReason {
        match self {
            Reason::Unspecified => rcgen::RevocationReason::Unspecified,
            Reason::KeyCompromise => rcgen::RevocationReason::KeyCompromise,
            Reason::AffiliationChanged => rcgen::RevocationReason::AffiliationChanged,
            Reason::Superseded => rcgen::RevocationReason::Superseded,
            Reason::CessationOfOperation => rcgen::RevocationReason::CessationOfOperation,
            Reason::PrivilegeWithdrawn => rcgen::RevocationReason::PrivilegeWithdrawn,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Reason {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Reason::ALL
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                Error::input(
                    format!("unknown revocation reason {s:?}"),
                    format!("use one of: {}", Reason::NAMES.join(", ")),
                )
            })
    }
}

/// One issued certificate, as recorded in `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Serial number, lower-case hex without separators (as in `issued/<SERIAL>.pem`).
    pub serial: String,
    /// Device or server certificate.
    pub kind: Kind,
    /// The subject's common name: the device id, or the server's name.
    pub subject_cn: String,
    /// Subject alternative names, as `DNS:...`, `IP:...`, `URI:...` or `email:...`.
    pub sans: Vec<String>,
    /// Start of validity.
    pub not_before: DateTime<Utc>,
    /// End of validity.
    pub not_after: DateTime<Utc>,
    /// SHA-256 of the certificate's DER, lower-case hex.
    pub sha256: String,
    /// When it was revoked, or `null`.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Why it was revoked, or `null` while it is not.
    pub reason: Option<Reason>,
}

impl Entry {
    /// The state at `now`: revoked wins over expired.
    pub fn state(&self, now: DateTime<Utc>) -> State {
        if self.revoked_at.is_some() {
            State::Revoked
        } else if self.not_after <= now {
            State::Expired
        } else {
            State::Valid
        }
    }
}

/// Read `index.json` of the CA in `dir`.
pub(crate) fn load(dir: &Path) -> Result<Vec<Entry>> {
    let path = dir.join(INDEX_FILE);
    let bytes = ota_fs::user_file::read(&path, INDEX_LIMIT).map_err(Error::ca_file)?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::ca(
            format!("{} is corrupt: {e}", path.display()),
            "restore index.json from a backup; issued/ holds every certificate issued, should it have to be rebuilt",
        )
    })
}

/// Replace `index.json` atomically. Call only while holding the CA lock.
pub(crate) fn save(dir: &Path, entries: &[Entry]) -> Result<()> {
    let path = dir.join(INDEX_FILE);
    let mut text = serde_json::to_string_pretty(entries)
        .map_err(|e| Error::write(&path, format!("cannot encode the index: {e}")))?;
    text.push('\n');
    ota_fs::atomic::replace(&path, text.as_bytes(), ota_fs::mode::PUBLIC_FILE)
        .map_err(|e| Error::write(&path, e))
}

/// Normalise a serial typed by a person: upper or lower case, with or without `:`
/// separators or a `0x` prefix, with or without leading zeros.
pub(crate) fn normalize_serial(s: &str) -> Result<String> {
    let t = s.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    let hex: String = t.chars().filter(|c| *c != ':').collect();
    if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::input(
            format!("{s:?} is not a hexadecimal serial number"),
            "give the serial as `ota-ca list` shows it (or as `openssl x509 -noout -serial` prints it)",
        ));
    }
    let hex = hex.to_ascii_lowercase();
    let trimmed = hex.trim_start_matches('0');
    Ok(if trimmed.is_empty() { "0" } else { trimmed }.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_normalised() {
        assert_eq!(normalize_serial("4A:0b:FF").unwrap(), "4a0bff");
        assert_eq!(normalize_serial("0x004a").unwrap(), "4a");
        assert!(normalize_serial("xyz").is_err());
        assert!(normalize_serial("").is_err());
    }

    #[test]
    fn reasons_round_trip() {
        for name in Reason::NAMES {
            let r: Reason = name.parse().unwrap();
            assert_eq!(r.name(), name);
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{name}\""));
        }
        assert!("certificateHold".parse::<Reason>().is_err());
    }
}
