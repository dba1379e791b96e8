//! Role keys on PKCS#11 tokens (HSMs, smart cards, SoftHSM2), named by a [`Pkcs11Uri`].
//!
//! A module is loaded and initialised once per process and kept (PKCS#11 allows one
//! `C_Initialize` per process); each key gets a session of its own, logged in as the user.
//! Ed25519 keys (`CKK_EC_EDWARDS`) sign with `CKM_EDDSA`; ECDSA P-256 keys (`CKK_EC`) sign the
//! SHA-256 digest of the message with `CKM_ECDSA`, and the raw `r || s` the token returns is
//! DER-encoded, as TUF's `ecdsa-sha2-nistp256` expects. The public key is read from the
//! token (`CKA_EC_POINT` of the public key object with the same id or label).
use super::{KeyAccess, KeySourceError, Secret};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

mod signer;
mod uri;

pub use signer::{Pkcs11Algorithm, Pkcs11Signer};
pub use uri::{hex_id, is_uri, Pkcs11Uri};

/// Largest PIN file read.
const MAX_PIN_FILE_LEN: u64 = 4096;

/// The modules loaded by this process, by path.
fn modules() -> &'static Mutex<HashMap<PathBuf, Pkcs11>> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    MODULES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// A PKCS#11 return value as its `CKR_` name (`PinIncorrect` → `CKR_PIN_INCORRECT`).
pub fn ckr_name(rv: RvError) -> String {
    let debug = format!("{rv:?}");
    let mut out = String::from("CKR");
    for c in debug.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// A cryptoki error in words: the `CKR_` name for PKCS#11 return values.
pub fn describe(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, function) => format!("{} from {function}", ckr_name(*rv)),
        other => other.to_string(),
    }
}

/// The loaded and initialised module at `module`.
pub fn module(module: &Path) -> Result<Pkcs11, KeySourceError> {
    let mut map = modules().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(ctx) = map.get(module) {
        return Ok(ctx.clone());
    }
    let load = |reason: String| KeySourceError::ModuleLoad {
        module: module.to_path_buf(),
        reason,
    };
    match std::fs::metadata(module) {
        Err(e) => return Err(load(e.to_string())),
        Ok(m) if !m.is_file() => return Err(load("not a regular file".into())),
        Ok(_) => {}
    }
    let not_pkcs11 = |reason: String| KeySourceError::NotPkcs11 {
        module: module.to_path_buf(),
        reason,
    };
    let ctx = Pkcs11::new(module).map_err(|e| match e {
        CkError::LibraryLoading(e) => load(e.to_string()),
        CkError::MissingSymbol(s) => not_pkcs11(format!("it has no {s} function")),
        other => not_pkcs11(describe(&other)),
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(not_pkcs11(format!("C_Initialize failed: {}", describe(&e)))),
    }
    map.insert(module.to_path_buf(), ctx.clone());
    Ok(ctx)
}

/// The module a URI uses: its `module-path=`, else `access.module` (`OTA_PKCS11_MODULE`).
pub fn module_path(uri: &Pkcs11Uri, access: &KeyAccess<'_>) -> Result<PathBuf, KeySourceError> {
    uri.module_path
        .clone()
        .or_else(|| access.module.clone())
        .ok_or(KeySourceError::ModuleUnset)
}

fn call_failed<'a>(
    module: &'a Path,
    operation: &'static str,
) -> impl Fn(CkError) -> KeySourceError + 'a {
    move |e| KeySourceError::Pkcs11 {
        module: module.to_path_buf(),
        operation,
        reason: describe(&e),
    }
}

/// The slot of the token the URI names.
pub fn find_token(ctx: &Pkcs11, module: &Path, uri: &Pkcs11Uri) -> Result<Slot, KeySourceError> {
    let slots = ctx
        .get_slots_with_token()
        .map_err(call_failed(module, "C_GetSlotList"))?;
    let mut found = Vec::new();
    for slot in slots {
        let info = ctx
            .get_token_info(slot)
            .map_err(call_failed(module, "C_GetTokenInfo"))?;
        let label = info.label().trim_end().to_string();
        let serial = info.serial_number().trim_end();
        let label_ok = uri.token.as_deref().is_none_or(|t| t == label);
        let serial_ok = uri.serial.as_deref().is_none_or(|s| s == serial);
        if label_ok && serial_ok {
            return Ok(slot);
        }
        found.push(label);
    }
    Err(KeySourceError::TokenNotFound {
        token: uri.token_name(),
        module: module.to_path_buf(),
        found,
    })
}

/// The PIN for the URI's token: `pin-value=`, the `pin-source=` file, else `access.secrets`.
fn pin(uri: &Pkcs11Uri, access: &KeyAccess<'_>) -> Result<Secret, KeySourceError> {
    if let Some(v) = &uri.pin_value {
        return Ok(v.clone());
    }
    if let Some(path) = &uri.pin_source {
        let bytes = ota_fs::user_file::read(path, MAX_PIN_FILE_LEN).map_err(|e| {
            KeySourceError::PinFile {
                path: path.clone(),
                reason: e.to_string(),
            }
        })?;
        let bytes = zeroize::Zeroizing::new(bytes);
        let text = std::str::from_utf8(&bytes).map_err(|_| KeySourceError::PinFile {
            path: path.clone(),
            reason: "it is not UTF-8 text".into(),
        })?;
        // One trailing newline is the file's, not the PIN's.
        let pin = text.strip_suffix('\n').unwrap_or(text);
        let pin = pin.strip_suffix('\r').unwrap_or(pin);
        return Ok(Secret::new(pin.to_string()));
    }
    access
        .secrets
        .pin(&uri.token_name())?
        .ok_or_else(|| KeySourceError::PinUnset {
            token: uri.token_name(),
        })
}

/// Log the session in as the user with `pin`.
fn login(
    session: &Session,
    module: &Path,
    token: &str,
    pin: &Secret,
) -> Result<(), KeySourceError> {
    let auth = AuthPin::from(pin.as_str());
    match session.login(UserType::User, Some(&auth)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(CkError::Pkcs11(
            RvError::PinIncorrect | RvError::PinLenRange | RvError::PinInvalid,
            _,
        )) => Err(KeySourceError::PinIncorrect {
            token: token.to_string(),
        }),
        Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(KeySourceError::PinLocked {
            token: token.to_string(),
        }),
        Err(e) => Err(call_failed(module, "C_Login")(e)),
    }
}

/// Open the key the URI names: load the module, find the token, log in, find the private
/// key and its public key.
pub fn open(uri: &Pkcs11Uri, access: &KeyAccess<'_>) -> Result<Pkcs11Signer, KeySourceError> {
    let module_path = module_path(uri, access)?;
    let ctx = module(&module_path)?;
    let slot = find_token(&ctx, &module_path, uri)?;
    let token = uri.token_name();
    let session = ctx
        .open_ro_session(slot)
        .map_err(call_failed(&module_path, "C_OpenSession"))?;
    let info = ctx
        .get_token_info(slot)
        .map_err(call_failed(&module_path, "C_GetTokenInfo"))?;
    if info.login_required() {
        let pin = pin(uri, access)?;
        login(&session, &module_path, &token, &pin)?;
    }
    let key = find_private_key(&session, &module_path, uri)?;
    signer::Pkcs11Signer::new(session, key, &module_path, uri)
}

fn find_private_key(
    session: &Session,
    module: &Path,
    uri: &Pkcs11Uri,
) -> Result<ObjectHandle, KeySourceError> {
    let mut template = vec![Attribute::Class(ObjectClass::PRIVATE_KEY)];
    if let Some(o) = &uri.object {
        template.push(Attribute::Label(o.as_bytes().to_vec()));
    }
    if let Some(id) = &uri.id {
        template.push(Attribute::Id(id.clone()));
    }
    let found = session
        .find_objects(&template)
        .map_err(call_failed(module, "C_FindObjects"))?;
    let id = uri.id.as_deref().map(hex_id);
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(KeySourceError::ObjectNotFound {
            token: uri.token_name(),
            object: uri.object.clone(),
            id,
        }),
        many => Err(KeySourceError::ObjectAmbiguous {
            token: uri.token_name(),
            object: uri.object.clone(),
            id,
            count: many.len(),
        }),
    }
}

/// The key type and curve of a private key object, checked to be one that signs here.
fn algorithm(
    session: &Session,
    module: &Path,
    key: ObjectHandle,
    name: &str,
) -> Result<Pkcs11Algorithm, KeySourceError> {
    let attrs = session
        .get_attributes(key, &[AttributeType::KeyType, AttributeType::EcParams])
        .map_err(call_failed(module, "C_GetAttributeValue"))?;
    let mut key_type = None;
    let mut params = None;
    for a in attrs {
        match a {
            Attribute::KeyType(t) => key_type = Some(t),
            Attribute::EcParams(p) => params = Some(p),
            _ => {}
        }
    }
    let unsupported = |found: String| KeySourceError::UnsupportedKey {
        object: name.to_string(),
        found,
    };
    let key_type = key_type.ok_or_else(|| unsupported("a key without CKA_KEY_TYPE".into()))?;
    let params = params.unwrap_or_default();
    if key_type == KeyType::EC_EDWARDS {
        if signer::is_ed25519_params(&params) {
            return Ok(Pkcs11Algorithm::Ed25519);
        }
        return Err(unsupported(format!(
            "an EdDSA key on another curve than Ed25519 ({})",
            signer::describe_params(&params)
        )));
    }
    if key_type == KeyType::EC {
        if params == signer::P256_PARAMS {
            return Ok(Pkcs11Algorithm::EcdsaP256);
        }
        return Err(unsupported(format!(
            "an EC key on another curve than P-256 ({})",
            signer::describe_params(&params)
        )));
    }
    Err(unsupported(format!("a key of type {key_type}")))
}
