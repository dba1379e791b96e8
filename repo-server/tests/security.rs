//! Nothing outside the repository is ever served: traversal spellings, symlinks, directories,
//! special files. Each test plants a secret beside the repository and checks it never appears.

mod common;

use std::os::unix::fs::symlink;

use common::{send_raw, Fixture, Resp, TestServer, SECRET};

fn assert_refused(r: &Resp, what: &str) {
    assert!(
        r.status == 400 || r.status == 404,
        "{what}: expected 400/404, got {}",
        r.status
    );
    assert!(
        !r.body.windows(SECRET.len()).any(|w| w == SECRET),
        "{what}: secret leaked"
    );
    assert_eq!(r.header("cache-control"), Some("no-store"), "{what}");
}

#[test]
fn traversal_spellings_are_refused() {
    let fx = Fixture::new();
    let srv = TestServer::start(&fx.repo());
    // The secret is at repo/../secret.txt, i.e. two levels above targets/ files.
    for path in [
        "/targets/../../secret.txt",
        "/targets/../secret.txt",
        "/metadata/../../secret.txt",
        "/targets/sub/../../../secret.txt",
        "/targets/%2e%2e/%2e%2e/secret.txt",
        "/targets/%2E%2E/%2E%2E/secret.txt",
        "/targets/.%2e/.%2e/secret.txt",
        "/targets/sub%2F..%2F..%2F..%2Fsecret.txt",
        "/targets/%2F..%2F..%2Fsecret.txt",
        "/targets/..%2F..%2Fsecret.txt",
        "/targets/..\\..\\secret.txt",
        "/targets/..%5C..%5Csecret.txt",
        "/targets/%252e%252e/%252e%252e/secret.txt",
        "/targets/plain.txt%00.bin",
        "/targets//etc/passwd",
        "/targets/%2Fetc%2Fpasswd",
        "/metadata/%2e%2e%2f%2e%2e%2fsecret.txt",
        "/../secret.txt",
        "/secret.txt",
    ] {
        let r = send_raw(
            srv.addr,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert_refused(&r, path);
    }
    // Absolute-form request target naming a file outside the repository.
    let secret = fx.secret();
    let r = send_raw(
        srv.addr,
        format!(
            "GET http://x{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            secret.display()
        )
        .as_bytes(),
    );
    assert_refused(&r, "absolute-form");
    // Sanity: the server does serve files, so the refusals above are not a blanket failure.
    assert_eq!(srv.get("/targets/plain.txt").status, 200);
}

#[test]
fn symlink_leaving_the_repository_is_refused() {
    let fx = Fixture::new();
    symlink(fx.secret(), fx.target("leak.bin")).unwrap();
    symlink(fx.dir.path(), fx.target("up")).unwrap();
    symlink("/etc/passwd", fx.repo().join("metadata/passwd.json")).unwrap();
    let srv = TestServer::start(&fx.repo());
    assert_refused(&srv.get("/targets/leak.bin"), "file symlink");
    assert_refused(&srv.get("/targets/up/secret.txt"), "dir symlink");
    assert_refused(&srv.get("/metadata/passwd.json"), "absolute symlink");
    assert_eq!(srv.get("/targets/leak.bin").status, 404);
}

#[test]
fn a_cached_file_replaced_by_a_symlink_out_is_refused() {
    // Small files are served from memory after the first request; the copy must not outlive
    // the file. Replace the served files by symlinks leaving the repository, as an attacker
    // with write access to the tree might, and by an in-place rewrite of the same size.
    let fx = Fixture::new();
    let meta = fx.repo().join("metadata");
    std::fs::write(meta.join("cached.json"), "{}").unwrap();
    let srv = TestServer::start(&fx.repo());
    for path in ["/metadata/cached.json", "/targets/plain.txt"] {
        assert_eq!(srv.get(path).status, 200, "{path}");
        assert_eq!(srv.get(path).status, 200, "{path} (cached)");
    }
    std::fs::remove_file(meta.join("cached.json")).unwrap();
    symlink(fx.secret(), meta.join("cached.json")).unwrap();
    assert_refused(
        &srv.get("/metadata/cached.json"),
        "cached metadata now a symlink out",
    );
    let tmp = fx.target("plain.txt.tmp");
    symlink(fx.secret(), &tmp).unwrap();
    std::fs::rename(&tmp, fx.target("plain.txt")).unwrap();
    assert_refused(
        &srv.get("/targets/plain.txt"),
        "cached target renamed to a symlink out",
    );

    std::fs::write(fx.target("same.txt"), "aaaa").unwrap();
    assert_eq!(srv.get("/targets/same.txt").body, b"aaaa");
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(fx.target("same.txt"), "bbbb").unwrap();
    assert_eq!(
        srv.get("/targets/same.txt").body,
        b"bbbb",
        "rewritten in place"
    );
}

#[test]
fn symlink_inside_the_tree_is_followed() {
    let fx = Fixture::new();
    symlink("plain.txt", fx.target("alias.txt")).unwrap();
    let srv = TestServer::start(&fx.repo());
    let r = srv.get("/targets/alias.txt");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello target"[..]));
}

#[test]
fn directories_and_special_files_are_refused() {
    let fx = Fixture::new();
    let fifo = fx.target("pipe.bin");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    symlink("/dev/zero", fx.target("zero.bin")).unwrap();
    let srv = TestServer::start(&fx.repo());
    for path in [
        "/targets/sub",
        "/targets/sub/",
        "/targets/",
        "/metadata/",
        "/targets",
    ] {
        assert_refused(&srv.get(path), path);
    }
    // Opening a FIFO for reading would block forever; it must be refused without opening.
    assert_eq!(srv.get("/targets/pipe.bin").status, 404);
    assert_eq!(srv.get("/targets/zero.bin").status, 404);
}

#[test]
fn refusals_do_not_depend_on_the_secret_existing_elsewhere() {
    // A repository symlinked as a whole is fine: the boundary is the resolved tree.
    let fx = Fixture::new();
    let link = fx.dir.path().join("repo-link");
    symlink(fx.repo(), &link).unwrap();
    let srv = TestServer::start(&link);
    assert_eq!(srv.get("/targets/plain.txt").status, 200);
    assert_refused(&srv.get("/targets/..%2F..%2Fsecret.txt"), "via linked repo");
}
