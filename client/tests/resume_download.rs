//! Resumable target downloads against loopback HTTP servers that misbehave on purpose: a
//! connection reset or a body cut short mid-transfer (resumed with `Range` in the same call),
//! a server that ignores ranges, a file whose ETag changed (`If-Range` mismatch), odd answers
//! to a range (416, another range), a corrupted body, a partial whose bytes were lost in a
//! power cut, a partial of another target version, and a server that stalls.
mod support;

use ota_client::target_download::{partial_info_path, partial_path, target_file_in};
use ota_client::transport::{FetchStream, HttpTransport, TransferBounds, Transport};
use ota_client::transport::{TransportError, Validator};
use ota_client::{Error, FixedClock, Updater, UpdaterConfig, VerifiedTarget};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{now, Repo};

/// The image: 1 MiB that no run of zeros resembles.
const LEN: usize = 1 << 20;

fn image(seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// What the server does for one request under `/targets/`.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Honour `Range` and `If-Range` (against the current ETag).
    Normal,
    /// Like `Normal`, but close the connection cleanly after `.0` body bytes (the head
    /// announces the whole length).
    CutAfter(usize),
    /// Like `Normal`, but reset the connection (RST) after `.0` body bytes.
    ResetAfter(usize),
    /// Like `Normal`, but go silent after `.0` body bytes.
    StallAfter(usize),
    /// `200` with the whole file, whatever `Range` says.
    IgnoreRange,
    /// `IgnoreRange`, closing after `.0` body bytes.
    IgnoreRangeCutAfter(usize),
    /// Like `Normal`, with one body byte flipped.
    Corrupt,
    /// This status, empty body.
    Status(u16),
    /// `206` from byte 0 whatever range was asked for.
    WrongRange,
}

/// One request for a target, as the server saw and answered it.
#[derive(Debug, Clone)]
struct Seen {
    range: Option<String>,
    if_range: Option<String>,
    status: u16,
}

struct State {
    plan: VecDeque<(Step, Option<&'static str>)>,
    etag: String,
    seen: Vec<Seen>,
}

/// A file server over a repository directory (`metadata/`, `targets/`) whose answers to
/// target requests follow a plan; it records every target request and counts body bytes.
struct Server {
    base: String,
    state: Arc<Mutex<State>>,
    sent: Arc<AtomicU64>,
}

impl Server {
    fn start(root: PathBuf) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            plan: VecDeque::new(),
            etag: "\"v1\"".into(),
            seen: Vec::new(),
        }));
        let sent = Arc::new(AtomicU64::new(0));
        let (st, se) = (state.clone(), sent.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (st, se, root) = (st.clone(), se.clone(), root.clone());
                std::thread::spawn(move || answer(stream, &root, &st, &se));
            }
        });
        Server { base, state, sent }
    }

    /// Answer the next target requests with these steps (then `Normal`); a step with an
    /// ETag sets the file's ETag before it answers.
    fn plan(&self, steps: &[(Step, Option<&'static str>)]) {
        self.state.lock().unwrap().plan = steps.iter().copied().collect();
    }

    /// Target requests so far (and forget them), and the body bytes sent for them.
    fn take(&self) -> (Vec<Seen>, u64) {
        let seen = std::mem::take(&mut self.state.lock().unwrap().seen);
        (seen, self.sent.swap(0, Ordering::SeqCst))
    }
}

/// The request head, read without consuming it (so a reset can leave it unread).
fn peek_head(stream: &TcpStream) -> Option<String> {
    let mut buf = [0u8; 4096];
    for _ in 0..200 {
        let n = stream.peek(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            return Some(text[..end + 4].to_string());
        }
        if n == 0 {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

fn answer(mut stream: TcpStream, root: &Path, state: &Mutex<State>, sent: &AtomicU64) {
    let Some(head) = peek_head(&stream) else {
        return;
    };
    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
    let file = std::fs::read(root.join(path.trim_start_matches('/')));
    let (step, etag) = if path.starts_with("/targets/") {
        let mut st = state.lock().unwrap();
        let (step, etag) = st.plan.pop_front().unwrap_or((Step::Normal, None));
        if let Some(e) = etag {
            st.etag = e.to_string();
        }
        (step, Some(st.etag.clone()))
    } else {
        (Step::Normal, None)
    };
    // Unless it is to be reset, consume the request so that closing sends a clean FIN.
    if !matches!(step, Step::ResetAfter(_)) {
        let mut consumed = vec![0u8; head.len()];
        if stream.read_exact(&mut consumed).is_err() {
            return;
        }
    }
    let range = header(&head, "Range");
    let if_range = header(&head, "If-Range");
    let Ok(body) = file else {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let len = body.len();
    let asked = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    let honours = matches!(
        step,
        Step::Normal
            | Step::CutAfter(_)
            | Step::ResetAfter(_)
            | Step::StallAfter(_)
            | Step::Corrupt
    );
    let validator_ok = if_range.is_none() || if_range == etag;
    let (status, start) = match (step, asked) {
        (Step::Status(code), _) => (code, 0),
        (Step::WrongRange, Some(_)) => (206, 0),
        (_, Some(n)) if honours && validator_ok => {
            if n >= len {
                (416, len)
            } else {
                (206, n)
            }
        }
        _ => (200, 0),
    };
    if etag.is_some() {
        state.lock().unwrap().seen.push(Seen {
            range: range.clone(),
            if_range: if_range.clone(),
            status,
        });
    }
    let mut data = if matches!(status, 200 | 206) {
        body[start..].to_vec()
    } else {
        Vec::new()
    };
    if matches!(step, Step::Corrupt) && !data.is_empty() {
        let mid = data.len() / 2;
        data[mid] ^= 0xff;
    }
    let mut out = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        data.len()
    );
    if let Some(e) = &etag {
        out.push_str(&format!("ETag: {e}\r\n"));
    }
    match status {
        206 => out.push_str(&format!(
            "Content-Range: bytes {start}-{}/{len}\r\n",
            len - 1
        )),
        416 => out.push_str(&format!("Content-Range: bytes */{len}\r\n")),
        _ => {}
    }
    out.push_str("\r\n");
    if stream.write_all(out.as_bytes()).is_err() {
        return;
    }
    let limit = match step {
        Step::CutAfter(n)
        | Step::ResetAfter(n)
        | Step::StallAfter(n)
        | Step::IgnoreRangeCutAfter(n) => n.min(data.len()),
        _ => data.len(),
    };
    if stream.write_all(&data[..limit]).is_ok() && etag.is_some() {
        sent.fetch_add(limit as u64, Ordering::SeqCst);
    }
    match step {
        Step::ResetAfter(_) => {
            // Let the client read what was sent, then close with the request unread: RST.
            std::thread::sleep(Duration::from_millis(300));
        }
        Step::StallAfter(_) => std::thread::sleep(Duration::from_secs(30)),
        _ => {
            let _ = stream.shutdown(Shutdown::Write);
        }
    }
}

/// A published repository with one target, `fw.bin`, on disk; a device trusting its root.
struct Setup {
    tmp: tempfile::TempDir,
    server: Server,
    md: PathBuf,
    dl: PathBuf,
}

impl Setup {
    fn new(target: &[u8]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let server = Server::start(publish(tmp.path(), "repo", target));
        let md = tmp.path().join("md");
        Updater::bootstrap(&md, &Repo::new().root_bytes(1)).unwrap();
        let dl = tmp.path().join("dl");
        Setup {
            tmp,
            server,
            md,
            dl,
        }
    }

    fn updater(&self, targets: TransferBounds) -> Updater {
        updater(&self.md, &self.server.base, targets)
    }

    /// A server for `data`, an updater with the default target bounds, and the target.
    fn ready(data: &[u8]) -> (Setup, Updater, VerifiedTarget) {
        let s = Setup::new(data);
        let mut up = s.updater(TransferBounds::TARGETS);
        let t = s.target(&mut up);
        (s, up, t)
    }

    fn target(&self, up: &mut Updater) -> VerifiedTarget {
        up.get_target_info("fw.bin").unwrap().unwrap()
    }
}

/// Write a repository with `fw.bin` = `target` under `dir/name`.
fn publish(dir: &Path, name: &str, target: &[u8]) -> PathBuf {
    let mut repo = Repo::new();
    repo.add_target("targets", "fw.bin", target);
    repo.publish();
    let root = dir.join(name);
    repo.write_to(&root);
    root
}

fn updater(md: &Path, base: &str, targets: TransferBounds) -> Updater {
    let mut c = UpdaterConfig::new(
        md,
        Box::new(HttpTransport::new(&format!("{base}/metadata/")).unwrap()),
        Box::new(HttpTransport::with_bounds(&format!("{base}/targets/"), targets).unwrap()),
    );
    c.clock = Box::new(FixedClock(now()));
    Updater::new(c).unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn ranges(seen: &[Seen]) -> Vec<Option<String>> {
    seen.iter().map(|s| s.range.clone()).collect()
}

/// The offset of a `bytes=N-` range.
fn offset(range: &Option<String>) -> u64 {
    range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a bytes=N- range: {range:?}"))
}

/// Download expecting success; returns the bytes transferred.
fn download_ok(up: &Updater, t: &VerifiedTarget, dl: &Path, expected: &[u8]) -> u64 {
    let (path, transferred) = up.download_target_counted(t, dl).unwrap();
    assert_eq!(path, target_file_in(dl, t));
    assert!(std::fs::read(&path).unwrap() == expected, "content differs");
    assert_eq!(
        names(dl),
        ["fw.bin"],
        "only the final file is left after a success"
    );
    transferred
}

/// Mode bits of a file.
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn reset_mid_body_is_resumed_with_a_range_request_in_the_same_call() {
    let data = image(1);
    let (s, up, t) = Setup::ready(&data);
    s.server.plan(&[(Step::ResetAfter(300_000), None)]);
    let transferred = download_ok(&up, &t, &s.dl, &data);
    let (seen, sent) = s.server.take();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].range, None);
    let n = offset(&seen[1].range);
    assert!(n > 0 && n <= 300_000, "resumed at {n}");
    assert_eq!(seen[1].if_range.as_deref(), Some("\"v1\""));
    assert_eq!(seen[1].status, 206);
    // About one file on the wire, not two.
    assert_eq!(transferred, LEN as u64);
    assert!(sent <= LEN as u64 + 300_000 - n, "sent {sent}");
}

#[test]
fn truncated_body_is_resumed_in_the_same_call() {
    let data = image(2);
    let (s, up, t) = Setup::ready(&data);
    // Cut twice: each attempt makes progress, so both are resumed.
    s.server.plan(&[
        (Step::CutAfter(200_000), None),
        (Step::CutAfter(300_000), None),
    ]);
    let transferred = download_ok(&up, &t, &s.dl, &data);
    let (seen, sent) = s.server.take();
    assert_eq!(
        ranges(&seen),
        [
            None,
            Some("bytes=200000-".to_string()),
            Some("bytes=500000-".to_string())
        ]
    );
    assert_eq!(transferred, LEN as u64);
    assert_eq!(sent, LEN as u64);
}

#[test]
fn server_ignoring_ranges_gets_a_full_download() {
    let data = image(3);
    let (s, up, t) = Setup::ready(&data);
    s.server
        .plan(&[(Step::CutAfter(300_000), None), (Step::IgnoreRange, None)]);
    let transferred = download_ok(&up, &t, &s.dl, &data);
    let (seen, _) = s.server.take();
    assert_eq!(ranges(&seen), [None, Some("bytes=300000-".to_string())]);
    assert_eq!(seen[1].status, 200);
    assert_eq!(transferred, 300_000 + LEN as u64);
}

#[test]
fn retries_without_progress_are_bounded_and_the_partial_is_kept() {
    let data = image(4);
    let (s, up, t) = Setup::ready(&data);
    // Ignores ranges and breaks at the same point every time: no progress after the first.
    s.server
        .plan(&[(Step::IgnoreRangeCutAfter(100_000), None); 10]);
    let err = up.download_target(&t, &s.dl).unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("connection closed before the end of the file"),
        "{err}"
    );
    let (seen, _) = s.server.take();
    // The first attempt, then 3 retries that add nothing, then a 4th: the end.
    assert_eq!(seen.len(), 5, "{seen:?}");
    let dest = target_file_in(&s.dl, &t);
    assert!(!dest.exists());
    assert_eq!(
        std::fs::metadata(partial_path(&dest)).unwrap().len(),
        100_000
    );
    // The next run resumes where it stopped.
    s.server.plan(&[]);
    let transferred = download_ok(&up, &t, &s.dl, &data);
    let (seen, _) = s.server.take();
    assert_eq!(ranges(&seen), [Some("bytes=100000-".to_string())]);
    assert_eq!(transferred, LEN as u64 - 100_000);
}

#[test]
fn changed_etag_means_if_range_mismatch_and_a_full_download() {
    let data = image(5);
    let (s, up, t) = Setup::ready(&data);
    // The file is re-deployed between the two attempts: same bytes, new ETag.
    s.server.plan(&[
        (Step::CutAfter(300_000), None),
        (Step::Normal, Some("\"v2\"")),
    ]);
    let transferred = download_ok(&up, &t, &s.dl, &data);
    let (seen, _) = s.server.take();
    assert_eq!(ranges(&seen), [None, Some("bytes=300000-".to_string())]);
    assert_eq!(seen[1].if_range.as_deref(), Some("\"v1\""));
    assert_eq!(seen[1].status, 200, "If-Range mismatch: the whole file");
    assert_eq!(transferred, 300_000 + LEN as u64);
}

#[test]
fn odd_answers_to_a_range_start_over() {
    for odd in [Step::Status(416), Step::WrongRange] {
        let data = image(6);
        let (s, up, t) = Setup::ready(&data);
        s.server
            .plan(&[(Step::CutAfter(300_000), None), (odd, None)]);
        download_ok(&up, &t, &s.dl, &data);
        let (seen, _) = s.server.take();
        // The odd answer is dropped and the whole file asked for again.
        assert_eq!(
            ranges(&seen),
            [None, Some("bytes=300000-".to_string()), None],
            "{odd:?}"
        );
    }
}

#[test]
fn corrupted_body_is_refused_and_leaves_nothing_that_wedges_the_next_run() {
    let data = image(7);
    let (s, up, t) = Setup::ready(&data);
    let dest = target_file_in(&s.dl, &t);

    // A complete download from byte 0 that fails the hash: refused, nothing kept.
    s.server.plan(&[(Step::Corrupt, None)]);
    let err = up.download_target(&t, &s.dl).unwrap_err();
    assert!(matches!(err, Error::HashMismatch { .. }), "{err:?}");
    assert!(names(&s.dl).is_empty(), "{:?}", names(&s.dl));
    assert_eq!(
        s.server.take().0.len(),
        1,
        "a fresh download is not retried"
    );

    // Corruption in the resumed part: detected at the end, downloaded once more from 0.
    s.server
        .plan(&[(Step::CutAfter(300_000), None), (Step::Corrupt, None)]);
    download_ok(&up, &t, &s.dl, &data);
    let (seen, _) = s.server.take();
    assert_eq!(
        ranges(&seen),
        [None, Some("bytes=300000-".to_string()), None]
    );

    // Corrupt again on that second download: refused, and nothing is left behind.
    std::fs::remove_file(&dest).unwrap();
    s.server.plan(&[
        (Step::CutAfter(300_000), None),
        (Step::Corrupt, None),
        (Step::Corrupt, None),
    ]);
    let err = up.download_target(&t, &s.dl).unwrap_err();
    assert!(matches!(err, Error::HashMismatch { .. }), "{err:?}");
    assert!(names(&s.dl).is_empty(), "{:?}", names(&s.dl));
    assert_eq!(s.server.take().0.len(), 3);
    // The next run is a plain download.
    download_ok(&up, &t, &s.dl, &data);
    assert_eq!(ranges(&s.server.take().0), [None]);
}

#[test]
fn garbage_prefix_after_a_power_cut_is_detected_and_downloaded_again() {
    let data = image(8);
    let (s, up, t) = Setup::ready(&data);
    let dest = target_file_in(&s.dl, &t);
    // The transfer breaks and the server then refuses: the call ends, the partial stays.
    s.server
        .plan(&[(Step::CutAfter(300_000), None), (Step::Status(503), None)]);
    let err = up.download_target(&t, &s.dl).unwrap_err();
    assert!(err.to_string().contains("HTTP status 503"), "{err}");
    assert_eq!(
        names(&s.dl),
        ["fw.bin.part", "fw.bin.part.json"],
        "the partial and its sidecar are kept"
    );
    assert_eq!(mode(&partial_path(&dest)), 0o600);
    assert_eq!(mode(&partial_info_path(&dest)), 0o600);
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(partial_info_path(&dest)).unwrap()).unwrap();
    assert_eq!(info["format"], "ota-partial-download-1");
    assert_eq!(info["target"], "fw.bin");
    assert_eq!(info["length"], LEN);
    assert_eq!(info["etag"], "\"v1\"");
    assert_eq!(info["hashes"]["sha256"], t.hashes()["sha256"]);
    let sidecar = std::fs::read(partial_info_path(&dest)).unwrap();
    s.server.take();

    // A power cut: the size made it to disk, the data blocks did not.
    std::fs::write(partial_path(&dest), vec![0u8; 300_000]).unwrap();
    let up = s.updater(TransferBounds::TARGETS);
    let transferred = download_ok(&up, &t, &s.dl, &data);
    let (seen, _) = s.server.take();
    assert_eq!(
        ranges(&seen),
        [Some("bytes=300000-".to_string()), None],
        "resumed, found bad at the end, downloaded once more from the start"
    );
    assert_eq!(transferred, (LEN - 300_000 + LEN) as u64);

    // A partial longer than the target is garbage too: discarded before any request.
    std::fs::remove_file(&dest).unwrap();
    std::fs::write(partial_path(&dest), vec![1u8; LEN + 1]).unwrap();
    std::fs::write(partial_info_path(&dest), &sidecar).unwrap();
    download_ok(&up, &t, &s.dl, &data);
    assert_eq!(ranges(&s.server.take().0), [None]);
}

#[test]
fn complete_partial_from_an_interrupted_run_is_committed_without_a_request() {
    let data = image(9);
    let (s, up, t) = Setup::ready(&data);
    let dest = target_file_in(&s.dl, &t);
    s.server
        .plan(&[(Step::CutAfter(300_000), None), (Step::Status(503), None)]);
    up.download_target(&t, &s.dl).unwrap_err();
    // As if the run died after the last byte was written, before the rename.
    std::fs::write(partial_path(&dest), &data).unwrap();
    s.server.take();
    assert_eq!(download_ok(&up, &t, &s.dl, &data), 0);
    assert!(s.server.take().0.is_empty());
}

#[test]
fn partial_of_another_target_version_is_not_resumed() {
    let old = image(10);
    let new = image(11);
    let s = Setup::new(&old);
    let mut up = s.updater(TransferBounds::TARGETS);
    let t_old = s.target(&mut up);
    s.server
        .plan(&[(Step::CutAfter(300_000), None), (Step::Status(503), None)]);
    up.download_target(&t_old, &s.dl).unwrap_err();
    assert_eq!(names(&s.dl), ["fw.bin.part", "fw.bin.part.json"]);

    // The repository now signs another fw.bin (same path, same length, other bytes).
    let other = Server::start(publish(s.tmp.path(), "repo2", &new));
    let md2 = s.tmp.path().join("md2");
    Updater::bootstrap(&md2, &Repo::new().root_bytes(1)).unwrap();
    let mut up2 = updater(&md2, &other.base, TransferBounds::TARGETS);
    let t_new = up2.get_target_info("fw.bin").unwrap().unwrap();
    assert_eq!(target_file_in(&s.dl, &t_new), target_file_in(&s.dl, &t_old));
    let transferred = download_ok(&up2, &t_new, &s.dl, &new);
    assert_eq!(ranges(&other.take().0), [None], "not resumed");
    assert_eq!(transferred, LEN as u64);
}

#[test]
fn stalled_server_ends_with_the_time_bound_error_and_a_later_call_finishes() {
    let data = image(12);
    let s = Setup::new(&data);
    let bounds = TransferBounds {
        deadline: None,
        min_rate: 0,
        grace: Duration::ZERO,
        stall: Duration::from_secs(1),
    };
    let mut up = s.updater(bounds);
    let t = s.target(&mut up);
    let dest = target_file_in(&s.dl, &t);
    // 300 KB then silence; the resumed request gets a head and silence again.
    s.server.plan(&[
        (Step::StallAfter(300_000), None),
        (Step::StallAfter(0), None),
    ]);
    let start = Instant::now();
    let err = up.download_target(&t, &s.dl).unwrap_err();
    let took = start.elapsed();
    assert!(
        matches!(err, Error::Transport(TransportError::TooSlow { .. })),
        "{err:?}"
    );
    assert!(took < Duration::from_secs(6), "took {took:?}");
    let (seen, _) = s.server.take();
    assert_eq!(ranges(&seen), [None, Some("bytes=300000-".to_string())]);
    assert!(!dest.exists());
    assert_eq!(
        std::fs::read(partial_path(&dest)).unwrap(),
        &data[..300_000],
        "the partial is kept"
    );

    // A later run (a new updater) finishes the file from there.
    let mut up = s.updater(bounds);
    let t = s.target(&mut up);
    let transferred = download_ok(&up, &t, &s.dl, &data);
    assert_eq!(
        ranges(&s.server.take().0),
        [Some("bytes=300000-".to_string())]
    );
    assert_eq!(transferred, (LEN - 300_000) as u64);
}

/// A transport that only implements `fetch` (the trait's default `fetch_range`), cutting
/// its first stream short.
struct FetchOnly {
    inner: HttpTransport,
    calls: AtomicU64,
}

struct Cut(FetchStream, usize);

impl Read for Cut {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.1 == 0 {
            return Err(std::io::ErrorKind::ConnectionReset.into());
        }
        let want = buf.len().min(self.1);
        let n = self.0.read(&mut buf[..want])?;
        self.1 -= n;
        Ok(n)
    }
}

impl Transport for FetchOnly {
    fn fetch(&self, relative: &str, max_len: u64) -> Result<FetchStream, TransportError> {
        let stream = self.inner.fetch(relative, max_len)?;
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            return Ok(Box::new(Cut(stream, 300_000)));
        }
        Ok(stream)
    }

    fn location(&self, relative: &str) -> String {
        self.inner.location(relative)
    }
}

#[test]
fn transport_without_ranges_still_downloads_with_the_default_fallback() {
    let data = image(13);
    let s = Setup::new(&data);
    let mut c = UpdaterConfig::new(
        &s.md,
        Box::new(HttpTransport::new(&format!("{}/metadata/", s.server.base)).unwrap()),
        Box::new(FetchOnly {
            inner: HttpTransport::new(&format!("{}/targets/", s.server.base)).unwrap(),
            calls: AtomicU64::new(0),
        }),
    );
    c.clock = Box::new(FixedClock(now()));
    let mut up = Updater::new(c).unwrap();
    let t = s.target(&mut up);
    let transferred = download_ok(&up, &t, &s.dl, &data);
    assert_eq!(ranges(&s.server.take().0), [None, None]);
    assert_eq!(transferred, 300_000 + LEN as u64);
    // The default implementation says it started over.
    let fetched = FetchOnly {
        inner: HttpTransport::new(&format!("{}/targets/", s.server.base)).unwrap(),
        calls: AtomicU64::new(1),
    }
    .fetch_range("fw.bin", 10, Some(&Validator::default()), LEN as u64)
    .unwrap();
    assert_eq!(fetched.offset, 0);
}
