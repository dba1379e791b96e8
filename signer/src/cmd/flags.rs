//! Values of flags several commands share, parsed once with the same errors and hints.
use crate::{Error, Result};
use ota_repo::policy::Period;
use ota_repo::rotate::KeyType;

/// `--expires PERIOD` (`365d`, `12h`), if given.
pub fn period(value: Option<&str>) -> Result<Option<Period>> {
    value
        .map(|s| {
            s.parse::<Period>().map_err(|e| {
                Error::input(
                    format!("invalid --expires {e}"),
                    "write the period as a number and a unit, e.g. --expires 365d (units: s m h d w)",
                )
            })
        })
        .transpose()
}

/// `--key-type ed25519|ecdsa-p256`.
pub fn key_type(value: &str) -> Result<KeyType> {
    value.parse::<KeyType>().map_err(|e| {
        Error::input(
            format!("invalid --key-type: {e}"),
            "pass --key-type ed25519 or --key-type ecdsa-p256",
        )
    })
}
