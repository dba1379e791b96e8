//! Resumable downloads against the real servers a fleet uses: `ota-server` and nginx (any
//! static web server or CDN). A recording TCP proxy in front of each cuts a target transfer
//! short, as a bad link does; the client then asks the real server for the rest
//! (`Range: bytes=N-` with `If-Range`), in the same call or in a later run, and the server's
//! `206` (and nginx's access log) show that only the rest crossed the network.
use ota_client::target_download::{partial_info_path, partial_path, target_file_in};
use ota_client::{Error, VerifiedTarget};
use ota_tests::device::TestDevice;
use ota_tests::fixture::RepoFixture;
use ota_tests::nginx::Nginx;
use ota_tests::server::TestServer;
use ota_tests::RepoHost;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The target: 2 MiB of noise.
const LEN: usize = 2 << 20;
/// Body bytes of the first target response the proxy lets through before cutting it.
const CUT: u64 = 700_000;

fn image() -> Vec<u8> {
    let mut x = 0x9e37_79b9u32;
    (0..LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// One request through the proxy and the answer it got.
#[derive(Debug, Clone)]
struct Exchange {
    path: String,
    range: Option<String>,
    if_range: Option<String>,
    status: u16,
    /// Body bytes passed on to the client.
    body: u64,
}

#[derive(Default)]
struct ProxyState {
    log: Mutex<Vec<Exchange>>,
    /// Cut the next target response after this many body bytes.
    cut_next: Mutex<Option<u64>>,
    /// After that cut, close every new connection at once (the link stays down).
    down_after_cut: AtomicBool,
    down: AtomicBool,
}

/// A recording HTTP/1.1 proxy on 127.0.0.1 in front of `upstream` (`127.0.0.1:PORT`).
struct Proxy {
    url: String,
    state: Arc<ProxyState>,
}

struct Request {
    path: String,
    range: Option<String>,
    if_range: Option<String>,
}

impl Proxy {
    fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(ProxyState::default());
        let st = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if st.down.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let (st, upstream) = (st.clone(), upstream.clone());
                std::thread::spawn(move || relay(client, &upstream, &st));
            }
        });
        Proxy { url, state }
    }

    /// Target exchanges so far (forgotten after the call).
    fn take_targets(&self) -> Vec<Exchange> {
        std::mem::take(&mut *self.state.log.lock().unwrap())
            .into_iter()
            .filter(|e| e.path.starts_with("/targets/"))
            .collect()
    }
}

impl RepoHost for Proxy {
    fn url(&self) -> String {
        self.url.clone()
    }
}

/// Read one head (request or response) up to the blank line; `None` at end of stream.
fn read_head(r: &mut impl BufRead) -> Option<String> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        head.push_str(&line);
        if line == "\r\n" {
            return Some(head);
        }
    }
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

fn relay(client: TcpStream, upstream: &str, st: &ProxyState) {
    let Ok(server) = TcpStream::connect(upstream) else {
        return;
    };
    let pending: Arc<Mutex<VecDeque<Request>>> = Arc::default();
    // Requests: client -> server, one head at a time (GETs have no body).
    {
        let (client, mut server, pending) = (
            client.try_clone().unwrap(),
            server.try_clone().unwrap(),
            pending.clone(),
        );
        std::thread::spawn(move || {
            let mut r = BufReader::new(client);
            while let Some(head) = read_head(&mut r) {
                pending.lock().unwrap().push_back(Request {
                    path: head.split(' ').nth(1).unwrap_or("/").to_string(),
                    range: header(&head, "Range"),
                    if_range: header(&head, "If-Range"),
                });
                if server.write_all(head.as_bytes()).is_err() {
                    break;
                }
            }
            let _ = server.shutdown(Shutdown::Write);
        });
    }
    // Responses: server -> client, each head and its Content-Length body.
    let mut r = BufReader::new(server.try_clone().unwrap());
    let mut out = client;
    while let Some(head) = read_head(&mut r) {
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        assert!(
            header(&head, "Transfer-Encoding").is_none(),
            "chunked responses are not relayed: {head}"
        );
        let len: u64 = header(&head, "Content-Length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let req = pending
            .lock()
            .unwrap()
            .pop_front()
            .expect("a response to a request");
        let cut = if req.path.starts_with("/targets/") && matches!(status, 200 | 206) {
            st.cut_next.lock().unwrap().take()
        } else {
            None
        };
        let pass = cut.map_or(len, |c| c.min(len));
        let mut body = vec![0u8; usize::try_from(pass).unwrap()];
        let ok = r.read_exact(&mut body).is_ok()
            && out.write_all(head.as_bytes()).is_ok()
            && out.write_all(&body).is_ok();
        st.log.lock().unwrap().push(Exchange {
            path: req.path,
            range: req.range,
            if_range: req.if_range,
            status,
            body: pass,
        });
        if cut.is_some() {
            if st.down_after_cut.load(Ordering::SeqCst) {
                st.down.store(true, Ordering::SeqCst);
            }
            let _ = out.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
            return;
        }
        if !ok {
            return;
        }
        // Skip what was not passed on (not the case without a cut).
        let mut rest = (&mut r).take(len - pass);
        let _ = std::io::copy(&mut rest, &mut std::io::sink());
    }
}

/// The real server behind the proxy.
enum Upstream {
    OtaServer(TestServer),
    Nginx(Nginx),
}

impl Upstream {
    fn addr(&self) -> String {
        let url = match self {
            Upstream::OtaServer(s) => s.url(),
            Upstream::Nginx(n) => n.url(),
        };
        url.trim_start_matches("http://").to_string()
    }

    fn access_log(&self) -> Option<String> {
        match self {
            Upstream::OtaServer(_) => None,
            Upstream::Nginx(n) => Some(n.access_log()),
        }
    }
}

struct Setup {
    fx: RepoFixture,
    data: Vec<u8>,
    upstream: Upstream,
    proxy: Proxy,
    dev: TestDevice,
}

/// A repository with `fw.img` served by ota-server or nginx (`None`: nginx missing, skip).
fn setup(nginx: bool) -> Option<Setup> {
    let mut fx = RepoFixture::new();
    let data = image();
    fx.add_target("fw.img", &data);
    fx.publish();
    let upstream = if nginx {
        Upstream::Nginx(Nginx::start(fx.path())?)
    } else {
        Upstream::OtaServer(TestServer::start(fx.path()))
    };
    let proxy = Proxy::start(upstream.addr());
    let dev = TestDevice::new(&fx.root_bytes(), &proxy);
    Some(Setup {
        fx,
        data,
        upstream,
        proxy,
        dev,
    })
}

impl Setup {
    /// A fresh updater (a new run), refreshed, and the target.
    fn target(&self) -> (ota_client::Updater, VerifiedTarget) {
        let mut up = self.dev.updater();
        up.refresh().unwrap();
        let t = up.get_target_info("fw.img").unwrap().unwrap();
        (up, t)
    }

    fn download_ok(&self, up: &ota_client::Updater, t: &VerifiedTarget) -> u64 {
        let (path, transferred) = up
            .download_target_counted(t, &self.dev.downloads_dir())
            .unwrap();
        assert!(
            std::fs::read(&path).unwrap() == self.data,
            "content differs"
        );
        assert!(!partial_path(&path).exists() && !partial_info_path(&path).exists());
        transferred
    }

    /// The target file as the server has it.
    fn served_file(&self) -> std::path::PathBuf {
        let sha = ota_formats::hash::sha256_hex(&self.data);
        self.fx.path().join("targets").join(format!("{sha}.fw.img"))
    }

    /// A first run whose transfer breaks after [`CUT`] bytes and whose link then stays down:
    /// it fails and leaves the partial download.
    fn interrupted_run(&self) {
        *self.proxy.state.cut_next.lock().unwrap() = Some(CUT);
        self.proxy
            .state
            .down_after_cut
            .store(true, Ordering::SeqCst);
        let (up, t) = self.target();
        let err = up
            .download_target(&t, &self.dev.downloads_dir())
            .unwrap_err();
        assert!(matches!(err, Error::Transport(_)), "{err:?}");
        let dest = target_file_in(&self.dev.downloads_dir(), &t);
        assert!(!dest.exists());
        assert_eq!(std::fs::metadata(partial_path(&dest)).unwrap().len(), CUT);
        let info: serde_json::Value =
            serde_json::from_slice(&std::fs::read(partial_info_path(&dest)).unwrap()).unwrap();
        assert!(
            info["etag"].as_str().is_some_and(|e| e.starts_with('"')),
            "the server's strong ETag is kept: {info}"
        );
        let seen = self.proxy.take_targets();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].status, 200);
        assert_eq!(seen[0].body, CUT);
        self.proxy
            .state
            .down_after_cut
            .store(false, Ordering::SeqCst);
        self.proxy.state.down.store(false, Ordering::SeqCst);
    }
}

fn assert_resumed(ex: &Exchange) {
    assert_eq!(
        ex.range.as_deref(),
        Some(&*format!("bytes={CUT}-")),
        "{ex:?}"
    );
    assert!(ex.if_range.is_some(), "If-Range sent: {ex:?}");
    assert_eq!(ex.status, 206, "{ex:?}");
    assert_eq!(ex.body, LEN as u64 - CUT, "only the rest: {ex:?}");
}

/// nginx logged a 206 for the target.
fn assert_logged_206(s: &Setup) {
    if let Some(log) = s.upstream.access_log() {
        assert!(
            log.lines().any(|l| l.contains(".fw.img HTTP/1.1\" 206 ")),
            "{log}"
        );
    }
}

fn resumed_in_the_same_call(nginx: bool) {
    let Some(s) = setup(nginx) else { return };
    *s.proxy.state.cut_next.lock().unwrap() = Some(CUT);
    let (up, t) = s.target();
    let transferred = s.download_ok(&up, &t);
    let seen = s.proxy.take_targets();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!((seen[0].range.as_deref(), seen[0].body), (None, CUT));
    assert_resumed(&seen[1]);
    assert_eq!(
        transferred, LEN as u64,
        "one file crossed the network, not two"
    );
    assert_logged_206(&s);
}

fn resumed_in_a_later_run(nginx: bool) {
    let Some(s) = setup(nginx) else { return };
    s.interrupted_run();
    let (up, t) = s.target();
    let transferred = s.download_ok(&up, &t);
    let seen = s.proxy.take_targets();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_resumed(&seen[0]);
    assert_eq!(transferred, LEN as u64 - CUT);
    assert_logged_206(&s);
}

fn changed_file_is_downloaded_whole(nginx: bool) {
    let Some(s) = setup(nginx) else { return };
    s.interrupted_run();
    // The file is re-deployed (same bytes, new mtime): its ETag changes, If-Range fails.
    let file = std::fs::File::options()
        .write(true)
        .open(s.served_file())
        .unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    drop(file);
    let (up, t) = s.target();
    let transferred = s.download_ok(&up, &t);
    let seen = s.proxy.take_targets();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].range.as_deref(), Some(&*format!("bytes={CUT}-")));
    assert!(seen[0].if_range.is_some());
    assert_eq!(seen[0].status, 200, "If-Range mismatch: the whole file");
    assert_eq!(transferred, LEN as u64);
}

#[test]
fn ota_server_resume_in_the_same_call() {
    resumed_in_the_same_call(false);
}

#[test]
fn ota_server_resume_in_a_later_run() {
    resumed_in_a_later_run(false);
}

#[test]
fn ota_server_changed_file_is_downloaded_whole() {
    changed_file_is_downloaded_whole(false);
}

#[test]
fn nginx_resume_in_the_same_call() {
    resumed_in_the_same_call(true);
}

#[test]
fn nginx_resume_in_a_later_run() {
    resumed_in_a_later_run(true);
}

#[test]
fn nginx_changed_file_is_downloaded_whole() {
    changed_file_is_downloaded_whole(true);
}
