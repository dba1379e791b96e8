//! Flags at their boundaries, and how the server prints them.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::{report, t0};
use ota_fleet::{flags, DeviceSummary, Flag, LatestReport};

const DAY: i64 = 86_400;

fn now() -> DateTime<Utc> {
    t0() + Duration::days(30)
}

/// A device last seen at `last_seen` whose metadata and certificate expire as given.
fn device(
    last_seen: DateTime<Utc>,
    metadata: Option<DateTime<Utc>>,
    cert: Option<DateTime<Utc>>,
) -> DeviceSummary {
    let mut last = LatestReport::from(&report("dev", 1));
    last.received_at = last_seen;
    last.metadata_expires = metadata;
    last.cert_not_after = cert;
    DeviceSummary {
        device_id: "dev".into(),
        first_seen: t0(),
        last_seen,
        reports: 1,
        last,
    }
}

fn flags_of(d: &DeviceSummary) -> Vec<Flag> {
    flags(d, now(), Duration::days(7), Duration::days(2))
}

#[test]
fn healthy_and_unknown_raise_nothing() {
    assert_eq!(flags_of(&device(now(), None, None)), []);
    let far = now() + Duration::days(100);
    assert_eq!(
        flags_of(&device(now() - Duration::hours(1), Some(far), Some(far))),
        []
    );
}

#[test]
fn metadata_boundaries() {
    let at = |secs: i64| flags_of(&device(now(), Some(now() + Duration::seconds(secs)), None));
    let t = |secs: i64| now() + Duration::seconds(secs);
    assert_eq!(at(7 * DAY + 1), []);
    assert_eq!(
        at(7 * DAY),
        [Flag::MetadataExpiring {
            expires: t(7 * DAY)
        }]
    );
    assert_eq!(at(1), [Flag::MetadataExpiring { expires: t(1) }]);
    assert_eq!(
        at(0),
        [Flag::MetadataExpired { expires: t(0) }],
        "expiring at this instant is expired"
    );
    assert_eq!(at(-DAY), [Flag::MetadataExpired { expires: t(-DAY) }]);
}

#[test]
fn certificate_boundaries() {
    let at = |secs: i64| flags_of(&device(now(), None, Some(now() + Duration::seconds(secs))));
    let t = |secs: i64| now() + Duration::seconds(secs);
    assert_eq!(at(7 * DAY + 1), []);
    assert_eq!(
        at(7 * DAY),
        [Flag::CertificateExpiring {
            not_after: t(7 * DAY)
        }]
    );
    assert_eq!(at(1), [Flag::CertificateExpiring { not_after: t(1) }]);
    assert_eq!(at(0), [Flag::CertificateExpired { not_after: t(0) }]);
    assert_eq!(at(-1), [Flag::CertificateExpired { not_after: t(-1) }]);
}

#[test]
fn silence_boundaries() {
    let seen = |secs_ago: i64| now() - Duration::seconds(secs_ago);
    let at = |secs_ago: i64| flags_of(&device(seen(secs_ago), None, None));
    assert_eq!(at(2 * DAY - 1), []);
    assert_eq!(
        at(2 * DAY),
        [Flag::NotReporting {
            last_seen: seen(2 * DAY)
        }]
    );
    assert_eq!(
        at(30 * DAY),
        [Flag::NotReporting {
            last_seen: seen(30 * DAY)
        }]
    );
    // A device whose clock is ahead is not silent.
    assert_eq!(at(-DAY), []);
}

#[test]
fn all_flags_in_order_and_extreme_windows() {
    let d = device(
        now() - Duration::days(3),
        Some(now() - Duration::days(1)),
        Some(now() + Duration::days(1)),
    );
    assert_eq!(
        flags_of(&d),
        [
            Flag::MetadataExpired {
                expires: now() - Duration::days(1)
            },
            Flag::CertificateExpiring {
                not_after: now() + Duration::days(1)
            },
            Flag::NotReporting {
                last_seen: now() - Duration::days(3)
            },
        ]
    );
    // A window reaching past the end of the calendar does not overflow.
    let f = flags(&d, now(), Duration::MAX, Duration::MAX);
    assert_eq!(f.len(), 2, "{f:?}");
}

#[test]
fn printed_for_the_server() {
    let expires = now() + Duration::days(3);
    let flag = Flag::MetadataExpiring { expires };
    let json = serde_json::to_value(&flag).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"flag": "metadata-expiring", "expires": expires})
    );
    assert_eq!(flag.to_string(), "metadata expires 2026-04-03 12:00:00Z");
    let json = serde_json::to_value(Flag::NotReporting { last_seen: t0() }).unwrap();
    assert_eq!(json["flag"], "not-reporting");
    let d = device(now(), Some(expires), None);
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["device_id"], "dev");
    assert_eq!(json["reports"], 1);
    assert_eq!(json["last"]["update_state"], "trial");
    assert_eq!(json["last"]["installed_version"], "1.1.0");
    assert!(
        json["last"].get("report_json").is_none(),
        "the document is not part of the listing"
    );
}
