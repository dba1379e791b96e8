//! Which devices need attention: expiring trust, expiring certificate, or silence.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::DeviceSummary;

/// A reason to look at a device, from its latest report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "flag", rename_all = "kebab-case")]
pub enum Flag {
    /// Its trusted metadata expires within the warning window: it must fetch fresh metadata soon.
    MetadataExpiring {
        /// When the earliest of it expires.
        expires: DateTime<Utc>,
    },
    /// Its trusted metadata has expired: it refuses updates until it fetches fresh metadata.
    MetadataExpired {
        /// When it expired.
        expires: DateTime<Utc>,
    },
    /// Its certificate expires within the warning window.
    CertificateExpiring {
        /// When it expires.
        not_after: DateTime<Utc>,
    },
    /// Its certificate has expired: its reports will be refused.
    CertificateExpired {
        /// When it expired.
        not_after: DateTime<Utc>,
    },
    /// It has not reported for at least the silence window.
    NotReporting {
        /// When its latest report was received.
        last_seen: DateTime<Utc>,
    },
}

/// The device's flags at `now`, in the order of [`Flag`]'s variants.
///
/// Boundaries: a time at or before `now` has expired; one after `now` but at or before
/// `now + expiring_within` is expiring; a device is silent when `now - last_seen` is at least
/// `silent_for`. Unknown expiry times (absent from the report) raise no flag.
pub fn flags(
    d: &DeviceSummary,
    now: DateTime<Utc>,
    expiring_within: Duration,
    silent_for: Duration,
) -> Vec<Flag> {
    let mut out = Vec::new();
    let horizon = now
        .checked_add_signed(expiring_within)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    if let Some(expires) = d.last.metadata_expires {
        if expires <= now {
            out.push(Flag::MetadataExpired { expires });
        } else if expires <= horizon {
            out.push(Flag::MetadataExpiring { expires });
        }
    }
    if let Some(not_after) = d.last.cert_not_after {
        if not_after <= now {
            out.push(Flag::CertificateExpired { not_after });
        } else if not_after <= horizon {
            out.push(Flag::CertificateExpiring { not_after });
        }
    }
    // Compared as `last_seen + silent_for <= now` would overflow near the calendar's ends;
    // the difference of two stored times (years 1..=9999) cannot.
    if now.signed_duration_since(d.last_seen) >= silent_for {
        out.push(Flag::NotReporting {
            last_seen: d.last_seen,
        });
    }
    out
}

impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = |t: &DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%SZ").to_string();
        match self {
            Flag::MetadataExpiring { expires } => write!(f, "metadata expires {}", t(expires)),
            Flag::MetadataExpired { expires } => write!(f, "metadata expired {}", t(expires)),
            Flag::CertificateExpiring { not_after } => {
                write!(f, "certificate expires {}", t(not_after))
            }
            Flag::CertificateExpired { not_after } => {
                write!(f, "certificate expired {}", t(not_after))
            }
            Flag::NotReporting { last_seen } => write!(f, "not reporting since {}", t(last_seen)),
        }
    }
}
