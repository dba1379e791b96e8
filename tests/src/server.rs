//! A real `ota-server` on 127.0.0.1 (an ephemeral port), run on its own Tokio runtime so that
//! synchronous tests can use it. Dropping the handle shuts the server down.
use ota_repo_server::{serve, Config};
use std::net::SocketAddr;
use std::path::Path;

/// A running repository server.
pub struct TestServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// Serve `repo` (a directory with `metadata/` and `targets/`).
    pub fn start(repo: &Path) -> Self {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let config = Config::new(repo, "127.0.0.1:0".parse().unwrap());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let running = serve(config, async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
                addr_tx.send(running.local_addr()).unwrap();
                running.wait().await;
            });
        });
        let addr = addr_rx.recv().unwrap();
        TestServer {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }
}

impl crate::RepoHost for TestServer {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
