//! The gateway's listeners. Each front door (the web console; later the S3 API) is an axum
//! router on a listener of its own, bound before anything is served so that a taken port fails
//! startup naming it. They run side by side until a signal, and the gateway stops as a whole
//! when any one of them fails: a gateway with a dead door must not look healthy.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, Context};
use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long requests in flight (a download, an upload) may go on after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A front door: its name for messages, its bound listener and what it serves.
pub struct Door {
    pub name: &'static str,
    pub listener: TcpListener,
    pub router: Router,
}

impl Door {
    /// Binds `addr` for the door `name`; the error names both.
    pub async fn bind(
        name: &'static str,
        addr: SocketAddr,
        router: Router,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("bind the {name} listener on {addr}"))?;
        Ok(Self {
            name,
            listener,
            router,
        })
    }

    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listener
            .local_addr()
            .with_context(|| format!("address of the {} listener", self.name))
    }
}

/// Serves every door until `shutdown` is cancelled (then lets requests in flight finish, for
/// up to [`DRAIN_TIMEOUT`]) or one of them fails, which stops the others and is the error.
pub async fn serve(doors: Vec<Door>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut running = JoinSet::new();
    for door in doors {
        let stop = shutdown.clone();
        running.spawn(async move {
            let served = axum::serve(door.listener, door.router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            (door.name, served)
        });
    }
    let mut outcome = Ok(());
    while let Some(joined) = next(&mut running, &shutdown).await {
        let (name, served) = joined.context("a listener's task")?;
        if !shutdown.is_cancelled() {
            outcome = Err(match served {
                Ok(()) => anyhow!("the {name} listener stopped"),
                Err(e) => anyhow!(e).context(format!("the {name} listener failed")),
            });
            shutdown.cancel();
        }
    }
    outcome
}

/// The next listener task to end; `None` when all have, or when they outlast the drain.
async fn next(
    running: &mut JoinSet<(&'static str, std::io::Result<()>)>,
    shutdown: &CancellationToken,
) -> Option<Result<(&'static str, std::io::Result<()>), tokio::task::JoinError>> {
    if !shutdown.is_cancelled() {
        return running.join_next().await;
    }
    match tokio::time::timeout(DRAIN_TIMEOUT, running.join_next()).await {
        Ok(joined) => joined,
        Err(_) => {
            tracing::warn!("requests still running after {DRAIN_TIMEOUT:?}; stopping anyway");
            None
        }
    }
}
