//! The server backend: a PostgreSQL database given as `postgres://USER:PASSWORD@HOST:PORT/DB`.
//!
//! Uses the synchronous client (it runs a small runtime of its own): the server calls the
//! store from one dedicated thread, so nothing here needs async.

use std::collections::HashMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use postgres::error::SqlState;
use postgres::{Client, Config, NoTls, Row};

use crate::migrations::{self, POSTGRES};
use crate::plan;
use crate::record::{stored_time, stored_u64};
use crate::{
    DeviceSummary, LatestReport, RecordOutcome, ReportRecord, ReportStore, StoreError,
    POSTGRES_CONNECT_TIMEOUT,
};

/// The advisory-lock key serializing migrations ("ota-flt" in ASCII): openers of one database
/// wait for each other instead of both creating the tables.
const MIGRATION_LOCK: i64 = 0x006f_7461_2d66_6c74;

/// A report store in a PostgreSQL database.
pub(crate) struct PostgresStore {
    config: Config,
    /// The URL without its password, for messages.
    display: String,
    client: Client,
    /// The last failure left the connection unusable: reconnect before the next operation.
    broken: bool,
}

impl PostgresStore {
    /// Connects, then brings the schema up to date.
    pub(crate) fn open(url: &str) -> Result<Self, StoreError> {
        let display = without_password(url);
        let mut config = Config::from_str(url).map_err(|e| StoreError::BadPostgresUrl {
            url_without_password: display.clone(),
            reason: describe(&e),
        })?;
        // Without it an address that drops packets would hang the server for minutes (the
        // kernel's SYN retries); a URL's own connect_timeout wins.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(POSTGRES_CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("ota-server");
        }
        let client = connect(&config, &display)?;
        let mut store = PostgresStore {
            config,
            display,
            client,
            broken: false,
        };
        store.migrate()?;
        Ok(store)
    }

    /// The connection, re-established if the previous one was lost (server restart, network):
    /// the call that saw it break failed, the next one works again.
    fn client(&mut self) -> Result<&mut Client, StoreError> {
        if self.broken || self.client.is_closed() {
            self.client = connect(&self.config, &self.display)?;
            self.broken = false;
        }
        Ok(&mut self.client)
    }

    /// Runs an operation, and marks the connection for replacement when its failure was not
    /// an ordinary SQL error: the client notices a terminated or reset connection only later
    /// (`is_closed` stays false until then), so the next call would fail again otherwise.
    fn watch<T>(
        &mut self,
        op: impl FnOnce(&mut Self) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let result = op(self);
        if let Err(StoreError::Postgres { source, .. }) = &result {
            let ordinary = source
                .as_db_error()
                .is_some_and(|db| db.severity() == "ERROR");
            self.broken |= !ordinary;
        }
        result
    }

    fn err(&self, source: postgres::Error) -> StoreError {
        StoreError::Postgres {
            url_without_password: self.display.clone(),
            source,
        }
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let display = self.display.clone();
        let e = |source| StoreError::Postgres {
            url_without_password: display.clone(),
            source,
        };
        let mut tx = self.client()?.transaction().map_err(e)?;
        // Taken before anything is read: a second opener waits here until the first commits,
        // then finds the schema current (released by the transaction's end).
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(e)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version     INTEGER NOT NULL PRIMARY KEY,
                description TEXT NOT NULL,
                applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .map_err(e)?;
        let row = tx
            .query_one(
                "SELECT coalesce(max(version), 0) FROM schema_migrations",
                &[],
            )
            .map_err(e)?;
        let current: i32 = row.try_get(0).map_err(e)?;
        // A negative version cannot come from a migration; read it as "nothing applied".
        let current = u32::try_from(current).unwrap_or(0);
        for m in migrations::pending(POSTGRES, current, || display.clone())? {
            tx.batch_execute(m.sql).map_err(e)?;
            let version = m.version as i32;
            tx.execute(
                "INSERT INTO schema_migrations (version, description) VALUES ($1, $2)",
                &[&version, &m.description],
            )
            .map_err(e)?;
        }
        tx.commit().map_err(e)
    }
}

impl ReportStore for PostgresStore {
    fn record(&mut self, batch: &[ReportRecord]) -> Result<Vec<RecordOutcome>, StoreError> {
        self.watch(|s| s.try_record(batch))
    }

    fn devices(&mut self) -> Result<Vec<DeviceSummary>, StoreError> {
        self.watch(Self::try_devices)
    }

    fn latest_report(&mut self, device_id: &str) -> Result<Option<ReportRecord>, StoreError> {
        self.watch(|s| s.try_latest_report(device_id))
    }

    fn report_count(&mut self) -> Result<u64, StoreError> {
        self.watch(Self::try_report_count)
    }

    fn schema_version(&mut self) -> Result<u32, StoreError> {
        self.watch(Self::try_schema_version)
    }
}

/// The operations, each wrapped by [`PostgresStore::watch`] in the trait impl below.
impl PostgresStore {
    fn try_record(&mut self, batch: &[ReportRecord]) -> Result<Vec<RecordOutcome>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let display = self.display.clone();
        let e = |source| StoreError::Postgres {
            url_without_password: display.clone(),
            source,
        };
        let mut tx = self.client()?.transaction().map_err(e)?;
        // One writer at a time from lookup to commit, so a replay check cannot go stale. It
        // conflicts with itself and with other writes, not with readers: listing never waits.
        // (Row locks would not cover devices that do not exist yet.)
        tx.batch_execute("LOCK TABLE devices IN SHARE ROW EXCLUSIVE MODE")
            .map_err(e)?;
        let ids = plan::device_ids(batch);
        let mut last = HashMap::with_capacity(ids.len());
        for row in tx
            .query(
                "SELECT device_id, last_sequence FROM devices WHERE device_id = ANY($1)",
                &[&ids],
            )
            .map_err(e)?
        {
            let id: String = row.try_get(0).map_err(e)?;
            let seq: i64 = row.try_get(1).map_err(e)?;
            let seq = stored_u64(seq, "last_sequence", &display, &id)?;
            last.insert(id, seq);
        }
        let plan = plan::plan(batch, &last);
        if !plan.stored.is_empty() {
            write_plan(&mut tx, &plan).map_err(|w| match w {
                Write::Db(source) => e(source),
                Write::Conflict(device_id) => StoreError::Conflict {
                    database: display.clone(),
                    device_id,
                },
            })?;
        }
        tx.commit().map_err(e)?;
        Ok(plan.outcomes)
    }

    fn try_devices(&mut self) -> Result<Vec<DeviceSummary>, StoreError> {
        let rows = self
            .client()?
            .query(
                "SELECT d.device_id, d.first_seen, d.last_seen, d.reports, r.sequence, r.cert_sha256,
                     r.cert_not_after, r.generated_at, r.received_at, r.update_state, r.last_error,
                     r.installed_version, r.root_version, r.metadata_expires
                 FROM devices d JOIN reports r
                     ON r.device_id = d.device_id AND r.sequence = d.last_sequence",
                &[],
            )
            .map_err(|e| self.err(e))?;
        let mut devices = Vec::with_capacity(rows.len());
        for row in &rows {
            let device_id: String = row.try_get(0).map_err(|e| self.err(e))?;
            let reports: i64 = row.try_get(3).map_err(|e| self.err(e))?;
            devices.push(DeviceSummary {
                first_seen: row.try_get(1).map_err(|e| self.err(e))?,
                last_seen: row.try_get(2).map_err(|e| self.err(e))?,
                reports: stored_u64(reports, "reports", &self.display, &device_id)?,
                last: self.latest(row, 4, &device_id)?,
                device_id,
            });
        }
        // Sorted here rather than by SQL: ORDER BY would follow the database's collation, and
        // both backends should list in the same (byte) order.
        devices.sort_by(|a, b| a.device_id.cmp(&b.device_id));
        Ok(devices)
    }

    fn try_latest_report(&mut self, device_id: &str) -> Result<Option<ReportRecord>, StoreError> {
        let row = self
            .client()?
            .query_opt(
                "SELECT r.sequence, r.cert_sha256, r.cert_not_after, r.generated_at, r.received_at,
                     r.update_state, r.last_error, r.installed_version, r.root_version,
                     r.metadata_expires, r.report_json
                 FROM devices d JOIN reports r
                     ON r.device_id = d.device_id AND r.sequence = d.last_sequence
                 WHERE d.device_id = $1",
                &[&device_id],
            )
            .map_err(|e| self.err(e))?;
        let Some(row) = row else { return Ok(None) };
        let last = self.latest(&row, 0, device_id)?;
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
            report_json: row.try_get(10).map_err(|e| self.err(e))?,
        }))
    }

    fn try_report_count(&mut self) -> Result<u64, StoreError> {
        let row = self
            .client()?
            .query_one("SELECT count(*) FROM reports", &[])
            .map_err(|e| self.err(e))?;
        let n: i64 = row.try_get(0).map_err(|e| self.err(e))?;
        Ok(n.max(0) as u64)
    }

    fn try_schema_version(&mut self) -> Result<u32, StoreError> {
        let row = self
            .client()?
            .query_one(
                "SELECT coalesce(max(version), 0) FROM schema_migrations",
                &[],
            )
            .map_err(|e| self.err(e))?;
        let version: i32 = row.try_get(0).map_err(|e| self.err(e))?;
        Ok(u32::try_from(version).unwrap_or(0))
    }
}

impl PostgresStore {
    /// Reads the report columns starting at column `at`, in the order of [`LatestReport`]'s fields.
    fn latest(&self, row: &Row, at: usize, device_id: &str) -> Result<LatestReport, StoreError> {
        let e = |e| self.err(e);
        let sequence: i64 = row.try_get(at).map_err(e)?;
        let root_version: i64 = row.try_get(at + 8).map_err(e)?;
        Ok(LatestReport {
            sequence: stored_u64(sequence, "sequence", &self.display, device_id)?,
            cert_sha256: row.try_get(at + 1).map_err(e)?,
            cert_not_after: row.try_get(at + 2).map_err(e)?,
            generated_at: row.try_get(at + 3).map_err(e)?,
            received_at: row.try_get(at + 4).map_err(e)?,
            update_state: row.try_get(at + 5).map_err(e)?,
            last_error: row.try_get(at + 6).map_err(e)?,
            installed_version: row.try_get(at + 7).map_err(e)?,
            root_version: stored_u64(root_version, "root_version", &self.display, device_id)?,
            metadata_expires: row.try_get(at + 9).map_err(e)?,
        })
    }
}

/// Why writing a plan failed.
enum Write {
    Db(postgres::Error),
    /// A device row the lock should have protected had moved on.
    Conflict(String),
}

impl From<postgres::Error> for Write {
    fn from(e: postgres::Error) -> Self {
        Write::Db(e)
    }
}

/// Writes the plan as two statements over arrays (one round trip each, however large the
/// batch: 10,000 reports one by one would take seconds of round trips).
fn write_plan(tx: &mut postgres::Transaction<'_>, plan: &plan::Plan<'_>) -> Result<(), Write> {
    let d = &plan.devices;
    let ids: Vec<&str> = d.iter().map(|d| d.device_id).collect();
    let first: Vec<DateTime<Utc>> = d.iter().map(|d| stored_time(d.first_received)).collect();
    let last_seen: Vec<DateTime<Utc>> = d
        .iter()
        .map(|d| stored_time(d.latest.received_at))
        .collect();
    // Casts are exact: validate() bounded sequences and root versions to i64::MAX.
    let added: Vec<i64> = d.iter().map(|d| d.added as i64).collect();
    let seqs: Vec<i64> = d.iter().map(|d| d.latest.sequence as i64).collect();
    // The guard repeats the replay rule in SQL: a row it leaves alone means the device moved
    // on despite the lock, and the whole batch is rolled back.
    let updated = tx.query(
        "INSERT INTO devices (device_id, first_seen, last_seen, reports, last_sequence)
         SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::bigint[], $5::bigint[])
         ON CONFLICT (device_id) DO UPDATE SET
             last_seen = excluded.last_seen,
             reports = devices.reports + excluded.reports,
             last_sequence = excluded.last_sequence
         WHERE devices.last_sequence < excluded.last_sequence
         RETURNING device_id",
        &[&ids, &first, &last_seen, &added, &seqs],
    )?;
    if updated.len() != d.len() {
        let done: std::collections::HashSet<String> = updated
            .iter()
            .filter_map(|r| r.try_get::<_, String>(0).ok())
            .collect();
        let missing = ids
            .iter()
            .find(|id| !done.contains(**id))
            .map_or_else(String::new, |id| (*id).to_owned());
        return Err(Write::Conflict(missing));
    }

    let s = &plan.stored;
    let time = |f: fn(&ReportRecord) -> DateTime<Utc>| {
        s.iter().map(|r| stored_time(f(r))).collect::<Vec<_>>()
    };
    let optional_time = |f: fn(&ReportRecord) -> Option<DateTime<Utc>>| {
        s.iter().map(|r| f(r).map(stored_time)).collect::<Vec<_>>()
    };
    let text = |f: fn(&ReportRecord) -> &str| s.iter().map(|r| f(r)).collect::<Vec<&str>>();
    let optional_text = |f: fn(&ReportRecord) -> Option<&str>| {
        s.iter().map(|r| f(r)).collect::<Vec<Option<&str>>>()
    };
    let seq: Vec<i64> = s.iter().map(|r| r.sequence as i64).collect();
    let root: Vec<i64> = s.iter().map(|r| r.root_version as i64).collect();
    tx.execute(
        "INSERT INTO reports (device_id, sequence, cert_sha256, cert_not_after, generated_at,
             received_at, update_state, last_error, installed_version, root_version,
             metadata_expires, report_json)
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::timestamptz[],
             $5::timestamptz[], $6::timestamptz[], $7::text[], $8::text[], $9::text[],
             $10::bigint[], $11::timestamptz[], $12::text[])",
        &[
            &text(|r| &r.device_id),
            &seq,
            &text(|r| &r.cert_sha256),
            &optional_time(|r| r.cert_not_after),
            &time(|r| r.generated_at),
            &time(|r| r.received_at),
            &text(|r| &r.update_state),
            &optional_text(|r| r.last_error.as_deref()),
            &optional_text(|r| r.installed_version.as_deref()),
            &root,
            &optional_time(|r| r.metadata_expires),
            &text(|r| &r.report_json),
        ],
    )?;
    Ok(())
}

/// Connects, naming what went wrong: no server, wrong credentials, or no such database.
fn connect(config: &Config, display: &str) -> Result<Client, StoreError> {
    config.connect(NoTls).map_err(|source| {
        let url_without_password = display.to_owned();
        let Some(db) = source.as_db_error() else {
            // Socket-level failures (refused, timed out, no route, DNS) carry an io::Error;
            // anything else (e.g. "password missing") is a configuration problem, said as is.
            let io = std::error::Error::source(&source).is_some_and(|s| s.is::<std::io::Error>());
            return if io {
                StoreError::Unreachable {
                    url_without_password,
                    source,
                }
            } else {
                StoreError::Postgres {
                    url_without_password,
                    source,
                }
            };
        };
        let user = config.get_user().unwrap_or_default().to_owned();
        match db.code() {
            c if *c == SqlState::INVALID_PASSWORD
                || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
            {
                StoreError::AuthenticationFailed {
                    url_without_password,
                    user,
                    reason: db.message().to_owned(),
                }
            }
            c if *c == SqlState::INVALID_CATALOG_NAME => StoreError::NoSuchDatabase {
                url_without_password,
                // PostgreSQL's default database is the user's name.
                database: config.get_dbname().map_or(user, str::to_owned),
            },
            _ => StoreError::Postgres {
                url_without_password,
                source,
            },
        }
    })
}

/// The whole of a PostgreSQL error on one line: the client's own Display says only "db error"
/// or "error connecting to server", and the project prints errors by Display alone.
pub(crate) fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut line = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
        if let Some(detail) = db.detail() {
            line = format!("{line} ({detail})");
        }
        return line;
    }
    let mut line = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        line = format!("{line}: {c}");
        cause = c.source();
    }
    line
}

/// The URL for messages: no password, and no query (which may carry `password=`).
fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            // Fails only for URLs that cannot have one; then there is none to hide.
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        // Echo nothing of an unparsable URL: where its password is cannot be known.
        Err(_) => "postgres://(unparsable URL)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(
            without_password("postgres://ota:s3cret@db.example:5433/fleet"),
            "postgres://ota@db.example:5433/fleet"
        );
        assert_eq!(
            without_password("postgresql://ota@h/db?password=s3cret&sslmode=disable"),
            "postgresql://ota@h/db"
        );
        assert!(!without_password("postgres://ota:s3cret@[bad").contains("s3cret"));
    }
}
