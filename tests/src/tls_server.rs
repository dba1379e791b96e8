//! A real `ota-server` process serving HTTPS, with a fleet CA and a server certificate made
//! by `ota-ca` (the toolkit's own CA tool), for end-to-end and interoperability tests.
use crate::cli::{bin, run};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A fleet CA directory (`ota-ca init`) and a server certificate for 127.0.0.1.
pub struct FleetCa {
    /// The CA directory (`ca.pem`, `crl.pem`, ...).
    pub dir: PathBuf,
    /// The server certificate (PEM).
    pub server_cert: PathBuf,
    /// The server key (PEM, 0600).
    pub server_key: PathBuf,
}

impl FleetCa {
    /// Make a CA under `work/ca` and a server certificate for `localhost` / `127.0.0.1`.
    pub fn create(work: &Path) -> Self {
        let dir = work.join("ca");
        let ca = FleetCa {
            server_cert: work.join("server.pem"),
            server_key: work.join("server.key"),
            dir,
        };
        ca.run(&["init", "--name", "Test Fleet CA"]);
        ca.run(&[
            "issue-server",
            "--name",
            "localhost",
            "--san",
            "IP:127.0.0.1",
            "--out-cert",
            ca.server_cert.to_str().unwrap(),
            "--out-key",
            ca.server_key.to_str().unwrap(),
        ]);
        ca
    }

    /// The CA certificate, the bundle devices and other clients trust.
    pub fn ca_pem(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Run `ota-ca COMMAND --dir DIR ARGS...` and assert it succeeded.
    pub fn run(&self, args: &[&str]) -> crate::cli::Run {
        let mut all: Vec<&str> = vec![args[0], "--dir", self.dir.to_str().unwrap()];
        all.extend(&args[1..]);
        let r = run("ota-ca", &all);
        assert_eq!(r.code, 0, "ota-ca {args:?}: {r:?}");
        r
    }
}

/// `ota-server` over TLS, killed on drop.
pub struct TlsServer {
    child: Child,
    url: String,
}

impl TlsServer {
    /// Serve `repo` over HTTPS with `ca`'s server certificate; with `mutual`, every route
    /// requires a device certificate from `ca` that its CRL does not revoke.
    pub fn start(repo: &Path, ca: &FleetCa, mutual: bool) -> Self {
        let mut cmd = Command::new(bin("ota-server"));
        cmd.arg("--repo")
            .arg(repo)
            .args(["--listen", "127.0.0.1:0", "--tls-cert"])
            .arg(&ca.server_cert)
            .arg("--tls-key")
            .arg(&ca.server_key);
        if mutual {
            cmd.arg("--client-ca")
                .arg(ca.ca_pem())
                .arg("--crl")
                .arg(ca.dir.join("crl.pem"));
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected start-up line {line:?}"))
            .to_string();
        assert!(url.starts_with("https://127.0.0.1:"), "{url}");
        TlsServer { child, url }
    }
}

impl crate::RepoHost for TlsServer {
    fn url(&self) -> String {
        self.url.clone()
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
