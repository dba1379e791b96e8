//! The command line's side of the key directory: where it may be (never inside the
//! repository directory, whose content may get published), creating it 0700, warnings
//! about key files others may read, and the secrets that unlock keys: the passphrase of
//! encrypted key files and the PIN of PKCS#11 tokens, from the environment
//! (`OTA_KEY_PASSPHRASE`, `OTA_PKCS11_PIN`) or else asked on the terminal. Loading, saving
//! and checking keys against root is [`ota_repo::keys`]; key sources are
//! [`ota_repo::key_source`].
use crate::{Error, Result};
use ota_fs::mode;
use ota_repo::key_source::{
    env_secret, KeyAccess, KeySourceError, Secret, Secrets, ENV_PASSPHRASE, ENV_PKCS11_MODULE,
    ENV_PKCS11_PIN,
};
use ota_repo::keys::{LoadedKey, RoleKeys, KEY_DIR_MODE};
use ota_repo::Repository;
use std::cell::RefCell;
use std::io::IsTerminal;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// How many passphrases are asked for one encrypted key file before giving up.
const PASSPHRASE_TRIES: u32 = 3;

/// Secrets from the environment, else asked on the terminal (when standard input is one).
/// A passphrase typed for one key file is tried first on the next.
#[derive(Default)]
pub struct CliSecrets {
    last: RefCell<Option<Secret>>,
}

/// Whether a person can be asked: standard input and standard error are a terminal.
pub fn can_prompt() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Ask for a secret on the terminal, without echo.
pub fn prompt(text: &str) -> std::result::Result<Secret, KeySourceError> {
    rpassword::prompt_password(text)
        .map(Secret::new)
        .map_err(|e| KeySourceError::PassphraseRead {
            reason: e.to_string(),
        })
}

impl Secrets for CliSecrets {
    fn passphrase(
        &self,
        path: &Path,
        attempt: u32,
    ) -> std::result::Result<Option<Secret>, KeySourceError> {
        if let Some(p) = env_secret(ENV_PASSPHRASE) {
            return Ok((attempt == 0).then_some(p));
        }
        if !can_prompt() || attempt >= PASSPHRASE_TRIES {
            return Ok(None);
        }
        if attempt == 0 {
            if let Some(p) = self.last.borrow().clone() {
                return Ok(Some(p));
            }
        }
        if attempt > 0 {
            eprintln!("wrong passphrase for {}", path.display());
        }
        let p = prompt(&format!("Passphrase for key file {}: ", path.display()))?;
        *self.last.borrow_mut() = Some(p.clone());
        Ok(Some(p))
    }

    fn pin(&self, token: &str) -> std::result::Result<Option<Secret>, KeySourceError> {
        if let Some(p) = env_secret(ENV_PKCS11_PIN) {
            return Ok(Some(p));
        }
        if !can_prompt() {
            return Ok(None);
        }
        prompt(&format!("User PIN for PKCS#11 token {token:?}: ")).map(Some)
    }
}

/// The key access of the command line: [`CliSecrets`] and `OTA_PKCS11_MODULE`.
pub fn access(secrets: &CliSecrets) -> KeyAccess<'_> {
    KeyAccess::new(secrets)
}

/// The CLI's wording and hint for a key source failure (`msg` is the library's message).
pub fn key_source_error(msg: String, e: &KeySourceError) -> Error {
    use KeySourceError as K;
    let hint = match e {
        K::BadEntry { .. } | K::UriSyntax { .. } => "write a key entry as a file name in --keys or as pkcs11:token=LABEL;object=LABEL[;id=%01][?module-path=/path/to/module.so]".to_string(),
        K::ModuleUnset => format!("set {ENV_PKCS11_MODULE} to the token's PKCS#11 library (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so), or add ?module-path=... to the URI"),
        K::ModuleLoad { .. } | K::NotPkcs11 { .. } => format!("point {ENV_PKCS11_MODULE} (or module-path= in the URI) at the vendor's PKCS#11 library, a shared library exporting C_GetFunctionList"),
        K::Pkcs11 { .. } => "check the token and its module, e.g. pkcs11-tool --module MODULE --list-slots".into(),
        K::TokenNotFound { .. } => "check token= against the labels listed, and that the token is connected (pkcs11-tool --module MODULE --list-token-slots)".into(),
        K::PinUnset { .. } => format!("set {ENV_PKCS11_PIN}, add ?pin-source=file:/path/to/pin-file to the URI, or run ota-sign on a terminal to be asked"),
        K::PinFile { .. } => "check the pin-source file: readable by you, holding the PIN".into(),
        K::PinIncorrect { .. } => format!("check the PIN ({ENV_PKCS11_PIN}, the pin-source file or what was typed); a token locks its PIN after a few wrong ones, so do not retry blindly"),
        K::PinLocked { .. } => "the token's security officer must reset the user PIN (e.g. softhsm2-util or the vendor's tool)".into(),
        K::ObjectNotFound { .. } => "check object= and id= against the token's keys (pkcs11-tool --module MODULE --login --list-objects)".into(),
        K::ObjectAmbiguous { .. } => "add id=%XX (the key's CKA_ID) to the URI".into(),
        K::UnsupportedKey { .. } => "make an Ed25519 or P-256 key on the token, e.g. pkcs11-tool --module MODULE --login --keypairgen --key-type EC:edwards25519 --label LABEL --id 01".into(),
        K::PublicKey { .. } => "keep the public key object beside the private key on the token (same id and label), e.g. by generating the pair on the token".into(),
        K::PassphraseUnset { .. } => format!("set {ENV_PASSPHRASE}, or run ota-sign on a terminal to be asked"),
        K::PassphraseWrong { .. } => format!("check the passphrase ({ENV_PASSPHRASE} or what was typed); if it is right, the file is damaged: restore the key from your backup"),
        K::PassphraseRead { .. } => format!("set {ENV_PASSPHRASE} instead of typing it"),
        K::EncryptedDamaged { .. } => "restore the key file from your backup".into(),
        K::EncryptedUnsupported { .. } => "decrypt it with the tool that wrote it and re-encrypt it with `ota-sign keys encrypt`".into(),
        K::SwitchRefused { .. } => "nothing was written; see the reason above".into(),
        K::Encrypt { .. } => "report this bug; nothing was written".into(),
    };
    Error::keys(msg, hint)
}

/// `path` made absolute with symlinks of its existing part resolved, so containment checks
/// work for directories that do not exist yet.
pub fn resolve(path: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(path).map_err(|e| {
        Error::input(
            format!("cannot resolve path {}: {e}", path.display()),
            "pass an existing, accessible path",
        )
    })?;
    let mut existing = abs.clone();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_owned());
                existing = parent.to_path_buf();
            }
            _ => break,
        }
    }
    let mut out = existing.canonicalize().unwrap_or(existing);
    for c in rest.iter().rev() {
        out.push(c);
    }
    // `absolute` keeps `..`; drop it lexically in the part that does not exist.
    let mut clean = PathBuf::new();
    for c in out.components() {
        match c {
            Component::ParentDir => {
                clean.pop();
            }
            Component::CurDir => {}
            other => clean.push(other),
        }
    }
    Ok(clean)
}

/// Refuse a keys directory inside (or equal to) the repository directory.
pub fn check_outside_repo(keys: &Path, repo: &Path) -> Result<()> {
    let (k, r) = (resolve(keys)?, resolve(repo)?);
    if k.starts_with(&r) {
        return Err(Error::keys(
            format!(
                "keys directory {} is inside the repository directory {}",
                keys.display(),
                repo.display()
            ),
            "keep private keys outside the published repository, e.g. --keys ~/ota-keys",
        ));
    }
    Ok(())
}

/// Create the keys directory with mode 0700 (parents as needed), or check an existing one.
pub fn ensure_key_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        warn_if_open(dir, KEY_DIR_MODE);
        return Ok(());
    }
    if dir.exists() {
        return Err(Error::keys(
            format!("keys path {} is not a directory", dir.display()),
            "pass a directory with --keys",
        ));
    }
    // Exactly 0700 whatever the umask (parents created here too).
    mode::create_dir_all(dir, KEY_DIR_MODE).map_err(|e| Error::write(dir, e))
}

fn warn_if_open(path: &Path, wanted: u32) {
    if let Ok(m) = std::fs::metadata(path) {
        let mode = m.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            crate::warn(&format!(
                "{} has permissions {mode:o}, readable by others (expected {wanted:o}; fix with chmod {wanted:o})",
                path.display()
            ));
        }
    }
}

/// The default online key directory of an online-roles repository: `KEYS-online` beside the
/// key directory `keys`.
pub fn online_dir_beside(keys: &Path) -> PathBuf {
    let mut name = keys.file_name().unwrap_or_default().to_os_string();
    name.push("-online");
    keys.with_file_name(name)
}

/// Warn about loaded key files that group or others may read.
pub fn warn_open(dir: &Path, keys: &[LoadedKey]) {
    for w in keys.iter().filter_map(|k| k.open_warning(dir)) {
        crate::warn(&w);
    }
}

/// Load one key ([`ota_repo::keys::load_key_with`], a file name in `dir` or a `pkcs11:`
/// URI), warning when others may read its file.
pub fn load_key(dir: &Path, file: &str) -> Result<LoadedKey> {
    let secrets = CliSecrets::default();
    let k = ota_repo::keys::load_key_with(dir, file, &access(&secrets))?;
    warn_open(dir, std::slice::from_ref(&k));
    Ok(k)
}

/// Load and check against root the keys of each of `roles`
/// ([`ota_repo::keys::load_role_with`]), warning about key files others may read.
pub fn load_roles(dir: &Path, repo: &Repository, roles: &[&str]) -> Result<RoleKeys> {
    let secrets = CliSecrets::default();
    let access = access(&secrets);
    let mut out = RoleKeys::new();
    for role in roles {
        let k =
            ota_repo::keys::load_role_with(dir, &repo.config, &repo.root.signed, role, &access)?;
        warn_open(dir, &k);
        out.insert(role.to_string(), k);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_inside_repo_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let repo = d.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        assert!(check_outside_repo(&repo.join("keys"), &repo).is_err());
        assert!(check_outside_repo(&repo, &repo).is_err());
        assert!(check_outside_repo(&repo.join("a/../../repo/k"), &repo).is_err());
        assert!(check_outside_repo(&d.path().join("keys"), &repo).is_ok());
        assert!(check_outside_repo(&d.path().join("repo-keys"), &repo).is_ok());
    }

    #[test]
    fn key_dir_is_private_and_keys_load_back() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("k");
        ensure_key_dir(&dir).unwrap();
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            KEY_DIR_MODE
        );
        let k = ota_formats::crypto::Ed25519Signer::generate();
        ota_repo::keys::save_key(&dir, "root-1.pem", &k).unwrap();
        assert_eq!(load_key(&dir, "root-1.pem").unwrap().file, "root-1.pem");
        std::fs::write(dir.join("bad.pem"), "nope").unwrap();
        assert_eq!(load_key(&dir, "bad.pem").unwrap_err().exit_code(), 3);
        assert_eq!(load_key(&dir, "none.pem").unwrap_err().exit_code(), 3);
    }
}
