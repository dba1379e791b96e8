//! Test databases: a fresh SQLite file, or a fresh PostgreSQL database per test (created on
//! the server named by OTA_TEST_POSTGRES_URL and dropped afterwards, so tests run in parallel).
#![allow(dead_code)]

use std::path::PathBuf;

use chrono::{DateTime, Duration, TimeZone, Utc};
use ota_fleet::{ReportRecord, ReportStore};

/// The environment variable naming the PostgreSQL server for the tests.
pub const POSTGRES_ENV: &str = "OTA_TEST_POSTGRES_URL";

/// A database for one test.
pub enum Db {
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres(PgDb),
}

/// A PostgreSQL database created for one test; dropped with it.
pub struct PgDb {
    admin_url: String,
    name: String,
    url: String,
}

/// The admin URL, or None after printing why the test is skipped. With CI set, a missing
/// server fails the test instead: CI must never pass by skipping the PostgreSQL half.
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var(POSTGRES_ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) => {
            panic!("{POSTGRES_ENV} is unset but CI is set: the PostgreSQL tests must run on CI (.ci/run exports it)")
        }
        _ => {
            eprintln!("SKIPPED: PostgreSQL test: {POSTGRES_ENV} is unset (e.g. postgres://ota:ota@127.0.0.1:5432/ota_test)");
            None
        }
    }
}

impl Db {
    pub fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleet.sqlite");
        Db::Sqlite { _dir: dir, path }
    }

    /// A fresh database named after the test, or None when skipping (see [`postgres_admin_url`]).
    pub fn postgres(test: &str) -> Option<Db> {
        let admin_url = postgres_admin_url()?;
        let mut name = format!("ota_fleet_{}_{test}", std::process::id());
        name.truncate(63);
        let mut admin = postgres::Client::connect(&admin_url, postgres::NoTls).unwrap();
        // template0: nobody is ever connected to it, so parallel tests can copy it at once.
        // Two calls: several statements in one would form a transaction, which neither allows.
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\" TEMPLATE template0"))
            .unwrap();
        let mut url = url::Url::parse(&admin_url).unwrap();
        url.set_path(&format!("/{name}"));
        Some(Db::Postgres(PgDb {
            admin_url,
            name,
            url: url.to_string(),
        }))
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }

    /// The argument for `ota_fleet::open`.
    pub fn url(&self) -> String {
        match self {
            Db::Sqlite { path, .. } => path.display().to_string(),
            Db::Postgres(pg) => pg.url.clone(),
        }
    }

    pub fn open(&self) -> Box<dyn ReportStore> {
        ota_fleet::open(&self.url()).unwrap_or_else(|e| panic!("open {}: {e}", self.url()))
    }

    /// Runs SQL on the database directly, behind the store's back.
    pub fn exec(&self, sql: &str) {
        match self {
            Db::Sqlite { path, .. } => rusqlite::Connection::open(path)
                .unwrap()
                .execute_batch(sql)
                .unwrap(),
            Db::Postgres(pg) => postgres::Client::connect(&pg.url, postgres::NoTls)
                .unwrap()
                .batch_execute(sql)
                .unwrap(),
        }
    }

    /// The integer a query returns.
    pub fn count(&self, sql: &str) -> i64 {
        match self {
            Db::Sqlite { path, .. } => rusqlite::Connection::open(path)
                .unwrap()
                .query_row(sql, [], |r| r.get(0))
                .unwrap(),
            Db::Postgres(pg) => postgres::Client::connect(&pg.url, postgres::NoTls)
                .unwrap()
                .query_one(sql, &[])
                .unwrap()
                .get(0),
        }
    }
}

impl PgDb {
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        // FORCE: a store the test leaked (or a panic left open) must not keep the database.
        if let Ok(mut admin) = postgres::Client::connect(&self.admin_url, postgres::NoTls) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// A fixed point in time, whole microseconds (what both backends keep).
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap() + Duration::microseconds(250)
}

/// A report of `device` with `sequence`; every field derives from the two, so that a listing
/// shows which report it came from.
pub fn report(device: &str, sequence: u64) -> ReportRecord {
    let at = t0() + Duration::minutes((sequence % 1_000_000) as i64);
    ReportRecord {
        device_id: device.to_owned(),
        cert_sha256: format!("{:064x}", sequence),
        cert_not_after: Some(t0() + Duration::days(365)),
        sequence,
        generated_at: at - Duration::seconds(2),
        received_at: at,
        update_state: if sequence.is_multiple_of(2) { "idle".into() } else { "trial".into() },
        last_error: sequence.is_multiple_of(3).then(|| format!("error of report {sequence}")),
        installed_version: Some(format!("1.{sequence}.0")),
        root_version: sequence + 1,
        metadata_expires: (!sequence.is_multiple_of(5)).then(|| t0() + Duration::days(7)),
        report_json: format!(
            "{{\"signed\":{{\"device\":\"{device}\",\"sequence\":{sequence},\"state\":\"caf\u{e9} \\u00e9\"}},\"signatures\":[]}}"
        ),
    }
}
