//! The schema, as an ordered list of migrations per backend.
//!
//! Each backend applies, at open and in one transaction that excludes other openers, the
//! migrations above the version recorded in `schema_migrations`. Append new migrations; never
//! edit an applied one (databases in the field already ran it). Both lists must keep the same
//! versions so that a database's version means the same schema on either backend.
//!
//! `devices` holds one row per device: when it was first and last seen, how many reports are
//! stored, and its last stored sequence, which is what replays are checked against. The
//! latest report's fields are read from `reports` by (device_id, last_sequence), so they are
//! stored once.

/// One schema step.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Its version: 1, 2, ... in order.
    pub version: u32,
    /// What it does, recorded in `schema_migrations`.
    pub description: &'static str,
    /// The statements.
    pub sql: &'static str,
}

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: u32 = 1;

/// SQLite: timestamps are RFC 3339 text in UTC with microseconds (sortable and readable with
/// the sqlite3 shell); STRICT tables refuse values of the wrong type.
pub const SQLITE: &[Migration] = &[Migration {
    version: 1,
    description: "devices and report history",
    sql: "
        CREATE TABLE devices (
            device_id     TEXT NOT NULL PRIMARY KEY,
            first_seen    TEXT NOT NULL,
            last_seen     TEXT NOT NULL,
            reports       INTEGER NOT NULL,
            last_sequence INTEGER NOT NULL
        ) STRICT;
        CREATE TABLE reports (
            id                INTEGER PRIMARY KEY,
            device_id         TEXT NOT NULL REFERENCES devices (device_id),
            sequence          INTEGER NOT NULL,
            cert_sha256       TEXT NOT NULL,
            cert_not_after    TEXT,
            generated_at      TEXT NOT NULL,
            received_at       TEXT NOT NULL,
            update_state      TEXT NOT NULL,
            last_error        TEXT,
            installed_version TEXT,
            root_version      INTEGER NOT NULL,
            metadata_expires  TEXT,
            report_json       TEXT NOT NULL,
            UNIQUE (device_id, sequence)
        ) STRICT;
    ",
}];

/// PostgreSQL.
pub const POSTGRES: &[Migration] = &[Migration {
    version: 1,
    description: "devices and report history",
    sql: "
        CREATE TABLE devices (
            device_id     TEXT NOT NULL PRIMARY KEY,
            first_seen    TIMESTAMPTZ NOT NULL,
            last_seen     TIMESTAMPTZ NOT NULL,
            reports       BIGINT NOT NULL,
            last_sequence BIGINT NOT NULL
        );
        CREATE TABLE reports (
            id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            device_id         TEXT NOT NULL REFERENCES devices (device_id),
            sequence          BIGINT NOT NULL,
            cert_sha256       TEXT NOT NULL,
            cert_not_after    TIMESTAMPTZ,
            generated_at      TIMESTAMPTZ NOT NULL,
            received_at       TIMESTAMPTZ NOT NULL,
            update_state      TEXT NOT NULL,
            last_error        TEXT,
            installed_version TEXT,
            root_version      BIGINT NOT NULL,
            metadata_expires  TIMESTAMPTZ,
            report_json       TEXT NOT NULL,
            UNIQUE (device_id, sequence)
        );
    ",
}];

/// The migrations above `current`, in order; refuses a schema newer than this build knows.
pub(crate) fn pending(
    list: &'static [Migration],
    current: u32,
    database: impl FnOnce() -> String,
) -> Result<&'static [Migration], crate::StoreError> {
    if current > SCHEMA_VERSION {
        return Err(crate::StoreError::SchemaTooNew {
            database: database(),
            found: current,
            known: SCHEMA_VERSION,
        });
    }
    let start = list
        .iter()
        .position(|m| m.version > current)
        .unwrap_or(list.len());
    Ok(&list[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_ordered_and_agree() {
        for list in [SQLITE, POSTGRES] {
            let versions: Vec<u32> = list.iter().map(|m| m.version).collect();
            let expected: Vec<u32> = (1..=SCHEMA_VERSION).collect();
            assert_eq!(versions, expected);
        }
        for (s, p) in SQLITE.iter().zip(POSTGRES) {
            assert_eq!(s.description, p.description);
        }
    }

    #[test]
    fn pending_skips_applied_and_refuses_newer() {
        assert_eq!(pending(SQLITE, 0, String::new).unwrap().len(), SQLITE.len());
        assert!(pending(SQLITE, SCHEMA_VERSION, String::new)
            .unwrap()
            .is_empty());
        let err = pending(SQLITE, SCHEMA_VERSION + 4, || "db".into()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "database db: schema version {} is newer than this ota-server knows ({SCHEMA_VERSION})",
                SCHEMA_VERSION + 4
            )
        );
    }
}
