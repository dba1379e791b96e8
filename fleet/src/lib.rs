//! ota-fleet: the device-report store of `ota-server`.
//!
//! Devices post signed status reports; the server verifies them and hands the store
//! [`ReportRecord`]s. The store keeps each device's latest report plus the history, refuses
//! replays (a sequence not above the device's last stored one), and lists devices for
//! `ota-server devices`, where [`flags`] marks those needing attention.
//!
//! Two backends behind [`ReportStore`], chosen by [`open`]: SQLite (a file, zero setup) and
//! PostgreSQL (`postgres://...`). Both apply their schema migrations at open.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod device;
mod error;
mod flags;
pub mod migrations;
mod plan;
mod postgres;
mod record;
mod sqlite;
mod store;

pub use device::{DeviceSummary, LatestReport};
pub use error::StoreError;
pub use flags::{flags, Flag};
pub use record::{InvalidReport, RecordOutcome, ReportRecord, MAX_STORED_INTEGER};
pub use store::ReportStore;

/// How long a PostgreSQL connection attempt may take when the URL sets no `connect_timeout`.
pub const POSTGRES_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a SQLite operation waits for another process's lock before [`StoreError::Locked`].
pub const SQLITE_BUSY_TIMEOUT: std::time::Duration = sqlite::BUSY_TIMEOUT;

/// Opens the store named by `database`, creating and migrating it as needed.
///
/// `postgres://...` or `postgresql://...` is a PostgreSQL URL (no TLS; the password, if any,
/// never appears in errors). `sqlite:PATH` or a plain path is a SQLite file, created if missing
/// (its directory must exist). Any other `scheme://` is refused rather than taken as a file name.
pub fn open(database: &str) -> Result<Box<dyn ReportStore>, StoreError> {
    let lower = database.get(..14).unwrap_or(database).to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        return Ok(Box::new(postgres::PostgresStore::open(database)?));
    }
    let path = database.strip_prefix("sqlite:").unwrap_or(database);
    if path.is_empty() {
        return Err(StoreError::BadDatabase {
            database: database.to_owned(),
            reason: "no SQLite path given".into(),
        });
    }
    if let Some((scheme, _)) = database.split_once("://") {
        // Only the scheme is echoed: the rest may hold credentials.
        return Err(StoreError::BadDatabase {
            database: format!("{scheme}://..."),
            reason: "unsupported database; give postgres://USER:PASSWORD@HOST:PORT/DATABASE or a SQLite file path"
                .into(),
        });
    }
    Ok(Box::new(sqlite::SqliteStore::open(std::path::Path::new(
        path,
    ))?))
}
