//! Work that runs beside the server, in every instance: the invalidation
//! listener (a thread), the mail worker (a thread), the purge and the
//! activity flush (tasks). One owner starts them and stops them, in one
//! order, whether the start failed half-way or the server shut down.

use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinHandle;

use crate::configuration::Settings;
use crate::services::mail::{Links, RunningWorker, Worker};
use crate::services::notices::Notices;
use crate::services::sessions::Sessions;
use crate::services::sessions::listener::Listener;
use crate::startup::services::{Services, pool};

/// How long shutdown waits for a mail being sent (after the requests in
/// flight): short, since an unsent mail is never lost.
const MAIL_STOP_WAIT: Duration = Duration::from_secs(3);

/// How queued mail is delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MailDelivery {
    /// By the worker's own thread, as it is queued: what `authd serve` does.
    Background,
    /// Only when asked (`Authd::mail`): for tests that deliver mail at a
    /// moment of their choosing.
    #[cfg(feature = "internals")]
    OnDemand,
}

/// What runs beside the server; [`Background::stop`] ends it all.
pub struct Background {
    listener: Option<Listener>,
    mail: Option<RunningWorker>,
    /// The mail worker, for on-demand delivery.
    worker: Option<Worker>,
    /// Periodic tasks (the purge, the activity flush), stopped by aborting.
    tasks: Vec<JoinHandle<()>>,
    sessions: Sessions,
    db_timeout: Duration,
}

impl Background {
    /// Starts everything, or, if a part fails to start, stops what did and
    /// says why.
    pub async fn start(
        settings: &Settings,
        services: &Services,
        delivery: MailDelivery,
    ) -> anyhow::Result<Self> {
        let mut background = Self {
            listener: None,
            mail: None,
            worker: None,
            tasks: Vec::new(),
            sessions: services.sessions.clone(),
            db_timeout: settings.database.timeout.std(),
        };
        if let Err(error) = background.start_parts(settings, services, delivery) {
            background.stop().await;
            return Err(error);
        }
        Ok(background)
    }

    fn start_parts(
        &mut self,
        settings: &Settings,
        services: &Services,
        delivery: MailDelivery,
    ) -> anyhow::Result<()> {
        self.listener = Some(
            Listener::start(settings.database.direct_url(), services.sessions.cache())
                .context("cannot start the invalidation listener")?,
        );
        // Mail is for account recovery and security notices; with both
        // off, nothing is queued.
        if settings.recovery.enabled || settings.mail.security_notifications {
            let composers: Vec<_> = services
                .recovery
                .composers()
                .into_iter()
                .chain(Notices::composers(&Links::new(&settings.mail)))
                .collect();
            // `/metrics` counts the kinds of services::mail_kinds from zero:
            // it must be every kind the worker sends, and no other.
            debug_assert_eq!(
                sorted(composers.iter().map(|(kind, _)| kind.0)),
                sorted(crate::services::mail_kinds().iter().map(|kind| kind.0)),
                "the mail worker's composers are not services::mail_kinds()"
            );
            // A pool of its own: mail never waits for, nor starves, the
            // requests' pool.
            let worker = Worker::new(
                pool(settings, 2, 0),
                services.mailer.clone(),
                &services.outbox,
                composers,
                services.clock.clone(),
            );
            match delivery {
                MailDelivery::Background => {
                    self.mail = Some(worker.start().context("cannot start the mail worker")?);
                }
                #[cfg(feature = "internals")]
                MailDelivery::OnDemand => self.worker = Some(worker),
            }
        }
        let retention = services.retention.clone();
        self.tasks
            .push(every(settings.retention.purge_interval.std(), move || {
                let retention = retention.clone();
                async move { retention.purge_round().await }
            }));
        let sessions = services.sessions.clone();
        self.tasks
            .push(every(sessions.activity_flush_interval(), move || {
                let sessions = sessions.clone();
                async move { sessions.flush_activity().await }
            }));
        Ok(())
    }

    /// The mail worker, when mail is delivered on demand.
    #[cfg(feature = "internals")]
    pub fn mail(&self) -> Option<&Worker> {
        self.worker.as_ref()
    }

    /// Stops everything, in order: the listener (no connection is being
    /// opened when the process exits), the mail worker (a mail being sent
    /// gets a few seconds: past them its row lock ends with its connection,
    /// and another instance sends it), the periodic tasks, and then the
    /// activity noted since the last flush is written.
    pub async fn stop(self) {
        if let Some(listener) = self.listener {
            tokio::task::spawn_blocking(move || listener.stop())
                .await
                .ok();
        }
        if let Some(mail) = self.mail {
            let db_timeout = self.db_timeout;
            let stopped = tokio::task::spawn_blocking(move || mail.stop(db_timeout));
            if tokio::time::timeout(MAIL_STOP_WAIT, stopped).await.is_err() {
                tracing::warn!("a mail was still being sent at shutdown; it stays queued");
            }
        }
        if let Some(worker) = self.worker {
            let db_timeout = self.db_timeout;
            tokio::task::spawn_blocking(move || worker.close(db_timeout))
                .await
                .ok();
        }
        // Awaited, so that an activity flush cut off part way has noted
        // again what it had not written before the last flush takes it.
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
        self.sessions.flush_activity().await;
    }
}

/// Runs `job` every `period`, from one period after now, until aborted.
fn every<F, Job>(period: Duration, mut job: Job) -> JoinHandle<()>
where
    Job: FnMut() -> F + Send + 'static,
    F: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(period).await;
            job().await;
        }
    })
}

/// Mail kinds' names in order, to compare two lists as sets.
fn sorted<'a>(kinds: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut kinds: Vec<_> = kinds.collect();
    kinds.sort_unstable();
    kinds
}
