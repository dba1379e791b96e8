//! Delegation path patterns: shell-style globs matched per `/`-separated component.
//!
//! `*` matches any run of characters within one component, `?` one character, `[abc]`,
//! `[a-z]` and `[!x]` character sets. A pattern matches only paths with the same number of
//! components, so `*` never crosses `/` (as the TUF specification and python-tuf require).
//!
//! ```
//! use ota_formats::pathmatch::path_matches;
//! assert!(path_matches("firmware/*.bin", "firmware/a.bin"));
//! assert!(!path_matches("firmware/*", "firmware/sub/a.bin"));
//! ```

/// Whether `path` matches `pattern`.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let pat: Vec<&str> = pattern.split('/').collect();
    let parts: Vec<&str> = path.split('/').collect();
    pat.len() == parts.len()
        && pat
            .iter()
            .zip(&parts)
            .all(|(p, s)| component_matches(p.as_bytes(), s.as_bytes()))
}

fn component_matches(p: &[u8], s: &[u8]) -> bool {
    // Iterative wildcard matching with backtracking to the last `*`: linear-ish, no recursion.
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() {
            match p[pi] {
                b'*' => {
                    star = Some((pi, si));
                    pi += 1;
                    continue;
                }
                b'?' => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class_matches(&p[pi..], s[si]) {
                        if matched {
                            pi += next;
                            si += 1;
                            continue;
                        }
                    } else if s[si] == b'[' {
                        pi += 1;
                        si += 1;
                        continue;
                    }
                }
                c if c == s[si] => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, ss)) => {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Match a `[...]` class at the start of `p` against `c`. Returns (matched, class length),
/// or None when the bracket is not closed (then it is a literal `[`).
fn class_matches(p: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(i), Some(b'!'));
    if negate {
        i += 1;
    }
    let start = i;
    let mut matched = false;
    while i < p.len() {
        if p[i] == b']' && i > start {
            return Some((matched != negate, i + 1));
        }
        if i + 2 < p.len() && p[i + 1] == b'-' && p[i + 2] != b']' {
            if p[i] <= c && c <= p[i + 2] {
                matched = true;
            }
            i += 3;
        } else {
            if p[i] == c {
                matched = true;
            }
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::path_matches;

    #[test]
    fn star_stays_in_component() {
        assert!(path_matches("*", "a.bin"));
        assert!(!path_matches("*", "dir/a.bin"));
        assert!(path_matches("dir/*", "dir/a.bin"));
        assert!(path_matches("*/*", "dir/a.bin"));
        assert!(path_matches("dir/*.bin", "dir/x.bin"));
        assert!(!path_matches("dir/*.bin", "dir/x.bin.sig"));
        assert!(path_matches("a*b*c", "aXXbYYc"));
        assert!(!path_matches("a*b*c", "aXXbYY"));
    }

    #[test]
    fn classes_and_question_mark() {
        assert!(path_matches("file-?.tgz", "file-1.tgz"));
        assert!(!path_matches("file-?.tgz", "file-12.tgz"));
        assert!(path_matches("v[0-9].bin", "v7.bin"));
        assert!(!path_matches("v[!0-9].bin", "v7.bin"));
        assert!(path_matches("v[!0-9].bin", "vx.bin"));
        assert!(path_matches("odd[", "odd["));
    }
}
