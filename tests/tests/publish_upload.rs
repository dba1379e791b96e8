//! Publishing by upload: `ota-sign publish --to URL` sends a release signed offline to a real
//! `ota-server --online-keys --publish-token-file`, which verifies it against its own trusted
//! root and published versions and publishes it with a new snapshot and timestamp, or
//! refuses it with a reason that reaches the release engineer, changing nothing.
use ota_formats::crypto::{Ed25519Signer, Signer};
use ota_formats::metadata::{Signed, TargetFile, Targets};
use ota_tests::cli::{bin, client, run, tree, Run};
use ota_tests::tls_server::{FleetCa, ServerProcess};
use ota_tests::RepoHost;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "9b1d7c2e-upload-token-for-tests-5f3a";

/// A release machine's repository (`local`, keys in `keys`) and the server's copy of it
/// (`srv`, online keys in `keys-online`), as after `ota-sign init --online-roles` and a copy.
struct Setup {
    dir: tempfile::TempDir,
    local: PathBuf,
    keys: PathBuf,
    srv: PathBuf,
    online: PathBuf,
    token: PathBuf,
}

fn sign(args: &[&OsStr]) -> Run {
    let r = run("ota-sign", args);
    assert_eq!(r.code, 0, "ota-sign {args:?}: {r:?}");
    r
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

impl Setup {
    fn new(extra_init: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (local, keys) = (dir.path().join("local"), dir.path().join("keys"));
        let mut args: Vec<&OsStr> = vec![
            "init".as_ref(),
            "--repo".as_ref(),
            local.as_os_str(),
            "--keys".as_ref(),
            keys.as_os_str(),
            "--online-roles".as_ref(),
        ];
        args.extend(extra_init.iter().map(|a| OsStr::new(*a)));
        sign(&args);
        let srv = dir.path().join("srv");
        copy_dir(&local, &srv);
        let token = dir.path().join("publish.token");
        std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
        Setup {
            online: dir.path().join("keys-online"),
            dir,
            local,
            keys,
            srv,
            token,
        }
    }

    fn work(&self) -> &Path {
        self.dir.path()
    }

    /// `ota-server --online-keys --publish-token-file` on the server's copy, with `extra`.
    fn server(&self, extra: &[&OsStr]) -> ServerProcess {
        let mut args: Vec<&OsStr> = vec![
            "--online-keys".as_ref(),
            self.online.as_os_str(),
            "--publish-token-file".as_ref(),
            self.token.as_os_str(),
        ];
        args.extend_from_slice(extra);
        ServerProcess::spawn(&self.srv, &args)
    }

    /// `ota-sign add` an image of `data` as gw `version` in the local repository.
    fn add(&self, version: &str, data: &[u8]) {
        let fw = self.work().join(format!("fw-{version}.img"));
        std::fs::write(&fw, data).unwrap();
        sign(&[
            "add".as_ref(),
            "--repo".as_ref(),
            self.local.as_os_str(),
            "--keys".as_ref(),
            self.keys.as_os_str(),
            fw.as_os_str(),
            "--name".as_ref(),
            "gw".as_ref(),
            "--version".as_ref(),
            version.as_ref(),
            "--hardware".as_ref(),
            "board-a".as_ref(),
        ]);
    }

    /// `ota-sign publish --repo LOCAL --to URL --token-file TOKEN ARGS...`.
    fn publish(&self, url: &str, extra: &[&OsStr]) -> Run {
        let mut args: Vec<&OsStr> = vec![
            "publish".as_ref(),
            "--repo".as_ref(),
            self.local.as_os_str(),
            "--to".as_ref(),
            url.as_ref(),
            "--token-file".as_ref(),
            self.token.as_os_str(),
        ];
        args.extend_from_slice(extra);
        run("ota-sign", &args)
    }

    /// The server's repository as devices can see it: every file but the staging area and
    /// the writer lock.
    fn served(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let uploads = self.srv.join(".uploads");
        tree(&self.srv)
            .into_iter()
            .filter(|(p, _)| !p.starts_with(&uploads) && !p.ends_with(".ota-sign.lock"))
            .collect()
    }

    fn staged_uploads(&self) -> usize {
        std::fs::read_dir(self.srv.join(".uploads"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Publish with `--to` and expect a refusal with exit `code` whose error line has each of
    /// `reasons`; the server's repository must be exactly as before and nothing staged.
    fn refused(&self, url: &str, extra: &[&OsStr], code: i32, reasons: &[&str]) -> Run {
        let before = self.served();
        let r = self.publish(url, extra);
        assert_eq!(r.code, code, "{r:?}");
        let error_line = r
            .stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_else(|| panic!("no error line: {r:?}"));
        for reason in reasons {
            assert!(
                error_line.contains(reason),
                "{reason:?} not in {error_line:?}"
            );
        }
        assert!(
            self.served() == before,
            "refused, yet the served repository changed"
        );
        assert_eq!(
            self.staged_uploads(),
            0,
            "refused uploads leave nothing staged"
        );
        r
    }

    /// The newest targets metadata of the local repository.
    fn local_targets(&self) -> Signed<Targets> {
        let md = self.local.join("metadata");
        let newest = (1..)
            .take_while(|v| md.join(format!("{v}.targets.json")).exists())
            .last()
            .unwrap();
        let bytes = std::fs::read(md.join(format!("{newest}.targets.json"))).unwrap();
        Signed::from_bytes_unverified(&bytes).unwrap()
    }

    fn key(&self, file: &str) -> Ed25519Signer {
        Ed25519Signer::from_key_file(&std::fs::read(self.keys.join(file)).unwrap()).unwrap()
    }

    /// Sign `t` with `keys` and write it as the local `N.targets.json`.
    fn write_targets(&self, t: Targets, keys: &[&Ed25519Signer]) {
        let version = t.version;
        let signers: Vec<&dyn Signer> = keys.iter().map(|k| *k as &dyn Signer).collect();
        let bytes = Signed::sign(t, &signers).unwrap().to_bytes().unwrap();
        std::fs::write(
            self.local
                .join("metadata")
                .join(format!("{version}.targets.json")),
            bytes,
        )
        .unwrap();
    }

    /// The next local targets version with a raw target `name` of `data` (file placed).
    fn next_targets_with(&self, name: &str, data: &[u8]) -> Targets {
        let mut t = self.local_targets().signed;
        t.version += 1;
        let entry = TargetFile::from_bytes(data);
        let file = self
            .local
            .join("targets")
            .join(format!("{}.{name}", entry.sha256().unwrap()));
        std::fs::write(file, data).unwrap();
        t.targets.insert(name.to_string(), entry);
        t
    }
}

fn timestamp_version(repo: &Path) -> u64 {
    let bytes = std::fs::read(repo.join("metadata/timestamp.json")).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    v["signed"]["version"].as_u64().unwrap()
}

fn addr_of(server: &ServerProcess) -> String {
    server
        .url()
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .to_string()
}

/// One raw HTTP/1.1 request (plain HTTP); returns the status and the body.
fn http(addr: &str, method: &str, path: &str, headers: &[&str], body: &[u8]) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[test]
fn a_release_published_with_to_reaches_a_device_over_https() {
    let s = Setup::new(&[]);
    let ca = FleetCa::create(s.work());
    let server = s.server(&[
        "--tls-cert".as_ref(),
        ca.server_cert.as_os_str(),
        "--tls-key".as_ref(),
        ca.server_key.as_os_str(),
    ]);
    assert!(server.url().starts_with("https://"), "{}", server.url());
    let state = s.work().join("device");
    let root = s.srv.join("metadata/1.root.json");
    let ca_pem = ca.ca_pem();
    let r = client(
        &state,
        &[
            "init",
            "--root",
            root.to_str().unwrap(),
            "--server",
            &server.url(),
            "--hardware",
            "board-a",
            "--ca-bundle",
            ca_pem.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(client(&state, &["check", "--json"]).code, 100);

    s.add("1.0.0", b"firmware 1.0.0 for board-a, uploaded");
    let r = s.publish(
        &server.url(),
        &["--cacert".as_ref(), ca_pem.as_os_str(), "--json".as_ref()],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let report = r.json();
    assert_eq!(report["targets_version"], 2, "{report}");
    assert_eq!(report["snapshot_version"], 2, "{report}");
    assert_eq!(report["timestamp_version"], 2, "{report}");
    assert_eq!(
        report["payloads_uploaded"].as_array().unwrap().len(),
        1,
        "{report}"
    );
    assert_eq!(s.staged_uploads(), 0);
    // Published like ota-sign publishes: readable by any web server user.
    for e in std::fs::read_dir(s.srv.join("targets")).unwrap() {
        use std::os::unix::fs::PermissionsExt;
        let mode = e.unwrap().metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
    }

    // No CA given: the server's certificate is not trusted, and the error says so.
    s.add("1.0.1", b"firmware 1.0.1");
    let r = s.publish(&server.url(), &[]);
    assert_eq!(r.code, 6, "{r:?}");

    let slot = s.work().join("firmware.img");
    let r = client(
        &state,
        &["update", "--install-to", slot.to_str().unwrap(), "--json"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        std::fs::read(&slot).unwrap(),
        b"firmware 1.0.0 for board-a, uploaded"
    );

    // The next release uploads only its own file; the published one is not sent again.
    let r = s.publish(
        &server.url(),
        &["--cacert".as_ref(), ca_pem.as_os_str(), "--json".as_ref()],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let uploaded: Vec<String> = r.json()["payloads_uploaded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["target"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(uploaded, ["gw-1.0.1.img.zst"]);
    let r = client(
        &state,
        &["update", "--install-to", slot.to_str().unwrap(), "--json"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(std::fs::read(&slot).unwrap(), b"firmware 1.0.1");

    // Publishing the same release again is refused as not newer (exit 5), nothing changes.
    s.refused(
        &server.url(),
        &["--cacert".as_ref(), ca_pem.as_os_str()],
        5,
        &["targets version 3 is not newer than the published version 3"],
    );
}

/// Devices refreshing in a loop while a large release is uploaded and switched in see the
/// old repository or the new one, complete, every time.
#[test]
fn devices_refreshing_during_a_large_publish_see_the_old_or_the_new_release() {
    let s = Setup::new(&[]);
    let server = s.server(&[]);
    let url = server.url();
    // 96 MiB, raw (no compression: the upload and its verification take a while).
    let block: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let big: Vec<u8> = (0..96)
        .flat_map(|i| {
            let mut b = block.clone();
            b[0] = i;
            b
        })
        .collect();
    let t = s.next_targets_with("big.bin", &big);
    let sha = t.targets["big.bin"].sha256().unwrap().to_string();
    s.write_targets(t, &[&s.key("targets-1.pem")]);
    drop(big);
    let payload = s.srv.join("targets").join(format!("{sha}.big.bin"));

    let root = std::fs::read(s.srv.join("metadata/1.root.json")).unwrap();
    // 0: before the publication, 1: during it, 2: after it.
    let phase = Arc::new(AtomicU8::new(0));
    let devices: Vec<_> = (0..2)
        .map(|n| {
            let dir = s.work().join(format!("device-{n}"));
            ota_client::Updater::bootstrap(&dir, &root).unwrap();
            let (url, payload, phase) = (url.clone(), payload.clone(), Arc::clone(&phase));
            std::thread::spawn(move || {
                let config = ota_client::UpdaterConfig::http(
                    &dir,
                    &format!("{url}/metadata/"),
                    &format!("{url}/targets/"),
                )
                .unwrap();
                let mut updater = ota_client::Updater::new(config).unwrap();
                let (mut old, mut new, mut during) = (0u32, 0u32, 0u32);
                let mut after_done = 0;
                while after_done < 20 {
                    let at = phase.load(Ordering::Acquire);
                    match at {
                        1 => during += 1,
                        2 => after_done += 1,
                        _ => {}
                    }
                    if let Err(e) = updater.refresh() {
                        panic!("device {n}: refresh failed during the publication: {e}");
                    }
                    match updater.get_target_info("big.bin").unwrap() {
                        None => old += 1,
                        Some(t) => {
                            // The new metadata is visible only once its file is in place.
                            let len = std::fs::metadata(&payload).map(|m| m.len()).ok();
                            assert_eq!(
                                len,
                                Some(t.length()),
                                "device {n}: listed before its file is complete"
                            );
                            new += 1;
                        }
                    }
                }
                (old, new, during)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    phase.store(1, Ordering::Release);
    let r = s.publish(&url, &[]);
    phase.store(2, Ordering::Release);
    let took = started.elapsed();
    assert_eq!(r.code, 0, "{r:?}");
    for d in devices {
        let (old, new, during) = d.join().unwrap();
        assert!(old > 0 && new > 0, "saw old {old} times, new {new} times");
        assert!(during > 0, "no refresh while the publication ran");
        eprintln!("a device refreshed {during} times during the publication ({took:?}); it saw the old release {old} times and the new one {new} times");
    }
}

#[test]
fn releases_that_do_not_verify_are_refused_and_change_nothing() {
    let s = Setup::new(&[]);
    let server = s.server(&[]);
    let url = server.url();

    // Signed by a key root does not authorise for targets.
    let stranger = Ed25519Signer::generate();
    let t = s.next_targets_with("x.bin", b"x");
    s.write_targets(t, &[&stranger]);
    s.refused(
        &url,
        &[],
        7,
        &[
            "refused the publication",
            "not signed by enough targets keys: 0 valid signature(s)",
            "threshold is 1",
        ],
    );
    std::fs::remove_file(s.local.join("metadata/2.targets.json")).unwrap();

    // A target file whose bytes are not the signed ones (same length).
    s.add("1.0.0", b"firmware 1.0.0 for board-a");
    let t = s.local_targets().signed;
    let (name, entry) = t.targets.iter().next().unwrap();
    let file = s
        .local
        .join("targets")
        .join(format!("{}.{name}", entry.sha256().unwrap()));
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    s.refused(
        &url,
        &[],
        7,
        &[
            "does not match its signed length and hashes",
            "sha256 mismatch",
        ],
    );
    bytes[last] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();

    // Now it goes through; then a rolled-back version is refused.
    assert_eq!(s.publish(&url, &[]).code, 0);
    s.add("1.1.0", b"firmware 1.1.0 for board-a");
    assert_eq!(s.publish(&url, &[]).code, 0);
    assert_eq!(timestamp_version(&s.srv), 3);
    std::fs::remove_file(s.local.join("metadata/3.targets.json")).unwrap();
    let r = s.refused(
        &url,
        &[],
        5,
        &["targets version 2 is not newer than the published version 3"],
    );
    assert!(
        r.stderr.contains("hint: sign a new targets version"),
        "{r:?}"
    );
}

#[test]
fn a_targets_role_with_threshold_two_refuses_a_release_signed_by_one_key() {
    let s = Setup::new(&["--threshold", "targets=2"]);
    let server = s.server(&[]);
    let t = s.next_targets_with("x.bin", b"one key only");
    s.write_targets(t.clone(), &[&s.key("targets-1.pem")]);
    s.refused(
        &server.url(),
        &[],
        7,
        &["1 valid signature(s) by keys authorised for targets, threshold is 2"],
    );
    // Both keys: published, and a device would see it.
    s.write_targets(t, &[&s.key("targets-1.pem"), &s.key("targets-2.pem")]);
    let r = s.publish(&server.url(), &["--json".as_ref()]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["targets_version"], 2);
}

#[test]
fn a_wrong_or_missing_token_is_refused_before_anything_is_staged() {
    let s = Setup::new(&[]);
    let server = s.server(&[]);
    let url = server.url();
    s.add("1.0.0", b"firmware");
    std::fs::write(&s.token, "not-the-token-the-server-has\n").unwrap();
    s.refused(
        &url,
        &[],
        7,
        &["refused the publication: the publish token is wrong"],
    );

    // No token at all: ota-sign refuses to start (exit 2) ...
    let r = Command::new(bin("ota-sign"))
        .args(["publish", "--repo"])
        .arg(&s.local)
        .args(["--to", &url])
        .env_remove("OTA_PUBLISH_TOKEN")
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2), "{r:?}");
    assert!(String::from_utf8_lossy(&r.stderr).contains("no publish token"));
    // ... and the server answers a request without one 401, staging nothing.
    let addr = addr_of(&server);
    let (status, body) = http(&addr, "POST", "/api/v1/uploads", &[], b"");
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("no publish token"), "{body}");
    let (status, _) = http(
        &addr,
        "POST",
        "/api/v1/uploads",
        &["Authorization: Bearer wrong-wrong-wrong"],
        b"",
    );
    assert_eq!(status, 401);
    assert_eq!(s.staged_uploads(), 0);

    // With the token from the environment it is published.
    let r = Command::new(bin("ota-sign"))
        .args(["publish", "--repo"])
        .arg(&s.local)
        .args(["--to", &url])
        .env("OTA_PUBLISH_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(0), "{r:?}");
}

#[test]
fn an_upload_over_the_size_limit_is_refused_and_staging_is_never_served() {
    let s = Setup::new(&[]);
    // What an earlier run left staged is removed at start-up.
    let left = s
        .srv
        .join(".uploads/00000000000000000000000000000000/targets");
    std::fs::create_dir_all(&left).unwrap();
    std::fs::write(left.join("half.bin"), b"half an upload").unwrap();
    let server = s.server(&["--max-upload-size".as_ref(), "100KiB".as_ref()]);
    assert_eq!(
        s.staged_uploads(),
        0,
        "stale uploads are removed at start-up"
    );
    let url = server.url();
    let addr = addr_of(&server);

    // An open upload's staged files are not reachable through the file routes.
    let auth = format!("Authorization: Bearer {TOKEN}");
    let (status, body) = http(&addr, "POST", "/api/v1/uploads", &[&auth], b"");
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let staged = b"staged secret metadata";
    let (status, body) = http(
        &addr,
        "PUT",
        &format!("/api/v1/uploads/{id}/metadata/9.targets.json"),
        &[&auth],
        staged,
    );
    assert_eq!(status, 201, "{body}");
    assert!(s
        .srv
        .join(format!(".uploads/{id}/metadata/9.targets.json"))
        .is_file());
    for path in [
        format!("/.uploads/{id}/metadata/9.targets.json"),
        format!("/metadata/../.uploads/{id}/metadata/9.targets.json"),
        format!("/targets/../.uploads/{id}/metadata/9.targets.json"),
        format!("/targets/%2e%2e/.uploads/{id}/metadata/9.targets.json"),
        format!("/metadata/..%2F.uploads%2F{id}%2Fmetadata%2F9.targets.json"),
    ] {
        let (status, body) = http(&addr, "GET", &path, &[], b"");
        assert!(status == 400 || status == 404, "{path}: {status}");
        assert!(
            !body.contains("staged secret"),
            "{path} served a staged file"
        );
    }
    // Bad metadata: refused when the server checks it; the upload is gone.
    let (status, body) = http(
        &addr,
        "GET",
        &format!("/api/v1/uploads/{id}/needed"),
        &[&auth],
        b"",
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(s.staged_uploads(), 0);
    let (status, body) = http(
        &addr,
        "GET",
        &format!("/api/v1/uploads/{id}"),
        &[&auth],
        b"",
    );
    assert_eq!(status, 410, "the refusal is kept: {body}");

    // 300 kB of incompressible firmware is over the 100 KiB limit.
    let mut data = Vec::new();
    let mut x: u64 = 1;
    while data.len() < 300_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    s.add("1.0.0", &data);
    s.refused(
        &url,
        &[],
        7,
        &["larger than the server's limit of 102400 bytes (--max-upload-size)"],
    );
}

#[test]
fn uploads_need_the_online_keys() {
    let s = Setup::new(&[]);
    let out = Command::new(bin("ota-server"))
        .args(["--listen", "127.0.0.1:0", "--repo"])
        .arg(&s.srv)
        .arg("--publish-token-file")
        .arg(&s.token)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--publish-token-file needs --online-keys"),
        "{stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");
    assert!(!s.srv.join(".uploads").exists());

    // A token too short to be a secret is refused as well.
    std::fs::write(&s.token, "short\n").unwrap();
    let out = Command::new(bin("ota-server"))
        .args(["--listen", "127.0.0.1:0", "--repo"])
        .arg(&s.srv)
        .arg("--online-keys")
        .arg(&s.online)
        .arg("--publish-token-file")
        .arg(&s.token)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("at least 16 are needed"), "{stderr}");
}
