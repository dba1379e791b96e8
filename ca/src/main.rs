//! `ota-ca`: see `ota-ca --help`. The work is done in the `ota_ca` library; this is the
//! command line over it: arguments, output files, what is printed, exit codes.
use chrono::{DateTime, Utc};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{ArgAction, ArgGroup, Parser, Subcommand};
use ota_ca::{
    Ca, Entry, Error, InitOptions, IssueOptions, Issued, KeyType, Reason, Result, State,
    USER_FILE_LIMIT,
};
use ota_fs::mode::{PUBLIC_FILE, SECRET_FILE};
use serde::Serialize;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// `println!` that does not panic when stdout is closed (`ota-ca list | head`): the output is
/// for a reader that has gone, and the work is done.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

const EXIT_CODES: &str = "\
Exit codes:
  0   success
  2   usage or bad input: arguments, a CSR (unreadable, bad signature, bad CN), a server
      name or --san, an existing directory for init, an existing --out-key, a serial this
      CA did not issue, a device id that already has a valid certificate (see --replace)
  3   the CA directory: missing, incomplete, corrupt (ca.key not matching ca.pem, bad
      index.json), or locked by another ota-ca run for longer than 10 s
  4   I/O: a file could not be written (or read for another reason than being absent)

With --json, a failure also prints on stdout
  {\"error\": {\"kind\": \"input|ca|io\", \"message\", \"hint\", \"exit_code\"}}

Example:
  ota-ca init --dir fleet-ca --name \"Example Fleet CA\"
  ota-ca issue --dir fleet-ca --csr dev-0001.csr --out dev-0001.pem
  ota-ca issue-server --dir fleet-ca --name ota.example.com --out-cert server.pem --out-key server.key
  ota-ca revoke --dir fleet-ca --serial 4F1C... --reason keyCompromise
  ota-ca crl --dir fleet-ca        # daily from cron, so crl.pem never lapses
  ota-ca list --dir fleet-ca";

/// `ota-ca`: the fleet's certificate authority, run offline on the operator's machine. Issues
/// device (TLS client) certificates from CSRs and the server's TLS certificate, and keeps the
/// CRL.
#[derive(Debug, Parser)]
#[command(name = "ota-ca", version, about, long_about = None, after_help = EXIT_CODES)]
struct Cli {
    /// More logs on stderr (-v: debug, -vv: trace).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,
    /// Act as if it were this time (RFC 3339, e.g. 2030-01-01T00:00:00Z). For tests and
    /// reproducible fixtures.
    #[arg(long, global = true, hide = true, value_name = "TIME", value_parser = parse_now)]
    now: Option<DateTime<Utc>>,
    /// Seconds to wait for another run's lock before failing with exit code 3.
    #[arg(
        long,
        global = true,
        hide = true,
        value_name = "SECS",
        default_value_t = 10
    )]
    lock_wait: u64,
    /// The subcommand.
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new CA: key (0600), self-signed certificate, empty index and CRL.
    Init(InitArgs),
    /// Issue a device's client-authentication certificate from its CSR.
    Issue(IssueArgs),
    /// Issue the update server's TLS certificate, with a new key.
    IssueServer(IssueServerArgs),
    /// Revoke a certificate and rewrite crl.pem.
    Revoke(RevokeArgs),
    /// Re-sign crl.pem with a new nextUpdate (run it from cron); prints its path.
    Crl(CrlArgs),
    /// Show every certificate issued, with its state (valid, expired, revoked).
    List(ListArgs),
}

impl Command {
    fn json(&self) -> bool {
        match self {
            Command::Init(a) => a.json,
            Command::Issue(a) => a.json,
            Command::IssueServer(a) => a.json,
            Command::Revoke(a) => a.json,
            Command::Crl(a) => a.json,
            Command::List(a) => a.json,
        }
    }
}

fn key_type_parser() -> impl TypedValueParser<Value = KeyType> {
    PossibleValuesParser::new(["ecdsa-p256", "ed25519"]).map(|s| match s.as_str() {
        "ed25519" => KeyType::Ed25519,
        _ => KeyType::EcdsaP256,
    })
}

const INIT_EXAMPLE: &str = "\
Examples:
  ota-ca init --dir fleet-ca --name \"Example Fleet CA\"
  ota-ca init --dir fleet-ca --name \"Example Fleet CA\" --days 7300 --key-type ed25519

DIR must not exist or be empty. There is no --force: an existing CA (and its key, which
every device certificate depends on) is never overwritten. Keep DIR offline and backed up;
the server needs only ca.pem and crl.pem.";

/// Arguments of `init`.
#[derive(Debug, clap::Args)]
#[command(after_help = INIT_EXAMPLE)]
struct InitArgs {
    /// CA directory to create (created 0700; must not exist, or be empty).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// The CA's name (its certificate's CN), 1 to 64 characters.
    #[arg(long, value_name = "NAME")]
    name: String,
    /// Validity of the CA certificate, in days.
    #[arg(long, default_value_t = ota_ca::DEFAULT_CA_DAYS, value_parser = clap::value_parser!(u32).range(1..=36500))]
    days: u32,
    /// Type of the CA key (ECDSA P-256 is understood by every TLS stack).
    #[arg(long, value_name = "TYPE", default_value = "ecdsa-p256", value_parser = key_type_parser())]
    key_type: KeyType,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

const ISSUE_EXAMPLE: &str = "\
Examples:
  # on the device (or the factory station), with the device's own key:
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \\
      -keyout dev-0001.key -subj /CN=dev-0001 -out dev-0001.csr
  # on the CA machine:
  ota-ca issue --dir fleet-ca --csr dev-0001.csr --out dev-0001.pem
  ota-ca issue --dir fleet-ca --csr dev-0001-new.csr --out dev-0001.pem --replace

The CSR's signature must verify with the key it carries. Its CN is the device id (1 to 64 of
A-Z a-z 0-9 . _ -); its DNS/IP/URI/e-mail SANs are copied. The certificate is for TLS client
authentication only (EKU clientAuth, key usage digitalSignature, CA:FALSE), whatever the CSR
asks for. A device id that already has a valid certificate is refused without --replace.";

/// Arguments of `issue`.
#[derive(Debug, clap::Args)]
#[command(after_help = ISSUE_EXAMPLE)]
struct IssueArgs {
    /// CA directory.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// The device's certificate signing request (PEM or DER).
    #[arg(long, value_name = "FILE")]
    csr: PathBuf,
    /// Where to write the certificate (PEM, 0644; replaced if it exists).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Validity in days (cut to the CA certificate's end).
    #[arg(long, default_value_t = ota_ca::DEFAULT_DEVICE_DAYS, value_parser = clap::value_parser!(u32).range(1..=36500))]
    days: u32,
    /// Issue even though the device id already has a valid certificate (new key, ownership
    /// transfer). Revoke the old certificate once the device uses the new one.
    #[arg(long)]
    replace: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

const ISSUE_SERVER_EXAMPLE: &str = "\
Examples:
  ota-ca issue-server --dir fleet-ca --name ota.example.com \\
      --out-cert server.pem --out-key server.key
  ota-ca issue-server --dir fleet-ca --name localhost --san IP:127.0.0.1 --san IP:::1 \\
      --out-cert server.pem --out-key server.key --days 90

The name is put in the SANs too (as DNS or IP). --out-key must not exist (a private key is
never overwritten); it is written 0600. EKU serverAuth, key usage digitalSignature.";

/// Arguments of `issue-server`.
#[derive(Debug, clap::Args)]
#[command(after_help = ISSUE_SERVER_EXAMPLE)]
struct IssueServerArgs {
    /// CA directory.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// The server's host name (or IP address): the certificate's CN and first SAN.
    #[arg(long, value_name = "HOST")]
    name: String,
    /// Another name clients may connect with: DNS:NAME or IP:ADDRESS (repeatable).
    #[arg(long = "san", value_name = "DNS:NAME|IP:ADDR")]
    sans: Vec<String>,
    /// Where to write the certificate (PEM, 0644; replaced if it exists).
    #[arg(long, value_name = "FILE")]
    out_cert: PathBuf,
    /// Where to write the new private key (PKCS#8 PEM, 0600; must not exist).
    #[arg(long, value_name = "FILE")]
    out_key: PathBuf,
    /// Validity in days (cut to the CA certificate's end).
    #[arg(long, default_value_t = ota_ca::DEFAULT_SERVER_DAYS, value_parser = clap::value_parser!(u32).range(1..=36500))]
    days: u32,
    /// Type of the server key.
    #[arg(long, value_name = "TYPE", default_value = "ecdsa-p256", value_parser = key_type_parser())]
    key_type: KeyType,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

const REVOKE_EXAMPLE: &str = "\
Examples:
  ota-ca revoke --dir fleet-ca --serial 4f1c0e...  --reason keyCompromise
  ota-ca revoke --dir fleet-ca --cert dev-0001.pem --reason cessationOfOperation

The serial is hex as `ota-ca list` or `openssl x509 -noout -serial` shows it (any case, `:`
allowed). crl.pem is rewritten at once (with the current CRL's period unless --crl-days):
copy it to the server. Revoking a revoked certificate only re-signs the CRL.";

/// Arguments of `revoke`.
#[derive(Debug, clap::Args)]
#[command(after_help = REVOKE_EXAMPLE)]
#[command(group(ArgGroup::new("which").required(true).args(["serial", "cert"])))]
struct RevokeArgs {
    /// CA directory.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Serial number of the certificate (hex).
    #[arg(long, value_name = "HEX")]
    serial: Option<String>,
    /// The certificate itself (PEM or DER).
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,
    /// Why (RFC 5280 reason code; `unspecified` puts none in the CRL).
    #[arg(long, value_name = "REASON", default_value = "unspecified",
          value_parser = PossibleValuesParser::new(Reason::NAMES).try_map(|s| s.parse::<Reason>()))]
    reason: Reason,
    /// Period of the new CRL in days (default: the current CRL's, or 30).
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=3650))]
    crl_days: Option<u32>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

const CRL_EXAMPLE: &str = "\
Examples:
  ota-ca crl --dir fleet-ca
  ota-ca crl --dir fleet-ca --days 7

  # crontab: re-sign daily, well before nextUpdate, and publish it
  17 3 * * *  ota-ca crl --dir /srv/fleet-ca >/dev/null && cp /srv/fleet-ca/crl.pem /etc/ota/crl.pem

Relying parties reject a CRL past its nextUpdate (and with it every client certificate,
when they check revocation), so re-sign it well before.";

/// Arguments of `crl`.
#[derive(Debug, clap::Args)]
#[command(after_help = CRL_EXAMPLE)]
struct CrlArgs {
    /// CA directory.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Days until the new CRL's nextUpdate.
    #[arg(long, default_value_t = ota_ca::DEFAULT_CRL_DAYS, value_parser = clap::value_parser!(u32).range(1..=3650))]
    days: u32,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

const LIST_EXAMPLE: &str = "\
Examples:
  ota-ca list --dir fleet-ca
  ota-ca list --dir fleet-ca --json | jq -r '.certificates[] | select(.state == \"valid\") | .subject_cn'";

/// Arguments of `list`.
#[derive(Debug, clap::Args)]
#[command(after_help = LIST_EXAMPLE)]
struct ListArgs {
    /// CA directory.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_now(s: &str) -> std::result::Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // A refused command line (or --help/--version); the JSON error object too with --json.
        Err(e) => return ExitCode::from(ota_cli::report::clap_failure(&e, "ota-ca", "input")),
    };
    // -v wins over RUST_LOG; without either, only warnings.
    ota_cli::logging::init(cli.verbose, "warn");
    let json = cli.command.json();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if json {
                ota_cli::report::print_error_json(
                    e.kind(),
                    &e.to_string(),
                    e.hint(),
                    e.exit_code(),
                );
            }
            eprintln!("error: {e}");
            eprintln!("hint: {}", e.hint());
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let wait = Duration::from_secs(cli.lock_wait);
    let open =
        |dir: &Path| -> Result<Ca> { Ok(Ca::open(dir)?.with_now(cli.now).with_lock_wait(wait)) };
    match cli.command {
        Command::Init(a) => init(a, cli.now),
        Command::Issue(a) => issue(&open(&a.dir)?, a),
        Command::IssueServer(a) => issue_server(&open(&a.dir)?, a),
        Command::Revoke(a) => revoke(&open(&a.dir)?, a),
        Command::Crl(a) => crl(&open(&a.dir)?, a),
        Command::List(a) => list(&open(&a.dir)?, a),
    }
}

/// Print a report as pretty JSON on stdout.
fn print_json<T: Serialize>(v: &T) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => out!("{s}"),
        Err(e) => eprintln!("warning: cannot encode the JSON report: {e}"),
    }
}

/// A time as in `index.json` and the JSON output: RFC 3339, UTC, whole seconds.
fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn note(text: &str) {
    eprintln!("note: {text}");
}

/// Refuse an output path whose directory does not exist before anything is issued, so a
/// typo does not leave a recorded certificate that nobody received.
fn check_out_dir(path: &Path, what: &str) -> Result<()> {
    let parent = ota_fs::atomic::parent(path)
        .map_err(|e| Error::input(e.to_string(), "give a file path"))?;
    if parent.is_dir() {
        Ok(())
    } else {
        Err(Error::input(
            format!("the directory of {what} {} does not exist", path.display()),
            "create it first, or check the path",
        ))
    }
}

fn write_out(path: &Path, bytes: &[u8], issued: &Issued) -> Result<()> {
    ota_fs::atomic::replace(path, bytes, PUBLIC_FILE).map_err(|e| Error::Io {
        msg: format!("cannot write {}: {e}", path.display()),
        hint: format!(
            "the certificate was issued and recorded: copy {} instead",
            issued.path.display()
        ),
    })
}

fn init(a: InitArgs, now: Option<DateTime<Utc>>) -> Result<()> {
    let opts = InitOptions {
        name: a.name,
        days: a.days,
        key_type: a.key_type,
    };
    let ca = Ca::init_at(&a.dir, &opts, now)?;
    let crl = ca.crl_status();
    let crl_next = crl.as_ref().and_then(|c| c.next_update);
    if a.json {
        print_json(&json!({
            "dir": ca.dir(),
            "name": ca.name(),
            "key_type": ca.key_type(),
            "not_after": ca.not_after(),
            "ca_key": ca.dir().join(ota_ca::KEY_FILE),
            "ca_cert": ca.cert_path(),
            "crl": ca.crl_path(),
            "crl_next_update": crl_next,
        }));
    } else {
        out!(
            "created the CA {:?} in {} ({}, valid until {})",
            ca.name(),
            ca.dir().display(),
            ca.key_type().name(),
            ts(ca.not_after())
        );
        out!(
            "  {}  private key (0600): keep it offline and backed up",
            ca.dir().join(ota_ca::KEY_FILE).display()
        );
        out!(
            "  {}  CA certificate: the server trusts device certificates through it, devices the server's",
            ca.cert_path().display()
        );
        if let Some(next) = crl_next {
            out!(
                "  {}  CRL, valid until {}: re-sign it before then with `ota-ca crl --dir {}` (cron)",
                ca.crl_path().display(),
                ts(next),
                ca.dir().display()
            );
        }
    }
    Ok(())
}

fn issue(ca: &Ca, a: IssueArgs) -> Result<()> {
    let csr =
        ota_fs::user_file::read(&a.csr, USER_FILE_LIMIT).map_err(|e| Error::user_file("CSR", e))?;
    check_out_dir(&a.out, "--out")?;
    let issued = ca.issue_from_csr(
        &csr,
        &IssueOptions {
            days: a.days,
            replace: a.replace,
        },
    )?;
    write_out(&a.out, issued.pem.as_bytes(), &issued)?;
    let notes = issue_notes(ca, &issued);
    if a.json {
        print_json(&json!({
            "certificate": issued.entry,
            "out": a.out,
            "copy": issued.path,
            "notes": notes,
        }));
    } else {
        out!(
            "issued certificate {} for device {}, valid until {}",
            issued.entry.serial,
            issued.entry.subject_cn,
            ts(issued.entry.not_after)
        );
        out!(
            "wrote {} (the CA keeps a copy in {})",
            a.out.display(),
            issued.path.display()
        );
    }
    for n in &notes {
        note(n);
    }
    Ok(())
}

fn issue_notes(ca: &Ca, issued: &Issued) -> Vec<String> {
    let mut notes = Vec::new();
    for old in &issued.still_valid {
        notes.push(format!(
            "{} still has the valid certificate {} (until {}); once the device uses the new one, revoke it: ota-ca revoke --dir {} --serial {} --reason superseded",
            old.subject_cn,
            old.serial,
            ts(old.not_after),
            ca.dir().display(),
            old.serial
        ));
    }
    if issued.clamped {
        notes.push(format!(
            "the validity was cut to the CA certificate's end ({})",
            ts(ca.not_after())
        ));
    }
    notes
}

fn issue_server(ca: &Ca, a: IssueServerArgs) -> Result<()> {
    check_out_dir(&a.out_cert, "--out-cert")?;
    check_out_dir(&a.out_key, "--out-key")?;
    if std::fs::symlink_metadata(&a.out_key).is_ok() {
        return Err(Error::input(
            format!("{} already exists", a.out_key.display()),
            "a private key is never overwritten: move the old key away, or choose another --out-key",
        ));
    }
    let server = ca.issue_server(&a.name, &a.sans, a.days, a.key_type)?;
    let issued = &server.issued;
    ota_fs::atomic::write_new(&a.out_key, server.key_pem.as_bytes(), SECRET_FILE).map_err(
        |e| Error::Io {
            msg: format!("cannot write {}: {e}", a.out_key.display()),
            hint: format!(
                "the certificate {} was recorded but its key is lost: revoke it (ota-ca revoke --dir {} --serial {}) and issue again",
                issued.entry.serial,
                ca.dir().display(),
                issued.entry.serial
            ),
        },
    )?;
    write_out(&a.out_cert, issued.pem.as_bytes(), issued)?;
    let notes = issue_notes(ca, issued);
    if a.json {
        print_json(&json!({
            "certificate": issued.entry,
            "out_cert": a.out_cert,
            "out_key": a.out_key,
            "key_type": a.key_type,
            "copy": issued.path,
            "notes": notes,
        }));
    } else {
        out!(
            "issued server certificate {} for {} ({}), valid until {}",
            issued.entry.serial,
            issued.entry.subject_cn,
            issued.entry.sans.join(", "),
            ts(issued.entry.not_after)
        );
        out!(
            "wrote {} and the key {} (0600)",
            a.out_cert.display(),
            a.out_key.display()
        );
    }
    for n in &notes {
        note(n);
    }
    Ok(())
}

fn revoke(ca: &Ca, a: RevokeArgs) -> Result<()> {
    let revoked = match (&a.serial, &a.cert) {
        (Some(serial), _) => ca.revoke(serial, a.reason, a.crl_days)?,
        (None, Some(path)) => {
            let bytes = ota_fs::user_file::read(path, USER_FILE_LIMIT)
                .map_err(|e| Error::user_file("certificate", e))?;
            ca.revoke_cert(&bytes, a.reason, a.crl_days)?
        }
        (None, None) => {
            return Err(Error::input(
                "give --serial or --cert",
                "see `ota-ca revoke --help`",
            ))
        }
    };
    if a.json {
        print_json(&json!({
            "certificate": revoked.entry,
            "already_revoked": revoked.already_revoked,
            "crl": revoked.crl,
        }));
    } else {
        let e = &revoked.entry;
        if revoked.already_revoked {
            out!(
                "{} ({}) was already revoked at {}; re-signed {}",
                e.serial,
                e.subject_cn,
                e.revoked_at.map(ts).unwrap_or_default(),
                revoked.crl.path.display()
            );
        } else {
            out!(
                "revoked {} ({} {}, reason {})",
                e.serial,
                e.kind,
                e.subject_cn,
                e.reason.unwrap_or(Reason::Unspecified)
            );
            out!(
                "wrote {} ({} revoked, next update {}): copy it to the server",
                revoked.crl.path.display(),
                revoked.crl.revoked,
                ts(revoked.crl.next_update)
            );
        }
    }
    Ok(())
}

fn crl(ca: &Ca, a: CrlArgs) -> Result<()> {
    let info = ca.write_crl(a.days)?;
    if a.json {
        print_json(&info);
    } else {
        // Only the path: a cron job stays quiet with >/dev/null, a script can use it.
        out!("{}", info.path.display());
    }
    Ok(())
}

#[derive(Serialize)]
struct Listed<'a> {
    #[serde(flatten)]
    entry: &'a Entry,
    state: State,
}

fn list(ca: &Ca, a: ListArgs) -> Result<()> {
    let now = ca.now();
    let entries = ca.list()?;
    let crl = ca.crl_status();
    let listed: Vec<Listed> = entries
        .iter()
        .map(|e| Listed {
            entry: e,
            state: e.state(now),
        })
        .collect();
    if a.json {
        print_json(&json!({
            "dir": ca.dir(),
            "ca": {
                "name": ca.name(),
                "key_type": ca.key_type(),
                "not_after": ca.not_after(),
            },
            "crl": crl,
            "certificates": listed,
        }));
    } else if listed.is_empty() {
        out!("no certificates issued yet by {:?}", ca.name());
    } else {
        out!(
            "{:<32}  {:<6}  {:<7}  {:<20}  SUBJECT CN",
            "SERIAL",
            "KIND",
            "STATE",
            "NOT AFTER"
        );
        for l in &listed {
            out!(
                "{:<32}  {:<6}  {:<7}  {:<20}  {}",
                l.entry.serial,
                l.entry.kind.to_string(),
                l.state.to_string(),
                ts(l.entry.not_after),
                l.entry.subject_cn
            );
        }
    }
    match crl.and_then(|c| c.next_update) {
        None => eprintln!(
            "warning: {} is missing or unreadable; write it with `ota-ca crl --dir {}`",
            ca.crl_path().display(),
            ca.dir().display()
        ),
        Some(next) if next <= now => eprintln!(
            "warning: {} expired at {}; re-sign it with `ota-ca crl --dir {}`",
            ca.crl_path().display(),
            ts(next),
            ca.dir().display()
        ),
        Some(_) => {}
    }
    Ok(())
}
