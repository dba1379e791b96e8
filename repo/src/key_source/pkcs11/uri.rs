//! PKCS#11 URIs (RFC 7512), the subset that names one private key:
//!
//! ```text
//! pkcs11:token=LABEL;object=LABEL[;id=%01%02][;serial=SN][;type=private]
//!       [?module-path=/usr/lib/softhsm/libsofthsm2.so][&pin-source=file:/path][&pin-value=PIN]
//! ```
//!
//! Values are percent-encoded UTF-8 (`id` is bytes). `token` (or `serial`) and `object` (or
//! `id`) are required. Attributes not listed here are refused, so that a typo does not
//! silently select another key; `x-` vendor attributes are ignored.
use crate::key_source::KeySourceError;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};
use std::path::PathBuf;
use zeroize::Zeroizing;

/// Characters percent-encoded when a URI is written: RFC 7512's reserved ones.
const ENCODE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'%')
    .add(b';')
    .add(b'?')
    .add(b'&')
    .add(b'=')
    .add(b'#')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'[')
    .add(b']')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// A parsed `pkcs11:` URI naming one private key.
#[derive(Clone, PartialEq, Eq)]
pub struct Pkcs11Uri {
    /// Token label (`token=`).
    pub token: Option<String>,
    /// Token serial number (`serial=`).
    pub serial: Option<String>,
    /// Object label (`object=`).
    pub object: Option<String>,
    /// Object id (`id=`), raw bytes.
    pub id: Option<Vec<u8>>,
    /// The module to load (`module-path=`).
    pub module_path: Option<PathBuf>,
    /// A file holding the PIN (`pin-source=file:PATH` or `pin-source=PATH`).
    pub pin_source: Option<PathBuf>,
    /// The PIN itself (`pin-value=`); never written back by [`std::fmt::Display`].
    pub pin_value: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for Pkcs11Uri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Display leaves the PIN out.
        write!(f, "Pkcs11Uri({self})")
    }
}

/// Whether `entry` is a `pkcs11:` URI (scheme case-insensitive).
pub fn is_uri(entry: &str) -> bool {
    entry
        .get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case("pkcs11:"))
}

fn decode(name: &str, v: &str) -> Result<String, KeySourceError> {
    percent_decode_str(v)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| KeySourceError::UriSyntax {
            reason: format!("the value of {name} is not UTF-8 once percent-decoded"),
        })
}

impl Pkcs11Uri {
    /// Parse a URI.
    pub fn parse(uri: &str) -> Result<Self, KeySourceError> {
        let bad = |reason: String| KeySourceError::UriSyntax { reason };
        if !is_uri(uri) {
            return Err(bad("it does not start with pkcs11:".into()));
        }
        let rest = &uri[7..];
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let mut u = Pkcs11Uri {
            token: None,
            serial: None,
            object: None,
            id: None,
            module_path: None,
            pin_source: None,
            pin_value: None,
        };
        let mut seen = std::collections::BTreeSet::new();
        let attrs = path.split(';').map(|a| (a, false)).chain(
            query
                .into_iter()
                .flat_map(|q| q.split('&'))
                .map(|a| (a, true)),
        );
        for (attr, in_query) in attrs {
            if attr.is_empty() {
                continue;
            }
            let (name, value) = attr
                .split_once('=')
                .ok_or_else(|| bad(format!("attribute {attr:?} has no '='")))?;
            if !seen.insert(name.to_string()) {
                return Err(bad(format!("attribute {name} is given twice")));
            }
            match (name, in_query) {
                ("token", false) => u.token = Some(decode(name, value)?),
                ("serial", false) => u.serial = Some(decode(name, value)?),
                ("object", false) => u.object = Some(decode(name, value)?),
                ("id", false) => u.id = Some(percent_decode_str(value).collect()),
                ("type", false) => {
                    if value != "private" {
                        return Err(bad(format!(
                            "type={value}: a signing key is the private key (type=private)"
                        )));
                    }
                }
                ("manufacturer" | "model" | "library-manufacturer" | "library-description"
                | "library-version" | "slot-description" | "slot-manufacturer", false) => {}
                ("module-path", true) => {
                    u.module_path = Some(PathBuf::from(decode(name, value)?));
                }
                ("pin-source", true) => {
                    let v = decode(name, value)?;
                    let path = v.strip_prefix("file:").unwrap_or(&v);
                    if path.is_empty() || path.contains(':') && !path.starts_with('/') {
                        return Err(bad(format!(
                            "pin-source={v}: only files are read (pin-source=file:/path)"
                        )));
                    }
                    u.pin_source = Some(PathBuf::from(path));
                }
                ("pin-value", true) => {
                    u.pin_value = Some(Zeroizing::new(decode(name, value)?));
                }
                (n, _) if n.starts_with("x-") => {}
                (n, q) => {
                    return Err(bad(format!(
                        "unknown {} attribute {n:?} (read: token, serial, object, id, type; query: module-path, pin-source, pin-value)",
                        if q { "query" } else { "path" }
                    )))
                }
            }
        }
        if u.token.is_none() && u.serial.is_none() {
            return Err(bad("it names no token (token= or serial=)".into()));
        }
        if u.object.is_none() && u.id.is_none() {
            return Err(bad("it names no key (object= or id=)".into()));
        }
        Ok(u)
    }

    /// How the token is named in messages: its label, or its serial number.
    pub fn token_name(&self) -> String {
        match (&self.token, &self.serial) {
            (Some(t), _) => t.clone(),
            (None, Some(s)) => format!("serial {s}"),
            (None, None) => String::new(),
        }
    }

    /// How the key is named in messages: its label, or its id in hex.
    pub fn object_name(&self) -> String {
        match (&self.object, &self.id) {
            (Some(o), _) => o.clone(),
            (None, Some(id)) => format!("id {}", hex_id(id)),
            (None, None) => String::new(),
        }
    }

    /// This URI without `pin-value=` (what may be stored in `ota-repo.json`).
    pub fn without_pin_value(&self) -> Self {
        Pkcs11Uri {
            pin_value: None,
            ..self.clone()
        }
    }
}

/// An object id in hex, for messages.
pub fn hex_id(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

impl std::fmt::Display for Pkcs11Uri {
    /// The URI in canonical order, without `pin-value` (never printed).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let enc = |s: &str| utf8_percent_encode(s, ENCODE).to_string();
        let mut path = Vec::new();
        if let Some(t) = &self.token {
            path.push(format!("token={}", enc(t)));
        }
        if let Some(s) = &self.serial {
            path.push(format!("serial={}", enc(s)));
        }
        if let Some(o) = &self.object {
            path.push(format!("object={}", enc(o)));
        }
        if let Some(id) = &self.id {
            let id: String = id.iter().map(|b| format!("%{b:02x}")).collect();
            path.push(format!("id={id}"));
        }
        write!(f, "pkcs11:{}", path.join(";"))?;
        let mut query = Vec::new();
        if let Some(m) = &self.module_path {
            query.push(format!("module-path={}", enc(&m.to_string_lossy())));
        }
        if let Some(p) = &self.pin_source {
            query.push(format!("pin-source=file:{}", enc(&p.to_string_lossy())));
        }
        if !query.is_empty() {
            write!(f, "?{}", query.join("&"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_parse_and_print_without_the_pin() {
        let u = Pkcs11Uri::parse(
            "pkcs11:token=ota;object=targets%201;id=%01%AB;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234",
        )
        .unwrap();
        assert_eq!(u.token.as_deref(), Some("ota"));
        assert_eq!(u.object.as_deref(), Some("targets 1"));
        assert_eq!(u.id.as_deref(), Some(&[0x01, 0xab][..]));
        assert_eq!(u.pin_value.as_deref().map(String::as_str), Some("1234"));
        let shown = u.to_string();
        assert_eq!(
            shown,
            "pkcs11:token=ota;object=targets%201;id=%01%ab?module-path=/usr/lib/softhsm/libsofthsm2.so"
        );
        assert!(!format!("{u:?}").contains("1234"));
        assert_eq!(Pkcs11Uri::parse(&shown).unwrap(), u.without_pin_value());

        let f = Pkcs11Uri::parse("PKCS11:serial=42;id=%02?pin-source=file:/run/pin").unwrap();
        assert_eq!(f.pin_source, Some(PathBuf::from("/run/pin")));
        assert_eq!(f.token_name(), "serial 42");
        assert_eq!(f.object_name(), "id 02");
    }

    #[test]
    fn bad_uris_are_refused_with_the_reason() {
        for (uri, says) in [
            ("pkcs11:object=x", "no token"),
            ("pkcs11:token=ota", "no key"),
            ("pkcs11:token=ota;object=a;object=b", "twice"),
            ("pkcs11:token=ota;objekt=a", "unknown path attribute"),
            ("pkcs11:token=ota;object=a?pin=1", "unknown query attribute"),
            ("pkcs11:token=ota;object=a;type=public", "type=private"),
            ("pkcs11:token=ota;object", "no '='"),
            ("pkcs11:token=%ff;object=a", "not UTF-8"),
            (
                "pkcs11:token=a;object=b?pin-source=https://x/pin",
                "only files",
            ),
        ] {
            let e = Pkcs11Uri::parse(uri).unwrap_err().to_string();
            assert!(e.contains(says), "{uri}: {e}");
        }
        assert!(Pkcs11Uri::parse("pkcs11:token=a;object=b;x-vendor=1").is_ok());
    }
}
