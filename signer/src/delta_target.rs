//! Delta targets of `ota-sign add --delta-from`: choosing the base releases, getting their
//! plaintext images, and turning a patch (from [`crate::delta`]) into a target file.
//!
//! A patch target `NAME-VERSION.from-BASEVERSION.patch` carries the patch bytes as they are
//! (the patch payload is compressed already, so `custom.ota.compression` is `none`), maybe
//! encrypted like the full target. Its `custom.ota` is the full target's (same name,
//! version, hardware ids and resulting image) plus a typed `delta` object naming the base.
use crate::compress::Compressed;
use crate::delta::{create_patch, CreateOptions, PatchInfo};
use crate::{Error, Result};
use ota_formats::metadata::{TargetFile, Targets};
use ota_formats::patch::Method;
use ota_formats::target_meta::{Compression, DeltaInfo, OtaTarget};
use ota_formats::version::Version;
use ota_fs::atomic;
use ota_fs::user_file;
use ota_repo::repository::target_file_path;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;

/// A published full release of the image name that a patch is made from.
#[derive(Debug, Clone)]
pub struct Base {
    /// Its target path.
    pub target_path: String,
    /// Its target entry.
    pub file: TargetFile,
    /// Its signed `custom.ota`.
    pub ota: OtaTarget,
    /// Its parsed version.
    pub version: Version,
}

/// The plaintext image of a base: a file the user gave, or one extracted from the repository.
#[derive(Debug)]
pub enum BaseImage {
    /// A `--base-image` file.
    Given(PathBuf),
    /// Decompressed from the base's target file (deleted on drop).
    Extracted(NamedTempFile),
}

impl BaseImage {
    /// Where the image is.
    pub fn path(&self) -> &Path {
        match self {
            BaseImage::Given(p) => p,
            BaseImage::Extracted(t) => t.path(),
        }
    }
}

/// What became of one requested patch.
#[derive(Debug, Serialize)]
pub struct PatchReport {
    /// Base version.
    pub base_version: String,
    /// Patch target path (also when not published, for reference).
    pub target: String,
    /// Whether the patch was published.
    pub published: bool,
    /// Why not, when it was not.
    pub reason: Option<String>,
    /// Patch size in bytes (before encryption).
    pub patch_length: u64,
    /// Size of the compressed full image the patch competes with (as the patch engine measured it).
    pub full_length: u64,
    /// Length of the published target file (encrypted if asked), when published.
    pub length: Option<u64>,
    /// sha256 of the published target file, when published.
    pub sha256: Option<String>,
    /// Patch method ("diff" or "full").
    pub method: String,
}

/// The patch target path for `name` `version` from `base_version`.
pub fn patch_target_path(name: &str, version: &str, base_version: &str) -> String {
    format!("{name}-{version}.from-{base_version}.patch")
}

/// Full (non-delta) targets of `name`, by version.
fn full_releases(targets: &Targets, name: &str) -> Vec<Base> {
    let mut out: Vec<Base> = Vec::new();
    for (path, t) in &targets.targets {
        let Ok(Some(ota)) = OtaTarget::from_custom(t.custom.as_ref()) else {
            continue;
        };
        if ota.name != name || ota.delta.is_some() {
            continue;
        }
        let Ok(version) = Version::parse(&ota.version) else {
            continue;
        };
        out.push(Base {
            target_path: path.clone(),
            file: t.clone(),
            ota,
            version,
        });
    }
    out.sort_by(|a, b| b.version.cmp(&a.version));
    out
}

/// The bases asked for by `--delta-from NAME@VERSION` and `--delta-from-previous N`,
/// deduplicated, newest first. Unknown versions and other names are refused.
pub fn resolve_bases(
    targets: &Targets,
    name: &str,
    new_version: &Version,
    from: &[String],
    previous: Option<usize>,
) -> Result<Vec<Base>> {
    let releases = full_releases(targets, name);
    let mut chosen: Vec<Base> = Vec::new();
    let push = |b: &Base, chosen: &mut Vec<Base>| {
        if !chosen.iter().any(|c| c.version.cmp(&b.version).is_eq()) {
            chosen.push(b.clone());
        }
    };
    for spec in from {
        let (n, v) = spec.split_once('@').ok_or_else(|| {
            Error::input(
                format!("--delta-from {spec:?} is not NAME@VERSION"),
                format!("name the base release, e.g. --delta-from {name}@1.0.0"),
            )
        })?;
        if n != name {
            return Err(Error::input(
                format!(
                    "--delta-from {spec}: a patch must be made from a release of {name}, not {n}"
                ),
                format!("use --delta-from {name}@VERSION"),
            ));
        }
        let version = Version::parse(v).map_err(|e| {
            Error::input(
                format!("--delta-from {spec}: invalid version {v:?}: {e}"),
                format!("use a semantic version, e.g. --delta-from {name}@1.0.0"),
            )
        })?;
        let base = releases
            .iter()
            .find(|b| b.version.cmp(&version).is_eq())
            .ok_or_else(|| {
                let known: Vec<String> = releases.iter().map(|b| b.ota.version.clone()).collect();
                Error::input(
                    format!(
                        "--delta-from {spec}: no version {version} of {name} is in the repository"
                    ),
                    if known.is_empty() {
                        format!("{name} has no published release yet; add it without --delta-from")
                    } else {
                        format!("published versions of {name}: {}", known.join(", "))
                    },
                )
            })?;
        if base.version.cmp(new_version).is_eq() {
            return Err(Error::input(
                format!("--delta-from {spec}: a patch from a version to itself is useless"),
                "name an earlier release",
            ));
        }
        push(base, &mut chosen);
    }
    if let Some(n) = previous {
        for b in releases
            .iter()
            .filter(|b| b.version.cmp(new_version).is_lt())
            .take(n)
        {
            push(b, &mut chosen);
        }
    }
    Ok(chosen)
}

/// Length and sha256 of a `--base-image` file, which must be a regular file (a FIFO would
/// block, a device never end).
fn measure(path: &Path) -> Result<(u64, String)> {
    let hint = "pass the path of a readable image file";
    let mut file = user_file::open(path)
        .map_err(|e| Error::user_file("--base-image", e, Error::input, hint))?;
    let m = ota_formats::hash::measure(&mut file).map_err(|e| {
        Error::input(
            format!("cannot read --base-image {}: {e}", path.display()),
            hint,
        )
    })?;
    Ok((m.length, m.sha256_hex()))
}

/// The plaintext image of every base, in order: a `--base-image` file with the base's
/// length and sha256, or else the base's target file decompressed (when not encrypted).
/// A given file that is none of the bases is refused (a wrong file is a mistake).
pub fn base_images(
    repo_dir: &Path,
    tmp_dir: &Path,
    bases: &[Base],
    given: &[PathBuf],
) -> Result<Vec<BaseImage>> {
    let mut measured = Vec::new();
    for p in given {
        let m = measure(p)?;
        measured.push((p.clone(), m));
    }
    for (p, (len, sha)) in &measured {
        let used = bases
            .iter()
            .any(|b| b.ota.image.length == *len && &b.ota.image.sha256 == sha);
        if !used {
            let want: Vec<String> = bases
                .iter()
                .map(|b| {
                    format!(
                        "{} ({} bytes, sha256 {})",
                        b.ota.version, b.ota.image.length, b.ota.image.sha256
                    )
                })
                .collect();
            return Err(Error::input(
                format!(
                    "--base-image {} ({len} bytes, sha256 {sha}) is not the image of any delta base",
                    p.display()
                ),
                format!("pass the exact image of a base release: {}", want.join("; ")),
            ));
        }
    }
    let mut out = Vec::new();
    for b in bases {
        let given = measured
            .iter()
            .find(|(_, (len, sha))| b.ota.image.length == *len && b.ota.image.sha256 == *sha);
        if let Some((p, _)) = given {
            out.push(BaseImage::Given(p.clone()));
            continue;
        }
        out.push(BaseImage::Extracted(extract(repo_dir, tmp_dir, b)?));
    }
    Ok(out)
}

/// Decompress the base's target file into a temp file, checking the signed image hash.
fn extract(repo_dir: &Path, tmp_dir: &Path, b: &Base) -> Result<NamedTempFile> {
    let what = format!("{} {}", b.ota.name, b.ota.version);
    let hint = format!(
        "pass the plaintext image of {what} with --base-image PATH (sha256 {})",
        b.ota.image.sha256
    );
    if b.ota.encryption.is_some() {
        return Err(Error::input(
            format!(
                "delta base {what} ({}) is encrypted; the signer cannot read its image",
                b.target_path
            ),
            hint,
        ));
    }
    let Some(sha) = b.file.hashes.get("sha256") else {
        return Err(Error::input(
            format!(
                "delta base {what} ({}) has no sha256, so its file cannot be found",
                b.target_path
            ),
            hint,
        ));
    };
    let src = target_file_path(repo_dir, &b.target_path, sha);
    let file = user_file::open(&src)
        .map_err(|e| Error::input(format!("delta base {what}: {e}"), hint.clone()))?;
    let mut tmp = atomic::temp_in(tmp_dir).map_err(|e| Error::write(tmp_dir, e))?;
    let mismatch = |why: String| {
        Error::repo(
            format!(
                "delta base {what}: {} does not give back its signed image: {why}",
                src.display()
            ),
            hint.clone(),
        )
    };
    let mut reader: Box<dyn Read> = match b.ota.compression {
        Compression::None => Box::new(file),
        Compression::Zstd => {
            let mut d =
                zstd::stream::read::Decoder::new(file).map_err(|e| mismatch(e.to_string()))?;
            // Our own repository's file: any window the policy could have chosen.
            d.window_log_max(30).map_err(|e| mismatch(e.to_string()))?;
            Box::new(d)
        }
    };
    let mut counter = ota_formats::hash::Sha256Counter::new();
    let bar = ota_cli::progress::bytes_bar(b.ota.image.length, "base image");
    let mut failure = None;
    let read = ota_formats::hash::read_chunks(&mut reader, |chunk| {
        counter.update(chunk);
        if counter.length() > b.ota.image.length {
            failure = Some(mismatch(format!("more than {} bytes", b.ota.image.length)));
            return Err(io::Error::other("too long"));
        }
        if let Err(e) = tmp.write_all(chunk) {
            failure = Some(Error::write(tmp.path(), e));
            return Err(io::Error::other("write failed"));
        }
        bar.inc(chunk.len() as u64);
        Ok(())
    });
    if let Some(f) = failure {
        return Err(f);
    }
    read.map_err(|e| mismatch(e.to_string()))?;
    bar.finish_and_clear();
    let measured = counter.finish();
    let (len, got) = (measured.length, measured.sha256_hex());
    if len != b.ota.image.length || got != b.ota.image.sha256 {
        return Err(mismatch(format!("got {len} bytes with sha256 {got}")));
    }
    tmp.flush().map_err(|e| Error::write(tmp.path(), e))?;
    Ok(tmp)
}

/// Build the patch from `base_image` to `new_image` and, when it is worth publishing, write
/// it into a temp file of `dest_dir` shaped like a compressed target (image fields = the new
/// image). Returns the file (if published) and the report.
pub fn build(
    base: &Base,
    base_image: &Path,
    new_image: &Path,
    new_ota: &OtaTarget,
    dest_dir: &Path,
    opts: &CreateOptions,
) -> Result<(Option<Compressed>, PatchReport)> {
    let target = patch_target_path(&new_ota.name, &new_ota.version, &base.ota.version);
    let bar = ota_cli::progress::spinner(&format!("patch from {}", base.ota.version));
    let made = create_patch(base_image, new_image, opts);
    bar.finish_and_clear();
    let (bytes, info): (Vec<u8>, PatchInfo) = made.map_err(|e| {
        Error::input(
            format!("cannot create the patch from {}: {e}", base.ota.version),
            "check the images, or add the release without --delta-from",
        )
    })?;
    tracing::info!(
        base = %base.ota.version,
        chosen = ?info.chosen,
        full_len = info.full_len,
        "patch built"
    );
    let method = match info.chosen.method {
        Method::Diff => "diff",
        Method::SparseDiff => "sparse-diff",
        Method::ExpandedSparseDiff => "expanded-sparse-diff",
        Method::ZstdPrefix => "zstd-prefix",
        Method::Full => "full",
    };
    let mut report = PatchReport {
        base_version: base.ota.version.clone(),
        target,
        published: false,
        reason: None,
        patch_length: bytes.len() as u64,
        full_length: info.full_len,
        length: None,
        sha256: None,
        method: method.to_string(),
    };
    if !info.worth_publishing() {
        report.reason = Some(format!(
            "not clearly smaller than the full image ({} vs {} bytes, limit {:.0}%)",
            bytes.len(),
            info.full_len,
            info.publish_ratio * 100.0
        ));
        return Ok((None, report));
    }
    let mut tmp = atomic::temp_in(dest_dir).map_err(|e| Error::write(dest_dir, e))?;
    tmp.write_all(&bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Error::write(tmp.path(), e))?;
    let file = Compressed {
        file: tmp,
        length: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(&bytes)),
        image_length: new_ota.image.length,
        image_sha256: new_ota.image.sha256.clone(),
    };
    report.published = true;
    Ok((Some(file), report))
}

/// The signed `custom.ota` of the patch target from `base`: the full target's, uncompressed
/// (the patch compresses itself), with a typed `delta`.
pub fn patch_meta(new_ota: &OtaTarget, base: &Base, method: &str) -> Result<OtaTarget> {
    let mut ota = new_ota.clone();
    ota.compression = Compression::None;
    ota.encryption = None;
    let d = DeltaInfo::patch_v1(
        base.ota.version.clone(),
        base.ota.image.length,
        base.ota.image.sha256.clone(),
        method,
    );
    ota.delta = Some(d.to_value().map_err(|e| {
        Error::input(
            format!("cannot encode the delta metadata: {e}"),
            "report this bug",
        )
    })?);
    Ok(ota)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ota_formats::target_meta::ImageInfo;

    fn entry(name: &str, version: &str, delta: bool) -> TargetFile {
        let mut ota = OtaTarget::new(
            name,
            version,
            vec!["b".into()],
            ImageInfo::new(1, "a".repeat(64)),
            Compression::Zstd,
        )
        .unwrap();
        if delta {
            ota.delta = Some(
                DeltaInfo::patch_v1("0.1.0", 1, "b".repeat(64), "diff")
                    .to_value()
                    .unwrap(),
            );
        }
        let mut f = TargetFile::from_bytes(b"x");
        f.custom = Some(ota.to_custom(None).unwrap());
        f
    }

    fn targets() -> Targets {
        let mut t: Targets = serde_json::from_value(serde_json::json!({
            "_type": "targets", "spec_version": "1.0.31", "version": 1,
            "expires": "2030-01-01T00:00:00Z", "targets": {}
        }))
        .unwrap();
        for (path, name, v, d) in [
            ("fw-1.0.0.img.zst", "fw", "1.0.0", false),
            ("fw-1.10.0.img.zst", "fw", "1.10.0", false),
            ("fw-1.2.0.img.zst", "fw", "1.2.0", false),
            ("fw-1.10.0.from-1.2.0.patch", "fw", "1.10.0", true),
            ("modem-9.0.0.img.zst", "modem", "9.0.0", false),
        ] {
            t.targets.insert(path.into(), entry(name, v, d));
        }
        t
    }

    fn versions(b: &[Base]) -> Vec<String> {
        b.iter().map(|b| b.ota.version.clone()).collect()
    }

    #[test]
    fn previous_n_are_the_newest_older_full_releases_by_semver() {
        let t = targets();
        let new = Version::parse("2.0.0").unwrap();
        let b = resolve_bases(&t, "fw", &new, &[], Some(2)).unwrap();
        assert_eq!(versions(&b), ["1.10.0", "1.2.0"]);
        assert_eq!(
            b[0].target_path, "fw-1.10.0.img.zst",
            "never a patch as base"
        );
        let b = resolve_bases(&t, "fw", &new, &["fw@1.0.0".into()], Some(1)).unwrap();
        assert_eq!(versions(&b), ["1.0.0", "1.10.0"]);
        let b = resolve_bases(&t, "fw", &new, &["fw@1.10.0".into()], Some(1)).unwrap();
        assert_eq!(versions(&b), ["1.10.0"], "deduplicated");
        let older = Version::parse("1.5.0").unwrap();
        let b = resolve_bases(&t, "fw", &older, &[], Some(5)).unwrap();
        assert_eq!(
            versions(&b),
            ["1.2.0", "1.0.0"],
            "only versions before the new one"
        );
    }

    #[test]
    fn unknown_versions_other_names_and_bad_specs_are_refused() {
        let t = targets();
        let new = Version::parse("2.0.0").unwrap();
        for spec in ["fw@0.9.0", "modem@9.0.0", "fw", "fw@x", "fw@2.0.0"] {
            let e = resolve_bases(&t, "fw", &new, &[spec.into()], None).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{spec}: {e}");
        }
    }
}
