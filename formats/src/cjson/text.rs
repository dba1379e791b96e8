//! Canonical JSON written straight from JSON text, in one pass and without building a value
//! tree: verifying a metadata file costs one scan of its bytes, not a parse into a map of
//! allocations, a copy and a second walk (issue 15's profile: 30% of a refresh was malloc/free
//! of those trees).
//!
//! Each object's members are written in input order while their keys are recorded; an object
//! whose keys did not arrive sorted is then reordered in place (files written with sorted keys,
//! as python-tuf and `ota-sign` write them, are never reordered). Duplicate keys are refused:
//! parsers disagree on which one wins, and metadata must mean one thing to every client.
use super::write_string;
use crate::{Error, Result};
use std::borrow::Cow;
use std::ops::Range;

/// Deepest nesting accepted, as serde_json's own limit.
const MAX_DEPTH: usize = 128;

/// One member of the object being written: its decoded key and its `"key":value` bytes in the
/// output.
struct Member<'a> {
    key: Cow<'a, [u8]>,
    start: usize,
    end: usize,
}

struct Canonicalizer<'a> {
    input: &'a [u8],
    pos: usize,
    depth: usize,
    /// Members of every object being written, innermost last (one allocation for all).
    members: Vec<Member<'a>>,
    /// Copy of an object's members while they are put in order.
    scratch: Vec<u8>,
}

/// The parts of a metadata file (a JSON object with `signed` and `signatures`) that
/// verification needs, found in the same pass that writes the canonical form.
pub(crate) struct Envelope {
    /// Canonical JSON of the `signed` member's value.
    pub(crate) canonical_signed: Vec<u8>,
    /// Where the `signed` member's value is in the input.
    pub(crate) signed: Range<usize>,
    /// Where the `signatures` member's value is in the input.
    pub(crate) signatures: Range<usize>,
}

/// Split a metadata file into [`Envelope`] parts in one pass over its bytes. Other members are
/// checked as JSON and ignored; a member named twice is refused.
pub(crate) fn envelope(input: &[u8]) -> Result<Envelope> {
    let mut c = Canonicalizer::new(input)?;
    let mut ignored = Vec::new();
    let mut seen: Vec<Cow<'_, [u8]>> = Vec::new();
    let (mut signed, mut signatures) = (None, None);
    c.skip_ws();
    c.expect(b'{')?;
    c.skip_ws();
    if c.peek() != Some(b'}') {
        loop {
            c.skip_ws();
            let key = c.string()?;
            if seen.contains(&key) {
                return Err(Error::Canonical(format!(
                    "duplicate key \"{}\" in an object",
                    String::from_utf8_lossy(&key)
                )));
            }
            c.skip_ws();
            c.expect(b':')?;
            c.skip_ws();
            let start = c.pos;
            if key.as_ref() == b"signed" {
                let mut out = Vec::with_capacity(input.len());
                c.value(&mut out)?;
                signed = Some((out, start..c.pos));
            } else {
                ignored.clear();
                c.value(&mut ignored)?;
                if key.as_ref() == b"signatures" {
                    signatures = Some(start..c.pos);
                }
            }
            seen.push(key);
            c.skip_ws();
            match c.peek() {
                Some(b',') => c.pos += 1,
                Some(b'}') => break,
                _ => return Err(c.error("expected ',' or '}'")),
            }
        }
    }
    c.pos += 1;
    c.end()?;
    let missing = |field: &str| Error::Canonical(format!("missing field `{field}`"));
    let (canonical_signed, signed) = signed.ok_or_else(|| missing("signed"))?;
    Ok(Envelope {
        canonical_signed,
        signed,
        signatures: signatures.ok_or_else(|| missing("signatures"))?,
    })
}

/// Append the canonical form of the JSON text `input` to `out`.
pub(super) fn canonicalize(input: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let mut c = Canonicalizer::new(input)?;
    c.skip_ws();
    c.value(out)?;
    c.end()?;
    Ok(())
}

/// A decoded string: one borrowed from the input has no `"` or `\\` (it ended at the first
/// one), so it is copied without a second scan.
fn write_bytes(s: &[u8], from_input: bool, out: &mut Vec<u8>) {
    if from_input {
        out.push(b'"');
        out.extend_from_slice(s);
        out.push(b'"');
    } else {
        write_string(s, out);
    }
}

impl<'a> Canonicalizer<'a> {
    /// A canonicalizer at the start of `input`, which must be UTF-8.
    fn new(input: &'a [u8]) -> Result<Self> {
        std::str::from_utf8(input).map_err(|e| Error::Canonical(format!("JSON text: {e}")))?;
        Ok(Canonicalizer {
            input,
            pos: 0,
            depth: 0,
            members: Vec::new(),
            scratch: Vec::new(),
        })
    }

    /// Only whitespace may follow the value.
    fn end(&mut self) -> Result<()> {
        self.skip_ws();
        if self.pos != self.input.len() {
            return Err(self.error("trailing characters after the JSON value"));
        }
        Ok(())
    }

    fn error(&self, what: &str) -> Error {
        Error::Canonical(format!("invalid JSON at byte {}: {what}", self.pos))
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<()> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected '{}'", byte as char)))
        }
    }

    fn value(&mut self, out: &mut Vec<u8>) -> Result<()> {
        match self.peek() {
            Some(b'{') => self.nested(out, Self::object),
            Some(b'[') => self.nested(out, Self::array),
            Some(b'"') => {
                let s = self.string()?;
                write_bytes(&s, matches!(s, Cow::Borrowed(_)), out);
                Ok(())
            }
            Some(b't') => self.literal(b"true", out),
            Some(b'f') => self.literal(b"false", out),
            Some(b'n') => self.literal(b"null", out),
            Some(b'-' | b'0'..=b'9') => self.number(out),
            Some(_) => Err(self.error("expected a JSON value")),
            None => Err(self.error("unexpected end of input")),
        }
    }

    fn nested(
        &mut self,
        out: &mut Vec<u8>,
        write: fn(&mut Self, &mut Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        if self.depth == MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        self.depth += 1;
        let result = write(self, out);
        self.depth -= 1;
        result
    }

    fn literal(&mut self, word: &[u8], out: &mut Vec<u8>) -> Result<()> {
        if self.input[self.pos..].starts_with(word) {
            self.pos += word.len();
            out.extend_from_slice(word);
            Ok(())
        } else {
            Err(self.error("expected true, false or null"))
        }
    }

    /// An integer, written as Python writes the int it parses to: `-0` becomes `0`, every
    /// other valid JSON integer is already in that form. Anything with a fraction or exponent
    /// is a float, which canonical JSON does not have.
    fn number(&mut self, out: &mut Vec<u8>) -> Result<()> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.pos += 1;
                }
            }
            _ => return Err(self.error("expected a digit")),
        }
        let text = &self.input[start..self.pos];
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return Err(Error::Canonical(format!(
                "{}... is not an integer: canonical JSON has no floating point numbers",
                String::from_utf8_lossy(text)
            )));
        }
        // Valid UTF-8 (checked up front) and digits only.
        let digits = std::str::from_utf8(text).unwrap_or_default();
        let in_range = if text[0] == b'-' {
            digits.parse::<i64>().is_ok()
        } else {
            digits.parse::<u64>().is_ok()
        };
        if !in_range {
            return Err(Error::Canonical(format!(
                "{digits} is out of the 64-bit integer range"
            )));
        }
        out.extend_from_slice(if text == b"-0" { b"0" } else { text });
        Ok(())
    }

    /// A string's decoded UTF-8 bytes, borrowed from the input when it has no escapes.
    fn string(&mut self) -> Result<Cow<'a, [u8]>> {
        self.expect(b'"')?;
        let input = self.input;
        let start = self.pos;
        let rest = &input[start..];
        let Some(stop) = memchr::memchr2(b'"', b'\\', rest) else {
            self.pos = input.len();
            return Err(self.error("unterminated string"));
        };
        if let Some(bad) = rest[..stop].iter().position(|&b| b < 0x20) {
            self.pos = start + bad;
            return Err(self.error("control character in a string"));
        }
        self.pos = start + stop;
        if rest[stop] == b'"' {
            self.pos += 1;
            return Ok(Cow::Borrowed(&rest[..stop]));
        }
        let mut owned = input[start..self.pos].to_vec();
        loop {
            match input.get(self.pos) {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Cow::Owned(owned));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    self.escape(&mut owned)?;
                }
                Some(0..=0x1f) => return Err(self.error("control character in a string")),
                Some(&b) => {
                    owned.push(b);
                    self.pos += 1;
                }
                None => return Err(self.error("unterminated string")),
            }
        }
    }

    fn escape(&mut self, owned: &mut Vec<u8>) -> Result<()> {
        let Some(&b) = self.input.get(self.pos) else {
            return Err(self.error("unterminated escape"));
        };
        self.pos += 1;
        let byte = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let c = self.unicode_escape()?;
                owned.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                return Ok(());
            }
            _ => return Err(self.error("invalid escape")),
        };
        owned.push(byte);
        Ok(())
    }

    /// The character of a `\u` escape (the `\u` consumed), joining a surrogate pair. A lone
    /// surrogate has no UTF-8 form, so it is refused (as serde_json and python-tuf's encoder do).
    fn unicode_escape(&mut self) -> Result<char> {
        let high = self.hex4()?;
        let code = if (0xd800..0xdc00).contains(&high) {
            if !self.input[self.pos..].starts_with(b"\\u") {
                return Err(self.error("lone surrogate in \\u escape"));
            }
            self.pos += 2;
            let low = self.hex4()?;
            if !(0xdc00..0xe000).contains(&low) {
                return Err(self.error("lone surrogate in \\u escape"));
            }
            0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00)
        } else {
            high
        };
        char::from_u32(code).ok_or_else(|| self.error("lone surrogate in \\u escape"))
    }

    fn hex4(&mut self) -> Result<u32> {
        let digits = self
            .input
            .get(self.pos..self.pos + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.error("\\u needs four hex digits"))?;
        let value = u32::from_str_radix(digits, 16).map_err(|_| self.error("bad \\u escape"))?;
        self.pos += 4;
        Ok(value)
    }

    fn array(&mut self, out: &mut Vec<u8>) -> Result<()> {
        self.expect(b'[')?;
        out.push(b'[');
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            out.push(b']');
            return Ok(());
        }
        loop {
            self.skip_ws();
            self.value(out)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => out.push(b','),
                Some(b']') => break,
                _ => return Err(self.error("expected ',' or ']'")),
            }
            self.pos += 1;
        }
        self.pos += 1;
        out.push(b']');
        Ok(())
    }

    fn object(&mut self, out: &mut Vec<u8>) -> Result<()> {
        self.expect(b'{')?;
        out.push(b'{');
        let body = out.len();
        let base = self.members.len();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            out.push(b'}');
            return Ok(());
        }
        loop {
            self.skip_ws();
            let key = self.string()?;
            self.skip_ws();
            self.expect(b':')?;
            self.skip_ws();
            if self.members.len() > base {
                out.push(b',');
            }
            let start = out.len();
            write_bytes(&key, matches!(key, Cow::Borrowed(_)), out);
            out.push(b':');
            self.value(out)?;
            self.members.push(Member {
                key,
                start,
                end: out.len(),
            });
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => break,
                _ => return Err(self.error("expected ',' or '}'")),
            }
        }
        self.pos += 1;
        self.put_in_order(base, body, out)?;
        self.members.truncate(base);
        out.push(b'}');
        Ok(())
    }

    /// Reorder the members written from `body` on (recorded from `base` on) by key, as bytes:
    /// UTF-8 byte order is code point order, Python's order for str keys.
    fn put_in_order(&mut self, base: usize, body: usize, out: &mut Vec<u8>) -> Result<()> {
        let members = &mut self.members[base..];
        if members.windows(2).all(|w| w[0].key < w[1].key) {
            return Ok(());
        }
        members.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        if let Some(w) = members.windows(2).find(|w| w[0].key == w[1].key) {
            return Err(Error::Canonical(format!(
                "duplicate key \"{}\" in an object",
                String::from_utf8_lossy(&w[0].key)
            )));
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(&out[body..]);
        out.truncate(body);
        for (i, m) in members.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&self.scratch[m.start - body..m.end - body]);
        }
        Ok(())
    }
}
