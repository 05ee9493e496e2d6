//! The operator's view of a server: Prometheus metrics, the gRPC and HTTP health probes, and
//! request spans.
//!
//! Each server process keeps one [`Registry`], made by [`registry`] and passed to whatever
//! registers metrics in it; nothing is global, so tests may run several servers in one process.
//! - [`rpc`]: a tower layer on every gRPC server counting requests, errors, latency and bytes
//!   per method, and opening a span per request;
//! - [`counted`]: a body counting its bytes as they pass (HTTP and gRPC alike);
//! - [`span`]: the fields handlers add to that span (a file path, a chunk id, a node id);
//! - [`health`]: readiness, reported both over the gRPC health protocol and on `/readyz`;
//! - [`http`]: the HTTP listener serving `/metrics`, `/healthz` and `/readyz`.

pub mod counted;
pub mod health;
pub mod http;
pub mod rpc;
pub mod span;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
pub use prometheus_client::registry::Registry;

/// The labels of `bigfs_build_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    commit: &'static str,
}

/// A registry whose metric names all start with `bigfs_`, holding `bigfs_build_info`.
pub fn registry() -> Registry {
    let mut registry = Registry::with_prefix("bigfs");
    let info = Family::<BuildLabels, Gauge>::default();
    info.get_or_create(&BuildLabels {
        version: env!("CARGO_PKG_VERSION"),
        commit: crate::COMMIT,
    })
    .set(1);
    registry.register(
        "build_info",
        "The version and git commit this binary was built from (always 1)",
        info,
    );
    registry
}
