//! What a `--json` command prints on stdout when it fails:
//!
//! ```json
//! {"error": {"kind": "network", "message": "...", "hint": "...", "exit_code": 3}}
//! ```
//!
//! `kind` is a stable, lower-case word per error class of the tool (documented with its exit
//! codes); `message` and `hint` are the same lines the tool prints for a person.
//!
//! ```
//! let v = ota_cli::report::error_json("keys", "no key for role targets", "run ota-sign init", 3);
//! assert_eq!(v["error"]["exit_code"], 3);
//! assert_eq!(v["error"]["kind"], "keys");
//! ```
use serde_json::{json, Value};

/// The JSON error object.
pub fn error_json(kind: &str, message: &str, hint: &str, exit_code: u8) -> Value {
    json!({
        "error": {
            "kind": kind,
            "message": message,
            "hint": hint,
            "exit_code": exit_code,
        }
    })
}

/// Print the JSON error object on stdout, one line.
pub fn print_error_json(kind: &str, message: &str, hint: &str, exit_code: u8) {
    println!("{}", error_json(kind, message, hint, exit_code));
}
