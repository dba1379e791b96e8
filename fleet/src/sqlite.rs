//! The embedded backend: one SQLite file (WAL mode), created on first open.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, Row, TransactionBehavior};

use crate::migrations::{self, SQLITE};
use crate::plan;
use crate::record::{stored_time, stored_u64};
use crate::{DeviceSummary, LatestReport, RecordOutcome, ReportRecord, ReportStore, StoreError};

/// How long to wait for another process's lock before giving up with [`StoreError::Locked`]:
/// long enough to ride out another writer's batch, short enough not to stall the server.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A report store in a SQLite file.
pub(crate) struct SqliteStore {
    conn: Connection,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file and brings its schema up to date.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let cannot = |reason: String| StoreError::CannotOpen {
            path: path.to_owned(),
            reason,
        };
        // SQLite's own message for these is "unable to open database file": say which.
        if path.is_dir() {
            return Err(cannot("is a directory".into()));
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.is_dir() {
                return Err(cannot(format!(
                    "directory {} does not exist",
                    parent.display()
                )));
            }
        }
        // No SQLITE_OPEN_URI: the path is a path, even if it starts with "file:".
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| sqlite_error(path, e))?;
        let mut store = SqliteStore {
            conn,
            path: path.to_owned(),
        };
        // Switching a new file to WAL needs the exclusive lock, and SQLite answers a second
        // connection doing the same at that moment with "busy" at once, without its busy
        // handler (waiting could deadlock): try again until the busy timeout has passed.
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        loop {
            match store.configure().map_err(|e| sqlite_error(path, e)) {
                Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => break other?,
            }
        }
        store.migrate()?;
        Ok(store)
    }

    fn configure(&self) -> rusqlite::Result<()> {
        self.conn.busy_timeout(BUSY_TIMEOUT)?;
        // WAL: listing devices never waits for a batch being written, and a batch commits with
        // one sync. This is also the first statement to read the file, so a file that is not
        // a database fails here (as Corrupt).
        let _mode: String =
            self.conn
                .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        // Off by default in SQLite; the schema's REFERENCES should mean something.
        self.conn.pragma_update(None, "foreign_keys", true)?;
        Ok(())
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let path = self.path.clone();
        let e = |e| sqlite_error(&path, e);
        // IMMEDIATE takes the write lock before reading the version: of two processes opening a
        // new file at once, the second waits and then finds the schema applied.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(e)?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version     INTEGER NOT NULL PRIMARY KEY,
                description TEXT NOT NULL,
                applied_at  TEXT NOT NULL
            ) STRICT",
        )
        .map_err(e)?;
        let current: u32 = tx
            .query_row(
                "SELECT coalesce(max(version), 0) FROM schema_migrations",
                [],
                |r| r.get(0),
            )
            .map_err(e)?;
        for m in migrations::pending(SQLITE, current, || path.display().to_string())? {
            tx.execute_batch(m.sql).map_err(e)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?1, ?2, ?3)",
                (m.version, m.description, time_text(Utc::now())),
            )
            .map_err(e)?;
        }
        tx.commit().map_err(e)
    }

    fn database(&self) -> String {
        self.path.display().to_string()
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        sqlite_error(&self.path, e)
    }
}

impl ReportStore for SqliteStore {
    fn record(&mut self, batch: &[ReportRecord]) -> Result<Vec<RecordOutcome>, StoreError> {
        // Nothing to write: do not take (or wait for) the write lock.
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let path = self.path.clone();
        let database = self.database();
        let e = |e| sqlite_error(&path, e);
        // IMMEDIATE: the write lock is held from the sequence lookup to the commit, so no other
        // writer can store a report between the replay check and the write.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(e)?;
        let mut last = HashMap::new();
        {
            let mut lookup = tx
                .prepare_cached("SELECT last_sequence FROM devices WHERE device_id = ?1")
                .map_err(e)?;
            for id in plan::device_ids(batch) {
                let seq: Option<i64> =
                    lookup.query_row([id], |r| r.get(0)).optional().map_err(e)?;
                if let Some(seq) = seq {
                    last.insert(
                        id.to_owned(),
                        stored_u64(seq, "last_sequence", &database, id)?,
                    );
                }
            }
        }
        let plan = plan::plan(batch, &last);
        {
            // The guard repeats the replay rule in SQL: a row it does not update means the
            // device moved on under the lock, and the whole batch is rolled back.
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO devices (device_id, first_seen, last_seen, reports, last_sequence)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (device_id) DO UPDATE SET
                         last_seen = excluded.last_seen,
                         reports = devices.reports + excluded.reports,
                         last_sequence = excluded.last_sequence
                     WHERE devices.last_sequence < excluded.last_sequence",
                )
                .map_err(e)?;
            for d in &plan.devices {
                let changed = upsert
                    .execute((
                        d.device_id,
                        time_text(d.first_received),
                        time_text(d.latest.received_at),
                        d.added as i64,
                        d.latest.sequence as i64,
                    ))
                    .map_err(e)?;
                if changed != 1 {
                    return Err(StoreError::Conflict {
                        database,
                        device_id: d.device_id.to_owned(),
                    });
                }
            }
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO reports (device_id, sequence, cert_sha256, cert_not_after, generated_at,
                         received_at, update_state, last_error, installed_version, root_version,
                         metadata_expires, report_json)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )
                .map_err(e)?;
            for r in &plan.stored {
                // Casts are exact: validate() bounded both counters to i64::MAX.
                insert
                    .execute(rusqlite::params![
                        r.device_id,
                        r.sequence as i64,
                        r.cert_sha256,
                        r.cert_not_after.map(time_text),
                        time_text(r.generated_at),
                        time_text(r.received_at),
                        r.update_state,
                        r.last_error,
                        r.installed_version,
                        r.root_version as i64,
                        r.metadata_expires.map(time_text),
                        r.report_json,
                    ])
                    .map_err(e)?;
            }
        }
        tx.commit().map_err(e)?;
        Ok(plan.outcomes)
    }

    fn devices(&mut self) -> Result<Vec<DeviceSummary>, StoreError> {
        let database = self.database();
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT d.device_id, d.first_seen, d.last_seen, d.reports, r.sequence, r.cert_sha256,
                     r.cert_not_after, r.generated_at, r.received_at, r.update_state, r.last_error,
                     r.installed_version, r.root_version, r.metadata_expires
                 FROM devices d JOIN reports r
                     ON r.device_id = d.device_id AND r.sequence = d.last_sequence",
            )
            .map_err(|e| sqlite_error(&self.path, e))?;
        let rows = stmt
            .query_map([], RawDevice::read)
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| sqlite_error(&self.path, e))?;
        let mut devices = rows
            .into_iter()
            .map(|raw| raw.parse(&database))
            .collect::<Result<Vec<_>, _>>()?;
        // Sorted here rather than by SQL so both backends agree (byte order, no collation).
        devices.sort_by(|a, b| a.device_id.cmp(&b.device_id));
        Ok(devices)
    }

    fn latest_report(&mut self, device_id: &str) -> Result<Option<ReportRecord>, StoreError> {
        let raw = self
            .conn
            .query_row(
                "SELECT r.sequence, r.cert_sha256, r.cert_not_after, r.generated_at, r.received_at,
                     r.update_state, r.last_error, r.installed_version, r.root_version,
                     r.metadata_expires, r.report_json
                 FROM devices d JOIN reports r
                     ON r.device_id = d.device_id AND r.sequence = d.last_sequence
                 WHERE d.device_id = ?1",
                [device_id],
                |row| Ok((RawReport::read(row, 0)?, row.get::<_, String>(10)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some((raw, report_json)) = raw else {
            return Ok(None);
        };
        let last = raw.parse(&self.database(), device_id)?;
        Ok(Some(ReportRecord {
            device_id: device_id.to_owned(),
            cert_sha256: last.cert_sha256,
            cert_not_after: last.cert_not_after,
            sequence: last.sequence,
            generated_at: last.generated_at,
            received_at: last.received_at,
            update_state: last.update_state,
            last_error: last.last_error,
            installed_version: last.installed_version,
            root_version: last.root_version,
            metadata_expires: last.metadata_expires,
            report_json,
        }))
    }

    fn report_count(&mut self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM reports", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok(n.max(0) as u64)
    }

    fn schema_version(&mut self) -> Result<u32, StoreError> {
        self.conn
            .query_row(
                "SELECT coalesce(max(version), 0) FROM schema_migrations",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }
}

/// Names the SQLite failures a caller acts on differently; the rest keep SQLite's message.
fn sqlite_error(path: &Path, e: rusqlite::Error) -> StoreError {
    let path = path.to_owned();
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Locked { path },
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
            path,
            detail: e.to_string(),
        },
        Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => {
            StoreError::CannotOpen {
                path,
                reason: e.to_string(),
            }
        }
        _ => StoreError::Sqlite { path, source: e },
    }
}

/// RFC 3339 in UTC with exactly six fractional digits: fixed width, so text order is time order.
fn time_text(t: DateTime<Utc>) -> String {
    stored_time(t).format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn parse_time(
    text: &str,
    field: &str,
    database: &str,
    device_id: &str,
) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::BadRow {
            database: database.to_owned(),
            device_id: device_id.to_owned(),
            detail: format!("{field} {text:?}: {e}"),
        })
}

/// A device row as stored; parsed outside rusqlite's row callback, whose error type cannot
/// say which device and field were unreadable.
struct RawDevice {
    device_id: String,
    first_seen: String,
    last_seen: String,
    reports: i64,
    last: RawReport,
}

struct RawReport {
    sequence: i64,
    cert_sha256: String,
    cert_not_after: Option<String>,
    generated_at: String,
    received_at: String,
    update_state: String,
    last_error: Option<String>,
    installed_version: Option<String>,
    root_version: i64,
    metadata_expires: Option<String>,
}

impl RawDevice {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(RawDevice {
            device_id: row.get(0)?,
            first_seen: row.get(1)?,
            last_seen: row.get(2)?,
            reports: row.get(3)?,
            last: RawReport::read(row, 4)?,
        })
    }

    fn parse(self, database: &str) -> Result<DeviceSummary, StoreError> {
        let id = &self.device_id;
        let last = self.last.parse(database, id)?;
        Ok(DeviceSummary {
            first_seen: parse_time(&self.first_seen, "first_seen", database, id)?,
            last_seen: parse_time(&self.last_seen, "last_seen", database, id)?,
            reports: stored_u64(self.reports, "reports", database, id)?,
            last,
            device_id: self.device_id,
        })
    }
}

impl RawReport {
    /// Reads the report columns starting at column `at`, in the order of the struct's fields.
    fn read(row: &Row<'_>, at: usize) -> rusqlite::Result<Self> {
        Ok(RawReport {
            sequence: row.get(at)?,
            cert_sha256: row.get(at + 1)?,
            cert_not_after: row.get(at + 2)?,
            generated_at: row.get(at + 3)?,
            received_at: row.get(at + 4)?,
            update_state: row.get(at + 5)?,
            last_error: row.get(at + 6)?,
            installed_version: row.get(at + 7)?,
            root_version: row.get(at + 8)?,
            metadata_expires: row.get(at + 9)?,
        })
    }

    fn parse(self, database: &str, id: &str) -> Result<LatestReport, StoreError> {
        let time = |text: &str, field: &str| parse_time(text, field, database, id);
        let optional_time =
            |text: Option<String>, field: &str| text.map(|t| time(&t, field)).transpose();
        Ok(LatestReport {
            sequence: stored_u64(self.sequence, "sequence", database, id)?,
            cert_sha256: self.cert_sha256,
            cert_not_after: optional_time(self.cert_not_after, "cert_not_after")?,
            generated_at: time(&self.generated_at, "generated_at")?,
            received_at: time(&self.received_at, "received_at")?,
            update_state: self.update_state,
            last_error: self.last_error,
            installed_version: self.installed_version,
            root_version: stored_u64(self.root_version, "root_version", database, id)?,
            metadata_expires: optional_time(self.metadata_expires, "metadata_expires")?,
        })
    }
}
