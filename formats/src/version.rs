//! The one version order of the toolkit: semantic-versioning 2.0 **precedence**.
//!
//! Build metadata (`+...`) does not order releases: `1.2.0+a` and `1.2.0+b` are the same
//! version for every decision (newer than installed, downgrade refused, delta base), in the
//! signer and on the device alike. Pre-releases come before their release
//! (`1.0.0-rc.1 < 1.0.0`).
//!
//! ```
//! use ota_formats::version::Version;
//! let a: Version = "1.10.0".parse().unwrap();
//! let b: Version = "1.9.0".parse().unwrap();
//! assert!(a > b);
//! assert_eq!("1.0.0+build.1".parse::<Version>().unwrap(), "1.0.0+build.2".parse().unwrap());
//! assert!("1.0.0-rc.1".parse::<Version>().unwrap() < "1.0.0".parse().unwrap());
//! assert!("1.0".parse::<Version>().is_err());
//! ```
use crate::{Error, Result};
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A release version, ordered by semantic-versioning precedence. Displays as written.
#[derive(Debug, Clone)]
pub struct Version {
    parsed: semver::Version,
    text: String,
}

impl Version {
    /// Parse `s` (the syntax of [`crate::target_meta::validate_version`]).
    pub fn parse(s: &str) -> Result<Self> {
        crate::target_meta::validate_version(s)?;
        let parsed = semver::Version::parse(s).map_err(|e| {
            Error::invalid("version", format!("{s:?} is not a semantic version: {e}"))
        })?;
        Ok(Version {
            parsed,
            text: s.to_string(),
        })
    }

    /// The version as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether this is a pre-release (`1.0.0-rc.1`).
    pub fn is_prerelease(&self) -> bool {
        !self.parsed.pre.is_empty()
    }
}

impl FromStr for Version {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Version::parse(s)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.parsed.cmp_precedence(&other.parsed)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn precedence_not_strings_and_build_metadata_ignored() {
        let mut vs = [
            v("1.10.0"),
            v("1.9.0"),
            v("1.10.0-rc.1"),
            v("1.10.0-alpha"),
            v("2.0.0+b"),
        ];
        vs.sort();
        let order: Vec<&str> = vs.iter().map(Version::as_str).collect();
        assert_eq!(
            order,
            ["1.9.0", "1.10.0-alpha", "1.10.0-rc.1", "1.10.0", "2.0.0+b"]
        );
        assert_eq!(v("2.0.0+a"), v("2.0.0+b"));
        assert_eq!(v("2.0.0+a").cmp(&v("2.0.0")), Ordering::Equal);
        assert!(v("1.0.0-rc.1").is_prerelease());
        for bad in ["", "1", "1.0", "01.0.0", "1.0.0.0", "v1.0.0", "1.0.0-"] {
            assert!(Version::parse(bad).is_err(), "{bad}");
        }
    }
}
