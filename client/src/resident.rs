//! Which delegated targets roles stay in memory between lookups. A repository may spread a
//! million targets over hundreds of roles; holding every role a search ever loaded would make a
//! device's memory grow with the repository. Roles past a budget of target entries are
//! forgotten, oldest first, and verified again from the metadata directory (no download) when a
//! search reaches them again: the same checks, a little more CPU, flat memory.
use std::collections::{HashMap, VecDeque};

/// The loaded delegated roles, in load order, and how to load each again.
#[derive(Debug, Default)]
pub(crate) struct ResidentRoles {
    /// Loaded delegated roles, oldest first, with their number of target entries.
    order: VecDeque<(String, usize)>,
    entries: usize,
    /// The delegator each delegated role was last verified through.
    via: HashMap<String, String>,
}

impl ResidentRoles {
    /// Record that `role` (with `entries` targets) was verified through `delegator`.
    pub(crate) fn loaded(&mut self, role: &str, delegator: &str, entries: usize) {
        self.remove(role);
        self.order.push_back((role.to_string(), entries));
        self.entries += entries;
        self.via.insert(role.to_string(), delegator.to_string());
    }

    /// The delegator `role` was last verified through, to verify it again after it was
    /// forgotten.
    pub(crate) fn delegator_of(&self, role: &str) -> Option<&str> {
        self.via.get(role).map(String::as_str)
    }

    /// The roles to forget, oldest first, so that at most `budget` entries stay, never `keep`
    /// (the role just loaded, which its caller is about to search).
    pub(crate) fn over_budget(&mut self, budget: usize, keep: &str) -> Vec<String> {
        let mut forget = Vec::new();
        let mut i = 0;
        while self.entries > budget && i < self.order.len() {
            if self.order[i].0 == keep {
                i += 1;
                continue;
            }
            if let Some((role, n)) = self.order.remove(i) {
                self.entries -= n;
                forget.push(role);
            }
        }
        forget
    }

    fn remove(&mut self, role: &str) {
        if let Some(i) = self.order.iter().position(|(r, _)| r == role) {
            if let Some((_, n)) = self.order.remove(i) {
                self.entries -= n;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oldest_roles_past_the_budget_are_forgotten_but_never_the_one_kept() {
        let mut r = ResidentRoles::default();
        r.loaded("a", "targets", 10);
        r.loaded("b", "a", 10);
        r.loaded("c", "targets", 10);
        assert!(r.over_budget(30, "c").is_empty());
        assert_eq!(r.over_budget(15, "c"), ["a", "b"]);
        // A role larger than the whole budget stays while it is the one searched.
        r.loaded("huge", "targets", 100);
        assert_eq!(r.over_budget(15, "huge"), ["c"]);
        assert!(r.over_budget(15, "huge").is_empty());
        // Forgotten roles can still be loaded again through their delegator.
        assert_eq!(r.delegator_of("b"), Some("a"));
        // Loading a role again counts it once.
        r.loaded("huge", "targets", 100);
        assert_eq!(r.entries, 100);
    }
}
