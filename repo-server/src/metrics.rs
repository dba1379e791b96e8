//! Prometheus metrics (`GET /metrics`, text exposition format 0.0.4): requests, bytes and
//! errors by route and status, time left until each role's metadata expires, reports
//! received, resident memory.
//!
//! Counting is a few relaxed atomic increments per request in fixed arrays (route × status),
//! so it costs nothing measurable on the serving path; the expiry times are read from the
//! repository when scraped.
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::reports::sink::SinkStats;

use chrono::{DateTime, Utc};

/// The metrics route.
pub const PATH: &str = "/metrics";

/// Routes counted separately.
const ROUTES: [&str; 7] = [
    "metadata", "targets", "healthz", "metrics", "reports", "uploads", "other",
];
/// Statuses counted separately; anything else is `other`.
const STATUSES: [u16; 17] = [
    200, 201, 204, 206, 304, 400, 401, 403, 404, 405, 409, 413, 416, 422, 500, 503, 0,
];

/// The counters of one server.
#[derive(Debug)]
pub struct Metrics {
    requests: Vec<AtomicU64>,
    bytes: Vec<AtomicU64>,
    /// Reports stored, replays refused (shared with the report store thread).
    reports: Option<Arc<SinkStats>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::with_reports(None)
    }
}

/// The route label of a request path.
pub fn route_of(path: &str) -> &'static str {
    if path.starts_with("/metadata/") {
        "metadata"
    } else if path.starts_with("/targets/") {
        "targets"
    } else if path == crate::health::PATH {
        "healthz"
    } else if path == PATH {
        "metrics"
    } else if path == crate::reports::PATH {
        "reports"
    } else if path.starts_with("/api/v1/uploads") {
        "uploads"
    } else {
        "other"
    }
}

fn route_index(route: &str) -> usize {
    ROUTES
        .iter()
        .position(|r| *r == route)
        .unwrap_or(ROUTES.len() - 1)
}

fn status_index(status: u16) -> usize {
    STATUSES
        .iter()
        .position(|s| *s == status)
        .unwrap_or(STATUSES.len() - 1)
}

impl Metrics {
    /// Counters that also show the report store's (`reports`).
    pub(crate) fn with_reports(reports: Option<Arc<SinkStats>>) -> Self {
        Metrics {
            requests: (0..ROUTES.len() * STATUSES.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            bytes: (0..ROUTES.len()).map(|_| AtomicU64::new(0)).collect(),
            reports,
        }
    }

    /// Count one response.
    pub fn record(&self, route: &str, status: u16, bytes: u64) {
        let r = route_index(route);
        if let Some(c) = self.requests.get(r * STATUSES.len() + status_index(status)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(c) = self.bytes.get(r) {
            c.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// The exposition text, with role expiry read from `repo` at `now`.
    pub fn render(&self, repo: &Path, now: DateTime<Utc>) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP ota_requests_total HTTP responses by route and status.\n");
        out.push_str("# TYPE ota_requests_total counter\n");
        let mut errors = String::new();
        for (ri, route) in ROUTES.iter().enumerate() {
            for (si, status) in STATUSES.iter().enumerate() {
                let n = self.requests[ri * STATUSES.len() + si].load(Ordering::Relaxed);
                if n == 0 {
                    continue;
                }
                let label = if *status == 0 {
                    "other".to_string()
                } else {
                    status.to_string()
                };
                let _ = writeln!(
                    out,
                    "ota_requests_total{{route=\"{route}\",status=\"{label}\"}} {n}"
                );
                if *status >= 400 || *status == 0 {
                    let _ = writeln!(
                        errors,
                        "ota_errors_total{{route=\"{route}\",status=\"{label}\"}} {n}"
                    );
                }
            }
        }
        out.push_str(
            "# HELP ota_errors_total HTTP error responses (4xx, 5xx) by route and status.\n",
        );
        out.push_str("# TYPE ota_errors_total counter\n");
        out.push_str(&errors);
        out.push_str("# HELP ota_response_bytes_total Response body bytes planned, by route.\n");
        out.push_str("# TYPE ota_response_bytes_total counter\n");
        for (ri, route) in ROUTES.iter().enumerate() {
            let n = self.bytes[ri].load(Ordering::Relaxed);
            let _ = writeln!(out, "ota_response_bytes_total{{route=\"{route}\"}} {n}");
        }
        out.push_str(
            "# HELP ota_role_expires_in_seconds Time left until the served metadata of each role expires (negative: expired).\n",
        );
        out.push_str("# TYPE ota_role_expires_in_seconds gauge\n");
        out.push_str("# HELP ota_role_version Version of the served metadata of each role.\n");
        out.push_str("# TYPE ota_role_version gauge\n");
        for (role, version, expires) in served_roles(repo) {
            let left = (expires - now).num_seconds();
            let _ = writeln!(out, "ota_role_expires_in_seconds{{role=\"{role}\"}} {left}");
            let _ = writeln!(out, "ota_role_version{{role=\"{role}\"}} {version}");
        }
        if let Some(r) = &self.reports {
            out.push_str("# HELP ota_reports_total Device status reports by outcome.\n");
            out.push_str("# TYPE ota_reports_total counter\n");
            let stored = r.stored.load(Ordering::Relaxed);
            let replayed = r.replayed.load(Ordering::Relaxed);
            let failed = r.failed_batches.load(Ordering::Relaxed);
            let _ = writeln!(out, "ota_reports_total{{outcome=\"stored\"}} {stored}");
            let _ = writeln!(out, "ota_reports_total{{outcome=\"replayed\"}} {replayed}");
            out.push_str("# HELP ota_report_store_failed_batches_total Report batches the database refused.\n");
            out.push_str("# TYPE ota_report_store_failed_batches_total counter\n");
            let _ = writeln!(out, "ota_report_store_failed_batches_total {failed}");
        }
        if let Some(rss) = resident_bytes() {
            out.push_str("# HELP process_resident_memory_bytes Resident memory size in bytes.\n");
            out.push_str("# TYPE process_resident_memory_bytes gauge\n");
            let _ = writeln!(out, "process_resident_memory_bytes {rss}");
        }
        out
    }
}

/// `(role, version, expires)` of the served root, timestamp, snapshot and targets, followed
/// the way a client does (timestamp → snapshot version → targets version); roles that cannot
/// be read are left out (the health check reports why).
fn served_roles(repo: &Path) -> Vec<(&'static str, u64, DateTime<Utc>)> {
    let meta = repo.join("metadata");
    let read = |name: &str| -> Option<serde_json::Value> {
        let bytes = ota_fs::user_file::read(&meta.join(name), 256 << 20).ok()?;
        serde_json::from_slice(&bytes).ok()
    };
    let fields = |v: &serde_json::Value| -> Option<(u64, DateTime<Utc>)> {
        let s = v.get("signed")?;
        Some((
            s.get("version")?.as_u64()?,
            s.get("expires")?.as_str()?.parse().ok()?,
        ))
    };
    let listed = |v: &serde_json::Value, file: &str| -> Option<u64> {
        v.get("signed")?
            .get("meta")?
            .get(file)?
            .get("version")?
            .as_u64()
    };
    let versioned = |role: &str, version: Option<u64>| {
        version
            .and_then(|n| read(&format!("{n}.{role}.json")))
            .or_else(|| read(&format!("{role}.json")))
    };
    let mut out = Vec::new();
    if let Some((v, e)) = read("root.json").as_ref().and_then(fields) {
        out.push(("root", v, e));
    }
    let Some(timestamp) = read("timestamp.json") else {
        return out;
    };
    if let Some((v, e)) = fields(&timestamp) {
        out.push(("timestamp", v, e));
    }
    let Some(snapshot) = versioned("snapshot", listed(&timestamp, "snapshot.json")) else {
        return out;
    };
    if let Some((v, e)) = fields(&snapshot) {
        out.push(("snapshot", v, e));
    }
    if let Some((v, e)) = versioned("targets", listed(&snapshot, "targets.json"))
        .as_ref()
        .and_then(fields)
    {
        out.push(("targets", v, e));
    }
    out
}

/// Resident set size from `/proc/self/statm` (Linux).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value; no memory is passed.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_route_and_status_and_lists_errors() {
        let m = Metrics::default();
        m.record(route_of("/metadata/timestamp.json"), 200, 100);
        m.record(route_of("/metadata/timestamp.json"), 200, 100);
        m.record(route_of("/targets/x"), 404, 0);
        m.record(route_of("/nope"), 599, 0);
        let text = m.render(Path::new("/nonexistent"), Utc::now());
        assert!(text.contains("ota_requests_total{route=\"metadata\",status=\"200\"} 2\n"));
        assert!(text.contains("ota_errors_total{route=\"targets\",status=\"404\"} 1\n"));
        assert!(text.contains("ota_requests_total{route=\"other\",status=\"other\"} 1\n"));
        assert!(text.contains("ota_response_bytes_total{route=\"metadata\"} 200\n"));
        assert!(!text.contains("ota_errors_total{route=\"metadata\""));
        assert!(!text.contains("ota_role_expires_in_seconds{"));
    }
}
