//! `GET /healthz`: whether devices can update from this server right now. 200 when
//! `metadata/timestamp.json` is readable and not expired (the body says until when), 503
//! otherwise (the body says why): an expired timestamp means every device refuses the
//! repository, which a load balancer or a monitor must notice before the devices do.
use chrono::{DateTime, Utc};
use std::path::Path;

/// The path this module answers.
pub const PATH: &str = "/healthz";

/// The verdict: healthy or not, and one line saying why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Devices can update.
    pub ok: bool,
    /// One line for the response body.
    pub reason: String,
}

/// Check the repository at `root` at `now`.
pub fn check(root: &Path, now: DateTime<Utc>) -> Health {
    let bad = |reason: String| Health { ok: false, reason };
    let path = root.join("metadata").join("timestamp.json");
    // The timestamp is small; anything larger than this is not one.
    let bytes = match ota_fs::user_file::read(&path, 1 << 20) {
        Ok(b) => b,
        Err(e) => return bad(format!("timestamp.json: {e}")),
    };
    let expires = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v["signed"]["expires"].as_str().map(str::to_string))
        .and_then(|s| s.parse::<DateTime<Utc>>().ok());
    match expires {
        None => bad("timestamp.json has no readable signed.expires".into()),
        Some(t) if t <= now => bad(format!(
            "timestamp.json expired at {}",
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )),
        Some(t) => Health {
            ok: true,
            reason: format!(
                "ok: timestamp.json valid until {}",
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_with(timestamp: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("metadata")).unwrap();
        std::fs::write(d.path().join("metadata/timestamp.json"), timestamp).unwrap();
        d
    }

    #[test]
    fn valid_expired_missing_and_garbage_timestamps() {
        let now: DateTime<Utc> = "2030-01-01T00:00:00Z".parse().unwrap();
        let d = repo_with(r#"{"signed":{"expires":"2030-01-02T00:00:00Z"}}"#);
        let h = check(d.path(), now);
        assert!(h.ok, "{h:?}");
        assert!(h.reason.contains("2030-01-02T00:00:00Z"), "{h:?}");
        let d = repo_with(r#"{"signed":{"expires":"2029-12-31T00:00:00Z"}}"#);
        let h = check(d.path(), now);
        assert!(!h.ok && h.reason.contains("expired"), "{h:?}");
        let d = repo_with("not json");
        assert!(!check(d.path(), now).ok);
        let d = tempfile::tempdir().unwrap();
        let h = check(d.path(), now);
        assert!(!h.ok && h.reason.contains("timestamp.json"), "{h:?}");
    }
}
