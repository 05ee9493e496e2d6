//! Readiness: whether a server should be given work now, and if not, why.
//!
//! One [`Health`] per server feeds both probes: the standard gRPC health checking protocol
//! (`grpc.health.v1.Health`, SERVING or NOT_SERVING for the overall server "" and for the
//! server's own service) and the HTTP `/readyz` (200, or 503 with the reason). Liveness needs
//! no state: a server that answers is alive.

use std::sync::{Arc, Mutex};

use tonic_health::pb::health_server::{Health as HealthCheck, HealthServer};
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::lock::lock;

#[derive(Clone)]
pub struct Health {
    reporter: HealthReporter,
    /// The gRPC service reported besides "", e.g. "bigfs.v1.Meta".
    service: &'static str,
    /// Why the server is not ready; `None` when it is.
    not_ready: Arc<Mutex<Option<String>>>,
}

impl Health {
    /// Readiness for a server of gRPC service `service`, starting as `not_ready` says, and the
    /// health service to add to the gRPC server.
    pub async fn new(
        service: &'static str,
        not_ready: Option<String>,
    ) -> (Self, HealthServer<impl HealthCheck>) {
        let (reporter, server) = tonic_health::server::health_reporter();
        let health = Self {
            reporter,
            service,
            not_ready: Arc::new(Mutex::new(None)),
        };
        health.report(&not_ready).await;
        *lock(&health.not_ready) = not_ready;
        (health, server)
    }

    /// Why the server is not ready, or `None` when it is.
    pub fn not_ready(&self) -> Option<String> {
        lock(&self.not_ready).clone()
    }

    /// Sets readiness: `None` ready, `Some(reason)` not. A change is logged. Call from one
    /// task only: two calls at once may reach the gRPC probe in the other order.
    pub async fn set(&self, not_ready: Option<String>) {
        {
            let mut current = lock(&self.not_ready);
            if *current == not_ready {
                return;
            }
            match &not_ready {
                Some(reason) => tracing::info!("not ready: {reason}"),
                None => tracing::info!("ready"),
            }
            current.clone_from(&not_ready);
        }
        self.report(&not_ready).await;
    }

    async fn report(&self, not_ready: &Option<String>) {
        let status = match not_ready {
            None => ServingStatus::Serving,
            Some(_) => ServingStatus::NotServing,
        };
        self.reporter.set_service_status("", status).await;
        self.reporter.set_service_status(self.service, status).await;
    }
}
