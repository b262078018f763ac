//! The work queue of `gradlens serve`: one worker thread owns the device and runs one job at a
//! time; up to `waiting` more wait in a bounded channel, and past that a job is refused (the
//! API answers 503). Each job carries a `Cancel`, set when its client goes away, when it runs
//! past the time limit, or at shutdown; a panic in a job becomes its error.

use super::models::Models;
use crate::attribution::{Cancel, Progress};
use crate::error::{Error, Result};
use crate::models::Model;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// What a job computes, on the worker thread, with its switch and a progress hook to hand to
/// the run's `Settings`.
pub type Work = Box<dyn FnOnce(&Model, Cancel, Progress) -> Result<serde_json::Value> + Send>;

struct Job {
    work: Work,
    /// The model it runs on, by name (`None`: the loaded one).
    model: Option<String>,
    cancel: Cancel,
    reply: oneshot::Sender<Result<serde_json::Value>>,
}

/// A submitted job: its answer to come, and the switch that stops it.
pub struct Ticket {
    pub answer: oneshot::Receiver<Result<serde_json::Value>>,
    pub cancel: Cancel,
}

#[derive(Clone)]
pub struct Queue {
    sender: Arc<Mutex<Option<SyncSender<Job>>>>,
    /// The running job's and the waiting jobs' switches, for shutdown.
    live: Arc<Mutex<Vec<Cancel>>>,
    /// The running job's progress, `(done, total)` chunks or steps.
    running: Arc<Mutex<Option<(usize, usize)>>>,
}

/// Why a job was not taken.
pub enum Refused {
    /// The queue is full.
    Busy,
    /// The server is shutting down.
    Closed,
}

impl Queue {
    /// Starts the worker, which loads and runs `models` until the queue closes.
    pub fn start(models: Arc<Models>, waiting: usize) -> Result<Queue> {
        let (sender, jobs) = sync_channel::<Job>(waiting);
        let live: Arc<Mutex<Vec<Cancel>>> = Arc::default();
        let running: Arc<Mutex<Option<(usize, usize)>>> = Arc::default();
        let done = live.clone();
        let state = running.clone();
        std::thread::Builder::new()
            .name("gradlens-worker".into())
            .spawn(move || {
                for job in jobs {
                    let answer = if job.cancel.is_cancelled() {
                        Err(Error::Cancelled)
                    } else {
                        let cancel = job.cancel.clone();
                        *lock(&state) = Some((0, 0));
                        let shared = state.clone();
                        let progress: Progress = Arc::new(move |done, total| {
                            *lock(&shared) = Some((done, total));
                        });
                        let run = || {
                            let model = models.get(job.model.as_deref())?;
                            (job.work)(&model, cancel, progress)
                        };
                        let answer = catch_unwind(AssertUnwindSafe(run))
                            .unwrap_or_else(|panic| Err(Error::Other(panic_text(&panic))));
                        *lock(&state) = None;
                        answer
                    };
                    lock(&done).retain(|c| !c.same(&job.cancel));
                    // The client may have gone: nobody to answer.
                    let _ = job.reply.send(answer);
                }
            })
            .map_err(|e| Error::Other(format!("serve: could not start the worker: {e}")))?;
        Ok(Queue {
            sender: Arc::new(Mutex::new(Some(sender))),
            live,
            running,
        })
    }

    /// `(done, total)` of the running job's chunks or steps (`(0, 0)` before its first), and
    /// how many jobs are queued or running.
    pub fn status(&self) -> (Option<(usize, usize)>, usize) {
        (*lock(&self.running), lock(&self.live).len())
    }

    pub fn submit(
        &self,
        work: Work,
        model: Option<String>,
    ) -> std::result::Result<Ticket, Refused> {
        let (reply, answer) = oneshot::channel();
        let cancel = Cancel::new();
        let job = Job {
            work,
            model,
            cancel: cancel.clone(),
            reply,
        };
        let sender = lock(&self.sender);
        let Some(sender) = sender.as_ref() else {
            return Err(Refused::Closed);
        };
        // Registered before it is sent, so the worker's removal always finds it.
        lock(&self.live).push(cancel.clone());
        match sender.try_send(job) {
            Ok(()) => Ok(Ticket { answer, cancel }),
            Err(e) => {
                lock(&self.live).retain(|c| !c.same(&cancel));
                Err(match e {
                    TrySendError::Full(_) => Refused::Busy,
                    TrySendError::Disconnected(_) => Refused::Closed,
                })
            }
        }
    }

    /// Refuses new jobs and cancels the running and the waiting ones (each answers
    /// `Cancelled`); the worker ends when the last is answered.
    pub fn close(&self) {
        lock(&self.sender).take();
        for c in lock(&self.live).iter() {
            c.cancel();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into());
    format!("internal error: {what}")
}
