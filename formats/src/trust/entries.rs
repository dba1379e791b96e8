//! The target entries of a verified targets role, looked up in its canonical bytes instead of
//! a parsed map. Parsing every entry of every role a search loads into owned maps was a third
//! of a warm refresh and about a kilobyte of memory per target; a search needs one entry per
//! role it visits. The index holds the byte ranges of each entry (16 bytes per target) into the
//! canonical JSON the signatures were verified over, so an entry is parsed from the verified
//! bytes themselves, when it is asked for.
//!
//! Canonical JSON is compact and its object members are sorted by their decoded keys, so the
//! `targets` object's members are found by one scan and searched by bisection.
use crate::metadata::TargetFile;
use std::cmp::Ordering;
use std::ops::Range;

/// Byte ranges of one `"path":{entry}` member in the canonical bytes.
#[derive(Debug, Clone, Copy)]
struct Member {
    /// The key between its quotes, as written (with `\"` and `\\` escaped).
    key: (u32, u32),
    /// The entry object.
    value: (u32, u32),
}

/// Where each target entry of one role is in that role's canonical bytes.
#[derive(Debug, Default)]
pub(crate) struct EntryIndex {
    members: Vec<Member>,
}

/// Why the index could not be built: the canonical bytes are not what the canonicalizer
/// writes. Cannot happen for bytes it wrote; reported rather than trusted.
#[derive(Debug)]
pub(crate) struct NotCanonical;

impl EntryIndex {
    /// Index the members of the top-level `targets` object of `canonical`, the canonical JSON
    /// of a targets role's `signed` object.
    pub(crate) fn build(canonical: &[u8]) -> Result<Self, NotCanonical> {
        let targets = members(canonical, 0..canonical.len())?
            .into_iter()
            .find(|m| key_bytes(canonical, m) == b"targets")
            .ok_or(NotCanonical)?;
        let (start, end) = (targets.value.0 as usize, targets.value.1 as usize);
        let members = members(canonical, start..end)?;
        Ok(EntryIndex { members })
    }

    /// Number of target entries.
    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    /// The entry of `path`, parsed from `canonical` (the bytes the index was built from).
    pub(crate) fn get(
        &self,
        canonical: &[u8],
        path: &str,
    ) -> Option<serde_json::Result<TargetFile>> {
        let i = self
            .members
            .binary_search_by(|m| compare_key(key_bytes(canonical, m), path.as_bytes()))
            .ok()?;
        let m = &self.members[i];
        let entry = as_json(&canonical[m.value.0 as usize..m.value.1 as usize]);
        Some(serde_json::from_slice(&entry))
    }

    /// Every target path, in canonical (sorted) order.
    pub(crate) fn paths<'a>(&'a self, canonical: &'a [u8]) -> impl Iterator<Item = String> + 'a {
        self.members
            .iter()
            .map(|m| String::from_utf8_lossy(&unescape(key_bytes(canonical, m))).into_owned())
    }
}

/// Canonical JSON as JSON text a parser accepts: canonical strings carry control characters
/// raw, which JSON requires escaped. Canonical JSON has no whitespace outside strings, so every
/// such byte is inside one and becomes its `\u00XX` escape.
fn as_json(canonical: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if !canonical.iter().any(|&b| b < 0x20) {
        return canonical.into();
    }
    let mut out = Vec::with_capacity(canonical.len() + 16);
    for &b in canonical {
        if b < 0x20 {
            out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
        } else {
            out.push(b);
        }
    }
    out.into()
}

fn key_bytes<'a>(canonical: &'a [u8], m: &Member) -> &'a [u8] {
    &canonical[m.key.0 as usize..m.key.1 as usize]
}

/// A key as written in canonical JSON, with `\"` and `\\` (its only escapes) undone.
fn unescape(written: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if !written.contains(&b'\\') {
        return written.into();
    }
    let mut out = Vec::with_capacity(written.len());
    let mut bytes = written.iter();
    while let Some(&b) = bytes.next() {
        if b == b'\\' {
            if let Some(&next) = bytes.next() {
                out.push(next);
            }
        } else {
            out.push(b);
        }
    }
    out.into()
}

/// Order of a written key against a plain path: canonical order is that of the decoded keys.
fn compare_key(written: &[u8], path: &[u8]) -> Ordering {
    unescape(written).as_ref().cmp(path)
}

/// The members of the object at `span` of canonical bytes.
fn members(c: &[u8], span: Range<usize>) -> Result<Vec<Member>, NotCanonical> {
    let end = span.end;
    let mut pos = span.start;
    expect(c, &mut pos, b'{')?;
    let mut out = Vec::new();
    if c.get(pos) == Some(&b'}') {
        return Ok(out);
    }
    loop {
        let key_start = pos + 1;
        pos = skip_string(c, pos)?;
        let key = (offset(key_start)?, offset(pos - 1)?);
        expect(c, &mut pos, b':')?;
        let value_start = pos;
        pos = skip_value(c, pos)?;
        out.push(Member {
            key,
            value: (offset(value_start)?, offset(pos)?),
        });
        match c.get(pos) {
            Some(b',') => pos += 1,
            Some(b'}') if pos + 1 == end => return Ok(out),
            _ => return Err(NotCanonical),
        }
    }
}

fn offset(pos: usize) -> Result<u32, NotCanonical> {
    u32::try_from(pos).map_err(|_| NotCanonical)
}

fn expect(c: &[u8], pos: &mut usize, byte: u8) -> Result<(), NotCanonical> {
    if c.get(*pos) == Some(&byte) {
        *pos += 1;
        Ok(())
    } else {
        Err(NotCanonical)
    }
}

/// Past the string starting at `pos` (its opening quote).
fn skip_string(c: &[u8], mut pos: usize) -> Result<usize, NotCanonical> {
    expect(c, &mut pos, b'"')?;
    loop {
        let rest = c.get(pos..).ok_or(NotCanonical)?;
        let i = memchr::memchr2(b'"', b'\\', rest).ok_or(NotCanonical)?;
        pos += i + 1;
        if rest[i] == b'"' {
            return Ok(pos);
        }
        pos += 1; // the escaped character
    }
}

/// Past the value starting at `pos`.
fn skip_value(c: &[u8], mut pos: usize) -> Result<usize, NotCanonical> {
    let mut depth = 0usize;
    loop {
        match c.get(pos).ok_or(NotCanonical)? {
            b'"' => pos = skip_string(c, pos)?,
            b'{' | b'[' => {
                depth += 1;
                pos += 1;
                continue;
            }
            b'}' | b']' => {
                depth = depth.checked_sub(1).ok_or(NotCanonical)?;
                pos += 1;
            }
            b',' | b':' if depth > 0 => {
                pos += 1;
                continue;
            }
            _ => {
                // A number or literal: up to the next delimiter.
                let rest = &c[pos..];
                let len = rest
                    .iter()
                    .position(|b| matches!(b, b',' | b'}' | b']' | b':'))
                    .unwrap_or(rest.len());
                if len == 0 {
                    return Err(NotCanonical);
                }
                pos += len;
            }
        }
        if depth == 0 {
            return Ok(pos);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cjson;
    use serde_json::json;

    #[test]
    fn entries_are_found_by_their_decoded_path_and_parsed_from_the_verified_bytes() {
        let signed = json!({
            "_type": "targets",
            "delegations": {"keys": {}, "roles": [{"name": "targets", "paths": ["x"]}]},
            "targets": {
                "b.bin": {"length": 2, "hashes": {"sha256": "bb"}, "custom": {"v": [1, {"k": "}"}]}},
                "n\tl.bin": {"length": 5, "hashes": {"sha256": "ee"}, "custom": {"notes": "a\nb\u{1}"}},
                "a\"q.bin": {"length": 1, "hashes": {"sha256": "aa"}},
                "a#.bin": {"length": 3, "hashes": {"sha256": "cc"}},
                "é\\x": {"length": 4, "hashes": {"sha256": "dd"}},
            },
            "version": 1,
        });
        let canonical = cjson::value_to_vec(&signed).unwrap();
        let index = EntryIndex::build(&canonical).unwrap();
        assert_eq!(index.len(), 5);
        for (path, length) in [
            ("a\"q.bin", 1),
            ("b.bin", 2),
            ("a#.bin", 3),
            ("é\\x", 4),
            ("n\tl.bin", 5),
        ] {
            let entry = index.get(&canonical, path).unwrap().unwrap();
            assert_eq!(entry.length, length, "{path}");
        }
        assert!(index.get(&canonical, "c.bin").is_none());
        assert!(index.get(&canonical, "targets").is_none());
        let b = index.get(&canonical, "b.bin").unwrap().unwrap();
        assert_eq!(b.custom, Some(json!({"v": [1, {"k": "}"}]})));
        // Control characters are raw in canonical strings; the entry reads back unchanged.
        let n = index.get(&canonical, "n\tl.bin").unwrap().unwrap();
        assert_eq!(n.custom, Some(json!({"notes": "a\nb\u{1}"})));
        let paths: Vec<String> = index.paths(&canonical).collect();
        assert_eq!(paths, ["a\"q.bin", "a#.bin", "b.bin", "n\tl.bin", "é\\x"]);
    }

    #[test]
    fn an_empty_map_has_no_entries_and_bytes_that_are_not_canonical_are_refused() {
        let canonical = cjson::value_to_vec(&json!({"targets": {}, "version": 1})).unwrap();
        assert_eq!(EntryIndex::build(&canonical).unwrap().len(), 0);
        for bad in [
            &b"{\"targets\": {}}"[..],
            b"{\"version\":1}",
            b"{\"targets\":{\"a\":1",
            b"",
        ] {
            assert!(
                EntryIndex::build(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
