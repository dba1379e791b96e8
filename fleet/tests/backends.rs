//! What only one backend can meet: SQLite locks and damaged files, PostgreSQL connections.

mod common;

use std::time::{Duration, Instant};

use common::{report, Db};
use ota_fleet::{RecordOutcome, StoreError, SQLITE_BUSY_TIMEOUT};

fn open_err(database: &str) -> StoreError {
    match ota_fleet::open(database) {
        Ok(_) => panic!("{database}: opened"),
        Err(e) => e,
    }
}

fn sqlite_path(db: &Db) -> std::path::PathBuf {
    match db {
        Db::Sqlite { path, .. } => path.clone(),
        Db::Postgres(_) => unreachable!(),
    }
}

/// Another connection holding the write lock, as another process would.
fn hold_exclusive_lock(path: &std::path::Path) -> rusqlite::Connection {
    let other = rusqlite::Connection::open(path).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    other
}

fn assert_locked_within_timeout(started: Instant, err: &StoreError, path: &std::path::Path) {
    let took = started.elapsed();
    assert!(
        matches!(err, StoreError::Locked { path: p } if p == path),
        "{err:?}"
    );
    assert!(
        took >= SQLITE_BUSY_TIMEOUT - Duration::from_millis(500),
        "gave up early: {took:?}"
    );
    assert!(
        took < SQLITE_BUSY_TIMEOUT + Duration::from_secs(3),
        "waited too long: {took:?}"
    );
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn sqlite_locked_on_open() {
    let db = Db::sqlite();
    let path = sqlite_path(&db);
    drop(db.open());
    let other = hold_exclusive_lock(&path);
    let started = Instant::now();
    let err = open_err(&db.url());
    assert_locked_within_timeout(started, &err, &path);
    drop(other);
    db.open();
}

#[test]
fn sqlite_locked_on_record_then_recovers() {
    let db = Db::sqlite();
    let path = sqlite_path(&db);
    let mut store = db.open();
    let other = hold_exclusive_lock(&path);
    let started = Instant::now();
    let err = store.record(&[report("dev", 1)]).unwrap_err();
    assert_locked_within_timeout(started, &err, &path);
    // Readers are not blocked by a writer (WAL).
    assert!(store.devices().unwrap().is_empty());
    drop(other);
    assert_eq!(
        store.record(&[report("dev", 1)]).unwrap(),
        [RecordOutcome::Stored]
    );
}

#[test]
fn sqlite_waits_for_a_short_lock() {
    let db = Db::sqlite();
    let path = sqlite_path(&db);
    let mut store = db.open();
    let other = hold_exclusive_lock(&path);
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        other.execute_batch("COMMIT").unwrap();
    });
    assert_eq!(
        store.record(&[report("dev", 1)]).unwrap(),
        [RecordOutcome::Stored]
    );
    release.join().unwrap();
}

#[test]
fn sqlite_uses_wal() {
    let db = Db::sqlite();
    drop(db.open());
    let conn = rusqlite::Connection::open(sqlite_path(&db)).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn sqlite_not_a_database_is_corrupt() {
    let db = Db::sqlite();
    let path = sqlite_path(&db);
    std::fs::write(&path, "this is a text file, not a database\n".repeat(200)).unwrap();
    let err = open_err(&db.url());
    assert!(
        matches!(&err, StoreError::Corrupt { path: p, .. } if *p == path),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn sqlite_directory_or_missing_parent_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = open_err(&dir.path().display().to_string());
    assert!(
        matches!(&err, StoreError::CannotOpen { reason, .. } if reason == "is a directory"),
        "{err:?}"
    );
    let missing = dir.path().join("no-such-dir").join("fleet.sqlite");
    let err = open_err(&missing.display().to_string());
    assert!(
        matches!(&err, StoreError::CannotOpen { reason, .. } if reason.contains("does not exist")),
        "{err:?}"
    );
    assert!(err.to_string().contains("no-such-dir"), "{err}");
}

#[test]
fn sqlite_prefix_and_plain_path_name_the_same_file() {
    let db = Db::sqlite();
    let path = sqlite_path(&db);
    let mut store = ota_fleet::open(&format!("sqlite:{}", path.display())).unwrap();
    store.record(&[report("dev", 1)]).unwrap();
    assert!(path.is_file());
    assert_eq!(db.open().report_count().unwrap(), 1);
}

#[test]
fn unknown_scheme_is_refused_without_echoing_credentials() {
    let err = open_err("mysql://ota:s3cret@db.example/fleet");
    assert!(matches!(err, StoreError::BadDatabase { .. }), "{err:?}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
    assert!(matches!(open_err(""), StoreError::BadDatabase { .. }));
    assert!(matches!(
        open_err("sqlite:"),
        StoreError::BadDatabase { .. }
    ));
}

#[test]
fn postgres_unreachable_port_fails_fast() {
    let started = Instant::now();
    let err = open_err("postgres://ota:s3cret@127.0.0.1:1/ota_test");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    match &err {
        StoreError::Unreachable {
            url_without_password,
            ..
        } => {
            assert_eq!(url_without_password, "postgres://ota@127.0.0.1:1/ota_test")
        }
        other => panic!("{other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("127.0.0.1:1") && !message.contains("s3cret"),
        "{message}"
    );
}

#[test]
fn postgres_connect_timeout_bounds_a_silent_host() {
    // TEST-NET-1 (RFC 5737): never routed, so the connection either fails at once or times out.
    let started = Instant::now();
    let err = open_err("postgresql://ota:s3cret@192.0.2.1:5432/ota_test?connect_timeout=1");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("s3cret"), "{err:?}");
}

#[test]
fn postgres_bad_url_is_refused_without_echoing_it() {
    let err = open_err("postgres://ota:s3cret@db.example:notaport/fleet");
    assert!(matches!(err, StoreError::BadPostgresUrl { .. }), "{err:?}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
}

#[test]
fn postgres_wrong_password_and_missing_database_are_named() {
    let Some(admin) = common::postgres_admin_url() else {
        return;
    };
    let mut wrong = url::Url::parse(&admin).unwrap();
    wrong.set_password(Some("not-the-password-x9")).unwrap();
    let err = open_err(wrong.as_str());
    assert!(
        matches!(&err, StoreError::AuthenticationFailed { user, .. } if user == wrong.username()),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("authentication") && !message.contains("not-the-password-x9"),
        "{message}"
    );
    eprintln!("{message}");

    let mut missing = url::Url::parse(&admin).unwrap();
    missing.set_path("/ota_fleet_no_such_database");
    let err = open_err(missing.as_str());
    assert!(
        matches!(&err, StoreError::NoSuchDatabase { database, .. } if database == "ota_fleet_no_such_database"),
        "{err:?}"
    );
    let password = missing.password().unwrap_or("\u{0}").to_owned();
    assert!(!err.to_string().contains(&format!(":{password}@")), "{err}");
}

#[test]
fn postgres_reconnects_after_losing_its_connection() {
    let Some(db) = Db::postgres("reconnect") else {
        return;
    };
    let Db::Postgres(pg) = &db else {
        unreachable!()
    };
    let mut store = db.open();
    store.record(&[report("dev", 1)]).unwrap();
    let mut admin = postgres::Client::connect(pg.admin_url(), postgres::NoTls).unwrap();
    let killed = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            &[&pg.name()],
        )
        .unwrap();
    assert_eq!(killed.len(), 1);
    // The call that finds the connection broken fails; the next one reconnects.
    let first = store.record(&[report("dev", 2)]);
    if let Err(e) = &first {
        assert!(matches!(e, StoreError::Postgres { .. }), "{e:?}");
        assert_eq!(
            store.record(&[report("dev", 2)]).unwrap(),
            [RecordOutcome::Stored]
        );
    }
    assert_eq!(store.report_count().unwrap(), 2);
}
