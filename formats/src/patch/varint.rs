//! LEB128 variable-length unsigned integers and zigzag signed integers, as used in the
//! payload control records.

use std::io::Read;

/// Appends `v` as unsigned LEB128 (7 bits per byte, low bits first, high bit = more).
pub fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v` zigzag-encoded (0, -1, 1, -2, ... map to 0, 1, 2, 3, ...) as LEB128.
pub fn put_i64(out: &mut Vec<u8>, v: i64) {
    put_u64(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// Outcome of reading one varint from a stream.
#[derive(Debug, PartialEq, Eq)]
pub enum VarintRead {
    /// A complete value.
    Value(u64),
    /// The stream ended before the first byte.
    Eof,
    /// The stream ended in the middle of the value.
    Truncated,
    /// More than 10 bytes, or bits beyond 64.
    Overlong,
}

/// Reads one unsigned LEB128 value.
pub fn read_u64<R: Read>(r: &mut R) -> std::io::Result<VarintRead> {
    let mut v: u64 = 0;
    let mut byte = [0u8; 1];
    for i in 0..10u32 {
        if r.read(&mut byte)? == 0 {
            return Ok(if i == 0 {
                VarintRead::Eof
            } else {
                VarintRead::Truncated
            });
        }
        let b = byte[0];
        if i == 9 && b > 1 {
            return Ok(VarintRead::Overlong);
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(VarintRead::Value(v));
        }
    }
    Ok(VarintRead::Overlong)
}

/// Undoes the zigzag mapping of [`put_i64`].
pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_edge_values() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            put_u64(&mut b, v);
            assert_eq!(read_u64(&mut &b[..]).unwrap(), VarintRead::Value(v));
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX, -123456] {
            let mut b = Vec::new();
            put_i64(&mut b, v);
            match read_u64(&mut &b[..]).unwrap() {
                VarintRead::Value(u) => assert_eq!(unzigzag(u), v),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(read_u64(&mut &[0x80u8][..]).unwrap(), VarintRead::Truncated);
        assert_eq!(read_u64(&mut &[][..]).unwrap(), VarintRead::Eof);
        assert_eq!(
            read_u64(&mut &[0xffu8; 11][..]).unwrap(),
            VarintRead::Overlong
        );
    }
}
