//! The one interface both backends implement.

use crate::{DeviceSummary, RecordOutcome, ReportRecord, StoreError};

/// A device-report store: the latest report per device plus the history of all stored ones.
///
/// Implementations are synchronous and blocking: call them from a thread of their own, not
/// from inside an async runtime (the PostgreSQL client runs its own runtime internally and
/// panics if nested in another).
pub trait ReportStore: Send {
    /// Stores a batch in one transaction and returns each report's outcome, in order.
    ///
    /// A report whose sequence is not above the device's last stored sequence is
    /// [`RecordOutcome::Replayed`] and changes nothing, also within one batch (of two reports of
    /// one device with the same sequence, the second is replayed). This holds against
    /// concurrent writers to the same database. On a database error nothing of the batch is
    /// stored; submitting the same batch again is safe (what was stored comes back replayed).
    fn record(&mut self, batch: &[ReportRecord]) -> Result<Vec<RecordOutcome>, StoreError>;

    /// Every device with its latest report, sorted by device id (byte order).
    fn devices(&mut self) -> Result<Vec<DeviceSummary>, StoreError>;

    /// The device's latest report in full, including the verbatim document.
    fn latest_report(&mut self, device_id: &str) -> Result<Option<ReportRecord>, StoreError>;

    /// The number of stored reports (history rows), for tests and metrics.
    fn report_count(&mut self) -> Result<u64, StoreError>;

    /// The database's schema version (the newest migration applied).
    fn schema_version(&mut self) -> Result<u32, StoreError>;
}
