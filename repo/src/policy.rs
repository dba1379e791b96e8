//! Expiry periods of the roles and when a role needs re-signing.
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// The four top-level roles, in the order they are listed to users.
pub const ROLES: [&str; 4] = ["root", "targets", "snapshot", "timestamp"];

/// A role's expiry period, written like `365d`, `12h`, `2w`, `30m` or `90s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Period {
    secs: i64,
}

const UNITS: [(char, i64); 5] = [
    ('w', 7 * 86_400),
    ('d', 86_400),
    ('h', 3_600),
    ('m', 60),
    ('s', 1),
];

/// Longest accepted period: 100 years keeps every date arithmetic far from overflow.
const MAX_SECS: i64 = 100 * 366 * 86_400;

impl Period {
    /// A period of whole seconds.
    pub fn from_secs(secs: i64) -> Self {
        Period { secs }
    }
    /// Length in seconds.
    pub fn secs(self) -> i64 {
        self.secs
    }
    /// The period as a duration.
    pub fn duration(self) -> Duration {
        Duration::seconds(self.secs)
    }
}

impl FromStr for Period {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        let Some(unit) = s.chars().last() else {
            return Err("empty period".into());
        };
        let Some((_, mult)) = UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(format!(
                "{s:?}: end the period with a unit: s, m, h, d or w (e.g. 90d)"
            ));
        };
        let n: i64 = s[..s.len() - 1]
            .parse()
            .map_err(|_| format!("{s:?}: expected a whole number before the unit (e.g. 90d)"))?;
        if n < 1 {
            return Err(format!("{s:?}: a period must be positive"));
        }
        match n.checked_mul(*mult) {
            Some(secs) if secs <= MAX_SECS => Ok(Period { secs }),
            _ => Err(format!("{s:?}: longer than 100 years")),
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (u, mult) in UNITS {
            if self.secs % mult == 0 {
                return write!(f, "{}{u}", self.secs / mult);
            }
        }
        write!(f, "{}s", self.secs)
    }
}

impl Serialize for Period {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How close a role is to its expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// More than a quarter of the period is left.
    Ok,
    /// Less than a quarter of the period is left: re-sign soon.
    Expiring,
    /// Clients reject it now.
    Expired,
}

/// Health of a role expiring at `expires`, whose period is `period`, at `now`.
pub fn health(expires: DateTime<Utc>, period: Period, now: DateTime<Utc>) -> Health {
    let left = expires - now;
    if left <= Duration::zero() {
        Health::Expired
    } else if left.num_seconds().saturating_mul(4) < period.secs() {
        Health::Expiring
    } else {
        Health::Ok
    }
}

/// The expiry of metadata signed at `now` for `period`, in whole seconds as written in metadata.
pub fn expires_at(now: DateTime<Utc>, period: Period) -> DateTime<Utc> {
    let now = now.duration_trunc(Duration::seconds(1)).unwrap_or(now);
    now + period.duration()
}

/// A short human form of a duration: `89d 23h`, `5h 3m`, `42s`, `-2d 1h` when past.
pub fn human_duration(d: Duration) -> String {
    let sign = if d < Duration::zero() { "-" } else { "" };
    let s = d.num_seconds().unsigned_abs();
    let (days, hours, mins) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60);
    let body = if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {mins}m")
    } else if mins > 0 {
        format!("{mins}m {}s", s % 60)
    } else {
        format!("{s}s")
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn periods_parse_and_print() {
        assert_eq!("365d".parse::<Period>().unwrap().secs(), 365 * 86_400);
        assert_eq!("2w".parse::<Period>().unwrap().to_string(), "2w");
        assert_eq!("14d".parse::<Period>().unwrap().to_string(), "2w");
        assert_eq!("90s".parse::<Period>().unwrap().to_string(), "90s");
        for bad in ["", "d", "0d", "-1d", "1y", "1.5d", "99999999999w"] {
            assert!(bad.parse::<Period>().is_err(), "{bad}");
        }
    }

    #[test]
    fn health_warns_under_a_quarter() {
        let now = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        let p: Period = "4d".parse().unwrap();
        assert_eq!(health(now + Duration::days(2), p, now), Health::Ok);
        assert_eq!(health(now + Duration::days(1), p, now), Health::Ok);
        assert_eq!(health(now + Duration::hours(23), p, now), Health::Expiring);
        assert_eq!(health(now, p, now), Health::Expired);
        assert_eq!(human_duration(Duration::hours(-49)), "-2d 1h");
    }
}
