//! Target search through the delegation graph: pre-order depth-first, lazy loading,
//! `terminating` honoured, each role visited once, at most `max_delegations` roles.
use crate::updater::Updater;
use crate::verified::{VerifiedTarget, VerifiedTargets};
use crate::{Error, Result};
use ota_formats::metadata::Delegations;
use std::collections::{BTreeSet, HashSet};

/// Every role a delegating role names, whatever the path (all bins for succinct roles).
fn all_children(delegations: &Delegations) -> Vec<String> {
    if let Some(roles) = &delegations.roles {
        roles.iter().map(|r| r.name.clone()).collect()
    } else if let Some(s) = &delegations.succinct_roles {
        let width = (s.bit_length as usize).div_ceil(4);
        (0u64..(1u64 << s.bit_length.min(16)))
            .map(|i| format!("{}-{:0width$x}", s.name_prefix, i, width = width))
            .collect()
    } else {
        Vec::new()
    }
}

impl Updater {
    fn loaded(&self, role: &str) -> Result<&VerifiedTargets> {
        self.trusted
            .targets_role(role)
            .ok_or(Error::Workflow("targets role not loaded"))
    }

    pub(crate) fn search(&mut self, target_path: &str) -> Result<Option<VerifiedTarget>> {
        let mut to_visit = vec![("targets".to_string(), "root".to_string())];
        let mut visited: HashSet<String> = HashSet::new();
        while visited.len() <= self.limits.max_delegations {
            let Some((role, delegator)) = to_visit.pop() else {
                return Ok(None);
            };
            if visited.contains(&role) {
                continue;
            }
            self.load_targets(&role, &delegator)?;
            if let Some(file) = self.trusted.target(&role, target_path)? {
                tracing::debug!(target = target_path, %role, "target found");
                return Ok(Some(VerifiedTarget::new(target_path, file, role)));
            }
            let mut children = Vec::new();
            for child in self
                .trusted
                .delegates_for(&role, target_path)
                .unwrap_or_default()
            {
                children.push((child.role, role.clone()));
                if child.terminating {
                    to_visit.clear();
                    break;
                }
            }
            visited.insert(role);
            to_visit.extend(children.into_iter().rev());
        }
        tracing::warn!(
            target = target_path,
            max = self.limits.max_delegations,
            "target search stopped: too many delegations"
        );
        Ok(None)
    }

    /// Every target of the repository that a search would return, with the role that
    /// authoritatively lists it. Loads every reachable delegated role (up to
    /// `max_delegations`), so it costs a download per role on the first call.
    pub fn all_targets(&mut self) -> Result<Vec<VerifiedTarget>> {
        self.top_level_targets()?;
        let mut paths = BTreeSet::new();
        let mut to_visit = vec![("targets".to_string(), "root".to_string())];
        let mut visited: HashSet<String> = HashSet::new();
        while let Some((role, delegator)) = to_visit.pop() {
            if visited.len() >= self.limits.max_delegations || !visited.insert(role.clone()) {
                continue;
            }
            match self.load_targets(&role, &delegator) {
                Ok(()) => {}
                // A bin or role that was never published holds no targets.
                Err(Error::NotInSnapshot { .. }) if role != "targets" => continue,
                Err(e) => return Err(e),
            }
            paths.extend(self.trusted.target_paths(&role).unwrap_or_default());
            if let Some(d) = &self.loaded(&role)?.delegations {
                let children = all_children(d);
                to_visit.extend(children.into_iter().rev().map(|c| (c, role.clone())));
            }
        }
        let mut out = Vec::new();
        for path in paths {
            if let Some(t) = self.search(&path)? {
                out.push(t);
            }
        }
        Ok(out)
    }
}
