//! # ota-ca
//!
//! A small offline certificate authority for an OTA fleet: it issues devices their
//! client-authentication certificates from CSRs, issues the update server its TLS certificate,
//! and keeps a signed CRL. The binary `ota-ca` is a thin command line over [`Ca`].
//!
//! The CA directory is a contract other tools rely on:
//!
//! ```text
//! DIR/ca.key              CA private key, PKCS#8 PEM, 0600 (DIR itself is 0700)
//! DIR/ca.pem              CA certificate
//! DIR/crl.pem             current CRL, signed by the CA, with thisUpdate/nextUpdate
//! DIR/issued/<SERIAL>.pem every certificate issued
//! DIR/index.json          the record of every certificate issued ([`Entry`])
//! DIR/.lock               flock'ed while a run writes
//! ```
//!
//! ```no_run
//! use ota_ca::{Ca, InitOptions, IssueOptions, KeyType, Reason};
//! let dir = std::path::Path::new("fleet-ca");
//! let ca = Ca::init(dir, &InitOptions { name: "Example Fleet CA".into(), days: 3650, key_type: KeyType::EcdsaP256 })?;
//! let csr = std::fs::read("dev-0001.csr")?;
//! let issued = ca.issue_from_csr(&csr, &IssueOptions::default())?;
//! std::fs::write("dev-0001.pem", &issued.pem)?;
//! ca.revoke(&issued.entry.serial, Reason::CessationOfOperation, None)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![deny(unsafe_code)]

mod error;
pub mod index;
mod lock;
mod x509;

pub use error::{Error, Result};
pub use index::{Entry, Kind, Reason, State};
pub use lock::LOCK_FILE;
pub use x509::validate_device_id;

use chrono::{DateTime, TimeDelta, Utc};
use ota_fs::mode::{PUBLIC_DIR, PUBLIC_FILE, SECRET_DIR, SECRET_FILE};
use rand_core::{OsRng, RngCore};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SerialNumber,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// File name of the CA private key.
pub const KEY_FILE: &str = "ca.key";
/// File name of the CA certificate.
pub const CERT_FILE: &str = "ca.pem";
/// File name of the current CRL.
pub const CRL_FILE: &str = "crl.pem";
/// Directory of every issued certificate, `<SERIAL>.pem`.
pub const ISSUED_DIR: &str = "issued";
pub use index::INDEX_FILE;

/// Default validity of the CA certificate, in days.
pub const DEFAULT_CA_DAYS: u32 = 3650;
/// Default validity of a device certificate, in days (the CA/Browser Forum's old maximum,
/// long enough that devices are not re-enrolled often).
pub const DEFAULT_DEVICE_DAYS: u32 = 825;
/// Default validity of a server certificate, in days (what browsers accept).
pub const DEFAULT_SERVER_DAYS: u32 = 397;
/// Default period of a CRL (nextUpdate - thisUpdate), in days.
pub const DEFAULT_CRL_DAYS: u32 = 30;
/// How long a run waits for another run's lock by default.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(10);

/// Cap on reading a CSR or a certificate a user names.
pub const USER_FILE_LIMIT: u64 = 1 << 20;
/// Cap on reading the CA's own key, certificate and CRL.
const CA_FILE_LIMIT: u64 = 64 << 20;

/// Certificates start this much before they are issued, so a device whose clock is a little
/// behind does not reject a certificate it has just received.
const BACKDATE: TimeDelta = TimeDelta::hours(1);

/// Type of key the CA generates (for itself, or for a server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyType {
    /// ECDSA on NIST P-256 with SHA-256: understood by every TLS stack.
    #[default]
    EcdsaP256,
    /// Ed25519: smaller and faster, but not every TLS client accepts it.
    Ed25519,
}

impl KeyType {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::Ed25519 => "ed25519",
        }
    }

    fn algorithm(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            KeyType::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyType::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }

    fn of(key: &KeyPair) -> Option<KeyType> {
        let alg = key.algorithm();
        if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
            Some(KeyType::EcdsaP256)
        } else if alg == &rcgen::PKCS_ED25519 {
            Some(KeyType::Ed25519)
        } else {
            None
        }
    }

    fn generate(self) -> Result<KeyPair> {
        KeyPair::generate_for(self.algorithm())
            .map_err(|e| Error::ca(format!("cannot generate a key: {e}"), "this is a bug"))
    }
}

/// Options of [`Ca::init`].
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The CA's name (its certificate's CN), e.g. "Example Fleet CA".
    pub name: String,
    /// Validity of the CA certificate, in days.
    pub days: u32,
    /// Type of the CA key.
    pub key_type: KeyType,
}

/// Options of [`Ca::issue_from_csr`].
#[derive(Debug, Clone)]
pub struct IssueOptions {
    /// Validity in days (cut to the CA certificate's own end).
    pub days: u32,
    /// Issue even if the CN already has a valid certificate (ownership transfer, new key).
    pub replace: bool,
}

impl Default for IssueOptions {
    fn default() -> Self {
        IssueOptions {
            days: DEFAULT_DEVICE_DAYS,
            replace: false,
        }
    }
}

/// A certificate just issued.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Its record in `index.json`.
    pub entry: Entry,
    /// The certificate, PEM.
    pub pem: String,
    /// Where the CA keeps its copy (`DIR/issued/<SERIAL>.pem`).
    pub path: PathBuf,
    /// Certificates of the same CN that are still valid (only with `replace`): the operator
    /// should revoke them once the device uses the new one.
    pub still_valid: Vec<Entry>,
    /// Whether the validity was cut to the CA certificate's end.
    pub clamped: bool,
}

/// A server certificate just issued, with its new private key.
#[derive(Debug)]
pub struct IssuedServer {
    /// The certificate.
    pub issued: Issued,
    /// The server's private key, PKCS#8 PEM: write it 0600.
    pub key_pem: String,
}

/// The result of [`Ca::revoke`].
#[derive(Debug, Clone)]
pub struct Revoked {
    /// The record, now with `revoked_at` and `reason`.
    pub entry: Entry,
    /// It was already revoked before (nothing changed but the CRL's freshness).
    pub already_revoked: bool,
    /// The CRL written.
    pub crl: CrlInfo,
}

/// A CRL just written.
#[derive(Debug, Clone, Serialize)]
pub struct CrlInfo {
    /// Its path (`DIR/crl.pem`).
    pub path: PathBuf,
    /// CRL number (grows with every CRL).
    pub number: String,
    /// thisUpdate.
    pub this_update: DateTime<Utc>,
    /// nextUpdate: relying parties reject the CRL after it, so re-sign before (`ota-ca crl`).
    pub next_update: DateTime<Utc>,
    /// How many certificates it lists.
    pub revoked: usize,
}

/// The current CRL's times, as read back from `crl.pem`.
#[derive(Debug, Clone, Serialize)]
pub struct CrlStatus {
    /// thisUpdate.
    pub this_update: DateTime<Utc>,
    /// nextUpdate, if present.
    pub next_update: Option<DateTime<Utc>>,
}

/// An open CA directory. Reading needs no lock; every change takes the directory's lock and
/// re-reads `index.json` under it, so concurrent runs (other processes included) never lose
/// each other's changes.
pub struct Ca {
    dir: PathBuf,
    key: KeyPair,
    key_type: KeyType,
    cert_der: Vec<u8>,
    name: String,
    not_after: DateTime<Utc>,
    now: Option<DateTime<Utc>>,
    lock_wait: Duration,
}

impl std::fmt::Debug for Ca {
    // The key stays out of debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("dir", &self.dir)
            .field("name", &self.name)
            .field("key_type", &self.key_type)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

fn to_time(t: DateTime<Utc>) -> Result<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp(t.timestamp()).map_err(|_| {
        Error::input(
            format!("{t} is outside the range of certificate dates"),
            "use fewer --days",
        )
    })
}

fn plus_days(t: DateTime<Utc>, days: u32) -> Result<DateTime<Utc>> {
    TimeDelta::try_days(i64::from(days))
        .and_then(|d| t.checked_add_signed(d))
        .ok_or_else(|| {
            Error::input(
                format!("{days} days from {t} is out of range"),
                "use fewer --days",
            )
        })
}

/// A time in messages: RFC 3339, UTC, whole seconds (as in `index.json`).
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Whole seconds: certificates carry no fractions, and `index.json` should say what the
/// certificate says.
fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

/// A random positive 16-byte serial whose first byte is never zero, so the hex form is always
/// 32 digits and reads the same in `index.json`, `issued/` and `openssl x509 -serial`.
fn random_serial() -> Result<[u8; 16]> {
    let mut s = [0u8; 16];
    OsRng.try_fill_bytes(&mut s).map_err(|e| {
        Error::ca(
            format!("no randomness for a serial: {e}"),
            "check /dev/urandom",
        )
    })?;
    s[0] = (s[0] & 0x7f) | 0x40;
    Ok(s)
}

fn read_ca_file(path: &Path) -> Result<Vec<u8>> {
    ota_fs::user_file::read(path, CA_FILE_LIMIT).map_err(Error::ca_file)
}

fn corrupt(what: String) -> Error {
    Error::ca(
        what,
        "the CA directory is corrupt; restore it from a backup",
    )
}

fn pem(label: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(label, der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

impl Ca {
    /// Create a new CA in `dir`: key, self-signed certificate, empty index, empty CRL.
    ///
    /// `dir` must not exist or be empty: an existing CA is never overwritten (there is no
    /// `--force`; a lost CA key would orphan every device certificate).
    pub fn init(dir: &Path, opts: &InitOptions) -> Result<Ca> {
        Self::init_at(dir, opts, None)
    }

    /// [`Ca::init`] as if the time were `now` (tests, reproducible fixtures).
    pub fn init_at(
        dir: &Path,
        opts: &InitOptions,
        now_override: Option<DateTime<Utc>>,
    ) -> Result<Ca> {
        x509::validate_ca_name(&opts.name)?;
        if opts.days == 0 {
            return Err(Error::input(
                "--days must be at least 1",
                "e.g. --days 3650",
            ));
        }
        let exists_hint = "ota-ca never overwrites a CA (its key signs every device certificate); choose a new directory, or remove this one if it holds nothing of value";
        match std::fs::read_dir(dir) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(Error::input(
                        format!("{} already exists and is not empty", dir.display()),
                        exists_hint,
                    ));
                }
                // An empty directory the operator made: it is about to hold the CA key.
                ota_fs::mode::set(dir, SECRET_DIR).map_err(|e| Error::write(dir, e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                ota_fs::mode::create_dir_all(dir, SECRET_DIR).map_err(|e| Error::write(dir, e))?
            }
            Err(e) if dir.exists() && !dir.is_dir() => {
                return Err(Error::input(
                    format!("{} exists and is not a directory ({e})", dir.display()),
                    exists_hint,
                ))
            }
            Err(e) => return Err(Error::write(dir, e)),
        }
        let _lock = lock::acquire(dir, DEFAULT_LOCK_WAIT)?;
        // Another init may have won the race between the emptiness check and the lock.
        if [KEY_FILE, CERT_FILE, INDEX_FILE]
            .iter()
            .any(|f| dir.join(f).exists())
        {
            return Err(Error::input(
                format!("{} already holds a CA", dir.display()),
                exists_hint,
            ));
        }

        let now = whole_seconds(now_override.unwrap_or_else(Utc::now));
        let key = opts.key_type.generate()?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, opts.name.as_str());
        let mut params = CertificateParams::default();
        params.distinguished_name = dn;
        // Path length 0: this CA signs leaf certificates only, never another CA.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
        let not_after = plus_days(now, opts.days)?;
        params.not_before = to_time(now - BACKDATE)?;
        params.not_after = to_time(not_after)?;
        let cert = params.self_signed(&key).map_err(|e| {
            Error::ca(
                format!("cannot sign the CA certificate: {e}"),
                "this is a bug",
            )
        })?;

        let key_path = dir.join(KEY_FILE);
        ota_fs::atomic::write_new(&key_path, key.serialize_pem().as_bytes(), SECRET_FILE)
            .map_err(|e| Error::write(&key_path, e))?;
        let cert_path = dir.join(CERT_FILE);
        ota_fs::atomic::write_new(&cert_path, cert.pem().as_bytes(), PUBLIC_FILE)
            .map_err(|e| Error::write(&cert_path, e))?;
        let issued = dir.join(ISSUED_DIR);
        ota_fs::mode::create_dir_all(&issued, PUBLIC_DIR).map_err(|e| Error::write(&issued, e))?;
        let ca = Ca {
            dir: dir.to_path_buf(),
            key_type: opts.key_type,
            key,
            cert_der: cert.der().to_vec(),
            name: opts.name.clone(),
            not_after,
            now: Some(now),
            lock_wait: DEFAULT_LOCK_WAIT,
        };
        ca.sign_crl(&[], Some(DEFAULT_CRL_DAYS), now)?;
        // index.json last: its presence marks a complete CA directory.
        let index_path = dir.join(INDEX_FILE);
        ota_fs::atomic::write_new(&index_path, b"[]\n", PUBLIC_FILE)
            .map_err(|e| Error::write(&index_path, e))?;
        Ok(Ca {
            now: now_override,
            ..ca
        })
    }

    /// Open the CA in `dir`: read its key and certificate and check that they belong
    /// together, and that `index.json` is readable.
    pub fn open(dir: &Path) -> Result<Ca> {
        if !dir.is_dir() {
            return Err(Error::ca(
                format!("no CA directory at {}", dir.display()),
                "create one with `ota-ca init --dir DIR --name NAME`, or check --dir",
            ));
        }
        let cert_path = dir.join(CERT_FILE);
        let cert_bytes = read_ca_file(&cert_path)?;
        let cert_der = x509::pem_or_der(
            &cert_bytes,
            &["CERTIFICATE"],
            &cert_path.display().to_string(),
        )
        .map_err(|e| corrupt(e.to_string()))?;
        let info = x509::cert_info(&cert_der, &cert_path.display().to_string())
            .map_err(|e| corrupt(e.to_string()))?;
        if !info.is_ca {
            return Err(corrupt(format!(
                "{} is not a CA certificate (no CA:TRUE)",
                cert_path.display()
            )));
        }
        let key_path = dir.join(KEY_FILE);
        let key_bytes = read_ca_file(&key_path)?;
        let key = std::str::from_utf8(&key_bytes)
            .ok()
            .and_then(|s| KeyPair::from_pem(s).ok())
            .ok_or_else(|| {
                corrupt(format!(
                    "{} is not a PKCS#8 PEM private key this CA can use",
                    key_path.display()
                ))
            })?;
        let key_type = KeyType::of(&key).ok_or_else(|| {
            corrupt(format!(
                "{} is neither an ECDSA P-256 nor an Ed25519 key",
                key_path.display()
            ))
        })?;
        if key.public_key_raw() != info.public_key.as_slice() {
            return Err(corrupt(format!(
                "{} is not the key of {}",
                key_path.display(),
                cert_path.display()
            )));
        }
        // Fail now, not half-way through a command, on an incomplete or corrupt directory.
        index::load(dir)?;
        Ok(Ca {
            dir: dir.to_path_buf(),
            key,
            key_type,
            cert_der,
            name: info.cn.unwrap_or_default(),
            not_after: info.not_after,
            now: None,
            lock_wait: DEFAULT_LOCK_WAIT,
        })
    }

    /// Act as if the time were `now` (tests, reproducible fixtures); `None` is the clock.
    pub fn with_now(mut self, now: Option<DateTime<Utc>>) -> Self {
        self.now = now;
        self
    }

    /// How long a change waits for another run holding the lock before failing (exit 3).
    pub fn with_lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// The current time (or the one set with [`Ca::with_now`]), in whole seconds.
    pub fn now(&self) -> DateTime<Utc> {
        whole_seconds(self.now.unwrap_or_else(Utc::now))
    }

    /// The CA directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA's name (its certificate's CN).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The type of the CA key.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The CA certificate's notAfter.
    pub fn not_after(&self) -> DateTime<Utc> {
        self.not_after
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA certificate, PEM (what servers and devices trust).
    pub fn cert_pem(&self) -> String {
        pem("CERTIFICATE", &self.cert_der)
    }

    /// Path of the CA certificate.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join(CERT_FILE)
    }

    /// Path of the current CRL.
    pub fn crl_path(&self) -> PathBuf {
        self.dir.join(CRL_FILE)
    }

    /// Every certificate issued, oldest first.
    pub fn list(&self) -> Result<Vec<Entry>> {
        index::load(&self.dir)
    }

    /// The current CRL's thisUpdate/nextUpdate, `None` if `crl.pem` is missing or unreadable.
    pub fn crl_status(&self) -> Option<CrlStatus> {
        let bytes = ota_fs::user_file::read(&self.crl_path(), CA_FILE_LIMIT).ok()?;
        let der = x509::pem_or_der(&bytes, &["X509 CRL"], "crl.pem").ok()?;
        let facts = x509::crl_facts(&der)?;
        Some(CrlStatus {
            this_update: facts.this_update,
            next_update: facts.next_update,
        })
    }

    fn issuer(&self) -> Result<Issuer<'static, &KeyPair>> {
        Issuer::from_ca_cert_der(&self.cert_der.as_slice().into(), &self.key)
            .map_err(|e| corrupt(format!("{} cannot be used to sign: {e}", CERT_FILE)))
    }

    /// The SKI of the CA certificate, for the CRL's authority key identifier (it must be the
    /// same bytes as in the certificate, however they were computed).
    fn key_id(&self) -> KeyIdMethod {
        let ski = x509_parser::parse_x509_certificate(&self.cert_der)
            .ok()
            .and_then(|(_, c)| {
                c.iter_extensions()
                    .find_map(|e| match e.parsed_extension() {
                        x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => {
                            Some(k.0.to_vec())
                        }
                        _ => None,
                    })
            });
        match ski {
            Some(ski) => KeyIdMethod::PreSpecified(ski),
            None => KeyIdMethod::Sha256,
        }
    }

    /// Issue a device's client-authentication certificate from its CSR (PEM or DER).
    ///
    /// The CSR's self-signature must verify; its CN (the device id, see
    /// [`validate_device_id`]) and subject alternative names are copied, nothing else: the
    /// certificate is for TLS client authentication only (EKU clientAuth, key usage
    /// digitalSignature, CA:FALSE). A CN that already has a valid certificate is refused
    /// unless `opts.replace`.
    pub fn issue_from_csr(&self, csr: &[u8], opts: &IssueOptions) -> Result<Issued> {
        let req = x509::parse_csr(csr)?;
        validate_device_id(&req.cn)?;
        let mut params = self.leaf_params(&req.cn, req.sans.iter().map(|s| s.0.clone()).collect());
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let sans = req.sans.into_iter().map(|s| s.1).collect();
        self.sign_and_record(
            params,
            &req.public_key,
            Kind::Device,
            req.cn,
            sans,
            opts.days,
            opts.replace,
        )
    }

    /// Issue a server's TLS certificate (EKU serverAuth) for `name` (a DNS name or an IP
    /// address, also put in the SANs) and `sans` (`DNS:...`/`IP:...`), with a new key of
    /// `key_type`. A server may hold several valid certificates (renewal overlaps).
    pub fn issue_server(
        &self,
        name: &str,
        sans: &[String],
        days: u32,
        key_type: KeyType,
    ) -> Result<IssuedServer> {
        let mut all = vec![x509::server_name_san(name)?];
        for s in sans {
            let san = x509::parse_san(s)?;
            if !all.iter().any(|a| a.1 == san.1) {
                all.push(san);
            }
        }
        let key = key_type.generate()?;
        let mut params = self.leaf_params(name, all.iter().map(|s| s.0.clone()).collect());
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let sans = all.into_iter().map(|s| s.1).collect();
        let issued = self.sign_and_record(
            params,
            &key,
            Kind::Server,
            name.to_string(),
            sans,
            days,
            true,
        )?;
        Ok(IssuedServer {
            issued,
            key_pem: key.serialize_pem(),
        })
    }

    fn leaf_params(&self, cn: &str, sans: Vec<rcgen::SanType>) -> CertificateParams {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        let mut params = CertificateParams::default();
        params.distinguished_name = dn;
        params.subject_alt_names = sans;
        // ExplicitNoCa writes basicConstraints CA:FALSE and the subject key identifier.
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        params
    }

    #[allow(clippy::too_many_arguments)]
    fn sign_and_record(
        &self,
        mut params: CertificateParams,
        public_key: &impl rcgen::PublicKeyData,
        kind: Kind,
        cn: String,
        sans: Vec<String>,
        days: u32,
        replace: bool,
    ) -> Result<Issued> {
        if days == 0 {
            return Err(Error::input("--days must be at least 1", "e.g. --days 825"));
        }
        let now = self.now();
        if self.not_after <= now {
            return Err(Error::ca(
                format!("the CA certificate expired at {}", ts(self.not_after)),
                "make a new CA (ota-ca init) and enrol the devices again",
            ));
        }
        let mut not_after = plus_days(now, days)?;
        // A certificate cannot usefully outlive the CA that vouches for it.
        let clamped = not_after > self.not_after;
        if clamped {
            not_after = self.not_after;
        }
        let not_before = now - BACKDATE;
        params.not_before = to_time(not_before)?;
        params.not_after = to_time(not_after)?;

        let _lock = lock::acquire(&self.dir, self.lock_wait)?;
        let mut entries = index::load(&self.dir)?;
        let still_valid: Vec<Entry> = entries
            .iter()
            .filter(|e| e.kind == kind && e.subject_cn == cn && e.state(now) == State::Valid)
            .cloned()
            .collect();
        if let (false, Some(old)) = (replace, still_valid.first()) {
            return Err(Error::input(
                format!(
                    "{cn} already has a valid certificate (serial {}, until {})",
                    old.serial,
                    ts(old.not_after)
                ),
                format!(
                    "to re-issue (new key, ownership transfer) add --replace, then revoke the old one: ota-ca revoke --dir {} --serial {} --reason superseded",
                    self.dir.display(),
                    old.serial
                ),
            ));
        }
        let serial = loop {
            let s = random_serial()?;
            let hex = hex::encode(s);
            if !entries.iter().any(|e| e.serial == hex) {
                break s;
            }
        };
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        let cert = params.signed_by(public_key, &self.issuer()?).map_err(|e| {
            Error::input(
                format!("cannot sign the certificate: {e}"),
                "check the request",
            )
        })?;
        let der = cert.der().to_vec();
        let entry = Entry {
            serial: hex::encode(serial),
            kind,
            subject_cn: cn,
            sans,
            not_before,
            not_after,
            sha256: hex::encode(Sha256::digest(&der)),
            revoked_at: None,
            reason: None,
        };
        let pem = cert.pem();
        let path = self
            .dir
            .join(ISSUED_DIR)
            .join(format!("{}.pem", entry.serial));
        // issued/ first, then the index: a crash in between leaves an unrecorded copy of a
        // certificate nobody received, never a record without its certificate.
        ota_fs::mode::create_dir_all(&self.dir.join(ISSUED_DIR), PUBLIC_DIR)
            .map_err(|e| Error::write(&path, e))?;
        ota_fs::atomic::write_new(&path, pem.as_bytes(), PUBLIC_FILE)
            .map_err(|e| Error::write(&path, e))?;
        entries.push(entry.clone());
        index::save(&self.dir, &entries)?;
        tracing::debug!(serial = %entry.serial, cn = %entry.subject_cn, kind = %entry.kind, "issued and recorded");
        Ok(Issued {
            entry,
            pem,
            path,
            still_valid,
            clamped,
        })
    }

    /// Revoke the certificate with `serial` (hex, any case, `:` allowed) and rewrite
    /// `crl.pem`. `crl_days` is the new CRL's period; `None` keeps the current CRL's.
    /// Revoking a revoked certificate changes nothing but the CRL's freshness.
    pub fn revoke(&self, serial: &str, reason: Reason, crl_days: Option<u32>) -> Result<Revoked> {
        let serial = index::normalize_serial(serial)?;
        self.revoke_matching(&serial, None, reason, crl_days)
    }

    /// Revoke the certificate in `cert` (PEM or DER), which must be one this CA issued.
    pub fn revoke_cert(
        &self,
        cert: &[u8],
        reason: Reason,
        crl_days: Option<u32>,
    ) -> Result<Revoked> {
        let der = x509::pem_or_der(cert, &["CERTIFICATE"], "the certificate")?;
        let info = x509::cert_info(&der, "the certificate")?;
        let sha = hex::encode(Sha256::digest(&der));
        self.revoke_matching(&info.serial, Some(sha), reason, crl_days)
    }

    fn revoke_matching(
        &self,
        serial: &str,
        sha256: Option<String>,
        reason: Reason,
        crl_days: Option<u32>,
    ) -> Result<Revoked> {
        let now = self.now();
        let _lock = lock::acquire(&self.dir, self.lock_wait)?;
        let mut entries = index::load(&self.dir)?;
        let not_ours = || {
            Error::input(
                format!("serial {serial} was not issued by this CA (not in index.json)"),
                "check the serial with `ota-ca list`, and --dir",
            )
        };
        let pos = entries
            .iter()
            .position(|e| index::normalize_serial(&e.serial).is_ok_and(|s| s == serial))
            .ok_or_else(not_ours)?;
        if let Some(sha) = sha256 {
            if entries[pos].sha256 != sha {
                return Err(Error::input(
                    format!("the certificate has serial {serial}, but it is not the certificate this CA issued under that serial"),
                    "check that the certificate comes from this CA (--dir)",
                ));
            }
        }
        let already_revoked = entries[pos].revoked_at.is_some();
        if !already_revoked {
            entries[pos].revoked_at = Some(now);
            entries[pos].reason = Some(reason);
            index::save(&self.dir, &entries)?;
        }
        let crl = self.sign_crl(&entries, crl_days, now)?;
        Ok(Revoked {
            entry: entries[pos].clone(),
            already_revoked,
            crl,
        })
    }

    /// Re-sign `crl.pem` (for cron: relying parties reject a CRL past its nextUpdate), valid
    /// for `days`.
    pub fn write_crl(&self, days: u32) -> Result<CrlInfo> {
        let now = self.now();
        let _lock = lock::acquire(&self.dir, self.lock_wait)?;
        let entries = index::load(&self.dir)?;
        self.sign_crl(&entries, Some(days), now)
    }

    /// Sign and write a CRL of the revoked `entries`. Call while holding the lock.
    fn sign_crl(
        &self,
        entries: &[Entry],
        days: Option<u32>,
        now: DateTime<Utc>,
    ) -> Result<CrlInfo> {
        let path = self.crl_path();
        let previous = ota_fs::user_file::read(&path, CA_FILE_LIMIT)
            .ok()
            .and_then(|b| x509::pem_or_der(&b, &["X509 CRL"], "crl.pem").ok())
            .and_then(|der| x509::crl_facts(&der));
        let days = match (days, &previous) {
            (Some(d), _) => d,
            (None, Some(p)) => p
                .next_update
                .map(|n| (n - p.this_update).num_days())
                .and_then(|d| u32::try_from(d).ok())
                .filter(|d| *d > 0)
                .unwrap_or(DEFAULT_CRL_DAYS),
            (None, None) => DEFAULT_CRL_DAYS,
        };
        if days == 0 {
            return Err(Error::input("--days must be at least 1", "e.g. --days 30"));
        }
        let next_update = plus_days(now, days)?;
        // CRL numbers must grow. The clock gives a growing number even if crl.pem was lost;
        // the previous number + 1 keeps it growing if the clock went back or two CRLs are
        // signed within a second.
        let number = previous
            .map(|p| p.number.saturating_add(1))
            .unwrap_or(0)
            .max(u128::try_from(now.timestamp()).unwrap_or(0));
        let mut revoked = Vec::new();
        for e in entries.iter().filter(|e| e.revoked_at.is_some()) {
            let bytes = hex::decode(&e.serial)
                .map_err(|_| corrupt(format!("index.json has a bad serial {:?}", e.serial)))?;
            revoked.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&bytes),
                revocation_time: to_time(e.revoked_at.unwrap_or(now))?,
                reason_code: e.reason.map(Reason::to_rcgen),
                invalidity_date: None,
            });
        }
        let params = CertificateRevocationListParams {
            this_update: to_time(now)?,
            next_update: to_time(next_update)?,
            crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs: revoked,
            key_identifier_method: self.key_id(),
        };
        let crl = params
            .signed_by(&self.issuer()?)
            .map_err(|e| corrupt(format!("cannot sign the CRL: {e}")))?;
        let text = pem("X509 CRL", crl.der());
        ota_fs::atomic::replace(&path, text.as_bytes(), PUBLIC_FILE)
            .map_err(|e| Error::write(&path, e))?;
        tracing::debug!(number, revoked = params.revoked_certs.len(), next_update = %ts(next_update), "wrote the CRL");
        Ok(CrlInfo {
            path,
            number: format!("{number}"),
            this_update: now,
            next_update,
            revoked: params.revoked_certs.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_32_hex_digits() {
        for _ in 0..100 {
            let s = random_serial().unwrap();
            assert!((0x40..0x80).contains(&s[0]));
        }
    }
}
