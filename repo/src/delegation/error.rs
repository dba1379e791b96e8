//! What can go wrong when a delegation is made, rotated or given new targets. Like
//! [`crate::RepoError`], each variant names the role, path pattern or file concerned and gives
//! no advice (front ends word their own). Refusals shared with top-level rotations (thresholds,
//! keys to add or remove, keys at hand) are [`crate::rotate::RotateError`]s.
use std::path::PathBuf;

/// A delegation request refused before anything was written.
#[derive(Debug, thiserror::Error)]
pub enum DelegationError {
    /// The name of a top-level role.
    #[error("{role} is a top-level role; a delegated role needs a name of its own")]
    TopLevelName {
        /// The name given.
        role: String,
    },
    /// A name that cannot name a role (its metadata file and its key files carry it).
    #[error("{role:?} cannot name a delegated role: {reason}")]
    BadName {
        /// The name given.
        role: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A role the top-level targets delegate to already.
    #[error(
        "role {role} is delegated already (keys {}, threshold {threshold})",
        short_list(keyids)
    )]
    AlreadyDelegated {
        /// The role.
        role: String,
        /// Its key ids.
        keyids: Vec<String>,
        /// Its threshold.
        threshold: u64,
    },
    /// A role the top-level targets do not delegate to.
    #[error("{role:?} is not a role the top-level targets delegate to")]
    NotDelegated {
        /// The name given.
        role: String,
    },
    /// A delegation without a single path pattern: it would be trusted for nothing.
    #[error("a delegation to {role} needs at least one path pattern")]
    NoPaths {
        /// The role.
        role: String,
    },
    /// A path pattern that no target path can match, or that could match outside the
    /// repository's target paths.
    #[error("path pattern {pattern:?} of role {role}: {reason}")]
    BadPath {
        /// The role.
        role: String,
        /// The pattern.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A new delegation without any key.
    #[error("a delegation to {role} needs at least one key")]
    NoKeys {
        /// The role.
        role: String,
    },
    /// The top-level targets delegate through hash bins (`succinct_roles`), which are made
    /// and rotated with the tool that made them.
    #[error("the top-level targets delegate through hash bins (succinct_roles, prefix {prefix}); those delegations are not edited here")]
    SuccinctRoles {
        /// The bins' name prefix.
        prefix: String,
    },
    /// Targets content staged for the next publish (`ota-staged.json`), which a new
    /// top-level targets version would leave behind or lose the delegation change to.
    #[error("{} holds targets staged for the next publish", path.display())]
    TargetsStaged {
        /// The staged file.
        path: PathBuf,
    },
    /// A target path outside the paths delegated to the role.
    #[error("target {target} is not delegated to role {role} (its paths: {})", patterns.join(", "))]
    PathNotDelegated {
        /// The role.
        role: String,
        /// The target path.
        target: String,
        /// The role's path patterns (or hash prefixes).
        patterns: Vec<String>,
    },
    /// A target path the top-level targets list themselves: clients find it there first, so
    /// the delegated role's entry would never be used.
    #[error("target {target} is listed by the top-level targets, which clients search before role {role}")]
    ShadowedByTargets {
        /// The role.
        role: String,
        /// The target path.
        target: String,
    },
}

fn short_list(ids: &[String]) -> String {
    let v: Vec<&str> = ids.iter().map(|k| crate::keys::short_id(k)).collect();
    v.join(", ")
}

impl From<DelegationError> for crate::RepoError {
    fn from(e: DelegationError) -> Self {
        crate::rotate::RotateError::Delegation(e).into()
    }
}
