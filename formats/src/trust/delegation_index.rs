//! An index over the `delegations.roles` of one verified targets role, built once when the
//! role is trusted. Without it, each target lookup pattern-matched every delegated role and each
//! delegated role's key lookup scanned the list: resolving N targets over R roles cost N·R
//! matches and loading R roles R² comparisons.
//!
//! The index only narrows the candidates; every candidate is still checked with
//! [`DelegatedRole::is_delegated_path`], so the result and its priority order are exactly those of
//! a full scan.
use crate::hash::sha256_hex;
use crate::metadata::{DelegatedRole, Delegations};
use std::collections::{BTreeSet, HashMap};

/// Roles grouped by a prefix that every path (or path hash) they are trusted for starts with.
#[derive(Debug, Default)]
struct PrefixMap {
    by_prefix: HashMap<String, Vec<usize>>,
    /// Distinct prefix lengths, so a lookup probes only lengths that occur.
    lengths: BTreeSet<usize>,
}

impl PrefixMap {
    fn insert(&mut self, prefix: &str, role: usize) {
        self.lengths.insert(prefix.len());
        let roles = self.by_prefix.entry(prefix.to_string()).or_default();
        if roles.last() != Some(&role) {
            roles.push(role);
        }
    }

    fn collect(&self, key: &str, out: &mut Vec<usize>) {
        for &len in &self.lengths {
            // `get` is None past the end or inside a UTF-8 sequence: no prefix can match there.
            if let Some(roles) = key.get(..len).and_then(|p| self.by_prefix.get(p)) {
                out.extend_from_slice(roles);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.by_prefix.is_empty()
    }
}

/// The literal start of a path pattern: everything before its first wildcard. A path the
/// pattern matches starts with it, since literal characters (`/` included) match only themselves.
/// `[` counts as a wildcard even when unclosed, which only makes the prefix shorter.
fn literal_prefix(pattern: &str) -> &str {
    let end = pattern.find(['*', '?', '[']).unwrap_or(pattern.len());
    &pattern[..end]
}

/// Lookup structures for the delegated roles of one targets role.
#[derive(Debug, Default)]
pub(crate) struct DelegationIndex {
    by_name: HashMap<String, usize>,
    paths: PrefixMap,
    hash_prefixes: PrefixMap,
}

impl DelegationIndex {
    /// Index `delegations` (an empty index for none, or for succinct hash bins, which need none).
    pub(crate) fn new(delegations: Option<&Delegations>) -> Self {
        let mut index = DelegationIndex::default();
        let Some(roles) = delegations.and_then(|d| d.roles.as_ref()) else {
            return index;
        };
        for (i, role) in roles.iter().enumerate() {
            // Names are unique (checked when the metadata was parsed); keep the first anyway.
            index.by_name.entry(role.name.clone()).or_insert(i);
            if let Some(patterns) = &role.paths {
                for p in patterns {
                    index.paths.insert(literal_prefix(p), i);
                }
            } else if let Some(prefixes) = &role.path_hash_prefixes {
                for p in prefixes {
                    index.hash_prefixes.insert(p, i);
                }
            }
        }
        index
    }

    /// The delegated roles of `delegations` trusted for `path`, in priority order.
    /// `delegations` must be the object this index was built from.
    pub(crate) fn roles_for<'a>(
        &self,
        delegations: &'a Delegations,
        path: &str,
    ) -> Vec<&'a DelegatedRole> {
        let roles = delegations.roles.as_deref().unwrap_or_default();
        self.candidates(path)
            .into_iter()
            .filter_map(|i| roles.get(i))
            .filter(|r| r.is_delegated_path(path))
            .collect()
    }

    /// Indices of the roles that may be trusted for `path` (a superset), ascending.
    fn candidates(&self, path: &str) -> Vec<usize> {
        let mut candidates = Vec::new();
        self.paths.collect(path, &mut candidates);
        if !self.hash_prefixes.is_empty() {
            self.hash_prefixes
                .collect(&sha256_hex(path.as_bytes()), &mut candidates);
        }
        candidates.sort_unstable();
        candidates.dedup();
        candidates
    }

    /// Key ids and threshold of delegated role `name`, if `delegations` delegates to it.
    /// `delegations` must be the object this index was built from.
    pub(crate) fn role_keys<'a>(
        &self,
        delegations: &'a Delegations,
        name: &str,
    ) -> Option<(&'a [String], u64)> {
        match &delegations.roles {
            Some(roles) => self
                .by_name
                .get(name)
                .and_then(|&i| roles.get(i))
                .map(|r| (r.keyids.as_slice(), r.threshold)),
            None => delegations.role(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn delegations(roles: serde_json::Value) -> Delegations {
        serde_json::from_value(json!({ "keys": {}, "roles": roles })).unwrap()
    }

    fn role(name: &str, paths: serde_json::Value) -> serde_json::Value {
        json!({ "name": name, "keyids": ["k"], "threshold": 1, "terminating": false, "paths": paths })
    }

    fn names(d: &Delegations, path: &str) -> Vec<String> {
        DelegationIndex::new(Some(d))
            .roles_for(d, path)
            .into_iter()
            .map(|r| r.name.clone())
            .collect()
    }

    #[test]
    fn same_roles_in_same_order_as_a_full_scan() {
        let d = delegations(json!([
            role("a", json!(["fw/*.bin"])),
            role("b", json!(["*"])),
            role("c", json!(["fw/x?.bin", "docs/*"])),
            role("d", json!(["f[w]/*"])),
            role("e", json!(["odd[", "fw/xy.bin"])),
            {"name": "h", "keyids": ["k"], "threshold": 1,
             "path_hash_prefixes": [&sha256_hex(b"fw/xy.bin")[..3], "ffff"]},
            role("u", json!(["é/*"])),
        ]));
        for path in [
            "fw/xy.bin",
            "fw/a.bin",
            "top",
            "docs/a",
            "odd[",
            "é/1",
            "",
            "f",
            "fw",
        ] {
            let full: Vec<String> = d
                .roles
                .as_ref()
                .unwrap()
                .iter()
                .filter(|r| r.is_delegated_path(path))
                .map(|r| r.name.clone())
                .collect();
            assert_eq!(names(&d, path), full, "path {path:?}");
        }
        assert_eq!(names(&d, "fw/xy.bin"), ["a", "c", "d", "e", "h"]);
    }

    #[test]
    fn a_lookup_checks_only_roles_whose_literal_prefix_fits() {
        let mut roles: Vec<_> = (0..1000)
            .map(|i| role(&format!("r{i:04}"), json!([format!("r{i:04}/*")])))
            .collect();
        roles.push(role("catch-all", json!(["*/*"])));
        let d = delegations(json!(roles));
        let index = DelegationIndex::new(Some(&d));
        assert_eq!(index.candidates("r0500/x.bin"), [500, 1000]);
        assert_eq!(names(&d, "r0500/x.bin"), ["r0500", "catch-all"]);
        assert_eq!(index.candidates("other/x.bin"), [1000]);
        assert_eq!(index.role_keys(&d, "r0999").map(|(k, _)| k.len()), Some(1));
    }

    #[test]
    fn keys_by_name() {
        let d = delegations(json!([role("a", json!(["*"])), role("b", json!(["*"]))]));
        let index = DelegationIndex::new(Some(&d));
        assert_eq!(index.role_keys(&d, "b").map(|(_, t)| t), Some(1));
        assert!(index.role_keys(&d, "c").is_none());
    }
}
