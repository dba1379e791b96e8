//! What the signing-ceremony commands (`request`, `sign-request`, `combine`, `audit`) share:
//! the CLI's class, wording and hint for each [`CeremonyError`], the `--expires` value, and
//! how a request is shown to the people who sign it.
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use ota_repo::ceremony::request::ThresholdSet;
use ota_repo::ceremony::{CeremonyError, SigningRequest};
use ota_repo::policy::{expires_at, Period};

/// Exit codes of the ceremony commands, for their `--help`.
pub const EXIT_CODES: &str = "\
Exit codes: 0 done; 1 a write failed part-way; 2 bad input (arguments, a request or
signature file that is damaged, edited, for another request or not verifying over the
request, nothing to sign, an output file that exists); 3 keys (a key that may not sign, not
enough valid signatures, the snapshot and timestamp keys missing); 4 repository (missing,
corrupt, locked, a stale request, a broken audit log, a bad ota-staged-root.json).";

const NOTHING_PUBLISHED: &str = "nothing was published";

/// Parse `--expires`: a period from `now` (`90d`, `12h`) or an RFC 3339 time.
pub fn parse_expires(s: Option<&str>, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
    let Some(s) = s else { return Ok(None) };
    if let Ok(p) = s.parse::<Period>() {
        return Ok(Some(expires_at(now, p)));
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|_| {
            Error::input(
                format!("invalid --expires {s:?}"),
                "give a period from now (e.g. --expires 90d; units s m h d w) or an RFC 3339 time (e.g. 2031-01-01T00:00:00Z)",
            )
        })
}

/// `3 of the 5 keys of targets` for each threshold, joined with AND.
pub fn needs(thresholds: &[ThresholdSet]) -> String {
    thresholds
        .iter()
        .map(|t| {
            format!(
                "{} of the {} key(s) of {}",
                t.threshold,
                t.keyids.len(),
                t.name
            )
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// Print a request for people: what it is, what it changes, who must sign.
pub fn print_request(req: &SigningRequest) {
    println!("signing request: {}", req.describe());
    println!("  request sha256  {}", req.request_sha256);
    println!("  content sha256  {}", req.signed_sha256);
    println!(
        "  made {} over {} v{} (root v{})",
        req.created.format("%Y-%m-%d %H:%M:%S UTC"),
        req.role,
        req.base.version,
        req.base.root_version
    );
    println!("what changes:");
    for line in &req.summary {
        println!("  {line}");
    }
    println!("signatures needed: {}", needs(&req.thresholds));
}

/// The CLI's class and hint for each ceremony error.
impl From<CeremonyError> for Error {
    fn from(e: CeremonyError) -> Self {
        let msg = e.to_string();
        match e {
            CeremonyError::Repo(r) => Error::from(*r),
            CeremonyError::UnsupportedRole { .. } => {
                Error::input(msg, "pass --role targets or --role root")
            }
            CeremonyError::NothingToSign { .. } => Error::input(
                msg,
                "stage targets first (ota-sign add --no-publish ...), or pass --expires to re-sign the published targets with a new expiry",
            ),
            CeremonyError::ExpiryInPast { .. } => Error::input(
                msg,
                "give a period from now (e.g. --expires 90d) or a time in the future",
            ),
            CeremonyError::StagedRootInvalid { .. } => Error::repo(
                msg,
                "stage the new root again with `ota-sign rotate --stage`, or remove ota-staged-root.json to re-sign the current root",
            ),
            CeremonyError::RequestUnreadable { source, .. } => Error::user_file(
                "request file",
                source,
                Error::input,
                "pass the request file `ota-sign request` wrote",
            ),
            CeremonyError::RequestCorrupt { .. }
            | CeremonyError::RequestDamaged { .. }
            | CeremonyError::RequestInconsistent { .. } => Error::input(
                msg,
                "do not sign or combine it: get an intact copy from whoever ran `ota-sign request` and compare its request sha256 with theirs",
            ),
            CeremonyError::OutputExists { .. } => Error::input(
                msg,
                "choose another --out, or remove the old file if you are sure it is yours",
            ),
            CeremonyError::KeyNotAllowed { role, .. } => Error::keys(
                msg,
                format!("sign with your {role} key of this repository; `ota-sign status` lists the key ids of each role; nothing was written"),
            ),
            CeremonyError::SignerName { .. } => {
                Error::input(msg, "pass a short name, e.g. --signer-name alice")
            }
            CeremonyError::Sign { .. } => Error::keys(msg, "check the key file; nothing was written"),
            CeremonyError::SignatureUnreadable { source, .. } => Error::user_file(
                "signature file",
                source,
                Error::input,
                "pass the signature files `ota-sign sign-request` wrote; nothing was published",
            ),
            CeremonyError::SignatureCorrupt { .. } => Error::input(
                msg,
                "ask its signer for the file again (it may have been cut in transfer); nothing was published",
            ),
            CeremonyError::SignatureForOtherRequest { .. } => Error::input(
                msg,
                "leave that file out, or have its signer sign this request; nothing was published",
            ),
            CeremonyError::SignatureKeyNotAllowed { .. } => Error::keys(
                msg,
                "leave that file out: its key may not sign this role; nothing was published",
            ),
            CeremonyError::SignatureInvalid { .. } => Error::input(
                msg,
                "it was not made over this request's content: have its signer run `ota-sign sign-request` on this request again; nothing was published",
            ),
            CeremonyError::NoSignatures => Error::input(msg, "pass the signature files after the request file"),
            CeremonyError::UntrustedRequest { .. } => Error::input(
                msg,
                "do not sign it: ask the release engineer where the request came from (nothing was signed)",
            ),
            CeremonyError::StaleRequest { .. } => Error::repo(
                msg,
                "the repository changed since the request was made: make a new request with `ota-sign request` and have it signed; nothing was published",
            ),
            CeremonyError::RequestExpired { .. } => Error::input(
                msg,
                "make a new request (`ota-sign request`, with a later --expires) and have it signed; nothing was published",
            ),
            CeremonyError::BelowThreshold { .. } => Error::keys(
                msg,
                format!("collect more signatures (`ota-sign sign-request` by other key holders) and run combine again with all of them; {NOTHING_PUBLISHED}"),
            ),
            CeremonyError::AuditUnreadable { source, .. } => Error::user_file(
                "audit log",
                source,
                Error::repo,
                "restore audit/log.jsonl from a backup",
            ),
            CeremonyError::AuditBroken { .. } => Error::repo(
                msg,
                "the audit log was edited or damaged: investigate and keep a copy as evidence; to go on, move audit/log.jsonl aside (a new log starts) and record why",
            ),
            CeremonyError::AuditWrite { path, source } => Error::write(&path, source),
        }
    }
}
