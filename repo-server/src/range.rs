//! `Range: bytes=...` parsing and evaluation against a file length (RFC 9110 §14).

/// What to send for a GET with an (optional) `Range` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOutcome {
    /// No usable range: send the whole representation with 200.
    Full,
    /// Send bytes `start..=end` with 206 and `Content-Range: bytes start-end/len`.
    Partial {
        /// First byte offset, inclusive.
        start: u64,
        /// Last byte offset, inclusive.
        end: u64,
    },
    /// The range does not overlap the file: 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

impl RangeOutcome {
    /// Number of body bytes this outcome sends for a file of `len` bytes.
    pub fn body_len(self, len: u64) -> u64 {
        match self {
            RangeOutcome::Full => len,
            RangeOutcome::Partial { start, end } => end - start + 1,
            RangeOutcome::Unsatisfiable => 0,
        }
    }
}

/// Evaluates a `Range` header value against a representation of `len` bytes.
///
/// Only single ranges are honoured. Multiple ranges, other units and syntactically invalid values
/// are ignored (RFC 9110 allows a server to ignore `Range`), which yields a 200 with the full body;
/// a client resuming a download gets correct bytes either way.
pub fn evaluate(header: &str, len: u64) -> RangeOutcome {
    let Some((unit, spec)) = header.trim().split_once('=') else {
        return RangeOutcome::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return RangeOutcome::Full;
    }
    let spec = spec.trim();
    if spec.contains(',') {
        return RangeOutcome::Full;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeOutcome::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    match (first.is_empty(), last.is_empty()) {
        // `-n`: the final n bytes.
        (true, false) => {
            let Some(n) = parse_pos(last) else {
                return RangeOutcome::Full;
            };
            if n == 0 || len == 0 {
                return RangeOutcome::Unsatisfiable;
            }
            RangeOutcome::Partial {
                start: len - n.min(len),
                end: len - 1,
            }
        }
        // `a-` or `a-b`.
        (false, _) => {
            let Some(start) = parse_pos(first) else {
                return RangeOutcome::Full;
            };
            let end = if last.is_empty() {
                u64::MAX
            } else {
                match parse_pos(last) {
                    Some(end) if end >= start => end,
                    // last < first makes the whole header invalid, hence ignored.
                    _ => return RangeOutcome::Full,
                }
            };
            if start >= len {
                return RangeOutcome::Unsatisfiable;
            }
            RangeOutcome::Partial {
                start,
                end: end.min(len - 1),
            }
        }
        (true, true) => RangeOutcome::Full,
    }
}

/// Parses a run of ASCII digits; values too large for u64 saturate (they are past any file end).
fn parse_pos(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse::<u64>().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::RangeOutcome::*;
    use super::*;

    fn p(start: u64, end: u64) -> RangeOutcome {
        Partial { start, end }
    }

    #[test]
    fn single_ranges() {
        assert_eq!(evaluate("bytes=0-0", 10), p(0, 0));
        assert_eq!(evaluate("bytes=2-5", 10), p(2, 5));
        assert_eq!(evaluate("bytes=2-", 10), p(2, 9));
        assert_eq!(evaluate("bytes=5-100", 10), p(5, 9));
        assert_eq!(evaluate("bytes=-3", 10), p(7, 9));
        assert_eq!(evaluate("bytes=-30", 10), p(0, 9));
        assert_eq!(evaluate("Bytes = 1-2", 10), p(1, 2));
        assert_eq!(evaluate("bytes=0-99999999999999999999999", 10), p(0, 9));
        assert_eq!(p(2, 5).body_len(10), 4);
    }

    #[test]
    fn unsatisfiable_ranges() {
        assert_eq!(evaluate("bytes=10-", 10), Unsatisfiable);
        assert_eq!(evaluate("bytes=10-20", 10), Unsatisfiable);
        assert_eq!(evaluate("bytes=-0", 10), Unsatisfiable);
        assert_eq!(evaluate("bytes=0-", 0), Unsatisfiable);
        assert_eq!(evaluate("bytes=-5", 0), Unsatisfiable);
        assert_eq!(
            evaluate("bytes=99999999999999999999999-", 10),
            Unsatisfiable
        );
    }

    #[test]
    fn ignored_ranges_mean_full_body() {
        for h in [
            "bytes=0-1,4-5",
            "items=0-1",
            "bytes=5-2",
            "bytes=-",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes 0-1",
            "bytes=1",
            "",
        ] {
            assert_eq!(evaluate(h, 10), Full, "{h:?}");
        }
    }
}
