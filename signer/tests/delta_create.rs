//! Patch creation: round trips through the real applier, candidate choice, publish decision.

use ota_formats::patch::{apply, Filter};
use ota_signer::delta::{create_patch, create_patch_bytes, CreateOptions};

fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn round_trip(old: &[u8], new: &[u8]) -> ota_signer::delta::PatchInfo {
    let (patch, info) = create_patch_bytes(old, new, &CreateOptions::default()).unwrap();
    let mut out = Vec::new();
    apply(std::io::Cursor::new(old), &patch[..], &mut out).unwrap();
    assert!(out == new, "applied patch must reproduce the new image");
    assert_eq!(patch.len() as u64, info.chosen.len);
    let min = info.candidates.iter().map(|c| c.len).min().unwrap();
    assert_eq!(info.chosen.len, min, "the smallest candidate is kept");
    info
}

/// A synthetic x86-64-like image: functions of filler code calling each other with
/// `E8 rel32` and loading data with `48 8D 05 disp32`.
fn code(funcs: &[Vec<u8>], calls: &[(usize, usize, usize)]) -> Vec<u8> {
    let mut starts = Vec::new();
    let mut img = Vec::new();
    for f in funcs {
        starts.push(img.len());
        img.extend_from_slice(f);
    }
    for &(from_fn, at, to_fn) in calls {
        let site = starts[from_fn] + at;
        let rel = starts[to_fn] as i64 - (site as i64 + 5);
        img[site] = 0xE8;
        img[site + 1..site + 5].copy_from_slice(&(rel as i32).to_le_bytes());
        let lea = site + 5;
        let disp = (starts[to_fn] as i64 + 16) - (lea as i64 + 7);
        img[lea..lea + 3].copy_from_slice(&[0x48, 0x8D, 0x05]);
        img[lea + 3..lea + 7].copy_from_slice(&(disp as i32).to_le_bytes());
    }
    img
}

#[test]
fn random_pairs_round_trip() {
    round_trip(&bytes(1, 20_000), &bytes(2, 25_000));
    round_trip(&[], &bytes(3, 5_000));
    round_trip(&bytes(4, 5_000), &[]);
    round_trip(&[], &[]);
    let same = bytes(5, 300_000);
    let info = round_trip(&same, &same);
    assert!(info.chosen.method.is_diff());
    assert!(
        info.chosen.len < 400,
        "identical images give a tiny patch, got {}",
        info.chosen.len
    );
}

#[test]
fn edited_image_gives_small_delta_worth_publishing() {
    let old = bytes(6, 2_000_000);
    let mut new = old.clone();
    new.splice(500_000..500_000, bytes(7, 10_000));
    new.drain(1_200_000..1_230_000);
    for i in (0..new.len()).step_by(50_000) {
        new[i] = new[i].wrapping_add(1);
    }
    let info = round_trip(&old, &new);
    assert!(info.chosen.method.is_diff());
    assert!(
        info.chosen.len < 13_000,
        "delta {} too large",
        info.chosen.len
    );
    assert!(info.worth_publishing());
    assert!(info.full_len > 1_900_000, "random data does not compress");
}

#[test]
fn unrelated_images_fall_back_to_full() {
    let old = bytes(8, 100_000);
    let new: Vec<u8> = b"config line\n"
        .iter()
        .copied()
        .cycle()
        .take(100_000)
        .collect();
    let info = round_trip(&old, &new);
    assert!(!info.worth_publishing() || info.chosen.method.is_diff());
    assert!(info.chosen.len < 2_000);
}

type Calls = Vec<(usize, usize, usize)>;

/// `n` functions of pseudo-random filler (sizes 300 + (i * step) % spread) and `per_fn`
/// calls from each to functions spread over the program.
fn program(
    n: usize,
    seed: u64,
    step: usize,
    spread: usize,
    per_fn: usize,
) -> (Vec<Vec<u8>>, Calls) {
    let funcs = (0..n)
        .map(|i| bytes(seed + i as u64, 300 + (i * step) % spread))
        .collect();
    let calls = (0..n * per_fn)
        .map(|k| (k % n, 20 + (k / n) * 40, (k * 7919) % n))
        .collect();
    (funcs, calls)
}

/// The smallest diff candidate made with `filter`.
fn best_of(info: &ota_signer::delta::PatchInfo, filter: Filter) -> u64 {
    info.candidates
        .iter()
        .filter(|c| c.method.is_diff() && c.filter == filter)
        .map(|c| c.len)
        .min()
        .unwrap()
}

#[test]
fn x86_like_binary_with_shifted_call_targets() {
    let n = 400;
    let (funcs, calls) = program(n, 100, 37, 500, 6);
    let old = code(&funcs, &calls);
    // New version: one function grows in the middle, shifting every later call target.
    let mut funcs2 = funcs.clone();
    funcs2[n / 2].extend(bytes(9, 700));
    let new = code(&funcs2, &calls);
    let info = round_trip(&old, &new);
    assert!(info.chosen.method.is_diff());
    let (plain, x86) = (best_of(&info, Filter::None), best_of(&info, Filter::X86));
    let remap = best_of(&info, Filter::X86Remap);
    eprintln!("x86-like: x86 remap filter {remap} bytes");
    // Predicting the moved call targets through the address map beats both.
    assert!(remap < plain.min(x86), "remap {remap} vs {plain}/{x86}");
    eprintln!(
        "x86-like: no filter {plain} bytes, x86 filter {x86} bytes, full {}",
        info.full_len
    );
    assert!(info.chosen.len <= plain.min(x86));
    assert!(
        info.chosen.len * 10 < info.full_len,
        "delta must be far below the full image"
    );
}

/// An x86-64 ELF: header and one PT_LOAD (vaddr = offset + 0x400000), code as in
/// [`code`], then a table of 8-byte pointers to every function.
fn elf(funcs: &[Vec<u8>], calls: &[(usize, usize, usize)]) -> Vec<u8> {
    const VBASE: u64 = 0x40_0000;
    let mut img = vec![0u8; 0x1000];
    img[..6].copy_from_slice(b"\x7fELF\x02\x01");
    img[18..20].copy_from_slice(&0x3Eu16.to_le_bytes()); // x86-64
    img[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
    img[0x36..0x38].copy_from_slice(&0x38u16.to_le_bytes());
    img[0x38..0x3A].copy_from_slice(&1u16.to_le_bytes());
    let code = code(funcs, calls);
    let mut starts = Vec::new();
    let mut at = 0x1000u64;
    for f in funcs {
        starts.push(at);
        at += f.len() as u64;
    }
    img.extend_from_slice(&code);
    img.resize(img.len().div_ceil(8) * 8, 0);
    for s in &starts {
        img.extend_from_slice(&(VBASE + s).to_le_bytes());
    }
    let ph = 0x40;
    img[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    img[ph + 16..ph + 24].copy_from_slice(&VBASE.to_le_bytes());
    let len = img.len() as u64;
    img[ph + 40..ph + 48].copy_from_slice(&len.to_le_bytes());
    img
}

#[test]
fn elf_pointer_tables_follow_moved_functions() {
    let n = 300;
    let (funcs, calls) = program(n, 200, 41, 400, 4);
    let old = elf(&funcs, &calls);
    // Every tenth function grows by a different amount: later pointers move irregularly.
    let mut funcs2 = funcs.clone();
    for i in (0..n).step_by(10) {
        funcs2[i].extend(bytes(12 + i as u64, 8 + (i * 13) % 200));
    }
    let new = elf(&funcs2, &calls);
    let info = round_trip(&old, &new);
    let (remap, pointers) = (
        best_of(&info, Filter::X86Remap),
        best_of(&info, Filter::X86RemapPointers),
    );
    eprintln!("elf: x86 remap {remap} bytes, with pointers {pointers} bytes");
    // 300 pointers moved by 30 different shifts: predicted, they need no difference bytes.
    assert!(
        pointers * 10 < remap * 9,
        "pointers {pointers} vs remap {remap}"
    );
    assert_eq!(info.chosen.filter, Filter::X86RemapPointers);
}

#[test]
fn create_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let (o, n) = (dir.path().join("a.old"), dir.path().join("a.new"));
    let old = bytes(10, 50_000);
    let mut new = old.clone();
    new[25_000..25_100].copy_from_slice(&bytes(11, 100));
    std::fs::write(&o, &old).unwrap();
    std::fs::write(&n, &new).unwrap();
    let (patch, info) = create_patch(&o, &n, &CreateOptions::default()).unwrap();
    assert!(info.worth_publishing());
    let mut out = Vec::new();
    apply(std::fs::File::open(&o).unwrap(), &patch[..], &mut out).unwrap();
    assert_eq!(out, new);
    let err = create_patch(&dir.path().join("missing"), &n, &CreateOptions::default()).unwrap_err();
    assert!(err.to_string().contains("missing"));
}

/// Real image pairs from ../shared/corpus/fetch.sh (beside the project checkout) (run with `--ignored`; takes minutes).
#[test]
#[ignore]
fn corpus_pairs_round_trip() {
    let dir = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(std::env::var("HOME").unwrap()).join(".cache"))
        .join("ota-delta-corpus/files");
    for pair in ["nrf52", "esbuild"] {
        let (o, n) = (
            dir.join(format!("{pair}.old")),
            dir.join(format!("{pair}.new")),
        );
        if !o.exists() {
            eprintln!("corpus pair {pair} missing, skipped");
            continue;
        }
        let (patch, info) = create_patch(&o, &n, &CreateOptions::default()).unwrap();
        let mut out = Vec::new();
        apply(std::fs::File::open(&o).unwrap(), &patch[..], &mut out).unwrap();
        assert!(out == std::fs::read(&n).unwrap());
        assert!(info.worth_publishing());
        eprintln!("{pair}: {} bytes ({:?})", patch.len(), info.chosen);
    }
}

#[test]
fn lz4_streams_are_diffed_decompressed() {
    use ota_formats::patch::expand::lz4;
    use ota_formats::patch::Method;
    // A "kernel" of 3 MiB of code-like bytes, LZ4-compressed in both images; the new one
    // differs in a few places, which changes most of its compressed bytes.
    // Text-like content (words of a small random vocabulary), with a byte changed every
    // 2,000 bytes in the new version, as addresses change all over a rebuilt kernel.
    let vocab: Vec<Vec<u8>> = (0..4000)
        .map(|i| bytes(40 + i, 3 + (i as usize % 9)))
        .collect();
    let kernel = |v: u8| -> Vec<u8> {
        let mut k = Vec::new();
        let mut x = 12345u64;
        while k.len() < 3 << 20 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            k.extend_from_slice(&vocab[(x >> 33) as usize % vocab.len()]);
        }
        for at in (1000..k.len()).step_by(2_000) {
            k[at] = k[at].wrapping_add(v);
        }
        k
    };
    let image = |v: u8| {
        let mut img = bytes(30, 20_000);
        img.extend(lz4::encode(&kernel(v), 9).unwrap());
        img.extend(bytes(31, 20_000));
        img
    };
    let (old, new) = (image(1), image(2));
    let info = round_trip(&old, &new);
    assert_eq!(info.chosen.method, Method::ExpandedSparseDiff);
    let plain = CreateOptions {
        expand: false,
        ..CreateOptions::default()
    };
    let (patch, _) = create_patch_bytes(&old, &new, &plain).unwrap();
    eprintln!(
        "lz4 stream: {} bytes expanded, {} bytes diffed compressed",
        info.chosen.len,
        patch.len()
    );
    assert!(info.chosen.len * 2 < patch.len() as u64);
}

#[test]
fn bsdiff_crate_and_zstd_prefix_are_candidates_too() {
    use ota_formats::patch::Method;
    use ota_signer::delta::Matcher;
    let old = bytes(70, 300_000);
    let mut new = old.clone();
    new.splice(100_000..100_000, bytes(71, 2_000));
    new[250_000] ^= 0x5A;
    let info = round_trip(&old, &new);
    assert!(info
        .candidates
        .iter()
        .any(|c| c.matcher == Matcher::Bsdiff && c.method.is_diff()));
    assert!(info
        .candidates
        .iter()
        .any(|c| c.method == Method::ZstdPrefix));

    // Without our own matchers, the zstd-prefix patch wins over the full image and applies
    // (round_trip runs the real applier on the chosen patch).
    let only_prefix = CreateOptions {
        filters: Vec::new(),
        bsdiff_limit: 0,
        ..CreateOptions::default()
    };
    let (patch, info) = create_patch_bytes(&old, &new, &only_prefix).unwrap();
    assert_eq!(info.chosen.method, Method::ZstdPrefix);
    assert!(info.worth_publishing());
    let mut out = Vec::new();
    apply(std::io::Cursor::new(&old), &patch[..], &mut out).unwrap();
    assert!(out == new);
    // With only the bsdiff crate's covers, its patch is chosen and applies.
    let only_bsdiff = CreateOptions {
        filters: Vec::new(),
        prefix_limit: 0,
        ..CreateOptions::default()
    };
    let (patch, info) = create_patch_bytes(&old, &new, &only_bsdiff).unwrap();
    assert_eq!(info.chosen.matcher, Matcher::Bsdiff);
    let mut out = Vec::new();
    apply(std::io::Cursor::new(&old), &patch[..], &mut out).unwrap();
    assert!(out == new);
    // Bases above the prefix limit get no zstd-prefix candidate (the device holds the base).
    let small_limit = CreateOptions {
        prefix_limit: 1000,
        ..CreateOptions::default()
    };
    let (_, info) = create_patch_bytes(&old, &new, &small_limit).unwrap();
    assert!(info
        .candidates
        .iter()
        .all(|c| c.method != Method::ZstdPrefix));
}
