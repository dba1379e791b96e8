//! What a remap filter predicts the base through: where old positions moved to (the
//! address map) and which pointer values are positions in the image (the load ranges).

/// Largest number of entries in an [`AddressMap`] (bounds the applier's memory: 512 KiB).
pub const MAX_MAP_ENTRIES: usize = 1 << 16;

/// Largest number of [`LoadRange`]s a patch may carry.
pub const MAX_LOAD_RANGES: usize = 16;

/// Old image position -> shift to its new position, as a step function: the shift of the
/// last entry whose start is at or below a position (0 before the first entry).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressMap {
    starts: Vec<u32>,
    shifts: Vec<i32>,
}

impl AddressMap {
    /// A map from `(old_start, shift)` pairs (any order). Keeps at most
    /// [`MAX_MAP_ENTRIES`] entries, preferring those listed first.
    pub fn new(mut entries: Vec<(u32, i32)>) -> Self {
        entries.truncate(MAX_MAP_ENTRIES);
        entries.sort_unstable();
        entries.dedup_by_key(|e| e.0);
        let mut m = AddressMap::default();
        for (s, d) in entries {
            if m.shifts.last() != Some(&d) {
                m.starts.push(s);
                m.shifts.push(d);
            }
        }
        m
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// The shift for old position `x`.
    pub fn shift(&self, x: u32) -> i32 {
        match self.starts.partition_point(|&s| s <= x) {
            0 => 0,
            k => self.shifts[k - 1],
        }
    }

    /// The shift for an old position that may lie outside the 32-bit range (0 there).
    pub fn shift_at(&self, x: i64) -> i32 {
        u32::try_from(x).map_or(0, |x| self.shift(x))
    }

    /// Serialises as `n:varint` then `n` times `start_delta:varint shift:zigzag-varint`.
    pub fn write(&self, out: &mut Vec<u8>) {
        super::super::varint::put_u64(out, self.starts.len() as u64);
        let mut prev = 0u32;
        for (&s, &d) in self.starts.iter().zip(&self.shifts) {
            super::super::varint::put_u64(out, u64::from(s - prev));
            super::super::varint::put_i64(out, i64::from(d));
            prev = s;
        }
    }

    /// Builds a map from decoded entries, checking what [`AddressMap::write`] guarantees
    /// and that no start exceeds `max_start`.
    pub fn from_parts(starts: Vec<u32>, shifts: Vec<i32>, max_start: u32) -> Option<Self> {
        let ok = starts.len() == shifts.len()
            && starts.len() <= MAX_MAP_ENTRIES
            && starts.windows(2).all(|w| w[0] < w[1])
            && !matches!(starts.last(), Some(&s) if s > max_start);
        ok.then_some(AddressMap { starts, shifts })
    }
}

/// A run of addresses that a program sees at `vaddr..vaddr + len` and that the image holds
/// at `offset..` (an ELF `PT_LOAD` segment). A pointer value inside it designates the image
/// position `offset + (value - vaddr)`. The image bytes of a `code` range are machine code,
/// not scanned for pointers (aligned code bytes that look like addresses are mostly not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadRange {
    /// First address.
    pub vaddr: u64,
    /// Number of addresses.
    pub len: u64,
    /// Image position of `vaddr`.
    pub offset: u64,
    /// Whether the range holds code.
    pub code: bool,
}

/// What the base of a remap patch is read through: the address map and, for
/// [`Filter::X86RemapPointers`](super::Filter::X86RemapPointers), the load ranges that
/// tell which 64-bit words are pointers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prediction {
    /// Old position -> shift.
    pub map: AddressMap,
    /// Address ranges whose values are predicted as pointers (at most [`MAX_LOAD_RANGES`]).
    pub loads: Vec<LoadRange>,
}

impl Prediction {
    /// A prediction by the address map alone.
    pub fn from_map(map: AddressMap) -> Self {
        Prediction {
            map,
            loads: Vec::new(),
        }
    }

    /// The image position a pointer value designates, if it lies in a load range.
    pub fn pointer_target(&self, value: u64) -> Option<u64> {
        self.loads
            .iter()
            .find(|r| value >= r.vaddr && value - r.vaddr < r.len)
            .map(|r| r.offset.wrapping_add(value - r.vaddr))
    }

    /// Whether image position `pos` lies in a code range.
    pub fn in_code(&self, pos: u64) -> bool {
        self.loads
            .iter()
            .any(|r| r.code && pos >= r.offset && pos - r.offset < r.len)
    }

    /// Serialises the load ranges as `n:varint` then `n` times
    /// `vaddr:varint len:varint offset:varint code:varint` (code is 0 or 1).
    pub fn write_loads(&self, out: &mut Vec<u8>) {
        use super::super::varint::put_u64;
        put_u64(out, self.loads.len() as u64);
        for r in &self.loads {
            put_u64(out, r.vaddr);
            put_u64(out, r.len);
            put_u64(out, r.offset);
            put_u64(out, u64::from(r.code));
        }
    }
}
