//! Failures as the JSON API answers them: an HTTP status that fits, and `{"error": "..."}` with
//! one line a person can act on.
//!
//! The client library keeps the gRPC code of a failed metadata call ([`MetaError`]); that code
//! picks the status, so a missing path is 404 wherever it was found missing. Failures without
//! one come from the storage nodes (a chunk that could not get its copies) and answer 502.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use tonic::Code;

use bigfs_client::client::MetaError;

/// A failed request: what the page shows, and the status it comes with.
#[derive(Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
}

/// The HTTP status for a metadata server's gRPC code.
pub fn status_for(code: Code) -> StatusCode {
    match code {
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists => StatusCode::CONFLICT,
        // "is a directory", "directory not empty", a file in the way of a directory.
        Code::FailedPrecondition => StatusCode::CONFLICT,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        // Unreachable, shutting down, or too few storage nodes: try again later.
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::ResourceExhausted => StatusCode::INSUFFICIENT_STORAGE,
        Code::DataLoss => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> Self {
        let status =
            MetaError::find(&error).map_or(StatusCode::BAD_GATEWAY, |e| status_for(e.code));
        Self::new(status, message(&error))
    }
}

/// `error`'s chain on one line, as `{e:#}` prints it but without the CLI's hints ("use
/// --force"): the page offers its own way to overwrite.
fn message(error: &anyhow::Error) -> String {
    error
        .chain()
        .map(|layer| match layer.downcast_ref::<MetaError>() {
            Some(meta) => meta.message.clone(),
            None => layer.to_string(),
        })
        .collect::<Vec<_>>()
        .join(": ")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, "{}", self.message);
        }
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn metadata_codes_pick_the_status_and_hints_are_dropped() {
        let exists = MetaError {
            code: Code::AlreadyExists,
            message: "/a/b exists".into(),
            hint: Some(" (use --force to overwrite)"),
        };
        let error = anyhow::Error::new(exists).context("commit");
        assert_eq!(
            ApiError::from(error),
            ApiError::new(StatusCode::CONFLICT, "commit: /a/b exists")
        );
        let missing = anyhow::Error::new(MetaError {
            code: Code::NotFound,
            message: "no such file or directory: /x".into(),
            hint: None,
        });
        assert_eq!(ApiError::from(missing).status, StatusCode::NOT_FOUND);
        assert_eq!(
            status_for(Code::Unavailable),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(status_for(Code::InvalidArgument), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn failures_of_the_storage_nodes_are_bad_gateway_with_their_context() {
        let error = Err::<(), _>(anyhow::anyhow!("only 1 of the 2 required copies stored"))
            .context("store chunk 3 of /f")
            .unwrap_err();
        let api = ApiError::from(error);
        assert_eq!(api.status, StatusCode::BAD_GATEWAY);
        assert_eq!(
            api.message,
            "store chunk 3 of /f: only 1 of the 2 required copies stored"
        );
    }
}
