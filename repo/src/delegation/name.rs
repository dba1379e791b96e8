//! Names of delegated roles and the path patterns delegated to them.
//!
//! A role name becomes a metadata file name (`N.NAME.json`) and key file names (`NAME-N.pem`),
//! so it is kept to what needs no encoding anywhere: 1 to 64 of `A-Z a-z 0-9 _ - .`, starting
//! with a letter or digit, and none of the top-level role names. Path patterns are TUF's:
//! `*` matches within one path segment (`gateway-*`, `apps/*.img.zst`).
use super::DelegationError;
use ota_formats::metadata::Root;

/// Longest delegated role name.
pub const MAX_NAME_LEN: usize = 64;

/// Longest path pattern.
pub const MAX_PATTERN_LEN: usize = 1024;

/// Refuse a name that cannot name a delegated role.
pub fn check_name(role: &str) -> Result<(), DelegationError> {
    let bad = |reason: &str| DelegationError::BadName {
        role: role.to_string(),
        reason: reason.to_string(),
    };
    if Root::TOP_LEVEL
        .iter()
        .any(|top| top.eq_ignore_ascii_case(role))
    {
        return Err(DelegationError::TopLevelName {
            role: role.to_string(),
        });
    }
    if role.is_empty() {
        return Err(bad("it is empty"));
    }
    if role.len() > MAX_NAME_LEN {
        return Err(bad(&format!("longer than {MAX_NAME_LEN} characters")));
    }
    if !role
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(bad("use only letters, digits, '_', '-' and '.'"));
    }
    if !role.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(bad("start it with a letter or a digit"));
    }
    Ok(())
}

/// The path patterns for a delegation to `role`, trimmed and without duplicates; refused when
/// there are none, or one is empty, absolute, holds a `..` segment, a backslash or a NUL.
pub fn check_paths(role: &str, patterns: &[String]) -> Result<Vec<String>, DelegationError> {
    let mut out: Vec<String> = Vec::new();
    for p in patterns {
        let pattern = p.trim();
        let bad = |reason: &str| DelegationError::BadPath {
            role: role.to_string(),
            pattern: pattern.to_string(),
            reason: reason.to_string(),
        };
        if pattern.is_empty() {
            return Err(bad("it is empty"));
        }
        if pattern.len() > MAX_PATTERN_LEN {
            return Err(bad(&format!("longer than {MAX_PATTERN_LEN} characters")));
        }
        if pattern.starts_with('/') {
            return Err(bad(
                "target paths are relative: write it without the leading '/'",
            ));
        }
        if pattern.contains(['\\', '\0']) {
            return Err(bad("it holds a backslash or a NUL"));
        }
        if pattern.split('/').any(|s| s == "..") {
            return Err(bad("it holds a '..' segment"));
        }
        if !out.iter().any(|o| o == pattern) {
            out.push(pattern.to_string());
        }
    }
    if out.is_empty() {
        return Err(DelegationError::NoPaths {
            role: role.to_string(),
        });
    }
    Ok(out)
}
