//! The expiry policy of a repository in one place: for each role, when it expires, from when
//! `ota-sign` warns about it, who can re-sign it (which keys, where) and what happens to
//! devices when it expires. `ota-sign status` prints it; every other command that touches a
//! repository ends with [`warn_for`], a `warning:` line per role inside its warning window.
//!
//! The warning window of a role is the last quarter of its expiry period (the point from
//! which `ota-sign publish` re-signs it, and `ota-server --online-keys` renews the online
//! roles). Delegated roles ([`delegated`]) are listed and warned about the same way, under
//! their own period: `ota-sign publish` re-signs them with their own keys, and devices, which
//! load every delegated role, refuse every update once one has expired. With online roles (`ota-repo.json` `online_roles`), snapshot and timestamp are
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
    pub role: String,
    /// For a delegated role: the role that delegates to it (`targets`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delegated_by: Option<String>,
    /// For a delegated role: the target path patterns delegated to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
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
    /// Key ids authorised for the role (by root, or by the delegation).
    pub keyids: Vec<String>,
    /// Signatures needed (the role's threshold in root, or in the delegation).
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
        let role = match &self.delegated_by {
            Some(_) => format!("delegated role {}", self.role),
            None => self.role.clone(),
        };
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

/// Who re-signs delegated `role` and how (`online`: the repository has online roles, whose
/// snapshot is the server's), and what its expiry does to devices.
fn delegated_policy(role: &str, online: bool, threshold: u64) -> (SignedBy, String, String) {
    let resign = if online {
        format!("`ota-sign publish` does not re-sign delegated roles of an online-roles repository (the snapshot listing them is the server's): publish its next version before it expires (`ota-sign add --role {role}` or `ota-sign rotate --role {role}`)")
    } else {
        format!("re-sign with `ota-sign publish --keys KEYS` ({threshold} of its own key(s), in KEYS; run it from cron, e.g. daily)")
    };
    (
        SignedBy::Offline,
        resign,
        "devices refuse every update, top-level releases included (they load every delegated role), until it is re-signed".into(),
    )
}

/// One role's expiry state from its version, expiry and period.
struct State {
    version: u64,
    expires: DateTime<Utc>,
    period: Period,
}

impl State {
    fn expiry(
        self,
        role: String,
        now: DateTime<Utc>,
        policy: (SignedBy, String, String),
    ) -> RoleExpiry {
        let (signed_by, resign, at_expiry) = policy;
        let State {
            version,
            expires,
            period,
        } = self;
        RoleExpiry {
            role,
            delegated_by: None,
            paths: None,
            version,
            expires,
            period,
            warn_from: expires - Duration::seconds(period.secs() / 4),
            seconds_left: (expires - now).num_seconds(),
            health: health(expires, period, now),
            signed_by,
            keys: Vec::new(),
            keyids: Vec::new(),
            threshold: 1,
            resign,
            at_expiry,
        }
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
            let rk = repo.root.signed.roles.get(role);
            let threshold = rk.map_or(1, |rk| rk.threshold);
            let state = State {
                version,
                expires,
                period,
            };
            RoleExpiry {
                keys: repo.config.files(role).to_vec(),
                keyids: rk.map(|rk| rk.keyids.clone()).unwrap_or_default(),
                threshold,
                ..state.expiry(role.to_string(), now, policy(role, online, threshold))
            }
        })
        .collect()
}

/// The expiry policy and state of every role the top-level targets of `repo` delegate to, in
/// the order devices search them, from its current metadata as the snapshot lists it, read
/// and verified ([`ota_repo::delegation::load_role`]): an error when one does not load.
pub fn delegated(repo: &Repository, now: DateTime<Utc>) -> ota_repo::Result<Vec<RoleExpiry>> {
    let roles = repo
        .targets
        .signed
        .delegations
        .as_ref()
        .and_then(|d| d.roles.as_ref());
    let mut out = Vec::new();
    for d in roles.into_iter().flatten() {
        let current = ota_repo::delegation::load_role(repo, &d.name)?.signed;
        let state = State {
            version: current.version,
            expires: current.expires,
            period: ota_repo::delegation::period(&repo.config, &d.name),
        };
        let policy = delegated_policy(&d.name, repo.config.online_roles, d.threshold);
        out.push(RoleExpiry {
            delegated_by: Some("targets".into()),
            paths: d.paths.clone(),
            keys: repo.config.files(&d.name).to_vec(),
            keyids: d.keyids.clone(),
            threshold: d.threshold,
            ..state.expiry(d.name.clone(), now, policy)
        });
    }
    Ok(out)
}

/// The warning lines for the roles `ota-sign` re-signs that are inside their warning window
/// or expired (online roles are the server's; see the module documentation), delegated roles
/// included; a delegated role whose metadata does not load is warned about too.
pub fn warnings(repo: &Repository, now: DateTime<Utc>) -> Vec<String> {
    let mut out: Vec<String> = roles(repo, now)
        .iter()
        .filter(|r| r.signed_by == SignedBy::Offline)
        .filter_map(RoleExpiry::warning)
        .collect();
    match delegated(repo, now) {
        Ok(roles) => out.extend(roles.iter().filter_map(RoleExpiry::warning)),
        Err(e) => out.push(format!(
            "a delegated role's metadata does not load ({e}): devices refuse every update until it is repaired"
        )),
    }
    out
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

    #[test]
    fn delegated_roles_are_re_signed_by_publish_with_their_own_keys() {
        let (by, resign, at) = delegated_policy("apps", false, 2);
        assert_eq!(by, SignedBy::Offline);
        assert!(
            resign.contains("ota-sign publish --keys KEYS") && resign.contains("2 of its own"),
            "{resign}"
        );
        assert!(at.contains("refuse every update"), "{at}");
        let (by, resign, _) = delegated_policy("apps", true, 1);
        assert_eq!(by, SignedBy::Offline);
        assert!(
            resign.contains("does not re-sign") && resign.contains("--role apps"),
            "{resign}"
        );
    }
}
