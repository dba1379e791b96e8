//! The store's behaviours, each run against SQLite and against PostgreSQL.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;
use common::{report, t0, Db};
use ota_fleet::migrations::SCHEMA_VERSION;
use ota_fleet::{InvalidReport, LatestReport, RecordOutcome, ReportStore, StoreError};

/// Generates `NAME::sqlite` and `NAME::postgres` tests calling `fn NAME(&Db)`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                super::$name(&crate::common::Db::sqlite());
            }

            #[test]
            fn postgres() {
                if let Some(db) = crate::common::Db::postgres(stringify!($name)) {
                    super::$name(&db);
                }
            }
        }
    )*};
}

on_both_backends!(
    store_and_list,
    latest_report_wins,
    replay_refused_and_unchanged,
    batch_with_duplicates,
    reopen_keeps_data_without_migrating,
    newer_schema_refused,
    batch_is_all_or_nothing,
    invalid_reports_do_not_block_the_batch,
    times_kept_to_the_microsecond,
    ten_thousand_devices_in_one_batch,
    concurrent_writers_store_each_report_once,
    concurrent_opens_migrate_once,
);

use RecordOutcome::{Replayed, Stored};

fn store_and_list(db: &Db) {
    let mut store = db.open();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert!(store.devices().unwrap().is_empty());
    // Byte order, whatever the database's collation: upper case before lower case.
    let batch = [
        report("b", 1),
        report("B", 4),
        report("a-1", 2),
        report("a", 5),
    ];
    assert_eq!(store.record(&batch).unwrap(), vec![Stored; 4]);
    let devices = store.devices().unwrap();
    let ids: Vec<&str> = devices.iter().map(|d| d.device_id.as_str()).collect();
    assert_eq!(ids, ["B", "a", "a-1", "b"]);
    let a = &devices[1];
    let sent = report("a", 5);
    assert_eq!(a.first_seen, sent.received_at);
    assert_eq!(a.last_seen, sent.received_at);
    assert_eq!(a.reports, 1);
    assert_eq!(a.last, LatestReport::from(&sent));
    assert_eq!(
        a.last.metadata_expires, None,
        "sequence 5 has no metadata expiry: NULL kept"
    );
    assert_eq!(devices[0].last.last_error, None);
    assert_eq!(devices[0].last, LatestReport::from(&report("B", 4)));
    assert_eq!(store.report_count().unwrap(), 4);
    // The document is kept verbatim (non-ASCII and escapes included).
    assert_eq!(store.latest_report("a").unwrap(), Some(sent));
    assert_eq!(store.latest_report("nobody").unwrap(), None);
    assert_eq!(store.record(&[]).unwrap(), vec![]);
}

fn latest_report_wins(db: &Db) {
    let mut store = db.open();
    assert_eq!(store.record(&[report("dev", 1)]).unwrap(), [Stored]);
    assert_eq!(store.record(&[report("dev", 7)]).unwrap(), [Stored]);
    let devices = store.devices().unwrap();
    assert_eq!(devices.len(), 1);
    let d = &devices[0];
    assert_eq!(d.reports, 2);
    assert_eq!(d.first_seen, report("dev", 1).received_at);
    assert_eq!(d.last_seen, report("dev", 7).received_at);
    assert_eq!(d.last, LatestReport::from(&report("dev", 7)));
    assert_eq!(store.latest_report("dev").unwrap(), Some(report("dev", 7)));
    assert_eq!(store.report_count().unwrap(), 2);
}

fn replay_refused_and_unchanged(db: &Db) {
    let mut store = db.open();
    store.record(&[report("dev", 5)]).unwrap();
    let before = store.devices().unwrap();
    // Same sequence with different content, and a lower one: both refused.
    let mut same = report("dev", 5);
    same.update_state = "failed".into();
    same.report_json = "{\"forged\":true}".into();
    assert_eq!(
        store.record(&[same, report("dev", 3)]).unwrap(),
        [Replayed { last_sequence: 5 }, Replayed { last_sequence: 5 }]
    );
    assert_eq!(store.devices().unwrap(), before);
    assert_eq!(store.latest_report("dev").unwrap(), Some(report("dev", 5)));
    assert_eq!(store.report_count().unwrap(), 1);
    // Sequence 0 of a new device is a first report, not a replay.
    assert_eq!(store.record(&[report("new", 0)]).unwrap(), [Stored]);
}

fn batch_with_duplicates(db: &Db) {
    let mut store = db.open();
    store.record(&[report("old", 10)]).unwrap();
    let batch = [
        report("a", 1),
        report("b", 1),
        report("a", 1),
        report("a", 2),
        report("a", 2),
        report("b", 0),
        report("old", 10),
        report("old", 11),
        report("a", 3),
    ];
    assert_eq!(
        store.record(&batch).unwrap(),
        [
            Stored,
            Stored,
            Replayed { last_sequence: 1 },
            Stored,
            Replayed { last_sequence: 2 },
            Replayed { last_sequence: 1 },
            Replayed { last_sequence: 10 },
            Stored,
            Stored,
        ]
    );
    let devices = store.devices().unwrap();
    let summary: Vec<(&str, u64, u64)> = devices
        .iter()
        .map(|d| (d.device_id.as_str(), d.reports, d.last.sequence))
        .collect();
    assert_eq!(summary, [("a", 3, 3), ("b", 1, 1), ("old", 2, 11)]);
    assert_eq!(devices[0].first_seen, report("a", 1).received_at);
    assert_eq!(devices[0].last_seen, report("a", 3).received_at);
    assert_eq!(devices[2].first_seen, report("old", 10).received_at);
    assert_eq!(store.report_count().unwrap(), 6);
}

fn reopen_keeps_data_without_migrating(db: &Db) {
    let mut store = db.open();
    store
        .record(&[report("dev", 1), report("other", 2)])
        .unwrap();
    let before = store.devices().unwrap();
    drop(store);
    let applied = db.count("SELECT count(*) FROM schema_migrations");
    assert_eq!(applied, i64::from(SCHEMA_VERSION));
    let mut store = db.open();
    assert_eq!(store.devices().unwrap(), before);
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(
        db.count("SELECT count(*) FROM schema_migrations"),
        applied,
        "nothing re-applied"
    );
    assert_eq!(
        store.record(&[report("dev", 1)]).unwrap(),
        [Replayed { last_sequence: 1 }]
    );
}

fn newer_schema_refused(db: &Db) {
    drop(db.open());
    db.exec("INSERT INTO schema_migrations (version, description, applied_at) VALUES (99, 'future', '2030-01-01T00:00:00Z')");
    let err = match ota_fleet::open(&db.url()) {
        Ok(_) => panic!("a schema from the future was accepted"),
        Err(e) => e,
    };
    assert!(
        matches!(
            err,
            StoreError::SchemaTooNew {
                found: 99,
                known: SCHEMA_VERSION,
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&format!(
            "schema version 99 is newer than this ota-server knows ({SCHEMA_VERSION})"
        )),
        "{message}"
    );
    assert!(!message.contains(":ota@"), "no password in {message}");
}

fn batch_is_all_or_nothing(db: &Db) {
    let mut store = db.open();
    // A database error on the second report's history row, after the first report and the
    // second's device row were written.
    if db.is_postgres() {
        db.exec(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
             CREATE TRIGGER refuse BEFORE INSERT ON reports FOR EACH ROW
                 WHEN (NEW.device_id = 'bad') EXECUTE FUNCTION refuse();",
        );
    } else {
        db.exec(
            "CREATE TRIGGER refuse BEFORE INSERT ON reports WHEN NEW.device_id = 'bad'
                 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
        );
    }
    let batch = [report("good", 1), report("bad", 1), report("good", 2)];
    let err = store.record(&batch).unwrap_err();
    assert!(err.to_string().contains("refused by the test"), "{err}");
    assert!(store.devices().unwrap().is_empty());
    assert_eq!(store.report_count().unwrap(), 0);
    // The store still works, and nothing of the failed batch counts as seen.
    assert_eq!(
        store
            .record(&[report("good", 1), report("good", 2)])
            .unwrap(),
        [Stored, Stored]
    );
    // Resubmitting a batch is safe: what was stored comes back replayed.
    let again = store
        .record(&[report("good", 2), report("good", 3)])
        .unwrap();
    assert_eq!(again, [Replayed { last_sequence: 2 }, Stored]);
}

fn invalid_reports_do_not_block_the_batch(db: &Db) {
    let mut store = db.open();
    let mut nul = report("dev", 2);
    nul.last_error = Some("a\0b".into());
    let mut huge = report("dev", 3);
    huge.sequence = u64::MAX;
    let mut ancient = report("dev", 4);
    ancient.received_at = chrono::DateTime::<chrono::Utc>::MIN_UTC;
    let outcomes = store
        .record(&[
            report("dev", 1),
            nul,
            huge,
            ancient,
            report("", 5),
            report("dev", 6),
        ])
        .unwrap();
    assert_eq!(outcomes[0], Stored);
    assert!(matches!(
        &outcomes[1],
        RecordOutcome::Invalid(InvalidReport::NulCharacter {
            field: "last_error",
            ..
        })
    ));
    assert!(matches!(
        &outcomes[2],
        RecordOutcome::Invalid(InvalidReport::TooLarge {
            field: "sequence",
            ..
        })
    ));
    assert!(matches!(
        &outcomes[3],
        RecordOutcome::Invalid(InvalidReport::TimeOutOfRange {
            field: "received_at",
            ..
        })
    ));
    assert_eq!(
        outcomes[4],
        RecordOutcome::Invalid(InvalidReport::EmptyDeviceId)
    );
    assert_eq!(outcomes[5], Stored);
    let mut largest = report("dev", ota_fleet::MAX_STORED_INTEGER);
    largest.root_version = ota_fleet::MAX_STORED_INTEGER;
    assert_eq!(store.record(&[largest.clone()]).unwrap(), [Stored]);
    assert_eq!(store.latest_report("dev").unwrap(), Some(largest));
    assert_eq!(store.report_count().unwrap(), 3);
}

fn times_kept_to_the_microsecond(db: &Db) {
    let mut store = db.open();
    let mut r = report("dev", 1);
    r.generated_at = t0() + Duration::nanoseconds(123_456_789);
    r.received_at = t0() + Duration::nanoseconds(999);
    // Before 1970 too: truncation must not round towards the epoch.
    r.cert_not_after = Some(chrono::DateTime::from_timestamp(-1, 999_999_999).unwrap());
    store.record(&[r.clone()]).unwrap();
    let got = store.latest_report("dev").unwrap().unwrap();
    assert_eq!(got.generated_at, t0() + Duration::microseconds(123_456));
    assert_eq!(got.received_at, t0());
    assert_eq!(
        got.cert_not_after,
        chrono::DateTime::from_timestamp(-1, 999_999_000)
    );
}

fn ten_thousand_devices_in_one_batch(db: &Db) {
    let mut store = db.open();
    let batch: Vec<_> = (0..10_000)
        .map(|i| report(&format!("device-{i:05}"), 1 + i % 7))
        .collect();
    let started = Instant::now();
    let outcomes = store.record(&batch).unwrap();
    let took = started.elapsed();
    eprintln!("10,000 reports in one batch: {took:?}");
    assert!(outcomes.iter().all(|o| *o == Stored));
    // SQLite must be well under a second; PostgreSQL gets more room for a loaded CI machine.
    let limit = match (db.is_postgres(), cfg!(debug_assertions)) {
        (_, true) => StdDuration::from_secs(30),
        (false, false) => StdDuration::from_secs(1),
        (true, false) => StdDuration::from_secs(3),
    };
    assert!(took < limit, "10,000 reports took {took:?}");
    assert_eq!(store.report_count().unwrap(), 10_000);
    let devices = store.devices().unwrap();
    assert_eq!(devices.len(), 10_000);
    let ids: HashSet<&str> = devices.iter().map(|d| d.device_id.as_str()).collect();
    assert_eq!(ids.len(), 10_000);
    for (d, sent) in devices.iter().zip(&batch) {
        assert_eq!(d.device_id, sent.device_id);
        assert_eq!(d.reports, 1);
        assert_eq!(d.last, LatestReport::from(sent));
    }
    assert_eq!(
        db.count("SELECT count(DISTINCT device_id) FROM reports"),
        10_000
    );
    // The same batch again: all replays, nothing added.
    let again = store.record(&batch).unwrap();
    assert!(again.iter().zip(&batch).all(|(o, r)| *o
        == Replayed {
            last_sequence: r.sequence
        }));
    assert_eq!(store.report_count().unwrap(), 10_000);
}

fn concurrent_writers_store_each_report_once(db: &Db) {
    drop(db.open());
    let reports: Vec<_> = (0..20)
        .flat_map(|d| (1..=10).map(move |s| report(&format!("dev-{d:02}"), s)))
        .collect();
    let writers = 3;
    let barrier = Arc::new(Barrier::new(writers));
    let stored: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let barrier = barrier.clone();
                let url = db.url();
                let mut mine = reports.clone();
                // Different orders and batch sizes, so that writers race on the same devices.
                if w % 2 == 1 {
                    mine.reverse();
                }
                scope.spawn(move || {
                    let mut store = ota_fleet::open(&url).unwrap();
                    barrier.wait();
                    let mut stored = 0;
                    for chunk in mine.chunks(7 + w * 5) {
                        stored += store
                            .record(chunk)
                            .unwrap()
                            .iter()
                            .filter(|o| **o == Stored)
                            .count();
                    }
                    stored
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let mut store = db.open();
    let count = store.report_count().unwrap();
    assert_eq!(
        stored as u64, count,
        "each stored outcome is one history row"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM (SELECT DISTINCT device_id, sequence FROM reports) AS r"),
        count as i64
    );
    let devices = store.devices().unwrap();
    assert_eq!(devices.len(), 20);
    for d in &devices {
        assert_eq!(
            d.last.sequence, 10,
            "{}: the highest sequence is the latest",
            d.device_id
        );
        let rows = db.count(&format!(
            "SELECT count(*) FROM reports WHERE device_id = '{}'",
            d.device_id
        ));
        assert_eq!(d.reports, rows as u64);
    }
}

fn concurrent_opens_migrate_once(db: &Db) {
    let openers = 4;
    let barrier = Arc::new(Barrier::new(openers));
    std::thread::scope(|scope| {
        for _ in 0..openers {
            let barrier = barrier.clone();
            let url = db.url();
            scope.spawn(move || {
                barrier.wait();
                let mut store = ota_fleet::open(&url).unwrap();
                assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
            });
        }
    });
    assert_eq!(
        db.count("SELECT count(*) FROM schema_migrations"),
        i64::from(SCHEMA_VERSION)
    );
}

/// The store is handed to the server's writer thread.
#[test]
fn stores_are_send() {
    fn send<T: Send>(_: &T) {}
    let db = Db::sqlite();
    let store: Box<dyn ReportStore> = db.open();
    send(&store);
}
