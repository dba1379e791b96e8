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

/// The first lines of clap's rendering of `e` (before the usage), as one line without the
/// `error: ` prefix.
fn clap_message(e: &clap::Error) -> String {
    let detail = e.render().to_string();
    let message = detail
        .lines()
        .take_while(|l| !l.trim().is_empty() && !l.starts_with("Usage:"))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    match message.strip_prefix("error: ") {
        Some(m) => m.to_string(),
        None if message.is_empty() => "invalid command line".to_string(),
        None => message,
    }
}

/// Report a command line that clap refused (or `--help`/`--version`, exit 0) and return the
/// exit code. When the words include `--json`, a script is reading stdout: it gets the JSON
/// error object (kind `usage_kind`, exit 2) too. `tool` names the program in the hint.
pub fn clap_failure(e: &clap::Error, tool: &str, usage_kind: &str) -> u8 {
    let code = u8::try_from(e.exit_code()).unwrap_or(2);
    let wants_json = std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json");
    if code != 0 && wants_json {
        let hint = format!("see `{tool} --help` and `{tool} COMMAND --help` for the arguments");
        print_error_json(usage_kind, &clap_message(e), &hint, code);
    }
    // clap's own rendering (usage, help or version) on its usual stream.
    let _ = e.print();
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_message_is_one_line_without_prefix() {
        let cmd = clap::Command::new("t").arg(clap::Arg::new("x").long("x").required(true));
        let e = cmd.try_get_matches_from(["t"]).unwrap_err();
        let m = clap_message(&e);
        assert!(m.contains("--x"), "{m}");
        assert!(!m.starts_with("error:") && !m.contains('\n'), "{m}");
    }
}
