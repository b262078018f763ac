//! Running Rust work from Python: on a thread of its own with the GIL released, so other
//! Python threads run meanwhile; Ctrl-C cancels it (the run stops before its next chunk of
//! passes and `KeyboardInterrupt` is raised); a panic is caught and raised as
//! `gradlens.errors.InternalError`, never reaching Python as one.

use gradlens::attribution::Cancel;
use pyo3::prelude::*;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

/// How often the waiting thread looks for a pending signal.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

pub fn run<T: Send>(
    py: Python<'_>,
    work: impl FnOnce(&Cancel) -> gradlens::Result<T> + Send,
) -> PyResult<T> {
    let cancel = Cancel::new();
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|scope| {
        let c = cancel.clone();
        scope.spawn(move || {
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| work(&c)));
            let _ = tx.send(result);
        });
        let mut interrupted: Option<PyErr> = None;
        let mut rx = rx;
        loop {
            // The receiver is not Sync: it goes into the GIL-free closure and back.
            let (got, back) = py.detach(move || (rx.recv_timeout(SIGNAL_POLL), rx));
            rx = back;
            match got {
                Ok(result) => return finish(py, result, interrupted),
                Err(RecvTimeoutError::Timeout) => {
                    if interrupted.is_none() {
                        if let Err(e) = py.check_signals() {
                            cancel.cancel();
                            interrupted = Some(e);
                        }
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(super::errors::raise(
                        py,
                        "InternalError",
                        "internal error: the worker thread ended without a result".into(),
                    ))
                }
            }
        }
    })
}

fn finish<T>(
    py: Python<'_>,
    result: std::thread::Result<gradlens::Result<T>>,
    interrupted: Option<PyErr>,
) -> PyResult<T> {
    if let Some(e) = interrupted {
        return Err(e); // Ctrl-C: whatever the run got to
    }
    match result {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(super::errors::to_py(py, e)),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".into());
            Err(super::errors::raise(
                py,
                "InternalError",
                format!("internal error (a bug in gradlens, please report it): {what}"),
            ))
        }
    }
}
