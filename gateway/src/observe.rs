//! The gateway's operator view, on the HTTP listener `--http-listen` (as the servers have):
//! `/metrics` with every front door's HTTP requests (by method and status), their latency to
//! the response's head, and the body bytes received and sent; `/healthz`; and `/readyz`, ready
//! while the metadata server answers (a gateway that cannot reach it can serve nothing but
//! errors, so a load balancer should send users elsewhere).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use tokio_util::sync::CancellationToken;

use bigfs_client::Client;
use bigfs_proto::observe::counted::CountedBody;
use bigfs_proto::observe::health::Health;

/// How often readiness asks the metadata server whether it answers.
const READINESS_INTERVAL: Duration = Duration::from_secs(5);

/// How long the metadata server may take to answer before the gateway counts as unready.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    door: &'static str,
    method: &'static str,
    status: u16,
}

/// A request's method as a label: the methods the doors serve, and "other" for any token a
/// client makes up (a label taken from it as is would let clients grow the series at will).
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DoorLabels {
    door: &'static str,
}

type HistogramFamily = Family<DoorLabels, Histogram, fn() -> Histogram>;

/// The HTTP metrics of every front door.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: HistogramFamily,
    received: Family<DoorLabels, Counter>,
    sent: Family<DoorLabels, Counter>,
}

/// Buckets from 1 ms to 32 s: a listing takes milliseconds, the head of a download of a chunk
/// from a slow node seconds.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl HttpMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
            received: Family::default(),
            sent: Family::default(),
        };
        registry.register(
            "gateway_http_requests",
            "HTTP requests answered, by front door, method and status",
            metrics.requests.clone(),
        );
        registry.register_with_unit(
            "gateway_http_duration",
            "Time from a request's arrival to its response's head",
            Unit::Seconds,
            metrics.duration.clone(),
        );
        registry.register_with_unit(
            "gateway_http_received",
            "Bytes of request bodies received (uploads)",
            Unit::Bytes,
            metrics.received.clone(),
        );
        registry.register_with_unit(
            "gateway_http_sent",
            "Bytes of response bodies sent (downloads)",
            Unit::Bytes,
            metrics.sent.clone(),
        );
        metrics
    }

    /// `router` with every request of front door `door` counted.
    pub fn track(&self, door: &'static str, router: Router) -> Router {
        let tracked = Arc::new((self.clone(), door));
        router.layer(middleware::from_fn_with_state(tracked, record))
    }
}

async fn record(
    State(tracked): State<Arc<(HttpMetrics, &'static str)>>,
    request: Request,
    next: Next,
) -> Response {
    let (metrics, door) = (&tracked.0, tracked.1);
    let labels = DoorLabels { door };
    let started = Instant::now();
    let method = method_label(request.method());
    let received = metrics.received.get_or_create(&labels).clone();
    let request = request.map(|body| counted(body, received));
    let response = next.run(request).await;
    metrics
        .duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RequestLabels {
            door,
            method,
            status: response.status().as_u16(),
        })
        .inc();
    let sent = metrics.sent.get_or_create(&labels).clone();
    response.map(|body| counted(body, sent))
}

/// `body`, adding the length of each data frame to `counter` as it passes.
fn counted(body: Body, counter: Counter) -> Body {
    Body::new(CountedBody::new(body, counter))
}

/// Keeps `health` saying whether the metadata server answers, until `cancel` fires.
pub async fn watch_readiness(client: Client, health: Health, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(READINESS_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        // A hung metadata server must turn the gateway unready at once, and a shutdown must
        // not wait for the call's own (long) deadline.
        let asked = tokio::select! {
            _ = cancel.cancelled() => break,
            asked = tokio::time::timeout(READINESS_TIMEOUT, client.cluster_info()) => asked,
        };
        let not_ready = match asked {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(format!("the metadata server does not answer: {e:#}")),
            Err(_) => Some(format!(
                "the metadata server does not answer within {READINESS_TIMEOUT:?}"
            )),
        };
        health.set(not_ready).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_up_methods_share_one_label() {
        use axum::http::Method;
        assert_eq!(method_label(&Method::PUT), "PUT");
        let invented = Method::from_bytes(b"M12345").unwrap();
        assert_eq!(method_label(&invented), "other");
        assert_eq!(method_label(&Method::PATCH), "other");
    }
}
