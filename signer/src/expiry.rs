//! The expiry policy of a repository in one place: for each role, when it expires, from when
//! `ota-sign` warns about it, who can re-sign it (which keys, where) and what happens to
//! devices when it expires. `ota-sign status` prints it; every other command that touches a
//! repository ends with [`warn_for`], a `warning:` line per role inside its warning window.
//!
//! The warning window of a role is the last quarter of its expiry period (the point from
//! which `ota-sign publish` re-signs it, and `ota-server --online-keys` renews the online
//! roles). With online roles (`ota-repo.json` `online_roles`), snapshot and timestamp are
//! signed by the server, not by `ota-sign`: their expiry in this directory is reported as a
//! note, never as an `ota-sign` warning, since a release machine's copy of them is not what
//! devices see once the server re-signs.
use chrono::{DateTime, Duration, Utc};
use ota_repo::online::ONLINE_ROLES;
use ota_repo::policy::{health, human_duration, Health, Period, ROLES};
use ota_repo::Repository;
use serde::Serialize;
use std::path::Path;

/// Who signs a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SignedBy {
    /// Keys on the offline release machine (`--keys`), used by `ota-sign`.
    Offline,
    /// The online server (`ota-server --online-keys`), automatically.
    Online,
}

/// The expiry policy and state of one role.
#[derive(Debug, Clone, Serialize)]
pub struct RoleExpiry {
    /// Role name.
    pub role: &'static str,
    /// Current version.
    pub version: u64,
    /// Expiry time.
    pub expires: DateTime<Utc>,
    /// Expiry period of newly signed metadata (`ota-repo.json`).
    pub period: Period,
    /// Start of the warning window: a quarter of the period before expiry.
    pub warn_from: DateTime<Utc>,
    /// Seconds until expiry (negative once expired).
    pub seconds_left: i64,
    /// ok, expiring (inside the warning window) or expired.
    pub health: Health,
    /// Offline (ota-sign) or online (ota-server).
    pub signed_by: SignedBy,
    /// Key files of the role (in the offline `--keys` directory, or the server's
    /// `--online-keys` directory) and the signatures needed.
    pub keys: Vec<String>,
    /// Signatures needed (root threshold of the role).
    pub threshold: u64,
    /// How to re-sign it.
    pub resign: String,
    /// What devices do once it has expired.
    pub at_expiry: String,
}

impl RoleExpiry {
    /// The line for a role inside its warning window or expired; `None` when it is fine.
    pub fn warning(&self) -> Option<String> {
        let left = Duration::seconds(self.seconds_left);
        let role = self.role;
        match self.health {
            Health::Ok => None,
            Health::Expiring => Some(format!(
                "{role} expires in {} (v{}, {}, under a quarter of its {} period left); {}",
                human_duration(left),
                self.version,
                self.expires.format("%Y-%m-%d %H:%M UTC"),
                self.period,
                self.resign
            )),
            Health::Expired => Some(format!(
                "{role} expired {} ago (v{}, {}): {}; {}",
                human_duration(-left),
                self.version,
                self.expires.format("%Y-%m-%d %H:%M UTC"),
                self.at_expiry,
                self.resign
            )),
        }
    }
}

/// Version and expiry of `role` in `repo`.
fn current(repo: &Repository, role: &str) -> (u64, DateTime<Utc>) {
    match role {
        "root" => (repo.root.signed.version, repo.root.signed.expires),
        "targets" => (repo.targets.signed.version, repo.targets.signed.expires),
        "snapshot" => (repo.snapshot.signed.version, repo.snapshot.signed.expires),
        _ => (repo.timestamp.signed.version, repo.timestamp.signed.expires),
    }
}

/// Who re-signs `role` and how, and what its expiry does to devices.
fn policy(role: &str, online: bool, threshold: u64) -> (SignedBy, String, String) {
    let refuse = "devices refuse every update (installing nothing) until it is re-signed";
    match role {
        "root" => (
            SignedBy::Offline,
            if threshold > 1 {
                format!("re-sign with `ota-sign publish --root --keys KEYS` (needs {threshold} root key(s), kept offline), or with holders apart in a signing ceremony: `ota-sign request --role root --expires PERIOD`, `ota-sign sign-request` by each, `ota-sign combine`")
            } else {
                format!("re-sign with `ota-sign publish --root --keys KEYS` (needs {threshold} root key(s), kept offline)")
            },
            "devices refuse every update, and new devices cannot start from this root, until a new root is signed with the root keys".into(),
        ),
        "targets" if threshold > 1 => (
            SignedBy::Offline,
            format!("re-sign in a signing ceremony of {threshold} targets key holders: `ota-sign request --role targets --expires PERIOD`, `ota-sign sign-request` by each, `ota-sign combine`"),
            refuse.into(),
        ),
        "targets" => (
            SignedBy::Offline,
            "re-sign with `ota-sign publish --keys KEYS` (targets keys, on the release machine)".into(),
            refuse.into(),
        ),
        _ if online => (
            SignedBy::Online,
            "re-signed automatically by `ota-server --online-keys` before it expires; if it is not, check that the server runs with its --online-keys (GET /healthz) and can write the repository".into(),
            format!("{refuse} by the server"),
        ),
        _ => (
            SignedBy::Offline,
            "re-sign with `ota-sign publish --keys KEYS` (run it from cron, e.g. daily)".into(),
            refuse.into(),
        ),
    }
}

/// The expiry policy and state of every top-level role of `repo` at `now`, in the order of
/// [`ROLES`].
pub fn roles(repo: &Repository, now: DateTime<Utc>) -> Vec<RoleExpiry> {
    ROLES
        .iter()
        .map(|&role| {
            let (version, expires) = current(repo, role);
            let period = repo.config.period(role);
            let online = repo.config.online_roles && ONLINE_ROLES.contains(&role);
            let threshold = repo
                .root
                .signed
                .roles
                .get(role)
                .map_or(1, |rk| rk.threshold);
            let (signed_by, resign, at_expiry) = policy(role, online, threshold);
            RoleExpiry {
                role,
                version,
                expires,
                period,
                warn_from: expires - Duration::seconds(period.secs() / 4),
                seconds_left: (expires - now).num_seconds(),
                health: health(expires, period, now),
                signed_by,
                keys: repo.config.files(role).to_vec(),
                threshold,
                resign,
                at_expiry,
            }
        })
        .collect()
}

/// The warning lines for the roles `ota-sign` re-signs that are inside their warning window
/// or expired (online roles are the server's; see the module documentation).
pub fn warnings(repo: &Repository, now: DateTime<Utc>) -> Vec<String> {
    roles(repo, now)
        .iter()
        .filter(|r| r.signed_by == SignedBy::Offline)
        .filter_map(RoleExpiry::warning)
        .collect()
}

/// After a command that touched the repository in `dir`: print a `warning:` line on stderr
/// for every role inside its warning window. A repository that does not load (the command
/// failed, or it never existed) prints nothing here; its error has been reported.
pub fn warn_for(dir: &Path, now: DateTime<Utc>) {
    match Repository::load(dir) {
        Ok(repo) => {
            for w in warnings(&repo, now) {
                crate::warn(&w);
            }
        }
        Err(e) => tracing::debug!("no expiry check of {}: {e}", dir.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn online_roles_are_the_servers_and_root_needs_root_keys() {
        let (by, resign, at) = policy("timestamp", true, 1);
        assert_eq!(by, SignedBy::Online);
        assert!(resign.contains("ota-server --online-keys"), "{resign}");
        assert!(at.contains("refuse"), "{at}");
        let (by, resign, _) = policy("timestamp", false, 1);
        assert_eq!(by, SignedBy::Offline);
        assert!(resign.contains("ota-sign publish"), "{resign}");
        let (by, resign, at) = policy("root", true, 2);
        assert_eq!(by, SignedBy::Offline);
        assert!(
            resign.contains("--root") && resign.contains("2 root key"),
            "{resign}"
        );
        assert!(at.contains("root keys"), "{at}");
        assert_eq!(policy("targets", true, 1).0, SignedBy::Offline);
        assert!(policy("root", true, 2)
            .1
            .contains("ota-sign request --role root"));
        // A threshold of holders apart: a ceremony, not `publish` on one machine.
        let (by, resign, _) = policy("targets", false, 2);
        assert_eq!(by, SignedBy::Offline);
        assert!(
            resign.contains("ota-sign request --role targets") && !resign.contains("publish"),
            "{resign}"
        );
    }
}
