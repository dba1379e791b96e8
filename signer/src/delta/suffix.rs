//! Longest-match queries against the old image through its suffix array.

/// Compared prefixes are capped so that one query on highly repetitive data (runs of zeros
/// in a filesystem image) costs O(log n * CAP), not O(log n * run length). Longer matches
/// are found as consecutive capped matches, which the cover search merges.
const CAP: usize = 4096;

/// The old image with its suffix array (built by libdivsufsort's algorithm, O(n log n)).
pub struct SuffixIndex<'a> {
    old: &'a [u8],
    sa: Vec<i32>,
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len()).min(CAP);
    // Compare 8 bytes at a time: this is the hot loop of patch creation.
    let mut i = 0;
    while i + 8 <= n {
        let x = u64::from_le_bytes(a[i..i + 8].try_into().unwrap_or([0; 8]));
        let y = u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        if x != y {
            return i + ((x ^ y).trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

impl<'a> SuffixIndex<'a> {
    /// Sorts the suffixes of `old` (which must be shorter than 2 GiB).
    pub fn new(old: &'a [u8]) -> Self {
        let sa = if old.is_empty() {
            Vec::new()
        } else {
            divsufsort::sort(old).into_parts().1
        };
        SuffixIndex { old, sa }
    }

    /// The old position and length of a longest prefix of `target` found in `old` (length
    /// capped at 4 KiB). `(0, 0)` when nothing matches.
    pub fn longest_match(&self, target: &[u8]) -> (usize, usize) {
        if self.sa.is_empty() || target.is_empty() {
            return (0, 0);
        }
        let (mut lo, mut hi) = (0usize, self.sa.len() - 1);
        // Invariant: suffix(lo) <= target <= suffix(hi) in the capped order, or at the ends.
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            let s = &self.old[self.sa[mid] as usize..];
            let l = common_prefix(s, target);
            let less = if l == CAP.min(target.len()) {
                // Equal on the compared prefix: either side keeps a longest match in range.
                true
            } else if l == s.len() {
                true
            } else {
                s[l] < target[l]
            };
            if less {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let (plo, phi) = (self.sa[lo] as usize, self.sa[hi] as usize);
        let llo = common_prefix(&self.old[plo..], target);
        let lhi = common_prefix(&self.old[phi..], target);
        if llo >= lhi {
            (plo, llo)
        } else {
            (phi, lhi)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_longest_match() {
        let old = b"the quick brown fox jumps over the lazy dog";
        let idx = SuffixIndex::new(old);
        let (p, l) = idx.longest_match(b"over the lazy cat");
        assert_eq!(&old[p..p + l], b"over the lazy ");
        assert_eq!(idx.longest_match(b"zzz").1, 1);
        assert_eq!(SuffixIndex::new(b"").longest_match(b"abc"), (0, 0));
    }
}
