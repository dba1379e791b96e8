//! Deciding, for one batch, which reports are stored and which are replays.
//!
//! Both backends lock, read the batch's devices' last sequences, plan here, then write the
//! plan in the same transaction: the replay rule lives in one place, and the writes become a
//! few set-wise statements instead of one round trip per report.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::{RecordOutcome, ReportRecord};

/// What one batch changes.
pub(crate) struct Plan<'a> {
    /// One outcome per report of the batch, in order.
    pub outcomes: Vec<RecordOutcome>,
    /// The reports to add to the history, in batch order.
    pub stored: Vec<&'a ReportRecord>,
    /// One entry per device that gets at least one stored report.
    pub devices: Vec<DeviceUpdate<'a>>,
}

/// The new state of one device's row.
pub(crate) struct DeviceUpdate<'a> {
    /// The device.
    pub device_id: &'a str,
    /// Reception time of its first report stored by this batch: `first_seen` of a new device.
    pub first_received: DateTime<Utc>,
    /// Its latest report after this batch (stored sequences only grow, so the last one stored).
    pub latest: &'a ReportRecord,
    /// How many of its reports this batch stores.
    pub added: u64,
}

/// The distinct device ids of the batch's valid reports: whose last sequence to look up.
pub(crate) fn device_ids(batch: &[ReportRecord]) -> Vec<&str> {
    let mut ids: Vec<&str> = batch
        .iter()
        .filter(|r| r.validate().is_ok())
        .map(|r| r.device_id.as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Plans the batch against the devices' last stored sequences (absent: a new device).
pub(crate) fn plan<'a>(
    batch: &'a [ReportRecord],
    last_sequences: &HashMap<String, u64>,
) -> Plan<'a> {
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut stored = Vec::with_capacity(batch.len());
    let mut devices: Vec<DeviceUpdate<'a>> = Vec::new();
    // Index into `devices`, and each device's last sequence including this batch so far.
    let mut index: HashMap<&'a str, usize> = HashMap::new();
    let mut current: HashMap<&'a str, u64> = HashMap::new();
    for report in batch {
        if let Err(invalid) = report.validate() {
            outcomes.push(RecordOutcome::Invalid(invalid));
            continue;
        }
        let id = report.device_id.as_str();
        let last = current
            .get(id)
            .copied()
            .or_else(|| last_sequences.get(id).copied());
        if let Some(last_sequence) = last.filter(|&last| report.sequence <= last) {
            outcomes.push(RecordOutcome::Replayed { last_sequence });
            continue;
        }
        current.insert(id, report.sequence);
        stored.push(report);
        outcomes.push(RecordOutcome::Stored);
        match index.get(id) {
            Some(&i) => {
                devices[i].latest = report;
                devices[i].added += 1;
            }
            None => {
                index.insert(id, devices.len());
                devices.push(DeviceUpdate {
                    device_id: id,
                    first_received: report.received_at,
                    latest: report,
                    added: 1,
                });
            }
        }
    }
    Plan {
        outcomes,
        stored,
        devices,
    }
}
