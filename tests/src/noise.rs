//! Deterministic pseudo-random bytes for test images.

/// `len` incompressible bytes (xorshift), the same for the same `seed`, distinct per seed:
/// a full target is then as large as the image, and payloads span many chunks.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
