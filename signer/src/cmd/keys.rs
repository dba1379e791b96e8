//! `ota-sign keys`: protecting role keys. `encrypt` encrypts a key file with a passphrase
//! (PKCS#8 PBES2); `import-pkcs11` switches a role to a key on a PKCS#11 token (an HSM).
use crate::keys::{self, can_prompt, prompt, CliSecrets};
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use ota_formats::crypto::{Ed25519Signer, Signer};
use ota_fs::atomic;
use ota_fs::user_file;
use ota_repo::key_source::encrypted::{self, KdfChoice};
use ota_repo::key_source::{
    env_secret, switch, KeyAccess, KeyRef, Pkcs11Uri, Secret, ENV_PASSPHRASE,
};
use ota_repo::keys::{short_id, KEY_FILE_MODE, MAX_KEY_FILE_LEN};
use serde::Serialize;
use std::path::{Path, PathBuf};

const EXAMPLE: &str = "\
Examples:
  # Encrypt a role key in place (asks for the passphrase twice, or reads OTA_KEY_PASSPHRASE):
  ota-sign keys encrypt --in ~/ota-keys/targets-1.pem
  ota-sign keys encrypt --in ~/ota-keys/root-1.pem --out /media/backup/root-1.pem --kdf pbkdf2

  # Switch the targets role to a key on an HSM (SoftHSM2 here):
  export OTA_PKCS11_MODULE=/usr/lib/softhsm/libsofthsm2.so OTA_PKCS11_PIN=...
  pkcs11-tool --module $OTA_PKCS11_MODULE --login --keypairgen --key-type EC:edwards25519 \\
      --token-label ota --label targets-1 --id 01
  ota-sign keys import-pkcs11 --repo repo --keys ~/ota-keys --role targets \\
      --uri 'pkcs11:token=ota;object=targets-1'

Encrypted key files (-----BEGIN ENCRYPTED PRIVATE KEY-----, PBES2 with scrypt or PBKDF2 and
AES-CBC, e.g. from `openssl pkcs8 -topk8`) are read wherever a key file is: the passphrase
comes from OTA_KEY_PASSPHRASE, else it is asked on the terminal.

A role key in ota-repo.json may be a pkcs11: URI (RFC 7512):
  pkcs11:token=LABEL;object=LABEL[;id=%01][?module-path=/path/module.so][&pin-source=file:/path]
The module comes from module-path= or OTA_PKCS11_MODULE, the user PIN from pin-source=,
OTA_PKCS11_PIN or the terminal (pin-value= works on the command line, never in ota-repo.json).
Ed25519 and ECDSA P-256 keys sign. import-pkcs11 writes a new root authorising the key (signed
with the root keys in --keys), re-signs the role under it (and snapshot and timestamp after
it), and lists the URI for the role; without --keep the role's other keys are retired (their
files stay in --keys: destroy or archive them).";

/// Arguments of `keys`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLE)]
pub struct Args {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Sub,
}

/// The key-file encryption of `keys encrypt --kdf`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Kdf {
    /// scrypt (N=2^17, r=8, p=1): memory-hard, the default.
    Scrypt,
    /// PBKDF2-HMAC-SHA256 (600,000 rounds), for tools without scrypt.
    Pbkdf2,
}

/// The `keys` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// Encrypt a key file with a passphrase (PKCS#8, AES-256-CBC, key derived with scrypt or
    /// PBKDF2); in place unless --out is given.
    Encrypt {
        /// The unencrypted key file (PKCS#8 PEM).
        #[arg(long = "in", value_name = "KEY")]
        input: PathBuf,
        /// Where to write the encrypted key (a new file, 0600). Default: replace --in.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Key derivation.
        #[arg(long, value_enum, default_value = "scrypt")]
        kdf: Kdf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make a key on a PKCS#11 token (an HSM) a key of a role: a new root authorising it,
    /// the role re-signed with it, its URI listed in ota-repo.json.
    #[command(name = "import-pkcs11")]
    ImportPkcs11 {
        /// Repository directory.
        #[arg(long, value_name = "DIR")]
        repo: PathBuf,
        /// Directory of the other role keys (the root keys sign the new root).
        #[arg(long, value_name = "DIR")]
        keys: PathBuf,
        /// The role: root, targets, snapshot or timestamp.
        #[arg(long)]
        role: String,
        /// The key: pkcs11:token=LABEL;object=LABEL[;id=%01][?module-path=...].
        #[arg(long, value_name = "URI")]
        uri: String,
        /// Keep the role's other keys (add the token key beside them) instead of retiring them.
        #[arg(long)]
        keep: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

impl Args {
    /// Whether `--json` was given.
    pub fn json(&self) -> bool {
        match &self.command {
            Sub::Encrypt { json, .. } | Sub::ImportPkcs11 { json, .. } => *json,
        }
    }
}

/// What `keys encrypt` reports.
#[derive(Debug, Serialize)]
pub struct Encrypted {
    /// The encrypted key file written.
    pub file: PathBuf,
    /// The key id of its (Ed25519) public key.
    pub keyid: String,
    /// `scrypt` or `pbkdf2`.
    pub kdf: &'static str,
    /// Whether --in was replaced.
    pub in_place: bool,
}

/// Run `keys`.
pub fn run(a: Args, now: DateTime<Utc>) -> Result<u8> {
    match a.command {
        Sub::Encrypt {
            input,
            out,
            kdf,
            json,
        } => encrypt(&input, out.as_deref(), kdf, json),
        Sub::ImportPkcs11 {
            repo,
            keys,
            role,
            uri,
            keep,
            json,
        } => import_pkcs11(&repo, &keys, &role, &uri, keep, json, now),
    }
}

/// The passphrase for a new encrypted file: `OTA_KEY_PASSPHRASE`, else asked twice.
fn new_passphrase() -> Result<Secret> {
    if let Some(p) = env_secret(ENV_PASSPHRASE) {
        return Ok(p);
    }
    if !can_prompt() {
        return Err(Error::keys(
            format!(
                "no passphrase: {ENV_PASSPHRASE} is not set and there is no terminal to ask on"
            ),
            format!("set {ENV_PASSPHRASE}, or run ota-sign keys encrypt on a terminal"),
        ));
    }
    let read = |e: ota_repo::key_source::KeySourceError| {
        Error::input(e.to_string(), format!("set {ENV_PASSPHRASE} instead"))
    };
    let first = prompt("New passphrase: ").map_err(read)?;
    let again = prompt("The same passphrase again: ").map_err(read)?;
    if first.as_str() != again.as_str() {
        return Err(Error::input(
            "the two passphrases differ",
            "run the command again and type the same passphrase twice",
        ));
    }
    if first.is_empty() {
        return Err(Error::input(
            "an empty passphrase encrypts nothing",
            "choose a passphrase",
        ));
    }
    Ok(first)
}

fn encrypt(input: &Path, out: Option<&Path>, kdf: Kdf, json: bool) -> Result<u8> {
    let bytes = zeroize::Zeroizing::new(user_file::read(input, MAX_KEY_FILE_LEN).map_err(|e| {
        Error::user_file("key file", e, Error::keys, "pass the key file with --in")
    })?);
    if encrypted::is_encrypted_pem(&bytes) {
        return Err(Error::keys(
            format!("key file {} is encrypted already", input.display()),
            "nothing to do; to change its passphrase, decrypt it with `openssl pkcs8 -in FILE -out PLAIN` and encrypt PLAIN again",
        ));
    }
    // Only a key ota-sign can sign with is worth protecting here.
    let signer = Ed25519Signer::from_key_file(&bytes).map_err(|e| {
        Error::keys(
            format!("key file {} {e}", input.display()),
            "pass an unencrypted Ed25519 PKCS#8 PEM key, as `ota-sign init` writes them",
        )
    })?;
    let keyid = signer
        .key_id()
        .map_err(|e| Error::keys(format!("cannot derive the key id: {e}"), "report this bug"))?;
    if let Some(out) = out {
        if out.exists() {
            return Err(Error::input(
                format!("{} exists", out.display()),
                "choose a new file for --out (it is never replaced), or leave --out out to encrypt in place",
            ));
        }
    }
    let pass = new_passphrase()?;
    let choice = match kdf {
        Kdf::Scrypt => KdfChoice::Scrypt,
        Kdf::Pbkdf2 => KdfChoice::Pbkdf2,
    };
    let key_err =
        |e: ota_repo::key_source::KeySourceError| keys::key_source_error(e.to_string(), &e);
    let pem = encrypted::encrypt_pem(&bytes, &pass, choice).map_err(key_err)?;
    // Check before writing that it decrypts back to the same key.
    let back = encrypted::decrypt_pem(pem.as_bytes(), &pass).map_err(key_err)?;
    let same = Ed25519Signer::from_key_file(back.as_bytes())
        .ok()
        .and_then(|s| s.key_id().ok())
        == Some(keyid.clone());
    if !same {
        return Err(Error::keys(
            "the encrypted key does not decrypt to the same key",
            "report this bug; nothing was written",
        ));
    }
    let target = out.unwrap_or(input);
    let written = match out {
        Some(o) => atomic::write_new(o, pem.as_bytes(), KEY_FILE_MODE),
        None => atomic::replace(input, pem.as_bytes(), KEY_FILE_MODE),
    };
    written.map_err(|e| Error::write(target, e))?;
    let report = Encrypted {
        file: target.to_path_buf(),
        keyid: keyid.clone(),
        kdf: match kdf {
            Kdf::Scrypt => "scrypt",
            Kdf::Pbkdf2 => "pbkdf2",
        },
        in_place: out.is_none(),
    };
    if json {
        super::print_json(&report);
    } else {
        println!(
            "encrypted key {} ({}) into {}{}",
            short_id(&keyid),
            report.kdf,
            target.display(),
            if out.is_some() {
                format!(
                    "; {} is still unencrypted: destroy it once the copy is checked",
                    input.display()
                )
            } else {
                String::new()
            }
        );
    }
    Ok(0)
}

fn import_pkcs11(
    repo: &Path,
    key_dir: &Path,
    role: &str,
    uri: &str,
    keep: bool,
    json: bool,
    now: DateTime<Utc>,
) -> Result<u8> {
    keys::check_outside_repo(key_dir, repo)?;
    let parsed = match KeyRef::parse(uri) {
        Ok(KeyRef::Pkcs11(u)) => u,
        Ok(KeyRef::File(_)) | Err(_) => {
            let reason = Pkcs11Uri::parse(uri)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            return Err(Error::input(
                format!("--uri {uri:?} is not a PKCS#11 URI: {reason}"),
                "write --uri 'pkcs11:token=LABEL;object=LABEL[;id=%01]'",
            ));
        }
    };
    if parsed.pin_value.is_some() {
        crate::warn("pin-value= is used for this run only; ota-repo.json gets the URI without it (set OTA_PKCS11_PIN or pin-source= for later runs)");
    }
    let secrets = CliSecrets::default();
    let access: KeyAccess<'_> = keys::access(&secrets);
    let mut key = ota_repo::keys::load_key_with(key_dir, uri, &access)?;
    key.file = parsed.without_pin_value().to_string();
    let keyid = key.keyid.clone();
    let public = key.signer.public_key();
    let done = switch::switch_role_key(repo, key_dir, role, key, keep, &access, now)?;
    if json {
        #[derive(Serialize)]
        struct Report<'a> {
            #[serde(flatten)]
            switched: &'a switch::Switched,
            keytype: &'a str,
            scheme: &'a str,
        }
        super::print_json(&Report {
            switched: &done,
            keytype: &public.keytype,
            scheme: &public.scheme,
        });
    } else {
        match done.root_version {
            Some(v) => println!(
                "role {role} now signs with {} ({} key {}); root v{v} published{}",
                done.entry,
                public.scheme,
                short_id(&keyid),
                if done.resigned.is_empty() {
                    String::new()
                } else {
                    format!(", re-signed: {}", done.resigned.join(", "))
                }
            ),
            None => println!(
                "role {role} already authorises {} ({} key {}); ota-repo.json now lists it",
                done.entry,
                public.scheme,
                short_id(&keyid)
            ),
        }
        for e in &done.retired_entries {
            println!(
                "  retired {e} (no longer a {role} key; its file stays: destroy or archive it)"
            );
        }
    }
    Ok(0)
}
