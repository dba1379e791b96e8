//! The multi-party offline signing ceremony (issue 14), end to end with the real binaries:
//! `ota-sign request` writes the unsigned next version with a summary, each key holder runs
//! `ota-sign sign-request` with only their own key, `ota-sign combine` publishes once the
//! threshold is met (a 3-of-5 targets role; a root that needs the old and the new root's
//! thresholds), a device installs the release, and the hash-chained audit log in
//! `REPO/audit/log.jsonl` verifies until someone edits it. Every refusal (below threshold,
//! a signature over other content or for another request, a truncated or duplicated file, a
//! key that may not sign, a damaged request, a stale request) leaves `metadata/` and
//! `targets/` byte for byte as they were.
use ota_formats::crypto::{Ed25519Signer, Signer};
use ota_tests::cli::{client, run, tree, Run};
use ota_tests::server::TestServer;
use ota_tests::RepoHost;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A repository made by `ota-sign init` with extra arguments, its keys, and a work dir.
struct Ceremony {
    _dir: tempfile::TempDir,
    repo: PathBuf,
    keys: PathBuf,
    work: PathBuf,
}

fn sign_cmd(args: &[&str]) -> Run {
    run("ota-sign", args)
}

fn ok(args: &[&str]) -> Run {
    let r = sign_cmd(args);
    assert_eq!(r.code, 0, "ota-sign {args:?}: {r:?}");
    r
}

fn image(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i / 5) as u8).wrapping_mul(17).wrapping_add(seed))
        .collect()
}

impl Ceremony {
    fn init(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let c = Ceremony {
            repo: dir.path().join("repo"),
            keys: dir.path().join("keys"),
            work: dir.path().join("work"),
            _dir: dir,
        };
        std::fs::create_dir(&c.work).unwrap();
        let mut args = vec!["init", "--repo", c.s(&c.repo), "--keys", c.s(&c.keys)];
        args.extend(extra);
        ok(&args);
        c
    }

    fn s<'a>(&self, p: &'a Path) -> &'a str {
        p.to_str().unwrap()
    }

    fn w(&self, name: &str) -> PathBuf {
        self.work.join(name)
    }

    fn key(&self, name: &str) -> PathBuf {
        self.keys.join(name)
    }

    /// What clients can see: every file under metadata/ and targets/.
    fn published(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut t = tree(&self.repo.join("metadata"));
        t.extend(tree(&self.repo.join("targets")));
        t
    }

    fn request(&self, role: &str, out: &str, extra: &[&str]) -> Run {
        let out = self.w(out);
        let mut args = vec![
            "request",
            "--repo",
            self.s(&self.repo),
            "--role",
            role,
            "--out",
            out.to_str().unwrap(),
            "--json",
        ];
        args.extend(extra);
        sign_cmd(&args)
    }

    /// `sign-request REQUEST --key KEY --signer-name NAME --out OUT --json`.
    fn sign(&self, request: &str, key: &Path, name: &str, out: &str) -> Run {
        let (req, out) = (self.w(request), self.w(out));
        sign_cmd(&[
            "sign-request",
            req.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--signer-name",
            name,
            "--out",
            out.to_str().unwrap(),
            "--json",
        ])
    }

    fn combine(&self, request: &str, sigs: &[&str]) -> Run {
        let files: Vec<String> = std::iter::once(request)
            .chain(sigs.iter().copied())
            .map(|f| self.w(f).to_str().unwrap().to_string())
            .collect();
        let mut args = vec![
            "combine",
            "--repo",
            self.s(&self.repo),
            "--keys",
            self.s(&self.keys),
            "--json",
        ];
        args.extend(files.iter().map(String::as_str));
        sign_cmd(&args)
    }

    fn audit(&self, sub: &str) -> Run {
        sign_cmd(&["audit", sub, "--repo", self.s(&self.repo), "--json"])
    }

    fn read_json(&self, name: &str) -> Value {
        serde_json::from_slice(&std::fs::read(self.w(name)).unwrap()).unwrap()
    }

    fn write_json(&self, name: &str, v: &Value) {
        std::fs::write(self.w(name), serde_json::to_vec_pretty(v).unwrap()).unwrap();
    }

    fn status(&self) -> Value {
        let r = sign_cmd(&["status", "--repo", self.s(&self.repo), "--json"]);
        assert!(r.code == 0 || r.code == 10, "{r:?}");
        r.json()
    }
}

/// A refusal: the exit code, the JSON error's kind, a message fragment, and nothing that
/// clients see changed.
fn assert_refused(
    c: &Ceremony,
    r: &Run,
    code: i32,
    kind: &str,
    says: &str,
    before: &BTreeMap<PathBuf, Vec<u8>>,
) {
    assert_eq!(r.code, code, "{r:?}");
    let err = &r.json()["error"];
    assert_eq!(err["kind"], kind, "{r:?}");
    assert_eq!(err["exit_code"], code, "{r:?}");
    let msg = err["message"].as_str().unwrap();
    assert!(msg.contains(says), "expected {says:?} in {msg:?}");
    assert!(r.stderr.contains("hint: "), "{r:?}");
    assert!(
        c.published() == *before,
        "a refused command changed metadata/ or targets/"
    );
}

/// A detached signature file made by `key` over the request's content, as an attacker or a
/// confused holder of another role's key would make it.
fn forged_signature(request: &Value, key: &Ed25519Signer) -> Value {
    let msg = ota_formats::cjson::to_vec(&request["signed"]).unwrap();
    let sig = key.sign(&msg).unwrap();
    json!({
        "format": "ota-signature/1",
        "role": request["role"],
        "version": request["version"],
        "request_sha256": request["request_sha256"],
        "signed_sha256": request["signed_sha256"],
        "keyid": sig.keyid,
        "sig": sig.sig,
        "signer": "mallory",
        "time": "2030-01-01T00:00:00Z",
    })
}

/// `request` with its `request_sha256` recomputed, as someone who edits a request and
/// covers the edit would do.
fn resealed(mut request: Value) -> Value {
    request.as_object_mut().unwrap().remove("request_sha256");
    let hash = ota_formats::hash::sha256_hex(&ota_formats::cjson::to_vec(&request).unwrap());
    request["request_sha256"] = json!(hash);
    request
}

fn load_pem(path: &Path) -> Ed25519Signer {
    Ed25519Signer::from_key_file(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn three_of_five_targets_keys_two_are_not_enough_the_third_publishes() {
    let c = Ceremony::init(&["--key-count", "targets=5", "--threshold", "targets=3"]);
    // Nothing staged: nothing to sign, and no audit entry.
    let r = c.request("targets", "none.json", &[]);
    assert_refused(&c, &r, 2, "input", "nothing to sign", &c.published());
    assert!(!c.w("none.json").exists());

    let fw = image(7, 300_000);
    std::fs::write(c.w("fw.img"), &fw).unwrap();
    ok(&[
        "add",
        "--repo",
        c.s(&c.repo),
        "--no-publish",
        c.s(&c.w("fw.img")),
        "--name",
        "gateway",
        "--version",
        "2.0.0",
        "--hardware",
        "gw-a",
    ]);
    let staged: Value =
        serde_json::from_slice(&std::fs::read(c.repo.join("ota-staged.json")).unwrap()).unwrap();
    let entry = &staged["targets"]["gateway-2.0.0.img.zst"];
    let (sha, len) = (
        entry["hashes"]["sha256"].as_str().unwrap().to_string(),
        entry["length"].as_u64().unwrap(),
    );

    // The request: version 2, 3 of the 5 targets keys, a summary naming the target, its
    // length, hash and image version.
    let r = c.request("targets", "req.json", &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let rep = r.json();
    assert_eq!(rep["version"], 2);
    assert_eq!(rep["base_version"], 1);
    let t = &rep["thresholds"][0];
    assert_eq!(
        (t["name"].as_str(), t["threshold"].as_u64()),
        (Some("targets"), Some(3))
    );
    assert_eq!(t["keyids"].as_array().unwrap().len(), 5);
    let summary = rep["summary"].as_array().unwrap();
    let added = summary
        .iter()
        .filter_map(Value::as_str)
        .find(|l| l.starts_with("+ target gateway-2.0.0.img.zst"))
        .unwrap_or_else(|| panic!("no added target in {summary:?}"));
    assert!(
        added.contains(&format!("{len} bytes, sha256 {sha}")),
        "{added}"
    );
    assert!(added.contains("image gateway 2.0.0"), "{added}");
    let added = &rep["changes"]["targets"]["added"][0];
    assert_eq!(added["hashes"]["sha256"], sha.as_str());
    let request = c.read_json("req.json");
    assert_eq!(request["signed"]["version"], 2);
    assert_eq!(request["request_sha256"], rep["request_sha256"]);

    // Two holders sign, each with only their own key; sign-request shows the summary.
    let r = sign_cmd(&[
        "sign-request",
        c.s(&c.w("req.json")),
        "--key",
        c.s(&c.key("targets-1.pem")),
        "--signer-name",
        "alice",
        "--out",
        c.s(&c.w("alice.sig.json")),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("+ target gateway-2.0.0.img.zst"), "{r:?}");
    assert!(r.stdout.contains("3 of the 5 key(s) of targets"), "{r:?}");
    let bob = c.sign("req.json", &c.key("targets-2.pem"), "bob", "bob.sig.json");
    assert_eq!(bob.code, 0, "{bob:?}");
    assert_eq!(bob.json()["signer"], "bob");
    assert_eq!(bob.json()["request_sha256"], request["request_sha256"]);
    // The same key again later, and a copy of bob's file: counted once.
    std::fs::copy(c.w("bob.sig.json"), c.w("bob-copy.sig.json")).unwrap();
    let again = sign_cmd(&[
        "sign-request",
        c.s(&c.w("req.json")),
        "--key",
        c.s(&c.key("targets-2.pem")),
        "--signer-name",
        "bob",
        "--out",
        c.s(&c.w("bob-again.sig.json")),
        "--now",
        "2031-01-01T00:00:00Z",
    ]);
    assert_eq!(again.code, 0, "{again:?}");
    // An output file is never overwritten.
    let r = c.sign("req.json", &c.key("targets-2.pem"), "bob", "bob.sig.json");
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("already exists"));

    let before = c.published();
    let r = c.combine(
        "req.json",
        &[
            "alice.sig.json",
            "bob.sig.json",
            "bob-copy.sig.json",
            "bob-again.sig.json",
        ],
    );
    assert_refused(
        &c,
        &r,
        3,
        "keys",
        "targets: 2 valid signature(s) of the 3 needed (5 key(s) may sign)",
        &before,
    );
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("bob-copy.sig.json") && msg.contains("a copy of"),
        "{msg}"
    );
    assert!(
        msg.contains("bob-again.sig.json") && msg.contains("already counted"),
        "{msg}"
    );

    // Bad input, each refused by name with nothing published.
    let carol = c.sign(
        "req.json",
        &c.key("targets-3.pem"),
        "carol",
        "carol.sig.json",
    );
    assert_eq!(carol.code, 0, "{carol:?}");
    let carol_bytes = std::fs::read(c.w("carol.sig.json")).unwrap();
    std::fs::write(c.w("cut.sig.json"), &carol_bytes[..carol_bytes.len() / 2]).unwrap();
    let r = c.combine(
        "req.json",
        &["alice.sig.json", "bob.sig.json", "cut.sig.json"],
    );
    assert_refused(&c, &r, 2, "input", "damaged or truncated", &before);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("cut.sig.json"));

    // Another request (same base, another expiry: other content), signed by a holder.
    let r = c.request("targets", "other.json", &["--expires", "30d"]);
    assert_eq!(r.code, 0, "{r:?}");
    let dave = c.sign(
        "other.json",
        &c.key("targets-4.pem"),
        "dave",
        "dave-other.sig.json",
    );
    assert_eq!(dave.code, 0, "{dave:?}");
    let r = c.combine(
        "req.json",
        &["alice.sig.json", "bob.sig.json", "dave-other.sig.json"],
    );
    assert_refused(&c, &r, 2, "input", "is for another request", &before);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("dave-other.sig.json"));
    // The same signature relabelled as this request's: it is over other content.
    let mut forged = c.read_json("dave-other.sig.json");
    forged["request_sha256"] = request["request_sha256"].clone();
    forged["signed_sha256"] = request["signed_sha256"].clone();
    c.write_json("relabelled.sig.json", &forged);
    let r = c.combine(
        "req.json",
        &["alice.sig.json", "bob.sig.json", "relabelled.sig.json"],
    );
    assert_refused(
        &c,
        &r,
        2,
        "input",
        "does not verify over this request's content",
        &before,
    );

    // A key that may not sign targets: refused when signing, and a file made anyway.
    let r = c.sign("req.json", &c.key("snapshot-1.pem"), "eve", "eve.sig.json");
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("is not one of the keys"));
    assert!(!c.w("eve.sig.json").exists());
    c.write_json(
        "eve.sig.json",
        &forged_signature(&request, &load_pem(&c.key("snapshot-1.pem"))),
    );
    let r = c.combine(
        "req.json",
        &["alice.sig.json", "bob.sig.json", "eve.sig.json"],
    );
    assert_refused(&c, &r, 3, "keys", "which may not sign targets v2", &before);

    // A damaged (edited) request: neither signed nor combined.
    let mut damaged = request.clone();
    damaged["signed"]["targets"]["gateway-2.0.0.img.zst"]["length"] = json!(len + 1);
    c.write_json("damaged.json", &damaged);
    let r = c.sign(
        "damaged.json",
        &c.key("targets-5.pem"),
        "frank",
        "frank.sig.json",
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("damaged or was edited"));
    let r = c.combine(
        "damaged.json",
        &["alice.sig.json", "bob.sig.json", "carol.sig.json"],
    );
    assert_refused(&c, &r, 2, "input", "damaged or was edited", &before);
    // Edited and resealed: a summary that hides the change is caught by recomputing it.
    let mut hidden = request.clone();
    hidden["summary"] = json!(["targets version 1 -> 2", "nothing else"]);
    c.write_json("hidden.json", &resealed(hidden));
    let r = c.sign(
        "hidden.json",
        &c.key("targets-5.pem"),
        "frank",
        "frank.sig.json",
    );
    assert_eq!(r.code, 2, "{r:?}");
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("summary does not describe the change"),
        "{msg}"
    );
    assert!(!c.w("frank.sig.json").exists());

    // The third signature publishes: targets v2, then snapshot and timestamp.
    let r = c.combine(
        "req.json",
        &["alice.sig.json", "bob.sig.json", "carol.sig.json"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let out = r.json();
    assert_eq!(out["published"]["targets_version"], 2);
    assert_eq!(out["published"]["snapshot_version"], 2);
    assert_eq!(out["published"]["timestamp_version"], 2);
    assert_eq!(out["thresholds"][0]["valid"], 3);
    let signers: Vec<&str> = out["accepted"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["signer"].as_str())
        .collect();
    assert_eq!(signers, ["alice", "bob", "carol"]);
    assert!(
        !c.repo.join("ota-staged.json").exists(),
        "staged targets consumed"
    );
    let published: Value =
        serde_json::from_slice(&std::fs::read(c.repo.join("metadata/2.targets.json")).unwrap())
            .unwrap();
    assert_eq!(published["signatures"].as_array().unwrap().len(), 3);
    assert_eq!(published["signed"], request["signed"]);
    assert_eq!(c.status()["roles"]["targets"]["version"], 2);

    // The request is used up; the other one is stale now.
    let before = c.published();
    let r = c.combine("other.json", &["dave-other.sig.json"]);
    assert_refused(&c, &r, 4, "repo", "stale request", &before);

    // A device installs the release.
    let server = TestServer::start(&c.repo);
    let dev = tempfile::tempdir().unwrap();
    let state = dev.path().join("state");
    let slot = dev.path().join("firmware.img");
    let root = c.repo.join("metadata/1.root.json");
    let r = client(
        &state,
        &[
            "init",
            "--root",
            c.s(&root),
            "--server",
            &server.url(),
            "--hardware",
            "gw-a",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let r = client(&state, &["update", "--install-to", c.s(&slot), "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["result"], "installed");
    assert_eq!(
        std::fs::read(&slot).unwrap(),
        fw,
        "installed byte-identical"
    );

    // The audit log: who asked, who signed, what was refused and published, chained.
    let r = c.audit("show");
    assert_eq!(r.code, 0, "{r:?}");
    let entries = r.json()["entries"].as_array().unwrap().clone();
    let events: Vec<&str> = entries.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(
        events,
        [
            "request",
            "refused",
            "refused",
            "request",
            "refused",
            "refused",
            "refused",
            "signature",
            "signature",
            "signature",
            "publish",
            "refused"
        ]
    );
    let signed: Vec<(&str, &str)> = entries
        .iter()
        .filter(|e| e["event"] == "signature")
        .map(|e| (e["signer"].as_str().unwrap(), e["keyid"].as_str().unwrap()))
        .collect();
    let keyid_of = |f: &str| c.read_json(f)["keyid"].as_str().unwrap().to_string();
    assert_eq!(signed[2], ("carol", keyid_of("carol.sig.json").as_str()));
    assert!(entries[2]["reason"]
        .as_str()
        .unwrap()
        .contains("cut.sig.json"));
    assert!(entries
        .iter()
        .all(|e| e["role"] == "targets" && e["request_sha256"].is_string()));
    let head = r.json()["head"].as_str().unwrap().to_string();
    let r = c.audit("verify");
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["entries_count"], 12);

    // An edited entry (carol's name on line 10) breaks the chain at the next line.
    let log = c.repo.join("audit/log.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!c.repo.join("metadata/audit").exists() && text.lines().count() == 12);
    let lines: Vec<&str> = text.lines().collect();
    let edited: String = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let l = if i == 9 {
                l.replace("carol", "carl")
            } else {
                l.to_string()
            };
            format!("{l}\n")
        })
        .collect();
    std::fs::write(&log, &edited).unwrap();
    let r = c.audit("verify");
    assert_eq!(r.code, 4, "{r:?}");
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("broken at line 11") && msg.contains("line 10 was changed"),
        "{msg}"
    );
    // The last line cut off: the chain holds, the recorded head shows it.
    let cut: String = lines[..11].iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&log, cut).unwrap();
    assert_eq!(c.audit("verify").code, 0);
    let r = sign_cmd(&["audit", "verify", "--repo", c.s(&c.repo), "--head", &head]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("cut or rewritten"), "{r:?}");
}

#[test]
fn a_root_needs_the_old_and_the_new_root_threshold() {
    let c = Ceremony::init(&["--key-count", "root=3", "--threshold", "root=2"]);
    let before = c.published();

    // A re-sign: version 2, the same keys, both thresholds listed.
    let r = c.request("root", "r2.json", &["--expires", "400d"]);
    assert_eq!(r.code, 0, "{r:?}");
    let rep = r.json();
    assert_eq!(rep["version"], 2);
    let names: Vec<&str> = rep["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["root v1 (current)", "root v2 (new)"]);
    assert!(rep["summary"].to_string().contains("a re-sign"), "{rep}");
    assert_eq!(
        c.sign("r2.json", &c.key("root-1.pem"), "r1", "r2-1.json")
            .code,
        0
    );
    let r = c.combine("r2.json", &["r2-1.json"]);
    assert_refused(
        &c,
        &r,
        3,
        "keys",
        "root v1 (current): 1 valid signature(s) of the 2 needed",
        &before,
    );
    assert_eq!(
        c.sign("r2.json", &c.key("root-2.pem"), "r2", "r2-2.json")
            .code,
        0
    );
    let r = c.combine("r2.json", &["r2-1.json", "r2-2.json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["published"]["root_version"], 2);
    let md = c.repo.join("metadata");
    assert_eq!(
        std::fs::read(md.join("2.root.json")).unwrap(),
        std::fs::read(md.join("root.json")).unwrap()
    );
    assert_eq!(c.status()["roles"]["root"]["version"], 2);

    // A staged root v3 (as `rotate --stage` writes it): root-1 out, a new holder's key in.
    let holder = Ed25519Signer::generate();
    let holder_pem = c.w("holder.pem");
    std::fs::write(&holder_pem, holder.to_pkcs8_pem().unwrap()).unwrap();
    let holder_id = holder.key_id().unwrap();
    let root: Value =
        serde_json::from_slice(&std::fs::read(md.join("root.json")).unwrap()).unwrap();
    let mut next = root["signed"].clone();
    let r1 = load_pem(&c.key("root-1.pem")).key_id().unwrap();
    next["version"] = json!(3);
    next["keys"][&holder_id] = serde_json::to_value(holder.public_key()).unwrap();
    next["keys"].as_object_mut().unwrap().remove(&r1);
    let ids = next["roles"]["root"]["keyids"].as_array_mut().unwrap();
    ids.retain(|k| k != &json!(r1));
    ids.push(json!(holder_id));
    std::fs::write(
        c.repo.join("ota-staged-root.json"),
        serde_json::to_vec_pretty(&next).unwrap(),
    )
    .unwrap();

    let r = c.request("root", "r3.json", &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let rep = r.json();
    assert_eq!(rep["staged_root"], true);
    let summary = rep["summary"].to_string();
    assert!(
        summary.contains(&format!("+ root key {}", &holder_id[..16])),
        "{summary}"
    );
    assert!(
        summary.contains(&format!("- root key {}", &r1[..16])),
        "{summary}"
    );
    let current: Vec<Value> = rep["thresholds"][0]["keyids"].as_array().unwrap().clone();
    let new: Vec<Value> = rep["thresholds"][1]["keyids"].as_array().unwrap().clone();
    assert!(current.contains(&json!(r1)) && !new.contains(&json!(r1)));
    assert!(new.contains(&json!(holder_id)) && !current.contains(&json!(holder_id)));

    for (key, out) in [
        (c.key("root-1.pem"), "r3-1.json"),
        (c.key("root-2.pem"), "r3-2.json"),
        (holder_pem.clone(), "r3-h.json"),
    ] {
        let r = c.sign("r3.json", &key, "holder", out);
        assert_eq!(r.code, 0, "{r:?}");
    }
    let before = c.published();
    // Old key + new key: one of each root, neither threshold met.
    let r = c.combine("r3.json", &["r3-1.json", "r3-h.json"]);
    assert_refused(
        &c,
        &r,
        3,
        "keys",
        "root v2 (current): 1 valid signature(s) of the 2 needed",
        &before,
    );
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("root v3 (new): 1 valid signature(s) of the 2 needed"));
    // Two old keys: the old threshold met, the new one not (root-1 is not in it).
    let r = c.combine("r3.json", &["r3-1.json", "r3-2.json"]);
    assert_refused(
        &c,
        &r,
        3,
        "keys",
        "root v3 (new): 1 valid signature(s) of the 2 needed",
        &before,
    );
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("root v2 (current): 2 valid signature(s) of the 2 needed"));
    // Both met.
    let r = c.combine("r3.json", &["r3-1.json", "r3-2.json", "r3-h.json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["published"]["root_version"], 3);
    assert!(
        !c.repo.join("ota-staged-root.json").exists(),
        "staged root consumed"
    );
    let v3: Value =
        serde_json::from_slice(&std::fs::read(md.join("3.root.json")).unwrap()).unwrap();
    assert_eq!(v3["signatures"].as_array().unwrap().len(), 3);

    // A device that trusts root v1 follows the chain to v3 and installs a release.
    let fw = image(3, 200_000);
    std::fs::write(c.w("fw.img"), &fw).unwrap();
    ok(&[
        "add",
        "--repo",
        c.s(&c.repo),
        "--keys",
        c.s(&c.keys),
        c.s(&c.w("fw.img")),
        "--name",
        "gateway",
        "--version",
        "1.0.0",
        "--hardware",
        "gw-a",
    ]);
    let server = TestServer::start(&c.repo);
    let dev = tempfile::tempdir().unwrap();
    let state = dev.path().join("state");
    let slot = dev.path().join("firmware.img");
    let r = client(
        &state,
        &[
            "init",
            "--root",
            c.s(&md.join("1.root.json")),
            "--server",
            &server.url(),
            "--hardware",
            "gw-a",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let r = client(&state, &["update", "--install-to", c.s(&slot), "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(std::fs::read(&slot).unwrap(), fw);
    let r = client(&state, &["status", "--json"]);
    assert_eq!(r.json()["root_version"], 3, "{r:?}");

    let r = c.audit("show");
    let events: Vec<String> = r.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{} {}", e["event"].as_str().unwrap(), e["version"]))
        .collect();
    assert_eq!(
        events,
        [
            "request 2",
            "refused 2",
            "signature 2",
            "signature 2",
            "publish 2",
            "request 3",
            "refused 3",
            "refused 3",
            "signature 3",
            "signature 3",
            "signature 3",
            "publish 3"
        ]
    );
}

#[test]
fn with_online_roles_combine_signs_targets_only_and_refuses_a_lowered_threshold() {
    let c = Ceremony::init(&[
        "--online-roles",
        "--key-count",
        "targets=3",
        "--threshold",
        "targets=2",
    ]);
    std::fs::write(c.w("fw.img"), image(9, 50_000)).unwrap();
    ok(&[
        "add",
        "--repo",
        c.s(&c.repo),
        "--no-publish",
        c.s(&c.w("fw.img")),
        "--name",
        "gateway",
        "--version",
        "1.0.0",
        "--hardware",
        "gw-a",
    ]);
    assert_eq!(c.request("targets", "req.json", &[]).code, 0);
    let request = c.read_json("req.json");

    // Someone lowers the threshold to 1 and reseals the request: sign-request cannot know the
    // repository's threshold, but combine checks it against root and refuses.
    let mut lowered = request.clone();
    lowered["thresholds"][0]["threshold"] = json!(1);
    c.write_json("lowered.json", &resealed(lowered));
    let r = c.sign(
        "lowered.json",
        &c.key("targets-1.pem"),
        "alice",
        "low.sig.json",
    );
    assert_eq!(r.code, 0, "{r:?}");
    let before = c.published();
    let r = c.combine("lowered.json", &["low.sig.json"]);
    assert_refused(&c, &r, 4, "repo", "not the repository's", &before);

    for (key, out) in [
        ("targets-1.pem", "a.sig.json"),
        ("targets-3.pem", "b.sig.json"),
    ] {
        assert_eq!(c.sign("req.json", &c.key(key), "holder", out).code, 0);
    }
    // Past the request's expiry, combine refuses.
    let r = sign_cmd(&[
        "combine",
        "--repo",
        c.s(&c.repo),
        c.s(&c.w("req.json")),
        c.s(&c.w("a.sig.json")),
        c.s(&c.w("b.sig.json")),
        "--json",
        "--now",
        "2200-01-01T00:00:00Z",
    ]);
    assert_refused(&c, &r, 2, "input", "expired", &before);

    // No --keys: the release machine holds no snapshot or timestamp key; the server
    // publishes the new targets with its next snapshot.
    let r = sign_cmd(&[
        "combine",
        "--repo",
        c.s(&c.repo),
        c.s(&c.w("req.json")),
        c.s(&c.w("a.sig.json")),
        c.s(&c.w("b.sig.json")),
        "--json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let p = &r.json()["published"];
    assert_eq!(p["signed"], json!(["targets"]));
    assert_eq!(
        (
            p["targets_version"].as_u64(),
            p["snapshot_version"].as_u64()
        ),
        (Some(2), Some(1))
    );
    assert!(c.repo.join("metadata/2.targets.json").exists());
    assert!(!c.repo.join("metadata/2.snapshot.json").exists());
    assert_eq!(
        c.status()["roles"]["targets"]["version"],
        2,
        "pending, verified"
    );
}

/// The keyids of the signatures of a metadata file.
fn signature_keyids(path: &Path) -> Vec<String> {
    let v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    v["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["keyid"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_staged_targets_key_rotation_is_published_by_the_ceremony_with_targets_re_signed() {
    let c = Ceremony::init(&["--key-count", "root=3", "--threshold", "root=2"]);
    let md = c.repo.join("metadata");
    let fw1 = image(1, 150_000);
    std::fs::write(c.w("fw1.img"), &fw1).unwrap();
    let add = |file: &str, version: &str| {
        ok(&[
            "add",
            "--repo",
            c.s(&c.repo),
            "--keys",
            c.s(&c.keys),
            c.s(&c.w(file)),
            "--name",
            "gateway",
            "--version",
            version,
            "--hardware",
            "gw-a",
        ])
    };
    add("fw1.img", "1.0.0");
    let server = TestServer::start(&c.repo);
    let dev = tempfile::tempdir().unwrap();
    let state = dev.path().join("state");
    let slot = dev.path().join("firmware.img");
    let r = client(
        &state,
        &[
            "init",
            "--root",
            c.s(&md.join("1.root.json")),
            "--server",
            &server.url(),
            "--hardware",
            "gw-a",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let r = client(&state, &["update", "--install-to", c.s(&slot), "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(std::fs::read(&slot).unwrap(), fw1);

    // The release machine stages a new targets key; the root keys sign in a ceremony.
    let root: Value =
        serde_json::from_slice(&std::fs::read(md.join("root.json")).unwrap()).unwrap();
    let old_targets = root["signed"]["roles"]["targets"]["keyids"][0]
        .as_str()
        .unwrap()
        .to_string();
    let r = ok(&[
        "rotate",
        "--repo",
        c.s(&c.repo),
        "--keys",
        c.s(&c.keys),
        "--role",
        "targets",
        "--generate",
        "--key-type",
        "ecdsa-p256",
        "--remove-key",
        &old_targets,
        "--stage",
        "--json",
    ]);
    let new_targets = r.json()["changes"][0]["added"][0]["keyid"]
        .as_str()
        .unwrap()
        .to_string();
    let r = c.request("root", "r2.json", &[]);
    assert_eq!(r.code, 0, "{r:?}");
    for (key, out) in [("root-1.pem", "r2-1.json"), ("root-3.pem", "r2-3.json")] {
        let r = c.sign("r2.json", &c.key(key), "holder", out);
        assert_eq!(r.code, 0, "{r:?}");
    }

    // Without the key directory the targets role cannot be re-signed: refused, unchanged.
    let before = c.published();
    let config_before = std::fs::read(c.repo.join("ota-repo.json")).unwrap();
    let mut args = vec!["combine", "--repo", c.s(&c.repo), "--json"];
    let files = [c.w("r2.json"), c.w("r2-1.json"), c.w("r2-3.json")];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    let r = sign_cmd(&args);
    assert_ne!(r.code, 0, "{r:?}");
    assert_eq!(c.published(), before, "nothing published");
    assert_eq!(
        std::fs::read(c.repo.join("ota-repo.json")).unwrap(),
        config_before
    );

    let r = c.combine("r2.json", &["r2-1.json", "r2-3.json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let out = r.json();
    assert_eq!(out["published"]["root_version"], 2);
    assert_eq!(
        out["published"]["signed"],
        json!(["root", "targets", "snapshot", "timestamp"])
    );
    assert_eq!(out["changes"][0]["role"], "targets");
    let targets_version = out["published"]["targets_version"].as_u64().unwrap();
    assert_eq!(
        signature_keyids(&md.join(format!("{targets_version}.targets.json"))),
        [new_targets]
    );
    // The policy names the generated key instead of the retired one, so `add` signs with it.
    let config: Value =
        serde_json::from_slice(&std::fs::read(c.repo.join("ota-repo.json")).unwrap()).unwrap();
    assert_eq!(config["key_files"]["targets"], json!(["targets-2.pem"]));
    assert!(!c.repo.join("ota-staged-root.json").exists());

    // The device follows the new root and installs the next release, signed by the new key.
    let fw2 = image(2, 150_000);
    std::fs::write(c.w("fw2.img"), &fw2).unwrap();
    add("fw2.img", "2.0.0");
    let r = client(&state, &["update", "--install-to", c.s(&slot), "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(std::fs::read(&slot).unwrap(), fw2);
    let r = client(&state, &["status", "--json"]);
    assert_eq!(r.json()["root_version"], 2, "{r:?}");
}

#[test]
fn a_holder_with_a_trusted_root_refuses_a_request_naming_other_keys() {
    let c = Ceremony::init(&["--key-count", "targets=3", "--threshold", "targets=2"]);
    let md = c.repo.join("metadata");
    // The holder's own copy of the current root, kept from before.
    let trusted = c.w("my-root.json");
    std::fs::copy(md.join("1.root.json"), &trusted).unwrap();
    let r = c.request("targets", "req.json", &["--expires", "20d"]);
    assert_eq!(r.code, 0, "{r:?}");
    let sign_trusted = |request: &str, key: &str, out: &str, root: &Path| {
        sign_cmd(&[
            "sign-request",
            c.s(&c.w(request)),
            "--key",
            c.s(&c.key(key)),
            "--out",
            c.s(&c.w(out)),
            "--trusted-root",
            c.s(root),
            "--json",
        ])
    };
    let r = sign_trusted("req.json", "targets-1.pem", "a.sig.json", &trusted);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["trusted_root"], 1);

    // The release machine slips its own key into who may sign, and reseals the request.
    let rogue = Ed25519Signer::generate();
    let rogue_id = rogue.key_id().unwrap();
    let mut forged = c.read_json("req.json");
    forged["thresholds"][0]["keyids"]
        .as_array_mut()
        .unwrap()
        .push(json!(rogue_id));
    forged["keys"][&rogue_id] = serde_json::to_value(rogue.public_key()).unwrap();
    c.write_json("forged.json", &resealed(forged));
    let r = sign_trusted("forged.json", "targets-2.pem", "b.sig.json", &trusted);
    assert_eq!(r.code, 2, "{r:?}");
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("not those the trusted root sets"), "{msg}");
    assert!(!c.w("b.sig.json").exists(), "nothing signed");

    // A root that is not the one the request was made under, and a root that is not signed
    // by its own keys: refused too.
    ok(&[
        "publish",
        "--repo",
        c.s(&c.repo),
        "--keys",
        c.s(&c.keys),
        "--root",
    ]);
    let r = sign_trusted(
        "req.json",
        "targets-2.pem",
        "c.sig.json",
        &md.join("2.root.json"),
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("made under root v1"));
    let mut unsigned: Value = serde_json::from_slice(&std::fs::read(&trusted).unwrap()).unwrap();
    unsigned["signatures"] = json!([]);
    c.write_json("unsigned-root.json", &unsigned);
    let r = sign_trusted(
        "req.json",
        "targets-2.pem",
        "d.sig.json",
        &c.w("unsigned-root.json"),
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not signed by its own root keys"));
    assert!(!c.w("c.sig.json").exists() && !c.w("d.sig.json").exists());
}
