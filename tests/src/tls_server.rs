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

/// A real `ota-server` process on 127.0.0.1 (an ephemeral port), killed on drop.
pub struct ServerProcess {
    child: Child,
    url: String,
}

impl ServerProcess {
    /// Start `ota-server --listen 127.0.0.1:0 --repo REPO ARGS...` and read its start-up
    /// line for the URL.
    pub fn spawn(repo: &Path, args: &[&std::ffi::OsStr]) -> Self {
        let mut child = Command::new(bin("ota-server"))
            .arg("--repo")
            .arg(repo)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
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
        ServerProcess { child, url }
    }
}

impl crate::RepoHost for ServerProcess {
    fn url(&self) -> String {
        self.url.clone()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ota-server` over TLS, killed on drop.
pub struct TlsServer(ServerProcess);

impl TlsServer {
    /// Serve `repo` over HTTPS with `ca`'s server certificate; with `mutual`, every route
    /// requires a device certificate from `ca` that its CRL does not revoke.
    pub fn start(repo: &Path, ca: &FleetCa, mutual: bool) -> Self {
        let ca_pem = ca.ca_pem();
        let crl = ca.dir.join("crl.pem");
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "--tls-cert".as_ref(),
            ca.server_cert.as_os_str(),
            "--tls-key".as_ref(),
            ca.server_key.as_os_str(),
        ];
        if mutual {
            args.extend(["--client-ca".as_ref(), ca_pem.as_os_str()]);
            args.extend(["--crl".as_ref(), crl.as_os_str()]);
        }
        let server = ServerProcess::spawn(repo, &args);
        assert!(
            server.url.starts_with("https://127.0.0.1:"),
            "{}",
            server.url
        );
        TlsServer(server)
    }
}

impl crate::RepoHost for TlsServer {
    fn url(&self) -> String {
        self.0.url.clone()
    }
}
