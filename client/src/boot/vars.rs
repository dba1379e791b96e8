//! The four boot variables, their wire format, and the boot loader's rule.
use super::error::{BootError, ParseError};
use std::fmt;
use std::str::FromStr;

/// Name of the variable holding the slot to boot (`a` or `b`).
pub const OTA_SLOT: &str = "ota_slot";
/// Name of the variable that is `1` while a trial boot of `ota_slot` is pending.
pub const UPGRADE_AVAILABLE: &str = "upgrade_available";
/// Name of the variable counting trial boots.
pub const BOOTCOUNT: &str = "bootcount";
/// Name of the variable limiting trial boots.
pub const BOOTLIMIT: &str = "bootlimit";
/// The four variable names, in the order they are written.
pub const NAMES: [&str; 4] = [OTA_SLOT, UPGRADE_AVAILABLE, BOOTCOUNT, BOOTLIMIT];
/// The largest `bootlimit`: the shipped boot scripts count in single decimal digits
/// (U-Boot's `setexpr` is hexadecimal and GRUB has no arithmetic).
pub const MAX_BOOTLIMIT: u32 = 9;

/// One of the two A/B slots.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    /// Slot `a`.
    A,
    /// Slot `b`.
    B,
}

impl Slot {
    /// The other slot.
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    /// `"a"` or `"b"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Slot {
    type Err = ParseError;

    /// Exactly `a` or `b`.
    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s {
            "a" => Ok(Slot::A),
            "b" => Ok(Slot::B),
            _ => Err(ParseError {
                input: s.to_string(),
                expected: "a slot (a or b)",
            }),
        }
    }
}

/// The boot variables, the ones U-Boot's bootcount feature (`CONFIG_BOOTCOUNT_LIMIT`) uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootVars {
    /// The slot the boot loader boots.
    pub ota_slot: Slot,
    /// A trial boot of `ota_slot` is pending (`1` on the wire), until `mark-good` clears it.
    pub upgrade_available: bool,
    /// Trial boots so far.
    pub bootcount: u32,
    /// Trial boots allowed before the boot loader falls back (1 to [`MAX_BOOTLIMIT`]).
    pub bootlimit: u32,
}

impl Default for BootVars {
    /// `ota_slot=a`, `upgrade_available=0`, `bootcount=0`, `bootlimit=3`.
    fn default() -> Self {
        BootVars {
            ota_slot: Slot::A,
            upgrade_available: false,
            bootcount: 0,
            bootlimit: 3,
        }
    }
}

impl BootVars {
    /// What the shipped boot scripts (`client/boot/boot.cmd`, `client/boot/grub.cfg`) do at
    /// power-on; returns the slot booted and the variables as the boot loader leaves them.
    ///
    /// When `upgrade_available` is set, the attempt is counted: if `bootcount < bootlimit`,
    /// `bootcount` goes up by one and `ota_slot` is booted (a trial boot); otherwise (the
    /// incremented count would exceed `bootlimit`) the boot loader falls back: `ota_slot`
    /// becomes the other slot, `upgrade_available=0`, `bootcount=0`, and that slot is booted.
    /// Without `upgrade_available` nothing changes. So a new slot that is never marked good
    /// is booted `bootlimit` times, and boot number `bootlimit + 1` runs the old slot. This is
    /// U-Boot's `bootcount > bootlimit` test applied after the increment.
    pub fn boot(&self) -> (Slot, BootVars) {
        let mut next = *self;
        if next.upgrade_available {
            if next.bootcount < next.bootlimit {
                next.bootcount += 1;
            } else {
                next.ota_slot = next.ota_slot.other();
                next.upgrade_available = false;
                next.bootcount = 0;
            }
        }
        (next.ota_slot, next)
    }

    /// The variables as `(name, value)` in wire format, in the order of [`NAMES`].
    pub fn to_pairs(&self) -> [(&'static str, String); 4] {
        [
            (OTA_SLOT, self.ota_slot.to_string()),
            (
                UPGRADE_AVAILABLE,
                u8::from(self.upgrade_available).to_string(),
            ),
            (BOOTCOUNT, self.bootcount.to_string()),
            (BOOTLIMIT, self.bootlimit.to_string()),
        ]
    }

    /// Read the variables from `(name, value)` pairs (other names are ignored, a later pair
    /// wins); absent variables take their defaults, invalid values are a
    /// [`BootError::Garbage`] naming `env`.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        env: &str,
    ) -> Result<BootVars, BootError> {
        let mut found: [Option<&str>; 4] = [None; 4];
        for (name, value) in pairs {
            if let Some(i) = NAMES.iter().position(|n| *n == name) {
                found[i] = Some(value);
            }
        }
        let d = BootVars::default();
        let [slot, upgrade, count, limit] = found;
        let vars = BootVars {
            ota_slot: match slot {
                None => d.ota_slot,
                Some(v) => v.parse().map_err(|_| garbage(OTA_SLOT, v, env))?,
            },
            upgrade_available: match upgrade {
                None => d.upgrade_available,
                Some("0") => false,
                Some("1") => true,
                Some(v) => return Err(garbage(UPGRADE_AVAILABLE, v, env)),
            },
            bootcount: match count {
                None => d.bootcount,
                Some(v) => decimal(v).ok_or_else(|| garbage(BOOTCOUNT, v, env))?,
            },
            bootlimit: match limit {
                None => d.bootlimit,
                Some(v) => decimal(v).ok_or_else(|| garbage(BOOTLIMIT, v, env))?,
            },
        };
        vars.validate(env)?;
        Ok(vars)
    }

    /// Refuse values that reading would refuse (a `bootlimit` outside 1 to
    /// [`MAX_BOOTLIMIT`]), so nothing invalid is ever written.
    pub fn validate(&self, env: &str) -> Result<(), BootError> {
        if (1..=MAX_BOOTLIMIT).contains(&self.bootlimit) {
            Ok(())
        } else {
            Err(garbage(BOOTLIMIT, &self.bootlimit.to_string(), env))
        }
    }
}

/// A non-negative decimal number as the boot scripts compare it: digits only (no sign, no
/// spaces, no leading zero), within `u32`.
fn decimal(v: &str) -> Option<u32> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) || (v.len() > 1 && v.starts_with('0'))
    {
        return None;
    }
    v.parse().ok()
}

fn garbage(var: &'static str, value: &str, env: &str) -> BootError {
    let expected = match var {
        OTA_SLOT => "a or b",
        UPGRADE_AVAILABLE => "0 or 1",
        BOOTCOUNT => "a decimal number without sign or leading zero",
        _ => "a decimal number from 1 to 9",
    };
    BootError::Garbage {
        var,
        value: value.to_string(),
        expected,
        env: env.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(slot: Slot) -> BootVars {
        BootVars {
            ota_slot: slot,
            upgrade_available: true,
            bootcount: 0,
            bootlimit: 3,
        }
    }

    #[test]
    fn slot_text_and_other() {
        assert_eq!("a".parse::<Slot>().unwrap(), Slot::A);
        assert_eq!(Slot::B.to_string(), "b");
        assert_eq!(Slot::A.other(), Slot::B);
        assert!("A".parse::<Slot>().is_err());
        assert!("c".parse::<Slot>().is_err());
    }

    #[test]
    fn boot_without_trial_changes_nothing() {
        let v = BootVars::default();
        assert_eq!(v.boot(), (Slot::A, v));
    }

    #[test]
    fn trial_never_marked_good_falls_back_on_boot_bootlimit_plus_one() {
        for limit in 1..=MAX_BOOTLIMIT {
            let mut v = BootVars {
                bootlimit: limit,
                ..trial(Slot::B)
            };
            for n in 1..=limit {
                let (slot, next) = v.boot();
                assert_eq!(slot, Slot::B, "boot {n} of limit {limit} is a trial of b");
                assert_eq!((next.bootcount, next.upgrade_available), (n, true));
                v = next;
            }
            let (slot, next) = v.boot();
            assert_eq!(slot, Slot::A, "boot {} falls back", limit + 1);
            assert_eq!(
                next,
                BootVars {
                    bootlimit: limit,
                    ..BootVars::default()
                }
            );
            assert_eq!(next.boot(), (Slot::A, next), "and stays on a");
        }
    }

    #[test]
    fn trial_marked_good_stays() {
        let (_, mut v) = trial(Slot::B).boot();
        v.upgrade_available = false;
        v.bootcount = 0;
        for _ in 0..10 {
            let (slot, next) = v.boot();
            assert_eq!((slot, next), (Slot::B, v));
            v = next;
        }
    }

    #[test]
    fn count_already_past_limit_falls_back_at_once() {
        let v = BootVars {
            bootcount: 7,
            ..trial(Slot::A)
        };
        assert_eq!(v.boot().0, Slot::B);
    }

    #[test]
    fn absent_variables_are_defaults() {
        assert_eq!(
            BootVars::from_pairs([("other", "x")], "t").unwrap(),
            BootVars::default()
        );
        let v = BootVars::from_pairs([("ota_slot", "b"), ("bootcount", "2")], "t").unwrap();
        assert_eq!((v.ota_slot, v.bootcount, v.bootlimit), (Slot::B, 2, 3));
    }

    #[test]
    fn pairs_round_trip() {
        let v = BootVars {
            ota_slot: Slot::B,
            upgrade_available: true,
            bootcount: 4,
            bootlimit: 9,
        };
        let pairs = v.to_pairs();
        let back = BootVars::from_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())), "t");
        assert_eq!(back.unwrap(), v);
    }

    #[test]
    fn garbage_is_refused_naming_variable_value_and_env() {
        for (var, value) in [
            ("ota_slot", "c"),
            ("ota_slot", ""),
            ("upgrade_available", "2"),
            ("upgrade_available", "yes"),
            ("bootcount", "-1"),
            ("bootcount", "+1"),
            ("bootcount", "0x1"),
            ("bootcount", "01"),
            ("bootlimit", "03"),
            ("bootcount", "99999999999"),
            ("bootlimit", "0"),
            ("bootlimit", "10"),
            ("bootlimit", ""),
        ] {
            let err = BootVars::from_pairs([(var, value)], "/x/env").unwrap_err();
            match &err {
                BootError::Garbage {
                    var: v,
                    value: got,
                    env,
                    ..
                } => assert_eq!((*v, got.as_str(), env.as_str()), (var, value, "/x/env")),
                other => panic!("{var}={value}: {other:?}"),
            }
            let msg = err.to_string();
            assert!(msg.contains(var) && msg.contains("/x/env"), "{msg}");
        }
    }

    #[test]
    fn invalid_bootlimit_is_never_written() {
        let v = BootVars {
            bootlimit: 0,
            ..BootVars::default()
        };
        assert!(matches!(
            v.validate("e"),
            Err(BootError::Garbage {
                var: "bootlimit",
                ..
            })
        ));
    }
}
