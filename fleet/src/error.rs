//! What can go wrong opening or using a report store.
//!
//! Every variant names the database it is about: the SQLite file, or the PostgreSQL URL with
//! its password removed (a URL as given may carry one, so no message ever echoes it).

use std::path::PathBuf;

use thiserror::Error;

/// A report store failed; the message names the database and the problem.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database argument is neither a PostgreSQL URL nor a usable SQLite path.
    #[error("database {database:?}: {reason}")]
    BadDatabase {
        /// The argument as given (only ever a path or a non-PostgreSQL scheme: no password).
        database: String,
        /// Why it was refused.
        reason: String,
    },

    /// Another process held the SQLite database locked for longer than the busy timeout.
    #[error("SQLite database {}: locked by another process for more than {} s", path.display(), crate::sqlite::BUSY_TIMEOUT.as_secs())]
    Locked {
        /// The database file.
        path: PathBuf,
    },

    /// The SQLite file is not a database, or its content is damaged.
    #[error("SQLite database {}: not a database or damaged: {detail}", path.display())]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What was found wrong.
        detail: String,
    },

    /// The SQLite database could not be opened or created (directory, missing parent, no write permission...).
    #[error("SQLite database {}: cannot open: {reason}", path.display())]
    CannotOpen {
        /// The database file.
        path: PathBuf,
        /// Why.
        reason: String,
    },

    /// Any other SQLite failure.
    #[error("SQLite database {}: {source}", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },

    /// The PostgreSQL URL could not be parsed.
    #[error("PostgreSQL URL {url_without_password}: {reason}")]
    BadPostgresUrl {
        /// The URL with any password removed (or a placeholder when it does not even parse).
        url_without_password: String,
        /// What is wrong with it.
        reason: String,
    },

    /// No PostgreSQL server answered at the URL's host and port within the connect timeout.
    #[error(
        "PostgreSQL at {url_without_password}: unreachable: {}",
        crate::postgres::describe(source)
    )]
    Unreachable {
        /// The URL with any password removed.
        url_without_password: String,
        /// The connection error.
        #[source]
        source: postgres::Error,
    },

    /// The PostgreSQL server refused the user (wrong password, or no pg_hba.conf entry for it).
    #[error(
        "PostgreSQL at {url_without_password}: authentication as user {user:?} failed: {reason}"
    )]
    AuthenticationFailed {
        /// The URL with any password removed.
        url_without_password: String,
        /// The user name tried.
        user: String,
        /// The server's message.
        reason: String,
    },

    /// The PostgreSQL database named in the URL does not exist.
    #[error("PostgreSQL at {url_without_password}: database {database:?} does not exist")]
    NoSuchDatabase {
        /// The URL with any password removed.
        url_without_password: String,
        /// The database name.
        database: String,
    },

    /// Any other PostgreSQL failure.
    #[error(
        "PostgreSQL at {url_without_password}: {}",
        crate::postgres::describe(source)
    )]
    Postgres {
        /// The URL with any password removed.
        url_without_password: String,
        /// The PostgreSQL error.
        #[source]
        source: postgres::Error,
    },

    /// The database was migrated by a newer build: refusing rather than misreading its tables.
    #[error(
        "database {database}: schema version {found} is newer than this ota-server knows ({known})"
    )]
    SchemaTooNew {
        /// The SQLite path or the PostgreSQL URL without password.
        database: String,
        /// The version recorded in the database.
        found: u32,
        /// The newest version this build knows.
        known: u32,
    },

    /// A device's row changed under a transaction that had locked it: another writer does not
    /// follow the locking protocol. Nothing of the batch was stored.
    #[error("database {database}: device {device_id:?} changed while its batch was being stored")]
    Conflict {
        /// The SQLite path or the PostgreSQL URL without password.
        database: String,
        /// The device.
        device_id: String,
    },

    /// A stored row holds a value this build cannot read (edited by hand, or damaged).
    #[error("database {database}: device {device_id:?}: unreadable stored value: {detail}")]
    BadRow {
        /// The SQLite path or the PostgreSQL URL without password.
        database: String,
        /// The device whose row it is.
        device_id: String,
        /// What is wrong.
        detail: String,
    },
}
