//! A repository made by `ota-sign` under `umask 077` is servable by a web server running as
//! another user: every published file is 0644 and every published directory 0755, whatever
//! the umask, so a copy made with `cp -a` (which keeps modes) into a directory that nginx
//! serves with its worker running as `nobody` answers 200, and a device updates from it.
//! Before, targets (0600 temp files) and the `metadata/`, `targets/` and slip directories
//! (created under the umask) were 403 for nginx. Private keys stay 0600 in a 0700 directory.
use ota_formats::envelope::RecipientSecretKey;
use ota_tests::cli::{bin, Run};
use ota_tests::noise::noise;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `ota-sign ARGS` run under `umask 077`, the strictest a release engineer may have.
fn sign<S: AsRef<OsStr>>(args: &[S]) -> Run {
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#"umask 077; exec "$0" "$@""#)
        .arg(bin("ota-sign"))
        .args(args)
        .output()
        .unwrap();
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_eq!(r.code, 0, "ota-sign {:?}: {r:?}", os_args(args));
    r
}

fn os_args<S: AsRef<OsStr>>(args: &[S]) -> Vec<String> {
    args.iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect()
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Every path under `dir` (not `dir` itself), directories included.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Every file of the repository 0644, every directory (the repository's own too) 0755.
fn assert_published_modes(repo: &Path) {
    let mut wrong = Vec::new();
    if mode(repo) != 0o755 {
        wrong.push(format!("{} {:o}", repo.display(), mode(repo)));
    }
    for p in walk(repo) {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        let want = if meta.is_dir() {
            0o755
        } else if meta.is_file() {
            0o644
        } else {
            wrong.push(format!("{} is neither a file nor a directory", p.display()));
            continue;
        };
        if mode(&p) != want {
            wrong.push(format!(
                "{} is {:o}, expected {want:o}",
                p.display(),
                mode(&p)
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "published with wrong modes:\n{}",
        wrong.join("\n")
    );
}

/// nginx with a master process (as root when the test runs as root) and its worker running
/// as an unprivileged user, serving `root` on 127.0.0.1. Stopped on drop.
struct UserNginx {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl UserNginx {
    fn start(root: &Path) -> Option<Self> {
        let Some(bin) = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
        else {
            assert!(
                std::env::var_os("CI").is_none(),
                "nginx is not installed under CI: .ci/run must apt-get install nginx"
            );
            eprintln!(
                "SKIPPED: nginx is not installed (apt-get install nginx); serving NOT checked"
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // `user` only takes effect when the master runs as root (as in CI). Otherwise the
        // worker runs as this user, who can read 0600 files: only the mode checks then
        // prove the repository is readable by others.
        let as_root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let user = if !as_root {
            eprintln!("note: not root, so nginx's worker runs as this user");
            String::new()
        } else if std::fs::read_to_string("/etc/group").is_ok_and(|g| g.contains("\nnogroup:")) {
            "user nobody nogroup;\n".to_string()
        } else {
            "user nobody;\n".to_string()
        };
        let d = dir.path().display();
        let conf = format!(
            "{user}daemon off;\nmaster_process on;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log;\nevents {{ worker_connections 64; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n\
               proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
               uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               types {{ application/json json; }}\n  default_type application/octet-stream;\n\
               server {{\n    listen 127.0.0.1:{port};\n    root {};\n  }}\n}}\n",
            root.display()
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
        let n = UserNginx { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not start on port {port}: {}",
                n.error_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(n)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// The HTTP status of `GET path`.
    fn status(&self, path: &str) -> u16 {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).unwrap();
        String::from_utf8_lossy(&head[9..12]).parse().unwrap()
    }
}

impl Drop for UserNginx {
    fn drop(&mut self) {
        // SIGTERM to the master we started, so it stops its worker too (SIGKILL would leave
        // the worker behind).
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Replace `dest` with a `cp -a` copy of `repo`.
fn copy_repo(repo: &Path, dest: &Path) {
    if dest.exists() {
        std::fs::remove_dir_all(dest).unwrap();
    }
    let st = Command::new("cp")
        .arg("-a")
        .arg(repo)
        .arg(dest)
        .status()
        .unwrap();
    assert!(st.success(), "cp -a");
}

struct Device {
    state: PathBuf,
    slot: PathBuf,
}

impl Device {
    fn client(&self, args: &[&str]) -> Run {
        ota_tests::cli::client(&self.state, args)
    }

    fn update(&self, nginx: &UserNginx) -> serde_json::Value {
        let r = self.client(&[
            "update",
            "--install-to",
            self.slot.to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(r.code, 0, "{r:?}\nnginx error log:\n{}", nginx.error_log());
        r.json()
    }
}

#[test]
fn a_repository_signed_under_umask_077_is_served_by_nginx_as_another_user() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, keys, work) = (
        tmp.path().join("repo"),
        tmp.path().join("keys"),
        tmp.path().join("work"),
    );
    std::fs::create_dir(&work).unwrap();
    let p = |p: &Path| p.display().to_string();
    let image = |name: &str, bytes: &[u8]| {
        let f = work.join(name);
        std::fs::write(&f, bytes).unwrap();
        p(&f)
    };
    let add = |file: &str, name: &str, version: &str, hw: &str, extra: &[&str]| {
        let mut a: Vec<String> = [
            "add",
            "--repo",
            &p(&repo),
            "--keys",
            &p(&keys),
            file,
            "--name",
            name,
            "--version",
            version,
            "--hardware",
            hw,
            "--json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        sign(&a).json()
    };

    sign(&["init", "--repo", &p(&repo), "--keys", &p(&keys)]);
    let v1 = noise(1, 300 * 1024);
    let mut v2 = v1.clone();
    v2[5000..5064].copy_from_slice(&noise(2, 64));
    add(&image("v1.img", &v1), "gateway-fw", "1.0.0", "board-a", &[]);

    // An encrypted release with per-device slips (another hardware, not for our device).
    let lab = RecipientSecretKey::generate();
    let r = p(&repo);
    sign(&[
        "recipients",
        "group-create",
        "--repo",
        &r,
        "--keys",
        &p(&keys),
        "board-z",
    ]);
    let lab_pub = lab.public_key().to_text();
    sign(&[
        "recipients",
        "add",
        "--repo",
        &r,
        "lab-1",
        &lab_pub,
        "--group",
        "board-z",
    ]);
    add(
        &image("z.img", &noise(9, 50_000)),
        "z-fw",
        "1.0.0",
        "board-z",
        &["--encrypt-to", "group:board-z,device:lab-1"],
    );
    // A staged target published later: ota-staged.json is written and removed under the umask.
    add(
        &image("z2.img", &noise(10, 50_000)),
        "z-fw",
        "1.1.0",
        "board-z",
        &["--no-publish"],
    );
    sign(&["publish", "--repo", &r, "--keys", &p(&keys)]);

    let slips = repo.join("targets/z-fw-1.0.0.img.zst.slips");
    assert!(slips.is_dir(), "the device slips are published");
    assert_published_modes(&repo);
    // Keys stay private.
    assert_eq!(mode(&keys), 0o700, "keys directory");
    for k in walk(&keys) {
        assert_eq!(mode(&k), 0o600, "{}", k.display());
    }

    // Served from a copy (cp -a keeps the modes) in a directory every user may enter.
    let www = tempfile::Builder::new()
        .prefix("ota-www-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(www.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for a in www.path().ancestors() {
        assert!(
            mode(a) & 0o001 != 0,
            "{} is not traversable by the web server user",
            a.display()
        );
    }
    let served = www.path().join("repo");
    copy_repo(&repo, &served);
    let Some(nginx) = UserNginx::start(&served) else {
        return;
    };

    // Every published file answers 200 (403 before: unreadable files or directories).
    let denied: Vec<String> = walk(&served)
        .into_iter()
        .filter(|f| f.is_file())
        .map(|f| format!("/{}", f.strip_prefix(&served).unwrap().display()))
        .filter(|url| nginx.status(url) != 200)
        .collect();
    assert!(
        denied.is_empty(),
        "not served: {denied:?}\nnginx error log:\n{}",
        nginx.error_log()
    );

    // A device installs 1.0.0, then updates to 1.1.0 through a patch, all through nginx.
    let dev_dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dev_dir.path().join("slot")).unwrap();
    let dev = Device {
        state: dev_dir.path().join("state"),
        slot: dev_dir.path().join("slot/firmware.img"),
    };
    let root = p(&repo.join("metadata/1.root.json"));
    let r = dev.client(&[
        "init",
        "--root",
        &root,
        "--server",
        &nginx.url(),
        "--hardware",
        "board-a",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let out = dev.update(&nginx);
    assert_eq!(out["result"], "installed", "{out}");
    assert_eq!(std::fs::read(&dev.slot).unwrap(), v1);

    let added = add(
        &image("v2.img", &v2),
        "gateway-fw",
        "1.1.0",
        "board-a",
        &["--delta-from-previous", "1"],
    );
    assert_eq!(added["deltas"][0]["published"], true, "{added}");
    assert_published_modes(&repo);
    copy_repo(&repo, &served);
    let out = dev.update(&nginx);
    assert_eq!(out["result"], "installed", "{out}");
    assert_eq!(out["delta_used"], true, "{out}");
    assert_eq!(std::fs::read(&dev.slot).unwrap(), v2);
}
