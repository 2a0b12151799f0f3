//! bcrypt's own threads. A hash takes a quarter of a second of one core:
//! on the blocking pool it would queue ahead of database calls, and at
//! normal priority a login storm would take the CPU from every other
//! request. So hashing runs on as many threads as there are cores (more
//! cannot go faster), at the lowest priority (other work preempts it; it
//! still gets a share when everything is busy), behind a bounded queue
//! (past it, `503`, rather than a backlog nobody waits for).

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use thread_priority::{ThreadPriority, set_current_thread_priority};

type Job = Box<dyn FnOnce() + Send>;

/// How many hashes may wait for a thread.
pub const QUEUE: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("{QUEUE} password hashes are already waiting")]
    Full,
    #[error("the hashing threads are gone")]
    Gone,
}

#[derive(Clone)]
pub struct HashPool {
    jobs: SyncSender<Job>,
}

impl HashPool {
    /// Starts `threads` threads (at least one).
    pub fn start(threads: usize) -> Self {
        let (jobs, queue) = sync_channel::<Job>(QUEUE);
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads.max(1) {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("authd-hash-{n}"))
                .spawn(move || work(&queue));
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a hashing thread");
            }
        }
        Self { jobs }
    }

    /// Runs `job` on a hashing thread.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PoolError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let queued = metrics::gauge!("authd_hash_queue_depth");
        let started = queued.clone();
        let job: Job = Box::new(move || {
            started.decrement(1);
            let _ = done.send(job());
        });
        queued.increment(1);
        self.jobs.try_send(job).map_err(|error| {
            queued.decrement(1);
            match error {
                TrySendError::Full(_) => PoolError::Full,
                TrySendError::Disconnected(_) => PoolError::Gone,
            }
        })?;
        result.await.map_err(|_| PoolError::Gone)
    }
}

fn work(queue: &Mutex<Receiver<Job>>) {
    if let Err(error) = set_current_thread_priority(ThreadPriority::Min) {
        tracing::warn!(?error, "hashing runs at normal priority");
    }
    loop {
        // The lock is held only while waiting for the next job.
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}
