//! Where "now" comes from. Injectable so tests can check expiry on fixed inputs.
//!
//! A device without a real-time clock (or with a flat RTC battery) may boot believing it is
//! 1970, or some day long past; metadata that expired since would then look valid (a freeze
//! attack). So a device never trusts a time earlier than the newest time it has already
//! seen: its **time floor**, `max(previous floor, now)` recorded after every successful
//! refresh ([`TimeFloor`]). Expiry is checked against [`FlooredClock`], the later of the
//! clock, the floor and [`earliest_plausible`] (2020-01-01). [`ClockCheck`] says whether
//! the clock is behind the floor (a warning) or clearly wrong (more than a day behind it, or
//! before 2020), for `status` and for error messages.
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock (goes through libc, so `faketime` can shift it in tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock stopped at one instant.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

/// No device clock showing a time before this (2020-01-01T00:00:00Z) is right: this
/// software and every repository it reads are younger.
pub fn earliest_plausible() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// How far behind the floor a clock may be before it is called clearly wrong.
pub const WRONG_AFTER: Duration = Duration::days(1);
/// How far behind the floor a clock may be without a warning (a small step back by NTP).
pub const BEHIND_TOLERANCE: Duration = Duration::minutes(1);

/// A clock that never goes below a floor: the later of `inner`, the floor and
/// [`earliest_plausible`].
#[derive(Clone)]
pub struct FlooredClock {
    inner: Arc<dyn Clock>,
    floor: Option<DateTime<Utc>>,
}

impl FlooredClock {
    /// `inner`, floored at `floor` (and at [`earliest_plausible`]).
    pub fn new(inner: Arc<dyn Clock>, floor: Option<DateTime<Utc>>) -> Self {
        FlooredClock { inner, floor }
    }
}

impl Clock for FlooredClock {
    fn now(&self) -> DateTime<Utc> {
        let now = self.inner.now().max(earliest_plausible());
        match self.floor {
            Some(f) => now.max(f),
            None => now,
        }
    }
}

/// How the device clock compares with what the device has already seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockState {
    /// Not behind the floor (or by less than [`BEHIND_TOLERANCE`]).
    Ok,
    /// Behind the floor by less than [`WRONG_AFTER`]: expiry is checked at the floor.
    Behind,
    /// More than [`WRONG_AFTER`] behind the floor, or before [`earliest_plausible`].
    Wrong,
}

/// The device clock, the time floor and the time expiry is checked against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClockCheck {
    /// What the device clock says.
    pub clock: DateTime<Utc>,
    /// The newest time already seen (recorded after each successful refresh), if any.
    pub time_floor: Option<DateTime<Utc>>,
    /// The time metadata expiry is checked against: the later of the clock, the floor
    /// and 2020-01-01.
    pub verification_time: DateTime<Utc>,
    /// ok, behind or wrong.
    pub state: ClockState,
}

impl ClockCheck {
    /// Compare `clock` with `floor`.
    pub fn new(clock: DateTime<Utc>, floor: Option<DateTime<Utc>>) -> Self {
        let verification_time = FlooredClock::new(Arc::new(FixedClock(clock)), floor).now();
        let behind = floor.map(|f| f - clock).unwrap_or(Duration::zero());
        let state = if clock < earliest_plausible() || behind > WRONG_AFTER {
            ClockState::Wrong
        } else if behind > BEHIND_TOLERANCE {
            ClockState::Behind
        } else {
            ClockState::Ok
        };
        ClockCheck {
            clock,
            time_floor: floor,
            verification_time,
            state,
        }
    }

    /// One sentence about a clock that is behind or wrong; `None` when it is fine.
    pub fn message(&self) -> Option<String> {
        let fmt = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let seen = match self.time_floor {
            Some(f) if f > self.clock => {
                format!(", earlier than {} already seen", fmt(f))
            }
            _ => String::new(),
        };
        let verdict = match self.state {
            ClockState::Ok => return None,
            ClockState::Behind => "the clock is behind",
            ClockState::Wrong if self.clock < earliest_plausible() => {
                "the clock is wrong (before 2020)"
            }
            ClockState::Wrong => "the clock is wrong (more than a day behind)",
        };
        Some(format!(
            "the device clock says {}{seen}: {verdict}; metadata expiry is checked at {}",
            fmt(self.clock),
            fmt(self.verification_time)
        ))
    }
}

/// The persisted time floor (`STATE/time-floor.json`): `{"time_floor": "2025-06-01T12:00:00Z"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeFloor {
    /// The newest time already seen.
    pub time_floor: DateTime<Utc>,
}

/// Why the time floor file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TimeFloorError {
    /// Reading or writing it failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// It does not hold a time floor.
    #[error("{}: not a time floor: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl TimeFloor {
    /// The floor recorded at `path`; `None` when there is no file yet.
    pub fn load(path: &Path) -> Result<Option<DateTime<Utc>>, TimeFloorError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(TimeFloorError::Io {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let f: TimeFloor = serde_json::from_slice(&bytes).map_err(|e| TimeFloorError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(Some(f.time_floor))
    }

    /// Raise the floor at `path` to `now` (never lower it); returns the floor in force.
    pub fn raise(path: &Path, now: DateTime<Utc>) -> Result<DateTime<Utc>, TimeFloorError> {
        let previous = Self::load(path)?;
        if previous.is_some_and(|p| p >= now) {
            return Ok(previous.unwrap_or(now));
        }
        let io = |source| TimeFloorError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut bytes = serde_json::to_vec_pretty(&TimeFloor { time_floor: now })
            .map_err(|e| io(std::io::Error::other(e)))?;
        bytes.push(b'\n');
        ota_fs::atomic::replace(path, &bytes, ota_fs::mode::PUBLIC_FILE).map_err(io)?;
        Ok(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_floor_and_2020_bound_the_clock_from_below() {
        let floor = t("2030-06-01T00:00:00Z");
        let behind =
            FlooredClock::new(Arc::new(FixedClock(t("2030-01-01T00:00:00Z"))), Some(floor));
        assert_eq!(behind.now(), floor);
        let ahead = FlooredClock::new(Arc::new(FixedClock(t("2031-01-01T00:00:00Z"))), Some(floor));
        assert_eq!(ahead.now(), t("2031-01-01T00:00:00Z"));
        let epoch = FlooredClock::new(Arc::new(FixedClock(DateTime::UNIX_EPOCH)), None);
        assert_eq!(epoch.now(), earliest_plausible());
    }

    #[test]
    fn behind_and_wrong_clocks_are_named() {
        let floor = t("2030-06-01T00:00:00Z");
        let ok = ClockCheck::new(floor + Duration::hours(1), Some(floor));
        assert_eq!(ok.state, ClockState::Ok);
        assert_eq!(ok.message(), None);
        assert_eq!(ok.verification_time, floor + Duration::hours(1));
        let jitter = ClockCheck::new(floor - Duration::seconds(5), Some(floor));
        assert_eq!(jitter.state, ClockState::Ok);
        assert_eq!(
            jitter.verification_time, floor,
            "still never below the floor"
        );
        let behind = ClockCheck::new(floor - Duration::hours(3), Some(floor));
        assert_eq!(behind.state, ClockState::Behind);
        let msg = behind.message().unwrap();
        assert!(
            msg.contains("the device clock says 2030-05-31T21:00:00Z, earlier than 2030-06-01T00:00:00Z already seen"),
            "{msg}"
        );
        let wrong = ClockCheck::new(floor - Duration::days(2), Some(floor));
        assert_eq!(wrong.state, ClockState::Wrong);
        assert!(
            wrong.message().unwrap().contains("more than a day"),
            "{:?}",
            wrong.message()
        );
        let old = ClockCheck::new(t("2019-03-01T00:00:00Z"), None);
        assert_eq!(old.state, ClockState::Wrong);
        assert!(old.message().unwrap().contains("before 2020"));
        assert_eq!(old.verification_time, earliest_plausible());
        assert_eq!(ClockCheck::new(floor, None).state, ClockState::Ok);
    }

    #[test]
    fn the_floor_only_rises_and_a_corrupt_file_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("time-floor.json");
        assert_eq!(TimeFloor::load(&p).unwrap(), None);
        let a = t("2030-01-01T00:00:00Z");
        assert_eq!(TimeFloor::raise(&p, a).unwrap(), a);
        assert_eq!(TimeFloor::raise(&p, a - Duration::days(9)).unwrap(), a);
        assert_eq!(TimeFloor::load(&p).unwrap(), Some(a));
        let b = a + Duration::days(1);
        assert_eq!(TimeFloor::raise(&p, b).unwrap(), b);
        assert_eq!(TimeFloor::load(&p).unwrap(), Some(b));
        std::fs::write(&p, b"{}").unwrap();
        assert!(matches!(
            TimeFloor::load(&p),
            Err(TimeFloorError::Corrupt { .. })
        ));
    }
}
