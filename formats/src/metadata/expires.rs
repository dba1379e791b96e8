//! `expires` timestamps: written as `YYYY-MM-DDTHH:MM:SSZ`, read as any RFC 3339 UTC time.
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serializer};

pub(crate) fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let s = String::deserialize(d)?;
    if !s.ends_with('Z') {
        return Err(serde::de::Error::custom(format!(
            "expires {s:?} is not a UTC time ending in Z"
        )));
    }
    DateTime::parse_from_rfc3339(&s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| serde::de::Error::custom(format!("expires {s:?}: {e}")))
}
