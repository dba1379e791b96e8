//! nginx from Debian serving a repository directory as plain static files on 127.0.0.1: the
//! "any CDN or static web server" deployment. Started per test with its own config and temp
//! paths; stopped on drop. [`Nginx::start_tls`] serves HTTPS, optionally requiring client
//! certificates (mutual TLS).
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nginx.
pub struct Nginx {
    child: Child,
    port: u16,
    scheme: &'static str,
    _dir: tempfile::TempDir,
}

/// HTTPS settings of [`Nginx::start_tls`].
#[derive(Debug, Clone, Copy)]
pub struct Tls<'a> {
    /// PEM server certificate (chain).
    pub cert: &'a Path,
    /// Its PEM private key.
    pub key: &'a Path,
    /// With a CA file: mutual TLS, every request must carry a client certificate issued by
    /// it (`ssl_verify_client on`; nginx answers 400 otherwise).
    pub client_ca: Option<&'a Path>,
    /// `ssl_protocols` (e.g. `"TLSv1.2"`); nginx's default when `None`.
    pub protocols: Option<&'a str>,
}

fn nginx_binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

impl Nginx {
    /// Serve `repo` at `http://127.0.0.1:PORT/`. `None` (with a message) when nginx is not
    /// installed outside CI; under CI a missing nginx is a failure.
    pub fn start(repo: &Path) -> Option<Self> {
        Self::launch(repo, None)
    }

    /// Serve `repo` at `https://127.0.0.1:PORT/` with `tls`. `None` like [`Nginx::start`].
    pub fn start_tls(repo: &Path, tls: &Tls<'_>) -> Option<Self> {
        Self::launch(repo, Some(tls))
    }

    fn launch(repo: &Path, tls: Option<&Tls<'_>>) -> Option<Self> {
        let Some(bin) = nginx_binary() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "nginx is not installed under CI: .ci/run must apt-get install nginx"
            );
            eprintln!("SKIPPED: nginx is not installed (apt-get install nginx)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        // Reserve a free port, release it, and let nginx bind it (tiny race, fine for tests).
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.path().display();
        let (listen, ssl) = match tls {
            None => (String::new(), String::new()),
            Some(t) => {
                let mut ssl = format!(
                    "    ssl_certificate {};\n    ssl_certificate_key {};\n",
                    t.cert.display(),
                    t.key.display()
                );
                if let Some(ca) = t.client_ca {
                    ssl.push_str(&format!(
                        "    ssl_client_certificate {};\n    ssl_verify_client on;\n",
                        ca.display()
                    ));
                }
                if let Some(p) = t.protocols {
                    ssl.push_str(&format!("    ssl_protocols {p};\n"));
                }
                (" ssl".to_string(), ssl)
            }
        };
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log;\nevents {{ worker_connections 64; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n\
               proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
               uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               types {{ application/json json; }}\n  default_type application/octet-stream;\n\
               server {{\n    listen 127.0.0.1:{port}{listen};\n    root {};\n{ssl}  }}\n}}\n",
            repo.display()
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not start on port {port} (see {d}/error.log)"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Nginx {
            child,
            port,
            scheme: if tls.is_some() { "https" } else { "http" },
            _dir: dir,
        })
    }
}

impl Nginx {
    /// The access log so far: one line per finished request in nginx's `combined` format
    /// (`... "GET /path HTTP/1.1" STATUS BYTES ...`), e.g. to see a `206` for a range.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("access.log")).unwrap_or_default()
    }
}

impl crate::RepoHost for Nginx {
    fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
