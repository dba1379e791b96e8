//! What can go wrong while reading, editing or publishing a repository.
//!
//! Each variant names the file, role or key concerned, so a front end (the `ota-sign` CLI,
//! the server) can word its own advice; the messages themselves give no advice.
use crate::config::CONFIG_FILE;
use ota_fs::user_file::UserFileError;
use std::path::PathBuf;

/// Result with [`RepoError`].
pub type Result<T, E = RepoError> = std::result::Result<T, E>;

/// An error of the repository library.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    // --- The repository as found on disk. ---
    /// The repository directory does not exist.
    #[error("repository directory {} does not exist", dir.display())]
    NoRepository {
        /// The directory given.
        dir: PathBuf,
    },
    /// The directory exists but holds no `ota-repo.json`.
    #[error("{} is not a repository ({CONFIG_FILE} is missing)", dir.display())]
    NotARepository {
        /// The directory given.
        dir: PathBuf,
    },
    /// A repository file that is missing, not a regular file, too large or unreadable.
    #[error("repository file {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why it cannot be read (names the file).
        source: UserFileError,
    },
    /// A metadata file that does not parse or whose content is inconsistent.
    #[error("{}: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Metadata whose signatures do not reach the threshold of the trusted root.
    #[error("{}: signature check failed: {source}", path.display())]
    BadSignatures {
        /// The file.
        path: PathBuf,
        /// What the verification found.
        source: ota_formats::Error,
    },
    /// The publication of root `version` stopped before the roles it re-signs were written
    /// (everything verifies under the root before it); [`crate::rotate::resume`] finishes it.
    #[error(
        "the publication of root v{version} in {} was interrupted before the roles it re-signs: {cause}",
        dir.display()
    )]
    RotationInterrupted {
        /// The repository directory.
        dir: PathBuf,
        /// The root version whose publication was interrupted.
        version: u64,
        /// What loading the repository with that root found.
        cause: Box<RepoError>,
    },
    /// A versioned metadata file to publish exists with other content (left by an interrupted
    /// run that no published metadata lists).
    #[error("{} already exists with other content (left by an interrupted run?)", path.display())]
    MetadataExists {
        /// The file.
        path: PathBuf,
    },
    /// A versioned root (`N.root.json`) that differs from the `root.json` copy.
    #[error("{} differs from root.json", path.display())]
    RootCopyDiffers {
        /// The versioned root file.
        path: PathBuf,
    },
    /// A metadata file whose version is not the one its listing (snapshot, timestamp) says.
    #[error("{} has version {version}, its listing says {listed}", path.display())]
    VersionMismatch {
        /// The file.
        path: PathBuf,
        /// Its version.
        version: u64,
        /// The version listed.
        listed: u64,
    },
    /// A metadata file whose length is not the one its listing says.
    #[error("{} has {length} bytes, its listing says {listed}", path.display())]
    LengthMismatch {
        /// The file.
        path: PathBuf,
        /// Its length.
        length: u64,
        /// The length listed.
        listed: u64,
    },
    /// A snapshot or timestamp that does not list the metadata it must list.
    #[error("{} does not list {entry}", path.display())]
    NotListed {
        /// The listing file.
        path: PathBuf,
        /// The missing entry (`targets.json`, `snapshot.json`).
        entry: String,
    },
    /// A directory of the repository layout that is missing.
    #[error("{} is missing", path.display())]
    DirMissing {
        /// The directory.
        path: PathBuf,
    },
    /// A target listed without a sha256 hash (so it has no consistent-snapshot file name).
    #[error("target {target} has no sha256 hash")]
    TargetWithoutHash {
        /// The target path.
        target: String,
    },
    /// A target file whose length is not the listed one.
    #[error("target file {} has {length} bytes, metadata says {listed}", path.display())]
    TargetFileLength {
        /// The file.
        path: PathBuf,
        /// Its length.
        length: u64,
        /// The length listed.
        listed: u64,
    },
    /// A target file that is missing or cannot be examined.
    #[error("target file {}: {source}", path.display())]
    TargetFileMissing {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// A target file already present under its final name with other content.
    #[error("{} exists with other content than its name says", path.display())]
    TargetFileConflict {
        /// The file.
        path: PathBuf,
    },
    /// `ota-staged.json` that does not parse.
    #[error("{} is corrupt: {source}", path.display())]
    StagedCorrupt {
        /// The staged file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// `ota-repo.json` that does not parse or lacks a setting.
    #[error("{CONFIG_FILE} is corrupt: {reason}")]
    ConfigCorrupt {
        /// What is wrong.
        reason: String,
    },
    /// `ota-repo.json` in a format this library does not read.
    #[error("{CONFIG_FILE} has format {found}, this version reads format {supported}")]
    ConfigFormat {
        /// The format found.
        found: u32,
        /// The format read.
        supported: u32,
    },

    // --- Writers. ---
    /// Another writer holds the repository lock.
    #[error("another writer holds the lock {} of this repository", lock.display())]
    Locked {
        /// The lock file.
        lock: PathBuf,
    },
    /// A directory of the repository or of keys could not be listed.
    #[error("cannot list {}: {source}", path.display())]
    ListDir {
        /// The directory.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// A key of an offline role (root, targets) sits in the online key directory.
    #[error("{} is a {role} key: the online key directory may hold snapshot and timestamp keys only", path.display())]
    OfflineKeyOnline {
        /// The role.
        role: String,
        /// The key file.
        path: PathBuf,
    },
    /// A write (or the lock file) failed; what is already published stays valid.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// A value that cannot be encoded (a bug).
    #[error("cannot encode {what}: {source}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The failure.
        source: serde_json::Error,
    },

    // --- Keys. ---
    /// The key directory does not exist.
    #[error("keys directory {} does not exist", dir.display())]
    KeyDirMissing {
        /// The directory.
        dir: PathBuf,
    },
    /// A key file that is missing, not a regular file, too large or unreadable.
    #[error("key file {source}")]
    KeyUnreadable {
        /// The file.
        path: PathBuf,
        /// Why (names the file).
        source: UserFileError,
    },
    /// A key file that is not a usable private key.
    #[error("key file {} {source}", path.display())]
    KeyInvalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: ota_formats::crypto::KeyFileError,
    },
    /// A key whose key id cannot be computed.
    #[error("key file {}: {source}", path.display())]
    KeyId {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: ota_formats::Error,
    },
    /// A key that cannot be encoded for saving (a bug).
    #[error("cannot encode key: {source}")]
    KeyEncode {
        /// The failure.
        source: ota_formats::Error,
    },
    /// A key file whose key root does not authorise for the role.
    #[error("key file {} (key id {}) is not a {role} key of this repository", path.display(), crate::keys::short_id(keyid))]
    KeyNotAuthorised {
        /// The role.
        role: String,
        /// The key id.
        keyid: String,
        /// The key file.
        path: PathBuf,
    },
    /// Fewer usable keys of a role than its threshold.
    #[error("role {role} needs {threshold} key(s) to sign, found {found} in {}{}", dir.display(), missing_list(missing))]
    BelowThreshold {
        /// The role.
        role: String,
        /// Its threshold in root.
        threshold: u64,
        /// Keys found and authorised.
        found: usize,
        /// The key directory.
        dir: PathBuf,
        /// Key files the policy lists that are absent.
        missing: Vec<String>,
    },
    /// No keys were given for a role that must be signed.
    #[error("no keys loaded for role {role}")]
    KeyMissing {
        /// The role.
        role: String,
    },
    /// A key whose source (an encrypted key file, a PKCS#11 token) gives no signer.
    #[error("key {key}: {source}")]
    KeySource {
        /// The key: its file path, or its `pkcs11:` URI without any PIN.
        key: String,
        /// What went wrong.
        source: crate::key_source::KeySourceError,
    },
    /// Signing failed, or what was signed does not verify against root (e.g. too few keys).
    #[error("cannot sign {role}: {source}")]
    Sign {
        /// The role.
        role: String,
        /// The failure.
        source: ota_formats::Error,
    },

    // --- Editing targets. ---
    /// A target name already listed for another image or version.
    #[error("target name {target} is already taken by {held_by}; image {name} version {version} would get the same name and replace it")]
    TargetNameTaken {
        /// The target path.
        target: String,
        /// What holds it, in words.
        held_by: String,
        /// The image name being added.
        name: String,
        /// The version being added.
        version: String,
    },
    /// A version not newer than the newest published one of the image.
    #[error("version {version} of {name} is not newer than the published {published}")]
    NotNewer {
        /// The image name.
        name: String,
        /// The version being added.
        version: String,
        /// The newest published version.
        published: String,
    },
    /// A version already published with another image.
    #[error("{name} version {version} is already published ({target}, image sha256 {published_sha256}) with another image (sha256 {sha256})")]
    VersionTaken {
        /// The image name.
        name: String,
        /// The published version.
        version: String,
        /// The target that holds it.
        target: String,
        /// The published image's sha256.
        published_sha256: String,
        /// The new image's sha256.
        sha256: String,
    },

    // --- Publication by upload (`crate::upload`): each a refusal of the upload. ---
    /// An upload without exactly one top-level targets metadata file (`N.targets.json`).
    #[error("an upload must hold exactly one targets metadata file (N.targets.json); this one holds {found}")]
    UploadTargetsCount {
        /// How many it holds.
        found: usize,
    },
    /// A staged metadata file whose name is not `N.targets.json` or `N.ROLE.json`.
    #[error(
        "{name:?} is not a name an uploaded metadata file may have (N.targets.json or N.ROLE.json)"
    )]
    UploadBadName {
        /// The file name.
        name: String,
    },
    /// Uploaded metadata that does not parse, or whose version is not the one in its name.
    #[error("uploaded {file}: {reason}")]
    UploadCorrupt {
        /// The uploaded file name.
        file: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Uploaded metadata signed by fewer keys authorised for its role than the threshold
    /// (signatures of other keys do not count).
    #[error("uploaded {file} is not signed by enough {role} keys: {valid} valid signature(s) by keys authorised for {role}, threshold is {threshold}")]
    UploadBelowThreshold {
        /// The uploaded file name.
        file: String,
        /// The role.
        role: String,
        /// Valid signatures by authorised keys.
        valid: usize,
        /// The role's threshold.
        threshold: u64,
    },
    /// Uploaded metadata whose signatures cannot be checked (a key id listed twice, an
    /// unusable key).
    #[error("uploaded {file}: signature check failed: {source}")]
    UploadSignatures {
        /// The uploaded file name.
        file: String,
        /// What the verification found.
        source: ota_formats::Error,
    },
    /// Uploaded metadata whose version is not above the published one (a rollback, or the
    /// same version again).
    #[error("uploaded {file}: {role} version {version} is not newer than the published version {published}")]
    UploadNotNewer {
        /// The uploaded file name.
        file: String,
        /// The role.
        role: String,
        /// The uploaded version.
        version: u64,
        /// The published version.
        published: u64,
    },
    /// Uploaded metadata that has expired.
    #[error("uploaded {file}: {role} metadata expired at {expires}")]
    UploadExpired {
        /// The uploaded file name.
        file: String,
        /// The role.
        role: String,
        /// Its expiry.
        expires: chrono::DateTime<chrono::Utc>,
    },
    /// Uploaded delegated metadata of a role that the uploaded metadata does not delegate to.
    #[error("uploaded {file}: role {role} is not delegated by the uploaded targets metadata or by another uploaded role")]
    UploadNotDelegated {
        /// The uploaded file name.
        file: String,
        /// The role.
        role: String,
    },
    /// A target path that is not a safe relative path (empty, `.` or `..` segments, backslash,
    /// NUL, absolute).
    #[error("target {target:?} is not a safe relative path")]
    UploadUnsafeTargetPath {
        /// The target path.
        target: String,
    },
    /// A new or changed target whose file was neither uploaded nor already present.
    #[error("target {target}: its file targets/{file} was not uploaded and the repository does not have it")]
    UploadPayloadMissing {
        /// The target path.
        target: String,
        /// The file under `targets/`.
        file: String,
    },
    /// An uploaded target file that is not what the metadata signs.
    #[error("target {target}: the uploaded file targets/{file} does not match its signed length and hashes: {source}")]
    UploadPayloadMismatch {
        /// The target path.
        target: String,
        /// The file under `targets/`.
        file: String,
        /// The mismatch.
        source: Box<ota_formats::Error>,
    },
    /// A versioned metadata file of the upload already exists, with other content, in the
    /// repository (left by something else; versioned files are never replaced).
    #[error("{} already exists with other content than the uploaded file", path.display())]
    UploadMetadataExists {
        /// The existing file.
        path: PathBuf,
    },
    /// A staged file that cannot be read.
    #[error("cannot read the uploaded {file}: {source}")]
    UploadRead {
        /// The staged file, relative to the staging directory.
        file: String,
        /// The failure.
        source: std::io::Error,
    },

    // --- Key rotation. ---
    /// A rotation refused before anything was written ([`crate::rotate`]).
    #[error(transparent)]
    Rotate(Box<crate::rotate::RotateError>),
}

/// What kind of refusal an upload got (see [`RepoError::upload_refusal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadRefusal {
    /// A version not above the published one.
    Version,
    /// Anything else about the upload's content: names, signatures, expiry, delegations,
    /// target files.
    Content,
}

fn missing_list(missing: &[String]) -> String {
    if missing.is_empty() {
        String::new()
    } else {
        format!(" (missing: {})", missing.join(", "))
    }
}

impl RepoError {
    /// Whether this loading error is what a key-changing rotation interrupted after writing
    /// its new root leaves behind (metadata signed by the retired keys, a stale `root.json`).
    pub(crate) fn may_be_interrupted_rotation(&self) -> bool {
        match self {
            // The root chain itself verified: only the roles below it did not.
            RepoError::BadSignatures { path, .. } => !path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with("root.json")),
            RepoError::RootCopyDiffers { .. } => true,
            _ => false,
        }
    }

    /// Whether this error refuses an upload because of what it holds (and what kind of
    /// refusal), as opposed to a failure of the repository or the server; `None` for the
    /// latter.
    pub fn upload_refusal(&self) -> Option<UploadRefusal> {
        match self {
            RepoError::UploadNotNewer { .. } => Some(UploadRefusal::Version),
            RepoError::UploadTargetsCount { .. }
            | RepoError::UploadBadName { .. }
            | RepoError::UploadCorrupt { .. }
            | RepoError::UploadBelowThreshold { .. }
            | RepoError::UploadSignatures { .. }
            | RepoError::UploadExpired { .. }
            | RepoError::UploadNotDelegated { .. }
            | RepoError::UploadUnsafeTargetPath { .. }
            | RepoError::UploadPayloadMissing { .. }
            | RepoError::UploadPayloadMismatch { .. }
            | RepoError::UploadMetadataExists { .. }
            | RepoError::TargetFileConflict { .. } => Some(UploadRefusal::Content),
            _ => None,
        }
    }

    /// A failed write of `path`.
    pub fn write(path: &std::path::Path, source: std::io::Error) -> Self {
        RepoError::Write {
            path: path.to_path_buf(),
            source,
        }
    }
}
