//! Per-method gRPC metrics and a span per call, as one tower layer on every gRPC server
//! ([`crate::transport::server`] puts it there), so that no handler counts anything itself.
//!
//! A call is recorded once, when its response body is finished or dropped: `bigfs_rpc_requests`
//! and `bigfs_rpc_duration_seconds` (arrival to response headers, which for these unary calls
//! is the handler's whole run) by service and method, `bigfs_rpc_errors` by gRPC status code,
//! and the bytes of request and response bodies (gRPC framing included). The status comes from
//! the response headers (an error) or trailers (a reply); a call whose client went away before
//! that counts as `Cancelled`. Calls to methods the server does not have are counted under
//! `service="unknown", method="unknown"`, so that no client can grow the label sets at will.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use tonic::Code;
use tower_layer::Layer;
use tower_service::Service;
use tracing::instrument::{Instrument, Instrumented};
use tracing::Span;

use super::counted::CountedBody;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    service: String,
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    service: String,
    method: String,
    code: String,
}

type HistogramFamily = Family<MethodLabels, Histogram, fn() -> Histogram>;

/// The per-method metrics of one gRPC server; also the [`Layer`] that records them.
#[derive(Clone, Debug)]
pub struct RpcMetrics {
    requests: Family<MethodLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    duration: HistogramFamily,
    received: Family<MethodLabels, Counter>,
    sent: Family<MethodLabels, Counter>,
}

/// Buckets from 0.5 ms to 16 s: a metadata call takes well under a millisecond, a chunk put
/// down a chain of slow disks several seconds.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl RpcMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            requests: Family::default(),
            errors: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
            received: Family::default(),
            sent: Family::default(),
        };
        registry.register(
            "rpc_requests",
            "gRPC calls handled, by service and method",
            metrics.requests.clone(),
        );
        registry.register(
            "rpc_errors",
            "gRPC calls answered with a status other than OK, by status code",
            metrics.errors.clone(),
        );
        registry.register_with_unit(
            "rpc_duration",
            "Time from a gRPC call's arrival to its response",
            Unit::Seconds,
            metrics.duration.clone(),
        );
        registry.register_with_unit(
            "rpc_received",
            "Bytes of gRPC request bodies received",
            Unit::Bytes,
            metrics.received.clone(),
        );
        registry.register_with_unit(
            "rpc_sent",
            "Bytes of gRPC response bodies sent",
            Unit::Bytes,
            metrics.sent.clone(),
        );
        metrics
    }
}

impl<S> Layer<S> for RpcMetrics {
    type Service = RpcService<S>;

    fn layer(&self, inner: S) -> RpcService<S> {
        RpcService {
            inner,
            metrics: self.clone(),
        }
    }
}

/// The service [`RpcMetrics`] wraps a server's routes in.
#[derive(Clone, Debug)]
pub struct RpcService<S> {
    inner: S,
    metrics: RpcMetrics,
}

impl<S, B, RB> Service<http::Request<B>> for RpcService<S>
where
    S: Service<http::Request<CountedBody<B>>, Response = http::Response<RB>>,
{
    type Response = http::Response<ResponseBody<RB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let span = tracing::info_span!(
            "rpc",
            method = %request.uri().path(),
            path = tracing::field::Empty,
            chunk = tracing::field::Empty,
            node = tracing::field::Empty,
        );
        let call = Call::new(self.metrics.clone(), request.uri().path(), span.clone());
        let received = call.received.clone();
        let request = request.map(|inner| CountedBody::new(inner, received));
        ResponseFuture {
            inner: self.inner.call(request).instrument(span),
            call: Some(call),
        }
    }
}

/// One call being handled; recorded when dropped.
struct Call {
    metrics: RpcMetrics,
    labels: MethodLabels,
    started: Instant,
    /// Set when the response headers are ready.
    answered: Option<Duration>,
    /// Set from the response headers or trailers.
    code: Option<Code>,
    /// Bytes of the request body, counted as they are read.
    received: Counter,
    sent: u64,
    span: Span,
}

impl Call {
    fn new(metrics: RpcMetrics, path: &str, span: Span) -> Self {
        // "/bigfs.v1.Meta/GetFile"
        let (service, method) = path
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or((path, ""));
        Self {
            metrics,
            labels: MethodLabels {
                service: service.to_string(),
                method: method.to_string(),
            },
            started: Instant::now(),
            answered: None,
            code: None,
            received: Counter::default(),
            sent: 0,
            span,
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        let code = self.code.unwrap_or(Code::Cancelled);
        let elapsed = self.answered.unwrap_or_else(|| self.started.elapsed());
        if code == Code::Unimplemented {
            self.labels = MethodLabels {
                service: "unknown".into(),
                method: "unknown".into(),
            };
        }
        let m = &self.metrics;
        m.requests.get_or_create(&self.labels).inc();
        if code != Code::Ok {
            m.errors
                .get_or_create(&ErrorLabels {
                    service: self.labels.service.clone(),
                    method: self.labels.method.clone(),
                    code: format!("{code:?}"),
                })
                .inc();
        }
        m.duration
            .get_or_create(&self.labels)
            .observe(elapsed.as_secs_f64());
        m.received
            .get_or_create(&self.labels)
            .inc_by(self.received.get());
        m.sent.get_or_create(&self.labels).inc_by(self.sent);
        tracing::debug!(parent: &self.span, ?code, ?elapsed, "rpc finished");
    }
}

/// The gRPC status in `headers` (response headers or trailers), if there is one.
fn grpc_status(headers: &http::HeaderMap) -> Option<Code> {
    let value = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .parse::<i32>()
        .ok()?;
    Some(Code::from_i32(value))
}

pin_project! {
    /// A call's response future: resolves to the response with its body counted.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Instrumented<F>,
        call: Option<Call>,
    }
}

impl<F, RB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<RB>, E>>,
{
    type Output = Result<http::Response<ResponseBody<RB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let mut call = this
            .call
            .take()
            .expect("ResponseFuture polled after completion");
        call.answered = Some(call.started.elapsed());
        Poll::Ready(match result {
            Ok(response) => {
                call.code = grpc_status(response.headers());
                Ok(response.map(|inner| ResponseBody { inner, call }))
            }
            Err(e) => {
                call.code = Some(Code::Unknown);
                Err(e)
            }
        })
    }
}

pin_project! {
    /// A response body that counts the bytes sent, reads the status from the trailers, and
    /// records the call when it is dropped.
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        call: Call,
    }
}

impl<B: Body> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if let Some(Ok(frame)) = &frame {
            if let Some(data) = frame.data_ref() {
                this.call.sent += data.remaining() as u64;
            } else if let Some(trailers) = frame.trailers_ref() {
                this.call.code = this.call.code.or(grpc_status(trailers));
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests;
