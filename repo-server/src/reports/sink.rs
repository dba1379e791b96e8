//! The report store's own thread: verified reports queue up (bounded), and the thread stores
//! whatever is queued in one transaction, so a burst of reports costs one commit per batch
//! rather than one per device. Store clients block (PostgreSQL's runs its own runtime), so
//! they never run on the server's async threads.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use ota_fleet::{RecordOutcome, ReportRecord, ReportStore, StoreError};
use tokio::sync::oneshot;

/// Reports waiting at most; beyond it a device is told to retry later (503).
pub const QUEUE: usize = 20_000;
/// Reports stored in one transaction at most.
pub const BATCH: usize = 2_000;

/// Why a report could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The queue is full.
    #[error("the report queue is full ({QUEUE} waiting); retry later")]
    Busy,
    /// The store thread is gone.
    #[error("the report store is not running")]
    Stopped,
    /// The database refused the batch.
    #[error("report store: {0}")]
    Store(String),
    /// The store cannot be opened.
    #[error(transparent)]
    Open(#[from] StoreError),
    /// No thread for the store.
    #[error("cannot start the report store thread: {0}")]
    Thread(std::io::Error),
}

struct Job {
    record: ReportRecord,
    reply: oneshot::Sender<Result<RecordOutcome, SinkError>>,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Reports stored.
    pub stored: AtomicU64,
    /// Reports refused as replays.
    pub replayed: AtomicU64,
    /// Batches that failed in the database.
    pub failed_batches: AtomicU64,
}

/// Sends verified reports to the store thread.
#[derive(Clone)]
pub struct ReportSink {
    tx: SyncSender<Job>,
    stats: Arc<SinkStats>,
}

impl std::fmt::Debug for ReportSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportSink").finish_non_exhaustive()
    }
}

impl ReportSink {
    /// Open `database` on a new thread and start storing. Returns once the store is open
    /// (migrated), or with the reason it cannot be.
    pub fn start(database: &str) -> Result<Self, SinkError> {
        let (tx, rx) = mpsc::sync_channel::<Job>(QUEUE);
        let (opened_tx, opened_rx) = mpsc::channel();
        let database = database.to_string();
        let stats = Arc::new(SinkStats::default());
        let thread_stats = Arc::clone(&stats);
        let spawned = std::thread::Builder::new()
            .name("report-store".into())
            .spawn(move || match ota_fleet::open(&database) {
                Ok(store) => {
                    let _ = opened_tx.send(Ok(()));
                    run(store, &rx, &thread_stats);
                }
                Err(e) => {
                    let _ = opened_tx.send(Err(e));
                }
            });
        if let Err(e) = spawned {
            return Err(SinkError::Thread(e));
        }
        match opened_rx.recv() {
            Ok(Ok(())) => Ok(ReportSink { tx, stats }),
            Ok(Err(e)) => Err(SinkError::Open(e)),
            Err(_) => Err(SinkError::Stopped),
        }
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<SinkStats> {
        &self.stats
    }

    /// Store one verified report; resolves once its batch committed.
    pub async fn submit(&self, record: ReportRecord) -> Result<RecordOutcome, SinkError> {
        let (reply, answer) = oneshot::channel();
        match self.tx.try_send(Job { record, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(SinkError::Busy),
            Err(TrySendError::Disconnected(_)) => return Err(SinkError::Stopped),
        }
        answer.await.unwrap_or(Err(SinkError::Stopped))
    }
}

fn run(mut store: Box<dyn ReportStore>, rx: &Receiver<Job>, stats: &SinkStats) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let batch: Vec<ReportRecord> = jobs.iter().map(|j| j.record.clone()).collect();
        match store.record(&batch) {
            Ok(outcomes) => {
                for (job, outcome) in jobs.into_iter().zip(outcomes) {
                    match outcome {
                        RecordOutcome::Stored => stats.stored.fetch_add(1, Ordering::Relaxed),
                        _ => stats.replayed.fetch_add(1, Ordering::Relaxed),
                    };
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                stats.failed_batches.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, reports = batch.len(), "storing reports failed");
                let reason = e.to_string();
                for job in jobs {
                    let _ = job.reply.send(Err(SinkError::Store(reason.clone())));
                }
            }
        }
    }
}
