use super::{Key, Signature};
use crate::{Error, Result};
use std::collections::HashSet;

/// Where the verifier looks up keys by id (root's `keys`, a delegator's `delegations.keys`).
pub trait KeySource {
    /// The key listed under `keyid`, if any.
    fn key(&self, keyid: &str) -> Option<&Key>;
}

impl KeySource for std::collections::BTreeMap<String, Key> {
    fn key(&self, keyid: &str) -> Option<&Key> {
        self.get(keyid)
    }
}

/// Verify that at least `threshold` distinct authorised keys signed `canonical`.
///
/// Rules, following the TUF specification and hardened where it is silent:
/// - metadata whose `signatures` list names one key id twice is rejected outright;
/// - a role listing one key id twice is rejected (it would let one key count twice);
/// - signatures by keys not authorised for the role, empty or malformed signatures,
///   and keys of unsupported types are ignored, not fatal;
/// - one public key listed under two ids counts once.
///
/// ```
/// use ota_formats::crypto::{verify_threshold, Ed25519Signer, Signer};
/// use std::collections::BTreeMap;
/// let k = Ed25519Signer::generate();
/// let id = k.key_id().unwrap();
/// let keys = BTreeMap::from([(id.clone(), k.public_key())]);
/// let sig = k.sign(b"msg").unwrap();
/// assert!(verify_threshold("root", b"msg", &[sig.clone()], &keys, &[id.clone()], 1).is_ok());
/// assert!(verify_threshold("root", b"msg", &[sig], &keys, &[id], 2).is_err());
/// ```
pub fn verify_threshold(
    role: &str,
    canonical: &[u8],
    signatures: &[Signature],
    keys: &dyn KeySource,
    role_keyids: &[String],
    threshold: u64,
) -> Result<()> {
    if threshold == 0 {
        return Err(Error::invalid(
            format!("role {role}"),
            "threshold must be at least 1",
        ));
    }
    let mut listed = HashSet::new();
    for id in role_keyids {
        if !listed.insert(id.as_str()) {
            return Err(Error::DuplicateKeyId {
                keyid: id.clone(),
                place: format!("role {role}"),
            });
        }
    }
    let mut seen_sig = HashSet::new();
    for s in signatures {
        if !seen_sig.insert(s.keyid.as_str()) {
            return Err(Error::DuplicateKeyId {
                keyid: s.keyid.clone(),
                place: format!("signatures of {role}"),
            });
        }
    }
    let mut counted_keys: HashSet<(&str, &str, &str)> = HashSet::new();
    for s in signatures {
        if !listed.contains(s.keyid.as_str()) {
            continue;
        }
        let Some(key) = keys.key(&s.keyid) else {
            continue;
        };
        let Ok(sig) = hex::decode(&s.sig) else {
            continue;
        };
        if sig.is_empty() {
            continue;
        }
        if let Ok(true) = key.verify(&s.keyid, canonical, &sig) {
            counted_keys.insert((&key.keytype, &key.scheme, &key.keyval.public));
        }
    }
    if (counted_keys.len() as u64) < threshold {
        return Err(Error::ThresholdNotMet {
            role: role.to_string(),
            valid: counted_keys.len(),
            threshold,
        });
    }
    Ok(())
}
