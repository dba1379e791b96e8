use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One entry of a metadata file's `signatures` list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// Id of the key that made the signature.
    pub keyid: String,
    /// Signature bytes in hex (DER for ecdsa).
    pub sig: String,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
