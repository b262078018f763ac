//! `gradlens serve`: a model loaded once (or one of an allow-list, `models.rs`), behind a JSON API and a single-page app whose
//! assets are in the binary. axum on tokio carries HTTP; the attributions run on one worker
//! thread per server (`queue.rs`), so the device does one at a time and a full queue answers
//! 503 instead of piling up work.

mod api;
mod models;
mod queue;

pub use models::Models;

use crate::error::{Error, Result};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// What the flags of `gradlens serve` set.
#[derive(Clone, Debug)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    /// A bearer token every API call must carry; required to bind beyond loopback.
    pub token: Option<String>,
    /// The largest request body, in bytes (413 past it).
    pub max_body: usize,
    /// Requests that may wait while one runs (503 past it).
    pub max_waiting: usize,
    /// Caps on the options that set a run's length (400 past them).
    pub max_steps: usize,
    pub max_samples: usize,
    /// The longest prompt in tokens (422 past it, as past the model's context).
    pub max_tokens: usize,
    /// The most tokens a request may generate and explain (400 past it).
    pub max_generate: usize,
    /// How long one request may run before it is cancelled (503).
    pub timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 8080,
            token: None,
            max_body: 1 << 20,
            max_waiting: 8,
            max_steps: 512,
            max_samples: 1024,
            max_tokens: 2048,
            max_generate: 64,
            timeout: Duration::from_secs(300),
        }
    }
}

/// Serves `models` until SIGINT or SIGTERM, then cancels the running job, answers the
/// waiting ones and returns. `ready` gets the bound address before the first request is
/// taken (the tests bind port 0).
pub fn serve(models: Models, config: Config, ready: impl FnOnce(SocketAddr)) -> Result<()> {
    if !config.host.is_loopback() && config.token.is_none() {
        return Err(Error::InvalidArgument(format!(
            "--host {} would let other machines run this model: give --token as well (every API call must then carry it)",
            config.host
        )));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("serve: could not start the runtime: {e}")))?;
    runtime.block_on(async move {
        let address = SocketAddr::new(config.host, config.port);
        let listener = tokio::net::TcpListener::bind(address).await.map_err(|e| {
            Error::InvalidArgument(format!("serve: cannot listen on {address}: {e}"))
        })?;
        let bound = listener
            .local_addr()
            .map_err(|e| Error::Other(format!("serve: {e}")))?;
        let models = Arc::new(models);
        let queue = queue::Queue::start(models.clone(), config.max_waiting)?;
        let app = api::router(api::App::new(models, queue.clone(), config));
        ready(bound);
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                stop_signal().await;
                queue.close();
            })
            .await
            .map_err(|e| Error::Other(format!("serve: {e}")))
    })
}

async fn stop_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
