//! Finds the compressed streams worth diffing decompressed (see
//! `ota_formats::patch::expand`): LZ4 legacy streams, such as a kernel inside a root
//! filesystem image.

use ota_formats::patch::expand::{lz4, Expansion, PackedRegion, Region, MAX_REGIONS};

/// Streams that expand to less than this are left alone.
const MIN_EXPANDED: usize = 1 << 20;

/// LZ4 HC levels tried to reproduce a result stream: 9 is what `lz4 -l -9` (and Linux's
/// `CONFIG_KERNEL_LZ4` builds) use, 12 the maximum.
const LEVELS: [u8; 2] = [9, 12];

/// The images with their streams expanded, and the table that says where they were.
pub struct Expanded {
    /// The expansion table.
    pub table: Expansion,
    /// The base as the diff sees it.
    pub old: Vec<u8>,
    /// The result as the diff sees it.
    pub new: Vec<u8>,
}

/// The level that recompresses `f` exactly, trying the first block before the whole stream.
fn reproducing_level(image: &[u8], f: &lz4::Found) -> Option<u8> {
    let first = f.expanded.len().min(lz4::BLOCK);
    let mut block = Vec::new();
    LEVELS.into_iter().find(|&level| {
        let first_ok = lz4::compress_block(&f.expanded[..first], level, &mut block).is_some()
            && image.get(f.start + 8..f.start + 8 + block.len()) == Some(&block[..]);
        first_ok
            && lz4::encode(&f.expanded, level).as_deref()
                == image.get(f.start..f.start + f.packed_len)
    })
}

/// The expansion for `old` -> `new`, if the result holds at least one stream that
/// recompresses exactly (expanding only the base would not help the diff).
pub fn find(old: &[u8], new: &[u8]) -> Option<Expanded> {
    let mut new_found = Vec::new();
    // Streams that do not recompress exactly are skipped, so look at a few more than fit.
    for f in lz4::scan(new, MIN_EXPANDED, 4 * MAX_REGIONS) {
        if new_found.len() == MAX_REGIONS {
            break;
        }
        match reproducing_level(new, &f) {
            Some(level) => new_found.push((f, level)),
            None => tracing::debug!(at = f.start, "LZ4 stream does not recompress exactly"),
        }
    }
    if new_found.is_empty() {
        return None;
    }
    let old_found = lz4::scan(old, MIN_EXPANDED, MAX_REGIONS);
    let region = |f: &lz4::Found| Region {
        start: f.start as u64,
        packed_len: f.packed_len as u64,
        expanded_len: f.expanded.len() as u64,
    };
    let table = Expansion {
        old: old_found.iter().map(region).collect(),
        new: new_found
            .iter()
            .map(|(f, level)| PackedRegion {
                region: region(f),
                level: *level,
            })
            .collect(),
    };
    let expanded_old: Vec<&[u8]> = old_found.iter().map(|f| &f.expanded[..]).collect();
    let expanded_new: Vec<&[u8]> = new_found.iter().map(|(f, _)| &f.expanded[..]).collect();
    tracing::info!(
        old = table.old.len(),
        new = table.new.len(),
        "diffing LZ4 streams decompressed"
    );
    Some(Expanded {
        old: Expansion::expand_image(old, &table.old, &expanded_old),
        new: Expansion::expand_image(
            new,
            &table.new.iter().map(|p| p.region).collect::<Vec<_>>(),
            &expanded_new,
        ),
        table,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_reproducible_stream_and_expands_both_images() {
        let content = |seed: u32| -> Vec<u8> {
            (0..600_000u32)
                .flat_map(|i| (i / 5 + seed * (i % 1000 == 0) as u32).to_le_bytes())
                .collect()
        };
        let (c_old, c_new) = (content(1), content(2));
        let mut old = vec![7u8; 5000];
        old.extend(lz4::encode(&c_old, 9).unwrap());
        old.extend([1, 2, 3, 4]);
        let mut new = vec![7u8; 6000];
        new.extend(lz4::encode(&c_new, 9).unwrap());
        new.extend([1, 2, 3, 4]);
        let e = find(&old, &new).unwrap();
        assert_eq!(e.table.new.len(), 1);
        assert_eq!(e.table.new[0].level, 9);
        assert_eq!(e.table.new[0].region.start, 6000);
        assert_eq!(e.table.old[0].start, 5000);
        assert_eq!(&e.new[6000..6000 + c_new.len()], &c_new[..]);
        assert_eq!(&e.old[5000..5000 + c_old.len()], &c_old[..]);
        assert_eq!(e.new.len(), 6000 + c_new.len() + 4);
        // No stream in the result: nothing to expand.
        assert!(find(&old, &vec![0u8; 10_000]).is_none());
    }
}
