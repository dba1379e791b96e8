//! Why a key source (an encrypted key file, a PKCS#11 token) gives no usable signer.
//!
//! Messages name the file, module, token or object and say what was found; they give no
//! advice (front ends word their own) and never hold a passphrase or a PIN.
use std::path::PathBuf;

/// A failure of a key source.
#[derive(Debug, thiserror::Error)]
pub enum KeySourceError {
    /// A key entry that is neither a plain file name nor a `pkcs11:` URI.
    #[error("{entry:?} is neither a key file name in the keys directory nor a pkcs11: URI")]
    BadEntry {
        /// The entry.
        entry: String,
    },
    /// A `pkcs11:` URI that does not parse or lacks what is needed.
    #[error("invalid PKCS#11 URI: {reason}")]
    UriSyntax {
        /// What is wrong.
        reason: String,
    },
    /// No module named by the URI (`module-path=`) or by `OTA_PKCS11_MODULE`.
    #[error(
        "no PKCS#11 module: the URI has no module-path= and {} is not set",
        super::ENV_PKCS11_MODULE
    )]
    ModuleUnset,
    /// A module file that is missing or cannot be loaded as a shared library.
    #[error("cannot load PKCS#11 module {}: {reason}", module.display())]
    ModuleLoad {
        /// The module path.
        module: PathBuf,
        /// What the loader said.
        reason: String,
    },
    /// A shared library that is not a PKCS#11 module (no `C_GetFunctionList`), or one that
    /// fails to initialise.
    #[error("{} is not a usable PKCS#11 module: {reason}", module.display())]
    NotPkcs11 {
        /// The module path.
        module: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A PKCS#11 call that failed for another reason than those below.
    #[error("PKCS#11 module {} failed in {operation}: {reason}", module.display())]
    Pkcs11 {
        /// The module path.
        module: PathBuf,
        /// What was being done.
        operation: &'static str,
        /// The return value or error of the call.
        reason: String,
    },
    /// No token with the label (and serial number) of the URI.
    #[error("no PKCS#11 token labelled {token:?} in {} (tokens present: {})", module.display(), list(found))]
    TokenNotFound {
        /// The label looked for (with `serial=`, if given).
        token: String,
        /// The module path.
        module: PathBuf,
        /// Labels of the tokens present.
        found: Vec<String>,
    },
    /// No PIN: neither in the URI nor in `OTA_PKCS11_PIN` nor from a prompt.
    #[error(
        "no PIN for PKCS#11 token {token:?}: the URI has no pin-source= and {} is not set",
        super::ENV_PKCS11_PIN
    )]
    PinUnset {
        /// The token label.
        token: String,
    },
    /// A `pin-source=` file that cannot be read.
    #[error("cannot read the PIN file {}: {reason}", path.display())]
    PinFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The token refused the PIN (`CKR_PIN_INCORRECT`).
    #[error("PKCS#11 token {token:?} refused the PIN (CKR_PIN_INCORRECT)")]
    PinIncorrect {
        /// The token label.
        token: String,
    },
    /// The token's user PIN is locked after too many wrong PINs (`CKR_PIN_LOCKED`).
    #[error("the user PIN of PKCS#11 token {token:?} is locked (CKR_PIN_LOCKED)")]
    PinLocked {
        /// The token label.
        token: String,
    },
    /// No private key object matching the URI on the token.
    #[error(
        "PKCS#11 token {token:?} has no private key {}",
        describe_object(object, id)
    )]
    ObjectNotFound {
        /// The token label.
        token: String,
        /// The object label of the URI.
        object: Option<String>,
        /// The object id of the URI, hex.
        id: Option<String>,
    },
    /// More than one private key object matching the URI.
    #[error(
        "PKCS#11 token {token:?} has {count} private keys {}; add id= to the URI to choose one",
        describe_object(object, id)
    )]
    ObjectAmbiguous {
        /// The token label.
        token: String,
        /// The object label of the URI.
        object: Option<String>,
        /// The object id of the URI, hex.
        id: Option<String>,
        /// How many match.
        count: usize,
    },
    /// A key of a type that is not signed with (RSA, other curves).
    #[error("PKCS#11 key {object:?} is {found}; role keys on a token must be Ed25519 (CKK_EC_EDWARDS) or ECDSA P-256 (CKK_EC on prime256v1)")]
    UnsupportedKey {
        /// The object label (or id).
        object: String,
        /// What it is.
        found: String,
    },
    /// The public key of a token key cannot be found or read.
    #[error("PKCS#11 key {object:?}: {reason}")]
    PublicKey {
        /// The object label (or id).
        object: String,
        /// What is wrong.
        reason: String,
    },
    /// No passphrase for an encrypted key file: `OTA_KEY_PASSPHRASE` is unset and there is
    /// no terminal to ask on.
    #[error("key file {} is encrypted and no passphrase was given ({} is not set and there is no terminal to ask on)", path.display(), super::ENV_PASSPHRASE)]
    PassphraseUnset {
        /// The key file.
        path: PathBuf,
    },
    /// A passphrase that does not decrypt the key file.
    #[error("key file {}: wrong passphrase (the key does not decrypt with it)", path.display())]
    PassphraseWrong {
        /// The key file.
        path: PathBuf,
    },
    /// The passphrase could not be read (terminal error, mismatch on confirmation).
    #[error("cannot read the passphrase: {reason}")]
    PassphraseRead {
        /// What went wrong.
        reason: String,
    },
    /// An encrypted key file whose structure is damaged (PEM, DER, parameters).
    #[error("key file {} holds a damaged encrypted private key: {reason}", path.display())]
    EncryptedDamaged {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An encrypted key file using an encryption scheme not read here.
    #[error("key file {} is encrypted with a scheme ota-sign does not read: {reason} (PBES2 with scrypt or PBKDF2-HMAC-SHA256 and AES-CBC are read)", path.display())]
    EncryptedUnsupported {
        /// The key file.
        path: PathBuf,
        /// The scheme found.
        reason: String,
    },
    /// Switching a role to a key is refused before anything was written.
    #[error("cannot switch role {role} to this key: {reason}")]
    SwitchRefused {
        /// The role.
        role: String,
        /// Why.
        reason: String,
    },
    /// Encrypting a key failed (a bug or an unusable parameter).
    #[error("cannot encrypt the key: {reason}")]
    Encrypt {
        /// What failed.
        reason: String,
    },
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn describe_object(object: &Option<String>, id: &Option<String>) -> String {
    match (object, id) {
        (Some(o), Some(i)) => format!("labelled {o:?} with id {i}"),
        (Some(o), None) => format!("labelled {o:?}"),
        (None, Some(i)) => format!("with id {i}"),
        (None, None) => "at all".into(),
    }
}
