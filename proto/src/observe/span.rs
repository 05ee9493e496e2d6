//! Fields of the request span that [`super::rpc`] opens for every gRPC call.
//!
//! The layer sees only the URL path of a call, not its message, so handlers name what the
//! request is about; every log line written while the call runs then carries it.

use std::fmt::Display;

/// The file or directory path the request is about.
pub fn record_path(path: impl Display) {
    tracing::Span::current().record("path", tracing::field::display(path));
}

/// The chunk the request is about (for a batch, the first one).
pub fn record_chunk(chunk: impl Display) {
    tracing::Span::current().record("chunk", tracing::field::display(chunk));
}

/// The storage node the request comes from or is about.
pub fn record_node(node: impl Display) {
    tracing::Span::current().record("node", tracing::field::display(node));
}
